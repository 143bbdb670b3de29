"""The job queue: one SQLite database in WAL mode (`.orchestrator/service/jobs.db`, mode 0600).

Every process of the service (serve, its workers, `codex-orch worker`, the CLI and the MCP stdio server)
opens it; SQLite's locks are the only coordination. A claim is one `UPDATE … RETURNING` inside
`BEGIN IMMEDIATE`, so two workers can never take the same job. A claimed job holds a lease that its
worker renews; a job found `running` with its lease expired (its worker was killed, even by -9) is
claimed again, and its run is resumed on its recorded threads. Jobs on the same branch run one after
another: a job is not claimed while another job of its branch runs. Every change of a job appends a
row to `events`, which the HTTP API streams (`GET /api/events`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STATUSES = ("pending", "running", "awaiting_input", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
BUSY = ("running", "awaiting_input")  # never deleted nor cleaned up
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    request TEXT NOT NULL,           -- the job as enqueued (JSON)
    run_id TEXT NOT NULL UNIQUE,
    branch TEXT,                     -- jobs on one branch run one after another
    action TEXT NOT NULL DEFAULT 'run',  -- what the next claim does: run (create) or resume
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    enqueued_at REAL NOT NULL,       -- when it last became pending (enqueue -> claim latency)
    claimed_at REAL,
    finished_at REAL,
    worker TEXT,
    lease_until REAL,
    claims INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result TEXT                      -- what the last execution found (JSON)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    job INTEGER NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL
);
"""

_CLAIM = """
UPDATE jobs SET status = 'running', worker = :worker, lease_until = :lease, claimed_at = :now,
       claims = claims + 1, updated_at = :now
WHERE id = (
    SELECT id FROM jobs AS j
    WHERE (j.status = 'pending' OR (j.status = 'running' AND j.lease_until < :now))
      AND j.cancel_requested = 0
      AND (j.branch IS NULL OR NOT EXISTS (
          SELECT 1 FROM jobs AS o WHERE o.branch = j.branch AND o.id != j.id
            AND ((o.status = 'running' AND o.lease_until >= :now) OR (o.status = 'pending' AND o.id < j.id))))
    ORDER BY j.id LIMIT 1)
RETURNING *
"""


def db_path(orch_dir: Path) -> Path:
    return orch_dir / "service" / "jobs.db"


class JobStore:
    """One connection to the queue (one per thread: sqlite3 connections are not shared)."""

    def __init__(self, path: Path, busy_timeout_ms: int = 30_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Created 0600 before SQLite opens it (its -wal and -shm take the same mode). Only when missing:
            # closing any descriptor of the file drops every POSIX lock this process holds on it, so that
            # another process, closing its last connection, would delete the WAL our connections still use.
            try:
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
        self.path = path
        # One user at a time, but maybe from different threads (the event stream hops between pool threads).
        self.db = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _until_unlocked(self._wal, busy_timeout_ms / 1000)
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL: a power cut may lose the last commits, never the file
        self.db.executescript(_SCHEMA)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _wal(self) -> None:
        """WAL mode, kept in the file once set: only the connection that finds it unset sets it."""
        if str(self.db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            self.db.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): no upgrade from a read lock to deadlock on."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _event(self, db: sqlite3.Connection, job: int, status: str, now: float, **data: Any) -> None:
        db.execute(
            "INSERT INTO events (ts, job, status, data) VALUES (?, ?, ?, ?)", (now, job, status, json.dumps(data))
        )

    def add(self, request: dict[str, Any], run_id_prefix: str, branch: str | None) -> dict[str, Any]:
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO jobs (status, request, run_id, branch, created_at, updated_at, enqueued_at) "
                "VALUES ('pending', ?, ?, ?, ?, ?, ?)",
                (json.dumps(request), f"{run_id_prefix}-tmp-{now}-{os.getpid()}", branch, now, now, now),
            )
            job_id = int(cur.lastrowid or 0)
            db.execute("UPDATE jobs SET run_id = ? WHERE id = ?", (f"{run_id_prefix}-{job_id}", job_id))
            self._event(db, job_id, "pending", now, change="enqueued")
        return self.get(job_id) or {}

    def claim(self, worker: str, lease: float) -> dict[str, Any] | None:
        now = time.time()
        with self._write() as db:
            row = _first(db.execute(_CLAIM, {"worker": worker, "lease": now + lease, "now": now}).fetchall())
            if row is None:
                return None
            job = _job(row)
            self._event(db, job["id"], "running", now, change="claimed", worker=worker, claims=job["claims"])
        return job

    def renew(self, job_id: int, worker: str, lease: float) -> tuple[bool, bool]:
        """Extend the lease: (still ours, cancel requested)."""
        with self._write() as db:
            rows = db.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND worker = ? AND status = 'running' "
                "RETURNING cancel_requested",
                (time.time() + lease, job_id, worker),
            ).fetchall()
            row = _first(rows)
        return (row is not None, bool(row and row[0]))

    def finish(self, job_id: int, worker: str, status: str, result: dict[str, Any]) -> bool:
        """Record the outcome of the worker's execution; False when the job is no longer the worker's."""
        now = time.time()
        finished = now if status in FINISHED else None
        with self._write() as db:
            rows = db.execute(
                "UPDATE jobs SET status = ?, result = ?, finished_at = ?, updated_at = ?, lease_until = NULL, "
                "enqueued_at = CASE WHEN ? = 'pending' THEN ? ELSE enqueued_at END "
                "WHERE id = ? AND worker = ? AND status = 'running' RETURNING id",
                (status, json.dumps(result), finished, now, status, now, job_id, worker),
            ).fetchall()
            row = _first(rows)
            if row is not None:
                self._event(db, job_id, status, now, change="finished", result=result)
        return row is not None

    def requeue(self, job_id: int, action: str, allowed: Sequence[str], change: str) -> dict[str, Any] | None:
        """Make a job pending again (`continue`): only from one of the `allowed` statuses."""
        now = time.time()
        marks = ",".join("?" * len(allowed))
        with self._write() as db:
            rows = db.execute(
                f"UPDATE jobs SET status = 'pending', action = ?, enqueued_at = ?, updated_at = ?, finished_at = NULL, "
                f"cancel_requested = 0 WHERE id = ? AND status IN ({marks}) RETURNING id",
                (action, now, now, job_id, *allowed),
            ).fetchall()
            row = _first(rows)
            if row is not None:
                self._event(db, job_id, "pending", now, change=change)
        return self.get(job_id) if row is not None else None

    def cancel(self, job_id: int) -> str | None:
        """Cancel: a pending or awaiting job at once; a running one is asked to stop (its worker does it).
        The status it had, or None when there is no such job."""
        now = time.time()
        with self._write() as db:
            row = _first(db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchall())
            if row is None:
                return None
            status = str(row[0])
            if status in ("pending", "awaiting_input"):
                db.execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ? WHERE id = ?",
                    (now, now, job_id),
                )
                self._event(db, job_id, "cancelled", now, change="cancelled")
            elif status == "running":
                db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, job_id))
                self._event(db, job_id, "running", now, change="cancel_requested")
        return status

    def delete(self, job_id: int, allowed: Sequence[str] = (*FINISHED, "pending")) -> str | None:
        """Forget a job in one of the `allowed` statuses; the status it had (deleted or not), None if unknown."""
        marks = ",".join("?" * len(allowed))
        now = time.time()
        with self._write() as db:
            row = _first(db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchall())
            if row is None:
                return None
            db.execute(f"DELETE FROM jobs WHERE id = ? AND status IN ({marks})", (job_id, *allowed))
            if db.execute("SELECT changes()").fetchall()[0][0]:
                self._event(db, job_id, "deleted", now, change="deleted")
        return str(row[0])

    def get(self, job_id: int) -> dict[str, Any] | None:
        row = _first(self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchall())
        return _job(row) if row is not None else None

    def select(self, statuses: Sequence[str] = (), limit: int = 1000) -> list[dict[str, Any]]:
        if statuses:
            marks = ",".join("?" * len(statuses))
            rows = self.db.execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY id LIMIT ?", (*statuses, limit)
            ).fetchall()
        else:
            rows = self.db.execute("SELECT * FROM jobs ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [_job(r) for r in rows]

    def events_after(self, seq: int, limit: int = 500) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [
            {"seq": r["seq"], "ts": r["ts"], "job": r["job"], "status": r["status"], **json.loads(r["data"])}
            for r in rows
        ]

    def last_event(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchall()[0][0])

    def integrity(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchall()[0][0])


def read_jobs(path: Path, limit: int = 1000) -> list[dict[str, Any]] | None:
    """The newest `limit` jobs, newest first, read without writing anything (the dashboard): the database
    opened read-only (`mode=ro`), so a missing one is not created (None) and a reader never changes it."""
    if not path.is_file():
        return None
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        db.row_factory = sqlite3.Row
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchall():
            return []  # made by a store that has not written its tables yet
        return [_job(r) for r in db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()]
    finally:
        db.close()


def _first(rows: list[sqlite3.Row]) -> sqlite3.Row | None:
    """Statements are always stepped to their end (fetchall): a half-read one would keep its transaction open."""
    return rows[0] if rows else None


def _job(row: sqlite3.Row) -> dict[str, Any]:
    job = dict(row)
    job["request"] = json.loads(job["request"])
    job["result"] = json.loads(job["result"]) if job["result"] else None
    job["cancel_requested"] = bool(job["cancel_requested"])
    return job


def _until_unlocked(step: Callable[[], None], timeout: float) -> None:
    """`step`, tried again while SQLite answers "database is locked" without waiting: it does so to a
    journal-mode query or change while another connection opens or checkpoints the file, whatever the
    busy timeout (seen once in the suite: a worker's store failed to open beside the service's)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
