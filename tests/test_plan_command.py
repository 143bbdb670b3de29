"""`codex-orch plan`: the navigator's plan, checked like any plan file, retried on its thread; and
`plan --check`, the preflight lint that runs nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from conftest import FAKE_CODEX, FakeCodex, Repo, answer, read_state, run_cli, write_plan

NAVIGATOR = "You are the navigator of codex-orch"  # the packaged navigator prompt's first words
ROOT = Path(__file__).resolve().parent.parent
# `codex` found on PATH (the fake one), without writing a config: `plan --check` must write nothing
CODEX_ON_PATH = {"PATH": f"{FAKE_CODEX.parent}{os.pathsep}{os.environ['PATH']}"}


def plan_task(tid: str, prompt: str, blocked_by: list[str], role: str = "implementer", **extra: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "role": role,
        "prompt": prompt,
        "acceptance": f"{prompt} is done",
        "blocked_by": blocked_by,
        "paths": None,
        "gates": None,
        **extra,
    }


GOOD_PLAN = {
    "goal": "two files",
    "assumptions": ["the repository is empty"],
    "tasks": [
        plan_task("T0001", "create a.txt", []),
        plan_task("T0002", "create b.txt", ["T0001"], paths=["b.txt"]),
    ],
}
CYCLE_PLAN = {
    "goal": "two files",
    "assumptions": [],
    "tasks": [plan_task("T0001", "create a.txt", ["T0002"]), plan_task("T0002", "create b.txt", ["T0001"])],
}


def writer_rule(name: str) -> dict[str, Any]:
    return {
        "match": f"create {name}.txt",
        "turns": [[{"write": f"{name}.txt", "content": f"{name}\n"}, {"answer": answer(f"created {name}.txt")}]],
    }


def test_the_navigators_plan_is_written_and_run_carries_it_out(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script(
        {"rules": [{"match": NAVIGATOR, "turns": [[{"answer": GOOD_PLAN}]]}, writer_rule("a"), writer_rule("b")]}
    )
    spec = tmp_path / "spec.md"
    spec.write_text("# Two files\nWe need a.txt, then b.txt.\n")
    result = run_cli(repo.path, "plan", "--spec-file", str(spec), "--run-id", "nav")
    assert result.code == 0, result.err
    plan_file = repo.path / "plan.json"  # the default: plan.json in the current directory
    assert "wrote plan.json: 2 tasks (navigator run nav)" in result.out
    assert "codex-orch run --plan-file plan.json" in result.err

    written = json.loads(plan_file.read_text())
    assert written["goal"] == "two files" and [t["id"] for t in written["tasks"]] == ["T0001", "T0002"]
    assert "paths" not in written["tasks"][0]  # a null path list is dropped
    assert written["tasks"][1]["paths"] == ["b.txt"] and written["tasks"][1]["blocked_by"] == ["T0001"]

    (call,) = fake_codex.calls()
    assert call["sandbox"] == "read-only" and call["output_schema_json"]["title"] == "codex-orch plan"
    assert "We need a.txt, then b.txt." in call["prompt"]
    nav = read_state(repo, "nav")  # a normal run: its state, its attempt folder, nothing committed
    assert nav["status"] == "succeeded" and nav["tasks"]["plan"]["commit"] is None
    assert (repo.path / ".orchestrator/runs/nav/tasks/plan/attempt-1/events.jsonl").is_file()

    again = run_cli(repo.path, "plan", "--spec-file", str(spec))
    assert again.code == 2 and "plan.json already exists" in again.err and "--force" in again.err
    assert len(fake_codex.calls()) == 1  # refused before any agent started

    run = run_cli(repo.path, "run", "--plan-file", "plan.json", "--run-id", "r1")
    assert run.code == 0, run.err
    state = read_state(repo, "r1")
    assert [state["tasks"][t]["status"] for t in ("T0001", "T0002")] == ["succeeded", "succeeded"]
    assert repo.git("show", f"{state['branch']}:b.txt") == "b"


def test_an_invalid_plan_is_retried_on_the_same_thread_with_the_errors_quoted(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    # A custom plan schema without the role enum, so that the plan loader is what catches the role.
    schema = json.loads((ROOT / "templates/schemas/plan.schema.json").read_text())
    del schema["properties"]["tasks"]["items"]["properties"]["role"]["enum"]
    repo.write(".orchestrator/schemas/plan.schema.json", json.dumps(schema))
    unknown_role = {**GOOD_PLAN, "tasks": [plan_task("T0001", "create a.txt", [], role="wizard")]}
    fake_codex.script({"default": [[{"answer": CYCLE_PLAN}], [{"answer": unknown_role}], [{"answer": GOOD_PLAN}]]})
    out = tmp_path / "out" / "p.json"
    out.parent.mkdir()
    result = run_cli(repo.path, "plan", "--goal", "two files", "--out", str(out), "--run-id", "nav")
    assert result.code == 0, result.err
    assert [t["id"] for t in json.loads(out.read_text())["tasks"]] == ["T0001", "T0002"]

    first, second, third = fake_codex.calls()
    assert not first["resume"] and second["resume"] and third["resume"]
    assert first["thread_id"] == second["thread_id"] == third["thread_id"]
    assert "plan: tasks[0].blocked_by: dependency cycle T0001 -> T0002 -> T0001" in second["prompt"]
    assert "plan: tasks[0].role: unknown role 'wizard'. Valid roles: implementer, navigator" in third["prompt"]
    attempts = read_state(repo, "nav")["tasks"]["plan"]["attempts"]
    assert [a["failure"] for a in attempts] == ["answer_invalid", "answer_invalid", None]
    validation = repo.path / ".orchestrator/runs/nav/tasks/plan/attempt-1/validation.txt"
    assert validation.read_text().startswith("answer_invalid\nplan: tasks[0].blocked_by: dependency cycle")


def test_past_the_retry_limit_plan_fails_clearly(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.configure(limits={"retries": 1})
    fake_codex.script({"default": [[{"answer": CYCLE_PLAN}]]})
    result = run_cli(repo.path, "plan", "--goal", "two files", "--run-id", "nav")
    assert result.code == 1
    assert (
        "the navigator gave no usable plan (answer_invalid: plan: tasks[0].blocked_by: dependency cycle" in result.err
    )
    assert "navigator run nav" in result.err
    assert not (repo.path / "plan.json").exists()
    assert len(fake_codex.calls()) == 2
    state = read_state(repo, "nav")
    assert state["status"] == "failed" and state["tasks"]["plan"]["error"]["kind"] == "answer_invalid"


def test_plan_needs_exactly_one_of_spec_and_goal(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    neither = run_cli(repo.path, "plan")
    both = run_cli(repo.path, "plan", "--goal", "x", "--spec-file", str(tmp_path / "s.md"))
    assert neither.code == both.code == 2 and "exactly one" in neither.err and "exactly one" in both.err
    assert fake_codex.calls() == []


# --- plan --check ----------------------------------------------------------------------------------


def test_check_a_good_plan_runs_nothing_and_writes_nothing(repo: Repo, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.json", GOOD_PLAN["tasks"])
    result = run_cli(repo.path, "plan", "--check", str(plan), env=CODEX_ON_PATH)
    assert result.code == 0, result.out
    assert result.out.splitlines()[-1].startswith(f"{plan}: 2 task(s), largest prompt ")
    assert result.out.splitlines()[-1].endswith("; 0 error(s), 0 warning(s)")
    assert not (repo.path / ".orchestrator").exists() and repo.git("status", "--porcelain") == ""


def test_check_a_bad_plan_names_the_place(repo: Repo, tmp_path: Path) -> None:
    tasks = [plan_task("T0001", "create a.txt", []), plan_task("T0002", "create b.txt", ["T9"])]
    plan = write_plan(tmp_path / "plan.json", tasks)
    result = run_cli(repo.path, "plan", "--check", str(plan), env=CODEX_ON_PATH)
    assert result.code == 2
    assert f"error: {plan}: tasks[1].blocked_by[0]: unknown task 'T9'" in result.out.splitlines()
    assert result.out.splitlines()[-1] == f"{plan}: the plan does not load; 1 error(s), 0 warning(s)"


def test_check_reports_a_loose_schema_big_prompts_and_risky_sandboxes(repo: Repo, tmp_path: Path) -> None:
    loose = {"type": "object", "properties": {"status": {"type": "string"}, "summary": {"type": "string"}}}
    repo.write(".orchestrator/schemas/task_result.schema.json", json.dumps(loose))
    repo.configure(roles={"reviewer": {"sandbox": "workspace-write"}, "tester": {"sandbox": "danger-full-access"}})
    plan = write_plan(tmp_path / "plan.json", GOOD_PLAN["tasks"])
    spec = tmp_path / "spec.md"
    spec.write_text("x" * 120_000 + "\n")
    result = run_cli(repo.path, "plan", "--check", str(plan), "--spec-file", str(spec), env=CODEX_ON_PATH)
    assert result.code == 2, result.out
    lines = result.out.splitlines()
    schema = ".orchestrator/schemas/task_result.schema.json"
    assert (
        f"error: {schema}: $: additionalProperties must be false (role implementer: codex sends it in strict mode)"
        in lines
    )
    assert any(line.startswith(f"error: {schema}: $: required must list every property") for line in lines)
    assert any(line.startswith(f"warning: {plan}: tasks[0] (T0001): its prompt renders to 12") for line in lines)
    config = ".orchestrator/orchestrator.yaml"
    assert (
        f"warning: {config}: roles.reviewer.sandbox: workspace-write lets the reviewer change files; read-only is expected"
        in lines
    )
    assert any(line.startswith(f"warning: {config}: roles.tester.sandbox: danger-full-access") for line in lines)
    assert lines[-1].endswith("; 2 error(s), 4 warning(s)")

    # the same findings without the loose schema are only warnings: exit 0
    (repo.path / schema).unlink()
    assert run_cli(repo.path, "plan", "--check", str(plan), "--spec-file", str(spec), env=CODEX_ON_PATH).code == 0


def test_check_reports_what_run_would_refuse_at_once(tmp_path: Path) -> None:
    """One preflight for both: no first commit and codex not found stop `run`, so `plan --check` names both."""
    folder = tmp_path / "fresh"
    folder.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)  # no commit at all
    repo = Repo(folder)
    repo.configure(codex={"command": "no-such-codex-anywhere"})
    plan = write_plan(tmp_path / "plan.json", GOOD_PLAN["tasks"])
    result = run_cli(folder, "plan", "--check", str(plan))
    assert result.code == 2, result.out
    lines = result.out.splitlines()
    assert any(line.startswith(f"error: {folder}: the repository has no commit yet") for line in lines), lines
    assert any("codex.command: 'no-such-codex-anywhere' was not found on PATH" in line for line in lines), lines
    assert lines[-1].endswith("; 2 error(s), 0 warning(s)")
    # and `run` refuses for the same two reasons, at once, writing nothing
    run = run_cli(folder, "run", "--plan-file", str(plan))
    assert run.code == 2
    assert run.err.splitlines()[0] == "codex-orch: error: 2 problems:"
    assert "the repository has no commit yet" in run.err and "'no-such-codex-anywhere' was not found" in run.err
    assert not (folder / ".orchestrator" / "runs").exists()


def test_check_with_a_run_id_reports_a_taken_run_and_its_branch(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path / "plan.json", GOOD_PLAN["tasks"])
    fake_codex.script({"default": [[{"answer": answer()}]]})
    assert run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "r1").code == 0
    result = run_cli(repo.path, "plan", "--check", str(plan), "--run-id", "r1")
    assert result.code == 2
    lines = result.out.splitlines()
    assert "error: --run-id: run 'r1' already exists. Use `codex-orch resume --run-id r1`." in lines
    assert any(
        line.startswith("error: branch 'orch/") and "run-r1/workspace-shared' already exists" in line for line in lines
    )
    assert run_cli(repo.path, "plan", "--check", str(plan), "--run-id", "r2").code == 0


def test_check_warns_once_about_unknown_task_keys(repo: Repo, tmp_path: Path) -> None:
    tasks = [plan_task("T0001", "create a.txt", [], notes="n1"), plan_task("T0002", "create b.txt", [], notes="n2")]
    plan = write_plan(tmp_path / "plan.json", tasks)
    result = run_cli(repo.path, "plan", "--check", str(plan), env=CODEX_ON_PATH)
    assert result.code == 0, result.out
    warnings = [line for line in result.out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {plan}: unknown task keys kept and given to the prompt templates as task.extra: "
        "'notes' (tasks[0], tasks[1])"
    ]
