"""Configs lbgen did not render: Debian's nginx configuration (tests/importer/data/, with its
SOURCE.md) and hand-written configs of the shapes that trip parsers (a missing `;`, a file that
ends inside a directive, Lua blocks, includes that are not there, snippets outside their block,
decK files with top-level routes, vaults or only upstreams). The import never crashes: it gives
a spec and reports, located, what it did not translate, or a located error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.cli import cli
from lbgen.errors import InputError
from lbgen.importer.nginx import import_nginx_http, import_nginx_stream
from lbgen.importer.run import ImportInputs, ImportResult, run_import
from lbgen.importer.sources import SourceText

DEBIAN = Path(__file__).parent / "data" / "debian-nginx-1.22.1"


@pytest.fixture
def etc_nginx(tmp_path: Path) -> Path:
    """The Debian tree with its absolute /etc/nginx/ includes pointing at the copy."""
    root = tmp_path / "nginx"
    shutil.copytree(DEBIAN, root)
    for path in root.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace("/etc/nginx/", f"{root}/"))
    return root


@pytest.mark.parametrize("name", sorted(str(p.relative_to(DEBIAN)) for p in DEBIAN.rglob("*")
                                        if p.is_file() and p.suffix != ".md"))
def test_every_debian_file_reads_without_crashing(etc_nginx: Path, name: str) -> None:
    for reader in (import_nginx_http, import_nginx_stream):
        hop = reader([str(etc_nginx / name)], SourceText(), str)
        for skipped in hop.skipped:
            assert skipped.origin.line >= 1 and skipped.reason in ("unsupported", "ambiguous", "out-of-scope")


def test_debian_nginx_conf_with_a_proxy_site(etc_nginx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (etc_nginx / "conf.d").mkdir(exist_ok=True)
    (etc_nginx / "conf.d" / "shop.conf").write_text(
        "upstream kong { server 10.30.0.11:8000; keepalive 16; }\n"
        "server {\n    listen 8080;\n    location /api/ {\n        proxy_pass http://kong;\n"
        "        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n"
        "        include proxy_params;\n    }\n}\n")
    manifest = tmp_path / "svc.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: web}\n"
                        "spec: {selector: {app: api}, ports: [{port: 80, targetPort: 8000}]}\n")
    monkeypatch.chdir(etc_nginx)
    kong = tmp_path / "kong.conf"
    kong.write_text("proxy_listen = 0.0.0.0:8000\n")
    result = run_import(ImportInputs(nginx_http=["nginx.conf"], kong_conf=str(kong), k8s=[str(manifest)],
                                     assume=["app.preset=uvicorn"]))
    edge = result.loaded.spec.edge
    assert edge is not None
    assert edge.upstream_keepalive.connections == 16
    assert [listener.port for listener in edge.listen] == [8080]  # the default site proxies nothing
    assert edge.forwarded_headers  # proxy_params sends X-Forwarded-For
    assert str(result.origins["tiers[0].upstream_keepalive.connections"].origin) == "conf.d/shop.conf:1:51"
    skipped = {(str(s.origin), s.item) for s in result.skipped}
    assert ("nginx.conf:1:1", "user www-data") in skipped
    assert ("nginx.conf:33:2", "ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3") in skipped
    assert any(item.startswith("gzip") for _, item in skipped)


# --- hand-written configs of the shapes that trip parsers -------------------------------------

SKIP_REASONS = ("unsupported", "ambiguous", "out-of-scope")
A_KONG_SERVICE = """_format_version: "3.0"
services:
  - name: orders
    host: orders.shop.svc.cluster.local
    port: 80
    routes:
      - name: orders
        paths: [/orders]
"""


def _assert_located(error: InputError) -> None:
    """Every problem names a file that is there (an input, or a file it includes) and a line in it."""
    assert error.problems
    for problem in error.problems:
        assert Path(problem.location.file).is_file(), problem
        assert problem.location.line >= 1 and problem.location.column >= 1, problem


def _import(inputs: ImportInputs) -> ImportResult | InputError:
    """The import's outcome: a result or a located InputError; anything else fails the test."""
    try:
        result = run_import(inputs)
    except InputError as error:
        _assert_located(error)
        return error
    for skipped in result.skipped:
        assert skipped.origin.line >= 1 and skipped.reason in SKIP_REASONS, skipped
    return result


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kong.yaml").write_text(A_KONG_SERVICE)
    return tmp_path


def _write(root: Path, name: str, text: str) -> str:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)
    return name


def _problems(path: str) -> list[str]:
    outcome = _import(ImportInputs(nginx_http=[path], kong="kong.yaml"))
    assert isinstance(outcome, InputError)
    return [f"{p.location.file}:{p.location.line}: {p.message}" for p in outcome.problems]


def test_nginx_syntax_errors_are_errors_at_the_line_as_nginx_t_says(here: Path) -> None:
    # Without crossplane's argument check the `}` would end `proxy_pass` and the next location
    # would nest inside the broken one.
    _write(here, "semicolon.conf", "http {\n  server {\n    location / {\n      proxy_pass http://a\n    }\n"
                                   "    location /b { proxy_pass http://b; }\n  }\n}\n")
    assert _problems("semicolon.conf") == [
        'semicolon.conf:4: cannot parse the nginx config: directive "proxy_pass" is not terminated by ";"']
    _write(here, "args.conf", "user;\nhttp {}\n")
    assert _problems("args.conf") == [
        'args.conf:1: cannot parse the nginx config: invalid number of arguments in "user" directive']
    _write(here, "truncated.conf", "http {\n  server {\n    listen 80\n")
    [problem] = _problems("truncated.conf")
    assert problem.startswith("truncated.conf:3: cannot parse the nginx config: unexpected end of file")


def test_a_config_without_a_proxy_is_nothing_to_import_at_the_file(here: Path) -> None:
    _write(here, "static.conf", "events {}\nhttp {\n  server {\n    listen 80;\n    root /srv;\n  }\n}\n")
    outcome = _import(ImportInputs(nginx_http=["static.conf"]))
    assert isinstance(outcome, InputError)
    [problem] = outcome.problems
    assert str(problem.location) == "static.conf:1:1"
    assert problem.message.startswith("nothing to import: no service was found")
    assert "static.conf:3:3: server" in problem.message  # the first thing left out


def test_lua_unused_blocks_missing_includes_and_stray_snippets_are_reported(here: Path) -> None:
    _write(here, "lua.conf", "http {\n"
                             "  init_by_lua_block { print(\"}\") }\n"
                             "  upstream unused { server 10.0.0.9:80; }\n"
                             "  upstream kong { server 10.30.0.11:8000; }\n"
                             "  server {\n    listen 8081;\n    return 204;\n  }\n"
                             "  server {\n    listen 80;\n    include extra/*.conf;\n    include missing.conf;\n"
                             "    location / { proxy_pass http://kong; }\n  }\n}\n")
    _write(here, "snippet.conf", "location /x {\n  proxy_pass http://kong;\n}\n")
    outcome = _import(ImportInputs(nginx_http=["lua.conf", "snippet.conf"], kong="kong.yaml"))
    assert isinstance(outcome, ImportResult)
    skipped = {(str(s.origin), s.reason, s.item.split()[0]) for s in outcome.skipped}
    assert ("lua.conf:2:3", "out-of-scope", "init_by_lua_block") in skipped
    assert ("lua.conf:3:3", "out-of-scope", "upstream") in skipped  # used by no location
    assert ("lua.conf:5:3", "out-of-scope", "server") in skipped  # proxies nothing
    assert ("lua.conf:12:5", "ambiguous", "include") in skipped  # missing.conf is not here
    assert ("snippet.conf:1:1", "ambiguous", "location") in skipped  # a snippet for a server {}
    assert str(outcome.origins["tiers[0].listen[0].port"].origin) == "lua.conf:10:12"


DECK_TOP_LEVEL_ROUTE = """_format_version: "3.0"
services:
- connect_timeout: 60000
  host: orders.shop.svc.cluster.local
  name: orders
  port: 80
  protocol: http
  read_timeout: 30000
  retries: 3
routes:
- name: orders
  https_redirect_status_code: 301
  paths:
  - /orders
  service:
    name: orders
"""


def test_a_deck_file_with_a_top_level_route_imports_at_its_lines(here: Path) -> None:
    _write(here, "deck.yaml", DECK_TOP_LEVEL_ROUTE)
    outcome = _import(ImportInputs(kong="deck.yaml"))
    assert isinstance(outcome, ImportResult)
    [service] = outcome.loaded.spec.services
    assert service.kong is not None and service.kong.retries == 3
    assert service.kong.timeouts.connect.ms == 60_000 and service.kong.timeouts.read.ms == 30_000
    where = {path: str(value.origin) for path, value in outcome.origins.items() if value.origin is not None}
    assert where["services[0].kong.timeouts.connect"] == "deck.yaml:3:20"
    assert where["services[0].kong.timeouts.read"] == "deck.yaml:8:17"
    assert where["services[0].route.paths[0]"] == "deck.yaml:14:5"  # the route names its service
    assert any(str(s.origin) == "deck.yaml:12:3" and s.item.startswith("route.https_redirect_status_code")
               for s in outcome.skipped)


def test_a_deck_file_of_upstreams_only_is_nothing_to_import(here: Path) -> None:
    _write(here, "upstreams.yaml", '_format_version: "3.0"\nupstreams:\n  - name: up1\n'
                                   "    targets:\n      - target: 10.0.0.1:80\n")
    outcome = _import(ImportInputs(kong="upstreams.yaml"))
    assert isinstance(outcome, InputError)
    [problem] = outcome.problems
    assert str(problem.location) == "upstreams.yaml:1:1"
    assert "upstreams.yaml:3:5: upstream up1" in problem.message


def test_deck_vaults_and_a_service_path_are_reported(here: Path) -> None:
    _write(here, "vaults.yaml", '_format_version: "3.0"\nvaults:\n- name: env\n  prefix: my-env\n'
                                "services:\n- name: orders\n  host: orders.shop.svc.cluster.local\n"
                                "  path: /status\n  routes:\n  - name: orders\n    paths: [/orders]\n")
    outcome = _import(ImportInputs(kong="vaults.yaml"))
    assert isinstance(outcome, ImportResult)
    skipped = {str(s.origin): s.item for s in outcome.skipped}
    assert skipped["vaults.yaml:2:1"] == "vaults"
    assert skipped["vaults.yaml:8:9"].startswith("service.path")


@pytest.mark.parametrize(("files", "code"), [
    ({"a.conf": "http {\n  server {\n    location / {\n      proxy_pass http://a\n    }\n  }\n}\n"}, 2),
    ({"deck.yaml": DECK_TOP_LEVEL_ROUTE}, 0),
    ({"deck.yaml": "services: [oops\n"}, 2),
])
def test_cli_exit_codes_and_no_traceback(files: dict[str, str], code: int, here: Path) -> None:
    args: list[str] = []
    for name, text in files.items():
        _write(here, name, text)
        args += ["--nginx-http" if name.endswith(".conf") else "--kong", name]
    result = CliRunner().invoke(cli, ["import", *args, "-o", "topology.yaml"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert result.exit_code == code, output
    assert (here / "topology.yaml").exists() == (code == 0)
