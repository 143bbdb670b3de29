"""The command line: parse, call one core function, render. The only module that imports click.

Core modules are imported inside the commands so that `codex-orch --help` stays fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from codex_orch import __version__
from codex_orch.errors import EXIT_INTERRUPTED, EXIT_USAGE, OrchError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERNAL = 3


def _err(message: str) -> None:
    click.echo(f"codex-orch: {message}", err=True)


def _repo() -> Path:
    from codex_orch.engine.run import repo_root

    return repo_root()


def _console() -> Any:
    from codex_orch.cli.render import make_console

    return make_console()


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_options(run_id: str | None, max_workers: int | None, fail_fast: bool, follow: bool | None = None) -> Any:
    from codex_orch.engine.run import RunOptions

    return RunOptions(run_id=run_id, max_workers=max_workers, fail_fast=fail_fast, follow_next_tasks=follow)


def _finish_run(outcome: Any) -> None:
    from codex_orch.cli.render import print_status
    from codex_orch.commands.views import build_view
    from codex_orch.state import read_state

    console = _console()
    print_status(console, build_view(read_state(outcome.run_dir)))
    console.print(f"state: {outcome.run_dir / 'state.json'}", highlight=False, markup=False)
    sys.exit(outcome.exit_code)


def drive_options(func: F) -> F:
    """Options of every command that drives a run (run, task, resume)."""
    func = click.option(
        "--max-workers", type=click.IntRange(min=1), help="Tasks at once (default: limits.max_workers)."
    )(func)
    func = click.option("--fail-fast", is_flag=True, help="Stop every task when one fails.")(func)
    func = click.option("--no-progress", is_flag=True, help="Plain progress lines instead of the live table.")(func)
    return click.option(
        "--follow-next-tasks/--no-follow-next-tasks",
        default=None,
        help="Let tasks the agents propose join the run (default: follow_next_tasks in the config).",
    )(func)


def run_options(func: F) -> F:
    func = drive_options(func)
    return click.option("--run-id", help="Name the run (default: date, time and a random suffix).")(func)


def _progress(no_progress: bool) -> Any:
    """Progress goes to stderr: a live table on a terminal, plain lines otherwise."""
    from codex_orch.cli.render import make_console, progress

    return progress(make_console(sys.stderr), plain=no_progress)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="codex-orch")
def main() -> None:
    """Run plans of coding tasks through codex agents in git worktrees, safely and resumably."""


@main.command()
@click.option("--force", is_flag=True, help="Rewrite the default config, schemas and prompts.")
def init(force: bool) -> None:
    """Create .orchestrator/ (config, schemas, prompts) in this repository."""
    from codex_orch.layout import Layout
    from codex_orch.scaffold import init as do_init

    result = do_init(Layout(_repo()), force=force)
    for rel in result.written:
        click.echo(f"wrote .orchestrator/{rel}")
    if result.kept and not result.written:
        click.echo(".orchestrator/ is already initialised (use --force to rewrite the defaults)")
    if result.gitignore_updated:
        click.echo("added .orchestrator/runs/ and .orchestrator/worktrees/ to .gitignore")


@main.command()
@click.option("--plan-file", required=True, type=click.Path(path_type=Path), help="The plan (JSON).")
@click.option("--spec-file", type=click.Path(path_type=Path), help="A UTF-8 text file given to every prompt.")
@run_options
def run(
    plan_file: Path,
    spec_file: Path | None,
    run_id: str | None,
    max_workers: int | None,
    fail_fast: bool,
    no_progress: bool,
    follow_next_tasks: bool | None,
) -> None:
    """Execute a plan."""
    from codex_orch.engine.run import start_run

    root = _repo()
    options = _run_options(run_id, max_workers, fail_fast, follow_next_tasks)
    with _progress(no_progress) as notify:
        outcome = start_run(root, plan_file, spec_file, options, notify)
    _finish_run(outcome)


@main.command()
@click.option("--role", required=True, help="The role (or an alias) that carries the task out.")
@click.option("--acceptance", default="", help="Acceptance criteria.")
@click.option("--spec-file", type=click.Path(path_type=Path), help="A UTF-8 text file given to the prompt.")
@click.argument("prompt")
@run_options
def task(
    role: str,
    acceptance: str,
    spec_file: Path | None,
    prompt: str,
    run_id: str | None,
    max_workers: int | None,
    fail_fast: bool,
    no_progress: bool,
    follow_next_tasks: bool | None,
) -> None:
    """Run a single task: codex-orch task --role implementer "add a --verbose flag"."""
    from codex_orch.config import load_config
    from codex_orch.engine.prompts import read_spec
    from codex_orch.engine.run import create_and_drive
    from codex_orch.layout import Layout
    from codex_orch.plan import parse_plan

    root = _repo()
    layout = Layout(root)
    config = load_config(layout)
    plan = parse_plan(
        {
            "goal": prompt,
            "assumptions": [],
            "tasks": [{"role": role, "prompt": prompt, "acceptance": acceptance, "blocked_by": []}],
        },
        config,
        "--role/PROMPT",
    )
    spec = read_spec(spec_file) if spec_file else None
    with _progress(no_progress) as notify:
        options = _run_options(run_id, max_workers, fail_fast, follow_next_tasks)
        outcome = create_and_drive(layout, config, plan, spec, options, notify)
    _finish_run(outcome)


@main.command("plan")
@click.option("--spec-file", type=click.Path(path_type=Path), help="The specification to plan from (UTF-8 text).")
@click.option("--goal", help="A goal in a few words, instead of --spec-file.")
@click.option("--out", type=click.Path(path_type=Path), help="Where to write the plan (default: ./plan.json).")
@click.option("--force", is_flag=True, help="Overwrite --out when it exists.")
@click.option(
    "--check",
    "check_file",
    type=click.Path(path_type=Path),
    metavar="PLAN",
    help="Lint PLAN instead: run nothing, write nothing (--spec-file: the spec its prompts will carry).",
)
@click.option("--run-id", help="Name the navigator's run (default: date, time and a random suffix).")
@click.option("--no-progress", is_flag=True, help="Plain progress lines instead of the live table.")
def plan_command(
    spec_file: Path | None,
    goal: str | None,
    out: Path | None,
    force: bool,
    check_file: Path | None,
    run_id: str | None,
    no_progress: bool,
) -> None:
    """Let the navigator write a plan from a spec or a goal (--check PLAN: lint a plan)."""
    if check_file is not None:
        if goal is not None or out is not None or force or run_id is not None:
            raise click.UsageError("--check takes a plan file and optionally --spec-file, nothing else")
        _check_plan(check_file, spec_file)
        return
    if (spec_file is None) == (goal is None):
        raise click.UsageError("give either --spec-file or --goal (exactly one), or --check PLAN")
    from codex_orch.commands.planner import make_plan

    root = _repo()
    with _progress(no_progress) as notify:
        options = _run_options(run_id, None, False)
        result = make_plan(root, spec_file, goal, out or Path("plan.json"), force, options, notify)
    run = result.run
    if result.path is not None:
        _say([f"wrote {result.path}: {result.tasks} tasks (navigator run {run.run_id})"])
        _say(f"next: codex-orch run --plan-file {result.path}", err=True)
        return
    if run.status == "interrupted":
        _err(f"interrupted: no plan was written (navigator run {run.run_id})")
    else:
        _err(
            f"error: the navigator gave no usable plan ({result.error_kind}: {result.error_message}); "
            f"navigator run {run.run_id}, state: {run.run_dir / 'state.json'}"
        )
    sys.exit(run.exit_code)


def _check_plan(plan_file: Path, spec_file: Path | None) -> None:
    from codex_orch.commands.preflight import check_plan

    result = check_plan(_repo(), plan_file, spec_file)
    lines = [str(finding) for finding in result.findings]
    counts = f"{result.errors} error(s), {result.warnings} warning(s)"
    if result.tasks is None:
        lines.append(f"{result.plan_label}: the plan does not load; {counts}")
    else:
        largest = f", largest prompt {result.largest_prompt[1]:,} characters" if result.largest_prompt else ""
        lines.append(f"{result.plan_label}: {result.tasks} task(s){largest}; {counts}")
    _say(lines)
    sys.exit(result.exit_code)


@main.command()
@click.option("--run-id", required=True, help="The run to continue.")
@click.option("--spec-file", type=click.Path(path_type=Path), help="Replace the run's spec text.")
@drive_options
def resume(
    run_id: str,
    spec_file: Path | None,
    max_workers: int | None,
    fail_fast: bool,
    no_progress: bool,
    follow_next_tasks: bool | None,
) -> None:
    """Continue a run: interrupted tasks go on on their agent thread; succeeded tasks never rerun."""
    from codex_orch.engine.run import resume_run

    root = _repo()
    options = _run_options(None, max_workers, fail_fast, follow_next_tasks)
    with _progress(no_progress) as notify:
        outcome = resume_run(root, run_id, spec_file, options, notify)
    _finish_run(outcome)


def _latest_run(runs_dir: Path) -> str:
    runs = [p for p in runs_dir.iterdir() if (p / "journal.jsonl").is_file()] if runs_dir.is_dir() else []
    if not runs:
        raise OrchError(f"no runs in {runs_dir}", "Start one with `codex-orch run --plan-file PLAN`.")
    return max(runs, key=lambda p: (p / "journal.jsonl").stat().st_mtime).name


@main.command()
@click.option("--run-id", help="The run (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", is_flag=True, help="Refresh until the run ends (Ctrl-C to stop watching).")
def status(run_id: str | None, as_json: bool, watch: bool) -> None:
    """Show a run's tasks and their state."""
    from codex_orch.cli.render import print_status, status_table
    from codex_orch.commands.views import build_view, view_to_json
    from codex_orch.layout import Layout, id_problem
    from codex_orch.state import read_state

    layout = Layout(_repo())
    run_id = run_id or _latest_run(layout.runs_dir)
    if id_problem(run_id) or not layout.run_dir(run_id).is_dir():
        raise OrchError(f"--run-id: no run {run_id!r} in {layout.runs_dir}")
    if as_json:
        click.echo(json.dumps(view_to_json(build_view(read_state(layout.run_dir(run_id)))), indent=2))
        return
    console = _console()
    if not watch:
        print_status(console, build_view(read_state(layout.run_dir(run_id))))
        return
    import time

    from rich.live import Live

    with Live(console=console, auto_refresh=False) as live:
        while True:
            view = build_view(read_state(layout.run_dir(run_id)))
            live.update(status_table(view), refresh=True)
            if view.status != "running":
                break
            time.sleep(0.5)


def _say(lines: list[str] | str, err: bool = False) -> None:
    """Plain lines through the one console: no markup, no wrapping (paths and shas stay whole)."""
    from codex_orch.cli.render import make_console

    console = make_console(sys.stderr) if err else _console()
    for line in [lines] if isinstance(lines, str) else lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@main.command()
@click.option("--run-id", required=True, help="The run.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries report_version).")
def report(run_id: str, as_json: bool) -> None:
    """Write runs/<id>/report.md and print it: tasks, attempts, failures, tokens, commits, findings."""
    from codex_orch.commands.report import report_json, write_report

    path, data = write_report(_repo(), run_id)
    if as_json:
        click.echo(json.dumps(report_json(data), indent=2))
        return
    _console().file.write(path.read_text("utf-8"))
    _say(f"written to {path}", err=True)


@main.command()
@click.option("--run-id", required=True, help="The run whose work to merge.")
@click.option("--into", help="The branch to move (default: the branch the run started from).")
@click.option("--allow-automerge", is_flag=True, help="Make merge commits where a fast-forward is not possible.")
def merge(run_id: str, into: str | None, allow_automerge: bool) -> None:
    """Bring a run's work into its base branch; on any conflict nothing changes."""
    from codex_orch.commands.merge import merge_run

    outcome = merge_run(_repo(), run_id, allow_automerge=allow_automerge, into=into)
    lines = [f"{s.source} ({s.branch} at {s.commit[:12]}): {s.how}" for s in outcome.steps]
    if outcome.integration_branch:
        lines.append(f"integration branch {outcome.integration_branch} at {outcome.new[:12]}")
    if outcome.changed:
        where = f"; files updated in {outcome.checkout}" if outcome.checkout else ""
        lines.append(f"{outcome.into}: {outcome.old[:12]} -> {outcome.new[:12]}{where}")
    else:
        lines.append(f"{outcome.into} already holds all of run {run_id}'s work: nothing to do")
    lines += [f"not merged: {what}" for what in outcome.left_out]
    _say(lines)


@main.command()
@click.option("--run-id", required=True, help="The run to clean.")
@click.option("--keep-branches", is_flag=True, help="Remove the worktrees only.")
@click.option("--force", is_flag=True, help="Also remove uncommitted changes and unmerged branches.")
@click.option("--into", help="The branch work must be in to count as merged (default: the run's base branch).")
def clean(run_id: str, keep_branches: bool, force: bool, into: str | None) -> None:
    """Remove a run's worktrees and branches, keeping any that hold work not in the base branch."""
    from codex_orch.commands.clean import clean_run, clean_text

    plan = clean_run(_repo(), run_id, keep_branches=keep_branches, force=force, into=into)
    _say(clean_text(plan, applied=True))
    if plan.keeps and not force:
        _say("kept items hold work that is not merged; `clean --force` removes them too", err=True)


@main.command()
@click.option("--older-than", type=click.FloatRange(min=0), help="Runs last active this many days ago (default 7).")
@click.option("--run-id", "run_ids", multiple=True, help="These runs (repeatable) instead of every old enough run.")
@click.option("--apply", is_flag=True, help="Do it (default: only show what would be done).")
@click.option("--no-resume", is_flag=True, help="Do not resume unfinished tasks before cleaning.")
@click.option("--keep-branches", is_flag=True, help="Remove the worktrees only.")
@click.option("--spec-file", type=click.Path(path_type=Path), help="Spec text for the tasks it resumes.")
def prune(
    older_than: float | None,
    run_ids: tuple[str, ...],
    apply: bool,
    no_resume: bool,
    keep_branches: bool,
    spec_file: Path | None,
) -> None:
    """Clean old runs (a dry run unless --apply); unfinished tasks are resumed first."""
    from codex_orch.commands.clean import apply_prune, plan_prune, prune_candidates_text

    if spec_file is not None:
        from codex_orch.engine.prompts import read_spec

        read_spec(spec_file)  # a bad spec file is an error now, before anything is planned
    root = _repo()
    entries = plan_prune(root, run_ids, older_than)
    if not entries:
        _say("nothing to prune")
        return
    if apply:
        with _progress(True) as notify:
            entries = apply_prune(
                root, entries, resume=not no_resume, keep_branches=keep_branches, spec_file=spec_file, notify=notify
            )
    lines: list[str] = []
    for entry in entries:
        lines += prune_candidates_text(entry, resume=not no_resume, applied=apply)
    if not apply:
        lines.append("dry run: nothing was changed and no agent started; --apply does it")
    _say(lines)
    if any(e.error for e in entries):
        sys.exit(1)


@main.command()
@click.option("--run-id", required=True, help="The run to validate.")
def validate(run_id: str) -> None:
    """Run the configured test and lint commands (validate.commands) where the run's work is."""
    from codex_orch.commands.validate import validate_run

    def started(command: Any, where: str, worktree: Path) -> None:
        _say(f"{command.name}: {' '.join(command.argv)} (in {worktree})", err=True)

    outcome = validate_run(_repo(), run_id, on_start=started)
    lines = []
    for r in outcome.results:
        label = f"{r.name} [{r.where}]" if r.where != "run" else r.name
        if r.ok:
            lines.append(f"passed {label} ({r.duration:.1f}s)")
            continue
        why = "timed out" if r.timed_out else (r.error or f"exit {r.returncode}")
        lines += [f"FAILED {label}: {why} ({r.duration:.1f}s); output in {r.stdout_log}"]
        lines += ["    " + line for line in r.tail.splitlines()]
    lines.append("validation passed" if outcome.ok else "validation failed")
    _say(lines)
    sys.exit(0 if outcome.ok else 1)


def entry(argv: list[str] | None = None) -> int:
    """Run the CLI; map every error to one line and an exit code."""
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        main.main(args=argv, prog_name="codex-orch", standalone_mode=False)
        return 0
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except click.exceptions.Abort:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except OrchError as exc:
        _err(f"error: {exc}")
        return exc.exit_code
    except Exception as exc:  # an unexpected bug: one line here, the traceback in a file
        fd, path = tempfile.mkstemp(prefix="codex-orch-crash-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        _err(f"internal error: {type(exc).__name__}: {exc} (traceback in {path})")
        return EXIT_INTERNAL
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["EXIT_USAGE", "entry", "main"]
