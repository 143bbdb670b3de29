"""Terminal output: the one console, the status table, and the plain progress lines."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any

from codex_orch.commands.views import RunView
from codex_orch.engine.accounting import describe

_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "blocked": "yellow",
    "running": "cyan",
    "interrupted": "magenta",
    "cancelled": "yellow",
    "pending": "dim",
    "partial": "yellow",
    "budget_exhausted": "yellow",
}


def make_console(file: IO[str] | None = None, live: bool = False) -> Any:
    """rich's console on a terminal (or for a `live` display); to a pipe or a file, a plain one."""
    file = file or sys.stdout
    if not live and not file.isatty():
        return PlainConsole(file)
    from rich.console import Console

    width = None if file.isatty() else _pipe_width()
    return Console(file=file, highlight=False, width=width)


def _pipe_width() -> int:
    return max(120, int(os.environ.get("COLUMNS", "0") or 0))


class PlainConsole:
    """Output to a pipe or a file: text goes out as it is, without rich. Importing rich and laying a
    table out cost more than most commands' own work (and a run's last ~0.1 s), and no styling shows
    there. Anything but text (the `runs` table) is still laid out by rich."""

    is_terminal = False

    def __init__(self, file: IO[str]) -> None:
        self.file = file

    def print(self, obj: Any, **options: Any) -> None:
        if isinstance(obj, str):
            self.file.write(obj + "\n")
            return
        from rich.console import Console

        Console(file=self.file, highlight=False, width=_pipe_width()).print(obj, **options)


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "-"


def status_table(view: RunView) -> Any:
    from rich.table import Table
    from rich.text import Text

    title = f"run {view.run_id} — {view.status}"
    table = Table(title=title, title_justify="left", expand=False)
    for column in _COLUMNS:
        table.add_column(column, no_wrap=column != "note")
    for t in view.tasks:
        cells = _cells(t)
        table.add_row(*cells[:3], Text(t.status, style=_STYLE.get(t.status, "")), *cells[4:-1], Text(cells[-1]))
    return table


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.2f}" if value >= 0.995 or value == 0 else f"${value:.4f}"


def spend_lines(view: RunView) -> list[str]:
    """Under the table: what the run cost, what could not be priced, and agents paused on a quota."""
    from datetime import datetime

    u = view.usage
    lines = [f"cost: {_usd(view.cost_usd)} (tokens in {u.input_tokens}, out {u.output_tokens})"]
    if view.run_cost_budget is not None:
        lines[0] += f"; budget (resume --budget-run-cost): {_usd(view.run_cost_budget)}"
    if view.cost_unknown:
        lines.append(f"cost unknown: {'; '.join(view.cost_unknown)} (tokens only)")
    for agent, pause in sorted(view.paused.items()):
        try:
            until = datetime.fromisoformat(pause["until"]).astimezone().strftime("%H:%M:%S")
        except (KeyError, TypeError, ValueError):
            until = str(pause.get("until"))
        lines.append(f"{agent}: paused until {until} ({pause.get('reason', 'rate limited')})")
    return lines


RICH_TABLE_MAX_ROWS = 200
_COLUMNS = ("task", "role", "agent", "status", "attempts", "commit", "tokens in/out", "cost", "time", "checks", "note")


def _cells(t: Any) -> list[str]:
    note = f"{t.error_kind}: {t.error_message or ''}"[:120] if t.error_kind else ""
    if t.file_claims:
        note = "; ".join(n for n in (note, "flagged: " + describe(t.file_claims)) if n)[:160]
    if t.notes:
        note = "; ".join(n for n in (note, *t.notes) if n)[:200]
    last = t.attempts[-1] if t.attempts else None
    return [
        t.id,
        t.role,
        (t.agents + (f" ({last.model})" if last and last.model else "")) if last else "-",
        t.status,
        str(len(t.attempts)),
        _short(t.commit),
        f"{t.usage.input_tokens}/{t.usage.output_tokens}",
        "?" if t.cost_unknown and t.cost_usd is None else _usd(t.cost_usd),
        f"{t.duration:.1f}s" if t.duration is not None else "-",
        t.checks or "-",
        note,
    ]


def print_status(console: Any, view: RunView) -> None:
    """The status table on a terminal; to a pipe or a file, or past RICH_TABLE_MAX_ROWS tasks, plain
    aligned columns, one line a task (rich's layout of a thousand rows takes the better part of a
    second; a line per task is what grep and a log want)."""
    if console.is_terminal and len(view.tasks) <= RICH_TABLE_MAX_ROWS:
        console.print(status_table(view))
        for line in spend_lines(view):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    header = list(_COLUMNS)
    rows = [_cells(t) for t in view.tasks]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header) - 1)]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(view.counts.items()))
    lines = [
        f"run {view.run_id} — {view.status} ({counts})",
        "  ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=True)).rstrip(),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, [*widths, 0], strict=True)).rstrip() for r in rows]
    lines += spend_lines(view)
    console.file.write("\n".join(lines) + "\n")


def runs_table(runs: Sequence[Any]) -> Any:
    """`codex-orch runs`: one row per run (commands/runs.py RunSummary)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="runs", title_justify="left", expand=False)
    for column in ("run", "status", "started", "tasks", "branch"):
        table.add_column(column, no_wrap=column != "branch")
    for r in runs:
        started = (r.created_at or "-").replace("T", " ")[:19]
        done = f"{r.succeeded}/{r.tasks} succeeded" + (f", {r.failed} failed" if r.failed else "")
        status = r.status + (" (being driven)" if r.driven and r.status == "running" else "")
        note = r.problem or r.branch or "-"
        table.add_row(r.run_id, Text(status, style=_STYLE.get(r.status, "")), started, done, Text(note))
    return table


class LineReporter:
    """Plain progress lines, safe to call from worker threads."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._start = time.monotonic()
        # to a file or a pipe, a line goes out as it is: rich's layout of it costs more than the task
        # it reports in a long run of quick tasks, and nothing of it shows there
        self._plain = None if console.is_terminal else console.file

    def __call__(self, kind: str, task_id: str | None, data: Mapping[str, Any]) -> None:
        if kind in ("progress", "plan", "started"):
            return
        line = _progress_line(kind, task_id, data)
        with self._lock:
            elapsed = time.monotonic() - self._start
            if self._plain is not None:
                self._plain.write(f"{elapsed:7.1f}s {line}\n")
                self._plain.flush()
                return
            from rich.markup import escape

            self.console.print(f"[dim]{elapsed:7.1f}s[/] {escape(line)}", markup=True, highlight=False)


def _progress_line(kind: str, task_id: str | None, data: Mapping[str, Any]) -> str:
    """One event of a run as a line of progress."""
    if kind == "attempt":
        thread = data.get("thread")
        agent = data.get("agent") or "codex"
        on = f" on {agent}" + (f" ({data['model']})" if data.get("model") else "")
        line = f"{task_id}: attempt {data['n']} started{on}" + (f" (continuing thread {thread})" if thread else "")
    elif kind == "finished":
        status = data.get("status")
        extra = ""
        if status == "succeeded":
            extra = f" (commit {_short(data.get('commit'))})" if data.get("commit") else " (no changes)"
        elif status == "failed":
            extra = f" ({data.get('kind')}: {str(data.get('message', ''))[:160]})"
        elif status == "blocked":
            extra = f" (waits for {data.get('cause')})"
        line = f"{task_id}: {status}{extra}"
    elif kind == "service":
        line = f"service {data['name']}: {data['status']} (pid {data.get('pid')})"
    elif kind == "violation":
        line = f"{task_id}: changed files outside its paths (left out of its commit): {', '.join(data['files'][:5])}"
    elif kind == "flag":
        line = f"{task_id}: flagged: {data['message']}"
    elif kind == "warning":
        line = f"warning: {data['message']}"
    elif kind in ("gate", "setup"):
        line = f"{task_id}: {_check_line(kind, data)}"
    else:
        line = f"{task_id or ''}: {kind}"
    return line


class LiveTable:
    """A live table, one row per task: status, elapsed, attempt, the agent's latest action, tokens.

    `notify` is called from worker threads; rich's Live refreshes from its own thread."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        self._live: Any = None

    def __enter__(self) -> LiveTable:
        from rich.live import Live

        self._live = Live(get_renderable=self._render, console=self.console, refresh_per_second=4, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def __call__(self, kind: str, task_id: str | None, data: Mapping[str, Any]) -> None:
        with self._lock:
            if kind == "warning":
                self.console.print(f"warning: {data['message']}", markup=False, highlight=False)
                return
            if kind == "plan":
                for tid, info in data["tasks"].items():
                    self._rows.setdefault(tid, _row(info["role"], info["status"]))
                return
            if task_id is None:
                return
            row = self._rows.setdefault(task_id, _row(str(data.get("role", "?")), "pending"))
            _update_row(row, kind, data)

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(expand=False, box=None, padding=(0, 1))
        for column in ("task", "role", "status", "elapsed", "try", "tokens", "now"):
            table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=60 if column == "now" else None)
        now = time.monotonic()
        with self._lock:
            rows = list(self._rows.items())
        for tid, row in rows:
            elapsed = "" if row["start"] is None else f"{(row['end'] or now) - row['start']:.0f}s"
            style = _STYLE.get(row["status"], "")
            table.add_row(
                tid,
                row["role"],
                Text(row["status"], style=style),
                elapsed,
                str(row["attempt"] or ""),
                str(row["tokens"] or ""),
                Text(row["action"]),
            )
        return table


def _check_line(kind: str, data: Mapping[str, Any]) -> str:
    if kind == "setup":
        return "setting its worktree up"
    return f"gate {data.get('name')} on attempt {data.get('attempt')}"


def _row(role: str, status: str) -> dict[str, Any]:
    return {"role": role, "status": status, "attempt": 0, "action": "", "tokens": 0, "start": None, "end": None}


@contextmanager
def progress(console: Any, plain: bool) -> Iterator[Any]:
    """The progress sink for a run: a live table on a terminal, plain lines otherwise."""
    if plain or not console.is_terminal:
        yield LineReporter(console)
        return
    with LiveTable(console) as table:
        yield table


def _update_row(row: dict[str, Any], kind: str, data: Mapping[str, Any]) -> None:
    """One progress event into its task's row."""
    if kind == "started":
        row.update(status="running", start=row["start"] or time.monotonic(), end=None)
    elif kind == "attempt":
        row.update(attempt=data["n"], action=f"starting {data.get('agent') or 'codex'}")
    elif kind == "progress":
        row["action"] = str(data.get("action", ""))
        usage = data.get("usage")
        if usage:
            row["tokens"] += int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
    elif kind == "finished":
        row.update(status=data.get("status", "?"), end=time.monotonic())
        row["action"] = str(data.get("kind") or data.get("cause") or "")
    elif kind == "violation":
        row["action"] = f"outside its paths: {', '.join(data.get('files', [])[:3])}"
    elif kind == "flag":
        row["action"] = f"flagged: {data.get('message', '')}"
    elif kind in ("gate", "setup"):
        row["action"] = _check_line(kind, data)
