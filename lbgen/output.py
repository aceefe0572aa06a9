"""Writing rendered files to disk safely, and comparing them with what is on disk.

This is the only module of lbgen (with the CLI) that touches the file system.

Guarantees of `write_tree`
--------------------------
* **All or nothing.** The new tree is written into a fresh hidden directory created beside
  ``out_dir`` (same file system), flushed to disk, and only then swapped into place. On Linux
  the swap is one ``renameat2(RENAME_EXCHANGE)`` call: at every instant ``out_dir`` is either
  the complete previous tree or the complete new one, whatever happens to the process
  (exception, Ctrl-C, SIGKILL, power loss after the flush). Where that call is unavailable
  (other kernels, some file systems) the swap is two renames (old aside, new in place); a
  crash between the two leaves ``out_dir`` missing and the previous tree intact beside it as
  ``.<name>.lbgen-old-*``.
* **Only its own files.** ``out_dir`` must be absent, empty, or carry lbgen's manifest
  (``.lbgen-manifest.json``, the SHA-256 of every file lbgen wrote). A file the write would
  remove must be listed there *with its hash*: a file someone added, or a listed file whose
  content no longer matches its hash (edited by hand, or a forged manifest), is foreign and
  the write is refused, naming it, unless ``replace_foreign`` (the CLI's
  ``--replace-foreign``); the removed entries are then reported through ``on_replace``. A
  hand-edited file that the new tree writes again is overwritten (generated files say "do not
  edit"), and reported too. So a typo in ``-o`` cannot wipe a source directory.
* **Never the spec.** ``keep`` names files that must survive (the CLI passes the spec being
  rendered): an ``out_dir`` that is one of them or an ancestor of one is refused, whatever
  the flags.
* **Mount points.** When ``out_dir`` is a mount point (a container volume: ``docker run -v
  $PWD/out:/out``) it cannot be renamed (EBUSY). Then the new tree is staged *inside*
  ``out_dir`` (``.lbgen-stage-*``) and flushed, a journal (``.lbgen-journal.json``) naming
  every top-level entry is written, and the entries are swapped by renames (old ones into
  ``.lbgen-trash-*``, new ones out of the stage). No half-written file is ever visible; a run
  interrupted during the swap leaves the journal, and the next run (or
  ``recover_interrupted``) first puts the previous tree back byte for byte. ``diff_tree``
  refuses to compare an interrupted directory. An advisory ``flock`` on ``out_dir`` keeps two
  runs apart.
* **Nothing outside ``out_dir``.** Relative paths are checked before anything is written
  (no absolute paths, ``..``, ``.``, empty segments, backslashes or NUL). Files and
  directories are created with ``O_EXCL``/``O_NOFOLLOW`` relative to directory descriptors
  of directories lbgen itself just created, so no symbolic link can redirect a write.
  Symbolic links that were inside the previous ``out_dir`` are removed with it, never
  followed (``shutil.rmtree`` with descriptor-based traversal).
* **``out_dir`` itself must not be a symbolic link.** Replacing the directory as a whole
  would either write through a link lbgen did not create or replace the user's link with a
  directory; both surprise. lbgen refuses and names the link's target to pass instead.
  Symbolic links in the *parent* components of ``out_dir`` are followed: the user named them.
* **Stale files disappear.** The new tree replaces the old one, so a file lbgen produced
  before and no longer produces is gone.
* Leftover hidden directories of a killed run are removed by the next run (only those whose
  process is no longer alive).
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path

from msgspec import Struct

from lbgen.errors import LbgenError, shown_source_name

MANIFEST_NAME = ".lbgen-manifest.json"
"""Written at the root of every output directory: proof that lbgen generated it."""

_MANIFEST_FORMAT = 1
_TMP_MARK = ".lbgen-tmp-"
_OLD_MARK = ".lbgen-old-"
_STAGE_MARK = ".lbgen-stage-"
_TRASH_MARK = ".lbgen-trash-"
JOURNAL_NAME = ".lbgen-journal.json"
"""Inside an output directory that is a mount point: present only while entries are swapped."""
_INTERNAL = (_STAGE_MARK, _TRASH_MARK, JOURNAL_NAME)
_LISTED = 20
"""How many foreign entries a refusal names."""
_PER_FILE_FSYNC_LIMIT = 64
"""Above this many files one `syncfs` is much cheaper than an fsync per file (~0.4 ms each)."""

# POSIX flags; getattr keeps the module importable where they are missing (Windows), and
# write_tree refuses there instead of writing without these guarantees.
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
_POSIX_OK = bool(_O_DIRECTORY and _O_NOFOLLOW) and os.open in os.supports_dir_fd


class OutputError(LbgenError):
    """The output directory cannot be written safely (exit code 2 in the CLI)."""


class NotGeneratedError(OutputError):
    """`out_dir` holds files lbgen did not generate (or that changed since); replacing them
    needs `replace_foreign` (--replace-foreign)."""


class Replacement(Struct, frozen=True):
    """What a write removes or overwrites beyond lbgen's own unchanged files."""

    foreign: tuple[str, ...] = ()
    """Entries lbgen did not write (or that changed since) and the new tree does not have:
    removed (only with `replace_foreign`). Directories end with "/"."""
    edited: tuple[str, ...] = ()
    """Generated files edited since lbgen wrote them, which the new tree writes again."""


class UnsafePathError(OutputError):
    """A rendered file path would land outside the output directory."""


# --- public API -------------------------------------------------------------------------


def write_tree(
    files: Mapping[str, str],
    out_dir: Path,
    *,
    replace_foreign: bool = False,
    keep: Collection[Path] = (),
    on_replace: Callable[[Replacement], None] | None = None,
) -> list[str]:
    """Replace `out_dir` atomically by exactly `files` ({relative POSIX path: text}).

    Returns the sorted relative paths written (the manifest is not listed). See the module
    documentation for the guarantees. `on_replace` is called before anything is written when
    the write removes foreign entries or overwrites hand edits. Raises `OutputError` (an
    `LbgenError`) when the write is refused or fails; the previous content of `out_dir` is
    then unchanged.
    """
    payload = {path: content.encode("utf-8") for path, content in _checked_paths(files).items()}
    if not _POSIX_OK:
        raise OutputError("writing output needs a POSIX system (directory descriptors, "
                          "O_NOFOLLOW); use Linux or macOS, or lbgen.render() in memory")
    parent, name = _split_out_dir(Path(out_dir))
    _refuse_kept(parent, name, keep)
    with _parent_dir(parent) as parent_fd:
        return _write_tree_at(parent_fd, parent, name, payload, replace_foreign, on_replace)


def check_writable(
    files: Mapping[str, str],
    out_dir: Path,
    *,
    replace_foreign: bool = False,
    keep: Collection[Path] = (),
) -> Replacement:
    """What `write_tree` with the same arguments would replace; raises the `OutputError` it
    would raise instead. Writes nothing (for `render --check`)."""
    payload = {path: content.encode("utf-8") for path, content in _checked_paths(files).items()}
    parent, name = _split_out_dir(Path(out_dir))
    _refuse_kept(parent, name, keep)
    shown = _show(Path(parent, name))
    with _parent_dir(parent) as parent_fd, _existing_dir(parent_fd, name, shown, lock=False) as fd:
        return Replacement() if fd is None else _inspect(fd, shown, payload, replace_foreign)


def recover_interrupted(out_dir: Path) -> bool:
    """Put back the previous tree of a write into a mount point that was interrupted during
    its swap (the journal is present). True when there was something to recover."""
    parent, name = _split_out_dir(Path(out_dir))
    shown = _show(Path(parent, name))
    with _parent_dir(parent) as parent_fd, _existing_dir(parent_fd, name, shown, lock=True) as fd:
        return False if fd is None else _recover(fd, shown)


def diff_tree(files: Mapping[str, str], out_dir: Path) -> str:
    """Unified diff from `out_dir`'s current content to `files`; "" when up to date.

    Headers are ``a/<path>`` and ``b/<path>``; a file that would be added is diffed from
    ``/dev/null`` and one that would be removed to ``/dev/null`` (as git does). The manifest
    is ignored. Symbolic links inside `out_dir` are not followed (they are reported as not
    regular files); `out_dir` itself may be a link, since reading through it is harmless.
    Writes nothing.
    """
    wanted = _checked_paths(files)
    out_dir = Path(out_dir)
    current: dict[str, bytes | None] = {}
    if out_dir.is_symlink() or out_dir.exists():
        if not out_dir.is_dir():
            raise OutputError(f"{_show(out_dir)} exists and is not a directory")
        try:
            root_fd = os.open(out_dir, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        except OSError as exc:
            raise OutputError(f"cannot read {_show(out_dir)}: {exc.strerror}") from None
        try:
            if _exists(root_fd, JOURNAL_NAME):
                raise OutputError(_interrupted_message(_show(out_dir)))
            current = _read_tree(root_fd)
        finally:
            os.close(root_fd)
    current.pop(MANIFEST_NAME, None)
    current = {p: data for p, data in current.items() if not _is_internal(p.split("/")[0])}
    chunks: list[str] = []
    for path in sorted(set(current) | set(wanted)):
        new = wanted[path].encode("utf-8") if path in wanted else None
        if path not in current:
            chunks.append(_unified(path, None, new))
            continue
        old = current[path]
        if old is None:  # a link or special file where lbgen wants a regular file (or none)
            chunks.append(f"lbgen: a/{path} is not a regular file\n")
            chunks.append(_unified(path, b"", new))
        elif old != new:
            chunks.append(_unified(path, old, new))
    return "".join(chunks)


def generated_by_lbgen(path: Path) -> str | None:
    """Why `path` is a file lbgen rendered (so `lbgen validate` skips it), or None.

    Recognised by the header lbgen writes on the first line (``# generated by lbgen from …``)
    or by a manifest in an ancestor directory that lists the file. A pre-commit `files:`
    pattern such as ``lbgen/.+\\.yaml`` also matches rendered output under ``lbgen/out/``.
    """
    if not Path(path).is_file():
        return None  # opening a FIFO would block; the loader refuses non-regular files
    try:
        with Path(path).open("rb") as handle:
            first = handle.read(512).split(b"\n", 1)[0]
    except OSError:
        return None
    if _GENERATED_HEADER.match(first):
        return "it is a file rendered by lbgen (header)"
    real = Path(os.path.realpath(path))
    for ancestor in real.parents:
        manifest = ancestor / MANIFEST_NAME
        try:
            listed = _parse_manifest(manifest.read_bytes()) if manifest.is_file() else None
        except OSError:
            listed = None
        if listed is not None and real.relative_to(ancestor).as_posix() in listed:
            return f"it is a file rendered by lbgen (listed in {manifest})"
    return None


_GENERATED_HEADER = re.compile(rb"^\s*(#|//|<!--)\s*generated by lbgen\b")


# --- path checks ------------------------------------------------------------------------


def _checked_paths(files: Mapping[str, str]) -> dict[str, str]:
    """`files` sorted by path, after refusing any path that could leave the directory."""
    checked: dict[str, str] = {}
    for path, content in files.items():
        if not isinstance(path, str) or not isinstance(content, str):
            raise UnsafePathError(f"{path!r}: paths and contents must be strings")
    for path in sorted(files):
        content = files[path]
        problem = _path_problem(path)
        if problem:
            raise UnsafePathError(f"refusing to write {path!r}: {problem}")
        checked[path] = content
    for path in checked:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in checked:
                raise UnsafePathError(f"{prefix!r} cannot be both a file and a directory ({path!r})")
    return checked


def _path_problem(path: str) -> str:
    if not path:
        return "empty path"
    if "\x00" in path:
        return "NUL character"
    if "\\" in path:
        return "backslash (paths are POSIX, '/'-separated)"
    if path.startswith("/"):
        return "absolute path"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "empty, '.' or '..' path segment"
    if path == MANIFEST_NAME:
        return f"{MANIFEST_NAME} is reserved for lbgen's manifest"
    if any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in parts):
        return "a path segment is longer than 255 bytes"
    return ""


def _show(path: str | Path) -> str:
    """A path as an error message shows it: a name from outside lbgen (the -o argument, the
    entries of a directory) cannot break the message's line or start a terminal escape."""
    return shown_source_name(str(path))


def _split_out_dir(out_dir: Path) -> tuple[str, str]:
    """(real parent directory, final name) of `out_dir`, refusing a symlinked `out_dir`."""
    if out_dir.is_symlink():
        target = os.path.realpath(out_dir)
        raise OutputError(
            f"{_show(out_dir)} is a symbolic link; lbgen replaces the output directory as a whole "
            f"and does not write through links it did not create: pass its target "
            f"({_show(target)}) instead"
        )
    name = out_dir.name
    if name in ("", ".", ".."):
        real = os.path.realpath(out_dir)
        parent, name = os.path.split(real)
        if not name:
            raise OutputError("refusing to use the file system root as the output directory")
        return parent, name
    return os.path.realpath(out_dir.parent), name


def _refuse_kept(parent: str, name: str, keep: Collection[Path]) -> None:
    """Refuse an output directory that is, or contains, a file that must survive."""
    real_out = str(Path(parent, name))
    shown = _show(real_out)
    for path in keep:
        real = os.path.realpath(path)
        if real == real_out or real.startswith(real_out.rstrip(os.sep) + os.sep):
            raise OutputError(
                f"refusing to write {shown}: it contains {_show(path)}, the "
                "spec being rendered, "
                "and lbgen replaces the output directory as a whole (even with "
                f"--replace-foreign); choose a directory of its own, e.g. -o {_show(Path(real_out, 'out'))}"
            )


def _is_internal(path: str) -> bool:
    """Entries at the root of `out_dir` that belong to an in-place write (mount points)."""
    return "/" not in path and path.startswith(_INTERNAL)


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _interrupted_message(shown: str) -> str:
    return (
        f"{shown} holds an interrupted lbgen write ({JOURNAL_NAME}); run `lbgen render` "
        "into it again: it first restores the previous output"
    )


# --- writing ----------------------------------------------------------------------------


def _write_tree_at(
    parent_fd: int,
    parent: str,
    name: str,
    payload: dict[str, bytes],
    replace_foreign: bool,
    on_replace: Callable[[Replacement], None] | None,
) -> list[str]:
    shown = _show(Path(parent, name))
    existing = _open_existing(parent_fd, name, shown, lock=True)
    try:
        previous: os.stat_result | None = None
        if existing is not None:
            out_fd, previous = existing
            _recover(out_fd, shown)
            _remove_internal(out_fd)
            replacement = _inspect(out_fd, shown, payload, replace_foreign)
            if on_replace is not None and (replacement.foreign or replacement.edited):
                on_replace(replacement)
            if _is_mount_point(parent_fd, name, previous):
                return _write_in_place(out_fd, payload, shown)
        _remove_leftovers(parent_fd, name)
        try:
            return _write_beside(parent_fd, parent, name, payload, previous, shown)
        except _MountPointError:
            assert existing is not None
            return _write_in_place(existing[0], payload, shown)
    finally:
        if existing is not None:
            os.close(existing[0])


class _MountPointError(Exception):
    """`out_dir` cannot be renamed (EBUSY/EXDEV): a mount point that detection missed."""


def _write_beside(
    parent_fd: int,
    parent: str,
    name: str,
    payload: dict[str, bytes],
    previous: os.stat_result | None,
    shown: str,
) -> list[str]:
    """Stage the tree in a sibling directory and swap it into place."""
    tmp_name = f".{name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(6)}"
    try:
        os.mkdir(tmp_name, 0o777, dir_fd=parent_fd)
    except OSError as exc:
        raise OutputError(f"cannot create a directory in {_show(parent)}: {exc.strerror}") from None
    try:
        tmp_fd = os.open(tmp_name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            _fill(tmp_fd, payload)
            if previous is not None:
                os.fchmod(tmp_fd, stat.S_IMODE(previous.st_mode))
        finally:
            os.close(tmp_fd)
        _swap_into_place(parent_fd, tmp_name, name, previous, shown)
    except OSError as exc:
        if previous is not None and exc.errno in (errno.EBUSY, errno.EXDEV):
            raise _MountPointError from None
        raise OutputError(f"cannot write {shown}: {exc.strerror or exc}") from None
    finally:
        # After the swap tmp_name holds the previous tree; before it (any exception, Ctrl-C)
        # the partial new one. Either way it goes; out_dir is complete.
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp_name, dir_fd=parent_fd)
    return sorted(payload)


@contextlib.contextmanager
def _parent_dir(parent: str | Path) -> Iterator[int]:
    """A descriptor of the directory that holds `out_dir`, closed on exit."""
    try:
        fd = os.open(parent, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"cannot open {_show(parent)}: {exc.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _existing_dir(parent_fd: int, name: str, shown: str, *, lock: bool) -> Iterator[int | None]:
    """`_open_existing`'s descriptor (None when `out_dir` is absent), closed on exit."""
    existing = _open_existing(parent_fd, name, shown, lock=lock)
    if existing is None:
        yield None
        return
    try:
        yield existing[0]
    finally:
        os.close(existing[0])


def _open_existing(
    parent_fd: int, name: str, shown: str, *, lock: bool
) -> tuple[int, os.stat_result] | None:
    """(descriptor, stat) of the current `out_dir`, None when absent; with `lock`, holding an
    exclusive advisory lock so that two runs never swap entries inside it at once."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot inspect {shown}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(f"{shown} is a symbolic link; pass its target instead")
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{shown} exists and is not a directory")
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise OutputError(f"cannot read {shown}: {exc.strerror}") from None
    if lock:
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(f"another lbgen run is writing {shown}; run again") from None
    return fd, st


def _inspect(
    fd: int, shown: str, payload: dict[str, bytes], replace_foreign: bool
) -> Replacement:
    """What replacing the directory at `fd` by `payload` removes; refuses foreign entries
    unless `replace_foreign`."""
    # Check the manifest before walking: `-o ~` by mistake must not walk the home dir.
    manifest = _read_manifest(fd)
    if manifest is None:
        top = sorted(
            entry.name + ("/" if entry.is_dir(follow_symlinks=False) else "")
            for entry in os.scandir(fd)
            if not _is_internal(entry.name)
        )
        if not top:
            return Replacement()
        if not replace_foreign:
            raise NotGeneratedError(
                f"{shown} is not empty and was not generated by lbgen (no valid "
                f"{MANIFEST_NAME}); it holds {_listing(top)}: choose an empty or new "
                "directory, or pass --replace-foreign to delete all of it"
            )
        return Replacement(foreign=tuple(_all_entries(fd)))
    foreign, edited = _classify(fd, manifest, payload)
    if foreign and not replace_foreign:
        raise NotGeneratedError(
            f"{shown} contains {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'} that "
            f"lbgen did not write or that changed since it wrote them ({_listing(foreign)}); "
            "they would be deleted: move them away, or pass --replace-foreign to delete them"
        )
    return Replacement(foreign=tuple(foreign), edited=tuple(edited))


def _listing(paths: list[str]) -> str:
    # Entry names come from the directory, not from lbgen: escaped like any outside name.
    shown = ", ".join(_show(path) for path in paths[:_LISTED])
    return shown + (f", … ({len(paths) - _LISTED} more)" if len(paths) > _LISTED else "")


def _all_entries(fd: int) -> list[str]:
    """Files, links and empty directories under `fd` (what deleting it loses)."""
    listed: list[str] = []
    for top, dirs, names, dir_fd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
        prefix = "" if top == "." else top[2:] + "/"
        if prefix == "":
            dirs[:] = [d for d in dirs if not _is_internal(d)]
            names = [n for n in names if not _is_internal(n)]
        listed.extend(prefix + n for n in names)
        for entry in dirs:
            st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                listed.append(prefix + entry)
        if not dirs and not names and prefix:
            listed.append(prefix)
    return sorted(listed)


def _classify(
    fd: int, manifest: dict[str, str], payload: dict[str, bytes]
) -> tuple[list[str], list[str]]:
    """(foreign entries the write would delete, edited generated files it would overwrite).

    A regular file is lbgen's when the manifest lists it with the SHA-256 of its content. A
    symbolic link or special file at a path lbgen owns is replaced, never followed (removing
    a link loses nothing but the link). A file whose content is what the new tree writes
    loses nothing either."""
    owned_dirs: set[str] = set()
    for path in manifest:
        parts = path.split("/")
        owned_dirs.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    current = _read_tree(fd)
    foreign: list[str] = []
    edited: list[str] = []
    for path, data in sorted(current.items()):
        if path == MANIFEST_NAME or _is_internal(path.split("/")[0]):
            continue
        if data is None and (path in manifest or path in owned_dirs):
            continue  # a link or device where lbgen had a file or directory
        if data is not None and path in manifest:
            if hashlib.sha256(data).hexdigest() == manifest[path]:
                continue
            if path in payload:
                if payload[path] != data:
                    edited.append(path)
                continue
        elif data is not None and payload.get(path) == data:
            continue
        foreign.append(path)
    for directory in _tree_entries(fd):
        if directory in current or directory in owned_dirs or _is_internal(directory.split("/")[0]):
            continue  # files and links were classified above
        if not any(p.startswith(directory + "/") for p in current):
            foreign.append(directory + "/")  # an empty directory lbgen did not create
    return sorted(foreign), edited


def _is_mount_point(parent_fd: int, name: str, st: os.stat_result) -> bool:
    """Whether `out_dir` is a mount point (cannot be renamed). A bind mount of a directory of
    the same file system has the parent's st_dev, so /proc/self/mountinfo decides then."""
    parent_st = os.fstat(parent_fd)
    if parent_st.st_dev != st.st_dev:
        return True
    try:
        real = os.path.realpath(f"/proc/self/fd/{parent_fd}")
        lines = Path("/proc/self/mountinfo").read_text("utf-8", "surrogateescape").splitlines()
    except OSError:
        return False  # not Linux: the EBUSY/EXDEV fallback still catches it
    wanted = str(Path(real, name))
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4 and _unescape_mountinfo(fields[4]) == wanted:
            return True
    return False


def _unescape_mountinfo(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    out = bytearray()
    raw = field.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 4 <= len(raw) and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


# --- writing inside a mount point ---------------------------------------------------------


def _write_in_place(out_fd: int, payload: dict[str, bytes], shown: str) -> list[str]:
    """Stage inside `out_fd`, then swap top-level entries by renames under a journal."""
    token = f"{os.getpid()}-{secrets.token_hex(6)}"
    stage, trash = f"{_STAGE_MARK}{token}", f"{_TRASH_MARK}{token}"
    try:
        os.mkdir(stage, 0o777, dir_fd=out_fd)
        os.mkdir(trash, 0o700, dir_fd=out_fd)
        stage_fd = os.open(stage, _DIR_FLAGS, dir_fd=out_fd)
        trash_fd = os.open(trash, _DIR_FLAGS, dir_fd=out_fd)
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror or exc}") from None
    try:
        _fill(stage_fd, payload)
        old = sorted(e for e in os.listdir(out_fd) if not _is_internal(e))
        new = sorted(os.listdir(stage_fd))  # noqa: PTH208 (a descriptor, not a path)
        _write_journal(out_fd, {"stage": stage, "trash": trash, "old": old, "new": new})
        try:
            for entry in old:
                os.rename(entry, entry, src_dir_fd=out_fd, dst_dir_fd=trash_fd)
            for entry in new:
                os.rename(entry, entry, src_dir_fd=stage_fd, dst_dir_fd=out_fd)
            for fd in (trash_fd, stage_fd, out_fd):
                os.fsync(fd)
            os.unlink(JOURNAL_NAME, dir_fd=out_fd)  # the commit point
            os.fsync(out_fd)
        except BaseException:
            with contextlib.suppress(OSError, OutputError):
                _recover(out_fd, shown)
            raise
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror or exc}") from None
    finally:
        os.close(stage_fd)
        os.close(trash_fd)
        # With the journal still there (a rollback that failed), the trash holds the previous
        # tree: keep it for the next run's recovery.
        if not _exists(out_fd, JOURNAL_NAME):
            for leftover in (stage, trash):
                with contextlib.suppress(OSError):
                    shutil.rmtree(leftover, dir_fd=out_fd)
    return sorted(payload)


def _write_journal(out_fd: int, journal: dict[str, object]) -> None:
    tmp = f"{JOURNAL_NAME}.tmp-{os.getpid()}"
    data = (json.dumps(journal, sort_keys=True) + "\n").encode("utf-8")
    _write_file(out_fd, tmp, data, fsync=True)
    os.rename(tmp, JOURNAL_NAME, src_dir_fd=out_fd, dst_dir_fd=out_fd)
    os.fsync(out_fd)


def _recover(out_fd: int, shown: str) -> bool:
    """Undo a swap that was interrupted (journal present): entries the stage lacks go back
    into it, entries in the trash come back. Idempotent, so a kill during it is harmless."""
    data = _read_regular(out_fd, JOURNAL_NAME)
    if data is None:
        return False
    journal = _parse_journal(data)
    if journal is None:
        raise OutputError(
            f"{shown}/{JOURNAL_NAME} is damaged; compare {shown} with its .lbgen-stage-* and "
            ".lbgen-trash-* directories by hand, then delete the journal"
        )
    stage, trash, old, new = journal
    try:
        _roll_back(out_fd, stage, trash, old, new)
    except OSError as exc:
        raise OutputError(
            f"cannot restore {shown} after an interrupted write ({JOURNAL_NAME}): "
            f"{exc.strerror or exc}; compare {shown} with its {_show(stage)} and {_show(trash)} directories "
            "by hand, then delete the journal"
        ) from None
    return True


def _roll_back(out_fd: int, stage: str, trash: str, old: list[str], new: list[str]) -> None:
    stage_fd = os.open(stage, _DIR_FLAGS, dir_fd=out_fd)
    trash_fd = os.open(trash, _DIR_FLAGS, dir_fd=out_fd)
    try:
        for entry in new:
            if not _exists(stage_fd, entry) and _exists(out_fd, entry):
                os.rename(entry, entry, src_dir_fd=out_fd, dst_dir_fd=stage_fd)
        for entry in old:
            if _exists(trash_fd, entry):
                os.rename(entry, entry, src_dir_fd=trash_fd, dst_dir_fd=out_fd)
        for fd in (stage_fd, trash_fd, out_fd):
            os.fsync(fd)
        os.unlink(JOURNAL_NAME, dir_fd=out_fd)
        os.fsync(out_fd)
    finally:
        os.close(stage_fd)
        os.close(trash_fd)


def _parse_journal(data: bytes) -> tuple[str, str, list[str], list[str]] | None:
    try:
        journal = json.loads(data)
    except ValueError:
        return None
    if not isinstance(journal, dict):
        return None
    stage, trash = journal.get("stage"), journal.get("trash")
    old, new = journal.get("old"), journal.get("new")
    if not (
        isinstance(stage, str) and stage.startswith(_STAGE_MARK) and "/" not in stage
        and isinstance(trash, str) and trash.startswith(_TRASH_MARK) and "/" not in trash
        and isinstance(old, list) and isinstance(new, list)
    ):
        return None
    entries = [*old, *new]
    if not all(isinstance(e, str) and e and "/" not in e and e not in (".", "..")
               and not _is_internal(e) for e in entries):
        return None
    return stage, trash, old, new


def _remove_internal(out_fd: int) -> None:
    """Remove what interrupted in-place writes left inside `out_fd` (their journal has been
    handled; the lock guarantees no live run owns them)."""
    for entry in os.listdir(out_fd):
        if not _is_internal(entry) or entry == JOURNAL_NAME:
            continue
        with contextlib.suppress(OSError):
            st = os.stat(entry, dir_fd=out_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry, dir_fd=out_fd)
            else:
                os.unlink(entry, dir_fd=out_fd)


def _fill(root_fd: int, payload: dict[str, bytes]) -> None:
    """Write every file under `root_fd` (a directory lbgen just created), then the manifest,
    and flush it all to disk."""
    dir_fds: dict[str, int] = {"": root_fd}
    file_fds_synced = len(payload) <= _PER_FILE_FSYNC_LIMIT or not _syncfs_available()
    try:
        for path, data in payload.items():
            parent_path, _, base = path.rpartition("/")
            _write_file(_ensure_dir(dir_fds, parent_path), base, data, fsync=file_fds_synced)
        manifest = _manifest_bytes(payload)
        _write_file(root_fd, MANIFEST_NAME, manifest, fsync=file_fds_synced)
        if file_fds_synced:
            for fd in dir_fds.values():
                os.fsync(fd)
        else:
            _syncfs(root_fd)
    finally:
        for key, fd in dir_fds.items():
            if key:
                os.close(fd)


def _ensure_dir(dir_fds: dict[str, int], path: str) -> int:
    if path in dir_fds:
        return dir_fds[path]
    parent_path, _, base = path.rpartition("/")
    parent_fd = _ensure_dir(dir_fds, parent_path)
    os.mkdir(base, 0o777, dir_fd=parent_fd)
    dir_fds[path] = os.open(base, _DIR_FLAGS, dir_fd=parent_fd)
    return dir_fds[path]


def _write_file(dir_fd: int, base: str, data: bytes, *, fsync: bool) -> None:
    fd = os.open(base, _NEW_FILE_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _manifest_bytes(payload: dict[str, bytes]) -> bytes:
    document = {
        "generator": "lbgen",
        "format": _MANIFEST_FORMAT,
        "files": {path: hashlib.sha256(data).hexdigest() for path, data in sorted(payload.items())},
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _swap_into_place(
    parent_fd: int, tmp_name: str, name: str, previous: os.stat_result | None, shown: str
) -> None:
    """Put `tmp_name` at `name`. Afterwards `tmp_name` holds the previous tree (if any)."""
    if previous is None:
        try:
            os.rename(tmp_name, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise OutputError(f"{shown} appeared while lbgen was writing; run again") from None
            raise
        os.fsync(parent_fd)
        return
    if _exchange(parent_fd, tmp_name, name):
        moved = os.stat(tmp_name, dir_fd=parent_fd, follow_symlinks=False)
        if (moved.st_dev, moved.st_ino) != (previous.st_dev, previous.st_ino):
            _exchange(parent_fd, tmp_name, name)  # put back what someone else put there
            raise OutputError(f"{shown} was replaced while lbgen was writing; run again")
        os.fsync(parent_fd)
        return
    # Fallback without an atomic exchange: old aside, new in, old removed by the caller.
    aside = tmp_name.replace(_TMP_MARK, _OLD_MARK, 1)
    os.rename(name, aside, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    try:
        os.rename(tmp_name, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except OSError:
        os.rename(aside, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        raise
    os.rename(aside, tmp_name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    os.fsync(parent_fd)


def _remove_leftovers(parent_fd: int, name: str) -> None:
    """Remove hidden directories that killed lbgen runs left beside `name`."""
    prefixes = (f".{name}{_TMP_MARK}", f".{name}{_OLD_MARK}")
    for entry in os.listdir(parent_fd):
        if not entry.startswith(prefixes):
            continue
        pid_text = entry.rsplit("-", 2)[-2] if entry.count("-") >= 2 else ""
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            st = os.stat(entry, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry, dir_fd=parent_fd)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- reading ----------------------------------------------------------------------------


def _tree_entries(root_fd: int) -> list[str]:
    """Every entry (file, directory, link) under `root_fd`, as relative paths; no link is
    followed."""
    entries: list[str] = []
    for top, dirs, names, _fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
        prefix = "" if top == "." else top[2:] + "/"
        entries.extend(prefix + entry for entry in (*dirs, *names))
    return entries


def _read_tree(root_fd: int) -> dict[str, bytes | None]:
    """Regular files under `root_fd` with their bytes; other entries (links, devices) map to
    None. Directories are implied by their files."""
    tree: dict[str, bytes | None] = {}
    for top, dirs, names, fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
        prefix = "" if top == "." else top[2:] + "/"
        for entry in names:
            tree[prefix + entry] = _read_regular(fd, entry)
        for entry in dirs:
            st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                tree[prefix + entry] = None
    return tree


def _read_regular(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None  # a symbolic link (ELOOP) or unreadable
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_manifest(root_fd: int) -> dict[str, str] | None:
    data = _read_regular(root_fd, MANIFEST_NAME)
    return None if data is None else _parse_manifest(data)


def _parse_manifest(data: bytes) -> dict[str, str] | None:
    try:
        document = json.loads(data)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("generator") != "lbgen":
        return None
    listed = document.get("files")
    if not isinstance(listed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and not _path_problem(k) for k, v in listed.items()
    ):
        return None
    return listed


def _unified(path: str, old: bytes | None, new: bytes | None) -> str:
    old_name = f"a/{path}" if old is not None else "/dev/null"
    new_name = f"b/{path}" if new is not None else "/dev/null"
    try:
        old_text = (old or b"").decode("utf-8")
    except UnicodeDecodeError:
        return f"Binary files {old_name} and {new_name} differ\n"
    new_text = (new or b"").decode("utf-8")
    lines = "".join(
        _terminated(
            difflib.unified_diff(
                old_text.splitlines(keepends=True),
                new_text.splitlines(keepends=True),
                old_name,
                new_name,
            )
        )
    )
    # An empty file added or removed has no hunk; still say so.
    return lines or f"--- {old_name}\n+++ {new_name}\n"


def _terminated(lines: Iterator[str]) -> Iterator[str]:
    """difflib's lines, with git's marker after a last line that has no newline."""
    for line in lines:
        if line.endswith("\n"):
            yield line
        else:
            yield line + "\n\\ No newline at end of file\n"


# --- Linux system calls -----------------------------------------------------------------

_RENAME_EXCHANGE = 2


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _exchange(dir_fd: int, first: str, second: str) -> bool:
    """Atomically swap two directory entries (Linux renameat2). False when unsupported."""
    function = getattr(_LIBC, "renameat2", None)
    if function is None:
        return False
    result = function(
        dir_fd, os.fsencode(first), dir_fd, os.fsencode(second), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # kernel or file system without RENAME_EXCHANGE
    raise OSError(code, os.strerror(code))


def _syncfs_available() -> bool:
    return getattr(_LIBC, "syncfs", None) is not None


def _syncfs(fd: int) -> None:
    """Flush the whole file system holding `fd`: one call instead of thousands of fsyncs."""
    function = getattr(_LIBC, "syncfs", None)
    if function is None or function(fd) != 0:
        os.sync()


__all__ = [
    "JOURNAL_NAME",
    "MANIFEST_NAME",
    "NotGeneratedError",
    "OutputError",
    "Replacement",
    "UnsafePathError",
    "check_writable",
    "diff_tree",
    "generated_by_lbgen",
    "recover_interrupted",
    "write_tree",
]
