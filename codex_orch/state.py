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
from codex_orch.fold import RUN_STATUSES, SCHEMA_VERSION, TASK_STATUSES, apply, copied
from codex_orch.redaction import Redactor

STATE_NAME = "state.json"
JOURNAL_NAME = "journal.jsonl"
SNAPSHOT_EVERY = 256  # journal records between automatic snapshots, at least; more for big runs


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
        try:
            store.record("run.created", run=run, tasks=tasks)
            store.snapshot()
        except BaseException:
            os.close(store._fd)  # no run to snapshot: only the journal's descriptor to let go
            raise
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
            try:
                fault_point(f"journal:before:{kind}")
                written = os.write(self._fd, line)
                while written < len(line):
                    written += os.write(self._fd, line[written:])
            except BaseException:
                self._forget()
                raise
            fault_point(f"journal:after:{kind}")
            self._offset += len(line)
            self._since_snapshot += 1
            # A snapshot costs as much as the state is big: taking one every (8 x tasks) records keeps
            # the cost per record flat whatever the plan's size.
            if self._since_snapshot >= max(SNAPSHOT_EVERY, 8 * len(self._state.get("tasks", ()))):
                self.snapshot()

    def _forget(self) -> None:
        """After a record failed to reach the journal (a full disk): the journal cut back to its last whole
        record, and the state back to what the journal says, so that no snapshot holds the record."""
        os.ftruncate(self._fd, self._offset)
        self._state = read_state(self.run_dir) if self._offset else {"seq": 0}

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
