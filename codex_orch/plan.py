"""A plan: its tasks (`Task`: role, prompt, dependencies, paths, locks ...), their order and cycles.

plan_file.py loads one from the original codex-orch JSON format and checks it before anything runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codex_orch.schema_check import SECONDS

_STR_LIST = {"type": "array", "items": {"type": "string"}}

# The keys of a task codex-orch knows: the original format's, then codex-orch's extensions.
TASK_PROPERTIES: dict[str, Any] = {
    "id": {"type": ["string", "null"]},
    "role": {"type": "string"},
    "prompt": {"type": "string"},  # may be empty, as in the original: the acceptance may say it all
    "acceptance": {"type": ["string", "null"]},
    "blocked_by": {"type": ["array", "null"], "items": {"type": "string"}},
    "paths": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
    "locks": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reads": _STR_LIST, "writes": _STR_LIST},
    },
    "timeout": {**SECONDS, "type": ["number", "null"]},
    "model": {"type": ["string", "null"]},
    "agent": {"type": ["string", "null"]},
    "gates": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
}


@dataclass(frozen=True)
class Task:
    id: str
    role: str
    prompt: str
    acceptance: str
    blocked_by: tuple[str, ...] = ()
    paths: tuple[str, ...] | None = None
    lock_reads: tuple[str, ...] = ()
    lock_writes: tuple[str, ...] = ()
    timeout: float | None = None
    model: str | None = None
    agent: str | None = None  # None: the plan leaves it to --agent, the role, the config (agent_registry)
    gates: tuple[str, ...] | None = None  # None: the config's gates for its role; (): none
    # keys codex-orch does not know, kept as written (not hashed: a Task stays usable as a key)
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def context(self) -> dict[str, Any]:
        """Every field, for prompt templates (StrictUndefined: a missing key would be an error)."""
        return {
            "id": self.id,
            "role": self.role,
            "prompt": self.prompt,
            "acceptance": self.acceptance,
            "blocked_by": list(self.blocked_by),
            "paths": list(self.paths) if self.paths is not None else None,
            "locks": {"reads": list(self.lock_reads), "writes": list(self.lock_writes)},
            "timeout": self.timeout,
            "model": self.model,
            "agent": self.agent,
            "gates": list(self.gates) if self.gates is not None else None,
            "extra": copy.deepcopy(dict(self.extra)),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Task:
        """A task written by to_json (already checked when it was first loaded)."""
        locks = data.get("locks") or {}
        paths = data.get("paths")
        return cls(
            id=data["id"],
            role=data["role"],
            prompt=data["prompt"],
            acceptance=data.get("acceptance") or "",
            blocked_by=tuple(data.get("blocked_by") or ()),
            paths=tuple(paths) if paths is not None else None,
            lock_reads=tuple(locks.get("reads", ())),
            lock_writes=tuple(locks.get("writes", ())),
            timeout=data.get("timeout"),
            model=data.get("model"),
            agent=data.get("agent") or None,
            gates=tuple(data["gates"]) if data.get("gates") is not None else None,
            extra={k: v for k, v in data.items() if k not in TASK_PROPERTIES},
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "role": self.role,
            "prompt": self.prompt,
            "acceptance": self.acceptance,
            "blocked_by": list(self.blocked_by),
        }
        if self.paths is not None:
            data["paths"] = list(self.paths)
        if self.lock_reads or self.lock_writes:
            data["locks"] = {"reads": list(self.lock_reads), "writes": list(self.lock_writes)}
        for key in ("timeout", "model"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.agent is not None:
            data["agent"] = self.agent
        if self.gates is not None:
            data["gates"] = list(self.gates)
        data.update(copy.deepcopy(dict(self.extra)))
        return data


@dataclass(frozen=True)
class Plan:
    goal: str
    assumptions: tuple[str, ...]
    tasks: tuple[Task, ...]
    # What the loader accepted but a user should hear about once (unknown task keys); not part of the plan.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "goal": self.goal,
            "assumptions": list(self.assumptions),
            "tasks": [task.to_json() for task in self.tasks],
        }


def find_cycle(tasks: Sequence[Task]) -> list[str] | None:
    """A dependency cycle as [a, b, …, a], or None. Iterative, so deep chains cannot overflow."""
    deps = {task.id: task.blocked_by for task in tasks}
    color: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start, first_deps in deps.items():
        if color.get(start):
            continue
        path: list[str] = [start]
        stack = [iter(first_deps)]
        color[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                color[path.pop()] = 2
                stack.pop()
                continue
            state = color.get(nxt)
            if state == 1:
                return [*path[path.index(nxt) :], nxt]
            if state is None:
                color[nxt] = 1
                path.append(nxt)
                stack.append(iter(deps.get(nxt, ())))
    return None


def topological_order(tasks: Sequence[Task]) -> list[Task]:
    """Dependencies first; among ready tasks, plan order (stable)."""
    import heapq

    position = {task.id: i for i, task in enumerate(tasks)}
    waiting = {task.id: len(set(task.blocked_by)) for task in tasks}
    dependents: dict[str, list[str]] = {task.id: [] for task in tasks}
    for task in tasks:
        for dep in set(task.blocked_by):
            dependents[dep].append(task.id)
    ready = [position[t] for t, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[Task] = []
    while ready:
        task = tasks[heapq.heappop(ready)]
        order.append(task)
        for dependent in dependents[task.id]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, position[dependent])
    return order
