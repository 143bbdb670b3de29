"""`logs` and `timeline`: a run's recorded agent events in the terminal.

Agent text is printed on one line with its control characters made visible, so an agent cannot move
the cursor or retitle the terminal through an escape sequence in its output.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

import click

from codex_orch.cli.common import checked_layout, epilog, run_id_or_latest, say

KIND_CHOICES = ("command", "file", "message", "reasoning", "error", "turn", "tool")
LINE_CHARS = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def one_line(text: str, limit: int = LINE_CHARS) -> str:
    """Agent text as one printable line: whitespace runs folded, control characters escaped, cut."""
    flat = " ".join(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _clock(at: float | None) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3] if at is not None else "--:--:--.---"


def _event_line(event: Any) -> str:
    code = f" (exit {event.exit_code})" if event.kind == "command" and event.exit_code is not None else ""
    return f"{_clock(event.at)} {event.task} #{event.attempt} {event.kind:<9} {one_line(event.text)}{code}"


@click.command(
    epilog=epilog(
        [
            "codex-orch logs",
            "codex-orch logs --task T0002 --kind command --grep pytest",
            "codex-orch logs --kind error --json | jq .text",
            "codex-orch logs --follow",
        ],
        {0: "shown (also when nothing matched)", 2: "no such run or task, an unknown kind, or a bad --grep"},
    )
)
@click.option("--run-id", help="The run (default: the latest).")
@click.option("--task", "task", help="Only this task's attempts.")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KIND_CHOICES),
    help="Only events of this kind (repeatable).",
)
@click.option("--grep", help="Only events whose text or output matches this regular expression (Python syntax).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing events as the agents write them, until the run ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON Lines), each event whole.")
@click.option("--output", "show_output", is_flag=True, help="Also print each failed command's output tail.")
def logs(
    run_id: str | None,
    task: str | None,
    kinds: tuple[str, ...],
    grep: str | None,
    follow: bool,
    as_json: bool,
    show_output: bool,
) -> None:
    """Show what the agents did (commands, files, messages, errors).

    Read from every attempt's recorded events; with --follow, as they are written."""
    from codex_orch.commands.logs import follow_events, make_query, run_events
    from codex_orch.commands.runs import run_dir
    from codex_orch.state import read_state

    layout = checked_layout()
    folder = run_dir(layout, run_id_or_latest(layout, run_id))
    state = read_state(folder)
    query = make_query(state, task, kinds, grep)
    events = follow_events(folder, query) if follow else run_events(folder, state, query)
    for event in events:
        if as_json:
            click.echo(json.dumps(event.to_json()))
            continue
        say(_event_line(event))
        if show_output and event.failed and event.output:
            say(["    " + one_line(line) for line in event.output.splitlines()[-10:]])
        if follow:
            sys.stdout.flush()


@click.command(
    epilog=epilog(
        ["codex-orch timeline", "codex-orch timeline --run-id 20261125-101500-ab12 --task T0003 --json"],
        {0: "shown", 2: "no such run or task"},
    )
)
@click.option("--run-id", help="The run (default: the latest).")
@click.option("--task", "task", help="Only this task (and the run's own transitions).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON Lines).")
def timeline(run_id: str | None, task: str | None, as_json: bool) -> None:
    """Show a run's transitions and agent events in time order.

    One line each, across tasks, with the time since the run was created."""
    from codex_orch.commands.logs import timeline as build_timeline
    from codex_orch.commands.runs import run_dir

    layout = checked_layout()
    folder = run_dir(layout, run_id_or_latest(layout, run_id))
    for entry in build_timeline(folder, task):
        if as_json:
            click.echo(json.dumps(entry.to_json()))
            continue
        elapsed = f"+{entry.elapsed:9.3f}s" if entry.elapsed is not None else "         ?s"
        who = (entry.task or "run") + (f" #{entry.attempt}" if entry.attempt is not None else "")
        code = f" (exit {entry.exit_code})" if entry.exit_code is not None and entry.kind == "command" else ""
        say(f"{elapsed} {who:<14} {entry.kind:<9} {one_line(entry.text)}{code}")
