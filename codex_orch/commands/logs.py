"""`logs`, `timeline` and the failure digest of `report`: the recorded events of a run's attempts.

`logs` lists the events of every attempt (commands, file changes, messages, errors), filtered by task,
kind and a regular expression, and with `--follow` tails them by offset until the run ends.
`timeline` interleaves them with the journal's transitions in time order. The digest says, for each
failed task, the last command that failed with its output's tail and what the validator refused.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from codex_orch.commands.events import KINDS, AttemptTail, Event, attempt_folder, read_attempt
from codex_orch.errors import InputError
from codex_orch.state import journal_records, read_state

FOLLOW_POLL = 0.2  # seconds between two looks at the attempts' files under --follow
VALIDATION_LINES = 20


@dataclass(frozen=True)
class LogQuery:
    task: str | None = None
    kinds: tuple[str, ...] = ()
    grep: re.Pattern[str] | None = None

    def matches(self, event: Event) -> bool:
        if self.task is not None and event.task != self.task:
            return False
        if self.kinds and event.kind not in self.kinds:
            return False
        return self.grep is None or bool(self.grep.search(event.text) or self.grep.search(event.output))


def make_query(state: dict[str, Any], task: str | None, kinds: tuple[str, ...], grep: str | None) -> LogQuery:
    """The query, checked against the run: an unknown task or kind, or a bad expression, is an input error."""
    if task is not None and task not in state["tasks"]:
        raise InputError(f"--task: no task {task!r} in run {state['run_id']}", "`codex-orch status` lists its tasks.")
    for kind in kinds:
        if kind not in KINDS:
            raise InputError(f"--kind: unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    try:
        pattern = re.compile(grep) if grep is not None else None
    except re.error as exc:
        raise InputError(f"--grep: invalid regular expression {grep!r}: {exc}") from None
    return LogQuery(task, kinds, pattern)


def attempts_of(state: dict[str, Any], task: str | None = None) -> list[tuple[str, int, str]]:
    """(task, attempt number, agent) of every attempt, tasks in plan order."""
    return [
        (tid, a["n"], a.get("agent") or "codex")
        for tid in state["task_order"]
        if task is None or tid == task
        for a in state["tasks"][tid]["attempts"]
    ]


def run_events(run_dir: Path, state: dict[str, Any], query: LogQuery) -> list[Event]:
    """The events the query selects, attempt by attempt."""
    return [
        event
        for tid, n, agent in attempts_of(state, query.task)
        for event in read_attempt(run_dir, tid, n, agent)
        if query.matches(event)
    ]


def follow_events(
    run_dir: Path, query: LogQuery, stop: threading.Event | None = None, poll: float = FOLLOW_POLL
) -> Iterator[Event]:
    """The events the query selects, the recorded ones first, then each as it is written, until the run
    is no longer running (its last lines read) or `stop` is set."""
    tails: dict[tuple[str, int], AttemptTail] = {}
    while True:
        state = read_state(run_dir)
        done = state["status"] != "running"
        for tid, n, agent in attempts_of(state, query.task):
            tail = tails.setdefault((tid, n), AttemptTail(run_dir, tid, n, agent))
            yield from (e for e in tail.poll() if query.matches(e))
        if done or (stop is not None and stop.is_set()):
            for tail in tails.values():
                yield from (e for e in tail.reader.flush() if query.matches(e))
            return
        if stop is not None:
            stop.wait(poll)
        else:
            time.sleep(poll)


# --- timeline ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimelineEntry:
    at: float | None  # Unix time; None for an event of a run that recorded no times
    elapsed: float | None  # seconds since the run was created
    task: str | None
    attempt: int | None
    kind: str  # an event's kind, or "run", "task", "attempt" for the journal's transitions
    text: str
    exit_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _journal_entry(rec: dict[str, Any]) -> tuple[str | None, int | None, str, str] | None:
    """(task, attempt, kind, text) of a journal record worth a line, else None."""
    kind, task = rec["type"], rec.get("task")
    if kind == "run.created":
        return None, None, "run", f"run created ({len(rec.get('tasks', []))} tasks)"
    if kind == "run.status":
        return None, None, "run", f"run {rec['status']}"
    if kind == "run.resumed":
        return None, None, "run", "run resumed"
    if kind == "task.added":
        return rec["task"]["id"], None, "task", f"added (proposed by {rec.get('proposed_by')})"
    if kind == "task.status":
        error = rec.get("error") or {}
        why = f": {error.get('kind')}: {error.get('message', '')}" if error else ""
        return task, None, "task", f"{rec['status']}{why}"
    if kind == "attempt.started":
        again = f", continuing thread {rec['resume_thread']}" if rec.get("resume_thread") else ""
        return task, rec["n"], "attempt", f"attempt {rec['n']} started on {rec.get('agent') or 'codex'}{again}"
    if kind == "attempt.finished":
        outcome = f"{rec['failure']}: {rec.get('failure_message', '')}" if rec.get("failure") else "ok"
        return task, None, "attempt", f"attempt finished: {outcome}"
    if kind == "task.committed":
        return task, None, "task", f"committed {str(rec['commit'])[:10]} ({len(rec.get('files_changed') or [])} files)"
    if kind == "task.landed":
        return task, None, "task", f"landed as {str(rec['commit'])[:10]}"
    return None


def _stamp(ts: str | None) -> float | None:
    return datetime.fromisoformat(ts).timestamp() if ts else None


def timeline(run_dir: Path, task: str | None = None) -> list[TimelineEntry]:
    """The journal's transitions and the agents' events, one entry each, in time order."""
    state = read_state(run_dir)
    query = make_query(state, task, (), None)
    start = _stamp(state.get("created_at"))
    entries: list[TimelineEntry] = []
    current: dict[str, int] = {}  # the attempt a task is on, for its attempt.finished line
    for rec, _ in journal_records(run_dir):
        found = _journal_entry(rec)
        if found is None:
            continue
        tid, n, kind, text = found
        if rec["type"] == "attempt.started":
            current[str(tid)] = int(rec["n"])
        elif rec["type"] == "attempt.finished":
            n = current.get(str(tid))
        if task is not None and tid not in (None, task):
            continue
        at = _stamp(rec.get("ts"))
        entries.append(TimelineEntry(at, _elapsed(at, start), tid, n, kind, text))
    for event in run_events(run_dir, state, query):
        entries.append(
            TimelineEntry(
                event.at, _elapsed(event.at, start), event.task, event.attempt, event.kind, event.text, event.exit_code
            )
        )
    # Stable: the journal's lines before the events of the same instant; events without a time last.
    return sorted(entries, key=lambda e: (e.at is None, e.at or 0.0))


def _elapsed(at: float | None, start: float | None) -> float | None:
    return round(at - start, 3) if at is not None and start is not None else None


# --- the failure digest --------------------------------------------------------------------------
@dataclass(frozen=True)
class FailureDigest:
    task: str
    role: str
    error_kind: str | None
    error_message: str | None
    attempts: int
    command: Event | None  # the last command that failed, over all its attempts
    validation: tuple[str, ...]  # what the validator refused in its last attempt

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "role": self.role,
            "error": {"kind": self.error_kind, "message": self.error_message},
            "attempts": self.attempts,
            "failed_command": (
                {
                    "attempt": self.command.attempt,
                    "command": self.command.text,
                    "exit_code": self.command.exit_code,
                    "output_tail": self.command.output,
                }
                if self.command
                else None
            ),
            "validation_errors": list(self.validation),
        }


def _validation_errors(folder: Path) -> tuple[str, ...]:
    try:
        lines = (folder / "validation.txt").read_text("utf-8", "replace").splitlines()
    except OSError:
        return ()
    if not lines or lines[0] == "valid" or lines[0].startswith("not validated"):
        return ()
    return tuple(lines[:VALIDATION_LINES])


def failure_digest(run_dir: Path, state: dict[str, Any]) -> list[FailureDigest]:
    """For each failed task: the last failed command (with its output's tail) and the validator's errors."""
    out = []
    for tid in state["task_order"]:
        task = state["tasks"][tid]
        if task["status"] != "failed":
            continue
        failed = [
            e
            for n_, agent in ((a["n"], a.get("agent") or "codex") for a in task["attempts"])
            for e in read_attempt(run_dir, tid, n_, agent)
            if e.failed
        ]
        last = task["attempts"][-1]["n"] if task["attempts"] else None
        error = task.get("error") or {}
        out.append(
            FailureDigest(
                task=tid,
                role=task["role"],
                error_kind=error.get("kind"),
                error_message=error.get("message"),
                attempts=len(task["attempts"]),
                command=failed[-1] if failed else None,
                validation=_validation_errors(attempt_folder(run_dir, tid, last)) if last is not None else (),
            )
        )
    return out
