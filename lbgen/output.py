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
* **Only its own directories.** ``out_dir`` must be absent, empty, or carry lbgen's manifest
  (``.lbgen-manifest.json``) and nothing but the files that manifest lists; otherwise it
  refuses unless ``force``. So a typo in ``-o`` cannot wipe a source directory, and a file a
  person dropped into the output directory is not deleted silently.
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
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from lbgen.errors import LbgenError

MANIFEST_NAME = ".lbgen-manifest.json"
"""Written at the root of every output directory: proof that lbgen generated it."""

_MANIFEST_FORMAT = 1
_TMP_MARK = ".lbgen-tmp-"
_OLD_MARK = ".lbgen-old-"
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
    """`out_dir` holds files lbgen did not generate; overwriting needs --force."""


class UnsafePathError(OutputError):
    """A rendered file path would land outside the output directory."""


# --- public API -------------------------------------------------------------------------


def write_tree(files: Mapping[str, str], out_dir: Path, *, force: bool = False) -> list[str]:
    """Replace `out_dir` atomically by exactly `files` ({relative POSIX path: text}).

    Returns the sorted relative paths written (the manifest is not listed). See the module
    documentation for the guarantees. Raises `OutputError` (an `LbgenError`) when the write
    is refused or fails; the previous content of `out_dir` is then unchanged.
    """
    payload = {path: content.encode("utf-8") for path, content in _checked_paths(files).items()}
    if not _POSIX_OK:
        raise OutputError("writing output needs a POSIX system (directory descriptors, "
                          "O_NOFOLLOW); use Linux or macOS, or lbgen.render() in memory")
    parent, name = _split_out_dir(Path(out_dir))
    try:
        parent_fd = os.open(parent, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"cannot open {parent}: {exc.strerror}") from None
    try:
        return _write_tree_at(parent_fd, parent, name, payload, force)
    finally:
        os.close(parent_fd)


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
            raise OutputError(f"{out_dir} exists and is not a directory")
        try:
            root_fd = os.open(out_dir, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        except OSError as exc:
            raise OutputError(f"cannot read {out_dir}: {exc.strerror}") from None
        try:
            current = _read_tree(root_fd)
        finally:
            os.close(root_fd)
    current.pop(MANIFEST_NAME, None)
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


def _split_out_dir(out_dir: Path) -> tuple[str, str]:
    """(real parent directory, final name) of `out_dir`, refusing a symlinked `out_dir`."""
    if out_dir.is_symlink():
        target = os.path.realpath(out_dir)
        raise OutputError(
            f"{out_dir} is a symbolic link; lbgen replaces the output directory as a whole and "
            f"does not write through links it did not create: pass its target ({target}) instead"
        )
    name = out_dir.name
    if name in ("", ".", ".."):
        real = os.path.realpath(out_dir)
        parent, name = os.path.split(real)
        if not name:
            raise OutputError("refusing to use the file system root as the output directory")
        return parent, name
    return os.path.realpath(out_dir.parent), name


# --- writing ----------------------------------------------------------------------------


def _write_tree_at(
    parent_fd: int, parent: str, name: str, payload: dict[str, bytes], force: bool
) -> list[str]:
    shown = str(Path(parent, name))
    previous = _inspect_existing(parent_fd, name, shown, force)
    _remove_leftovers(parent_fd, name)
    tmp_name = f".{name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(6)}"
    try:
        os.mkdir(tmp_name, 0o777, dir_fd=parent_fd)
    except OSError as exc:
        raise OutputError(f"cannot create a directory in {parent}: {exc.strerror}") from None
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
        raise OutputError(f"cannot write {shown}: {exc.strerror or exc}") from None
    finally:
        # After the swap tmp_name holds the previous tree; before it (any exception, Ctrl-C)
        # the partial new one. Either way it goes; out_dir is complete.
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp_name, dir_fd=parent_fd)
    return sorted(payload)


def _inspect_existing(parent_fd: int, name: str, shown: str, force: bool) -> os.stat_result | None:
    """stat of the current `out_dir` (None when absent), refusing directories lbgen did not
    generate unless `force`."""
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
    if force:
        return st
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise OutputError(f"cannot read {shown}: {exc.strerror}") from None
    try:
        # Check the manifest before walking: `-o ~` by mistake must not walk the home dir.
        manifest = _read_manifest(fd)
        entries = _tree_entries(fd) if manifest is not None else None
        empty = manifest is None and _is_empty(fd)
    finally:
        os.close(fd)
    if empty:
        return st
    if manifest is None or entries is None:
        raise NotGeneratedError(
            f"{shown} is not empty and was not generated by lbgen (no valid {MANIFEST_NAME}); "
            "pass --force to replace it, or choose an empty directory"
        )
    expected = {MANIFEST_NAME}
    for path in manifest:
        parts = path.split("/")
        expected.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    foreign = sorted(set(entries) - expected)
    if foreign:
        listed = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
        raise NotGeneratedError(
            f"{shown} contains {len(foreign)} file(s) lbgen did not generate ({listed}); "
            "they would be deleted: move them away, or pass --force to replace the directory"
        )
    return st


def _is_empty(dir_fd: int) -> bool:
    with os.scandir(dir_fd) as entries:
        return next(entries, None) is None


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
    if data is None:
        return None
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
    "MANIFEST_NAME",
    "NotGeneratedError",
    "OutputError",
    "UnsafePathError",
    "diff_tree",
    "write_tree",
]
