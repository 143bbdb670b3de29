"""Property tests (hypothesis): plan loading and the DAG checks hold for any graph."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_orch.config import build_config, default_raw
from codex_orch.errors import InputError
from codex_orch.plan import find_cycle, topological_order
from codex_orch.plan_file import parse_plan

CONFIG = build_config(default_raw(), "(defaults)")
ROLES = ["implementer", "tester", "reviewer", "navigator", "developer", "qa"]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]]]:
    """Any directed graph over up to 25 tasks (cycles and self-loops included)."""
    n = draw(st.integers(min_value=1, max_value=25))
    ids = [f"T{i + 1:04d}" for i in range(n)]
    edges = {tid: sorted(set(draw(st.lists(st.sampled_from(ids), max_size=4)))) for tid in ids}
    return ids, edges


def plan_of(ids: list[str], edges: dict[str, list[str]], roles: list[str]) -> dict[str, Any]:
    return {
        "goal": "g",
        "assumptions": [],
        "tasks": [
            {"id": tid, "role": roles[i % len(roles)], "prompt": "p", "acceptance": "a", "blocked_by": edges[tid]}
            for i, tid in enumerate(ids)
        ],
    }


def reaches(edges: dict[str, list[str]], start: str, goal: str) -> bool:
    seen, stack = set(), list(edges[start])
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(edges[node])
    return False


@settings(max_examples=300, deadline=None)
@given(graphs(), st.lists(st.sampled_from(ROLES), min_size=1, max_size=4))
def test_a_plan_loads_exactly_when_its_graph_is_acyclic(
    graph: tuple[list[str], dict[str, list[str]]], roles: list[str]
) -> None:
    ids, edges = graph
    cyclic = any(reaches(edges, tid, tid) for tid in ids)
    data = plan_of(ids, edges, roles)
    if cyclic:
        with pytest.raises(InputError) as info:
            parse_plan(data, CONFIG, "plan.json")
        problems = getattr(info.value, "problems", (str(info.value),))
        assert all(p.startswith("plan.json: tasks[") for p in problems)
        message = problems[0]
        assert "cycle" in message or "waits for itself" in message
        if "cycle" in message:
            named = message.rsplit("cycle ", 1)[1].split(" -> ")
            assert named[0] == named[-1]
            for a, b in itertools.pairwise(named):
                assert b in edges[a]  # every step of the named cycle is a real dependency
        return
    plan = parse_plan(data, CONFIG, "plan.json")
    assert find_cycle(plan.tasks) is None
    order = [t.id for t in topological_order(plan.tasks)]
    assert sorted(order) == sorted(ids)
    position = {tid: i for i, tid in enumerate(order)}
    for tid in ids:
        assert all(position[dep] < position[tid] for dep in edges[tid])
    assert all(t.role in CONFIG.roles for t in plan.tasks)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6))
def test_any_task_id_is_either_refused_or_safe(ids: list[str]) -> None:
    data = {"goal": "g", "assumptions": [], "tasks": [{"id": tid, "role": "implementer", "prompt": "p"} for tid in ids]}
    try:
        plan = parse_plan(data, CONFIG, "plan.json")
    except InputError as exc:
        problems = getattr(exc, "problems", (str(exc),))
    else:
        problems = ()
    if problems:
        assert all(p.startswith("plan.json: tasks[") and "\n" not in p for p in problems)
        return
    for task in plan.tasks:  # an accepted id is safe as a folder name and inside a branch name
        assert "/" not in task.id and ".." not in task.id and not task.id.startswith(("-", "."))
        assert task.id.isascii() and task.id.strip() == task.id
