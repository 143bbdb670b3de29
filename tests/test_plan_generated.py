"""Plans generated from the original codex-orch's plan schema load unchanged.

ORIGINAL_PLAN_SCHEMA is that format, written out here: the top level closed, with goal, assumptions and
tasks required; a task open (any other key allowed), with role, prompt, acceptance and blocked_by;
ids optional. hypothesis-jsonschema draws plans from it. What a schema cannot say — that a role is
one codex-orch has, that an id is safe as a folder name and unique, that blocked_by names earlier tasks
— is then made true of each drawn plan, and everything else (texts, extra keys and their values) is
left as drawn: every such plan must load, its extra keys kept.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from codex_orch.config import build_config, default_raw
from codex_orch.errors import InputError
from codex_orch.plan import TASK_PROPERTIES
from codex_orch.plan_file import parse_plan
from codex_orch.schema_check import did_you_mean

CONFIG = build_config(default_raw(), "(defaults)")

ORIGINAL_PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["goal", "assumptions", "tasks"],
    "properties": {
        "goal": {"type": "string"},
        "assumptions": {"type": "array", "items": {"type": "string"}},
        "tasks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 8,
            "items": {
                "type": "object",
                "additionalProperties": True,
                "required": ["role", "prompt", "acceptance", "blocked_by"],
                "properties": {
                    "id": {"type": "string"},
                    "role": {"type": "string"},
                    "prompt": {"type": "string"},
                    "acceptance": {"type": "string"},
                    "blocked_by": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

ROLES = sorted(CONFIG.roles) + sorted(CONFIG.role_aliases)
EXTENSIONS = set(TASK_PROPERTIES) - set(ORIGINAL_PLAN_SCHEMA["properties"]["tasks"]["items"]["properties"])


def extra_keys(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k not in TASK_PROPERTIES}


@st.composite
def valid_plans(draw: st.DrawFn) -> dict[str, Any]:
    """A plan drawn from the original schema, with valid roles, ids and dependencies."""
    plan: dict[str, Any] = draw(from_schema(ORIGINAL_PLAN_SCHEMA))  # type: ignore[arg-type]  # the schema's root is an object
    ids: list[str] = []
    for index, task in enumerate(plan["tasks"]):
        for key in EXTENSIONS & task.keys():  # codex-orch's own keys have types of their own
            del task[key]
        task["role"] = draw(st.sampled_from(ROLES))
        if draw(st.booleans()):
            task.pop("id", None)  # assigned T0001… in order
            ids.append(f"T{index + 1:04d}")
        else:
            task["id"] = f"task-{index}"
            ids.append(task["id"])
        task["blocked_by"] = draw(st.lists(st.sampled_from(ids[:-1]), max_size=3)) if index else []
    return plan


@settings(
    max_examples=examples(50, 400),
    deadline=None,
    # valid_plans() draws ids and keys and keeps the valid ones: filtering is its design (seen failing
    # this check once in a clean-clone run: 9 kept, 50 filtered)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(valid_plans())
def test_every_plan_of_the_original_format_loads_extra_keys_and_all(data: dict[str, Any]) -> None:
    misspelt = [key for task in data["tasks"] for key in extra_keys(task) if did_you_mean(key, TASK_PROPERTIES)]
    if misspelt:  # the one refusal allowed: a key that looks like a misspelling of a known one
        with pytest.raises(InputError, match="did you mean"):
            parse_plan(data, CONFIG, "plan.json")
        return
    plan = parse_plan(data, CONFIG, "plan.json")
    assert plan.goal == data["goal"] and list(plan.assumptions) == data["assumptions"]
    for task, raw in zip(plan.tasks, data["tasks"], strict=True):
        assert task.prompt == raw["prompt"] and task.acceptance == raw["acceptance"]
        assert list(task.blocked_by) == raw["blocked_by"]
        assert dict(task.extra) == extra_keys(raw)
        assert task.context()["extra"] == extra_keys(raw)
    assert bool(plan.warnings) == any(extra_keys(raw) for raw in data["tasks"])
    # the frozen copy (runs/<id>/plan.json) loads back to the same plan, extra keys included
    assert parse_plan(plan.to_json(), CONFIG, "plan.json").to_json() == plan.to_json()


@settings(
    max_examples=examples(50, 400),
    deadline=None,
    # hypothesis-jsonschema filters what it draws to fit the schema: how much depends on the draw
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(from_schema(ORIGINAL_PLAN_SCHEMA))
def test_any_plan_of_the_original_format_loads_or_says_where_it_is_wrong(data: dict[str, Any]) -> None:
    """Unrepaired: roles, ids and dependencies as drawn. It loads, or every problem names its task."""
    try:
        parse_plan(data, CONFIG, "plan.json")
    except InputError as exc:
        problems = getattr(exc, "problems", None) or [exc.message]
        assert all(p.startswith(("plan.json: tasks[", "plan.json: tasks:")) for p in problems), problems
        assert all("\n" not in p for p in problems)
