"""Server-sent event streams of what changes on disk: a run's state, a task's agent events, the run list
and the job service's queue.

Nothing is pushed to codex-orch by the process that drives a run: it only appends to the journal and
the attempts' event files. So each stream watches those files with a short poll of their size (a
`stat` every POLL seconds per stream: no inotify dependency, works on any filesystem) and, when one
grew, reads only what was added (by offset) and folds it with `fold.apply`, the same fold every
reader uses. The job service's SQLite database is watched the same way (size and mtime of the file
and of its write-ahead log, where a commit lands) and read again, read-only, when they changed. The
browser keeps one EventSource per page; it never polls.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from codex_orch.commands.events import AttemptTail
from codex_orch.fold import apply
from codex_orch.state import JOURNAL_NAME, journal_records, read_state
from codex_orch.web.data import EVENTS_SHOWN, compact_task, runs_json
from codex_orch.web.jobs import jobs_json, jobs_signature

POLL = 0.05  # seconds between two looks at a watched file's size
RUNS_POLL = 0.5  # the run list changes rarely: its journals are looked at every half second
HEARTBEAT = 15.0  # a comment line after this long without news keeps proxies from closing the stream

Disconnected = Callable[[], Awaitable[bool]]


def sse(event: str, data: Any) -> bytes:
    """One server-sent event (its data is one JSON line, so no field can break the framing)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _run_summary(state: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for task in state["tasks"].values():
        counts[task["status"]] = counts.get(task["status"], 0) + 1
    return {"seq": state["seq"], "status": state["status"], "counts": counts}


async def run_changes(run_dir: Path, disconnected: Disconnected) -> AsyncIterator[bytes]:
    """`hello` with every task's live state, then a `change` with the tasks each new batch of journal
    records touched (a task added since the page loaded is among them: the page reloads its graph)."""
    state, offset = await asyncio.to_thread(read_state, run_dir, True)
    yield sse("hello", {**_run_summary(state), "tasks": [compact_task(t) for t in state["tasks"].values()]})
    journal = run_dir / JOURNAL_NAME
    quiet_since = time.monotonic()
    while not await disconnected():
        if _size(journal) > offset:
            changed: dict[str, None] = {}
            for rec, end in journal_records(run_dir, offset):
                offset = end
                if rec.get("seq", 0) <= state["seq"]:
                    continue
                apply(state, rec)
                task = rec["task"]["id"] if rec["type"] == "task.added" else rec.get("task")
                if isinstance(task, str):
                    changed[task] = None
            summary = _run_summary(state)
            yield sse("change", {**summary, "tasks": [compact_task(state["tasks"][t]) for t in changed]})
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > HEARTBEAT:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL)


async def task_changes(run_dir: Path, task_id: str, disconnected: Disconnected) -> AsyncIterator[bytes]:
    """A task's agent events, the recorded ones first, then as they are written (`events`), and `task`
    when the journal recorded something about it (an attempt, a status, a commit: the page reloads it)."""
    state, offset = await asyncio.to_thread(read_state, run_dir, True)
    if task_id not in state["tasks"]:
        yield sse("gone", {"error": f"no task {task_id!r} in run {state['run_id']}"})
        return
    tails: dict[int, AttemptTail] = {}
    journal = run_dir / JOURNAL_NAME
    quiet_since = time.monotonic()
    while not await disconnected():
        news = False
        if _size(journal) > offset:
            touched = False
            for rec, end in journal_records(run_dir, offset):
                offset = end
                if rec.get("seq", 0) > state["seq"]:
                    apply(state, rec)
                    touched = touched or rec.get("task") == task_id
            if touched:
                yield sse("task", compact_task(state["tasks"][task_id]))
                news = True
        for attempt in state["tasks"][task_id]["attempts"]:
            n = attempt["n"]
            tail = tails.setdefault(n, AttemptTail(run_dir, task_id, n, attempt.get("agent") or "codex"))
            events = (await asyncio.to_thread(tail.poll))[-EVENTS_SHOWN:]
            if events:  # from the first line: the page drops those it already has (attempt, line, kind)
                yield sse("events", [e.to_json() for e in events])
                news = True
        if news:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > HEARTBEAT:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL)


def _journal_sizes(runs_dir: Path) -> tuple[tuple[str, int], ...]:
    if not runs_dir.is_dir():
        return ()
    return tuple(sorted((p.name, _size(p / JOURNAL_NAME)) for p in runs_dir.iterdir() if p.is_dir()))


async def runs_changes(root: Path, runs_dir: Path, disconnected: Disconnected) -> AsyncIterator[bytes]:
    """The run list again (`runs`) whenever a run appears or its journal grows; the job service's queue
    (`jobs`) at once, then again whenever its database or write-ahead log changed and a job with it."""
    seen, queue = _journal_sizes(runs_dir), jobs_signature(root)
    jobs = await asyncio.to_thread(jobs_json, root)
    yield sse("jobs", jobs)  # at once: the page's list is whatever the stream last said
    quiet_since = time.monotonic()
    while not await disconnected():
        now, queue_now = _journal_sizes(runs_dir), jobs_signature(root)
        news = False
        if now != seen:
            seen, news = now, True
            yield sse("runs", await asyncio.to_thread(runs_json, root))
        if queue_now != queue:
            queue, fresh = queue_now, await asyncio.to_thread(jobs_json, root)
            if fresh != jobs:
                jobs, news = fresh, True
                yield sse("jobs", jobs)
        if news:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > HEARTBEAT:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(RUNS_POLL)
