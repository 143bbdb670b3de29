"""Workers: claim a job, drive its run in a child codex-orch, renew the lease while it runs, record the
outcome. `serve` runs a pool of them as threads; `codex-orch worker` runs one pool in its own process,
claiming from the same database.

While the child runs, the worker renews the job's lease every `lease / 3` seconds. A cancel asked for
(`cancel_requested`), or a lease lost, stops the child in order (SIGTERM: the engine records its tasks
interrupted); so does the worker's own stop (`serve` shutting down), after which the job is pending again
and the next claim resumes it. A worker killed by -9 takes its child with it (proc/child.py); the
lease expires and another worker (or the restarted service) claims the job and resumes the run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_orch.layout import Layout
from codex_orch.proc.child import start_child, stop_child
from codex_orch.run_lock import RunLock
from codex_orch.service import execute
from codex_orch.service.store import JobStore, db_path


@dataclass(frozen=True)
class WorkerSettings:
    lease: float = 30.0  # seconds a claim lasts without renewal
    poll: float = 0.05  # seconds between claims when the queue is empty
    stop_grace: float = 10.0  # seconds between SIGTERM and SIGKILL when a child is stopped


def worker_name(index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


class WorkerPool:
    """`count` worker threads on one repository's queue."""

    def __init__(self, root: Path, count: int, settings: WorkerSettings = WorkerSettings()) -> None:
        self.layout = Layout(root)
        self.settings = settings
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(worker_name(i),), name=f"job-worker-{i}", daemon=True)
            for i in range(count)
        ]

    def start(self) -> WorkerPool:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        for thread in self.threads:
            thread.join()

    def _loop(self, name: str) -> None:
        store = JobStore(db_path(self.layout.orch_dir))
        try:
            while not self.stopping.is_set():
                job = store.claim(name, self.settings.lease)
                if job is None:
                    self.wake.wait(self.settings.poll)
                    self.wake.clear()
                    continue
                execute_job(store, self.layout, job, name, self.settings, self.stopping.is_set)
        finally:
            store.close()


def execute_job(
    store: JobStore,
    layout: Layout,
    job: dict[str, Any],
    worker: str,
    settings: WorkerSettings,
    stopping: Callable[[], bool],
) -> str:
    """Drive the claimed job's run to its end (or a stop) and record what it says; the job's new status."""
    folder = execute.job_dir(layout, job["id"])
    if not _wait_for_run_lock(layout, job["run_id"], settings.lease):
        store.finish(job["id"], worker, "pending", {"error": "its run is still driven by another process"})
        return "pending"
    child = start_child(execute.child_argv(layout, job), layout.root, folder / "driver.log")
    cancelled = lost = False
    interval = max(0.05, settings.lease / 3)
    next_renewal = time.monotonic() + interval
    while child.poll() is None:
        if stopping():
            stop_child(child, settings.stop_grace)
            break
        if time.monotonic() >= next_renewal:
            ours, cancel = store.renew(job["id"], worker, settings.lease)
            next_renewal = time.monotonic() + interval
            if not ours or cancel:
                lost, cancelled = not ours, cancel
                stop_child(child, settings.stop_grace)
                break
        try:
            child.wait(min(0.05, interval))
        except subprocess.TimeoutExpired:
            pass
    code = child.wait()
    if lost:
        return "lost"
    if not cancelled:
        fresh = store.get(job["id"])
        cancelled = bool(fresh and fresh["cancel_requested"])
    status, result = execute.outcome(layout, job, code, cancelled)
    if status == "done":
        result.update(_deliver(layout, job, result))
    store.finish(job["id"], worker, status, result)
    return status


def _deliver(layout: Layout, job: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """A done job's work on its branch (a fast-forward) and, with `push: always`, on origin."""
    notes: dict[str, Any] = {}
    request = job["request"]
    branch, tip = request.get("branch"), result.get("commit")
    if branch and tip:
        problem = execute.move_branch(layout, branch, tip)
        notes["branch"] = branch
        if problem:
            notes["branch_problem"] = problem
    target = branch or result.get("run_branch")
    if request.get("push") == "always" and target:
        problem = execute.push(layout, target)
        notes["pushed"] = problem is None
        if problem:
            notes["push_problem"] = problem
    return notes


def _wait_for_run_lock(layout: Layout, run_id: str, timeout: float) -> bool:
    """A driver killed with its service dies a moment later (PR_SET_PDEATHSIG): wait for its lock to go."""
    run_dir = layout.run_dir(run_id)
    if not run_dir.is_dir():
        return True
    deadline = time.monotonic() + timeout
    while RunLock(run_dir).is_held_elsewhere():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
