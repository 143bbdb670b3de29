"""What the command modules share: the repository, the console, options of the commands that drive a run."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
JSON_VERSION = 1  # of every --json output that has no version of its own (status and report: report_version)


def epilog(examples: list[str], exits: Mapping[int, str]) -> str:
    """The end of a command's --help: examples to copy, and what each exit code means."""
    lines = ["\b", "Examples:", *(f"  {e}" for e in examples), "", "\b", "Exit codes:"]
    lines += [f"  {code}  {meaning}" for code, meaning in sorted(exits.items())]
    return "\n".join(lines)


def say_error(message: str) -> None:
    click.echo(f"codex-orch: {message}", err=True)


def repo() -> Path:
    from codex_orch.engine.run import repo_root

    return repo_root()


def stdout_console() -> Any:
    from codex_orch.cli.render import make_console

    return make_console()


def run_options_value(
    run_id: str | None,
    max_workers: int | None,
    fail_fast: bool,
    follow: bool | None = None,
    inputs: tuple[Path, ...] = (),
    agent: str | None = None,
    base_ref: str | None = None,
    max_cost: float | None = None,
    budget_run_cost: float | None = None,
) -> Any:
    from codex_orch.engine.drive import RunOptions

    return RunOptions(
        run_id=run_id,
        max_workers=max_workers,
        fail_fast=fail_fast,
        follow_next_tasks=follow,
        inputs=inputs,
        agent=agent,
        base_ref=base_ref,
        max_cost=max_cost,
        budget_run_cost=budget_run_cost,
    )


def self_command() -> str:
    """How to start codex-orch again, spelled the way this process was started, so that a printed next
    command works as printed: `codex-orch` when that is what PATH finds, else the full path, else
    `python -m codex_orch`."""
    import shlex
    import shutil

    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "codex-orch":
        found = shutil.which("codex-orch")
        if found and os.path.realpath(found) == os.path.realpath(argv0):
            return "codex-orch"
        return shlex.quote(os.path.abspath(argv0))
    return f"{shlex.quote(sys.executable)} -m codex_orch"


def finish_run(outcome: Any, merge: bool = False) -> None:
    """The run's table on stdout; on stderr what was stopped (after Ctrl-C) and the next useful command.
    With `merge` (run --merge), the run's work then goes to its base branch when any task succeeded."""
    from codex_orch.cli.render import print_status
    from codex_orch.commands.views import build_view
    from codex_orch.run_record import read_record

    view = build_view(read_record(outcome.run_dir))
    console = stdout_console()
    print_status(console, view)
    console.print(f"state: {outcome.run_dir / 'state.json'}", highlight=False, markup=False)
    if not merge:
        say(next_steps(view.run_id, view.status, {t.id: t.status for t in view.tasks}), err=True)
        sys.exit(outcome.exit_code)
    if outcome.status not in ("succeeded", "partial"):
        say(f"not merged: the run ended {outcome.status}", err=True)
        say(next_steps(view.run_id, view.status, {t.id: t.status for t in view.tasks}), err=True)
        sys.exit(outcome.exit_code)
    from codex_orch.cli.lifecycle import merge_lines
    from codex_orch.commands.merge import merge_run

    merged = merge_run(repo(), outcome.run_id)
    say(merge_lines(merged))
    sys.exit(max(outcome.exit_code, 1 if merged.failed else 0))


def next_steps(run_id: str, status: str, tasks: Mapping[str, str]) -> list[str]:
    import shlex

    me = self_command()
    ref = f"--run-id {shlex.quote(run_id)}"
    if status == "interrupted":
        stopped = [tid for tid, s in tasks.items() if s == "interrupted"]
        waiting = sum(1 for s in tasks.values() if s in ("pending", "cancelled"))
        what = (
            f"stopped {', '.join(stopped[:10])}{' …' if len(stopped) > 10 else ''}"
            if stopped
            else "no task was running"
        )
        return [
            f"codex-orch: interrupted: {what}; {waiting} task(s) not started; the state is saved.",
            f"continue with: {me} resume {ref}",
        ]
    if status == "budget_exhausted":
        waiting = sum(1 for s in tasks.values() if s != "succeeded")
        return [
            f"codex-orch: budget exhausted (budgets.run_cost): {waiting} task(s) not done; the state is saved.",
            f"continue with: {me} resume {ref} --budget-run-cost AMOUNT   (US dollars; `status` shows the spend)",
        ]
    if status == "succeeded":
        return [f"next: {me} merge {ref}   (what it did: {me} report {ref})"]
    return [
        f"next: {me} report {ref}   (why tasks failed)",
        f"then: {me} resume {ref}   (runs the failed and blocked tasks again; succeeded ones stay)",
    ]


def emit_json(kind: str, payload: Mapping[str, Any]) -> None:
    """One JSON document on stdout, saying what it is and the version of its shape."""
    import json

    click.echo(json.dumps({"kind": kind, "json_version": JSON_VERSION, **payload}, indent=2))


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
    from codex_orch.agent_registry import agent_names

    func = drive_options(func)
    func = click.option(
        "--agent",
        type=click.Choice(agent_names()),
        help="The run's agent, for tasks whose plan names none (default: the role's agent, agents.default, codex).",
    )(func)
    return click.option("--run-id", help="Name the run (default: date, time and a random suffix).")(func)


def progress_for(no_progress: bool) -> Any:
    """Progress goes to stderr: a live table on a terminal, plain lines otherwise."""
    from codex_orch.cli.render import make_console, progress

    return progress(make_console(sys.stderr), plain=no_progress)


def checked_layout() -> Any:
    """The repository's layout, its orchestrator.yaml checked first: every command refuses an invalid one."""
    from codex_orch.config import load_config
    from codex_orch.layout import Layout

    layout = Layout(repo())
    load_config(layout)
    return layout


def run_id_or_latest(layout: Any, run_id: str | None) -> str:
    """--run-id, or the run most recently active (said on stderr). Only for commands that read a run."""
    from codex_orch.commands.runs import latest_run

    if run_id is not None:
        return run_id
    chosen = latest_run(layout)
    say(f"(the latest run: {chosen})", err=True)
    return str(chosen)


def say(lines: list[str] | str, err: bool = False) -> None:
    """Plain lines through the one console: no markup, no wrapping (paths and shas stay whole)."""
    from codex_orch.cli.render import make_console

    console = make_console(sys.stderr) if err else stdout_console()
    for line in [lines] if isinstance(lines, str) else lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
