from __future__ import annotations

import json
from pathlib import Path

import pytest

from codex_orch.config import build_config, default_raw
from codex_orch.engine.prompts import PromptRenderer
from codex_orch.errors import InputError, InputProblems
from codex_orch.layout import Layout
from codex_orch.plan import Plan, Task, find_cycle, topological_order
from codex_orch.plan_file import load_plan, parse_plan

CONFIG = build_config(default_raw(), "(defaults)")


def plan_of(*tasks: dict) -> dict:
    return {"goal": "g", "assumptions": [], "tasks": list(tasks)}


def task(role: object = "implementer", **extra: object) -> dict[str, object]:
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
    assert plan.tasks[0].role == "implementer"


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
        (plan_of(task(id="A", blocked_by=["A"])), "plan.json: tasks[0].blocked_by[0]: task 'A' waits for itself"),
        ({"goal": "g", "assumptions": [], "tasks": []}, "plan.json: tasks: the plan has no tasks"),
        ([1, 2], "plan.json: (top level): a plan is a JSON object"),
        ({"goal": "g", "assumptions": []}, "plan.json: tasks: a required property is missing"),
        (plan_of(task(timeout=-5)), "plan.json: tasks[0].timeout: -5 is less than or equal to the minimum of 0"),
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


# --- the top level is closed, a task is open ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"gaol": "g", "assumptions": [], "tasks": [task()]},
            "plan.json: (top level): unknown key 'gaol'; did you mean 'goal'?",
        ),
        (
            {"goal": "g", "assumption": [], "tasks": [task()]},
            "plan.json: (top level): unknown key 'assumption'; did you mean 'assumptions'?",
        ),
        (
            {"goal": "g", "assumptions": [], "tasks": [task()], "owner": "me"},
            "plan.json: (top level): unknown key 'owner' (known: assumptions, goal, tasks)",
        ),
        ({"assumptions": [], "tasks": [task()]}, "plan.json: goal: a required property is missing"),
        ({"goal": "g", "tasks": [task()]}, "plan.json: assumptions: a required property is missing"),
    ],
)
def test_the_top_level_is_closed_and_needs_goal_assumptions_and_tasks(data: object, expected: str) -> None:
    assert error_of(data) == expected


@pytest.mark.parametrize(
    ("key", "known"),
    [
        ("blockedby", "blocked_by"),
        ("blockedBy", "blocked_by"),
        ("promt", "prompt"),
        ("acceptence", "acceptance"),
        ("path", "paths"),
        ("lock", "locks"),
        ("timeouts", "timeout"),
    ],
)
def test_a_misspelt_task_key_is_refused_with_the_key_it_means(key: str, known: str) -> None:
    raw = {"role": "implementer", "prompt": "do it", "acceptance": "done"}
    raw[key] = raw.pop(known, "x")
    assert error_of(plan_of(raw)) == f"plan.json: tasks[0]: unknown key {key!r}; did you mean {known!r}?"


def test_unknown_task_keys_are_kept_given_to_the_prompts_and_warned_about_once(tmp_path: Path) -> None:
    data = plan_of(
        task(id="A", notes="use the fast path", estimate={"hours": 2}),
        task(id="B", notes="second"),
        task(id="C", ids=["x"]),
    )
    plan = parse_plan(data, CONFIG, "plan.json")
    assert dict(plan.tasks[0].extra) == {"notes": "use the fast path", "estimate": {"hours": 2}}
    assert plan.warnings == (
        "plan.json: unknown task keys kept and given to the prompt templates as task.extra: "
        "'notes' (tasks[0], tasks[1]), 'estimate' (tasks[0]), 'ids' (tasks[2])",
    )
    # kept through the frozen plan.json and the journal's task records
    frozen = plan.to_json()["tasks"][0]
    assert frozen["notes"] == "use the fast path" and frozen["estimate"] == {"hours": 2}
    assert Task.from_json(frozen) == plan.tasks[0]
    assert parse_plan(plan.to_json(), CONFIG, "plan.json") == plan
    # and in the prompt context, as task.extra
    prompts = tmp_path / ".orchestrator" / "prompts"
    prompts.mkdir(parents=True)
    (prompts / "implementer.md.j2").write_text(
        "{{ task.prompt }} / {{ task.extra.notes }} / {{ task.extra.estimate.hours }}"
    )
    rendered = PromptRenderer(Layout(tmp_path)).render("implementer.md.j2", {"task": plan.tasks[0].context()})
    assert rendered == "do it / use the fast path / 2"


def test_a_plan_without_unknown_keys_has_no_warning() -> None:
    assert parse_plan(plan_of(task()), CONFIG, "plan.json").warnings == ()


# --- every problem, each with its place ---------------------------------------------------------------


def test_every_schema_problem_is_listed_with_its_place() -> None:
    data = plan_of(
        {"role": "implementer", "acceptance": "a"},
        task(role=5),
        task(),
        {"role": "tester", "acceptance": "a", "blockedby": []},
    )
    with pytest.raises(InputProblems) as info:
        parse_plan(data, CONFIG, "plan.json")
    assert info.value.problems == (
        "plan.json: tasks[0].prompt: a required property is missing",
        "plan.json: tasks[1].role: 5 is not of type 'string'",
        "plan.json: tasks[3].prompt: a required property is missing",
        "plan.json: tasks[3]: unknown key 'blockedby'; did you mean 'blocked_by'?",
    )
    assert str(info.value).splitlines() == [
        "4 problems:",
        "  plan.json: tasks[0].prompt: a required property is missing",
        "  plan.json: tasks[1].role: 5 is not of type 'string'",
        "  plan.json: tasks[3].prompt: a required property is missing",
        "  plan.json: tasks[3]: unknown key 'blockedby'; did you mean 'blocked_by'?",
    ]


def test_every_problem_of_ids_roles_and_dependencies_is_listed() -> None:
    data = plan_of(task(id="A", role="wizard"), task(id="A"), task(id="B", blocked_by=["Z", "B"]))
    with pytest.raises(InputProblems) as info:
        parse_plan(data, CONFIG, "plan.json")
    assert [p.split(": ")[1] for p in info.value.problems] == [
        "tasks[0].role",
        "tasks[1].id",
        "tasks[2].blocked_by[0]",
        "tasks[2].blocked_by[1]",
    ]


# --- numbers: finite, positive ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"goal": "g", "assumptions": [], "tasks": [{"role": "implementer", "prompt": "p", "timeout": NaN}]}',
            "p.json: tasks[0].timeout: nan is not a finite number",
        ),
        (
            '{"goal": "g", "assumptions": [], "tasks": [{"role": "implementer", "prompt": "p", "timeout": Infinity}]}',
            "p.json: tasks[0].timeout: inf is not a finite number",
        ),
        (
            '{"goal": "g", "assumptions": [], "tasks": [{"role": "implementer", "prompt": "p", "timeout": 1e400}]}',
            "p.json: tasks[0].timeout: inf is not a finite number",
        ),
        (
            '{"goal": "g", "assumptions": [], "tasks": [{"role": "implementer", "prompt": "p", "n": -Infinity}]}',
            "p.json: tasks[0].n: -inf is not a finite number",
        ),
        (
            '{"goal": "g", "assumptions": [], "tasks": [{"role": "implementer", "prompt": "p", "timeout": 1e12}]}',
            "p.json: tasks[0].timeout: 1000000000000.0 is greater than the maximum of 1000000000.0",
        ),
    ],
)
def test_nan_infinity_and_absurd_timeouts_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_plan(path, CONFIG, "p.json")
    assert str(info.value) == expected


def test_json_nested_too_deeply_or_with_a_huge_number_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        '{"goal": "g", "assumptions": [], "tasks": [{"role": "implementer", "prompt": "p", "x": '
        + "[" * 100_000
        + "]" * 100_000
        + "}]}"
    )
    with pytest.raises(InputError, match=r"^p.json: invalid JSON: nested too deeply"):
        load_plan(path, CONFIG, "p.json")
    path.write_text(
        '{"goal": "g", "assumptions": [], "tasks": [{"role": "implementer", "prompt": "p", "x": '
        + "[" * 100
        + "]" * 100
        + "}]}"
    )
    with pytest.raises(InputError, match=r"^p.json: tasks\[0\]\.x(\[0\])+: nested deeper than 64 levels$"):
        load_plan(path, CONFIG, "p.json")
    path.write_text(
        '{"goal": "g", "assumptions": [], "tasks": [{"role": "implementer", "prompt": "p", "x": ' + "9" * 5000 + "}]}"
    )
    with pytest.raises(InputError, match=r"^p.json: invalid JSON: Exceeds the limit"):
        load_plan(path, CONFIG, "p.json")


def test_plans_codex_orch_builds_itself_still_load() -> None:
    """The `task` command's one-task plan, the navigator's, the demo's and the shipped plan schema's."""
    import json as _json
    import runpy

    from codex_orch.layout import packaged_templates

    one_task = {
        "goal": "x",
        "assumptions": [],
        "tasks": [{"role": "implementer", "prompt": "x", "acceptance": "", "blocked_by": []}],
    }
    assert isinstance(parse_plan(one_task, CONFIG, "--role/PROMPT"), Plan)
    demo = runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "demo.py"), run_name="not_main")
    assert len(parse_plan(demo["PLAN"], CONFIG, "demo").tasks) >= 2
    schema = _json.loads((packaged_templates() / "schemas" / "plan.schema.json").read_text())
    assert set(schema["required"]) == {"goal", "assumptions", "tasks"} and schema["additionalProperties"] is False
