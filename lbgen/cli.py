"""The `lbgen` command line: render, validate, rules, explain, schema.

Exit codes: 0 ok; 1 findings at or above the threshold, failed checks, or stale output
(`render --check`); 2 usage or input error. User mistakes never show a traceback: input
errors are printed as `file:line:col: error: …` with a hint.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import NoReturn, ParamSpec, TypeVar

import click

from lbgen import __version__
from lbgen.errors import InputError, LbgenError, Problem, UnknownRuleError
from lbgen.io.loader import LoadedSpec
from lbgen.report import (
    FORMATS,
    explain,
    merge_reports,
    problems_to_text,
    report_to_json,
    report_to_sarif,
    report_to_text,
    rules_to_json,
    rules_to_text,
    spec_json_schema_text,
)
from lbgen.rules import ALL_RULES, CheckReport, Severity, check_spec, get_rule, select_rules

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

P = ParamSpec("P")
R = TypeVar("R")

_SPEC = click.Path(exists=True, dir_okay=False, path_type=Path)


def _exit(code: int) -> NoReturn:
    raise click.exceptions.Exit(code)


def _error(message: str) -> None:
    click.echo(f"lbgen: error: {message}", err=True)


def _user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn lbgen's own errors (refused writes, unknown rules, …) into exit code 2."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            click.echo(problems_to_text(exc.problems), err=True, nl=False)
            _exit(EXIT_USAGE)
        except LbgenError as exc:
            _error(str(exc))
            _exit(EXIT_USAGE)

    return wrapper


def _load(spec: Path) -> LoadedSpec:
    """Load the spec; on input errors print them on stderr and exit 2."""
    import lbgen

    try:
        return lbgen.load(spec)
    except InputError as exc:
        click.echo(problems_to_text(exc.problems, "nothing was written"), err=True, nl=False)
        _exit(EXIT_USAGE)


def _codes(values: Sequence[str]) -> list[str]:
    """`--select LB1,LB201 --select keepalive-name` → ["LB1", "LB201", "keepalive-name"]."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _check_refs(refs: list[str], option: str) -> None:
    try:
        select_rules(ALL_RULES, refs)
    except UnknownRuleError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Exit codes: 0 ok, 1 findings or failed checks, 2 usage or input error.",
)
@click.version_option(__version__, "-V", "--version", prog_name="lbgen")
def cli() -> None:
    """lbgen: one typed spec of a multi-hop load-balancing path.

    It renders every hop's configuration (edge nginx, nginx stream, Kong, Kubernetes)
    from one spec, so that the hops agree, and checks cross-hop rules that no single
    product's linter can see.
    """


@cli.command()
@click.argument("spec", type=_SPEC)
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory, created if missing (its parent must exist). A directory lbgen "
    "did not generate is not replaced without --force.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Run the real consumers available here (nginx -t, Kong and Kubernetes schemas) "
    "over the output and print which checks ran, failed or were skipped; nothing is written "
    "when one fails.",
)
@click.option(
    "--schemas",
    "schemas_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="With --verify: directory of the Kong constraint and KubeProxyConfiguration schemas.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write even when error-level findings remain or verification fails, and overwrite "
    "a directory lbgen did not generate.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 and print a unified diff when the output directory differs "
    "from what would be rendered (for CI and pre-commit).",
)
@click.option(
    "--rollout-from",
    "rollout_from",
    type=_SPEC,
    metavar="OLD",
    help="Also print the order in which to deploy the hops when moving from the spec OLD to "
    "SPEC, so that every caller's idle timeout stays below its callee's during the change.",
)
@_user_errors
def render(
    spec: Path, out_dir: Path, verify: bool, schemas_dir: Path | None, force: bool, check: bool,
    rollout_from: Path | None = None,
) -> None:
    """Render every hop's configuration from SPEC into a directory.

    The cross-hop rules run first: when an error-level finding remains, the findings
    are printed and nothing is written (unless --force).

    \b
    Examples:
      lbgen render examples/seed.yaml -o out
      lbgen render examples/seed.yaml -o out --verify --schemas ../shared/schemas
      lbgen render examples/seed.yaml -o out --check
      lbgen render new.yaml -o out --rollout-from old.yaml
    """
    import lbgen

    if schemas_dir is not None and not verify:
        raise click.UsageError("--schemas only applies together with --verify")
    loaded = _load(spec)
    report = check_spec(loaded)
    if report.findings:
        click.echo(report_to_text(report), err=True, nl=False)
    if report.fails(Severity.ERROR) and not force:
        _error(
            "error-level findings remain, so nothing was written; fix them, suppress them "
            "in the spec with a reason, or pass --force"
        )
        _exit(EXIT_FINDINGS)

    files = lbgen.render(loaded)
    if rollout_from is not None:
        from lbgen.rollout import plan_text, rollout_plan

        plan = rollout_plan(_load(rollout_from).spec, loaded.spec)
        click.echo(plan_text(str(rollout_from), str(spec), plan), nl=False)

    verify_failed = False
    if verify:
        from lbgen.verify import verify_files

        for result in verify_files(files, schemas_dir):
            detail = result.detail.strip().replace("\n", "\n    ")
            click.echo(f"{result.status:<8} {result.name}" + (f"  {detail}" if detail else ""))
            verify_failed = verify_failed or result.status == "failed"

    from lbgen import output

    if check:
        diff = output.diff_tree(files, out_dir)
        if diff:
            click.echo(diff, nl=not diff.endswith("\n"))
            _error(f"{out_dir} is out of date: run `lbgen render {spec} -o {out_dir}`")
            _exit(EXIT_FINDINGS)
        click.echo(f"{out_dir} is up to date ({len(files)} files)")
        _exit(EXIT_FINDINGS if verify_failed else EXIT_OK)

    if verify_failed and not force:
        _error("verification failed, so nothing was written (--force writes anyway)")
        _exit(EXIT_FINDINGS)
    written = output.write_tree(files, out_dir, force=force)
    click.echo(f"Wrote {len(written)} files to {out_dir}")
    _exit(EXIT_FINDINGS if verify_failed else EXIT_OK)


@cli.command()
@click.argument("specs", metavar="SPEC...", nargs=-1, required=True, type=_SPEC)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for scripts, sarif for GitHub code scanning.",
)
@click.option(
    "--fail-on",
    type=click.Choice([s.value for s in Severity]),
    default="error",
    show_default=True,
    help="Exit 1 when a finding has at least this severity.",
)
@click.option(
    "--select",
    multiple=True,
    metavar="CODES",
    help="Run only these rules: codes (LB101), prefixes (LB1) or names, comma-separated "
    "or repeated.",
)
@click.option("--ignore", multiple=True, metavar="CODES", help="Do not run these rules.")
@click.option(
    "--show-skipped",
    is_flag=True,
    help="List the rules that did not apply to this spec and why (text format).",
)
@_user_errors
def validate(
    specs: tuple[Path, ...],
    fmt: str,
    fail_on: str,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    show_skipped: bool,
) -> None:
    """Check each SPEC against the schema and the cross-hop rules.

    Findings are printed as `file:line:col: CODE [severity] message` with a hint and,
    when two hops conflict, the location of the other hop's value. Suppressions in the
    spec (`suppress:` on a tier or service, with a reason and optional expiry) silence
    a rule there. Input errors (YAML, schema) are printed on stderr and exit with 2.

    \b
    Examples:
      lbgen validate examples/seed.yaml
      lbgen validate spec.yaml --format sarif > lbgen.sarif
      lbgen validate spec.yaml --select LB1 --ignore LB102 --fail-on warning
    """
    import lbgen

    selected = _codes(select) if select else None
    ignored = _codes(ignore)
    if select and not selected:
        raise click.BadParameter("no rule codes given", param_hint="'--select'")
    _check_refs(selected or [], "--select")
    _check_refs(ignored, "--ignore")

    problems: list[Problem] = []
    reports: list[tuple[str, CheckReport]] = []
    for spec in specs:
        try:
            loaded = lbgen.load(spec)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        reports.append((str(spec), check_spec(loaded, select=selected, ignore=ignored)))
    report = merge_reports(reports, select_rules(ALL_RULES, selected, ignored))

    if fmt == "json":
        click.echo(report_to_json(report, problems), nl=False)
    elif fmt == "sarif":
        click.echo(report_to_sarif(report, problems), nl=False)
    elif reports:
        click.echo(
            report_to_text(report, show_skipped=show_skipped, specs=len(reports)), nl=False
        )
    if problems:
        click.echo(problems_to_text(problems), err=True, nl=False)
        _exit(EXIT_USAGE)
    _exit(EXIT_FINDINGS if report.fails(Severity(fail_on)) else EXIT_OK)


@cli.command("rules")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: an array of rules with their full documentation.",
)
def rules_command(fmt: str) -> None:
    """List every rule: code, default severity, name and summary."""
    click.echo(rules_to_json(ALL_RULES) if fmt == "json" else rules_to_text(ALL_RULES), nl=False)


@cli.command("explain")
@click.argument("rule", metavar="CODE|NAME")
def explain_command(rule: str) -> None:
    """Print a rule's documentation as Markdown.

    Sections: what it checks, why it matters, an example spec that triggers it, the
    corrected spec, and references. CODE|NAME is a code (LB101) or a rule name.
    """
    try:
        found = get_rule(rule)
    except UnknownRuleError as exc:
        raise click.BadParameter(str(exc), param_hint="'CODE|NAME'") from None
    click.echo(explain(found), nl=False)


@cli.command("schema")
def schema_command() -> None:
    """Print the spec's JSON Schema (for editors).

    Editors use it for completion and validation while you write a spec.
    With the YAML language server (VS Code's YAML extension, and others) put this
    modeline at the top of a spec, pointing at a saved copy of the schema:

    \b
        # yaml-language-server: $schema=../docs/lbgen.schema.json

    \b
    Example:
      lbgen schema > lbgen.schema.json
    """
    click.echo(spec_json_schema_text(), nl=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (`lbgen`, `python -m lbgen`)."""
    cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="lbgen")


if __name__ == "__main__":  # pragma: no cover
    main()
