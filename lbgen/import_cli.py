"""The `lbgen import` command (registered by lbgen.cli)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from lbgen.errors import InputError, LbgenError

EXIT_OK, EXIT_UNTRANSLATED, EXIT_USAGE = 0, 1, 2
MARK = "# imported by lbgen import"


class _WriteError(LbgenError):
    pass


def write_atomically(path: str, text: str) -> None:
    """Write `path` whole or not at all (a temporary file beside it, renamed into place);
    never replace a file lbgen import did not write (a spec edited since is kept)."""
    target = Path(path)
    if target.is_dir():
        raise _WriteError(f"{path} is a directory; -o names the spec file to write")
    if target.is_symlink() or target.exists():
        try:
            with target.open(encoding="utf-8", errors="replace") as handle:
                first = handle.readline()
        except OSError as exc:
            raise _WriteError(f"cannot read {path}: {exc.strerror}") from None
        if target.is_symlink() or not first.startswith(MARK):
            raise _WriteError(f"{path} exists and was not written by lbgen import; remove it or choose "
                              "another -o (an edited spec is never overwritten)")
    directory = target.absolute().parent
    try:
        fd, name = tempfile.mkstemp(prefix=".lbgen-import-", dir=directory)
    except OSError as exc:
        raise _WriteError(f"cannot write in {directory}: {exc.strerror}") from None
    temp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temp.chmod(0o644)
        temp.replace(target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def run_command(nginx_http: tuple[str, ...], nginx_stream: tuple[str, ...], kong: str | None,
                kong_conf: str | None, k8s: tuple[str, ...], kube_proxy: str | None, assume: tuple[str, ...],
                strict: bool, fmt: str, output: str) -> None:
    """`lbgen import` (options and help in lbgen.cli)."""
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
