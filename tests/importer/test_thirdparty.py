"""Configs nobody here wrote: Debian's nginx configuration, crossplane's own test configurations,
public Kong declarative files (tests/importer/data/, each with its SOURCE.md). The import never
crashes: it gives a spec and reports, located, what it did not translate, or a located error."""

from __future__ import annotations

import shutil
from pathlib import Path

import crossplane
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


# --- crossplane's own test configurations and public Kong declarative files ------------------
# (tests/importer/data/crossplane/, tests/importer/data/kong-declarative/: see their SOURCE.md)

DATA = Path(__file__).parent / "data"
CROSSPLANE = DATA / "crossplane"
KONG = DATA / "kong-declarative"
A_KONG_SERVICE = KONG / "deck" / "sync" / "001-create-a-service" / "kong.yaml"
SKIP_REASONS = ("unsupported", "ambiguous", "out-of-scope")
# read as structure only: the blocks that hold what is imported, and `events` (worker tuning)
SILENT = {"http", "include", "events"}


def _files(root: Path, suffix: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(f"*{suffix}"))


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


def _directives(path: Path) -> list[tuple[int, list[int], str]]:
    """(line, the lines of its enclosing blocks, name) of every directive of one file."""
    payload = crossplane.parse(str(path), single=True, check_ctx=False, check_args=False)
    out: list[tuple[int, list[int], str]] = []

    def walk(items: list[dict[str, object]], outer: list[int]) -> None:
        for item in items:
            line, name = int(str(item["line"])), str(item["directive"])
            out.append((line, outer, name))
            block = item.get("block")
            if isinstance(block, list) and name != "events":
                walk(block, [*outer, line])

    walk(payload["config"][0]["parsed"], [])
    return out


@pytest.mark.parametrize("reader", ["nginx_http", "nginx_stream"])
@pytest.mark.parametrize("name", _files(CROSSPLANE, ".conf"))
def test_every_crossplane_config_imports_or_is_a_located_error(
        name: str, reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CROSSPLANE)

    def inputs(kong: str | None = None) -> ImportInputs:
        if reader == "nginx_http":
            return ImportInputs(nginx_http=[name], kong=kong)
        return ImportInputs(nginx_stream=[name], kong=kong)

    alone = _import(inputs())
    # with a Kong service beside it the spec has a service, so a config that parses gives a
    # result, and every directive of it is accounted for: imported, or reported as skipped
    outcome = _import(inputs(str(A_KONG_SERVICE)))
    if isinstance(outcome, InputError):
        assert isinstance(alone, InputError)
        assert [str(p.location) for p in outcome.problems] == [str(p.location) for p in alone.problems]
        return
    told = {(s.origin.file, s.origin.line) for s in outcome.skipped}
    told |= {(v.origin.file, v.origin.line) for v in outcome.origins.values() if v.origin is not None}
    untold = [(line, directive) for line, outer, directive in _directives(CROSSPLANE / name)
              if directive not in SILENT and directive != "#"
              and not any((name, at) in told for at in [line, *outer])]
    assert untold == [], f"{name}: neither imported nor reported"


def test_crossplane_configs_nginx_refuses_are_errors_at_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CROSSPLANE)

    def problems(path: str) -> list[str]:
        outcome = _import(ImportInputs(nginx_http=[path], kong=str(A_KONG_SERVICE)))
        assert isinstance(outcome, InputError)
        return [f"{p.location.file}:{p.location.line}: {p.message}" for p in outcome.problems]

    # crossplane alone (without its arguments check) takes the `}` for the missing `;` and
    # nests the next location inside the broken one
    assert problems("missing-semicolon/broken-above.conf") == [
        ('missing-semicolon/broken-above.conf:4: cannot parse the nginx config: directive "proxy_pass" '
        'is not terminated by ";"')]
    assert problems("missing-semicolon/broken-below.conf")[0].startswith("missing-semicolon/broken-below.conf:7: ")
    assert problems("bad-args/nginx.conf") == [
        'bad-args/nginx.conf:1: cannot parse the nginx config: invalid number of arguments in "user" directive']
    # server1.conf's `include locations/*.conf` matches a file that is not nginx syntax
    assert problems("includes-globbed/servers/server1.conf") == [
        ("includes-globbed/servers/locations/not-included.conf:2: cannot parse the nginx config: "
        'unexpected end of file, expecting ";" or "}"')]


def test_crossplane_config_without_a_proxy_is_nothing_to_import_at_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CROSSPLANE)
    outcome = _import(ImportInputs(nginx_http=["simple/nginx.conf"]))
    assert isinstance(outcome, InputError)
    [problem] = outcome.problems
    assert str(problem.location) == "simple/nginx.conf:1:1"
    assert problem.message.startswith("nothing to import: no service was found")
    assert "simple/nginx.conf:6:5: server" in problem.message  # the first thing left out


def test_crossplane_lua_and_includes_are_reported_where_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CROSSPLANE)
    outcome = _import(ImportInputs(nginx_http=["lua-block-simple/nginx.conf", "includes-regular/conf.d/server.conf",
                                               "includes-globbed/locations/location2.conf"],
                                   kong=str(A_KONG_SERVICE)))
    assert isinstance(outcome, ImportResult)
    skipped = {(str(s.origin), s.reason, s.item.split()[0]) for s in outcome.skipped}
    assert ("lua-block-simple/nginx.conf:2:5", "out-of-scope", "init_by_lua_block") in skipped
    assert ("lua-block-simple/nginx.conf:31:5", "out-of-scope", "upstream") in skipped  # used by no location
    assert ("lua-block-simple/nginx.conf:14:5", "out-of-scope", "server") in skipped  # proxies nothing
    assert ("includes-regular/conf.d/server.conf:4:5", "ambiguous", "include") in skipped  # foo.conf is not here
    # a snippet for a server {}, given on its own
    assert ("includes-globbed/locations/location2.conf:1:1", "ambiguous", "location") in skipped


@pytest.mark.parametrize("name", _files(KONG, ".yaml"))
def test_every_kong_declarative_file_imports_or_is_a_located_error(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(KONG)
    outcome = _import(ImportInputs(kong=name))
    if isinstance(outcome, ImportResult):
        assert outcome.loaded.spec.services
        assert all(s.origin.file == name for s in outcome.skipped)


def test_decks_service_timeouts_are_imported_at_their_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(KONG)
    name = "deck/sync/010-create-route-with-service-name-reference/kong3x.yaml"
    outcome = _import(ImportInputs(kong=name))
    assert isinstance(outcome, ImportResult)
    [service] = outcome.loaded.spec.services
    assert service.name == "svc1"
    assert service.kong is not None and service.kong.retries == 5
    assert service.kong.timeouts.connect.ms == 60_000  # connect_timeout: 60000 (ms)
    assert service.kong.timeouts.read.ms == 60_000
    where = {path: str(value.origin) for path, value in outcome.origins.items() if value.origin is not None}
    assert where["services[0].kong.timeouts.connect"] == f"{name}:3:20"
    assert where["services[0].kong.timeouts.read"] == f"{name}:9:17"
    assert where["services[0].route.paths[0]"] == f"{name}:16:5"  # a top-level route naming its service
    skipped = {(str(s.origin), s.item) for s in outcome.skipped}
    assert any(origin == f"{name}:14:3" and item.startswith("route.https_redirect_status_code")
               for origin, item in skipped)


def test_deck_file_of_upstreams_only_is_nothing_to_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(KONG)
    name = "deck/sync/004-create-upstream-and-target/kong3x.yaml"
    outcome = _import(ImportInputs(kong=name))
    assert isinstance(outcome, InputError)
    [problem] = outcome.problems
    assert str(problem.location) == f"{name}:1:1"
    assert f"{name}:3:3: upstream upstream1" in problem.message


def test_deck_vaults_and_service_path_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(KONG)
    name = "deck/sync/012-vaults/kong3x.yaml"
    outcome = _import(ImportInputs(kong=name))
    assert isinstance(outcome, ImportResult)
    skipped = {str(s.origin): s.item for s in outcome.skipped}
    assert skipped[f"{name}:2:1"] == "vaults"
    assert skipped[f"{name}:12:9"].startswith("service.path")


@pytest.mark.parametrize(("args", "code"), [
    (["--nginx-http", "crossplane/missing-semicolon/broken-above.conf"], 2),
    (["--nginx-http", "crossplane/messy/nginx.conf"], 2),
    (["--nginx-http", "crossplane/lua-block-tricky/nginx.conf",
      "--kong", "kong-declarative/deck/dump/008-sanitizer/kong.yaml"], 0),
    (["--kong", "kong-declarative/kong/kong_yml.yaml"], 2),
])
def test_cli_on_third_party_files(args: list[str], code: int, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    result = CliRunner().invoke(cli, ["import", *args, "-o", str(tmp_path / "topology.yaml")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert result.exit_code == code, output
    assert (tmp_path / "topology.yaml").exists() == (code == 0)
