"""Reconnect notices are not progress (issue 20): codex's `error` events and `error` items do not reset the
idle clock, and more than `limits.max_reconnects` of them in a row fail the attempt as `transport` (or
`auth`) with the agent's own message, instead of a task that hangs until its wall-clock timeout.

captures/no_network_stdout.jsonl is the real codex-cli 0.169.0 with no login and no network (`codex exec
--json`, a fresh CODEX_HOME, stopped after 60 s): it retries, falls back to HTTPS, then says "Reconnecting...
waiting for network" at growing intervals for as long as it is left running.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, FakeCodex, Repo, answer, read_state, run_cli, write_plan

from codex_orch.proc.stream import ProcRequest, run_streaming

CAPTURE = Path(__file__).resolve().parent / "fake_codex" / "captures" / "no_network_stdout.jsonl"
NO_NETWORK = "Reconnecting... waiting for network (Connection failed: error sending request)"
PLAN = [{"role": "implementer", "prompt": "offline task", "acceptance": "", "blocked_by": []}]


def notice(message: str) -> dict[str, Any]:
    return {"error_event": message}


def error_item(message: str) -> dict[str, Any]:
    return {
        "raw": json.dumps({"type": "item.completed", "item": {"id": "item_9", "type": "error", "message": message}})
    }


def run_task(repo: Repo, fake: FakeCodex, tmp_path: Path, steps: list[Any], **limits: Any) -> CliResult:
    fake.script({"default": [steps]})
    repo.configure(limits={"timeout": 60, "idle_timeout": 30, **limits})
    plan = write_plan(tmp_path / "plan.json", PLAN)
    return run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "r1", "--no-progress")


def failure(repo: Repo) -> dict[str, Any]:
    task = read_state(repo, "r1")["tasks"]["T0001"]
    assert task["status"] == "failed"
    error: dict[str, Any] = task["error"]
    assert task["attempts"][-1]["failure"] == error["kind"]
    return error


def test_the_real_no_network_stream_fails_as_transport_with_codex_s_message(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """Before: each notice reset the idle clock; the task ran to its wall-clock limit and failed `timeout`."""
    captured = [json.loads(line) for line in CAPTURE.read_text().splitlines()]
    replay = [{"raw": json.dumps(e)} for e in captured if e["type"] not in ("thread.started", "turn.started")]
    result = run_task(repo, fake_codex, tmp_path, [*replay, {"loop": [notice(NO_NETWORK), {"sleep": 0.05}]}])
    assert result.code == 1, result.err + result.out
    error = failure(repo)
    assert error["kind"] == "transport"
    assert error["message"] == f"6 reconnect notices in a row, no progress: {NO_NETWORK}"


def test_endless_auth_notices_fail_as_auth(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    message = "Reconnecting... 1/5 (unexpected status 401 Unauthorized: Missing bearer authentication in header)"
    result = run_task(repo, fake_codex, tmp_path, [{"loop": [notice(message)]}], max_reconnects=2)
    assert result.code == 1, result.err + result.out
    error = failure(repo)
    assert error["kind"] == "auth"
    assert error["message"] == f"3 reconnect notices in a row, no progress: {message}"


def test_error_items_are_notices_too(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    message = "Falling back from WebSockets to HTTPS transport. stream disconnected before completion"
    result = run_task(repo, fake_codex, tmp_path, [{"loop": [error_item(message)]}])
    assert result.code == 1, result.err + result.out
    error = failure(repo)
    assert (error["kind"], error["message"]) == ("transport", f"6 reconnect notices in a row, no progress: {message}")


def test_notices_do_not_keep_an_agent_alive_past_the_idle_timeout(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """Fewer notices than max_reconnects, but no progress: the idle timeout stops the agent, and the failure
    says what the agent was saying rather than only "idle"."""
    steps = [{"reasoning": "starting"}, {"loop": [notice(NO_NETWORK), {"sleep": 0.05}]}]
    result = run_task(repo, fake_codex, tmp_path, steps, idle_timeout=1, max_reconnects=1000)
    assert result.code == 1, result.err + result.out
    error = failure(repo)
    assert error["kind"] == "transport"
    assert error["message"] == f"no progress for 1 s, only notices: {NO_NETWORK}"


def test_progress_between_notices_starts_the_count_again(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """codex's own retries (Reconnecting... 1/5 to 5/5), then progress, then more: never more than five in a
    row, so the turn goes on and its answer is taken."""
    retries = [notice(f"Reconnecting... {n}/5 (stream disconnected before completion)") for n in range(1, 6)]
    steps = [*retries, {"reasoning": "back"}, *retries, {"answer": answer()}]
    result = run_task(repo, fake_codex, tmp_path, steps)
    assert result.code == 0, result.err + result.out
    assert read_state(repo, "r1")["tasks"]["T0001"]["status"] == "succeeded"


def test_max_reconnects_must_be_a_whole_number(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    result = run_task(repo, fake_codex, tmp_path, [{"answer": answer()}], max_reconnects="five")
    assert result.code == 2
    assert "limits.max_reconnects" in result.err
    assert not (repo.path / ".orchestrator" / "runs" / "r1").exists()


@pytest.mark.parametrize(("says", "stopped_idle"), [(None, False), (True, False), (False, True)])
def test_only_lines_the_callback_calls_progress_reset_the_idle_clock(
    tmp_path: Path, says: bool | None, stopped_idle: bool
) -> None:
    """proc/ knows nothing of codex: the line callback says whether a line was progress (False: not)."""
    chatter = "import time\nfor i in range(60):\n    print('notice', flush=True)\n    time.sleep(0.05)"
    request = ProcRequest(
        argv=(sys.executable, "-c", chatter),
        cwd=tmp_path,
        env=dict(os.environ),
        stdout_path=tmp_path / "out.log",
        stderr_path=tmp_path / "err.log",
        idle_timeout=1.0,
        stop_grace=1,
    )
    outcome = run_streaming(request, lambda line: says)
    assert outcome.idle_out is stopped_idle
    assert (outcome.returncode == 0) is not stopped_idle
