"""The real-consumer check of nginx output: the installed `nginx -t`, run the way the CLI runs it.

Every example with an nginx tier must pass the real nginx; the check must fail on a broken
config with nginx's own message, must not depend on DNS, must leave the host untouched, must
work for root and for an ordinary user, and must explain itself when it cannot run or when it
had to adapt the copy it tests (stream module, certificates, version differences).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import lbgen
from lbgen import nginx_harness
from lbgen.io.loader import load_spec_data
from lbgen.model.types import Version
from lbgen.render import render_spec
from lbgen.verify import nginx as nginx_verify
from lbgen.verify._base import CheckResult
from tests.conftest import EXAMPLES


def _nginx_examples() -> list[Path]:
    found = []
    for example in EXAMPLES:
        spec = lbgen.load(example).spec
        if spec.edge is not None or spec.l4 is not None:
            found.append(example)
    return found


NGINX_EXAMPLES = _nginx_examples()

GATEWAY: dict[str, Any] = {
    "name": "direct",
    "tiers": [
        {
            "kind": "nginx_http",
            "name": "edge",
            "version": "1.22.0",
            "instances": [{"name": "edge-1", "address": "10.0.0.1"}],
            "backend_targets": "pod_endpoints",
        },
        {
            "kind": "kubernetes",
            "name": "k8s",
            "version": "1.33",
            "platform": "self-managed",
            "cluster_domain": "cluster.example",
        },
    ],
    "services": [
        {"name": "orders", "namespace": "shop", "replicas": 2, "app": {"preset": "uvicorn"}},
        {"name": "cart", "namespace": "shop", "replicas": 2, "app": {"preset": "nodejs"}},
    ],
}
GATEWAY_HOSTS = ["cart-pods.shop.svc.cluster.example", "orders-pods.shop.svc.cluster.example"]


def render(data: dict[str, Any]) -> dict[str, str]:
    return render_spec(load_spec_data(copy.deepcopy(data)).spec, "t.yaml")


@pytest.fixture
def build(nginx_bin: str, monkeypatch: pytest.MonkeyPatch) -> nginx_verify.NginxBuild:
    monkeypatch.setenv(nginx_verify.NGINX_ENV, nginx_bin)
    return nginx_harness.nginx_build(nginx_bin)


def only(results: list[CheckResult]) -> CheckResult:
    assert len(results) == 1, results
    return results[0]


def test_examples_with_nginx_tiers_exist() -> None:
    """The parametrized test below must not pass vacuously."""
    assert len(NGINX_EXAMPLES) >= 2


@pytest.mark.parametrize("example", NGINX_EXAMPLES, ids=[e.stem for e in NGINX_EXAMPLES])
def test_every_example_passes_the_real_nginx(example: Path, build: nginx_verify.NginxBuild) -> None:
    """Each rendered `<tier>/nginx.conf` of every example is accepted by the installed nginx
    (the CI installs Debian's nginx 1.22 + libnginx-mod-stream)."""
    files = lbgen.render(lbgen.load(example))
    results = nginx_verify.verify(files, None)
    expected = sorted(f"nginx -t {path}" for path in files if path.endswith("/nginx.conf"))
    assert [r.name for r in results] == expected
    # Examples are written for nginx 1.30: on an older local nginx a file is at best
    # "proven on X, not on declared Y" or "not provable here", never failed.
    assert [r for r in results if r.status not in ("passed", "not provable")] == []
    for result in results:
        if not result.proven:
            assert result.tested_on == f"nginx {build.version}", result


def test_broken_config_fails_with_nginxs_message(build: nginx_verify.NginxBuild) -> None:
    """The check is not a formality: nginx's error comes back, naming the rendered file."""
    files = render(GATEWAY)
    files["edge/conf.d/direct.conf"] += "bogus_directive on;\n"
    result = only(nginx_verify.verify(files, None))
    assert result.status == "failed"
    assert 'unknown directive "bogus_directive" in edge/conf.d/direct.conf' in result.detail


def test_no_nginx_config_no_check() -> None:
    assert nginx_verify.verify({"k8s/shop/orders.yaml": "kind: Service\n"}, None) == []


def test_missing_nginx_is_a_skip_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(nginx_verify.NGINX_ENV, "/nonexistent/nginx")
    result = only(nginx_verify.verify(render(GATEWAY), None))
    assert result.status == "skipped"
    assert "nginx is not installed" in result.detail


# --- host names: never DNS ---------------------------------------------------------------------


def _require_namespaces() -> None:
    if nginx_verify._isolation_available() != "namespace":
        pytest.skip(
            "unshare cannot create mount/network namespaces here; the fallback is tested below"
        )


def test_host_names_resolve_from_a_private_hosts_file(build: nginx_verify.NginxBuild) -> None:
    """Kubernetes Service names do not resolve on a CI machine; in namespace mode nginx reads
    them from a private /etc/hosts mapping each to 127.0.0.1, and the files are unchanged."""
    _require_namespaces()
    result = nginx_verify.check_config(
        "edge/nginx.conf", render(GATEWAY), build, isolation="namespace"
    )
    assert result.status == "passed", result.detail
    assert f"private /etc/hosts: {', '.join(GATEWAY_HOSTS)}" in result.detail
    assert result.adapted == ()  # a private /etc/hosts leaves the files as written


def test_namespace_mode_has_no_dns_to_fall_back_on(
    build: nginx_verify.NginxBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the hosts-file entries the same config fails: nginx runs in an empty network
    namespace, so a passing check cannot have come from a DNS lookup."""
    _require_namespaces()
    monkeypatch.setattr(nginx_verify, "_host_names", lambda texts: set())
    result = nginx_verify.check_config(
        "edge/nginx.conf", render(GATEWAY), build, isolation="namespace"
    )
    assert result.status == "failed"
    assert "host not found in upstream" in result.detail


def test_fallback_points_host_names_at_localhost(build: nginx_verify.NginxBuild) -> None:
    """Where namespaces are unavailable (containers without CAP_SYS_ADMIN, no unprivileged
    user namespaces), the copy under test has the names replaced, and the result says so."""
    result = nginx_verify.check_config(
        "edge/nginx.conf", render(GATEWAY), build, isolation="rewrite"
    )
    assert result.status == "passed", result.detail
    assert result.label == "adapted"
    (rewrite,) = result.adapted
    assert f"replaced these host names by 127.0.0.1 in its copy: {', '.join(GATEWAY_HOSTS)}" in rewrite
    assert result.explanation().startswith("passed after adapting: no private /etc/hosts")


# --- the host stays untouched, for root and for ordinary users ---------------------------------


def _host_paths(build: nginx_verify.NginxBuild) -> list[Path]:
    """Files and directories a bare `nginx -t` as root creates: pid file, temp directories."""
    text = subprocess.run([build.path, "-V"], capture_output=True, text=True, check=False).stderr
    paths = [Path(p) for p in re.findall(r"--(?:pid|http-[a-z-]+-temp)-path=(\S+)", text)]
    return paths or [Path("/run/nginx.pid"), Path("/var/lib/nginx/proxy")]


@pytest.mark.parametrize("isolation", ["namespace", "rewrite"])
def test_the_check_creates_nothing_on_the_host(
    build: nginx_verify.NginxBuild, isolation: str
) -> None:
    """nginx -t creates its pid file and temp directories (chowning them when root); the
    check points them into its scratch directory instead."""
    if isolation == "namespace":
        _require_namespaces()
    before = {path: path.exists() for path in _host_paths(build)}
    result = nginx_verify.check_config(
        "edge/nginx.conf", render(GATEWAY), build, isolation=isolation
    )  # type: ignore[arg-type]
    assert result.status == "passed", result.detail
    assert {path: path.exists() for path in before} == before


def _as_nobody(build: nginx_verify.NginxBuild, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the verifier behave as uid 65534 and run nginx as that user for real."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to impersonate an ordinary user")
    real_run = subprocess.run
    drop = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]

    def run_as_nobody(command: list[str], **kwargs: Any) -> Any:
        if build.path in command:
            prefix = Path(command[command.index("-p") + 1])
            for top, dirs, files in os.walk(prefix.parent):
                for name in [*dirs, *files]:
                    Path(top, name).chmod(0o777)
            prefix.parent.chmod(0o777)
            command = [*drop, *command]
        return real_run(command, **kwargs)

    monkeypatch.setattr(nginx_verify.os, "geteuid", lambda: 65534)
    monkeypatch.setattr(nginx_verify.subprocess, "run", run_as_nobody)


def test_ordinary_user_fallback_moves_privileged_ports(
    build: nginx_verify.NginxBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx -t binds the listen sockets, which an ordinary user cannot do below 1024."""
    _as_nobody(build, monkeypatch)
    result = nginx_verify.check_config(
        "edge/nginx.conf", render(GATEWAY), build, isolation="rewrite"
    )
    assert result.status == "passed", result.detail
    assert any("moved 80→20000" in change for change in result.adapted)


def test_ordinary_user_in_a_user_namespace(
    build: nginx_verify.NginxBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With unprivileged user namespaces the ordinary user gets the verbatim check too."""
    probe = (
        subprocess.run(
            [
                "setpriv",
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                "--net",
                "true",
            ],
            capture_output=True,
            check=False,
        )
        if os.geteuid() == 0 and shutil.which("setpriv")
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("no unprivileged user namespaces here")
    _as_nobody(build, monkeypatch)
    result = nginx_verify.check_config(
        "edge/nginx.conf", render(GATEWAY), build, isolation="namespace"
    )
    assert result.status == "passed", result.detail
    assert "private /etc/hosts" in result.detail


# --- adapting to the installed build -----------------------------------------------------------

STREAM_ONLY: dict[str, Any] = {
    "name": "tcp",
    "tiers": [
        {
            "kind": "nginx_stream",
            "name": "l4",
            "version": "1.22.0",
            "instances": [{"name": "l4-1", "address": "10.0.0.1"}],
            "listen_port": 9000,
        },
        {"kind": "kubernetes", "name": "k8s", "version": "1.33", "platform": "gke"},
    ],
    "services": [{"name": "db", "namespace": "data", "replicas": 1, "app": {"preset": "go"}}],
}


def at_installed(data: dict[str, Any], build: nginx_verify.NginxBuild) -> dict[str, Any]:
    """The spec with every nginx tier declaring the installed version (so a pass is proof)."""
    assert build.version is not None
    data = copy.deepcopy(data)
    for tier in data["tiers"]:
        if tier["kind"] in ("nginx_http", "nginx_stream"):
            tier["version"] = str(build.version)
    return data


def _require_dynamic_stream(build: nginx_verify.NginxBuild) -> None:
    if build.stream != "dynamic":
        pytest.skip(f"the installed nginx has stream {build.stream}")


def test_stream_config_for_nginx_org_is_adapted_on_a_dynamic_build(
    build: nginx_verify.NginxBuild,
) -> None:
    """An nginx.org build has stream built in, so its config has no load_module and fails as
    written on Debian's nginx (`unknown directive "stream"`). The check adds the line to run,
    and says "passed after adapting", never plain "passed"."""
    _require_dynamic_stream(build)
    files = render(at_installed(STREAM_ONLY, build))
    assert "build nginx.org" in files["l4/nginx.conf"].splitlines()[1]
    result = only(nginx_verify.verify(files, None))
    assert (result.status, result.label, result.proven) == ("passed", "adapted", False)
    (change,) = result.adapted
    assert change.startswith(f"added `load_module {build.modules_path}/ngx_stream_module.so;`")
    assert "written for an nginx.org build" in change and "set build: debian" in change
    assert result.explanation().startswith("passed after adapting: added `load_module")


def test_stream_config_as_written_fails_on_a_dynamic_build_without_the_adaptation(
    build: nginx_verify.NginxBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the adaptation hides: the nginx.org file as written is rejected by Debian's nginx."""
    _require_dynamic_stream(build)
    monkeypatch.setattr(nginx_harness, "load_stream_module", lambda text, build, adapted, declared_build: (text, None))
    result = only(nginx_verify.verify(render(at_installed(STREAM_ONLY, build)), None))
    assert result.status == "failed"
    assert 'unknown directive "stream"' in result.detail


@pytest.mark.parametrize("spelling", [{"build": "debian"}, {"load_module": True}])
def test_stream_config_for_debian_is_proven_as_written(
    build: nginx_verify.NginxBuild, spelling: dict[str, Any]
) -> None:
    """build: debian renders Debian's load_module line; on Debian's nginx of the declared
    version the file passes exactly as written: the only verdict that is proof."""
    _require_dynamic_stream(build)
    data = at_installed(STREAM_ONLY, build)
    data["tiers"][0].update(spelling)
    files = render(data)
    assert "load_module /usr/lib/nginx/modules/ngx_stream_module.so;" in files["l4/nginx.conf"]
    result = only(nginx_verify.verify(files, None))
    assert (result.status, result.label, result.proven) == ("passed", "passed", True), result
    assert result.adapted == () and result.tested_on is None
    assert not result.explanation().startswith(("passed after", "proven on", "not provable"))


def test_debian_module_path_other_than_the_installed_one_is_an_adaptation(
    build: nginx_verify.NginxBuild,
) -> None:
    _require_dynamic_stream(build)
    data = at_installed(STREAM_ONLY, build)
    data["tiers"][0].update(build="debian", stream_module_path="/opt/nginx/ngx_stream_module.so")
    files = render(data)
    assert "load_module /opt/nginx/ngx_stream_module.so;" in files["l4/nginx.conf"]
    result = only(nginx_verify.verify(files, None))
    assert result.label == "adapted"
    assert result.adapted == (
        (f"loaded the stream module from {build.modules_path}/ngx_stream_module.so instead of "
        "/opt/nginx/ngx_stream_module.so (the installed nginx's --modules-path)"),
    )


def test_a_different_version_passes_but_is_not_proof(build: nginx_verify.NginxBuild) -> None:
    assert build.version is not None
    declared = "1.20.2" if build.version != Version("1.20.2") else "1.21.6"
    data = copy.deepcopy(GATEWAY)
    data["tiers"][0]["version"] = declared
    result = only(nginx_verify.verify(render(data), None))
    assert (result.status, result.label, result.proven) == ("passed", "unproven", False)
    assert (result.tested_on, result.declared) == (f"nginx {build.version}", f"nginx {declared}")
    assert result.explanation().startswith(
        f"proven on nginx {build.version}, not on declared nginx {declared}"
    )


def test_the_declared_version_comes_from_the_render_not_from_the_comment(
    build: nginx_verify.NginxBuild,
) -> None:
    """verify reads what the render recorded (`RenderedFiles.targets`): editing the
    `# lbgen-target:` comment to claim the installed version does not make a pass proof."""
    assert build.version is not None
    declared = "1.20.2" if build.version != Version("1.20.2") else "1.21.6"
    data = copy.deepcopy(GATEWAY)
    data["tiers"][0]["version"] = declared
    files = render(data)
    conf = files["edge/nginx.conf"]
    assert f"# lbgen-target: nginx {declared} " in conf
    files["edge/nginx.conf"] = conf.replace(f"nginx {declared} ", f"nginx {build.version} ", 1)
    result = only(nginx_verify.verify(files, None))
    assert (result.tested_on, result.declared) == (f"nginx {build.version}", f"nginx {declared}")
    # A mapping without recorded targets (not made by lbgen's render) declares nothing.
    plain = only(nginx_verify.verify(dict(files), None))
    assert plain.status == "passed" and plain.declared is None


def test_the_declared_version_passing_is_proof(build: nginx_verify.NginxBuild) -> None:
    result = only(nginx_verify.verify(render(at_installed(GATEWAY, build)), None))
    assert result.status == "passed", result.detail
    assert result.proven and result.label == "passed"


def test_directives_newer_than_the_installed_nginx_are_not_provable(
    build: nginx_verify.NginxBuild,
) -> None:
    """A config right for nginx 1.30 (http2 on) is rejected by an older nginx: that proves
    nothing about the file, so it is "not provable here", not a failure."""
    assert build.version is not None
    if build.version.at_least("1.25.1"):
        pytest.skip(f"nginx {build.version} knows `http2 on`")
    data = copy.deepcopy(GATEWAY)
    data["tiers"][0].update(version="1.30.0", listen=[{"port": 8080, "http2": True}])
    result = only(nginx_verify.verify(render(data), None))
    assert (result.status, result.label, result.proven) == ("not provable", "unprovable", False)
    assert "`http2 on` needs nginx ≥ 1.25.1" in result.detail
    assert 'unknown directive "http2"' in result.detail
    assert result.explanation().startswith(
        f"not provable here (nginx {build.version}, declared nginx 1.30.0)"
    )


def test_a_newer_declared_version_does_not_excuse_a_real_error(
    build: nginx_verify.NginxBuild,
) -> None:
    """Only rejections of directives newer than the installed nginx are "not provable"; any
    other error is a failure whatever version the file declares."""
    data = copy.deepcopy(GATEWAY)
    data["tiers"][0]["version"] = "1.30.0"
    files = render(data)
    files["edge/conf.d/direct.conf"] += "bogus_directive on;\n"
    result = only(nginx_verify.verify(files, None))
    assert result.status == "failed"
    assert result.label == "failed"


def test_missing_certificates_are_replaced_for_the_test(build: nginx_verify.NginxBuild) -> None:
    """nginx -t loads the certificate files; the rendered paths exist on the target servers,
    not here, so a throwaway pair stands in and the result names the replaced paths."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    data = copy.deepcopy(GATEWAY)
    data["tiers"][0].update(
        listen=[{"port": 443, "tls": True}],
        tls={
            "certificate": "/etc/lbgen-test/none.crt",
            "certificate_key": "/etc/lbgen-test/none.key",
        },
    )
    result = only(nginx_verify.verify(render(data), None))
    assert result.status == "passed", result.detail
    assert result.label == "adapted"
    assert any("/etc/lbgen-test/none.crt, /etc/lbgen-test/none.key" in c for c in result.adapted)


def test_a_debian_file_on_a_build_with_stream_built_in_is_adapted_by_dropping_load_module() -> None:
    """nginx.org builds and the official image have stream built in: Debian's load_module line
    would fail there, so the copy drops it and the result names the change."""
    data = copy.deepcopy(STREAM_ONLY)
    data["tiers"][0]["build"] = "debian"
    text = render(data)["l4/nginx.conf"]
    static = nginx_verify.NginxBuild(
        path="/usr/sbin/nginx", version=Version("1.30.0"), stream="static",
        modules_path=Path("/etc/nginx/modules"), error_log_option=True,
    )
    adapted: list[str] = []
    copied, problem = nginx_harness.load_stream_module(text, static, adapted, "debian")
    assert problem is None
    assert "load_module" not in copied
    assert adapted == [
        ("dropped `load_module /usr/lib/nginx/modules/ngx_stream_module.so`: the installed nginx "
        "has the stream module built in, the file is written for a debian build with a dynamic "
        "module")
    ]


def test_l4_with_a_grpc_port_for_debian_is_proven_by_the_installed_nginx(
    build: nginx_verify.NginxBuild,
) -> None:
    """Two stream listeners (HTTP/1.1 and h2c to Kong < 3.6) pass nginx -t as written."""
    _require_dynamic_stream(build)
    assert build.version is not None
    data: dict[str, Any] = {
        "name": "split",
        "tiers": [
            {"kind": "nginx_stream", "name": "l4", "version": str(build.version),
             "build": "debian", "instances": [{"name": "l4-1", "address": "10.0.0.1"}],
             "listen_port": 9000, "grpc_listen_port": 9001},
            {"kind": "kong", "name": "gw", "version": "3.4",
             "instances": [{"name": "k1", "address": "10.0.1.1"}],
             "proxy_listen": [{"port": 8000}, {"port": 8001, "http2": True}]},
            {"kind": "kubernetes", "name": "k8s", "version": "1.33", "platform": "gke"},
        ],
        "services": [
            {"name": "web", "namespace": "a", "replicas": 1, "app": {"preset": "go"}},
            {"name": "rpc", "namespace": "a", "replicas": 1, "protocol": "grpc",
             "app": {"preset": "go"}, "route": {"paths": ["/rpc.S"]}},
        ],
    }
    files = render(data)
    assert "listen 9001;" in files["l4/stream.d/split.conf"]
    result = only(nginx_verify.verify(files, None))
    assert result.proven, result
