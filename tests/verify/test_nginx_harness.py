"""lbgen.nginx_harness: the one place `render --verify` and `lbgen lab` make rendered nginx
files runnable; both callers use these functions, not copies."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from lbgen import nginx_harness as harness
from lbgen.lab import setup as lab_setup
from lbgen.verify import nginx as nginx_verify


def test_listens_without_an_address_are_bound_to_the_instance_address() -> None:
    text = "stream {\n  server {\n    listen 9000 proxy_protocol;\n    listen 10.0.0.1:9001;\n  }\n}\n"
    assert harness.bind_listens(text, "10.20.0.11") == (
        "stream {\n  server {\n    listen 10.20.0.11:9000 proxy_protocol;\n    listen 10.0.0.1:9001;\n  }\n}\n")


def test_http_gets_scratch_paths_only_where_the_config_sets_none(tmp_path: Path) -> None:
    text = "http {\n    proxy_temp_path /var/cache/p;\n}\n"
    out = harness.harness_http(text, tmp_path)
    assert f"access_log {tmp_path}/access.log;" in out
    assert f"client_body_temp_path {tmp_path}/temp/client_body;" in out
    assert "proxy_temp_path /var/cache/p;" in out and f"{tmp_path}/temp/proxy" not in out


def test_tier_files_are_relative_to_the_tier_and_stay_inside_it() -> None:
    files = {"edge/nginx.conf": "a", "edge/conf.d/x.conf": "b", "l4/nginx.conf": "c"}
    assert harness.tier_files(files, PurePosixPath("edge")) == {
        PurePosixPath("nginx.conf"): "a", PurePosixPath("conf.d/x.conf"): "b"}


def test_serve_argv_keeps_prefix_pid_and_logs_in_the_run_directory(tmp_path: Path) -> None:
    build = harness.NginxBuild("/usr/sbin/nginx", None, "dynamic", Path("/usr/lib/nginx/modules"), True)
    argv = harness.serve_argv(build, tmp_path)
    assert argv[:5] == ("/usr/sbin/nginx", "-p", f"{tmp_path}/", "-c", f"{tmp_path}/nginx.conf")
    assert f"pid {tmp_path}/nginx.pid;" in argv[-1] and "daemon off;" in argv[-1]


def test_verify_and_lab_share_the_harness() -> None:
    # One nginx harness: verify calls it by module (tests patch it there), the lab by name.
    assert nginx_verify.nginx_harness is harness
    assert lab_setup.harness_http is harness.harness_http
    assert lab_setup.serve_argv is harness.serve_argv
