"""Budgets as a breaker: a run whose spend reaches budgets.run_cost stops dispatching, ends
budget_exhausted (exit 1), and `resume --budget-run-cost` finishes it without running a task twice;
per-task caps; warn mode. Each fake codex attempt uses 100 input tokens (10 cached), 20 output (5 of
them reasoning): at the test price below it costs exactly $1."""

from __future__ import annotations

from pathlib import Path

from conftest import FakeCodex, Repo, answer, read_state, run_cli, write_plan

# 90 uncached input tokens at $1 per 90 tokens: $1.00 an attempt, nothing else billed.
PRICE = {"gpt-5.5": {"input": 1, "cached_input": 0, "output": 0, "per": 90}}


def tasks(n: int) -> list[dict[str, object]]:
    return [
        {"role": "implementer", "prompt": f"Write file {i}", "acceptance": "done", "blocked_by": []} for i in range(n)
    ]


def test_run_cost_stops_dispatch_and_resume_with_a_higher_budget_finishes(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script({"default": [[{"answer": answer()}]]})
    repo.configure(prices=PRICE, budgets={"run_cost": 4})
    plan = write_plan(tmp_path / "plan.json", tasks(10))

    first = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "b1", "--no-progress")

    assert first.code == 1, first.err
    assert "budget exhausted" in first.err and "--budget-run-cost" in first.err
    state = read_state(repo, "b1")
    assert state["status"] == "budget_exhausted"
    statuses = [state["tasks"][t]["status"] for t in state["task_order"]]
    assert statuses == ["succeeded"] * 4 + ["pending"] * 6
    assert len(fake_codex.calls()) == 4

    status = run_cli(repo.path, "status", "--run-id", "b1")
    assert "budget_exhausted" in status.out and "$4.00" in status.out, status.out

    second = run_cli(repo.path, "resume", "--run-id", "b1", "--budget-run-cost", "20", "--no-progress")

    assert second.code == 0, second.err
    state = read_state(repo, "b1")
    assert state["status"] == "succeeded"
    assert state["budgets"] == {"run_cost": 20}
    assert all(len(t["attempts"]) == 1 for t in state["tasks"].values())
    prompts = [call["prompt"] for call in fake_codex.calls()]
    assert len(prompts) == 10
    assert all(sum(f"Write file {i}\n" in p for p in prompts) == 1 for i in range(10)), "a task ran twice"
    assert sum(a["cost_usd"] for t in state["tasks"].values() for a in t["attempts"]) == 10.0


def test_task_tokens_cap_stops_retries_as_budget(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script({"default": [[{"answer": "not json"}]]})  # every answer invalid: retried on the thread
    repo.configure(budgets={"task_tokens": 200}, limits={"retries": 5})
    plan = write_plan(tmp_path / "plan.json", tasks(1))

    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "b2", "--no-progress")

    assert result.code == 1
    task = read_state(repo, "b2")["tasks"]["T0001"]
    assert task["error"]["kind"] == "budget"
    assert "budgets.task_tokens is 200" in task["error"]["message"]
    assert len(task["attempts"]) == 2  # 120 tokens, then 240: no third attempt


def test_warn_mode_says_it_once_and_runs_everything(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script({"default": [[{"answer": answer()}]]})
    repo.configure(prices=PRICE, budgets={"run_cost": 1, "mode": "warn"})
    plan = write_plan(tmp_path / "plan.json", tasks(3))

    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "b3", "--no-progress")

    assert result.code == 0, result.err
    assert result.err.count("reached budgets.run_cost $1.00") == 1, result.err
    state = read_state(repo, "b3")
    assert state["status"] == "succeeded"
    assert state["budget_warnings"] == ["run_cost"]
