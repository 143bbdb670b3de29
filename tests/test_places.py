"""An agent's place in a Temporal run (temporal/places.py), its accounting checked without a server: the
workflow's side is a stand-in that answers `agent-place` as the test says and records the signals, on a
real event loop in its own thread, as the worker has it. What a place costs and where it goes is all
here: this worker's slots (a semaphore) and the run's places (the workflow's)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("temporalio")
from codex_orch.temporal.payloads import AGENT_DONE, AGENT_MOVED, AGENT_PLACE
from codex_orch.temporal.places import PlacePool, WorkflowPlaces


class Workflow:
    """The run's workflow as a worker's places see it: `agent-place` answered when the test grants it
    (or at once, `grant_all`), signals recorded in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, grant_all: bool = True) -> None:
        self.loop, self.grant_all = loop, grant_all
        self.signals: list[tuple[str, Any]] = []
        self.asked: list[str] = []
        self._answers: dict[str, asyncio.Future[bool]] = {}
        self._signalled = threading.Condition()

    async def execute_update(self, name: str, task_id: str, result_type: type) -> bool:
        assert (name, result_type) == (AGENT_PLACE, bool)
        self.asked.append(task_id)
        if self.grant_all:
            return True
        return await self._answer(task_id)

    def answer(self, task_id: str, granted: bool) -> None:
        self.loop.call_soon_threadsafe(lambda: self._answer(task_id).set_result(granted))

    def _answer(self, task_id: str) -> asyncio.Future[bool]:
        """On the loop's thread: the answer to `task_id`'s question, whichever of the two comes first."""
        return self._answers.setdefault(task_id, self.loop.create_future())

    async def signal(self, name: str, arg: Any) -> None:
        with self._signalled:
            self.signals.append((name, arg))
            self._signalled.notify_all()

    def wait_signals(self, count: int) -> list[tuple[str, Any]]:
        with self._signalled:
            assert self._signalled.wait_for(lambda: len(self.signals) >= count, timeout=30), self.signals
            return list(self.signals)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(timeout=30)
    running.close()


def places(workflow: Workflow, local: threading.BoundedSemaphore, pool: PlacePool, *ids: str) -> list[WorkflowPlaces]:
    return [WorkflowPlaces(local, workflow, workflow.loop, tid, threading.Event(), pool) for tid in ids]


def free_slots(local: threading.BoundedSemaphore) -> int:
    taken = 0
    while local.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        local.release()
    return taken


def test_an_ended_agent_passes_its_place_and_its_slot_to_the_task_waiting_on_this_worker(
    loop: asyncio.AbstractEventLoop,
) -> None:
    workflow, local, pool = Workflow(loop), threading.BoundedSemaphore(1), PlacePool()
    a, b = places(workflow, local, pool, "a", "b")
    assert a.acquire(timeout=30)
    assert not b.acquire(timeout=0)  # this worker's one slot is a's: b waits, and has not asked the run
    assert workflow.asked == ["a"]

    a.release()

    assert b.acquire(timeout=0)  # handed over: no round trip through the workflow
    assert workflow.wait_signals(1) == [(AGENT_MOVED, ["a", "b"])]
    assert workflow.asked == ["a"] and free_slots(local) == 0  # b holds the slot a had
    b.release()
    assert workflow.wait_signals(2)[1] == (AGENT_DONE, "b")
    assert free_slots(local) == 1


def test_a_task_that_had_its_own_slot_gets_the_place_and_the_slot_it_did_not_need_is_freed(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Two slots on this worker, one place in the run: b has a slot and waits for the workflow's answer
    when a's agent ends. b takes a's place; a's slot is given back; b's question is dropped."""
    workflow, local, pool = Workflow(loop, grant_all=False), threading.BoundedSemaphore(2), PlacePool()
    a, b = places(workflow, local, pool, "a", "b")
    assert not a.acquire(timeout=0)  # asked
    workflow.answer("a", True)
    assert a.acquire(timeout=30)
    assert not b.acquire(timeout=0)  # its own slot, and a question the workflow has not answered
    assert free_slots(local) == 0

    a.release()

    assert b.acquire(timeout=0)
    assert workflow.wait_signals(1) == [(AGENT_MOVED, ["a", "b"])]
    assert free_slots(local) == 1  # a's slot went back: b kept its own
    b.release()
    assert workflow.wait_signals(2)[1] == (AGENT_DONE, "b")
    assert free_slots(local) == 2


def test_a_place_handed_to_a_task_that_stopped_waiting_is_given_back_when_it_closes(
    loop: asyncio.AbstractEventLoop,
) -> None:
    workflow, local, pool = Workflow(loop), threading.BoundedSemaphore(1), PlacePool()
    a, b = places(workflow, local, pool, "a", "b")
    assert a.acquire(timeout=30)
    assert not b.acquire(timeout=0)
    a.release()  # handed to b, whose attempt is ending without its agent (cancelled meanwhile)

    b.close()

    assert workflow.wait_signals(2) == [(AGENT_MOVED, ["a", "b"]), (AGENT_DONE, "b")]
    assert free_slots(local) == 1


def test_a_place_the_workflow_refuses_cancels_the_attempt_and_frees_the_slot_when_it_closes(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The workflow answers False when the task's activity has already ended there (its worker was
    thought lost): the attempt is cancelled, nothing is signalled, this worker's slot comes back."""
    workflow, local, pool = Workflow(loop, grant_all=False), threading.BoundedSemaphore(1), PlacePool()
    [a] = places(workflow, local, pool, "a")
    assert not a.acquire(timeout=0)
    workflow.answer("a", False)

    assert not a.acquire(timeout=30)
    assert a.cancel.is_set()
    a.close()
    assert workflow.signals == [] and free_slots(local) == 1
