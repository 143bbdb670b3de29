"""Plan files: the original codex-orch JSON format, loaded unchanged, checked before anything runs;
every problem named with its place (plan.py holds what a plan is)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codex_orch.agent_registry import unknown_agent
from codex_orch.config import Config
from codex_orch.errors import InputError, InputProblems
from codex_orch.inputs import read_text_file
from codex_orch.layout import id_problem
from codex_orch.plan import TASK_PROPERTIES, Plan, Task, find_cycle
from codex_orch.schema_check import MISSING, did_you_mean, format_path, schema_errors

# The loader's schema. As in the original codex-orch, the top level is closed and needs all three keys
# (a misspelt "gaol" is an error, not an empty goal), while a task is open: a key codex-orch does not
# know is kept and handed to the prompts as `task.extra` (plans the original navigator wrote carry
# such keys), unless it looks like a misspelling of a known key (see `_misspelt_task_keys`).
PLAN_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["goal", "assumptions", "tasks"],
    "properties": {
        "goal": {"type": "string"},
        "assumptions": {"type": "array", "items": {"type": "string"}},
        "tasks": {
            "type": "array",
            "items": {"type": "object", "required": ["role", "prompt"], "properties": TASK_PROPERTIES},
        },
    },
}

# Deeper than this, a plan is refused: the format itself is 4 levels deep; extra keys get the rest.
MAX_PLAN_DEPTH = 64


MAX_PLAN_BYTES = 50 * 1024 * 1024


def read_json_file(path: Path, label: str) -> Any:
    """The JSON value in a plan file (a regular file, at most MAX_PLAN_BYTES, UTF-8)."""
    text = read_text_file(path, label, MAX_PLAN_BYTES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{label}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(
            f"{label}: invalid JSON: nested too deeply (a plan is {MAX_PLAN_DEPTH} levels at most)"
        ) from None
    except ValueError as exc:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise InputError(f"{label}: invalid JSON: {exc}") from None


def load_plan(path: Path, config: Config, label: str | None = None) -> Plan:
    label = label or str(path)
    return parse_plan(read_json_file(path, label), config, label)


def parse_plan(data: Any, config: Config, label: str) -> Plan:
    """A plan from its JSON value, or InputProblems listing every problem, each naming its place."""
    problems = _shape_problems(data, label)
    if problems:
        raise InputProblems(problems)
    raw_tasks: Sequence[Mapping[str, Any]] = data["tasks"]
    if not raw_tasks:
        raise InputError(f"{label}: tasks: the plan has no tasks")
    seen: dict[str, int] = {}  # task id -> index of its first task
    tasks = [_task(raw, index, label, config, seen, problems) for index, raw in enumerate(raw_tasks)]
    problems += _dependency_problems(tasks, seen, label)
    cycle = None if problems else find_cycle(tasks)  # only among tasks that are otherwise sound
    if cycle:
        problems.append(f"{label}: tasks[{seen[cycle[0]]}].blocked_by: dependency cycle {' -> '.join(cycle)}")
    if problems:
        raise InputProblems(problems)
    return Plan(
        goal=data["goal"],
        assumptions=tuple(data["assumptions"]),
        tasks=tuple(tasks),
        warnings=_extra_key_warnings(tasks, label),
    )


def _shape_problems(data: Any, label: str) -> list[str]:
    """What the plan file's schema finds (a misspelt task key named as such, not also as missing), in
    document order; InputError at once for what is no plan at all."""
    if not isinstance(data, dict):
        raise InputError(f"{label}: (top level): a plan is a JSON object with 'goal', 'assumptions' and 'tasks'")
    too_deep = _too_deep(data, MAX_PLAN_DEPTH)
    if too_deep is not None:
        raise InputError(f"{label}: {format_path(too_deep)}: nested deeper than {MAX_PLAN_DEPTH} levels")
    misspelt = _misspelt_task_keys(data.get("tasks"))
    explained = {f"tasks[{index}].{guess}" for index, _, guess in misspelt}
    problems = [
        f"{label}: {place}: {message}"
        for place, message in schema_errors(data, PLAN_FILE_SCHEMA)
        if place not in explained or message != MISSING  # a misspelt key is not also reported missing
    ]
    problems += [
        f"{label}: tasks[{index}]: unknown key {key!r}; did you mean {guess!r}?" for index, key, guess in misspelt
    ]
    return sorted(problems, key=_document_order)


def _task(
    raw: Mapping[str, Any], index: int, label: str, config: Config, seen: dict[str, int], problems: list[str]
) -> Task:
    """The task at `index` (its id, role and agent checked: problems appended, ids recorded in `seen`)."""
    where = f"{label}: tasks[{index}]"
    task_id = raw.get("id") or f"T{index + 1:04d}"
    problem = id_problem(task_id)
    if problem:
        problems.append(f"{where}.id: {task_id!r} {problem}")
    elif task_id in seen:
        problems.append(f"{where}.id: duplicate id {task_id!r} (also tasks[{seen[task_id]}])")
    else:
        seen[task_id] = index
    role = config.resolve_role(raw["role"])
    if role is None:
        problems.append(f"{where}.role: unknown role {raw['role']!r}. {config.roles_hint()}")
    agent = raw.get("agent") or None
    problem = unknown_agent(agent) if agent else None
    if problem:
        problems.append(f"{where}.agent: {problem}")
    locks = raw.get("locks") or {}
    paths = raw.get("paths")
    gates = raw.get("gates")
    known = {g.name for g in config.gates}
    for gate_index, name in enumerate(gates or ()):
        if name not in known:
            names = ", ".join(sorted(known)) or "none are configured"
            problems.append(f"{where}.gates[{gate_index}]: unknown gate {name!r} (gates: {names})")
    return Task(
        id=task_id,
        role=role or raw["role"],
        prompt=raw["prompt"],
        acceptance=raw.get("acceptance") or "",
        blocked_by=tuple(raw.get("blocked_by") or ()),
        paths=tuple(paths) if paths is not None else None,
        lock_reads=tuple(locks.get("reads", ())),
        lock_writes=tuple(locks.get("writes", ())),
        timeout=raw.get("timeout"),
        model=raw.get("model"),
        agent=agent,
        gates=tuple(gates) if gates is not None else None,
        extra={key: value for key, value in raw.items() if key not in TASK_PROPERTIES},
    )


def _dependency_problems(tasks: list[Task], seen: dict[str, int], label: str) -> list[str]:
    """Unknown dependencies, and tasks that wait for themselves."""
    problems = []
    for index, task in enumerate(tasks):
        for dep_index, dep in enumerate(task.blocked_by):
            if dep not in seen:
                problems.append(f"{label}: tasks[{index}].blocked_by[{dep_index}]: unknown task {dep!r}")
            elif dep == task.id:
                problems.append(f"{label}: tasks[{index}].blocked_by[{dep_index}]: task {dep!r} waits for itself")
    return problems


def _misspelt_task_keys(raw_tasks: Any) -> list[tuple[int, str, str]]:
    """(task index, key, known key) for each unknown task key that looks like a misspelling of a known
    one (`blockedby`, `promt`): kept as an extra key, it would silently drop what it meant."""
    if not isinstance(raw_tasks, list):
        return []
    found = []
    for index, raw in enumerate(raw_tasks):
        for key in raw if isinstance(raw, dict) else ():
            guess = None if key in TASK_PROPERTIES else did_you_mean(key, TASK_PROPERTIES)
            if guess is not None:
                found.append((index, key, guess))
    return found


def _document_order(problem: str) -> list[int]:
    """Problems of tasks[2] before those of tasks[10]."""
    return [int(n) for n in re.findall(r"\[(\d+)\]", problem.split(": ", 2)[1])] if ": " in problem else []


def _extra_key_warnings(tasks: Sequence[Task], label: str) -> tuple[str, ...]:
    """One line for all the unknown task keys of a plan: which, and where they first occur."""
    places: dict[str, list[str]] = {}
    for index, task in enumerate(tasks):
        for key in task.extra:
            places.setdefault(key, []).append(f"tasks[{index}]")
    if not places:
        return ()
    keys = ", ".join(
        f"{key!r} ({', '.join(where[:3])}{', …' if len(where) > 3 else ''})" for key, where in places.items()
    )
    return (f"{label}: unknown task keys kept and given to the prompt templates as task.extra: {keys}",)


def _too_deep(value: Any, limit: int) -> list[Any] | None:
    """The path of the first value nested deeper than `limit`, or None (iteratively)."""
    stack: list[tuple[list[Any], Any]] = [([], value)]
    while stack:
        path, item = stack.pop()
        if len(path) > limit:
            return path
        if isinstance(item, dict):
            stack += [([*path, key], child) for key, child in item.items()]
        elif isinstance(item, list):
            stack += [([*path, index], child) for index, child in enumerate(item)]
    return None


PLAN_SCHEMA_NAME = "plan.schema.json"


def plan_problems(data: Any, config: Config, label: str = "plan") -> list[str]:
    """Why `data` cannot be run as a plan (every problem the loader finds), or nothing."""
    try:
        parse_plan(data, config, label)
    except InputProblems as exc:
        return list(exc.problems)
    except InputError as exc:
        return [exc.message]
    return []


def plan_answer_checks(config: Config) -> dict[str, Callable[[Any], list[str]]]:
    """An answer check for every role whose answer is a plan (its output schema is the plan schema):
    beyond the schema, the plan must load (ids, dependencies, cycles, roles), or the agent retries."""
    return {
        name: lambda value: plan_problems(value, config)
        for name, role in config.roles.items()
        if Path(role.output_schema).name == PLAN_SCHEMA_NAME
    }
