"""The `lbgen import` command (registered by lbgen.cli)."""

from __future__ import annotations

import os
import sys
import tempfile

import click

from lbgen.errors import InputError, LbgenError

EXIT_OK, EXIT_UNTRANSLATED, EXIT_USAGE = 0, 1, 2
MARK = "# imported by lbgen import"


class _WriteError(LbgenError):
    pass


def write_atomically(path: str, text: str) -> None:
    """Write `path` whole or not at all; never replace a file lbgen import did not write."""
    if os.path.isdir(path):
        raise _WriteError(f"{path} is a directory; -o names the spec file to write")
    if os.path.lexists(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                first = handle.readline()
        except OSError as exc:
            raise _WriteError(f"cannot read {path}: {exc.strerror}") from None
        if not first.startswith(MARK):
            raise _WriteError(f"{path} exists and was not written by lbgen import; remove it or choose "
                              "another -o (an edited spec is never overwritten)")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temp = tempfile.mkstemp(prefix=".lbgen-import-", dir=directory)
    except OSError as exc:
        raise _WriteError(f"cannot write in {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


@click.command("import")
@click.option("--nginx-http", "nginx_http", multiple=True, metavar="FILE",
              help="nginx.conf (or an included file) of the L7 edge; includes are followed.")
@click.option("--nginx-stream", "nginx_stream", multiple=True, metavar="FILE",
              help="nginx config with the L4 stream {} block (or a snippet included in it).")
@click.option("--kong", "kong", metavar="FILE", help="Kong declarative config (kong.yaml) or decK state.")
@click.option("--kong-conf", "kong_conf", metavar="FILE", help="kong.conf.")
@click.option("--k8s", "k8s", multiple=True, metavar="FILE|DIR",
              help="Service, HPA, PDB and Deployment manifests (a directory: every YAML file under it).")
@click.option("--kube-proxy", "kube_proxy", metavar="FILE", help="The kube-proxy ConfigMap.")
@click.option("--assume", "assume", multiple=True, metavar="KEY=VALUE",
              help="What the files cannot tell, e.g. app.preset=uvicorn, platform=gke, kong.location=outside, "
              "edge.instances=10.0.0.1,10.0.0.2.")
@click.option("--strict", is_flag=True, help="Exit 1 when anything was not translated or was assumed by default.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Format of the report.")
@click.option("-o", "--output", "output", required=True, metavar="FILE",
              help="The spec to write (`-`: standard output; the report then goes to standard error).")
def import_command(nginx_http: tuple[str, ...], nginx_stream: tuple[str, ...], kong: str | None,
                   kong_conf: str | None, k8s: tuple[str, ...], kube_proxy: str | None, assume: tuple[str, ...],
                   strict: bool, fmt: str, output: str) -> None:
    """Turn existing per-hop configs into a spec, and report what was not translated.

    Tiers are linked by addresses: an edge upstream's servers are the L4 listeners, the L4
    upstream's servers are Kong's proxy listeners, Kong's targets are Services (ClusterIP
    name, headless name or pod IPs). Every imported value carries a comment with its
    file:line:column; what the files cannot tell (the app server, the platform, where Kong
    runs) comes from --assume or is a default marked `assumed`. The spec is written only when
    it loads as `lbgen validate` loads it. Exit 0 with a report, 1 with --strict when anything
    was not translated or assumed by default, 2 on unreadable or invalid input.

    \b
    Example:
      lbgen import --nginx-http edge/nginx.conf --nginx-stream l4/nginx.conf \\
        --kong gateway/kong.yaml --kong-conf gateway/kong.conf --k8s k8s/ \\
        --assume app.preset=uvicorn --assume platform=gke -o topology.yaml
    """
    from lbgen.importer.report import to_json, to_text
    from lbgen.importer.run import ImportInputs, run_import
    from lbgen.report import problems_to_text

    inputs = ImportInputs(list(nginx_http), list(nginx_stream), kong, kong_conf, list(k8s), kube_proxy, list(assume))
    name = "<stdout>" if output == "-" else output
    try:
        result = run_import(inputs, name)
        if output != "-":
            write_atomically(output, result.text)
    except InputError as exc:
        click.echo(problems_to_text(exc.problems, "nothing was written"), err=True, nl=False)
        raise click.exceptions.Exit(EXIT_USAGE) from None
    except (LbgenError, OSError) as exc:
        click.echo(f"lbgen: error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from None
    report = to_json(result, output) if fmt == "json" else to_text(result, name)
    if output == "-":
        sys.stdout.write(result.text)
        click.echo(report, err=True, nl=False)
    else:
        click.echo(report, nl=False)
    if strict and (result.skipped or result.guessed):
        raise click.exceptions.Exit(EXIT_UNTRANSLATED)
