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
    from codex_orch.engine import repo_root

    return repo_root()


def _console() -> Any:
    from codex_orch.render import make_console

    return make_console()


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_options(run_id: str | None, max_workers: int | None, fail_fast: bool, follow: bool | None = None) -> Any:
    from codex_orch.engine import RunOptions

    return RunOptions(run_id=run_id, max_workers=max_workers, fail_fast=fail_fast, follow_next_tasks=follow)


def _finish_run(outcome: Any) -> None:
    from codex_orch.render import print_status
    from codex_orch.state import read_state
    from codex_orch.views import build_view

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
    from codex_orch.render import make_console, progress

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
    from codex_orch.engine import start_run

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
    from codex_orch.engine import create_and_drive
    from codex_orch.layout import Layout
    from codex_orch.plan import parse_plan
    from codex_orch.prompts import read_spec

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
    from codex_orch.engine import resume_run

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
    from codex_orch.layout import Layout, id_problem
    from codex_orch.render import print_status, status_table
    from codex_orch.state import read_state
    from codex_orch.views import build_view, view_to_json

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
