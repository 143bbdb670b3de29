"""The estimate before spending: `plan --check` gives tokens and cost as a range, from the repository's
earlier runs per role (tokens per attempt, attempts per task); `run --max-cost` refuses a plan whose
low end is over it, before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import FakeCodex, Repo, answer, read_state, run_cli, write_plan

# Every fake attempt: 5,000 input and 500 output tokens ($0.04 at gpt-5.5's price).
USAGE = {"usage": {"input_tokens": 5000, "cached_input_tokens": 0, "output_tokens": 500, "reasoning_output_tokens": 0}}
SCRIPT = {
    "rules": [{"match": "needs a retry", "turns": [[USAGE, {"answer": "not json"}], [USAGE, {"answer": answer()}]]}],
    "default": [[USAGE, {"answer": answer()}]],
}


def tasks(prompts: list[str]) -> list[dict[str, Any]]:
    return [{"role": "implementer", "prompt": p, "acceptance": "done", "blocked_by": []} for p in prompts]


def estimate_of(repo: Repo, plan: Path) -> dict[str, Any]:
    result = run_cli(repo.path, "plan", "--check", str(plan), "--json")
    assert result.code == 0, result.err + result.out
    return dict(json.loads(result.out)["estimate"])


def run_tokens(repo: Repo, run_id: str) -> int:
    state = read_state(repo, run_id)
    return sum(
        a["usage"]["input_tokens"] + a["usage"]["output_tokens"] for t in state["tasks"].values() for a in t["attempts"]
    )


def test_estimate_from_history_is_within_twice_the_actual_tokens(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script(SCRIPT)
    first = write_plan(tmp_path / "first.json", tasks(["Alpha", "Beta needs a retry", "Gamma", "Delta"]))
    second = write_plan(tmp_path / "second.json", tasks(["Epsilon", "Zeta needs a retry", "Eta"]))

    blind = estimate_of(repo, first)  # no earlier run: from the rendered prompts alone
    assert blind["history_runs"] == 0
    assert {t["basis"] for t in blind["tasks"]} == {"prompt size only"}
    assert all(0 < t["prompt_tokens"] < t["tokens"]["low"] < t["tokens"]["high"] for t in blind["tasks"])
    assert 0 < blind["cost_usd"]["low"] < blind["cost_usd"]["high"]

    assert run_cli(repo.path, "run", "--plan-file", str(first), "--run-id", "e1").code == 0
    estimate = estimate_of(repo, second)
    assert estimate["history_runs"] == 1
    assert {t["basis"] for t in estimate["tasks"]} == {"history (5 attempt(s) of role implementer)"}

    assert run_cli(repo.path, "run", "--plan-file", str(second), "--run-id", "e2").code == 0
    actual = run_tokens(repo, "e2")
    low, high = estimate["tokens"]["low"], estimate["tokens"]["high"]
    assert (low, actual, high) == (16_500, 22_000, 33_000)
    assert actual / 2 <= low <= actual <= high <= actual * 2
    cost = sum(a["cost_usd"] for t in read_state(repo, "e2")["tasks"].values() for a in t["attempts"])
    assert estimate["cost_usd"]["low"] <= cost <= estimate["cost_usd"]["high"]

    text = run_cli(repo.path, "plan", "--check", str(second)).out
    assert "estimate: 16,500 to 33,000 tokens, $0.12 to $0.24 (history of 2 earlier run(s))" in text, text


def test_max_cost_refuses_a_plan_whose_low_end_is_over_it(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script(SCRIPT)
    plan = write_plan(tmp_path / "plan.json", tasks(["Alpha", "Beta"]))
    assert run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "m1").code == 0

    refused = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "m2", "--max-cost", "0.05")

    assert refused.code == 2
    assert "--max-cost: the plan's estimated cost is $0.08 at least ($0.08 at most), over $0.05" in refused.err
    assert not (repo.path / ".orchestrator/runs/m2").exists()
    assert len(fake_codex.calls()) == 2
    allowed = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "m3", "--max-cost", "1")
    assert allowed.code == 0, allowed.err


def test_max_cost_refuses_when_a_model_has_no_price(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.configure(roles={"implementer": {"model": "my-local-model"}})
    plan = write_plan(tmp_path / "plan.json", tasks(["Alpha"]))

    refused = run_cli(repo.path, "run", "--plan-file", str(plan), "--max-cost", "5")

    assert refused.code == 2
    assert "cannot be estimated: no price for model my-local-model" in refused.err
    assert not (repo.path / ".orchestrator/runs").exists() or not any((repo.path / ".orchestrator/runs").iterdir())
