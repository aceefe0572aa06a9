"""Safe writes (`write_tree`) and the drift check (`diff_tree`).

Each test states the promise of lbgen/output.py it holds the code to: the previous output
survives any failure or kill byte for byte, nothing is written outside `out_dir`, a
directory lbgen did not generate is never replaced without --force, stale files disappear.
"""

from __future__ import annotations

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
    assert "--force" in str(caught.value) and "empty directory" in str(caught.value)
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


def test_hand_edits_of_generated_files_are_overwritten(out: Path) -> None:
    # Generated files say "do not edit": an edit is drift, not a reason to refuse.
    write_tree(OLD, out)
    (out / "README.md").write_text("edited\n")

    write_tree(OLD, out)

    assert files_under(out) == OLD


def test_force_replaces_a_foreign_directory_completely(out: Path) -> None:
    out.mkdir()
    (out / "main.tf").write_text("resource {}\n")

    write_tree(OLD, out, force=True)

    assert files_under(out) == OLD
    assert not (out / "main.tf").exists()


def test_refuses_a_path_that_is_a_file(out: Path) -> None:
    out.write_text("not a directory\n")
    with pytest.raises(OutputError, match="not a directory"):
        write_tree(OLD, out, force=True)
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
        write_tree(NEW, link, force=True)

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


def _lbgen_render(spec: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "lbgen", "render", str(spec), "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )


def _files_in_partial_tree(parent: Path) -> int:
    count = 0
    for entry in parent.iterdir():
        if ".lbgen-tmp-" in entry.name:
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
@pytest.mark.parametrize("threshold", [1, 400, 900])
def test_sigkill_of_lbgen_render_mid_write_leaves_the_previous_output_byte_identical(
    tmp_path: Path, threshold: int, big_renders: tuple[list[Path], list[Path]]
) -> None:
    """The CLI end to end: kill -9 once the hidden directory holds `threshold` of ~1000 files."""
    specs, outputs = big_renders
    out = tmp_path / "out"
    shutil.copytree(outputs[1], out, symlinks=True)
    digests = [tree_digest(outputs[0]), tree_digest(out)]
    assert digests[0] != digests[1]
    current = 1  # out/ holds v2's output

    for _attempt in range(6):
        target = 1 - current
        child = _lbgen_render(specs[target], out)
        landed = False
        while child.poll() is None:
            if _files_in_partial_tree(tmp_path) >= threshold:
                child.send_signal(signal.SIGKILL)
                landed = True
                break
        child.wait(timeout=120)
        if landed:
            assert child.returncode == -signal.SIGKILL
            assert tree_digest(out) == digests[current]
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
