"""An agent's place in a Temporal run, where engine/slots.py takes its slots: this worker's own limit
first (`--max-tasks` agents at once in this process), then the run's (`--max-workers` across every
worker), asked of the workflow by the `agent-place` update and given back by the `agent-done` signal.

A worker admits twice `--max-tasks` task activities: while one task's agent works, the next one
fetches its base, makes its worktree, commits and pushes, as a local landing run does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

from codex_orch.temporal.payloads import AGENT_DONE, AGENT_PLACE


class WorkflowPlaces:
    """The places of one task attempt (used from its thread; the workflow is reached on `loop`)."""

    def __init__(
        self,
        local: threading.BoundedSemaphore,
        handle: Any,  # temporalio.client.WorkflowHandle of the run
        loop: asyncio.AbstractEventLoop,
        task_id: str,
        cancel: threading.Event,
    ) -> None:
        self.local, self.handle, self.loop, self.task_id, self.cancel = local, handle, loop, task_id, cancel
        self._local_held = False
        self._held = False
        self._asked: concurrent.futures.Future[bool] | None = None

    def acquire(self, *, timeout: float | None = None) -> bool:
        wait = timeout
        if not self._local_held:
            if not self.local.acquire(timeout=wait):
                return False
            self._local_held = True
        if self._asked is None:
            ask = self.handle.execute_update(AGENT_PLACE, self.task_id, result_type=bool)
            self._asked = asyncio.run_coroutine_threadsafe(ask, self.loop)
        try:
            granted = self._asked.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            return False  # still asked: the next call waits on the same request
        self._asked = None
        if not granted:  # the workflow has ended this attempt's activity: it must not start an agent
            self.cancel.set()
            return False
        self._held = True
        return True

    def release(self) -> None:
        if self._held:
            self._held = False
            asyncio.run_coroutine_threadsafe(self.handle.signal(AGENT_DONE, self.task_id), self.loop)
        if self._local_held:
            self._local_held = False
            self.local.release()

    def close(self) -> None:
        """The attempt has ended: a request still waiting is dropped and whatever is held given back (the
        workflow also frees the place when the activity ends, should the signal not reach it)."""
        if self._asked is not None:
            self._asked.cancel()
            self._asked = None
        self.release()
