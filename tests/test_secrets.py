"""Secrets in the environment never reach a file codex-orch writes, even when the agent prints them."""

from __future__ import annotations

from pathlib import Path

from conftest import FakeCodex, Repo, answer, run_cli, write_plan

SECRET = "sk-test-0123456789abcdef"
TOKEN = "ghp_tokenvalue_987654321"


def test_planted_secrets_are_redacted_everywhere(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    leaky = answer(f"done with {SECRET}", decisions=[{"decision": f"use {TOKEN}", "rationale": SECRET}])
    fake_codex.script(
        {
            "default": [
                [
                    {"shell": "echo key=$DRILL_API_KEY token=$GH_TOKEN"},
                    {"stderr": f"debug {SECRET}"},
                    {"write": "out.txt", "content": "work"},
                    {"answer": {"status": "done", "summary": SECRET}},
                ],
                [{"answer": leaky}],
            ]
        }
    )
    plan = write_plan(
        tmp_path / "plan.json",
        [{"role": "implementer", "prompt": "use the key from the environment", "acceptance": "", "blocked_by": []}],
    )
    result = run_cli(
        repo.path,
        "run",
        "--plan-file",
        str(plan),
        "--run-id",
        "sec",
        env={"DRILL_API_KEY": SECRET, "GH_TOKEN": TOKEN, "SHORT_KEY": "1"},
    )
    assert result.code == 0, result.err
    # the agent saw them (it needs its environment) and printed them: the secrets were really in play
    assert len(fake_codex.calls()) == 2
    written = [p for p in (repo.path / ".orchestrator").rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        assert SECRET.encode() not in data and TOKEN.encode() not in data, path
    events = (repo.path / ".orchestrator/runs/sec/tasks/T0001/attempt-1/events.jsonl").read_text()
    assert "key=[REDACTED:DRILL_API_KEY] token=[REDACTED:GH_TOKEN]" in events
    history = repo.git("log", "--all", "--format=%B") + repo.git("log", "--all", "-p")
    assert SECRET not in history and TOKEN not in history
    report = run_cli(repo.path, "status", "--run-id", "sec", "--json")
    assert SECRET not in report.out and TOKEN not in report.out + result.out + result.err
