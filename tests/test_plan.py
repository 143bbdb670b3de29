from __future__ import annotations

import json
from pathlib import Path

import pytest

from codex_orch.config import build_config, default_raw
from codex_orch.errors import InputError
from codex_orch.plan import find_cycle, load_plan, parse_plan, topological_order

CONFIG = build_config(default_raw(), "(defaults)")


def plan_of(*tasks: dict) -> dict:
    return {"goal": "g", "assumptions": [], "tasks": list(tasks)}


def task(role: str = "implementer", **extra: object) -> dict:
    return {"role": role, "prompt": "do it", "acceptance": "done", "blocked_by": [], **extra}


def error_of(data: object) -> str:
    with pytest.raises(InputError) as info:
        parse_plan(data, CONFIG, "plan.json")
    return str(info.value)


def test_original_format_loads_unchanged_with_ids_assigned_in_order(tmp_path: Path) -> None:
    original = {
        "goal": "Add a greeting",
        "assumptions": ["python 3"],
        "tasks": [
            {"role": "implementer", "prompt": "write hello.py", "acceptance": "prints hi", "blocked_by": []},
            {"role": "tester", "prompt": "test it", "acceptance": "tests pass", "blocked_by": ["T0001"]},
            {"id": "R1", "role": "reviewer", "prompt": "review", "acceptance": "ok", "blocked_by": ["T0001", "T0002"]},
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(original))
    plan = load_plan(path, CONFIG)
    assert [t.id for t in plan.tasks] == ["T0001", "T0002", "R1"]
    assert plan.tasks[2].blocked_by == ("T0001", "T0002")
    assert plan.goal == "Add a greeting" and plan.assumptions == ("python 3",)


def test_role_alias_maps_to_canonical_role() -> None:
    plan = parse_plan(plan_of(task("developer")), CONFIG, "plan.json")
    assert plan.tasks[0].role == "implementer" and plan.tasks[0].written_role == "developer"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (plan_of(task(), task(blocked_by=["T9"])), "plan.json: tasks[1].blocked_by[0]: unknown task 'T9'"),
        (plan_of(task(id="A"), task(id="A")), "plan.json: tasks[1].id: duplicate id 'A' (also tasks[0])"),
        (
            plan_of(task("dev2")),
            "plan.json: tasks[0].role: unknown role 'dev2'. Valid roles: implementer, navigator, reviewer, tester",
        ),
        (plan_of(task(id="../../x")), "plan.json: tasks[0].id: '../../x' must be"),
        (plan_of(task(id="a..b")), "plan.json: tasks[0].id: 'a..b' must not contain '..'"),
        (plan_of(task(prompt=3)), "plan.json: tasks[0].prompt: 3 is not of type 'string'"),
        (plan_of(task(colour="red")), "plan.json: tasks[0]: unknown key 'colour'"),
        (plan_of(task(id="A", blocked_by=["A"])), "plan.json: tasks[0].blocked_by[0]: task 'A' waits for itself"),
        ({"goal": "g", "tasks": []}, "plan.json: tasks: the plan has no tasks"),
        ([1, 2], "plan.json: (top level): a plan is a JSON object"),
        ({"goal": "g"}, "plan.json: (top level): 'tasks' is a required property"),
    ],
)
def test_bad_plans_name_the_place(data: object, expected: str) -> None:
    message = error_of(data)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_cycle_is_named() -> None:
    data = plan_of(task(id="A", blocked_by=["C"]), task(id="B", blocked_by=["A"]), task(id="C", blocked_by=["B"]))
    assert error_of(data) == "plan.json: tasks[0].blocked_by: dependency cycle A -> C -> B -> A"


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"goal": "g",\n  "tasks": [}\n')
    with pytest.raises(InputError, match=r"p.json: line 2, column 13: invalid JSON"):
        load_plan(path, CONFIG, "p.json")


def test_non_utf8_plan(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b'{"goal": "\xff"}')
    with pytest.raises(InputError, match=r"p.json: not UTF-8 text \(invalid byte at offset 10\)"):
        load_plan(path, CONFIG, "p.json")


def test_topological_order_is_stable_and_dependencies_first() -> None:
    plan = parse_plan(
        plan_of(task(id="A", blocked_by=["C"]), task(id="B"), task(id="C"), task(id="D", blocked_by=["A", "B"])),
        CONFIG,
        "plan.json",
    )
    assert [t.id for t in topological_order(plan.tasks)] == ["B", "C", "A", "D"]
    assert find_cycle(plan.tasks) is None


def test_deep_chain_has_no_recursion_limit() -> None:
    tasks = [task(id="N0")] + [task(id=f"N{i}", blocked_by=[f"N{i - 1}"]) for i in range(1, 5000)]
    plan = parse_plan(plan_of(*tasks), CONFIG, "plan.json")
    assert [t.id for t in topological_order(plan.tasks)][-1] == "N4999"
