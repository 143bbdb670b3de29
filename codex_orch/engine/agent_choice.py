"""Which agent, and which model, an attempt runs on.

A task starts on its chosen agent (agent_registry.choose_agent: the plan's `agent`, `--agent`, the
role's `agent`, `agents.default`, codex). An attempt that continues a thread stays on the agent that
owns it. After a failure of the agent's provider (failures.FALLBACK_KINDS: rate_limited, auth,
transport), the next attempt goes to the first backend of `agents.fallback` this task has not tried
yet, on a fresh session, with the work so far left in the worktree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from codex_orch.agent_registry import DEFAULT_AGENT, AgentChoice, choose_agent
from codex_orch.config import Config
from codex_orch.failures import FALLBACK_KINDS, FailureKind
from codex_orch.plan import Task


def task_choice(config: Config, task: Task, run_agent: str | None) -> AgentChoice:
    role = config.roles.get(task.role)
    return choose_agent(task.agent, run_agent, role.agent if role else None, task.role, config.agents.default)


def agents_used(config: Config, tasks: Iterable[Task], run_agent: str | None) -> list[str]:
    """The backends a run of these tasks may start: the tasks' own, then those it may fall back to."""
    names = dict.fromkeys(task_choice(config, task, run_agent).name for task in tasks)
    names.update(dict.fromkeys(config.agents.fallback))
    return list(names)


def model_for(config: Config, task: Task, agent: str, own: bool, default: str | None) -> str | None:
    """On the task's own agent: the task's model, its role's, the agent's (`default`). A backend the task
    fell back to gets its own configured model only: the task's names a model of another provider."""
    if not own:
        return default
    role = config.roles.get(task.role)
    return task.model or (role.model if role else None) or default


def next_fallback(config: Config, kind: FailureKind | None, tried: Sequence[str]) -> str | None:
    if kind not in FALLBACK_KINDS:
        return None
    return next((name for name in config.agents.fallback if name not in tried), None)


@dataclass(frozen=True)
class AttemptAgent:
    """The agent of one attempt; its fields are the keys the journal records (attempt.started)."""

    agent: str
    model: str | None
    agent_source: str  # as AgentChoice.source, "thread" (continuing the thread of that agent) or "fallback"
    fallback_from: str | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


def thread_agent(attempts: Sequence[dict[str, Any]]) -> str:
    """The agent of the last attempt (runs recorded before there was a choice ran codex)."""
    return str(attempts[-1].get("agent") or DEFAULT_AGENT) if attempts else DEFAULT_AGENT
