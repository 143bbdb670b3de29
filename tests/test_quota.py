"""Pauses on a provider's quota: the reset read from the agent's message, dispatch to that agent paused
(shown by `status`, recorded in the journal), and the attempt going on by itself on its thread without
counting against limits.transient_retries."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from conftest import FakeCodex, Repo, answer, read_state, run_cli, start_cli, wait_for, write_plan

from codex_orch.engine.quota import BACKOFF_MAX, backoff, pause_seconds, reset_of
from codex_orch.failures import FailureKind, classify_turn_failure

NOW = datetime(2026, 11, 25, 21, 30, 45).timestamp()  # local time, as the agents print it


@pytest.mark.parametrize(
    ("message", "at", "precision"),
    [
        # what the real codex 0.169.0 printed here for a 429 usage_limit_reached (resets_at 40 s ahead)
        ("You\u2019ve hit your usage limit. Try again at 9:31 PM.", datetime(2026, 11, 25, 21, 31).timestamp(), 60),
        # … and for a reset two days ahead
        (
            "You\u2019ve hit your usage limit. Try again at Nov 27th, 2026 10:30 PM.",
            datetime(2026, 11, 27, 22, 30).timestamp(),
            60,
        ),
        # a time of day already past is tomorrow's
        ("usage limit reached, try again at 9:00 AM", datetime(2026, 11, 26, 9, 0).timestamp(), 60),
        ("Rate limit reached for requests. Please try again in 20s.", NOW + 20, 0),
        ("rate limited; try again in 1 minute and 30 seconds", NOW + 90, 0),
        ("429 Too Many Requests (Retry-After: 7)", NOW + 7, 0),
        (
            "quota exceeded, resets at 2026-11-25T21:40:00+00:00",
            datetime.fromisoformat("2026-11-25T21:40:00+00:00").timestamp(),
            0,
        ),
    ],
)
def test_the_reset_named_in_a_message(message: str, at: float, precision: float) -> None:
    reset = reset_of(message, NOW)
    assert reset is not None
    assert (reset.at, reset.precision) == (at, precision)
    assert classify_turn_failure(message) == FailureKind.RATE_LIMITED


def test_no_reset_named_backs_off_exponentially_with_jitter() -> None:
    # what the real codex says for a plain 429 (its Retry-After header is not shown) and "Try again later."
    for message in (
        "exceeded retry limit, last status: 429 Too Many Requests",
        "You\u2019ve hit your usage limit. Try again later.",
    ):
        assert reset_of(message, NOW) is None
    assert [backoff(n, lambda: 0.0) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert backoff(1, lambda: 1.0) == 6.25
    assert backoff(30, lambda: 0.0) == BACKOFF_MAX
    # a reset shown to the minute, in the minute now: a short wait, never past the minute's end
    assert 0 < pause_seconds("Try again at 9:30 PM.", 1, NOW) <= 15


def test_a_rate_limited_attempt_pauses_and_goes_on_by_itself(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script(
        {
            "default": [
                [{"fail": "You've hit your usage limit. Please try again in 3s."}],
                [{"fail": "You've hit your usage limit. Please try again in 1s."}],
                [{"answer": answer()}],
            ]
        }
    )
    repo.configure(limits={"transient_retries": 0})  # the pauses are not retries
    plan = write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": "Do it", "acceptance": "done"}])
    proc = start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "q1", "--no-progress")
    try:
        seen: list[str] = []

        def paused() -> bool:
            out = run_cli(repo.path, "status", "--run-id", "q1").out
            seen.append(out)
            return "codex: paused until " in out

        wait_for(paused, "status to show the pause")
        assert "(You've hit your usage limit. Please try again in " in seen[-1]
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    state = read_state(repo, "q1")
    task = state["tasks"]["T0001"]
    assert state["status"] == "succeeded" and task["status"] == "succeeded"
    assert [a["failure"] for a in task["attempts"]] == ["rate_limited", "rate_limited", None]
    threads = {a["thread_id"] for a in task["attempts"]}
    assert len(threads) == 1, "the attempts after a pause go on on the same thread"
    assert [c["resume"] for c in fake_codex.calls()] == [False, True, True]
    journal = [
        json.loads(line) for line in (repo.path / ".orchestrator/runs/q1/journal.jsonl").read_text().splitlines()
    ]
    kinds = [r["type"] for r in journal if r["type"] in ("run.paused", "run.unpaused")]
    assert kinds == ["run.paused", "run.unpaused", "run.paused", "run.unpaused"]
    assert state.get("paused") == {}
    assert "paused until" not in run_cli(repo.path, "status", "--run-id", "q1").out


def test_max_quota_wait_zero_keeps_a_rate_limit_a_failure(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script({"default": [[{"fail": "429 Too Many Requests. Try again in 1s."}]]})
    repo.configure(limits={"max_quota_wait": 0})
    plan = write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": "Do it", "acceptance": "done"}])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "q2", "--no-progress")
    assert result.code == 1
    task = read_state(repo, "q2")["tasks"]["T0001"]
    assert task["error"]["kind"] == "rate_limited" and len(task["attempts"]) == 1
