"""`cancel`: stop a run from another shell (or the dashboard), the way Ctrl-C stops it in its own.

A run being driven is stopped by its driver: SIGTERM to the codex-orch process that holds the run's
lock, which stops its agents, records the run interrupted and exits 130. A run of an executor whose
work goes on without a driver here (Temporal's workflow, after its submitter died) is stopped through
that executor, and recorded interrupted here. Either way `resume` continues it later.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from codex_orch.commands.runs import changing, is_driven, run_dir
from codex_orch.engine.executors import cancel_elsewhere
from codex_orch.errors import OrchError
from codex_orch.layout import Layout
from codex_orch.run_lock import LOCK_NAME, RunLock
from codex_orch.state import RunStore, read_state

CANCELLED = "the run was cancelled"


@dataclass(frozen=True)
class Cancelled:
    run_id: str
    how: str  # "signalled" (its driver), "workflow" (its executor's), or "not running"
    status: str  # the run's status as its state says after the cancel (before it, with wait=False)
    pid: int | None = None  # the driver signalled


def cancel_run(root: Path, run_id: str, wait: bool = True) -> Cancelled:
    """Stop the run; with `wait`, return once it has stopped and its state says so."""
    folder = run_dir(Layout(root), run_id)
    if is_driven(folder):
        lock = RunLock(folder)
        pid = lock.holder()
        if pid is None:
            raise OrchError(f"run {run_id}: the pid of the process driving it is not in {folder / LOCK_NAME}")
        os.kill(pid, signal.SIGTERM)
        if wait:
            lock.wait_released()
        return Cancelled(run_id, "signalled", read_state(folder)["status"], pid)
    if read_state(folder)["status"] == "running" and cancel_elsewhere(folder, run_id):
        with changing(folder) as store:
            _record_interrupted(store)
        return Cancelled(run_id, "workflow", "interrupted")
    return Cancelled(run_id, "not running", read_state(folder)["status"])


def _record_interrupted(store: RunStore) -> None:
    """What a driver records when it is stopped, for a run whose driver is gone: tasks it left running
    are interrupted (resume continues them on their threads), and so is the run."""
    for tid, task in store.view()["tasks"].items():
        if task["status"] == "running":
            error = {"kind": "interrupted", "message": CANCELLED}
            store.record("task.status", task=tid, status="interrupted", error=error)
    store.record("run.status", status="interrupted")
