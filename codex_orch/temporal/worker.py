"""`codex-orch worker`: one machine's share of Temporal runs. It polls a task queue for the runs'
workflows (the DAG, the rules) and for task attempts, and runs each attempt in its own clone
(task_run.py). While an attempt runs it heartbeats: each event of the agent's stream wakes the
heartbeat up and goes with it (the agent's last action, its thread, the worker's name), and a tick
keeps it going while the agent is silent. When this process dies, the heartbeats stop; Temporal
times the attempt out and gives it to another worker, with these last details.

Every `partial_every` seconds, and when the attempt is cancelled, the worktree's work in progress is
pushed to the run's remote, for an attempt elsewhere to continue from.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from codex_orch.temporal.payloads import RUN_TASK, TaskInput, TaskOutcome
from codex_orch.temporal.places import PlacePool, WorkflowPlaces
from codex_orch.temporal.task_run import TaskRun
from codex_orch.temporal.workflow import RunWorkflow


def default_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TaskActivities:
    def __init__(
        self,
        clone: Path,
        identity: str,
        partial_every: float,
        threads: ThreadPoolExecutor,
        client: Client,
        max_tasks: int,
    ) -> None:
        self.clone, self.identity, self.partial_every, self.threads = clone, identity, partial_every, threads
        self.client = client
        self.agents = threading.BoundedSemaphore(max_tasks)  # this worker's agents at once (--max-tasks)
        self.pools: dict[str, PlacePool] = {}  # per run (workflow id): its tasks here waiting for a place

    @activity.defn(name=RUN_TASK)
    async def run_task(self, inp: TaskInput) -> TaskOutcome:
        info = activity.info()
        details = info.heartbeat_details[0] if info.heartbeat_details else None
        run = TaskRun(self.clone, inp, info.attempt, self.identity)
        loop = asyncio.get_running_loop()
        handle = self.client.get_workflow_handle(str(info.workflow_id))
        pool = self.pools.setdefault(str(info.workflow_id), PlacePool())
        run.places = WorkflowPlaces(self.agents, handle, loop, str(inp.task["id"]), run.cancel, pool)
        progressed = asyncio.Event()
        last: dict[str, Any] = {"worker": self.identity, "attempt": info.attempt, "action": None, "events": 0}

        def notify(kind: str, task_id: str | None, data: Any) -> None:  # on the task's thread
            if kind == "progress":
                last["action"] = data.get("action")
                last["events"] += 1
                loop.call_soon_threadsafe(progressed.set)

        context = contextvars.copy_context()
        job = loop.run_in_executor(self.threads, context.run, run.run, details, notify)
        timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 60.0
        tick = max(0.2, min(timeout / 3, 10.0))
        next_partial = time.monotonic() + self.partial_every
        try:
            while not job.done():
                activity.heartbeat(dict(last))
                progressed.clear()
                waiter: asyncio.Future[Any] = asyncio.ensure_future(progressed.wait())
                await asyncio.wait([job, waiter], timeout=tick, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if time.monotonic() >= next_partial and not job.done():
                    await loop.run_in_executor(self.threads, run.snapshot_partial)
                    next_partial = time.monotonic() + self.partial_every
            return job.result()
        except asyncio.CancelledError:  # the run was cancelled: stop the agent, keep its work, say so
            run.cancel.set()
            await asyncio.wait([job])
            raise


def warm_up() -> None:
    """What every task needs, loaded once before the first one (the secret scanner's plugins above all:
    ~1-2 s), so that the first task on each worker does not pay for it."""
    from codex_orch.engine.secret_scan import _configured

    _configured()


async def serve(
    address: str,
    namespace: str,
    task_queue: str,
    clone: Path,
    identity: str,
    max_tasks: int = 1,
    partial_every: float = 60.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Poll `task_queue` until `stop` is set (by default: until SIGINT, SIGTERM or SIGHUP). The worker then
    shuts down through the SDK, which stops polling and lets it return; an interrupt raised inside the
    event loop instead would leave the SDK's tasks cancelled half-way, and the process would never end.
    Stopped by a signal (the `worker` command), it then ends the process itself (exit 0)."""
    signalled = stop is None
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
    warm_up()
    client = await Client.connect(address, namespace=namespace)
    # twice --max-tasks task activities, --max-tasks agents among them (temporal/places.py)
    threads = ThreadPoolExecutor(max_workers=max_tasks * 4 + 1, thread_name_prefix="task")
    activities = TaskActivities(clone, identity, partial_every, threads, client, max_tasks)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[RunWorkflow],
        activities=[activities.run_task],
        max_concurrent_activities=max_tasks * 2,
        identity=identity,
    )
    async with worker:
        await stop.wait()
    if signalled:  # the SDK has shut down: end here, before an interpreter teardown with its core
        # still loaded (seen once in CI: SIGSEGV on the way out after a clean shutdown)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
