"""What the command modules share: the repository, the console, options of the commands that drive a run."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from codex_orch.errors import OrchError

F = TypeVar("F", bound=Callable[..., Any])


def say_error(message: str) -> None:
    click.echo(f"codex-orch: {message}", err=True)


def repo() -> Path:
    from codex_orch.engine.run import repo_root

    return repo_root()


def stdout_console() -> Any:
    from codex_orch.cli.render import make_console

    return make_console()


def run_options_value(run_id: str | None, max_workers: int | None, fail_fast: bool, follow: bool | None = None) -> Any:
    from codex_orch.engine.drive import RunOptions

    return RunOptions(run_id=run_id, max_workers=max_workers, fail_fast=fail_fast, follow_next_tasks=follow)


def finish_run(outcome: Any) -> None:
    from codex_orch.cli.render import print_status
    from codex_orch.commands.views import build_view
    from codex_orch.state import read_state

    console = stdout_console()
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


def progress_for(no_progress: bool) -> Any:
    """Progress goes to stderr: a live table on a terminal, plain lines otherwise."""
    from codex_orch.cli.render import make_console, progress

    return progress(make_console(sys.stderr), plain=no_progress)


def latest_run(runs_dir: Path) -> str:
    runs = [p for p in runs_dir.iterdir() if (p / "journal.jsonl").is_file()] if runs_dir.is_dir() else []
    if not runs:
        raise OrchError(f"no runs in {runs_dir}", "Start one with `codex-orch run --plan-file PLAN`.")
    return max(runs, key=lambda p: (p / "journal.jsonl").stat().st_mtime).name


def say(lines: list[str] | str, err: bool = False) -> None:
    """Plain lines through the one console: no markup, no wrapping (paths and shas stay whole)."""
    from codex_orch.cli.render import make_console

    console = make_console(sys.stderr) if err else stdout_console()
    for line in [lines] if isinstance(lines, str) else lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
