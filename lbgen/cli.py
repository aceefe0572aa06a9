"""The `lbgen` command line: render, validate, rules, plan, explain, simulate, lab, probe, schema.

Exit codes: 0 ok; 1 findings at or above the threshold, failed checks, or stale output
(`render --check`); 2 usage or input error. User mistakes never show a traceback: input
errors are printed as `file:line:col: error: …` with a hint.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from lbgen import __version__
from lbgen.errors import InputError, LbgenError, Problem, UnknownRuleError, shown_source_name

if TYPE_CHECKING:
    from lbgen.io.loader import LoadedSpec
    from lbgen.rules import CheckReport

# Every other lbgen module is imported inside the command that needs it: `lbgen --version`,
# `rules` and `explain` then start without pydantic's model building, Jinja or ruamel.yaml
# (tests/cli/test_cold_start.py checks which modules each command loads).
FORMATS = ("text", "json", "sarif", "github")
SEVERITIES = ("error", "warning", "info")

if TYPE_CHECKING:
    from lbgen.output import Replacement

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

P = ParamSpec("P")
R = TypeVar("R")

STDIN = Path("-")
"""SPEC `-`: read the spec from standard input; locations then say `<stdin>`."""
STDIN_NAME = "<stdin>"

_SPEC = click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)


def _shown(path: Path) -> str:
    """A path as lbgen's messages show it: control characters in a file name escaped, so
    that it cannot forge an output line or a terminal escape (as in the rendered headers)."""
    return shown_source_name(str(path))


def _use_color(choice: str, *, err: bool) -> bool:
    """`--color auto` colours a terminal only, and never when NO_COLOR is set (no-color.org);
    `always` and `never` override both."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    stream = sys.stderr if err else sys.stdout
    return stream.isatty()


def _color_option(command: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--color",
        type=click.Choice(["auto", "always", "never"]),
        default="auto",
        show_default=True,
        help="Colour text output: auto = only on a terminal and when NO_COLOR is unset.",
    )(command)


def _quiet_option(command: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="Print only findings and errors (no summary or progress lines).",
    )(command)


def _complete_rules(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of rule codes and names (`lbgen explain LB1<TAB>`)."""
    from click.shell_completion import CompletionItem

    from lbgen.rules import ALL_RULES

    typed = incomplete.split(",")[-1]
    done = incomplete[: len(incomplete) - len(typed)]
    items = []
    for rule in ALL_RULES:
        for value in (rule.code, rule.name):
            if value.lower().startswith(typed.lower()):
                items.append(CompletionItem(done + value, help=rule.summary))
    return items


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
            from lbgen.report import problems_to_text

            click.echo(problems_to_text(exc.problems), err=True, nl=False)
            _exit(EXIT_USAGE)
        except LbgenError as exc:
            _error(str(exc))
            _exit(EXIT_USAGE)

    return wrapper


def check_spec(loaded: LoadedSpec, **options: Any) -> CheckReport:
    """The rules engine (lbgen.rules.check_spec), imported on first use; tests replace it."""
    from lbgen.rules import check_spec as run_rules

    return run_rules(loaded, **options)


def _read(spec: Path) -> LoadedSpec:
    """Load a spec file, or standard input for `-`."""
    import lbgen

    if spec == STDIN:
        from lbgen.io.loader import load_spec_bytes, read_limited

        if sys.stdin.isatty():
            click.echo("lbgen: reading the spec from standard input (end it with Ctrl-D)", err=True)
        return load_spec_bytes(read_limited(sys.stdin.buffer, STDIN_NAME), STDIN_NAME)
    return lbgen.load(spec)


def _load(spec: Path, *, color: bool = False) -> LoadedSpec:
    """Load the spec; on input errors print them on stderr and exit 2."""
    from lbgen.report import problems_to_text

    try:
        return _read(spec)
    except InputError as exc:
        text = problems_to_text(exc.problems, "nothing was written", color=color)
        click.echo(text, err=True, nl=False, color=color)
        _exit(EXIT_USAGE)


def _codes(values: Sequence[str]) -> list[str]:
    """`--select LB1,LB201 --select keepalive-name` → ["LB1", "LB201", "keepalive-name"]."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _selection(select: tuple[str, ...], ignore: tuple[str, ...]) -> tuple[list[str] | None, list[str]]:
    """`--select` (None: every rule) and `--ignore` as rule references, each checked."""
    selected = _codes(select) if select else None
    ignored = _codes(ignore)
    if select and not selected:
        raise click.BadParameter("no rule codes given", param_hint="'--select'")
    _check_refs(selected or [], "--select")
    _check_refs(ignored, "--ignore")
    return selected, ignored


def _check_refs(refs: list[str], option: str) -> None:
    from lbgen.rules import ALL_RULES, select_rules

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
    "did not generate is not replaced without --replace-foreign.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Run the real consumers available here (nginx -t, Kong and Kubernetes schemas) "
    "over the output and print which checks ran, failed or were skipped; nothing is written "
    "when one fails.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="With --verify: exit 1 unless every check proved its file as written on the declared "
    "version (a skipped, adapted, unprovable or other-version check is not proof). The output "
    "is still written.",
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
    help="Write even when error-level findings remain or verification fails.",
)
@click.option(
    "--replace-foreign",
    is_flag=True,
    help="Replace the output directory even when it holds files lbgen did not write (or "
    "that changed since): they are listed, then deleted. Never deletes the spec.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 and print a unified diff when the output directory differs "
    "from what would be rendered (for CI and pre-commit).",
)
@click.option(
    "--diff",
    "preview",
    is_flag=True,
    help="Write nothing; print the unified diff a render would apply to the output directory "
    "and the files it would add, change and remove (exit 0).",
)
@click.option(
    "--rollout-from",
    "rollout_from",
    type=_SPEC,
    metavar="OLD",
    help="Also print the order in which to deploy the hops when moving from the spec OLD to "
    "SPEC, so that every caller's idle timeout stays below its callee's during the change.",
)
@_quiet_option
@_color_option
@_user_errors
def render(
    spec: Path,
    out_dir: Path,
    verify: bool,
    strict: bool,
    schemas_dir: Path | None,
    force: bool,
    replace_foreign: bool,
    check: bool,
    preview: bool,
    rollout_from: Path | None,
    quiet: bool,
    color: str,
) -> None:
    """Render every hop's configuration from SPEC into a directory.

    The cross-hop rules run first: when an error-level finding remains, the findings
    are printed and nothing is written (unless --force). SPEC `-` reads standard input.

    \b
    Examples:
      lbgen render examples/seed.yaml -o out
      lbgen render examples/seed.yaml -o out --verify --schemas ../shared/schemas
      lbgen render examples/seed.yaml -o out --verify --strict
      lbgen render examples/seed.yaml -o out --check
      lbgen render examples/seed.yaml -o out --diff
      lbgen render new.yaml -o out --rollout-from old.yaml

    \b
    --verify labels each check: passed (the file as written, on the declared
    version), adapted (passed after the check changed its copy, e.g. an added
    load_module), unproven (passed on another version than declared), unprovable
    (the local consumer is older than the declared version and rejects a newer
    directive; the output is still written), failed, skipped.
    """
    import lbgen
    from lbgen.report import report_to_text
    from lbgen.rules import Severity

    if schemas_dir is not None and not verify:
        raise click.UsageError("--schemas only applies together with --verify")
    if strict and not verify:
        raise click.UsageError("--strict only applies together with --verify")
    if check and preview:
        raise click.UsageError("--check and --diff exclude each other (--check also prints the diff)")
    err_color = _use_color(color, err=True)
    loaded = _load(spec, color=err_color)
    from lbgen.plan import resolve

    plan = resolve(loaded.spec)  # once per run: the rules and the renderers read the same plan
    report = check_spec(loaded, plan=plan)
    if report.findings:
        text = report_to_text(report, quiet=quiet, color=err_color)
        click.echo(text, err=True, nl=False, color=err_color)
    if report.fails(Severity.ERROR) and not force:
        _error(
            "error-level findings remain, so nothing was written; fix them, suppress them "
            "in the spec with a reason, or pass --force"
        )
        _exit(EXIT_FINDINGS)

    files = lbgen.render(loaded, plan)
    if rollout_from is not None:
        from lbgen.rollout import plan_text, rollout_plan

        steps = rollout_plan(_load(rollout_from).spec, loaded.spec)
        click.echo(plan_text(_shown(rollout_from), _shown(spec), steps), nl=False)

    verify_failed = False
    unproven: list[str] = []
    if verify:
        from lbgen.verify import verify_files

        for result in verify_files(files, schemas_dir):
            detail = result.explanation().strip().replace("\n", "\n    ")
            if not quiet or result.status == "failed":
                click.echo(f"{result.label:<10} {result.name}" + (f"  {detail}" if detail else ""))
            verify_failed = verify_failed or result.status == "failed"
            if not result.proven:
                unproven.append(f"{result.name} ({result.label})")
    strict_failed = strict and bool(unproven)

    from lbgen import output

    # Never delete the spec being rendered (standard input has no file to protect).
    kept = [spec] if str(spec) != "-" and spec.is_file() else []
    if preview:
        diff = output.diff_tree(files, out_dir)
        out_color = _use_color(color, err=False)
        click.echo(_paint_diff(diff, out_color), nl=False, color=out_color)
        if not quiet:
            click.echo(_change_summary(diff, out_dir))
        # A plain render would refuse this directory: say so (exit 2), with the same reason.
        output.check_writable(files, out_dir, replace_foreign=replace_foreign, keep=kept)
        _strict_report(strict_failed, unproven)
        _exit(EXIT_FINDINGS if verify_failed or strict_failed else EXIT_OK)

    if check:
        diff = output.diff_tree(files, out_dir)
        if diff:
            click.echo(diff, nl=not diff.endswith("\n"))
        # A plain render would refuse this directory: say so (exit 2), with the same reason.
        output.check_writable(files, out_dir, replace_foreign=replace_foreign, keep=kept)
        if diff:
            _error(f"{_shown(out_dir)} is out of date: run `lbgen render {_shown(spec)} -o {_shown(out_dir)}`")
            _exit(EXIT_FINDINGS)
        if not quiet:
            click.echo(f"{_shown(out_dir)} is up to date ({len(files)} files)")
        _strict_report(strict_failed, unproven)
        _exit(EXIT_FINDINGS if verify_failed or strict_failed else EXIT_OK)

    if verify_failed and not force:
        _error("verification failed, so nothing was written (--force writes anyway)")
        _exit(EXIT_FINDINGS)
    written = output.write_tree(
        files, out_dir, replace_foreign=replace_foreign, keep=kept, on_replace=_report_replaced
    )
    if not quiet:
        click.echo(f"Wrote {len(written)} files to {_shown(out_dir)}")
    _strict_report(strict_failed, unproven)
    _exit(EXIT_FINDINGS if verify_failed or strict_failed else EXIT_OK)


def _strict_report(strict_failed: bool, unproven: list[str]) -> None:
    if strict_failed:
        _error(
            f"--strict: {len(unproven)} check(s) short of proof as written on the declared "
            f"version: {', '.join(unproven)}"
        )


def _report_replaced(replacement: Replacement) -> None:
    """Say what a render deletes or overwrites beyond lbgen's own unchanged files."""
    if replacement.foreign:
        click.echo(
            f"lbgen: --replace-foreign: deleting {len(replacement.foreign)} entries lbgen did "
            "not write (or that changed since):\n"
            + "".join(f"  {shown_source_name(path)}\n" for path in replacement.foreign),
            err=True,
            nl=False,
        )
    if replacement.edited:
        click.echo(
            "lbgen: note: overwriting hand edits in "
            + ", ".join(shown_source_name(path) for path in replacement.edited)
            + " (`render --check` shows such drift before it is lost)",
            err=True,
        )


def _change_summary(diff: str, out_dir: Path) -> str:
    """`out would change: 1 added (a), 1 changed (b), 0 removed` from diff_tree's headers."""
    added: list[str] = []
    changed: list[str] = []
    removed: list[str] = []
    lines = diff.splitlines()
    for old, new in itertools.pairwise(lines):
        if not (old.startswith("--- ") and new.startswith("+++ ")):
            continue
        old_name, new_name = old[4:], new[4:]
        if old_name == "/dev/null":
            added.append(new_name.removeprefix("b/"))
        elif new_name == "/dev/null":
            removed.append(old_name.removeprefix("a/"))
        else:
            changed.append(new_name.removeprefix("b/"))
    if not (added or changed or removed):
        return f"{_shown(out_dir)} is up to date: a render would change nothing"
    parts = [
        f"{len(paths)} {what}" + (f" ({', '.join(paths)})" if paths else "")
        for what, paths in (("added", added), ("changed", changed), ("removed", removed))
    ]
    return f"{_shown(out_dir)} would change: " + ", ".join(parts) + "; nothing was written"


def _paint_diff(diff: str, color: bool) -> str:
    if not color:
        return diff
    from lbgen.report import paint

    out = []
    for line in diff.splitlines(keepends=True):
        if line.startswith(("+++ ", "--- ")):
            out.append(paint(line.rstrip("\n"), "1", True) + "\n")
        elif line.startswith("+"):
            out.append(paint(line.rstrip("\n"), "32", True) + "\n")
        elif line.startswith("-"):
            out.append(paint(line.rstrip("\n"), "31", True) + "\n")
        elif line.startswith("@@"):
            out.append(paint(line.rstrip("\n"), "36", True) + "\n")
        else:
            out.append(line)
    return "".join(out)


# How `lbgen validate` and `lbgen audit` report findings and choose rules.
_REPORT_OPTIONS = (
    click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="text for people, json for scripts, sarif for GitHub code scanning, github for "
        "GitHub Actions annotations (::error file=…,line=…::).",
    ),
    click.option(
        "--fail-on",
        type=click.Choice(SEVERITIES),
        default="error",
        show_default=True,
        help="Exit 1 when a finding has at least this severity.",
    ),
    click.option(
        "--select",
        multiple=True,
        metavar="CODES",
        shell_complete=_complete_rules,
        help="Run only these rules: codes (LB101), prefixes (LB1) or names, comma-separated "
        "or repeated.",
    ),
    click.option(
        "--ignore",
        multiple=True,
        metavar="CODES",
        shell_complete=_complete_rules,
        help="Do not run these rules.",
    ),
    click.option(
        "--show-skipped",
        is_flag=True,
        help="List the rules that did not apply to this spec and why (text format).",
    ),
)


def _options(*options: Callable[[Callable[P, R]], Callable[P, R]]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A group of click options as one decorator (listed in --help in the order given)."""

    def apply(command: Callable[P, R]) -> Callable[P, R]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


_report_options = _options(*_REPORT_OPTIONS)


@cli.command()
@click.argument("specs", metavar="SPEC...", nargs=-1, required=True, type=_SPEC)
@_report_options
@_quiet_option
@_color_option
@_user_errors
def validate(
    specs: tuple[Path, ...],
    fmt: str,
    fail_on: str,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    show_skipped: bool,
    quiet: bool,
    color: str,
) -> None:
    """Check each SPEC against the schema and the cross-hop rules.

    Findings are printed as `file:line:col: CODE [severity] message` with a hint and,
    when two hops conflict, the location of the other hop's value. Suppressions in the
    spec (`suppress:` on a tier or service, with a reason and optional expiry) silence
    a rule there. Input errors (YAML, schema) are printed on stderr and exit with 2.
    SPEC `-` reads standard input (locations then say `<stdin>`).

    \b
    Examples:
      lbgen validate examples/seed.yaml
      lbgen validate spec.yaml --format sarif > lbgen.sarif
      lbgen validate spec.yaml --format github        # in a GitHub Actions step
      lbgen validate spec.yaml --select LB1 --ignore LB102 --fail-on warning
      generate-spec | lbgen validate -
    """
    from lbgen.report import (
        merge_reports,
        problems_to_text,
        report_to_github,
        report_to_json,
        report_to_sarif,
        report_to_text,
    )
    from lbgen.rules import ALL_RULES, Severity, select_rules

    if specs.count(STDIN) > 1:
        raise click.BadParameter("standard input (-) can be read only once", param_hint="'SPEC...'")
    selected, ignored = _selection(select, ignore)

    problems: list[Problem] = []
    reports: list[tuple[str, CheckReport]] = []
    from lbgen.output import generated_by_lbgen

    for spec in specs:
        generated = generated_by_lbgen(spec)
        if generated:  # a pre-commit `files:` pattern also matches rendered output
            click.echo(f"lbgen: note: skipping {_shown(spec)}: {generated}, not a spec", err=True)
            continue
        try:
            loaded = _read(spec)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        reports.append((loaded.source_name, check_spec(loaded, select=selected, ignore=ignored)))
    report = merge_reports(reports, select_rules(ALL_RULES, selected, ignored))

    out_color = _use_color(color, err=False)
    if fmt == "json":
        click.echo(report_to_json(report, problems), nl=False)
    elif fmt == "sarif":
        click.echo(report_to_sarif(report, problems), nl=False)
    elif fmt == "github":
        click.echo(report_to_github(report, problems), nl=False)
    elif reports:
        text = report_to_text(
            report, show_skipped=show_skipped, specs=len(reports), quiet=quiet, color=out_color
        )
        click.echo(text, nl=False, color=out_color)
    if problems:
        err_color = _use_color(color, err=True)
        click.echo(problems_to_text(problems, color=err_color), err=True, nl=False, color=err_color)
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
    """List every rule: code, default severity, status, since, name and summary."""
    from lbgen.report import rules_to_json, rules_to_text
    from lbgen.rules import ALL_RULES

    click.echo(rules_to_json(ALL_RULES) if fmt == "json" else rules_to_text(ALL_RULES), nl=False)


@cli.command("plan")
@click.argument("spec", type=_SPEC)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: every hop with its capabilities, targets and settings.",
)
@_user_errors
def plan_command(spec: Path, fmt: str) -> None:
    """Print the resolved plan of SPEC hop by hop.

    For every setting a hop's product will use: its value, its origin (set, derived,
    product default, lbgen default, not in this version), the source of a default or the
    reasoning of a derived value, the rendered file and line that set it, and the rules
    that read it. SPEC `-` reads standard input.

    \b
    Examples:
      lbgen plan examples/seed.yaml
      lbgen plan examples/seed.yaml --format json
    """
    from lbgen.plan import resolve
    from lbgen.plan_report import plan_to_json, plan_to_text
    from lbgen.render import render_spec
    from lbgen.rules import ALL_RULES

    loaded = _load(spec)
    plan = resolve(loaded.spec)
    files = render_spec(loaded.spec, Path(loaded.source_name).name, plan)
    text = plan_to_json(plan, files, ALL_RULES) if fmt == "json" else plan_to_text(plan, files, ALL_RULES)
    click.echo(text, nl=False)


MAX_SIMULATED_REQUESTS = 5e6
"""Requests per trial `lbgen simulate` accepts (60 s at 80,000 requests/s)."""


def _duration_s(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    from lbgen.model.types import Duration

    try:
        seconds = Duration.parse(value).ms / 1000
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0s", param_hint=f"'{option}'")
    return seconds


def _simulate_one(spec: Path, options: dict[str, Any]) -> Any:
    """Load, resolve and simulate one spec with the flags applied over its `workload:`."""
    from lbgen import simulate as sim
    from lbgen.model.workload import ScaleEvent
    from lbgen.plan import resolve
    from lbgen.report import format_path

    loaded = _load(spec)
    model = loaded.spec
    try:
        service = sim.pick_service(model, options["service"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--service'") from None
    work = model.workload
    events = list(work.events) if work is not None else []
    for text in options["event"]:
        try:
            events.append(ScaleEvent.parse(text))
        except ValueError as exc:
            raise click.BadParameter(str(exc).splitlines()[-1], param_hint="'--event'") from None
    names = {s.name for s in model.services}
    for event in events:
        if event.service not in names:
            raise click.BadParameter(f"event {event.service!r}: no such service in {spec} "
                                     f"(services: {', '.join(sorted(names))})", param_hint="'--event'")

    def pick(flag: Any, field: str, fallback: Any) -> Any:
        if flag is not None:
            return flag
        value = getattr(work, field) if work is not None else None
        return fallback if value is None else value

    duration = options["duration"] or (work.duration.ms / 1000 if work is not None and work.duration else
                                       sim.DEFAULT_DURATION_S)
    rate: float | None = None if options["closed_loop"] else pick(options["rate"], "rate", sim.DEFAULT_RATE)
    response = options["response_time"]
    if response is None and work is not None and work.response_time is not None:
        response = work.response_time.ms / 1000
    if response is None and work is not None and work.concurrency is not None and rate is not None:
        response = work.concurrency / rate
    response_time_s = response if response is not None else sim.DEFAULT_RESPONSE_TIME_S
    p99 = options["response_time_p99"]
    if p99 is None and work is not None and work.response_time_p99 is not None:
        p99 = work.response_time_p99.ms / 1000
    if p99 is not None and p99 < response_time_s:
        raise click.BadParameter(f"the p99 response time ({p99:g}s) is below the median response time "
                                 f"({response_time_s:g}s)", param_hint="'--response-time-p99'")
    protocol = pick(options["protocol"], "protocol", "grpc" if service.protocol == "grpc" else "h1")
    settings = sim.Settings(
        clients=pick(options["clients"], "clients", sim.DEFAULT_CLIENTS),
        connections_per_client=pick(options["client_connections"], "connections_per_client",
                                    sim.DEFAULT_CONNECTIONS_PER_CLIENT),
        rate=rate, duration_s=duration,
        response_time_s=response_time_s,
        cores=pick(options["cores"], "cores", sim.DEFAULT_CORES),
        trials=options["trials"], seed=options["seed"],
        keepalive=work.keepalive if work is not None else True, events=tuple(events),
        response_p99_s=p99, protocol=protocol,
        source_addresses=pick(options["source_addresses"], "source_addresses", None),
    )
    per_trial = (settings.rate or settings.clients * settings.connections_per_client / settings.response_time_s) \
        * settings.duration_s
    if per_trial > MAX_SIMULATED_REQUESTS:
        # A trial holds its requests in memory (about 250 bytes each at the peak).
        raise click.BadParameter(f"{per_trial:.3g} requests per trial; lower --rate or --duration (or raise "
                                 f"--response-time in closed loop) to at most {MAX_SIMULATED_REQUESTS:.0e}",
                                 param_hint="'--rate'")
    plan = resolve(model)
    report = check_spec(loaded, plan=plan)
    findings = [{"code": f.code, "name": f.name, "path": format_path(f.path)} for f in report.findings]
    return sim.simulate(model, plan, service, settings, name=Path(loaded.source_name).stem, findings=findings)


@cli.command("simulate")
@click.argument("spec", type=_SPEC)
@click.option("--service", default=None, help="Service to simulate (default: the first).")
@click.option("--clients", type=click.IntRange(1, 100_000), default=None,
              help="Client machines (source addresses). [spec workload or 50]")
@click.option("--client-connections", type=click.IntRange(1, 10_000), default=None,
              help="Connections each client keeps open. [spec workload or 1]")
@click.option("--rate", type=click.FloatRange(0, 10_000_000, min_open=True), default=None,
              help="Requests per second (open loop). [spec workload or 1000]")
@click.option("--closed-loop", is_flag=True,
              help="Each client connection sends its next request when the last one returns.")
@click.option("--duration", default=None, help="Simulated time, e.g. 60s, 5m. [spec workload or 60s]")
@click.option("--response-time", "response_time", default=None,
              help="Time a request is in flight. [spec workload, concurrency/rate, or 50ms]")
@click.option("--response-time-p99", "response_time_p99", default=None,
              help="99th percentile of the response times (lognormal around --response-time). "
              "[spec workload, or none: all alike]")
@click.option("--protocol", type=click.Choice(["h1", "h2", "grpc"]), default=None,
              help="What clients speak: h2/grpc multiplex each client's requests on one connection. "
              "[spec workload, grpc for a gRPC service, else h1]")
@click.option("--source-addresses", "source_addresses", type=click.IntRange(1, 100_000), default=None,
              help="Distinct client source addresses (clients behind NAT share one). [spec workload or one "
              "per client]")
@click.option("--cores", type=click.IntRange(1, 1024), default=None,
              help="Cores per proxy instance (workers of worker_processes auto). [spec workload or 2]")
@click.option("--trials", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.option("--event", "event", multiple=True, metavar="'scale SERVICE +N at TIME'",
              help="Add pods during the run (repeatable), e.g. --event 'scale orders +4 at 30s'.")
@click.option("--compare", "compare", type=_SPEC, default=None, metavar="OTHER_SPEC",
              help="Simulate OTHER_SPEC with the same workload and show both side by side.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--max-skew", type=click.FloatRange(1, None), default=None,
              help="Exit 1 when the median max/mean of requests per pod exceeds this.")
@click.option("--max-cv", type=click.FloatRange(0, None), default=None,
              help="Exit 1 when the median coefficient of variation exceeds this.")
@click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE.svg|png", help="Also write the per-pod shares as a bar chart (needs matplotlib).")
@_user_errors
def simulate_command(spec: Path, compare: Path | None, fmt: str, max_skew: float | None,
                     max_cv: float | None, plot: Path | None, **options: Any) -> None:
    """Predict how SPEC spreads requests and connections over the pods.

    Simulates the path hop by hop from the values the renderers use (pools, idle timeouts,
    max requests, lifetimes, balancing per worker, targets, kube-proxy mode, session
    affinity, app idle timeouts), over --trials independent runs (deterministic for
    --seed). Flags override the spec's `workload:` section. Exit 0, or 1 when --max-skew
    or --max-cv is exceeded (by any simulated spec), 2 on input errors.

    \b
    Examples:
      lbgen simulate examples/seed-as-advised.yaml --compare examples/seed-fixed.yaml
      lbgen simulate examples/seed-fixed.yaml --rate 5000 --event 'scale orders +4 at 30s'
      lbgen simulate examples/seed-fixed.yaml --format json --max-skew 1.2
    """
    try:
        import numpy  # noqa: F401
    except ImportError:
        _error("lbgen simulate needs numpy: python3 -m pip install 'lbgen[simulate]'")
        _exit(EXIT_USAGE)
    if options["closed_loop"] and options["rate"] is not None:
        raise click.BadParameter("give --rate or --closed-loop, not both", param_hint="'--closed-loop'")
    if plot is not None:
        from lbgen.simulate import plot as plotting

        if plot.suffix.lower() not in plotting.FORMATS:
            raise click.BadParameter(f"{plot}: the file name must end in .svg or .png", param_hint="'--plot'")
        if not plotting.available():
            _error("lbgen simulate --plot needs matplotlib: python3 -m pip install 'lbgen[plot]'")
            _exit(EXIT_USAGE)
    options["duration"] = _duration_s(options["duration"], "--duration")
    options["response_time"] = _duration_s(options["response_time"], "--response-time")
    options["response_time_p99"] = _duration_s(options["response_time_p99"], "--response-time-p99")
    from lbgen.simulate.engine import keep_freed_memory

    keep_freed_memory()
    results = [_simulate_one(spec, options)]
    if compare is not None:
        results.append(_simulate_one(compare, options))
    from lbgen.simulate.report import compare_text, to_json, to_text

    if fmt == "json":
        click.echo(to_json(results), nl=False)
    elif len(results) == 2:
        click.echo(compare_text(results[0], results[1]), nl=False)
    else:
        click.echo(to_text(results[0]), nl=False)
    over = [
        f"{r.spec}: median {label} {value:.3g} exceeds {limit:g}"
        for r in results
        for label, value, limit in (("max/mean", r.max_mean.median, max_skew), ("CV", r.cv.median, max_cv))
        if limit is not None and value > limit
    ]
    if plot is not None:
        try:
            plotting.write(results, plot)
        except OSError as exc:
            _error(f"{plot}: cannot write the plot: {exc.strerror or exc}")
            _exit(EXIT_USAGE)
    for line in over:
        click.echo(f"lbgen: {line}", err=True)
    if over:
        _exit(EXIT_FINDINGS)


@cli.command("lab")
@click.argument("spec", type=_SPEC)
@click.option("--service", default=None, help="Service to measure (default: the first).")
@click.option("--duration", default="10s", show_default=True, help="How long the load runs (at most 120s).")
@click.option("--connections", type=click.IntRange(1, 1000), default=None,
              help="Client keep-alive connections. [20]")
@click.option("--rate", type=click.FloatRange(0, 100_000, min_open=True), default=None,
              help="Requests per second in all (default: closed loop, each connection as fast as it can).")
@click.option("--scenario", type=click.Choice(["steady", "idle-race", "scale-out", "rollout"]), default="steady",
              show_default=True, help="scale-out: half as many pods again enter the Service at a third of the run; "
              "rollout: the pods are replaced one by one with the spec's preStop and grace period, under POSTs. "
              "A front that dials pod IPs gets each change when the plan's endpoint propagation says "
              "(Kong: no reload; nginx: a reload).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--client", type=click.Choice(["auto", "builtin", "wrk"]), default="auto", show_default=True,
              help="Load generator: wrk (steady, closed loop) or the built-in asyncio client; auto: wrk when "
              "installed and it can run the scenario.")
@click.option("--keep", is_flag=True, help="Keep the run directory (configs as run, logs, counts).")
@click.option("--dry-run", is_flag=True, help="Print what would run (namespace, addresses, processes, rules).")
@_user_errors
def lab_command(spec: Path, service: str | None, duration: str, connections: int | None, rate: float | None,
                scenario: str, fmt: str, client: str, keep: bool, dry_run: bool) -> None:
    """Run SPEC's rendered path on real components and measure per-pod load and errors.

    One private network namespace holds everything: the rendered edge and L4 configs run
    by the installed nginx (one process per instance, on the instance addresses), Kong as a
    stand-in nginx proxy configured from the plan's Kong values, the Service as kube-proxy's
    iptables (or nftables) rules, and the pods as asyncio servers with the app's idle
    timeout. The namespace, its processes and rules are removed on every exit. Prints the
    measured distribution and errors beside `lbgen simulate`'s prediction. Needs Linux,
    root and nginx with the stream module; exit 2 says what is missing.

    \b
    Examples:
      lbgen lab examples/seed-fixed.yaml --duration 10s
      lbgen lab examples/seed-as-advised.yaml --scenario idle-race --duration 6s
      lbgen lab examples/seed-as-advised.yaml --scenario rollout --duration 10s
      lbgen lab examples/seed.yaml --dry-run
    """
    import os

    from lbgen import simulate as sim
    from lbgen.lab import command, runner
    from lbgen.lab import setup as lab_setup
    from lbgen.lab.report import to_json, to_text
    from lbgen.nginx_harness import find_nginx
    from lbgen.nginx_harness import nginx_build as probe
    from lbgen.plan import resolve
    from lbgen.render import render_spec

    seconds = _duration_s(duration, "--duration")
    assert seconds is not None
    if seconds > command.MAX_DURATION_S:
        raise click.BadParameter(f"at most {command.MAX_DURATION_S:g}s", param_hint="'--duration'")
    try:
        load_client = command.pick_client(client, scenario, rate)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--client'") from None
    loaded = _load(spec)
    model = loaded.spec
    try:
        chosen = sim.pick_service(model, service)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--service'") from None
    lacking = command.missing(needs_root=not dry_run, rules="")
    nginx = find_nginx()
    if nginx is None:
        lacking.append("nginx with the stream module (apt-get install -y nginx-light libnginx-mod-stream)")
    elif probe(nginx).stream == "none":
        lacking.append(f"an nginx with the stream module ({nginx} has none; apt-get install -y nginx-light "
                       "libnginx-mod-stream)")
    if lacking:
        _error("lbgen lab needs " + "; ".join(lacking))
        _exit(EXIT_USAGE)
    assert nginx is not None
    plan = resolve(model)
    files = render_spec(model, Path(loaded.source_name).name, plan)
    namespace = f"lbgen-lab-{os.getpid()}"
    run_root = Path("/tmp") / f"{namespace}-RUN" if dry_run else runner.new_run_root(namespace)
    try:
        setup = lab_setup.build(model, plan, files, chosen, probe(nginx), run_root, namespace=namespace,
                                add=max(1, chosen.replicas // 2) if scenario == "scale-out" else 0,
                                rollout=scenario == "rollout")
        lacking = [] if dry_run else command.missing(
            needs_root=True, rules=setup.kube_proxy_mode if setup.rules else "")
        if lacking:
            raise lab_setup.LabError("lbgen lab needs " + "; ".join(lacking))
    except BaseException as exc:
        if not dry_run:  # the run directory; runner.run removes it after a run
            import shutil

            shutil.rmtree(run_root, ignore_errors=True)
        if isinstance(exc, lab_setup.LabError):
            _error(f"{spec}: {exc}")
            _exit(EXIT_USAGE)
        raise
    if dry_run:
        click.echo(lab_setup.describe(setup), nl=False)
        return
    try:
        work = command.workload(scenario, seconds, connections, rate, setup, load_client)
    except ValueError as exc:
        import shutil

        shutil.rmtree(run_root, ignore_errors=True)  # made for the run, which does not start
        raise click.BadParameter(str(exc), param_hint="'--duration'") from None
    try:
        result = command.run_once(model, plan, chosen, setup, work, run_root, keep=keep,
                                  name=Path(loaded.source_name).stem)
    except runner.LabRunError as exc:
        _error(f"the lab run failed (everything it created was removed): {exc}")
        _exit(EXIT_USAGE)
    except KeyboardInterrupt:
        _error("interrupted; the namespace, its processes and rules were removed")
        _exit(130)
    click.echo(to_json(result) if fmt == "json" else to_text(result), nl=False)
    if keep:
        click.echo(f"run directory kept: {run_root}", err=True)


@cli.command("probe")
@click.argument("url")
@click.option("--max-idle", default="120s", show_default=True,
              help="Longest idle timeout to wait for (the probe takes about this long when the server "
              "never closes an idle connection).")
@click.option("--max-requests", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Requests sent back to back on one connection to find a per-connection limit.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_user_errors
def probe_command(url: str, max_idle: str, max_requests: int, fmt: str) -> None:
    """Measure a live HTTP/1.1 server's keep-alive behaviour (the app's idle timeout).

    Whether URL's server keeps connections alive, the idle time after which it closes a
    kept-alive connection (from the FINs of connections left idle after a response), and
    how many requests it serves on one connection. Prints the `--assume app.idle_timeout=…`
    value for `lbgen import`. Uses at most 11 connections; takes about the idle timeout
    plus a second, at most --max-idle plus a few seconds. http:// only (probe the app
    server's own port). Exit 2 when the server cannot be reached.

    \b
    Examples:
      lbgen probe http://127.0.0.1:8000/
      lbgen probe http://10.0.3.7:8080/healthz --max-idle 90s --format json
    """
    from lbgen.probe import probe, to_json, to_text

    seconds = _duration_s(max_idle, "--max-idle")
    assert seconds is not None
    if seconds > MAX_PROBE_IDLE_S:
        raise click.BadParameter(f"at most {MAX_PROBE_IDLE_S // 60:g}m", param_hint="'--max-idle'")
    result = probe(url, max_idle_s=seconds, max_requests=max_requests)
    click.echo(to_json(result) if fmt == "json" else to_text(result), nl=False)


MAX_PROBE_IDLE_S = 600.0
"""`lbgen probe --max-idle` bound: every run stops by itself within minutes."""


@cli.command("explain")
@click.argument("rule", metavar="CODE|NAME|HOP.SETTING", shell_complete=_complete_rules)
@click.argument("spec", type=_SPEC, required=False)
@_user_errors
def explain_command(rule: str, spec: Path | None) -> None:
    """Print a rule's documentation as Markdown, or explain one resolved setting of SPEC.

    CODE|NAME is a rule code (LB101) or name: the sections are what it checks, why it
    matters, an example spec that triggers it, the corrected spec, and references.

    HOP.SETTING (a tier name, then a setting as `lbgen plan` lists it) with a SPEC: which
    value it is, where it comes from (origin, source, rendered file and line) and what
    depends on it (the hop on the other side, the rules that read it).

    \b
    Examples:
      lbgen explain LB101
      lbgen explain gateway.upstream_keepalive.idle_timeout examples/seed.yaml
    """
    if "." in rule:
        _explain_setting(rule, spec)
        return
    if spec is not None:
        raise click.UsageError("SPEC only applies to HOP.SETTING (a rule's documentation needs no spec)")
    from lbgen.report import explain
    from lbgen.rules import get_rule

    try:
        found = get_rule(rule)
    except UnknownRuleError as exc:
        raise click.BadParameter(str(exc), param_hint="'CODE|NAME'") from None
    click.echo(explain(found), nl=False)


def _explain_setting(ref: str, spec: Path | None) -> None:
    if spec is None:
        raise click.UsageError(f"{ref} names a setting: give the SPEC it is resolved from")
    from lbgen.plan import resolve
    from lbgen.plan_report import UnknownSettingError, explain_setting, find_setting
    from lbgen.render import render_spec
    from lbgen.rules import ALL_RULES

    loaded = _load(spec)
    plan = resolve(loaded.spec)
    try:
        hop, setting = find_setting(plan, ref)
    except UnknownSettingError as exc:
        raise click.BadParameter(str(exc), param_hint="'HOP.SETTING'") from None
    files = render_spec(loaded.spec, Path(loaded.source_name).name, plan)
    click.echo(explain_setting(hop, setting, files, ALL_RULES), nl=False)


def _complete_examples(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from lbgen.examples import example_names

    return [name for name in example_names() if name.startswith(incomplete)]


@cli.command("examples")
@click.argument("name", required=False, shell_complete=_complete_examples)
@_user_errors
def examples_command(name: str | None) -> None:
    """List the example specs, or print the one called NAME.

    The examples ship with lbgen (also when it is installed from a wheel), so a spec can
    start from one of them.

    \b
    Examples:
      lbgen examples
      lbgen examples seed > lbgen.yaml
    """
    from lbgen.examples import example_names, example_summary, example_text

    if name is not None:
        click.echo(example_text(name), nl=False)
        return
    names = example_names()
    width = max((len(n) for n in names), default=0)
    for known in names:
        click.echo(f"{known:<{width}}  {example_summary(known)}".rstrip())


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
    from lbgen.report import spec_json_schema_text

    click.echo(spec_json_schema_text(), nl=False)


# The per-hop files `lbgen import` and `lbgen audit` read, in the order --help lists them.
_IMPORT_INPUTS = (
    click.option("--nginx-http", "nginx_http", multiple=True, metavar="FILE",
                 help="nginx.conf (or an included file) of the L7 edge; includes are followed."),
    click.option("--nginx-stream", "nginx_stream", multiple=True, metavar="FILE",
                 help="nginx config with the L4 stream {} block (or a snippet included in it)."),
    click.option("--kong", "kong", metavar="FILE", help="Kong declarative config (kong.yaml) or decK state."),
    click.option("--kong-conf", "kong_conf", metavar="FILE", help="kong.conf."),
    click.option("--k8s", "k8s", multiple=True, metavar="FILE|DIR",
                 help="Service, HPA, PDB and Deployment manifests (a directory: every YAML file under it)."),
    click.option("--kube-proxy", "kube_proxy", metavar="FILE", help="The kube-proxy ConfigMap."),
    click.option("--assume", "assume", multiple=True, metavar="KEY=VALUE",
                 help="What the files cannot tell, e.g. app.preset=uvicorn, platform=gke, "
                 "kong.location=outside, edge.instances=10.0.0.1,10.0.0.2."),
)

_import_inputs = _options(*_IMPORT_INPUTS)


@cli.command("import")
@_import_inputs
@click.option("--strict", is_flag=True, help="Exit 1 when anything was not translated or was assumed by default.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Format of the report.")
@click.option("-o", "--output", "output", required=True, metavar="FILE",
              help="The spec to write (`-`: standard output; the report then goes to standard error).")
@_user_errors
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
    from lbgen.import_cli import run_command

    run_command(nginx_http, nginx_stream, kong, kong_conf, k8s, kube_proxy, assume, strict, fmt, output)


@cli.command("audit")
@_import_inputs
@_report_options
@click.option("--import-report", is_flag=True,
              help="Also print the import's report: every directive or field not translated (text format).")
@click.option("--runbook", is_flag=True,
              help="Also print the kubectl/nginx verification runbook of the audited path, naming the "
              "files' own Services, upstreams and their file:line (text format; json always has it).")
@_quiet_option
@_color_option
@_user_errors
def audit_command(nginx_http: tuple[str, ...], nginx_stream: tuple[str, ...], kong: str | None,
                  kong_conf: str | None, k8s: tuple[str, ...], kube_proxy: str | None, assume: tuple[str, ...],
                  fmt: str, fail_on: str, select: tuple[str, ...], ignore: tuple[str, ...], show_skipped: bool,
                  import_report: bool, runbook: bool, quiet: bool, color: str) -> None:
    """Check existing per-hop configs against each other, where they stand.

    The files are imported as `lbgen import` reads them (same options), every cross-hop
    rule runs, and each finding is located in the file its value was read from, with the
    other hop's value in its own file:

    \b
      edge/nginx.conf:22:27: LB102 [error] edge keeps idle pooled connections to l4 for 1m …
        related: l4/nginx.conf:20:23 (tiers[1].proxy_timeout)

    A value no file holds (a product default, an --assume) is located at the nearest
    imported value of the same tier or service, and the hint says what was assumed. Text
    output starts with what was read and assumed; --runbook adds the commands that check
    the running path, with the audited files' own names (JSON carries it as `runbook`).
    Exit 0, 1 when a finding reaches --fail-on, 2 when the files cannot be imported.

    \b
    Example:
      lbgen audit --nginx-http edge/nginx.conf --nginx-stream l4/nginx.conf \\
        --kong gateway/kong.yaml --kong-conf gateway/kong.conf --k8s k8s/ \\
        --assume app.preset=uvicorn --assume platform=gke --format sarif > audit.sarif
    """
    from lbgen.audit import audit
    from lbgen.importer.run import ImportInputs
    from lbgen.report import report_to_github, report_to_sarif, report_to_text
    from lbgen.rules import Severity

    if runbook and fmt in ("sarif", "github"):
        raise click.UsageError(f"--runbook is for --format text (json always carries it); {fmt} has no place for it")
    selected, ignored = _selection(select, ignore)
    inputs = ImportInputs(list(nginx_http), list(nginx_stream), kong, kong_conf, list(k8s), kube_proxy,
                          list(assume))
    result = audit(inputs, select=selected, ignore=ignored)
    report = result.report
    out_color = _use_color(color, err=False)
    if fmt == "json":
        from lbgen.audit_runbook import audit_json

        click.echo(audit_json(result), nl=False)
    elif fmt == "sarif":
        click.echo(report_to_sarif(report), nl=False)
    elif fmt == "github":
        click.echo(report_to_github(report), nl=False)
    else:
        from lbgen.audit import audited_summary

        if not quiet:
            click.echo(audited_summary(result), nl=False)
        click.echo(report_to_text(report, show_skipped=show_skipped, quiet=quiet, color=out_color),
                   nl=False, color=out_color)
        if import_report:
            from lbgen.importer.report import to_text

            click.echo("\n" + to_text(result.imported, "(in memory)"), nl=False)
        if runbook:
            from lbgen.audit_runbook import audit_runbook, runbook_to_text

            click.echo("\n" + runbook_to_text(audit_runbook(result)), nl=False)
    _exit(EXIT_FINDINGS if report.fails(Severity(fail_on)) else EXIT_OK)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (`lbgen`, `python -m lbgen`)."""
    cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="lbgen")


if __name__ == "__main__":  # pragma: no cover
    main()
