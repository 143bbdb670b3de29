"""The run's spend against `budgets`: a breaker in mode block, a warning (said once, recorded) in warn.

Spend is read from the state, so it survives a crash and a resume: each attempt's usage and cost
(`attempt.finished`: the agent's own figure, else its usage at the price table). In block mode:
- the run's cost reaching `run_cost` stops dispatching: no task starts and no task starts another
  attempt; attempts running finish; the run ends `budget_exhausted` and `resume --budget-run-cost X`
  (recorded as `run.budget`, over the config's limit) goes on;
- a task whose tokens reach `task_tokens`, or whose cost reaches `task_cost`, gets no further attempt
  and fails as `budget`.
codex and gemini report usage at the end of a turn (`turn.completed`, `result`), codex-orch runs one turn
per attempt, and their limits act between attempts. claude reports each model response's usage as it
streams: an attempt whose tokens so far take the task to `task_tokens` is stopped there (block mode;
its failure is `budget`, like the attempt that would have been refused). Costs, which need the turn's
own figures, act between attempts on every agent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from codex_orch.agents.base import Usage
from codex_orch.config import Budgets
from codex_orch.state import RunStore

if TYPE_CHECKING:
    from codex_orch.engine.context import RunContext
    from codex_orch.plan import Task

EPSILON = 1e-9  # costs are sums of rounded figures

Warn = Callable[[str], None]


def _money(value: float) -> str:
    return f"${value:.4f}".rstrip("0").rstrip(".") if value < 1 else f"${value:.2f}"


def attempts_cost(attempts: list[dict[str, Any]]) -> float:
    return sum(a.get("cost_usd") or 0.0 for a in attempts)


def attempts_tokens(attempts: list[dict[str, Any]]) -> int:
    total = 0
    for attempt in attempts:
        usage = attempt.get("usage") or {}
        total += int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
    return total


class Breaker:
    """Whether a task may start, or start another attempt, within the run's budgets."""

    def __init__(self, store: RunStore, budgets: Budgets, warn: Warn) -> None:
        self.store = store
        self.budgets = budgets
        self.warn = warn
        self.tripped = False  # block mode: the run's cost reached run_cost
        self._lock = threading.Lock()

    @property
    def run_cost(self) -> float | None:
        override = (self.store.get("budgets") or {}).get("run_cost")
        return float(override) if override is not None else self.budgets.run_cost

    def run_spent(self) -> float:
        tasks = self.store.get("tasks") or {}
        return sum(attempts_cost(t["attempts"]) for t in tasks.values())

    def run_stop(self) -> str | None:
        """Why no task may start now (block mode), or None."""
        limit = self.run_cost
        if limit is None:
            return None
        spent = self.run_spent()
        if spent + EPSILON < limit:
            return None
        reason = f"the run's cost {_money(spent)} reached budgets.run_cost {_money(limit)}"
        return self._limit("run_cost", reason)

    def before_attempt(self, task_id: str) -> str | None:
        """Why this task may not start another attempt (block mode), or None."""
        stop = self.run_stop()
        if stop:
            return stop
        if self.budgets.task_tokens is None and self.budgets.task_cost is None:
            return None
        attempts = self.store.task(task_id)["attempts"]
        if self.budgets.task_tokens is not None:
            tokens = attempts_tokens(attempts)
            if tokens >= self.budgets.task_tokens:
                reason = f"{task_id} used {tokens} tokens, budgets.task_tokens is {self.budgets.task_tokens}"
                if self._limit(f"task_tokens:{task_id}", reason):
                    return reason
        if self.budgets.task_cost is not None:
            cost = attempts_cost(attempts)
            if cost + EPSILON >= self.budgets.task_cost:
                reason = f"{task_id} cost {_money(cost)}, budgets.task_cost is {_money(self.budgets.task_cost)}"
                if self._limit(f"task_cost:{task_id}", reason):
                    return reason
        return None

    def within_attempt(self, task_id: str, so_far: Usage) -> str | None:
        """Why a running attempt must stop (block mode): with what it has used so far, the task's tokens
        reached budgets.task_tokens. In warn mode never: its warning comes when the attempt ends."""
        limit = self.budgets.task_tokens
        if limit is None or self.budgets.mode != "block":
            return None
        tokens = attempts_tokens(self.store.task(task_id)["attempts"]) + so_far.input_tokens + so_far.output_tokens
        if tokens < limit:
            return None
        return f"{task_id} used {tokens} tokens by the middle of an attempt, budgets.task_tokens is {limit}"

    def _limit(self, key: str, reason: str) -> str | None:
        """A limit reached: in block mode the reason to stop; in warn mode a warning, once per limit."""
        if self.budgets.mode == "block":
            if key == "run_cost":
                self.tripped = True
            return reason
        with self._lock:
            if key in (self.store.get("budget_warnings") or []):
                return None
            self.store.record("run.budget_warning", limit=key, message=reason)
        self.warn(f"budget: {reason} (budgets.mode: warn, the run goes on)")
        return None


def dispatch_hold(ctx: RunContext, task: Task) -> str | None:
    """Why a ready task may not start now: "stop" (the run's budget is spent), "wait" (its agent is
    paused on its provider's quota), or None (the scheduler's `hold`)."""
    from codex_orch.engine.agent_choice import task_choice

    if ctx.spend is not None and ctx.spend.run_stop():
        return "stop"
    if ctx.quota is not None and ctx.quota.paused(task_choice(ctx.config, task, ctx.run_agent).name):
        return "wait"
    return None
