"""Agent slots: how many agents run at once (`limits.max_workers`), the gates and worktree set-ups that
run their code counted with them.

A landing run admits more tasks than it has slots: a task makes its worktree before it takes a slot,
and gives the slot back before its commit and landing, so that one task's git work overlaps the other
tasks' agents instead of keeping an agent waiting. Each task's own steps stay in order; only the
number of agents (and gates, and set-ups) running at any moment is limited. With one worker nothing
is admitted ahead: tasks run one at a time in the plan's order, as asked.
"""

from __future__ import annotations

import threading
from typing import Protocol

WAIT_STEP = 0.1  # how often a task waiting for a slot looks whether the run was stopped


class Places(Protocol):
    """Where slots come from: a semaphore in one process; in a Temporal run, the run's workflow
    (temporal/places.py), which counts agents across all workers."""

    def acquire(self, *, timeout: float | None = None) -> bool: ...

    def release(self) -> None: ...


class AgentSlots:
    def __init__(self, count: int, cancel: threading.Event, places: Places | None = None) -> None:
        self._free: Places = places if places is not None else threading.BoundedSemaphore(max(1, count))
        self._cancel = cancel

    def slot(self) -> Slot:
        """A task's own hold on one slot (taken and given back as its steps need)."""
        return Slot(self._free, self._cancel)


class Slot:
    def __init__(self, free: Places | None, cancel: threading.Event) -> None:
        self._free = free
        self._cancel = cancel
        self.held = free is None  # no slots to share: always held

    def take(self) -> bool:
        """Hold a slot (at once when already held); False when the run was stopped while waiting."""
        while not self.held:
            if self._cancel.is_set():
                return False
            assert self._free is not None
            self.held = self._free.acquire(timeout=WAIT_STEP)
        return True

    def give_back(self) -> None:
        if self.held and self._free is not None:
            self._free.release()
            self.held = False


def unlimited() -> Slot:
    """The slot of a task whose run shares none (every task runs its agent as soon as it starts)."""
    return Slot(None, threading.Event())
