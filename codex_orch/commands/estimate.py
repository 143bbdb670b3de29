"""What a plan will spend, before it runs: tokens and cost as a range (`plan --check`, `run --max-cost`).

Per task, from the history of this repository's earlier runs (every run in .orchestrator/runs), for
the task's role: tokens per attempt (median for the low end, 90th percentile for the high end) times
attempts per task (median, 90th percentile) — retries included. Cost likewise from the attempts'
recorded costs when they have one, else the tokens at the price of the task's model (split 9:1 input
to output, nothing cached). A role no earlier run used has only its rendered prompt to go on: the
prompt's tokens (~4 characters each) plus what an agent adds to every request (its instructions and
tools), once at the low end, over five requests at the high end — a rough range, said as such.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_orch.agents.base import Usage
from codex_orch.config import Config
from codex_orch.engine.agent_choice import model_for, task_choice
from codex_orch.engine.checks import check_context
from codex_orch.engine.prompts import PromptRenderer
from codex_orch.errors import InputError
from codex_orch.layout import Layout
from codex_orch.plan import Plan, Task
from codex_orch.prices import priced_model
from codex_orch.state import read_state

CHARS_PER_TOKEN = 4
AGENT_OVERHEAD_TOKENS = 2_000  # an agent's own instructions and tool definitions, per request (no history)
REQUESTS_HIGH = 5  # requests of one attempt at the high end (each resends the conversation; no history)
OUTPUT_SHARE = 0.1  # of the tokens, when a cost is computed from tokens


@dataclass
class RoleHistory:
    tokens: list[int] = field(default_factory=list)  # per attempt
    costs: list[float] = field(default_factory=list)  # per attempt whose cost is known
    attempts: list[int] = field(default_factory=list)  # per finished task


@dataclass(frozen=True)
class TaskEstimate:
    id: str
    role: str
    model: str | None
    prompt_tokens: int
    tokens: tuple[int, int]
    cost: tuple[float, float] | None  # None: unknown (see note)
    basis: str  # "history (N attempts)" or "prompt size only"
    note: str | None = None


@dataclass(frozen=True)
class Estimate:
    tasks: tuple[TaskEstimate, ...]
    runs: int  # earlier runs read

    @property
    def tokens(self) -> tuple[int, int]:
        return sum(t.tokens[0] for t in self.tasks), sum(t.tokens[1] for t in self.tasks)

    @property
    def cost(self) -> tuple[float, float]:
        """The cost of the tasks whose cost is known (see unknown)."""
        known = [t.cost for t in self.tasks if t.cost is not None]
        return round(sum(c[0] for c in known), 6), round(sum(c[1] for c in known), 6)

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.note for t in self.tasks if t.cost is None and t.note))

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": {"low": self.tokens[0], "high": self.tokens[1]},
            "cost_usd": {"low": self.cost[0], "high": self.cost[1]},
            "cost_unknown": list(self.unknown),
            "history_runs": self.runs,
            "tasks": [
                {
                    "id": t.id,
                    "role": t.role,
                    "model": t.model,
                    "prompt_tokens": t.prompt_tokens,
                    "tokens": {"low": t.tokens[0], "high": t.tokens[1]},
                    "cost_usd": {"low": t.cost[0], "high": t.cost[1]} if t.cost else None,
                    "basis": t.basis,
                    "note": t.note,
                }
                for t in self.tasks
            ],
        }

    def lines(self) -> list[str]:
        (low, high), (clow, chigh) = self.tokens, self.cost
        history = f"history of {self.runs} earlier run(s)" if self.runs else "no earlier run: from prompt sizes only"
        line = f"estimate: {low:,} to {high:,} tokens, ${clow:.2f} to ${chigh:.2f} ({history})"
        lines = [line]
        if self.unknown:
            lines.append(f"estimate: cost unknown for some tasks: {'; '.join(self.unknown)} (their tokens are counted)")
        return lines


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def history(layout: Layout) -> tuple[dict[str, RoleHistory], int]:
    """Per role: what the attempts and tasks of this repository's earlier runs used."""
    roles: dict[str, RoleHistory] = {}
    runs = 0
    if not layout.runs_dir.is_dir():
        return roles, 0
    for folder in sorted(layout.runs_dir.iterdir()):
        try:
            state = read_state(folder)
        except (InputError, OSError, ValueError, KeyError):
            continue  # not a run, or one this codex-orch cannot read: no history from it
        runs += 1
        for task in (state.get("tasks") or {}).values():
            seen = roles.setdefault(str(task.get("role")), RoleHistory())
            ended = [a for a in task.get("attempts") or () if a.get("ended_at")]
            for attempt in ended:
                usage = Usage.from_json(attempt.get("usage"))
                seen.tokens.append(usage.input_tokens + usage.output_tokens)
                if attempt.get("cost_usd") is not None:
                    seen.costs.append(float(attempt["cost_usd"]))
            if task.get("status") in ("succeeded", "failed") and ended:
                seen.attempts.append(len(ended))
    return roles, runs


def estimate_plan(layout: Layout, config: Config, plan: Plan, spec: str, run_agent: str | None = None) -> Estimate:
    roles, runs = history(layout)
    renderer = PromptRenderer(layout)
    tasks = []
    for task in plan.tasks:
        role = config.roles[task.role]
        try:
            chars = len(renderer.render(role.prompt_template, check_context(plan, task, spec, str(layout.root))))
        except InputError:
            chars = len(task.prompt) + len(spec)  # plan --check reports the template's error itself
        tasks.append(_task(config, task, math.ceil(chars / CHARS_PER_TOKEN), roles.get(task.role), run_agent))
    return Estimate(tuple(tasks), runs)


def _task(config: Config, task: Task, prompt: int, seen: RoleHistory | None, run_agent: str | None) -> TaskEstimate:
    agent = task_choice(config, task, run_agent).name
    model = priced_model(agent, model_for(config, task, agent, True, config.agents.backend(agent).model))
    if seen and seen.tokens and seen.attempts:
        tries = (statistics.median(seen.attempts), _percentile(seen.attempts, 0.9))
        tokens = (round(statistics.median(seen.tokens) * tries[0]), round(_percentile(seen.tokens, 0.9) * tries[1]))
        basis = f"history ({len(seen.tokens)} attempt(s) of role {task.role})"
        if seen.costs:
            low, high = statistics.median(seen.costs) * tries[0], _percentile(seen.costs, 0.9) * tries[1]
            return TaskEstimate(task.id, task.role, model, prompt, tokens, (round(low, 6), round(high, 6)), basis)
    else:
        tokens = (prompt + AGENT_OVERHEAD_TOKENS, (prompt + AGENT_OVERHEAD_TOKENS) * REQUESTS_HIGH)
        basis = "prompt size only"
    price = config.prices.get(model) if model else None
    if price is None:
        return TaskEstimate(task.id, task.role, model, prompt, tokens, None, basis, f"no price for model {model}")
    cost = tuple(_priced(price, n) for n in tokens)
    return TaskEstimate(task.id, task.role, model, prompt, tokens, (cost[0], cost[1]), basis)


def _priced(price: Any, tokens: int) -> float:
    output = round(tokens * OUTPUT_SHARE)
    return float(price.cost(Usage(input_tokens=tokens - output, output_tokens=output)))


def check_max_cost(root: Path, plan_file: Path, spec_file: Path | None, max_cost: float, agent: str | None) -> None:
    """`run --max-cost X`: refuse (before anything is written) when the estimate's low end is over X, or
    when the cost of some task cannot be estimated."""
    from codex_orch.config import load_config
    from codex_orch.engine.prompts import read_spec
    from codex_orch.plan_file import load_plan

    layout = Layout(root)
    config = load_config(layout)
    plan = load_plan(plan_file, config, str(plan_file))
    spec = read_spec(spec_file) if spec_file else ""
    estimate = estimate_plan(layout, config, plan, spec, agent)
    low = estimate.cost[0]
    if estimate.unknown:
        raise InputError(
            f"--max-cost: the plan's cost cannot be estimated: {'; '.join(estimate.unknown)}",
            "Add the model's price under `prices` in orchestrator.yaml (docs/configuration.md), or drop --max-cost.",
        )
    if low > max_cost:
        raise InputError(
            f"--max-cost: the plan's estimated cost is ${low:.2f} at least (${estimate.cost[1]:.2f} at most), "
            f"over ${max_cost:.2f}; nothing was started",
            "See `codex-orch plan --check PLAN` for the estimate per task; raise --max-cost or trim the plan.",
        )
