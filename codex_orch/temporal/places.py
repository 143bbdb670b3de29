"""An agent's place in a Temporal run, where engine/slots.py takes its slots: this worker's own limit
first (`--max-tasks` agents at once in this process), then the run's (`--max-workers` across every
worker), asked of the workflow by the `agent-place` update and given back by the `agent-done` signal.

A worker admits twice `--max-tasks` task activities: while one task's agent works, the next one
fetches its base, makes its worktree, commits and pushes, as a local landing run does. When an agent
ends and a task of the same run waits on this worker, the place goes straight to it (with this
worker's own slot when it had none yet), and the workflow is told by the `agent-moved` signal: the
next agent starts without a round trip through the workflow (60-220 ms a hand-over otherwise).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any

from codex_orch.temporal.payloads import AGENT_DONE, AGENT_MOVED, AGENT_PLACE


class PlacePool:
    """The tasks of one run on this worker that wait for a place, first come first served; woken when a
    place is passed on, a slot of this worker freed, or the workflow answers."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.waiting: list[WorkflowPlaces] = []

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()


class WorkflowPlaces:
    """The places of one task attempt (used from its thread; the workflow is reached on `loop`)."""

    def __init__(
        self,
        local: threading.BoundedSemaphore,
        handle: Any,  # temporalio.client.WorkflowHandle of the run
        loop: asyncio.AbstractEventLoop,
        task_id: str,
        cancel: threading.Event,
        pool: PlacePool | None = None,
    ) -> None:
        self.local, self.handle, self.loop, self.task_id, self.cancel = local, handle, loop, task_id, cancel
        self.pool = pool or PlacePool()
        self._local_held = False
        self._held = False
        self._asked: concurrent.futures.Future[bool] | None = None
        self._handed = False  # a sibling's ended agent passed its place on (under pool.cond)
        self._gift_local = False  # ... and its slot of this worker with it

    def acquire(self, *, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.pool.cond:
            if not self._handed and self not in self.pool.waiting:
                self.pool.waiting.append(self)
            while True:
                if self._handed:
                    return self._take_gift()
                if not self._local_held and self.local.acquire(blocking=False):
                    self._local_held = True
                if self._local_held:
                    if self._asked is None:
                        ask = self.handle.execute_update(AGENT_PLACE, self.task_id, result_type=bool)
                        self._asked = asyncio.run_coroutine_threadsafe(ask, self.loop)
                        self._asked.add_done_callback(lambda _: self.pool.wake())
                    if self._asked.done():
                        return self._answered(self._asked)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False  # still waiting (and asked): the next call goes on
                self.pool.cond.wait(left)

    def _answered(self, asked: concurrent.futures.Future[bool]) -> bool:
        """Under pool.cond: the workflow's answer."""
        self._asked = None
        self._leave()
        if asked.cancelled() or asked.exception() is not None or not asked.result():
            self.cancel.set()  # the workflow has ended this attempt's activity (or cannot be reached)
            return False
        self._held = True
        return True

    def _take_gift(self) -> bool:
        """Under pool.cond: the place a sibling passed on is this task's now."""
        self._handed = False
        if self._gift_local:
            self._local_held, self._gift_local = True, False
        self._held = True
        self._leave()
        if self._asked is not None:  # no longer needed: the workflow grants it at once (the task holds one)
            self._asked.cancel()
            self._asked = None
        return True

    def _leave(self) -> None:
        if self in self.pool.waiting:
            self.pool.waiting.remove(self)

    def release(self) -> None:
        with self.pool.cond:
            heir = None
            if self._held:
                heir = next((w for w in self.pool.waiting if w is not self), None)
                if heir is not None:
                    self.pool.waiting.remove(heir)
                    heir._handed = True
                    heir._gift_local = self._local_held and not heir._local_held
                self._held = False
                signal = (AGENT_MOVED, [self.task_id, heir.task_id]) if heir is not None else (AGENT_DONE, self.task_id)
                asyncio.run_coroutine_threadsafe(self.handle.signal(*signal), self.loop)
            if self._local_held:
                self._local_held = False
                if heir is None or not heir._gift_local:
                    self.local.release()
            self.pool.cond.notify_all()

    def close(self) -> None:
        """The attempt has ended: a request still waiting is dropped and whatever is held given back (the
        workflow also frees the place when the activity ends, should the signal not reach it)."""
        with self.pool.cond:
            self._leave()
            if self._asked is not None:
                self._asked.cancel()
                self._asked = None
            if self._handed:  # passed on after it stopped waiting: taken, to be given back below
                self._take_gift()
        self.release()
