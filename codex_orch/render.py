"""Terminal output: the one console, the status table, and the plain progress lines."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from codex_orch.views import RunView

_STYLE = {"succeeded": "green", "failed": "red", "blocked": "yellow", "running": "cyan",
          "interrupted": "magenta", "cancelled": "yellow", "pending": "dim", "partial": "yellow"}


def make_console(file: IO[str] | None = None) -> Any:
    from rich.console import Console

    file = file or sys.stdout
    width = None if file.isatty() else max(120, int(os.environ.get("COLUMNS", "0") or 0))
    return Console(file=file, highlight=False, width=width)


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "-"


def status_table(view: RunView) -> Any:
    from rich.table import Table
    from rich.text import Text

    title = f"run {view.run_id} — {view.status}"
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("task", "role", "status", "attempts", "commit", "tokens in/out", "time", "note"):
        table.add_column(column, no_wrap=column != "note")
    for t in view.tasks:
        style = _STYLE.get(t.status, "")
        note = ""
        if t.error_kind:
            note = f"{t.error_kind}: {t.error_message or ''}"[:120]
        table.add_row(
            t.id, t.role, f"[{style}]{t.status}[/]" if style else t.status, str(len(t.attempts)),
            _short(t.commit), f"{t.usage.input_tokens}/{t.usage.output_tokens}",
            f"{t.duration:.1f}s" if t.duration is not None else "-", Text(note),
        )
    return table


class LineReporter:
    """Plain progress lines, safe to call from worker threads."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def __call__(self, kind: str, task_id: str | None, data: Mapping[str, Any]) -> None:
        if kind == "progress":
            return
        if kind == "attempt":
            thread = data.get("thread")
            line = f"{task_id}: attempt {data['n']} started" + (f" (continuing thread {thread})" if thread else "")
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
        else:
            line = f"{task_id or ''}: {kind}"
        from rich.markup import escape

        with self._lock:
            elapsed = time.monotonic() - self._start
            self.console.print(f"[dim]{elapsed:7.1f}s[/] {escape(line)}", markup=True, highlight=False)
