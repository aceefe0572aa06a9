"""Run a `LabSetup`: create the namespace, start every process in it, load, measure, clean up.

Everything happens inside one private network namespace created here (`ip netns add`) and
deleted on every exit (success, error, SIGINT/SIGTERM): processes are started in their own
process groups and killed by group, any process still in the namespace is killed, then the
namespace goes, and with it its addresses and its iptables/nftables rules. The host's network
namespace is never changed; /etc/netns/<namespace>/ (the namespace's /etc/hosts, used by
`ip netns exec`) is removed too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from lbgen.lab.setup import CLOSE_DELAY_S, COUNTER_CHAIN, LabSetup, hosts_file

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
ETC_NETNS = Path("/etc/netns")
_UPSTREAM_ERROR_RE = re.compile(
    r"\[error\].*?((?:connect|recv|send|writev|readv)\(\) failed \(\d+: [^)]*\)|upstream prematurely closed "
    r"connection|upstream timed out)[^\n]*(?:upstream|while)")


@dataclass(frozen=True)
class Workload:
    scenario: str
    duration_s: float
    connections: int
    rate: float | None
    max_requests: int
    service_s: float
    gaps_s: tuple[float, ...] = ()
    scale_at_s: float | None = None
    """scale-out: when the added pods enter the Service, from the start of the load."""
    client: str = "builtin"
    """`builtin` (lbgen.lab.load) or `wrk` (lbgen.lab.wrk; steady only, no --rate)."""
    rollout_pace_s: float | None = None
    """rollout: seconds between two pod replacements (the first one after one pace)."""


class LabRunError(RuntimeError):
    """A step of the run failed (the message says which; everything was cleaned up)."""


def _run(argv: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise LabRunError(f"{' '.join(argv)} failed: {proc.stderr.strip() or proc.stdout.strip()}")


def _listening(pid: int, address: str, port: int) -> bool:
    """Process `pid` itself holds a socket listening on address:port (read from /proc, not
    probed: another process listening there does not count)."""
    packed = f"{int.from_bytes(bytes(int(x) for x in address.split('.')), 'little'):08X}:{port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        owned = {str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return False
    return any(f[1] == packed and f[3] == "0A" and f"socket:[{f[9]}]" in owned
               for f in (line.split() for line in lines))


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class Lab:
    def __init__(self, setup: LabSetup, keep: bool, root: Path) -> None:
        self.setup = setup
        self.keep = keep
        self.root = root
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.created = False
        self.made_etc_netns = False
        self.scaled_at: float | None = None
        self.timer: threading.Timer | None = None
        self.timers: list[threading.Timer] = []
        self.rollout_steps: list[dict[str, Any]] = []
        self.rollout_started: float | None = None
        self.scale_seen: dict[str, float] = {}
        """scale-out through pod IPs: when each front instance began to use the added pods."""
        self.switching = threading.Lock()
        self.stopped = False
        """The load is over: no timer changes anything any more (one may fire late)."""
        self.exec = ["ip", "netns", "exec", setup.namespace]

    # --- set up ---------------------------------------------------------------------------

    def create(self) -> None:
        s = self.setup
        _run(["ip", "netns", "add", s.namespace])
        self.created = True
        self.made_etc_netns = not ETC_NETNS.exists()
        etc = ETC_NETNS / s.namespace
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(hosts_file(s.hosts))
        # glibc returns every address of a name listed several times only with `multi on`.
        (etc / "host.conf").write_text("multi on\n")
        batch = ["link set lo up"] + [f"addr add {a}/32 dev lo" for a in dict.fromkeys(x.address for x in s.addresses)]
        _run([*self.exec, "ip", "-batch", "-"], "\n".join(batch) + "\n")
        _run([*self.exec, "iptables-restore", "--noflush"], s.counters)
        if s.rules:
            tool = ["nft", "-f", "-"] if s.kube_proxy_mode == "nftables" else ["iptables-restore", "--noflush"]
            _run([*self.exec, *tool], s.rules)

    def write_files(self, run_root: Path) -> None:
        for process in self.setup.processes:
            base = run_root / process.name
            (base / "temp").mkdir(parents=True, exist_ok=True)
            for rel, text in process.files.items():
                (base / rel).parent.mkdir(parents=True, exist_ok=True)
                (base / rel).write_text(text)

    def start(self, run_root: Path, workload: Workload) -> None:
        s = self.setup
        pods_dir = run_root / "pods"
        config = {
            "pods": [{"name": n, "address": a, "port": p} for n, a, p in s.pods],
            "idle_s": s.app_idle_s, "close_delay_s": CLOSE_DELAY_S, "service_s": workload.service_s,
            "ready": str(pods_dir / "ready"), "stats": str(pods_dir / "stats.json"),
            "max_run_s": workload.duration_s + 60,
            "control": str(pods_dir / "control.json") if s.rollout_pods else None,
        }
        (pods_dir / "config.json").write_text(json.dumps(config))
        for process in s.processes:
            log = (run_root / process.name / "stdout.log").open("wb")
            popen = subprocess.Popen([*self.exec, *process.argv], stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, "PYTHONPATH": _package_root()})
            log.close()
            self.processes.append((process.name, popen))
            deadline = time.monotonic() + START_TIMEOUT_S
            while not all(_listening(popen.pid, a, p) for a, p in process.listens):
                if popen.poll() is not None or time.monotonic() > deadline:
                    out = (run_root / process.name / "stdout.log").read_text(errors="replace")
                    err = run_root / process.name / "error.log"
                    if err.exists():
                        out += err.read_text(errors="replace")
                    raise LabRunError(f"{process.role} did not start:\n{out[-2000:]}")
                time.sleep(0.02)

    # --- load and stop ----------------------------------------------------------------------

    def _client(self, run_root: Path, config: dict[str, Any], name: str, timeout: float) -> dict[str, Any]:
        path = run_root / f"{name}.json"
        path.write_text(json.dumps(config))
        proc = subprocess.run([*self.exec, sys.executable, "-m", "lbgen.lab.load", str(path)],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "PYTHONPATH": _package_root()}, start_new_session=True)
        if proc.returncode != 0:
            raise LabRunError(f"the load client failed: {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def load(self, run_root: Path, workload: Workload) -> dict[str, Any]:
        s = self.setup
        config = {
            "scenario": workload.scenario, "duration_s": workload.duration_s,
            "connections": workload.connections, "rate": workload.rate, "max_requests": workload.max_requests,
            "targets": [list(t) for t in s.entry], "sources": list(s.sources), "path": s.route_path,
            "host": s.host, "gaps_s": list(workload.gaps_s),
            # POSTs during a rollout, so nginx cannot hide a failed request by retrying it.
            "method": "POST" if workload.scenario == "rollout" else "GET",
        }
        # One request first (the pods count it): otherwise the first connections of every hop
        # start in the same instant and race each other through kube-proxy's `recent` check,
        # which a live Service, warmed by earlier traffic, does not see.
        self._client(run_root, {**config, "scenario": "steady", "connections": 1, "rate": None,
                                "max_requests": 1, "duration_s": 5.0}, "warm-up", 30)
        if workload.scale_at_s is not None and s.scale_rules:
            self.timer = self.scale_out_at(workload.scale_at_s)
        if workload.scale_at_s is not None and s.target_groups and not s.rollout_pods:
            self.scale_out_through_pods_at(run_root, workload.scale_at_s)
        if workload.rollout_pace_s is not None and s.rollout_pods:
            self.start_rollout(run_root, workload.rollout_pace_s)
        if workload.client == "wrk":
            from lbgen.lab import wrk

            try:
                return wrk.run(self.exec, s.entry, s.route_path, workload.connections, workload.duration_s,
                               run_root)
            except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
                raise LabRunError(str(exc)) from None
        return self._client(run_root, config, "load", workload.duration_s + 30)

    def connections_opened(self) -> dict[str, int]:
        """SYNs counted per hop by the filter-table rules (see LabSetup.counters)."""
        proc = subprocess.run([*self.exec, "iptables-save", "-c", "-t", "filter"], capture_output=True,
                              text=True, timeout=30, check=False)
        out: dict[str, int] = {}
        for line in proc.stdout.splitlines():
            found = re.match(rf'\[(\d+):\d+\] -A {COUNTER_CHAIN} .*--comment "?([^" ]+)"? ', line)
            if found:
                out[found.group(2)] = out.get(found.group(2), 0) + int(found.group(1))
        return out

    def pod_stats(self, run_root: Path) -> dict[str, Any]:
        for name, popen in self.processes:
            if name == "pods" and popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
                popen.wait(STOP_TIMEOUT_S)
        stats: dict[str, Any] = json.loads((run_root / "pods" / "stats.json").read_text())
        return stats

    def scale_out_at(self, delay_s: float) -> threading.Timer:
        """Apply the Service's rules with the added pods after `delay_s` (kube-proxy's next sync)."""
        def apply() -> None:
            s = self.setup
            tool = ["nft", "-f", "-"] if s.kube_proxy_mode == "nftables" else ["iptables-restore", "--noflush"]
            with contextlib.suppress(LabRunError, subprocess.TimeoutExpired):
                _run([*self.exec, *tool], s.scale_rules)
                self.scaled_at = time.monotonic()

        timer = threading.Timer(delay_s, apply)
        timer.daemon = True
        timer.start()
        return timer

    def switch_targets(self, run_root: Path, group: int, instance: str) -> float | None:
        """Make front `instance` use target set `group` from now on (the endpoint change has
        reached it): the Kong stand-in reads its step file per request, no reload; nginx
        resolves the headless name only at a reload, so /etc/hosts is rewritten (in place: it is
        bind-mounted into the processes' mount namespaces) and its master gets SIGHUP."""
        s = self.setup
        target = s.target_groups[group]
        with self.switching:
            if self.stopped:
                return None
            try:
                if s.switch == "step file":
                    (run_root / instance / target.step_file).touch()
                else:
                    popen = next(popen for name, popen in self.processes if name == instance)
                    if popen.poll() is not None:
                        return None
                    (ETC_NETNS / s.namespace / "hosts").write_text(target.hosts)
                    popen.send_signal(signal.SIGHUP)  # what `nginx -s reload` sends the master
            except (OSError, StopIteration):
                return None
            return time.monotonic()

    def stop_changes(self) -> None:
        with self.switching:
            self.stopped = True
        for timer in self.timers:
            timer.cancel()

    def _switch_at(self, delay_s: float, run_root: Path, group: int, instance: str,
                   record: dict[str, float], done: dict[str, Any] | None = None) -> None:
        def switch() -> None:
            at = self.switch_targets(run_root, group, instance)
            if at is None:
                return
            record[instance] = at
            if done is not None and len(record) == len(self.setup.switch_delays):
                done["rules_at"] = max(record.values())  # out of every instance's targets

        timer = threading.Timer(max(0.0, delay_s), switch)
        timer.daemon = True
        timer.start()
        self.timers.append(timer)

    def scale_out_through_pods_at(self, run_root: Path, delay_s: float) -> None:
        """The added pods enter the Service's endpoints after `delay_s`; each front instance
        uses them once the change reaches it (`switch_delays`)."""
        def entered() -> None:
            self.scaled_at = time.monotonic()
            for name, after in self.setup.switch_delays:
                self._switch_at(after, run_root, 1, name, self.scale_seen)

        timer = threading.Timer(delay_s, entered)
        timer.daemon = True
        timer.start()
        self.timers.append(timer)

    def upstream_errors(self, run_root: Path) -> dict[str, dict[str, int]]:
        """Each nginx's own account of its failed upstream attempts (its error log), by cause:
        a refused connect and a reset or early close both end as a 502 to the client."""
        out: dict[str, dict[str, int]] = {}
        for process in self.setup.processes:
            log = run_root / process.name / "error.log"
            if not log.exists():
                continue
            counts: dict[str, int] = {}
            for found in _UPSTREAM_ERROR_RE.finditer(log.read_text(errors="replace")):
                counts[found.group(1)] = counts.get(found.group(1), 0) + 1
            if counts:
                out[process.name] = dict(sorted(counts.items()))
        return out

    def reloads(self, run_root: Path) -> dict[str, int]:
        """Reloads each nginx logged (its master logs each SIGHUP at notice level, and the lab
        runs every nginx with `error_log … notice`)."""
        out: dict[str, int] = {}
        for process in self.setup.processes:
            log = run_root / process.name / "error.log"
            if log.exists():
                out[process.name] = log.read_text(errors="replace").count("signal 1 (SIGHUP) received")
        return out

    def _apply(self, rules: str, step: dict[str, Any]) -> None:
        s = self.setup
        tool = ["nft", "-f", "-"] if s.kube_proxy_mode == "nftables" else ["iptables-restore", "--noflush"]
        with contextlib.suppress(LabRunError, subprocess.TimeoutExpired):
            _run([*self.exec, *tool], rules)
            step["rules_at"] = time.monotonic()

    def start_rollout(self, run_root: Path, pace_s: float) -> None:
        """Replace the pods one by one, as a Deployment's rolling update with maxSurge 1 and
        maxUnavailable 0 does once each new pod is ready: at each step the old pod is deleted
        and the new one is ready; kube-proxy's rules show both `sync_s` later, while the old
        pod sleeps its preStop delay, shuts down and is killed at the grace period."""
        s = self.setup
        start = time.monotonic()
        self.rollout_started = start
        control = []
        for k, (old, new) in enumerate(s.rollout_pods):
            deleted = start + pace_s * (k + 1)
            step: dict[str, Any] = {"pod": old, "replaced_by": new, "deleted_at": deleted, "rules_at": None,
                                    "shutdown_at": deleted + min(s.pre_stop_s, s.grace_s),
                                    "killed_at": deleted + s.grace_s}
            self.rollout_steps.append(step)
            control.append({"pod": old, "shutdown_at": step["shutdown_at"], "kill_at": step["killed_at"]})
            if s.rollout_rules:
                timer = threading.Timer(max(0.0, deleted + s.sync_s - time.monotonic()), self._apply,
                                        (s.rollout_rules[k], step))
                timer.daemon = True
                timer.start()
                self.timers.append(timer)
            else:  # the front dials pods: each of its instances switches to target set k + 1
                step["targets_at"] = {}
                for name, after in s.switch_delays:
                    self._switch_at(deleted + after - time.monotonic(), run_root, k + 1, name,
                                    step["targets_at"], step)
        path = run_root / "pods" / "control.json"
        path.with_suffix(".tmp").write_text(json.dumps(control))
        path.with_suffix(".tmp").rename(path)  # the pods process never reads half a file

    def cleanup(self) -> None:
        self.stop_changes()
        # A second Ctrl-C must not cut the clean-up short (the caller restores the handlers).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        for _, popen in reversed(self.processes):
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGTERM)
        for _, popen in self.processes:
            try:
                popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(STOP_TIMEOUT_S)
        if self.created:
            # Anything still in the namespace is ours (nginx workers whose master died first).
            left = subprocess.run(["ip", "netns", "pids", self.setup.namespace], capture_output=True,
                                  text=True, timeout=30, check=False).stdout.split()
            for pid in left:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "delete", self.setup.namespace], capture_output=True, timeout=30,
                           check=False)
            shutil.rmtree(ETC_NETNS / self.setup.namespace, ignore_errors=True)
            if self.made_etc_netns:
                with contextlib.suppress(OSError):
                    ETC_NETNS.rmdir()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def new_run_root(namespace: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{namespace}-"))


def run(setup: LabSetup, workload: Workload, run_root: Path, *, keep: bool = False
        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the lab once in `run_root` (removed unless `keep`); returns (load result, per-pod counts)."""
    lab = Lab(setup, keep, run_root)
    root = run_root
    with _signals_raise():
        try:
            lab.create()
            lab.write_files(root)
            lab.start(root, workload)
            load = lab.load(root, workload)
            if lab.timer is not None:
                lab.timer.cancel()
            lab.stop_changes()
            load["scaled_at"] = lab.scaled_at
            load["scale_seen"] = ({name: lab.scale_seen.get(name) for name, _ in setup.switch_delays}
                                  if setup.target_groups and setup.added else None)
            load["rollout_steps"] = lab.rollout_steps
            load["rollout_started"] = lab.rollout_started
            load["upstream_errors"] = lab.upstream_errors(root) if workload.scenario == "rollout" else {}
            load["connections_opened"] = lab.connections_opened()
            load["reloads"] = lab.reloads(root)
            stats = lab.pod_stats(root)
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            raise LabRunError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            lab.cleanup()
    return load, stats
