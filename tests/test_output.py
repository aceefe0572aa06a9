"""Safe writes (`write_tree`) and the drift check (`diff_tree`).

Each test states the promise of lbgen/output.py it holds the code to: the previous output
survives any failure or kill byte for byte, nothing is written outside `out_dir`, a
directory lbgen did not generate is never replaced without --replace-foreign (and never
when it holds the spec), stale files disappear, and a mount point is written in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from lbgen import output
from lbgen.cli import cli
from lbgen.errors import LbgenError
from lbgen.output import (
    MANIFEST_NAME,
    NotGeneratedError,
    OutputError,
    UnsafePathError,
    diff_tree,
    write_tree,
)

REPO = Path(__file__).resolve().parent.parent

OLD = {
    "edge/nginx.conf": "# old edge\nevents {}\n",
    "edge/conf.d/seed.conf": "upstream a { server 10.0.0.1; }\n",
    "gke/shop/orders.yaml": "kind: Service\n",
    "README.md": "# old\n",
}
NEW = {
    "edge/nginx.conf": "# new edge\nevents {}\nhttp {}\n",
    "gke/shop/orders.yaml": "kind: Service\nmetadata: {name: orders}\n",
    "README.md": "# new\n",
    "gateway/kong.yaml": "_format_version: '3.0'\n",
}


def tree_digest(root: Path) -> str:
    """Hash of every entry under `root`: relative path, type, bytes or link target, mode."""
    digest = hashlib.sha256()
    for top, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted([*dirs, *names]):
            path = Path(top, name)
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            digest.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
            if path.is_symlink():
                digest.update(str(path.readlink()).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def files_under(root: Path) -> dict[str, str]:
    """Regular files under `root` (manifest excluded) with their text."""
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != MANIFEST_NAME
    }


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".lbgen-" in p.name)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


# --- writing ------------------------------------------------------------------------------


def test_fresh_write_creates_exactly_the_files_and_a_manifest_of_their_hashes(out: Path) -> None:
    written = write_tree(OLD, out)

    assert written == sorted(OLD)
    assert files_under(out) == OLD
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    # The manifest is how a later run recognises its own directory: generator + every hash.
    assert manifest["generator"] == "lbgen"
    assert manifest["files"] == {
        path: hashlib.sha256(text.encode()).hexdigest() for path, text in OLD.items()
    }
    assert leftovers(out.parent) == []


def test_manifest_is_deterministic_so_the_output_tree_can_be_committed(tmp_path: Path) -> None:
    write_tree(OLD, tmp_path / "one")
    write_tree(dict(reversed(list(OLD.items()))), tmp_path / "two")

    first = (tmp_path / "one" / MANIFEST_NAME).read_bytes()
    assert first == (tmp_path / "two" / MANIFEST_NAME).read_bytes()
    assert b"time" not in first and list(json.loads(first)["files"]) == sorted(OLD)


def test_rewrite_replaces_the_directory_as_a_whole_and_drops_stale_files(out: Path) -> None:
    write_tree(OLD, out)
    old_inode = out.stat().st_ino

    write_tree(NEW, out)

    assert files_under(out) == NEW
    # edge/conf.d/seed.conf was produced before and is not any more: it must be gone, and so
    # must its now-empty directory.
    assert not (out / "edge" / "conf.d").exists()
    # A new directory was swapped in (not the old one edited file by file).
    assert out.stat().st_ino != old_inode
    assert leftovers(out.parent) == []


def test_rewrite_keeps_the_permissions_the_user_gave_the_output_directory(out: Path) -> None:
    write_tree(OLD, out)
    out.chmod(0o750)

    write_tree(NEW, out)

    assert stat.S_IMODE(out.stat().st_mode) == 0o750


def test_an_empty_existing_directory_is_used_without_force(out: Path) -> None:
    out.mkdir()
    write_tree(OLD, out)
    assert files_under(out) == OLD


def test_refuses_a_non_empty_directory_lbgen_did_not_generate(out: Path) -> None:
    out.mkdir()
    (out / "main.tf").write_text("resource {}\n")
    before = tree_digest(out)

    with pytest.raises(NotGeneratedError) as caught:
        write_tree(OLD, out)

    assert isinstance(caught.value, LbgenError)  # the CLI turns it into a message, exit 2
    assert "--replace-foreign" in str(caught.value) and "empty or new directory" in str(caught.value)
    assert "main.tf" in str(caught.value)  # says what it would have deleted
    assert tree_digest(out) == before
    assert leftovers(out.parent) == []


def test_a_foreign_directory_is_refused_without_walking_it(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `-o ~` by mistake: the refusal must come from the missing manifest, not from a walk.
    out.mkdir()
    (out / "deep").mkdir()
    (out / "deep" / "file").write_text("x")

    def no_walk(*args: Any) -> list[str]:
        raise AssertionError("walked a directory lbgen did not generate")

    monkeypatch.setattr(output, "_tree_entries", no_walk)
    with pytest.raises(NotGeneratedError):
        write_tree(OLD, out)


def test_refuses_when_the_manifest_is_not_lbgens(out: Path) -> None:
    out.mkdir()
    (out / MANIFEST_NAME).write_text(json.dumps({"generator": "other", "files": {}}))
    (out / "x.conf").write_text("x")

    with pytest.raises(NotGeneratedError):
        write_tree(OLD, out)


def test_refuses_when_the_manifest_is_corrupt(out: Path) -> None:
    write_tree(OLD, out)
    (out / MANIFEST_NAME).write_text("{not json")

    with pytest.raises(NotGeneratedError):
        write_tree(NEW, out)


def test_refuses_to_delete_a_file_a_person_added_to_a_generated_directory(out: Path) -> None:
    write_tree(OLD, out)
    (out / "edge" / "nginx.conf.orig").write_text("my backup\n")
    before = tree_digest(out)

    with pytest.raises(NotGeneratedError, match=r"edge/nginx\.conf\.orig"):
        write_tree(NEW, out)

    assert tree_digest(out) == before


def test_hand_edits_of_generated_files_are_overwritten_and_reported(out: Path) -> None:
    # Generated files say "do not edit": an edit of a file lbgen writes again is drift, not a
    # reason to refuse; it is reported so that the loss is not silent.
    write_tree(OLD, out)
    (out / "README.md").write_text("edited\n")
    reported: list[output.Replacement] = []

    write_tree(OLD, out, on_replace=reported.append)

    assert files_under(out) == OLD
    assert reported == [output.Replacement(edited=("README.md",))]


def test_a_hand_edited_file_the_new_tree_drops_is_not_deleted(out: Path) -> None:
    write_tree(OLD, out)
    (out / "edge" / "conf.d" / "seed.conf").write_text("upstream a { server 10.9.9.9; }\n")
    before = tree_digest(out)

    with pytest.raises(NotGeneratedError, match=r"changed since.*edge/conf\.d/seed\.conf"):
        write_tree(NEW, out)  # NEW has no edge/conf.d/seed.conf

    assert tree_digest(out) == before


def test_a_forged_manifest_cannot_get_a_foreign_file_deleted(out: Path) -> None:
    # A manifest lists the files lbgen wrote *with their hashes*: listing someone's Makefile
    # (by copying a manifest, or by hand) does not make it lbgen's.
    out.mkdir()
    (out / "Makefile").write_text("all:\n\tmake deploy\n")
    (out / "deploy").mkdir()
    (out / "deploy" / "values.yaml").write_text("replicas: 3\n")
    forged = {"Makefile": hashlib.sha256(b"something else").hexdigest(),
              "deploy/values.yaml": "0" * 64}
    (out / MANIFEST_NAME).write_text(json.dumps({"generator": "lbgen", "format": 1,
                                                 "files": forged}))
    before = tree_digest(out)

    with pytest.raises(NotGeneratedError) as caught:
        write_tree(NEW, out)

    assert "Makefile" in str(caught.value) and "deploy/values.yaml" in str(caught.value)
    assert tree_digest(out) == before


def test_an_unchanged_generated_file_that_is_no_longer_rendered_is_removed(out: Path) -> None:
    write_tree(OLD, out)
    reported: list[output.Replacement] = []

    write_tree(NEW, out, on_replace=reported.append)

    assert files_under(out) == NEW and reported == []  # nothing foreign, nothing to report


@pytest.mark.parametrize("where", ["same", "parent", "below"])
def test_never_replaces_a_directory_that_holds_the_spec(tmp_path: Path, where: str) -> None:
    project = tmp_path / "project"
    spec = project / "deploy" / "lb" / "seed.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text("name: seed\n")
    out_dir = {"same": spec.parent, "parent": project, "below": spec.parent / "."}[where]
    before = tree_digest(project)

    for check in (write_tree, output.check_writable):
        with pytest.raises(OutputError, match=r"contains .*seed\.yaml, the spec being rendered"):
            check(OLD, out_dir, replace_foreign=True, keep=[spec])  # type: ignore[operator]

    assert tree_digest(project) == before
    assert leftovers(project) == [] and leftovers(project / "deploy") == []


def test_the_spec_is_protected_through_a_symlinked_path(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    spec = real / "seed.yaml"
    spec.write_text("name: seed\n")
    (tmp_path / "alias").symlink_to(real)

    with pytest.raises(OutputError, match="the spec being rendered"):
        write_tree(OLD, tmp_path, replace_foreign=True, keep=[tmp_path / "alias" / "seed.yaml"])

    assert spec.read_text() == "name: seed\n"


def test_replace_foreign_replaces_a_foreign_directory_and_reports_what_it_deletes(
    out: Path,
) -> None:
    out.mkdir()
    (out / "main.tf").write_text("resource {}\n")
    (out / "deploy").mkdir()
    (out / "deploy" / "values.yaml").write_text("replicas: 3\n")
    (out / "empty").mkdir()
    reported: list[output.Replacement] = []

    write_tree(OLD, out, replace_foreign=True, on_replace=reported.append)

    assert files_under(out) == OLD
    assert not (out / "main.tf").exists()
    assert reported == [output.Replacement(foreign=("deploy/values.yaml", "empty/", "main.tf"))]


def test_refuses_a_path_that_is_a_file(out: Path) -> None:
    out.write_text("not a directory\n")
    with pytest.raises(OutputError, match="not a directory"):
        write_tree(OLD, out, replace_foreign=True)
    assert out.read_text() == "not a directory\n"


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../escape.conf",
        "edge/../../escape.conf",
        "edge/..",
        "./edge.conf",
        "edge/./x.conf",
        "edge//x.conf",
        "edge/",
        "",
        "edge\\..\\x.conf",
        "edge/x\x00.conf",
        MANIFEST_NAME,
        "edge/" + "x" * 256,
    ],
)
def test_paths_that_could_leave_the_directory_are_rejected_before_anything_is_written(
    tmp_path: Path, path: str
) -> None:
    out = tmp_path / "nested" / "out"
    (tmp_path / "nested").mkdir()

    with pytest.raises(UnsafePathError):
        write_tree({"ok.conf": "x", path: "payload"}, out)

    assert list((tmp_path / "nested").iterdir()) == []
    assert not (tmp_path / "escape.conf").exists()


def test_a_path_cannot_be_both_a_file_and_a_directory(out: Path) -> None:
    with pytest.raises(UnsafePathError, match="both a file and a directory"):
        write_tree({"edge": "x", "edge/nginx.conf": "y"}, out)
    assert not out.exists()


def test_diff_tree_rejects_unsafe_paths_too(out: Path) -> None:
    with pytest.raises(UnsafePathError):
        diff_tree({"../x": "y"}, out)


# --- symbolic links ---------------------------------------------------------------------


def test_refuses_an_output_directory_that_is_a_symbolic_link(tmp_path: Path) -> None:
    # Choice documented in lbgen/output.py: replacing the directory would either write through
    # a link lbgen did not create or replace the user's link by a directory.
    target = tmp_path / "real"
    write_tree(OLD, target)
    link = tmp_path / "out"
    link.symlink_to(target)
    before = tree_digest(target)

    with pytest.raises(OutputError, match="symbolic link") as caught:
        write_tree(NEW, link, replace_foreign=True)

    assert str(target) in str(caught.value)  # tells the user what to pass instead
    assert link.is_symlink() and tree_digest(target) == before


def test_a_symlinked_parent_directory_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)

    write_tree(OLD, tmp_path / "via" / "out")

    assert files_under(real / "out") == OLD


def test_a_symlinked_directory_inside_the_output_is_not_written_through(
    tmp_path: Path, out: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious\n")
    write_tree(OLD, out)
    shutil.rmtree(out / "edge")
    (out / "edge").symlink_to(victim)  # someone swaps a generated directory for a link
    before = tree_digest(victim)

    write_tree(OLD, out)

    assert tree_digest(victim) == before
    assert not (out / "edge").is_symlink()
    assert files_under(out) == OLD


def test_a_symlinked_file_inside_the_output_is_replaced_not_followed(
    tmp_path: Path, out: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    write_tree(OLD, out)
    (out / "README.md").unlink()
    (out / "README.md").symlink_to(victim)

    write_tree(NEW, out)

    assert victim.read_text() == "precious\n"
    assert not (out / "README.md").is_symlink()
    assert (out / "README.md").read_text() == NEW["README.md"]


def test_diff_tree_reports_a_symlink_without_reading_its_target(tmp_path: Path, out: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET\n")
    write_tree(OLD, out)
    (out / "README.md").unlink()
    (out / "README.md").symlink_to(secret)

    diff = diff_tree(OLD, out)

    assert "lbgen: a/README.md is not a regular file" in diff
    assert "TOP-SECRET" not in diff


# --- failures and interruptions ---------------------------------------------------------


def test_ctrl_c_mid_write_leaves_the_previous_output_byte_identical(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(OLD, out)
    before = tree_digest(out)
    real_write = output._write_file
    calls = {"n": 0}

    def interrupted(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_write(*args, **kwargs)

    monkeypatch.setattr(output, "_write_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_tree(NEW, out)

    assert calls["n"] == 3  # the interruption really landed mid-tree
    assert tree_digest(out) == before
    assert leftovers(out.parent) == []  # the partial tree was cleaned up


def test_a_full_disk_mid_write_is_an_output_error_and_changes_nothing(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(OLD, out)
    before = tree_digest(out)
    real_write = os.write
    calls = {"n": 0}

    def full_disk(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        write_tree(NEW, out)

    assert tree_digest(out) == before
    assert leftovers(out.parent) == []


def test_without_an_atomic_exchange_the_two_rename_fallback_gives_the_same_result(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(OLD, out)
    monkeypatch.setattr(output, "_exchange", lambda *_: False)

    write_tree(NEW, out)

    assert files_under(out) == NEW
    assert leftovers(out.parent) == []


def test_an_output_directory_replaced_during_the_write_is_not_clobbered(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(OLD, out)
    real_fill = output._fill

    def replaced_meanwhile(root_fd: int, payload: dict[str, bytes]) -> None:
        real_fill(root_fd, payload)
        out.rename(out.parent / "moved")
        out.mkdir()
        (out / "someone-elses.txt").write_text("theirs\n")

    monkeypatch.setattr(output, "_fill", replaced_meanwhile)
    with pytest.raises(OutputError, match="replaced while lbgen was writing"):
        write_tree(NEW, out)

    assert files_under(out) == {"someone-elses.txt": "theirs\n"}
    assert files_under(out.parent / "moved") == OLD


def test_leftovers_of_a_killed_run_are_removed_by_the_next_run(out: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = out.parent / f".out.lbgen-tmp-{dead_pid}-abcdef"
    stale.mkdir()
    (stale / "half.conf").write_text("half")
    running = out.parent / f".out.lbgen-tmp-{os.getpid()}-123456"  # a live run: keep
    running.mkdir()
    unrelated = out.parent / ".other.lbgen-tmp-1-abcdef"
    unrelated.mkdir()

    write_tree(OLD, out)

    assert not stale.exists()
    assert running.exists() and unrelated.exists()


# --- SIGKILL of a real process ----------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import lbgen.output as output

    mode = sys.argv[2]
    real_write, real_swap, real_rmtree = output._write_file, output._swap_into_place, output.shutil.rmtree
    count = 0

    def reporting_write(*args, **kwargs):
        global count
        real_write(*args, **kwargs)
        count += 1
        print(f"wrote {count}", flush=True)

    def before_swap(*args, **kwargs):
        print("swapping", flush=True)
        if mode == "pause-before-swap":
            time.sleep(60)  # killed here: everything written, nothing swapped
        real_swap(*args, **kwargs)
        print("swapped", flush=True)
        if mode == "pause-after-swap":
            time.sleep(60)  # killed here: new tree in place, old one not yet removed

    if mode != "plain":
        output._write_file = reporting_write
        output._swap_into_place = before_swap
    files = {f"svc{i // 100}/f{i:05d}.conf": f"# {i}\\n" + "x" * 20_000 + "\\n" for i in range(1500)}
    output.write_tree(files, Path(sys.argv[1]))
    print("done", flush=True)
    """
)

BIG_NEW = {f"svc{i // 100}/f{i:05d}.conf": f"# {i}\n" + "x" * 20_000 + "\n" for i in range(1500)}


def _spawn(out: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _kill_when(child: subprocess.Popen[str], marker: str) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == marker:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            assert child.returncode == -signal.SIGKILL
            return
    raise AssertionError(f"child finished before printing {marker!r}")


@pytest.fixture
def previous(out: Path) -> Iterator[str]:
    write_tree(OLD, out)
    yield tree_digest(out)


@pytest.mark.parametrize("marker", ["wrote 1", "wrote 700", "wrote 1499", "wrote 1500", "swapping"])
def test_sigkill_before_the_swap_leaves_the_previous_output_byte_identical(
    out: Path, previous: str, marker: str
) -> None:
    mode = "pause-before-swap" if marker == "swapping" else "report"
    child = _spawn(out, mode)
    _kill_when(child, marker)

    assert tree_digest(out) == previous
    assert leftovers(out.parent), "the kill should have left the partial tree beside out/"
    write_tree(NEW, out)  # the next run works and cleans up after the killed one
    assert files_under(out) == NEW and leftovers(out.parent) == []


def test_sigkill_after_the_swap_leaves_the_complete_new_output(out: Path, previous: str) -> None:
    child = _spawn(out, "pause-after-swap")
    _kill_when(child, "swapped")

    assert files_under(out) == BIG_NEW
    assert tree_digest(out) != previous


def test_sigkill_at_arbitrary_moments_never_leaves_a_mixed_directory(
    tmp_path: Path, out: Path, previous: str
) -> None:
    write_tree(BIG_NEW, tmp_path / "reference")
    completed = tree_digest(tmp_path / "reference")
    outcomes = []
    for delay in (0.05, 0.15, 0.3, 0.5, 0.8):
        child = _spawn(out, "plain")
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        state = tree_digest(out)
        assert state in (previous, completed), f"mixed output after a kill at {delay}s"
        outcomes.append(state == previous)
        if state == completed:
            write_tree(OLD, out)
            assert tree_digest(out) == previous
    assert any(outcomes), "no kill landed before the swap: the test proved nothing"


# --- an output directory that is a mount point (container volume) -------------------------
#
# `docker run -v $PWD/out:/out … -o /out`: /out cannot be renamed (EBUSY), so the sibling
# swap cannot work there. These tests bind-mount out/ onto itself inside a private mount
# namespace (`unshare --mount`), so nothing leaks to the host; what the child writes through
# the mount stays in out/ after the namespace is gone.

_MOUNT_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import lbgen.output as output

    out, mode = Path(sys.argv[1]), sys.argv[2]
    mounts = [line.split()[4] for line in open("/proc/self/mountinfo")]
    assert str(out) in mounts, "out/ is not a mount point"
    files = json.loads(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
    if files is None:
        files = {f"svc{i // 100}/f{i:05d}.conf": f"# {i}\\n" + "x" * 20_000 + "\\n"
                 for i in range(1500)}
    if mode == "undetected":  # detection misses the mount: the EBUSY of the swap must fall back
        output._is_mount_point = lambda *args: False
    real_write, real_rename, real_unlink = output._write_file, os.rename, os.unlink
    state = {"files": 0, "renames": None}

    def reporting_write(*args, **kwargs):
        real_write(*args, **kwargs)
        state["files"] += 1
        print(f"wrote {state['files']}", flush=True)

    def reporting_rename(src, dst, **kwargs):
        real_rename(src, dst, **kwargs)
        if dst == output.JOURNAL_NAME:
            state["renames"] = 0
        elif state["renames"] is not None:
            state["renames"] += 1
            print(f"renamed {state['renames']}", flush=True)
            if mode == f"pause-rename-{state['renames']}":
                time.sleep(60)

    def reporting_unlink(path, **kwargs):
        real_unlink(path, **kwargs)
        if path == output.JOURNAL_NAME:
            print("committed", flush=True)
            if mode == "pause-after-commit":
                time.sleep(60)

    if mode not in ("plain", "undetected"):
        output._write_file = reporting_write
        os.rename = reporting_rename
        os.unlink = reporting_unlink
    output.write_tree(files, out)
    print("done", flush=True)
    """
)


@pytest.fixture(scope="session")
def mount_namespace() -> list[str]:
    """The command prefix that runs a program in a private mount namespace."""
    unshare = shutil.which("unshare")
    prefix = [unshare or "unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix.insert(1, "--map-root-user")  # an unprivileged user namespace may mount too
    works = unshare is not None and subprocess.run(
        [*prefix, "true"], capture_output=True, check=False
    ).returncode == 0
    if not works:
        if os.geteuid() == 0 or os.environ.get("CI"):
            pytest.fail("unshare --mount does not work here, so the mount-point tests cannot run")
        pytest.skip("not root and unshare --mount is unavailable: cannot create a mount point")
    return prefix


def _in_mount(prefix: list[str], out: Path, mode: str, files: dict[str, str] | None = None,
              ) -> subprocess.Popen[str]:
    """Run _MOUNT_CHILD with out/ bind-mounted onto itself (a mount point, as a volume is)."""
    out.mkdir(exist_ok=True)
    extra = [json.dumps(files)] if files is not None else []
    return subprocess.Popen(
        [*prefix, "sh", "-c", 'mount --bind "$1" "$1" && exec "$2" -c "$3" "$1" "$4" "$5"',
         "sh", str(out), sys.executable, _MOUNT_CHILD, mode, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def visible_digest(root: Path) -> str:
    """tree_digest of what a reader of the output sees: without lbgen's in-place staging
    entries (hidden, removed by the next run)."""
    copy = root.parent / (root.name + "-visible")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy, symlinks=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == root
                                             and n.startswith(output._INTERNAL)])
    try:
        return tree_digest(copy)
    finally:
        shutil.rmtree(copy)


@pytest.mark.parametrize("mode", ["plain", "undetected"])
def test_an_output_directory_that_is_a_mount_point_is_replaced_in_place(
    mount_namespace: list[str], out: Path, mode: str
) -> None:
    write_tree(OLD, out)
    (out / "README.md").write_text(OLD["README.md"])
    child = _in_mount(mount_namespace, out, mode, NEW)
    stdout, stderr = child.communicate(timeout=60)

    assert child.returncode == 0, stderr  # was: cannot write …: Device or resource busy
    assert stdout.strip().endswith("done")
    assert files_under(out) == NEW
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [MANIFEST_NAME]
    assert leftovers(out.parent) == []
    assert diff_tree(NEW, out) == ""


def test_a_foreign_mount_point_is_refused_like_any_foreign_directory(
    mount_namespace: list[str], out: Path
) -> None:
    out.mkdir()
    (out / "data.db").write_text("precious\n")
    child = _in_mount(mount_namespace, out, "plain", NEW)
    _stdout, stderr = child.communicate(timeout=60)

    assert child.returncode != 0 and "NotGeneratedError" in stderr
    assert files_under(out) == {"data.db": "precious\n"}


def _kill_mounted(child: subprocess.Popen[str], marker: str) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == marker:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            assert child.returncode == -signal.SIGKILL
            return
    child.wait(timeout=30)
    raise AssertionError(f"child finished before printing {marker!r}: {child.stderr.read()}")


@pytest.mark.parametrize("marker", ["wrote 1", "wrote 700", "wrote 1501"])
def test_sigkill_while_staging_inside_a_mount_point_leaves_the_previous_output(
    mount_namespace: list[str], out: Path, previous: str, marker: str
) -> None:
    _kill_mounted(_in_mount(mount_namespace, out, "report"), marker)

    assert visible_digest(out) == previous
    assert not (out / output.JOURNAL_NAME).exists()
    assert diff_tree(OLD, out) == ""  # the partial stage is not part of the output
    write_tree(NEW, out)  # the next run works and removes the partial stage
    assert files_under(out) == NEW
    assert [p.name for p in out.iterdir() if p.name.startswith(output._INTERNAL)] == []


WIDE_NEW = {f"svc{i:02d}/f.conf": f"# {i}\n" for i in range(16)}


@pytest.mark.parametrize("mode", ["pause-rename-2", "pause-rename-6", "pause-rename-19"])
def test_sigkill_during_the_in_place_swap_is_recovered_to_the_previous_output(
    mount_namespace: list[str], out: Path, previous: str, mode: str
) -> None:
    # 4 old top-level entries go to the trash (renames 1-4), then 17 new ones (16 directories
    # and the manifest) come in (renames 5-21).
    child = _in_mount(mount_namespace, out, mode, WIDE_NEW)
    _kill_mounted(child, "renamed " + mode.rsplit("-", 1)[1])

    assert (out / output.JOURNAL_NAME).exists()
    with pytest.raises(OutputError, match="interrupted lbgen write"):
        diff_tree(OLD, out)  # --check does not compare a half-swapped directory
    assert output.recover_interrupted(out) is True
    assert visible_digest(out) == previous
    write_tree(NEW, out)
    assert files_under(out) == NEW
    assert [p.name for p in out.iterdir() if p.name.startswith(output._INTERNAL)] == []


def test_an_interrupted_in_place_swap_is_recovered_by_the_next_write(
    mount_namespace: list[str], out: Path, previous: str
) -> None:
    _kill_mounted(_in_mount(mount_namespace, out, "pause-rename-3", WIDE_NEW), "renamed 3")

    write_tree(NEW, out)  # recovers first, then writes

    assert files_under(out) == NEW
    assert [p.name for p in out.iterdir() if p.name.startswith(output._INTERNAL)] == []


def test_a_journal_that_cannot_be_rolled_back_stops_the_write_and_keeps_everything(
    out: Path,
) -> None:
    write_tree(OLD, out)
    trash = out / ".lbgen-trash-1-abcdef"
    trash.mkdir()
    (out / "README.md").rename(trash / "README.md")
    (out / output.JOURNAL_NAME).write_text(json.dumps({
        "stage": ".lbgen-stage-1-abcdef", "trash": trash.name,  # the stage is gone
        "old": ["README.md", "edge", "gke", MANIFEST_NAME], "new": ["README.md"],
    }))

    with pytest.raises(OutputError, match=r"cannot restore .*compare .* by hand"):
        write_tree(NEW, out)

    assert (trash / "README.md").read_text() == OLD["README.md"]  # nothing deleted
    assert (out / output.JOURNAL_NAME).exists()


def test_sigkill_after_the_in_place_commit_leaves_the_complete_new_output(
    mount_namespace: list[str], out: Path, previous: str
) -> None:
    _kill_mounted(_in_mount(mount_namespace, out, "pause-after-commit", WIDE_NEW), "committed")

    visible = {k: v for k, v in files_under(out).items() if not k.startswith(output._INTERNAL)}
    assert visible == WIDE_NEW  # the old entries wait, hidden, in .lbgen-trash-*
    assert not (out / output.JOURNAL_NAME).exists()
    assert diff_tree(WIDE_NEW, out) == ""
    write_tree(OLD, out)  # the next run removes them
    assert [p.name for p in out.iterdir() if p.name.startswith(output._INTERNAL)] == []


def test_sigkill_at_arbitrary_moments_inside_a_mount_point_is_never_a_mixed_output(
    mount_namespace: list[str], tmp_path: Path, out: Path, previous: str
) -> None:
    write_tree(BIG_NEW, tmp_path / "reference")
    completed = tree_digest(tmp_path / "reference")
    outcomes = []
    for delay in (0.1, 0.3, 0.5, 0.8, 1.2):
        child = _in_mount(mount_namespace, out, "plain")
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        output.recover_interrupted(out)  # what the next run does first
        state = visible_digest(out)
        assert state in (previous, completed), f"mixed output after a kill at {delay}s"
        outcomes.append(state == previous)
        if state == completed:
            write_tree(OLD, out)
            assert visible_digest(out) == previous
    assert any(outcomes), "no kill landed before the commit: the test proved nothing"


# --- diff_tree ----------------------------------------------------------------------------


def test_diff_is_empty_when_the_directory_is_up_to_date(out: Path) -> None:
    write_tree(OLD, out)
    assert diff_tree(OLD, out) == ""


def test_diff_shows_a_manual_edit_as_a_unified_diff_with_a_b_headers(out: Path) -> None:
    write_tree(OLD, out)
    (out / "edge" / "nginx.conf").write_text("# old edge\nevents { worker_connections 1; }\n")

    diff = diff_tree(OLD, out)

    assert diff == (
        "--- a/edge/nginx.conf\n"
        "+++ b/edge/nginx.conf\n"
        "@@ -1,2 +1,2 @@\n"
        " # old edge\n"
        "-events { worker_connections 1; }\n"
        "+events {}\n"
    )


def test_diff_lists_files_that_would_be_added_and_removed(out: Path) -> None:
    write_tree(OLD, out)

    diff = diff_tree(NEW, out)

    assert "--- /dev/null\n+++ b/gateway/kong.yaml\n" in diff
    assert "--- a/edge/conf.d/seed.conf\n+++ /dev/null\n" in diff
    assert MANIFEST_NAME not in diff


def test_diff_against_a_missing_directory_adds_everything(out: Path) -> None:
    diff = diff_tree(OLD, out)
    assert all(f"+++ b/{path}\n" in diff for path in OLD)
    assert not out.exists()


def test_diff_marks_a_missing_final_newline_like_git(out: Path) -> None:
    write_tree({"a.txt": "one\n"}, out)
    assert diff_tree({"a.txt": "two"}, out).endswith("+two\n\\ No newline at end of file\n")


def test_diff_writes_nothing(out: Path) -> None:
    write_tree(OLD, out)
    (out / "README.md").write_text("edited\n")
    before = tree_digest(out.parent)

    assert diff_tree(NEW, out) != ""

    assert tree_digest(out.parent) == before


def test_the_diff_is_a_real_patch_that_turns_the_old_tree_into_the_new_one(out: Path) -> None:
    patch = shutil.which("patch")
    if patch is None:
        pytest.skip("GNU patch is not installed")
    write_tree(OLD, out)
    (out / "README.md").write_text("hand edit\n")

    diff = diff_tree(NEW, out)
    subprocess.run([patch, "-p1", "-s", "-d", str(out)], input=diff, text=True, check=True)

    assert {k: v for k, v in files_under(out).items() if v} == NEW


# --- SIGKILL of the real `lbgen render` ---------------------------------------------------


def _big_spec(services: int, replicas: int) -> str:
    """The seed path with many services: about one output file per service."""
    seed = (REPO / "examples" / "seed.yaml").read_text("utf-8")
    head = seed[: seed.index("services:")] + "services:\n"
    return head + "".join(
        f"  - name: svc-{i:04d}\n"
        f"    namespace: shop\n"
        f"    replicas: {replicas}\n"
        f"    app: {{preset: uvicorn}}\n"
        f"    route: {{paths: [/svc-{i:04d}]}}\n"
        f"    kubernetes: {{port: 80, target_port: 8000}}\n"
        # As the seed's service: clean under the rollout rules (LB305/LB307/LB308), so the
        # child's stderr stays empty instead of filling its pipe with 3000 warnings.
        f"    readiness: {{path: /healthz}}\n"
        f"    pre_stop_delay: 35s\n"
        f"    termination_grace_period: 100s\n"
        for i in range(services)
    )


def _lbgen_render(spec: Path, out: Path, mount: list[str] | None = None) -> subprocess.Popen[str]:
    """`lbgen render SPEC -o OUT`; with `mount` (a mount-namespace prefix), with OUT
    bind-mounted onto itself first, as a container volume is."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "lbgen", "render", str(spec), "-o", str(out)]
    if mount is not None:
        command = [*mount, "sh", "-c", 'mount --bind "$1" "$1" && shift && exec "$@"', "sh",
                   str(out), *command]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )


def _files_in_partial_tree(parent: Path) -> int:
    """Files written so far into the hidden staging directory: beside out/ (`.lbgen-tmp-*`)
    or, for a mount point, inside it (`.lbgen-stage-*`)."""
    count = 0
    for root in (parent, parent / "out"):
        with contextlib.suppress(FileNotFoundError):
            for entry in root.iterdir():
                if entry.name.startswith(".out.lbgen-tmp-") or entry.name.startswith(
                    output._STAGE_MARK
                ):
                    count += sum(len(names) for _top, _dirs, names in os.walk(entry))
    return count


@pytest.fixture(scope="module")
def big_renders(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    """Two ~1000-file specs and their complete `lbgen render` output."""
    root = tmp_path_factory.mktemp("big")
    specs = [root / "v1.yaml", root / "v2.yaml"]
    specs[0].write_text(_big_spec(1000, replicas=3))
    specs[1].write_text(_big_spec(1000, replicas=5))  # every Service bundle differs
    outputs = [root / "out-v1", root / "out-v2"]
    for spec, out in zip(specs, outputs, strict=True):
        child = _lbgen_render(spec, out)
        assert child.wait(timeout=120) == 0, child.stderr.read() if child.stderr else ""
    return specs, outputs


@pytest.mark.slow
@pytest.mark.parametrize("mounted", [False, True], ids=["directory", "mount-point"])
@pytest.mark.parametrize("threshold", [1, 400, 900])
def test_sigkill_of_lbgen_render_mid_write_leaves_the_previous_output_byte_identical(
    tmp_path: Path, threshold: int, big_renders: tuple[list[Path], list[Path]], mounted: bool,
    request: pytest.FixtureRequest,
) -> None:
    """The CLI end to end: kill -9 once the hidden directory holds `threshold` of ~1000 files."""
    mount = request.getfixturevalue("mount_namespace") if mounted else None
    specs, outputs = big_renders
    out = tmp_path / "out"
    shutil.copytree(outputs[1], out, symlinks=True)
    digests = [tree_digest(outputs[0]), tree_digest(out)]
    assert digests[0] != digests[1]
    current = 1  # out/ holds v2's output

    for _attempt in range(6):
        target = 1 - current
        child = _lbgen_render(specs[target], out, mount)
        landed = False
        while child.poll() is None:
            if _files_in_partial_tree(tmp_path) >= threshold:
                child.send_signal(signal.SIGKILL)
                landed = True
                break
        child.wait(timeout=120)
        if landed:
            assert child.returncode == -signal.SIGKILL
            assert visible_digest(out) == digests[current]
            return
        # The render finished before the poll saw the partial tree: it must be complete.
        assert child.returncode == 0 and tree_digest(out) == digests[target]
        current = target
    pytest.fail(f"no kill landed while {threshold} files were being written (machine too fast?)")


# --- pre-commit hooks (.pre-commit-hooks.yaml) --------------------------------------------


def _hooks() -> dict[str, dict[str, Any]]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text("utf-8"))
    return {hook["id"]: hook for hook in hooks}


def _run_hook(hook: dict[str, Any], args: list[str]) -> Result:
    """Run a hook's entry the way pre-commit does: entry words + args, in-process."""
    words = hook["entry"].split()
    assert words[0] == "lbgen"
    return CliRunner().invoke(cli, [*words[1:], *args])


def test_hooks_have_what_pre_commit_requires() -> None:
    hooks = _hooks()
    assert set(hooks) == {"lbgen-validate", "lbgen-render-check"}
    for hook in hooks.values():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python"  # pre-commit pip-installs this repository
    assert hooks["lbgen-render-check"]["pass_filenames"] is False


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("lbgen.yaml", True),
        ("deploy/lbgen.yml", True),
        ("deploy/edge.lbgen.yaml", True),
        ("infra/lbgen/seed.yaml", True),
        ("values.yaml", False),
        ("charts/app/values.yaml", False),
        ("mylbgen.yaml", False),
        ("lbgen.yaml.bak", False),
    ],
)
def test_validate_hook_only_picks_files_named_as_lbgen_specs(path: str, matches: bool) -> None:
    # pre-commit applies `files` with re.search on the repository-relative path.
    assert bool(re.search(_hooks()["lbgen-validate"]["files"], path)) is matches


def test_validate_hook_entry_accepts_several_specs_and_fails_on_a_broken_one(
    tmp_path: Path,
) -> None:
    good = tmp_path / "lbgen.yaml"
    good.write_text((REPO / "examples" / "seed.yaml").read_text("utf-8"))
    broken = tmp_path / "broken.lbgen.yaml"
    broken.write_text("name: [\n")

    result = _run_hook(_hooks()["lbgen-validate"], [str(good), str(broken)])

    assert result.exit_code == 2
    assert f"{broken}:" in result.stderr


def _pre_commit_files(hook: dict[str, Any], repo: Path) -> list[str]:
    """The files pre-commit passes to `hook` on `pre-commit run --all-files`: tracked files
    that match `files` (re.search) and `types: [yaml]` (identify tags .yaml/.yml as yaml)."""
    tracked = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert hook["types"] == ["yaml"]
    return [path for path in tracked
            if re.search(hook["files"], path) and path.endswith((".yaml", ".yml"))]


@pytest.fixture
def lbgen_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository that keeps its spec under lbgen/ and commits the rendered output beside
    it (lbgen/out/), as the README suggests."""
    repo = tmp_path / "infra"
    (repo / "lbgen").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "seed.yaml", repo / "lbgen" / "seed.yaml")
    (repo / "charts").mkdir()
    (repo / "charts" / "values.yaml").write_text("replicas: 3\n")
    monkeypatch.chdir(repo)
    rendered = CliRunner().invoke(cli, ["render", "lbgen/seed.yaml", "-o", "lbgen/out"])
    assert rendered.exit_code == 0, rendered.output
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    return repo


def test_validate_hook_skips_rendered_output_in_a_realistic_repository(lbgen_repo: Path) -> None:
    hook = _hooks()["lbgen-validate"]
    files = _pre_commit_files(hook, lbgen_repo)
    assert "lbgen/seed.yaml" in files and "lbgen/out/gateway/kong.yaml" in files
    assert "charts/values.yaml" not in files

    result = _run_hook(hook, files)

    assert result.exit_code == 0, result.output  # was 2: kong.yaml is not a spec
    generated = sorted(f for f in files if f.startswith("lbgen/out/"))
    assert generated  # kong.yaml and the Kubernetes bundles
    for path in generated:
        assert f"lbgen: note: skipping {path}: it is a file rendered by lbgen" in result.stderr
    assert "lbgen/seed.yaml" not in result.stderr  # the spec itself was validated
    assert "All checks passed" in result.stdout


def test_validate_recognises_rendered_output_by_its_manifest_without_the_header(
    lbgen_repo: Path,
) -> None:
    kong = lbgen_repo / "lbgen" / "out" / "gateway" / "kong.yaml"
    kong.write_text(kong.read_text().split("\n", 1)[1])  # header line gone (hand edit)

    result = CliRunner().invoke(cli, ["validate", "lbgen/out/gateway/kong.yaml"])

    assert result.exit_code == 0, result.output
    assert "listed in" in result.stderr and MANIFEST_NAME in result.stderr


def test_validate_still_checks_a_spec_that_sits_in_a_generated_directory(lbgen_repo: Path) -> None:
    stray = lbgen_repo / "lbgen" / "out" / "broken.yaml"  # not in the manifest: not lbgen's
    stray.write_text("name: [\n")

    result = _run_hook(_hooks()["lbgen-validate"], ["lbgen/seed.yaml", "lbgen/out/broken.yaml"])

    assert result.exit_code == 2
    assert "lbgen/out/broken.yaml:" in result.stderr


def test_render_check_hook_passes_on_fresh_output_and_fails_with_a_diff_after_an_edit(
    tmp_path: Path,
) -> None:
    spec = REPO / "examples" / "seed.yaml"
    out = tmp_path / "out"
    hook = _hooks()["lbgen-render-check"]
    assert CliRunner().invoke(cli, ["render", str(spec), "-o", str(out)]).exit_code == 0
    assert _run_hook(hook, [str(spec), "-o", str(out)]).exit_code == 0

    conf = out / "edge" / "nginx.conf"
    conf.write_text(conf.read_text() + "# hand edit\n")
    stale = _run_hook(hook, [str(spec), "-o", str(out)])

    assert stale.exit_code == 1
    assert "--- a/edge/nginx.conf\n+++ b/edge/nginx.conf\n" in stale.stdout
    assert "-# hand edit" in stale.stdout
