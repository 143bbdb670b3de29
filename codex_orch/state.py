"""A run's state on disk: an append-only journal plus a snapshot, and the lock that guards them.

Every transition is one journal line (a single write, so a crash leaves at most a torn last line,
which is ignored). The in-memory state is the journal folded through `apply`; state.json is that fold
at some journal offset, written atomically from time to time. Reading = snapshot + the journal's tail.
So the cost of a transition does not grow with the plan, and the state can always be rebuilt.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codex_orch.atomic import atomic_write_json
from codex_orch.errors import InputError
from codex_orch.faults import fault_point
from codex_orch.redaction import Redactor

SCHEMA_VERSION = 1
STATE_NAME = "state.json"
JOURNAL_NAME = "journal.jsonl"
SNAPSHOT_EVERY = 256  # journal records between automatic snapshots, at least; more for big runs

TERMINAL = ("succeeded", "failed", "blocked", "cancelled")
TASK_STATUSES = ("pending", "running", "succeeded", "failed", "blocked", "interrupted", "cancelled")
RUN_STATUSES = ("running", "succeeded", "failed", "partial", "interrupted", "budget_exhausted")

STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "run_id", "seq", "status", "tasks", "task_order"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "run_id": {"type": "string"},
        "seq": {"type": "integer", "minimum": 0},
        "status": {"enum": list(RUN_STATUSES)},
        "task_order": {"type": "array", "items": {"type": "string"}},
        "tasks": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["id", "role", "status", "attempts", "blocked_by"],
                "properties": {
                    "status": {"enum": list(TASK_STATUSES)},
                    "attempts": {"type": "array", "items": {"type": "object", "required": ["n"]}},
                },
            },
        },
    },
}


def workspace_mode(state: Mapping[str, Any]) -> str:
    """How the run's tasks share worktrees: "landing", "shared" or "per-task" (runs recorded before
    landing existed say only whether their worktree was shared)."""
    mode = state.get("workspace_mode")
    if mode:
        return str(mode)
    return "shared" if state.get("single_workspace") else "per-task"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _strict_dumps(value: Any, **options: Any) -> str:
    """JSON that every reader can load back: ValueError for NaN or Infinity, and for a lone surrogate
    (escaped as `\\ud800` it is ASCII, but loads back into a string no UTF-8 writer can encode)."""
    text = json.dumps(value, allow_nan=False, **options)
    if "\\ud" in text:  # an astral character (a surrogate pair), or a lone surrogate
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return text


# --- the fold --------------------------------------------------------------------------------------
def _new_task(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": spec["id"],
        "role": spec["role"],
        "blocked_by": list(spec.get("blocked_by", [])),
        "status": "pending",
        "attempts": [],
        "thread_id": None,
        "branch": None,
        "worktree": None,
        "base_commit": None,
        "commit": None,
        "head": None,
        "files_changed": [],
        "result": None,
        "error": None,
        "started_at": None,
        "ended_at": None,
        "violations": [],
        "file_claims": None,
        "follow_ups": [],
    }


def apply(state: dict[str, Any], rec: dict[str, Any]) -> None:
    """Fold one journal record into the state (the only place the state changes)."""
    kind, ts = rec["type"], rec.get("ts")
    if not _apply_run(state, kind, rec, ts):
        _apply_task(state["tasks"][rec["task"]], kind, rec, ts)
    state["seq"] = rec["seq"]
    state["updated_at"] = ts


def _apply_run(state: dict[str, Any], kind: str, rec: dict[str, Any], ts: str | None) -> bool:
    """A record about the run as a whole (or one adding a task); False for a task's own record."""
    if kind == "run.created":
        state.update(copied(rec["run"]))
        state.update(schema_version=SCHEMA_VERSION, status="running", created_at=ts)
        state["tasks"] = {spec["id"]: _new_task(spec) for spec in rec["tasks"]}
        state["task_order"] = [spec["id"] for spec in rec["tasks"]]
    elif kind == "run.status":
        state["status"] = rec["status"]
        if rec["status"] != "running":
            state["ended_at"] = ts
    elif kind == "run.workspace_ready":
        state["workspace_ready"] = True
    elif kind in ("run.merged", "run.cleaned", "run.validated", "run.integration"):  # lifecycle outcomes
        key = {"run.merged": "merge", "run.cleaned": "cleaned", "run.validated": "validation"}.get(kind, "integration")
        state[key] = {k: v for k, v in rec.items() if k not in ("type", "seq")}
    elif kind == "run.service":  # a service of the run: started, ready, failed or stopped
        service = state.setdefault("services", {}).setdefault(rec["name"], {})
        service.update({k: v for k, v in rec.items() if k not in ("type", "seq")})
    elif kind == "run.guardrail":  # what the check at a run's end found and put back
        state.setdefault("guardrail", []).extend(rec["changes"])
    elif kind in ("run.budget", "run.budget_warning", "run.paused", "run.unpaused"):
        _apply_spend(state, kind, rec)
    elif kind == "run.resumed":
        state["status"] = "running"
        state["resumed"] = state.get("resumed", 0) + 1
    elif kind == "worktree.setup":  # a worktree set up (or not) before its first agent, once
        state.setdefault("setups", {})[rec["worktree"]] = {k: v for k, v in rec.items() if k not in ("type", "seq")}
    elif kind == "task.added":
        spec = rec["task"]
        task = _new_task(spec)
        task["spec"] = spec  # the whole task: it is in no frozen plan.json
        task["proposed_by"] = rec.get("proposed_by")
        state["tasks"][spec["id"]] = task
        state["task_order"].append(spec["id"])
    else:
        return False
    return True


def _apply_spend(state: dict[str, Any], kind: str, rec: dict[str, Any]) -> None:
    if kind == "run.budget":  # `resume --budget-run-cost`: the run's own limits over the config's
        state.setdefault("budgets", {}).update(rec["budgets"])
    elif kind == "run.budget_warning":  # budgets.mode warn: a limit reached, said once
        state.setdefault("budget_warnings", []).append(rec["limit"])
    elif kind == "run.paused":  # dispatch to an agent paused on its provider's quota, until a time
        state.setdefault("paused", {})[rec["agent"]] = {"until": rec["until"], "reason": rec["reason"]}
    else:  # run.unpaused
        state.setdefault("paused", {}).pop(rec["agent"], None)


def _apply_task(task: dict[str, Any], kind: str, rec: dict[str, Any], ts: str | None) -> None:
    if kind.startswith("attempt."):
        _apply_attempt(task, kind, rec, ts)
    elif kind == "task.status":
        _task_status(task, rec, ts)
    elif kind == "task.workspace":
        for key in ("branch", "worktree", "base_commit"):
            task[key] = rec[key]
        task["head"] = task["head"] or rec["base_commit"]
    elif kind == "task.result":
        task["result"] = rec["result"]
    elif kind == "task.commit_refused":  # its commit was refused (secrets): the answer stands no more
        task["result"] = None
        task["attempts"][-1].update(failure=rec["failure"], failure_message=rec["message"])
    elif kind == "task.committed":
        task.update({k: rec[k] for k in ("commit", "head", "files_changed")})
        task.update(violations=rec.get("violations", []), file_claims=rec.get("file_claims"))
    elif kind == "task.landed":  # a landing run: the task's work is on the run branch, as this commit
        task["task_commit"] = task["commit"]
        task.update(commit=rec["commit"], head=rec["commit"], landed=True)
    elif kind == "task.rebased":  # its change replayed on the run branch's tip, for its agent to resolve
        task.update(base_commit=rec["base_commit"], conflicts=rec.get("conflicts", []), result=None, commit=None)
    elif kind in ("task.gates", "task.fix_round", "task.integration", "task.forecast", "task.held"):
        (_apply_gates if kind in ("task.gates", "task.fix_round") else _apply_integration)(task, kind, rec)
    elif kind == "task.follow_ups":
        task["follow_ups"] = rec["follow_ups"]
    else:
        raise ValueError(f"unknown journal record type {kind!r}")


def _apply_integration(task: dict[str, Any], kind: str, rec: dict[str, Any]) -> None:
    if kind == "task.integration":  # what the merge queue did with its work (commands/integration.py)
        task["integration"] = {k: v for k, v in rec.items() if k not in ("type", "task", "seq")}
        if rec.get("error"):  # integration_failed: its work is not verified any more
            task["status"] = "failed"
            task["error"] = rec["error"]
    elif kind == "task.forecast":  # conflicts predicted with other tasks' branches (engine/forecast.py)
        task["forecast"] = rec["conflicts"]
    else:  # task.held: not started, its paths overlap a predicted conflict that is still open
        task["held"] = {"by": rec["by"], "files": rec["files"]}


def _apply_gates(task: dict[str, Any], kind: str, rec: dict[str, Any]) -> None:
    if kind == "task.gates":  # the gates run on attempt n's work
        task.setdefault("gate_runs", []).extend({**run, "n": rec["n"]} for run in rec["runs"])
        if task["attempts"]:
            task["attempts"][-1]["gates"] = rec["runs"]
    else:  # a failing gate handed back to the agent's thread
        task["fix_rounds"] = rec["round"]


def _apply_attempt(task: dict[str, Any], kind: str, rec: dict[str, Any], ts: str | None) -> None:
    if kind == "attempt.started":
        thread = rec.get("resume_thread")
        task["attempts"].append(
            {"n": rec["n"], "started_at": ts, "ended_at": None, "resumed_thread": thread}
            | {"kind": rec.get("kind", "task"), "thread_id": thread, "pid": None}
            # the agent and model it ran on (records from before the choice existed: codex)
            | {"agent": rec.get("agent") or "codex", "model": rec.get("model")}
            | {"agent_source": rec.get("agent_source"), "fallback_from": rec.get("fallback_from")}
        )
    elif kind == "attempt.pid":
        task["attempts"][-1]["pid"] = rec["pid"]
    elif kind == "attempt.thread":
        task["attempts"][-1]["thread_id"] = task["thread_id"] = rec["thread_id"]
    elif kind == "attempt.finished":
        attempt = task["attempts"][-1]
        attempt.update({k: v for k, v in rec.items() if k not in ("type", "task", "ts", "seq")})
        attempt.update(ended_at=ts, pid=None)
        task["thread_id"] = rec.get("thread_id") or task["thread_id"]
    else:
        raise ValueError(f"unknown journal record type {kind!r}")


def _task_status(task: dict[str, Any], rec: dict[str, Any], ts: str | None) -> None:
    task["status"] = rec["status"]
    if rec["status"] == "running" and task["started_at"] is None:
        task["started_at"] = ts
    if rec["status"] in TERMINAL or rec["status"] == "interrupted":
        task["ended_at"] = ts
    if "error" in rec:
        task["error"] = rec["error"]
    elif rec["status"] in ("running", "pending", "succeeded"):
        task["error"] = None


# --- the store -------------------------------------------------------------------------------------
class RunStore:
    """The state of one run, kept in memory and on disk. Thread-safe."""

    def __init__(
        self, run_dir: Path, state: dict[str, Any], journal_offset: int, redactor: Redactor | None = None
    ) -> None:
        self.run_dir = run_dir
        self.redactor = redactor
        self._state = state
        self._lock = threading.RLock()
        self._since_snapshot = 0
        self._fd = os.open(run_dir / JOURNAL_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._offset = journal_offset

    @classmethod
    def create(
        cls, run_dir: Path, run: dict[str, Any], tasks: list[dict[str, Any]], redactor: Redactor | None = None
    ) -> RunStore:
        store = cls(run_dir, {"seq": 0}, 0, redactor)
        store.record("run.created", run=run, tasks=tasks)
        store.snapshot()
        return store

    @classmethod
    def open(cls, run_dir: Path, redactor: Redactor | None = None) -> RunStore:
        state, offset = read_state(run_dir, with_offset=True)
        journal = run_dir / JOURNAL_NAME
        if journal.stat().st_size != offset:  # a torn last line: cut it so new records start clean
            os.truncate(journal, offset)
        return cls(run_dir, state, offset, redactor)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                self.snapshot()
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, kind: str, **fields: Any) -> None:
        with self._lock:
            rec = {"seq": self._state["seq"] + 1, "ts": now_iso(), "type": kind, **fields}
            if self.redactor:
                rec = self.redactor.value(rec)
            text = _strict_dumps(rec, separators=(",", ":"))  # a record that cannot be read back is refused
            line = (text + "\n").encode("utf-8")
            apply(self._state, rec)  # first, so that a bad record never reaches the journal
            fault_point(f"journal:before:{kind}")
            written = os.write(self._fd, line)
            while written < len(line):
                written += os.write(self._fd, line[written:])
            fault_point(f"journal:after:{kind}")
            self._offset += len(line)
            self._since_snapshot += 1
            # A snapshot costs as much as the state is big: taking one every (8 x tasks) records keeps
            # the cost per record flat whatever the plan's size.
            if self._since_snapshot >= max(SNAPSHOT_EVERY, 8 * len(self._state.get("tasks", ()))):
                self.snapshot()

    def snapshot(self) -> None:
        with self._lock:
            from codex_orch.schema_check import check

            os.fsync(self._fd)
            snap = dict(self._state, journal_offset=self._offset)
            check(snap, STATE_SCHEMA, str(self.run_dir / STATE_NAME))
            atomic_write_json(self.run_dir / STATE_NAME, snap)
            self._since_snapshot = 0

    def view(self) -> dict[str, Any]:
        """A deep copy of the current state, safe to read while workers go on."""
        with self._lock:
            return copied(self._state)

    def task(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            return copied(self._state["tasks"][task_id])

    def task_fields(self, *keys: str, ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """These fields of every task (or of the tasks `ids`), copied: a question about many tasks without
        copying their attempts."""
        with self._lock:
            tasks = self._state["tasks"]
            chosen = tasks.items() if ids is None else ((tid, tasks[tid]) for tid in ids)
            return {tid: {k: copied(t.get(k)) for k in keys} for tid, t in chosen}

    def get(self, key: str) -> Any:
        with self._lock:
            return copied(self._state.get(key))


def copied(value: Any) -> Any:
    """A deep copy of JSON data (what the state holds): copy.deepcopy's work without its memo, several
    times faster on the state of a run of hundreds of tasks."""
    if isinstance(value, dict):
        return {k: copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copied(v) for v in value]
    return value


def journal_records(run_dir: Path, offset: int = 0) -> Iterator[tuple[dict[str, Any], int]]:
    """The run's complete journal records after byte `offset`, each with the offset past it (no torn tail)."""
    path = run_dir / JOURNAL_NAME
    if not path.is_file():
        return
    with open(path, "rb") as fh:
        fh.seek(offset)
        for line in fh:
            if not line.endswith(b"\n"):
                return
            try:
                rec = json.loads(line)
            except ValueError:
                return
            offset += len(line)
            yield rec, offset


def read_state(run_dir: Path, with_offset: bool = False) -> Any:
    """The run's state: state.json plus whatever the journal recorded after it."""
    label = str(run_dir / STATE_NAME)
    snapshot_path = run_dir / STATE_NAME
    state: dict[str, Any] = {"seq": 0}
    offset = 0
    if snapshot_path.is_file():
        try:
            state = json.loads(snapshot_path.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{label}: unreadable state ({exc}); it can be rebuilt from the journal by removing it"
            ) from None
        version = state.get("schema_version")
        if type(version) is not int or version != SCHEMA_VERSION:  # `true == 1`: the type is checked too
            newer = type(version) is int and version > SCHEMA_VERSION
            raise InputError(
                f"{label}: schema_version {version!r} is not supported (this codex-orch reads {SCHEMA_VERSION})",
                "It was written by a newer codex-orch: upgrade codex-orch to read it." if newer else None,
            )
        offset = int(state.pop("journal_offset", 0))
    elif not (run_dir / JOURNAL_NAME).is_file():
        raise InputError(f"{run_dir}: no such run (no state.json nor journal.jsonl)")
    for rec, end in journal_records(run_dir, offset):
        if rec.get("seq", 0) <= state.get("seq", 0):
            offset = end
            continue
        apply(state, rec)
        offset = end
    if "run_id" not in state:
        raise InputError(f"{run_dir}: the journal holds no run")
    return (state, offset) if with_offset else state
