"""The agent registry, the choice of a task's agent, the claude and gemini event folds, and the
refusals of bad agent input: fast tests, no agent CLI started (test_real_*.py start them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_CODEX, FakeCodex, Repo, answer, read_state, run_cli, write_plan

from codex_orch.agent_registry import AGENTS, choose_agent
from codex_orch.agents import get_backend
from codex_orch.agents.claude import _ClaudeReader, outcome_of
from codex_orch.agents.gemini import _GeminiReader, failure_of
from codex_orch.agents.stream_json import EventReader
from codex_orch.errors import InputError
from codex_orch.failures import FailureKind
from codex_orch.git.messages import commit_message

CAPTURES = Path(__file__).resolve().parent / "agent_captures"


def fold(reader: EventReader, name: str) -> EventReader:
    for line in (CAPTURES / name).read_bytes().splitlines():
        reader(line)
    return reader


def test_every_registered_agent_has_its_backend() -> None:
    for name in AGENTS:
        assert get_backend(name).name == name
    with pytest.raises(InputError) as raised:
        get_backend("gpt")
    assert raised.value.message == "unknown agent 'gpt'. Known: codex, claude, gemini."


@pytest.mark.parametrize(
    ("task", "run", "role", "default", "expected"),
    [
        ("gemini", "claude", "codex", "codex", ("gemini", "task")),
        (None, "claude", "gemini", "codex", ("claude", "--agent")),
        (None, None, "gemini", "claude", ("gemini", "roles.reviewer.agent")),
        (None, None, None, "claude", ("claude", "agents.default")),
        (None, None, None, None, ("codex", "default")),
    ],
)
def test_the_agent_of_a_task_and_where_the_choice_came_from(
    task: str | None, run: str | None, role: str | None, default: str | None, expected: tuple[str, str]
) -> None:
    choice = choose_agent(task, run, role, "reviewer", default)
    assert (choice.name, choice.source) == expected


def test_an_unknown_agent_in_a_plan_is_refused_naming_its_place(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    task = {"role": "implementer", "prompt": "p", "acceptance": "a", "agent": "gpt"}
    plan = write_plan(tmp_path / "plan.json", [task])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "bad")
    assert result.code == 2
    assert f"{plan}: tasks[0].agent: unknown agent 'gpt'. Known: codex, claude, gemini." in result.err
    assert not (repo.path / ".orchestrator" / "runs" / "bad").exists()


@pytest.mark.parametrize(
    ("agents", "roles", "expected"),
    [
        ({"default": "gpt"}, None, "agents.default: unknown agent 'gpt'. Known: codex, claude, gemini."),
        ({"fallback": ["claude", "claude"]}, None, "agents.fallback[1]: 'claude' is already in the list"),
        ({"fallback": ["codex", "llama"]}, None, "agents.fallback[1]: unknown agent 'llama'"),
        (
            {"claude": {"home": "rel/dir"}},
            None,
            "agents.claude.home: must be 'inherit', 'isolated' or an absolute path",
        ),
        ({"claude": {"max_turns": 0}}, None, "agents.claude.max_turns: 0 is less than the minimum of 1"),
        ({"gemini": {"max_turns": 5}}, None, "agents.gemini: unknown key 'max_turns'"),
        (None, {"reviewer": {"agent": "gpt"}}, "roles.reviewer.agent: unknown agent 'gpt'"),
    ],
)
def test_bad_agent_settings_are_refused_naming_the_key(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, agents: Any, roles: Any, expected: str
) -> None:
    if agents is not None:
        repo.configure(agents=agents)
    if roles is not None:
        repo.configure(roles=roles)
    plan = write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": "p", "acceptance": "a"}])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "cfg")
    assert result.code == 2, result.err
    assert f".orchestrator/orchestrator.yaml: {expected}" in result.err
    assert not (repo.path / ".orchestrator" / "runs" / "cfg").exists()


def test_a_missing_agent_cli_is_refused_before_anything_is_written(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(agents={"gemini": {"command": "no-such-gemini-cli"}})
    tasks = [
        {"role": "implementer", "prompt": "p", "acceptance": "a"},
        {"role": "reviewer", "prompt": "r", "acceptance": "a", "agent": "gemini"},
    ]
    plan = write_plan(tmp_path / "plan.json", tasks)
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "nocli")
    assert result.code == 2
    assert "agents.gemini.command: 'no-such-gemini-cli' was not found on PATH." in result.err
    assert not (repo.path / ".orchestrator" / "runs" / "nocli").exists()
    check = run_cli(repo.path, "plan", "--check", str(plan))
    assert check.code == 2 and "agents.gemini.command" in check.out + check.err
    # a plan that does not use gemini does not need it
    plan = write_plan(tmp_path / "plan.json", tasks[:1])
    fake_codex.script({"default": [[{"answer": answer()}]]})
    assert run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "fine").code == 0


def test_run_agent_must_be_a_known_one(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": "p", "acceptance": "a"}])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--agent", "gpt")
    assert result.code == 2
    assert "Invalid value for '--agent': 'gpt' is not one of 'codex', 'claude', 'gemini'." in result.err


def test_answer_failures_never_switch_agents(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """agents.fallback is for the provider's failures: a schema-invalid answer is retried on its thread."""
    repo.configure(agents={"fallback": ["claude", "codex"], "claude": {"command": [sys.executable, str(FAKE_CODEX)]}})
    fake_codex.script({"default": [[{"answer": {"status": "done"}}], [{"answer": answer()}]]})
    plan = write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": "p", "acceptance": "a"}])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "nofb")
    assert result.code == 0, result.err
    attempts = read_state(repo, "nofb")["tasks"]["T0001"]["attempts"]
    assert [(a["agent"], a["failure"], a["fallback_from"]) for a in attempts] == [
        ("codex", "schema_invalid", None),
        ("codex", None, None),
    ]
    assert attempts[1]["resumed_thread"] == attempts[0]["thread_id"]


def test_provenance_trailers_name_the_agent() -> None:
    task = {"id": "T1", "role": "implementer"}
    assert "Codex-Thread: th-1\n" in commit_message("r", task, 1, "th-1", "s")
    message = commit_message("r", task, 2, "se-2", "s", agent="claude")
    assert "Agent-Thread: claude:se-2\n" in message and "Codex-Thread" not in message


def test_claude_captures_fold_into_answers_and_failures() -> None:
    ok = fold(_ClaudeReader(None), "claude_success_structured_stream.jsonl")
    assert isinstance(ok, _ClaudeReader) and ok.result is not None
    assert ok.thread_id == "dbc21494-2017-4690-8a8f-5be58659567c"
    final, failure, _ = outcome_of(ok.result)
    assert failure is None and json.loads(final or "") == {
        "status": "done",
        "files_changed": ["hello.txt"],
        "summary": "created",
    }
    assert (ok.usage.input_tokens, ok.usage.output_tokens) == (200, 40)
    assert ok.items == {"command_execution": 1, "agent_message": 1}

    schema = fold(_ClaudeReader(None), "claude_fail_schema_stream.jsonl")
    assert isinstance(schema, _ClaudeReader) and schema.result is not None
    final, failure, message = outcome_of(schema.result)
    assert (final, failure) == (None, FailureKind.SCHEMA_INVALID)
    assert message == "Failed to provide valid structured output after 5 attempts"

    down = fold(_ClaudeReader(None), "claude_fail_500_stream.jsonl")
    assert isinstance(down, _ClaudeReader) and down.result is not None
    final, failure, message = outcome_of(down.result)
    assert (final, failure) == (None, FailureKind.TRANSPORT) and message.startswith("API Error: 500")


def test_claude_at_its_turn_limit_fails_as_max_turns() -> None:
    """claude's `error_max_turns` result (agents.claude.max_turns reached) is its own failure kind."""
    final, failure, message = outcome_of({"type": "result", "subtype": "error_max_turns", "is_error": True})
    assert (final, failure, message) == (None, FailureKind.MAX_TURNS, "the turn limit was reached")
    said = outcome_of({"subtype": "error_max_turns", "is_error": True, "errors": ["reached 3 turns"]})
    assert said == (None, FailureKind.MAX_TURNS, "reached 3 turns")


def test_gemini_captures_fold_into_answers_and_failures() -> None:
    ok = fold(_GeminiReader(None), "gemini_success_stream.jsonl")
    assert isinstance(ok, _GeminiReader) and ok.result is not None
    assert json.loads(ok.final) == {"status": "done", "files_changed": ["hello.txt"], "summary": "created"}
    assert (ok.usage.input_tokens, ok.usage.cached_input_tokens, ok.usage.output_tokens) == (200, 20, 40)
    assert ok.items == {"command_execution": 1}
    for name, kind in (
        ("gemini_fail_500_stream.jsonl", FailureKind.TRANSPORT),
        ("gemini_fail_429_stream.jsonl", FailureKind.RATE_LIMITED),
    ):
        reader = fold(_GeminiReader(None), name)
        assert isinstance(reader, _GeminiReader) and reader.result is not None
        assert failure_of(reader.result, reader.last_error)[0] == kind
    cut = failure_of({"status": "error"}, "Model stream ended without a finish reason.")
    assert cut == (FailureKind.TRANSPORT, "Model stream ended without a finish reason.")


HOSTILE = [
    b"[1, 2]",
    b"\xff\xfe not utf-8",
    b'{"type": "system", "subtype": "init", "session_id": ["x"]}',
    b'{"type": "assistant", "message": {"content": "a string"}}',
    b'{"type": "assistant", "message": {"content": [1, null, {"type": "tool_use", "name": 7, "input": "x"}]}}',
    b'{"type": "result", "subtype": 3, "usage": {"input_tokens": -5, "output_tokens": 1e400, "cache_read_input_tokens": true}, "structured_output": null, "result": {"a": 1}, "errors": "no", "api_error_status": "500", "total_cost_usd": "lots", "permission_denials": 5}',
    b'{"type": "init", "session_id": 12}',
    b'{"type": "message", "role": "assistant", "content": {"x": 1}, "delta": true}',
    b'{"type": "tool_use", "tool_name": null, "parameters": [1]}',
    b'{"type": "result", "status": "error", "error": "boom", "stats": {"input_tokens": "9", "cached": 10000000000000000000}}',
    b"9" * 5000,
]


def test_hostile_events_are_counted_never_trusted() -> None:
    for reader in (_ClaudeReader(None), _GeminiReader(None)):
        for line in HOSTILE:
            reader(line)
        assert reader.garbage == 3  # not an object, not UTF-8, an integer Python will not convert
        assert (
            reader.usage.input_tokens == 0 and reader.usage.output_tokens == 0 and reader.usage.cached_input_tokens == 0
        )
        assert reader.thread_id is None
    claude = _ClaudeReader(None)
    for line in HOSTILE:
        claude(line)
    assert claude.result is not None
    final, failure, _ = outcome_of(claude.result)
    assert final is None and failure == FailureKind.TURN_FAILED
    gemini = _GeminiReader(None)
    for line in HOSTILE:
        gemini(line)
    assert gemini.result is not None and failure_of(gemini.result, "")[0] == FailureKind.TURN_FAILED
