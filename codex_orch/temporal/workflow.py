"""The run as a Temporal workflow: it holds the DAG and the scheduling rules (dependencies, declared
paths, named locks, max workers) and the base each task starts from (the run branch's tip once its
dependencies have landed). Each task is three activities: `task_started` and `land` on the
submitter's own queue (the run's record and its run branch live there), the task itself on the
workers' queue, retried on another worker when one stops heartbeating.

As in a local landing run (engine/slots.py), `--max-workers` counts agents, and up to twice as many
tasks are admitted: a worker makes a task's worktree, commits and pushes it while other agents work.
A worker's task asks the workflow for an agent's place (the `agent-place` update) just before its
agent starts and gives it back (the `agent-done` signal) when the agent ends; a place whose task
ended any other way (its worker lost) is freed when the task's activity ends.

Workflow code must be deterministic: no clock, no I/O, no threads here. It runs in temporalio's
sandbox; the pure modules it uses (the concurrency rules, the Task type) are passed through.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from codex_orch.engine.scheduler import ConcurrencyRules
    from codex_orch.plan import Task
    from codex_orch.temporal.payloads import (
        AGENT_DONE,
        AGENT_MOVED,
        AGENT_PLACE,
        LAND,
        RUN_TASK,
        TASK_STARTED,
        WORKFLOW_NAME,
        LandArgs,
        Landed,
        RunInput,
        StartArgs,
        TaskInput,
        TaskOutcome,
    )

# The submitter's activities are quick (a journal record, a landing); one cut short by the submitter's
# death is retried when it comes back (`resume`), after this timeout.
SUBMITTER_TIMEOUT = timedelta(seconds=30)
SUBMITTER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))
FAILED = ("failed", "blocked", "cancelled")
T = TypeVar("T")


@workflow.defn(name=WORKFLOW_NAME)
class RunWorkflow:
    def __init__(self) -> None:
        self.tasks: list[Task] = []  # the plan's, then the follow-up tasks that join it
        self.by_id: dict[str, Task] = {}
        self.statuses: dict[str, str] = {}
        # tasks admitted whose activity runs (at most twice --max-workers). A task whose worker is done
        # holds its paths and locks until it has landed, but no longer its place: the next task starts.
        self.working: set[str] = set()
        self.agents: set[str] = set()  # tasks whose agent holds one of the run's --max-workers places
        self.landing: set[str] = set()  # tasks whose worker is done and whose outcome is not landed yet
        self.max_agents = 1
        self.freed = asyncio.Event()

    @workflow.query
    def statuses_now(self) -> dict[str, str]:
        return dict(self.statuses)

    @workflow.update(name=AGENT_PLACE)
    async def agent_place(self, task_id: str) -> bool:
        """Granted when fewer than --max-workers agents work (at once for a task that holds one)."""
        await workflow.wait_condition(
            lambda: task_id not in self.working or task_id in self.agents or len(self.agents) < self.max_agents
        )
        if task_id not in self.working:  # its activity has ended meanwhile: nothing to hold a place for
            return False
        self.agents.add(task_id)
        return True

    @workflow.signal(name=AGENT_DONE)
    def agent_done(self, task_id: str) -> None:
        self.agents.discard(task_id)

    @workflow.signal(name=AGENT_MOVED)
    def agent_moved(self, ids: list[str]) -> None:
        """An ended agent's place, passed by its worker to a task of this run waiting there."""
        old, new = ids
        self.agents.discard(old)
        if new in self.working:
            self.agents.add(new)

    @workflow.run
    async def run(self, inp: RunInput) -> dict[str, str]:
        self.tasks = tasks = [Task.from_json(t) for t in inp.tasks]  # grows with follow-up tasks
        self.by_id = by_id = {t.id: t for t in tasks}
        rules = ConcurrencyRules("landing", tuple(inp.allow), tuple(inp.ignore))
        self.statuses = {t.id: ("succeeded" if t.id in inp.done else "pending") for t in tasks}
        self.tip = inp.tip
        self.spent = inp.spent  # the run's budget is spent: no task starts; those at work finish
        self.max_agents = max(1, inp.max_workers)
        admitted = self.max_agents * 2 if self.max_agents > 1 else 1  # as engine/drive.py admits
        running: dict[str, asyncio.Task[Landed]] = {}
        while True:
            self._block(tasks)
            for task in tasks:
                if len(self.working) >= admitted or self.spent or (inp.budgeted and self.landing):
                    break  # (a budgeted run: what a task that has not landed yet spent is not known yet)
                if self._ready(task, rules, [by_id[r] for r in running]):
                    self.statuses[task.id] = "running"
                    self.working.add(task.id)
                    running[task.id] = asyncio.create_task(self._one(inp, task.id, self.tip))
            if not running:
                break
            self.freed.clear()
            freed = asyncio.create_task(self.freed.wait())
            try:
                await workflow.wait([*running.values(), freed], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # `cancel` or Ctrl-C on the submitter: stop the agents, then end
                for job in running.values():
                    job.cancel()
                await asyncio.gather(*running.values(), return_exceptions=True)
                raise
            finally:
                freed.cancel()
            for task_id, job in list(running.items()):
                if job.done():
                    del running[task_id]
                    self._landed(task_id, job.result())
            if inp.fail_fast and "failed" in self.statuses.values():
                await self._stop(running)
                break
        return dict(self.statuses)

    def _landed(self, task_id: str, landed: Landed) -> None:
        """A task's outcome landed on the submitter: its status, the run branch's tip, the run's spend, and
        the follow-up tasks its agent proposed (each taken once: a landing retried lists them again)."""
        self.statuses[task_id] = landed.status
        self.tip = landed.tip
        self.spent = self.spent or landed.spent
        for added in map(Task.from_json, landed.added):
            if added.id not in self.by_id:
                self.tasks.append(added)
                self.by_id[added.id] = added
                self.statuses[added.id] = "pending"

    async def _stop(self, running: dict[str, asyncio.Task[Landed]]) -> None:
        """--fail-fast after a failure, as a local run does: the agents at work are stopped (their tasks
        stay running here; the submitter records them interrupted) and tasks not started are cancelled."""
        for job in running.values():
            job.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        for task_id, status in self.statuses.items():
            if status == "pending":
                self.statuses[task_id] = "cancelled"

    def _ready(self, task: Task, rules: ConcurrencyRules, running: list[Task]) -> bool:
        """Pending, its dependencies landed, and no running task's paths or locks in its way."""
        return (
            self.statuses[task.id] == "pending"
            and all(self.statuses[d] == "succeeded" for d in task.blocked_by)
            and rules.conflict(task, running) is None
        )

    def _block(self, tasks: list[Task]) -> None:
        """A pending task whose dependency failed (or is blocked) is blocked; the submitter records why."""
        changed = True
        while changed:
            changed = False
            for task in tasks:
                if self.statuses[task.id] == "pending" and any(self.statuses[d] in FAILED for d in task.blocked_by):
                    self.statuses[task.id] = "blocked"
                    changed = True

    async def _one(self, inp: RunInput, task_id: str, base: str) -> Landed:
        task_input = await _on_submitter(inp, TASK_STARTED, StartArgs(task_id, base), TaskInput)
        try:
            outcome: TaskOutcome = await workflow.execute_activity(
                RUN_TASK,
                task_input,
                task_queue=inp.task_queue,
                result_type=TaskOutcome,
                start_to_close_timeout=timedelta(seconds=inp.task_timeout),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=30),
                    maximum_attempts=inp.max_attempts,
                ),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as exc:  # every attempt was lost or failed in codex-orch itself
            if isinstance(exc.cause, CancelledError):
                raise asyncio.CancelledError() from exc
            cause = exc.cause or exc
            message = f"the task's activity failed after {inp.max_attempts} attempt(s): {cause}"
            outcome = TaskOutcome("failed", error={"kind": "internal", "message": message[:2000]})
        finally:
            self.working.discard(task_id)
            self.agents.discard(task_id)  # its worker lost, or the task ended before its agent gave it back
            self.freed.set()
        self.landing.add(task_id)
        try:
            return await _on_submitter(inp, LAND, LandArgs(task_id, outcome), Landed)
        finally:
            self.landing.discard(task_id)


async def _on_submitter(inp: RunInput, name: str, arg: Any, result_type: type[T]) -> T:
    """One of the submitter's quick activities (`task_started`, `land`), on its own queue."""
    return await workflow.execute_activity(
        name,
        arg,
        task_queue=inp.submit_queue,
        result_type=result_type,
        start_to_close_timeout=SUBMITTER_TIMEOUT,
        retry_policy=SUBMITTER_RETRY,
    )
