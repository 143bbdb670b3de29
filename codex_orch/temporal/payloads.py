"""What crosses Temporal: the workflow's input, what a worker is given for one task and what it gives
back. Small by design (ids, commit ids, the answer, usage): code and work travel through git, never
through the workflow's history, and everything from the run's state is redacted before it is sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKFLOW_NAME = "codex-orch-run"
RUN_TASK = "codex-orch-run-task"  # a task attempt, on a worker's queue
TASK_STARTED = "codex-orch-task-started"  # on the submitter's queue: record it, build the worker's input
LAND = "codex-orch-land"  # on the submitter's queue: record the outcome, land the commit
AGENT_PLACE = "agent-place"  # update: a worker's task asks for one of the run's --max-workers agent places
AGENT_DONE = "agent-done"  # signal: its agent has ended, the place is free
AGENT_MOVED = "agent-moved"  # signal: [from, to]: an ended agent's place passed to a waiting task of its worker


def workflow_id(run_id: str) -> str:
    return f"codex-orch-{run_id}"


def submit_queue(task_queue: str, run_id: str) -> str:
    """The queue only the submitter of this run polls: the record and the run branch live there."""
    return f"{task_queue}.submitter.{run_id}"


def task_ref(run_id: str, task_id: str) -> str:
    """Where a worker pushes a task's commit on the shared remote."""
    return f"refs/orch/{run_id}/tasks/{task_id}"


def partial_ref(run_id: str, task_id: str) -> str:
    """Where a worker pushes a task's work in progress (a snapshot of its worktree, not a result)."""
    return f"refs/orch/{run_id}/partial/{task_id}"


def tip_ref(run_id: str) -> str:
    """The run branch's tip as the submitter last pushed it: what workers fetch their bases from."""
    return f"refs/orch/{run_id}/tip"


@dataclass
class RunInput:
    run_id: str
    tasks: list[dict[str, Any]]  # Task.to_json() of each, in plan order
    done: list[str]  # succeeded before (a resumed run)
    tip: str  # the run branch's tip
    max_workers: int
    task_queue: str
    submit_queue: str
    allow: list[str] = field(default_factory=list)  # concurrency.allow / ignore
    ignore: list[str] = field(default_factory=list)
    heartbeat_timeout: float = 60.0
    task_timeout: float = 3600.0  # one activity attempt, from start to close
    max_attempts: int = 3  # activity attempts (a lost worker costs one)
    fail_fast: bool = False  # --fail-fast: the first failure stops the agents at work and starts nothing more
    spent: str | None = None  # the run's budget was spent before it started (a resume without a higher one)
    budgeted: bool = False  # budgets.run_cost in block mode: a task starts only once every spend is known


@dataclass
class StartArgs:
    task_id: str
    base: str  # the run branch's tip the task starts from


@dataclass
class TaskInput:
    """Everything a worker needs for one task, besides its own clone and config."""

    run_id: str
    task: dict[str, Any]  # Task.to_json()
    goal: str
    assumptions: list[str]
    spec: str | None
    dependencies: list[dict[str, Any]]  # id, role, status, result, files_changed (redacted)
    base: str
    remote: str  # URL or path of the shared repository
    run_agent: str | None = None


@dataclass
class TaskOutcome:
    status: str  # succeeded, failed, interrupted
    worker: str = ""
    commit: str | None = None  # the task's commit, pushed to task_ref (None: it changed no file)
    result: Any = None  # the valid answer
    attempts: list[dict[str, Any]] = field(default_factory=list)  # as the worker's journal folded them
    files_changed: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None  # kind, message, hint
    earlier: str | None = None  # what an earlier activity attempt left, as the agent was told


@dataclass
class LandArgs:
    task_id: str
    outcome: TaskOutcome


@dataclass
class Landed:
    status: str
    tip: str
    spent: str | None = None  # the run's budget is spent (budgets.run_cost, block mode): why no task starts now
    added: list[dict[str, Any]] = field(default_factory=list)  # Task.to_json() of its follow-up tasks (next_tasks)
