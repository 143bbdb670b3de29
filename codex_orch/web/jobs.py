"""The job service's queue as the dashboard shows it, read from its database without writing anything.

A repository where `codex-orch serve` (or `jobs add`) never ran has no database: `jobs_json` is None and
the runs page has no jobs section. A job's run is `job-<id>` under `.orchestrator/runs/` once a worker
has started it; the page links there and takes its tasks done and cost from the run list.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codex_orch.layout import Layout
from codex_orch.service.store import db_path, read_jobs

HEAD_CHARS = 120  # of a job's prompt or goal


def jobs_db(root: Path) -> Path:
    return db_path(Layout(root).orch_dir)


def jobs_json(root: Path) -> dict[str, Any]:
    """`{"jobs": [...] | None, "error": ...}`: None without a database; an unreadable one is an error."""
    try:
        jobs = read_jobs(jobs_db(root))
    except sqlite3.Error as exc:
        return {"jobs": None, "error": f"{jobs_db(root)}: {exc}"}
    return {"jobs": None if jobs is None else [_row(job) for job in jobs], "error": None}


def _row(job: dict[str, Any]) -> dict[str, Any]:
    request = job["request"] if isinstance(job["request"], dict) else {}
    result = job["result"] if isinstance(job["result"], dict) else {}
    plan = request.get("plan") if isinstance(request.get("plan"), dict) else None
    if plan is not None:
        tasks = plan.get("tasks")
        kind, head = f"plan ({len(tasks) if isinstance(tasks, list) else '?'} tasks)", plan.get("goal")
    else:
        kind, head = "task", request.get("prompt")
    head = " ".join(str(head or "").split())
    return {
        "id": job["id"],
        "status": job["status"],
        "kind": kind,
        "head": head[:HEAD_CHARS] + ("…" if len(head) > HEAD_CHARS else ""),
        "branch": job["branch"] or result.get("run_branch"),
        "run_id": job["run_id"],
        "created_at": _iso(job["created_at"]),
        "finished_at": _iso(job["finished_at"]),
        "claims": job["claims"],
        "question": result.get("question"),
        "error": result.get("error"),
    }


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def jobs_signature(root: Path) -> tuple[tuple[int, int], ...]:
    """What changes when the queue does: size and mtime of the database and of its write-ahead log."""
    db = jobs_db(root)
    out = []
    for path in (db, db.with_name(db.name + "-wal")):
        try:
            st = path.stat()
        except OSError:
            out.append((-1, 0))
            continue
        out.append((st.st_size, st.st_mtime_ns))
    return tuple(out)
