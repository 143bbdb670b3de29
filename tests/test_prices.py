"""Cost per attempt, task and run: the price table, the agent's own figure first, and a model with no
price shown as tokens only, said plainly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeCodex, Repo, answer, run_cli, write_plan

from codex_orch.agents.base import Usage
from codex_orch.prices import DEFAULT_PRICES, Price, attempt_cost, build_prices

USAGE = Usage(
    input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000, reasoning_output_tokens=40_000
)


def test_a_price_bills_each_kind_of_token() -> None:
    price = Price(input=5.0, cached_input=0.5, output=30.0, reasoning=10.0)
    # 600k uncached x $5 + 400k cached x $0.50 + 60k output x $30 + 40k reasoning x $10, per million
    assert price.cost(USAGE) == pytest.approx(3.0 + 0.2 + 1.8 + 0.4)
    assert Price(input=5.0, cached_input=0.5, output=30.0).cost(USAGE) == pytest.approx(3.0 + 0.2 + 3.0)  # as output
    assert DEFAULT_PRICES["gpt-5.5"].as_of  # every shipped figure says when it was taken
    assert all(p.as_of for p in DEFAULT_PRICES.values())


def test_the_config_overrides_a_model_whole_and_adds_others() -> None:
    table = build_prices({"gpt-5.5": {"input": 1, "output": 2, "per": 1000}, "mine": {"input": 0, "output": 0}})
    assert table["gpt-5.5"] == Price(input=1, cached_input=1, output=2, per=1000)
    assert table["mine"].cost(USAGE) == 0
    assert table["claude-sonnet-4-6"] == DEFAULT_PRICES["claude-sonnet-4-6"]


def test_the_agents_own_cost_comes_first_and_an_unknown_model_is_said() -> None:
    table = build_prices(None)
    assert attempt_cost(table, "claude", "claude-sonnet-4-6", USAGE, 0.25).record() == {
        "cost_usd": 0.25,
        "cost_source": "agent",
        "cost_note": None,
    }
    priced = attempt_cost(table, "codex", None, USAGE, None)  # no model named: codex's default
    assert (priced.usd, priced.source) == (DEFAULT_PRICES["gpt-5.5"].cost(USAGE), "prices")
    unknown = attempt_cost(table, "codex", "my-local-model", USAGE, None)
    assert (unknown.usd, unknown.note) == (None, "no price for model my-local-model")


def test_status_and_report_say_when_a_cost_is_unknown(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script({"default": [[{"answer": answer()}]]})
    plan = write_plan(
        tmp_path / "plan.json",
        [
            {"role": "implementer", "prompt": "Do it", "acceptance": "done", "model": "my-local-model"},
            {"role": "implementer", "prompt": "Do that", "acceptance": "done"},  # codex's default: gpt-5.5
        ],
    )
    assert run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "c1").code == 0

    status = run_cli(repo.path, "status", "--run-id", "c1").out
    assert "cost unknown: no price for model my-local-model (tokens only)" in status, status
    assert "cost: $0.0011 (tokens in 200, out 40)" in status  # T0002's attempt at gpt-5.5's price
    data = json.loads(run_cli(repo.path, "report", "--run-id", "c1", "--json").out)
    tasks = {t["id"]: t for t in data["tasks"]}
    assert tasks["T0001"]["cost_usd"] is None
    assert tasks["T0001"]["cost_unknown"] == ["no price for model my-local-model"]
    assert tasks["T0001"]["usage"]["input_tokens"] == 100  # its tokens are still there
    assert tasks["T0002"]["attempts"][0]["cost_source"] == "prices"
    assert data["cost_usd"] == tasks["T0002"]["cost_usd"] == 0.001055
    assert data["cost_unknown"] == ["no price for model my-local-model"]
    md = (repo.path / ".orchestrator/runs/c1/report.md").read_text()
    assert (
        "- Cost: $0.0011 for the attempts priced; cost unknown: no price for model my-local-model (tokens only)" in md
    )
