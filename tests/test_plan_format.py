"""The plan format as `run` sees it: a closed top level, open tasks, every problem at once."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FakeCodex, Repo, answer, read_state, run_cli

TASK = {"role": "implementer", "prompt": "write the greeting", "acceptance": "a", "blocked_by": []}


def nothing_written(repo: Repo) -> bool:
    return not (repo.path / ".orchestrator" / "runs").exists() and repo.branches() == ["main"]


def test_a_misspelt_goal_stops_the_run_instead_of_running_with_no_goal(repo: Repo, fake_codex: FakeCodex) -> None:
    (repo.path / "plan.json").write_text(json.dumps({"gaol": "greet", "assumptions": [], "tasks": [TASK]}))
    result = run_cli(repo.path, "run", "--plan-file", "plan.json")
    assert result.code == 2
    assert result.err.strip() == "codex-orch: error: plan.json: (top level): unknown key 'gaol'; did you mean 'goal'?"
    assert nothing_written(repo) and fake_codex.calls() == []


def test_every_problem_of_a_plan_is_listed_and_nothing_is_written(repo: Repo, fake_codex: FakeCodex) -> None:
    tasks = [TASK, {"role": "implementer"}, dict(TASK, blockedby=["T0001"]), {"role": "tester", "acceptance": "a"}]
    (repo.path / "plan.json").write_text(json.dumps({"goal": "g", "tasks": tasks}))
    result = run_cli(repo.path, "run", "--plan-file", "plan.json")
    assert result.code == 2
    assert result.err.splitlines() == [
        "codex-orch: error: 4 problems:",
        "  plan.json: assumptions: a required property is missing",
        "  plan.json: tasks[1].prompt: a required property is missing",
        "  plan.json: tasks[2]: unknown key 'blockedby'; did you mean 'blocked_by'?",
        "  plan.json: tasks[3].prompt: a required property is missing",
    ]
    assert nothing_written(repo) and fake_codex.calls() == []


def test_unknown_task_keys_run_are_warned_about_once_kept_and_given_to_the_prompt(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script({"default": [[{"answer": answer()}]]})
    tasks = [dict(TASK, notes="greet in French", estimate={"hours": 1}), dict(TASK, id="T2", notes="then in German")]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"goal": "g", "assumptions": [], "tasks": tasks}))
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "x", "--no-progress")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if "warning" in line]
    assert warnings == [
        f"codex-orch: warning: {plan}: unknown task keys kept and given to the prompt templates as task.extra: "
        "'notes' (tasks[0], tasks[1]), 'estimate' (tasks[0])"
    ]
    run_dir = repo.path / ".orchestrator" / "runs" / "x"
    frozen = json.loads((run_dir / "plan.json").read_text())
    assert frozen["tasks"][0]["notes"] == "greet in French" and frozen["tasks"][0]["estimate"] == {"hours": 1}
    prompt = (run_dir / "tasks" / "T0001" / "attempt-1" / "prompt.md").read_text()
    assert '- notes: greet in French\n- estimate: {"hours": 1}\n' in prompt
    assert read_state(repo, "x")["status"] == "succeeded"
    # a resume reads the frozen plan, extra keys and all, and warns no more
    resumed = run_cli(repo.path, "resume", "--run-id", "x", "--no-progress")
    assert resumed.code == 0 and "warning" not in resumed.err
