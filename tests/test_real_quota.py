"""A REAL codex (tools/codex, 0.169.0) against the loopback model server answering 429 "usage limit
reached" with a reset 3 s ahead: the run pauses dispatch to codex (journal and `status` say until
when), then goes on by itself on the same threads, and every task succeeds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import Repo, answer, read_state, run_cli, write_plan
from test_real_codex import use_real_codex

from codex_orch.commands.views import build_view
from codex_orch.testing.scripted_model import ScriptedModelServer

pytestmark = pytest.mark.realcodex


def test_a_usage_limit_pauses_the_run_which_finishes_by_itself(repo: Repo, tmp_path: Path) -> None:
    from codex_orch.cli.render import spend_lines

    limit = {"http": 429, "body": {"error": {"type": "usage_limit_reached", "message": "limit", "resets_at": 0}}}
    limit["body"]["error"]["resets_at"] = int(time.time()) + 3  # type: ignore[index]
    rules = [
        {
            "match": f"Create {name}.txt",
            "steps": [limit, {"answer": answer(name)}],
        }
        for name in ("alpha", "beta")
    ]
    tasks = [
        {"role": "implementer", "prompt": f"Create {name}.txt", "acceptance": "it exists", "blocked_by": []}
        for name in ("alpha", "beta")
    ]
    with ScriptedModelServer({"rules": rules}) as server:
        use_real_codex(repo, server, max_workers=2)
        plan = write_plan(tmp_path / "plan.json", tasks)
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "quota", "--no-progress")
    assert result.code == 0, result.err
    state = read_state(repo, "quota")
    assert state["status"] == "succeeded"
    for task in state["tasks"].values():
        assert task["status"] == "succeeded"
        assert task["attempts"][0]["failure"] == "rate_limited"
        assert "usage limit" in task["attempts"][0]["failure_message"]
        assert len({a["thread_id"] for a in task["attempts"]}) == 1  # went on on its thread
    assert "codex paused until " in result.err  # said as it happened
    journal = [json.loads(x) for x in (repo.path / ".orchestrator/runs/quota/journal.jsonl").read_text().splitlines()]
    pauses = [r for r in journal if r["type"] == "run.paused"]
    assert pauses and all(p["agent"] == "codex" and "usage limit" in p["reason"] for p in pauses)
    # what `status` showed while the run was paused: the state folded up to the first pause
    from codex_orch.fold import apply
    from codex_orch.run_record import RunRecord

    folded: dict[str, object] = {"seq": 0}
    for rec in journal[: journal.index(pauses[0]) + 1]:
        apply(folded, rec)
    lines = spend_lines(build_view(RunRecord.from_state(folded)))
    assert any(line.startswith("codex: paused until ") and "usage limit" in line for line in lines), lines
