"""Configs nobody here wrote: Debian's nginx configuration (tests/importer/data/, see its
SOURCE.md). The import never crashes and reports, located, what it did not translate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lbgen.importer.nginx import import_nginx_http, import_nginx_stream
from lbgen.importer.run import ImportInputs, run_import
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
