"""`logs`, `timeline` and the failure digest of `report`, on a real run with a retry and a failure."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FakeCodex, Repo, answer, job, run_cli, run_plan, start_cli, wait_for, write_plan

BAD_ANSWER = {"status": "done", "summary": 7}  # not the implementer's schema


def retry_and_failure_run(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    """A runs a command and writes; B's first attempt fails a command and answers off-schema, its second
    succeeds; C's test command fails and every answer is off-schema, so C fails."""
    rules = [
        {
            "match": "job A.",
            "turns": [[{"shell": "echo hello-from-a"}, {"write": "a.txt", "content": "a\n"}, {"answer": answer("a")}]],
        },
        {
            "match": "job B.",
            "turns": [
                [{"shell": "echo boom; exit 3"}, {"answer": BAD_ANSWER}],
                [{"write": "b.txt", "content": "b\n"}, {"answer": answer("b", ["b.txt"])}],
            ],
        },
        {
            "match": "job C.",
            "turns": [
                [{"shell": "echo 'E   assert 1 == 2'; echo '1 failed, 3 passed'; exit 1"}, {"answer": BAD_ANSWER}]
            ],
        },
    ]
    repo.configure(limits={"retries": 1, "timeout": 60, "idle_timeout": 30, "stop_grace": 1})
    run_plan(repo, fake, tmp_path, "lg", [job("A"), job("B"), job("C")], rules, expect=1)


def test_logs_timeline_and_failure_digest(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    retry_and_failure_run(repo, fake_codex, tmp_path)

    # logs: every command of every attempt, with its exit code; filters by task, kind and expression
    result = run_cli(repo.path, "logs", "--run-id", "lg", "--kind", "command")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert any("A #1 command" in line and "echo hello-from-a" in line and "(exit 0)" in line for line in lines)
    assert any("B #1 command" in line and "(exit 3)" in line for line in lines)
    assert any("C #2 command" in line and "(exit 1)" in line for line in lines), result.out
    assert not any(" message " in line for line in lines)

    result = run_cli(repo.path, "logs", "--run-id", "lg", "--task", "B", "--json")
    events = [json.loads(line) for line in result.out.splitlines()]
    assert {e["task"] for e in events} == {"B"}
    assert {e["attempt"] for e in events} == {1, 2}
    failed = [e for e in events if e["kind"] == "command"]
    assert failed == [failed[0]] and failed[0]["exit_code"] == 3 and failed[0]["output"] == "boom\n"
    assert all(isinstance(e["at"], float) for e in events)  # events.times recorded when each line came
    assert any(e["kind"] == "file" and e["text"].startswith("add ") and e["text"].endswith("b.txt") for e in events)

    result = run_cli(repo.path, "logs", "--run-id", "lg", "--grep", r"assert 1 == \d", "--output")
    assert result.code == 0, result.err
    assert [line.split()[1] for line in result.out.splitlines() if " command " in line] == ["C", "C"]
    assert "    E assert 1 == 2" in result.out

    for bad, message in (
        (["--grep", "("], "--grep: invalid regular expression '('"),
        (["--task", "T9"], "--task: no task 'T9' in run lg"),
    ):
        result = run_cli(repo.path, "logs", "--run-id", "lg", *bad)
        assert result.code == 2 and message in result.err and result.out == "", (bad, result.err)

    # timeline: journal transitions and agent events, one line each, in time order
    result = run_cli(repo.path, "timeline", "--run-id", "lg", "--json")
    assert result.code == 0, result.err
    entries = [json.loads(line) for line in result.out.splitlines()]
    elapsed = [e["elapsed"] for e in entries]
    assert elapsed == sorted(elapsed) and elapsed[0] == 0.0
    texts = [(e["task"], e["kind"], e["text"]) for e in entries]
    assert texts[0] == (None, "run", "run created (3 tasks)")
    assert texts[-1] == (None, "run", "run partial")
    assert ("B", "attempt", "attempt 2 started on codex, continuing thread " + _thread(entries, "B")) in texts
    b_events = [t for t in texts if t[0] == "B"]
    assert b_events.index(("B", "command", "/bin/bash -lc 'echo boom; exit 3'")) < b_events.index(
        ("B", "task", "succeeded")
    )
    human = run_cli(repo.path, "timeline", "--run-id", "lg", "--task", "C")
    assert human.code == 0 and "C #2" in human.out and "A #1" not in human.out
    assert all(line.startswith("+") for line in human.out.splitlines())

    # report: the failure digest names C's failed command, its output's tail and the validator's errors
    result = run_cli(repo.path, "report", "--run-id", "lg", "--json")
    data = json.loads(result.out)
    assert [f["task"] for f in data["failures"]] == ["C"]
    digest = data["failures"][0]
    assert digest["attempts"] == 2 and digest["error"]["kind"] == "schema_invalid"
    assert digest["failed_command"]["attempt"] == 2 and digest["failed_command"]["exit_code"] == 1
    assert digest["failed_command"]["output_tail"] == "E   assert 1 == 2\n1 failed, 3 passed\n"
    assert digest["validation_errors"][0] == "schema_invalid"
    assert any("summary" in line for line in digest["validation_errors"][1:])
    md = run_cli(repo.path, "report", "--run-id", "lg").out
    section = md[md.index("## Failures") : md.index("## A ")]
    assert "### C (implementer): schema_invalid after 2 attempts" in section
    assert "Last failed command (attempt 2, exit 1)" in section
    assert "E   assert 1 == 2\n1 failed, 3 passed" in section
    assert "B (" not in section


def _thread(entries: list[dict], task: str) -> str:
    started = [
        e["text"] for e in entries if e["task"] == task and e["kind"] == "turn" and e["text"].startswith("thread")
    ]
    return started[0].split()[1]


def test_logs_follow_prints_events_as_they_come_and_ends_with_the_run(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    fake_codex.script(
        {
            "default": [
                [
                    {"shell": "echo before-the-gate"},
                    {"shell": f"while [ ! -e {gate} ]; do sleep 0.05; done; echo after-the-gate"},
                    {"answer": answer("held")},
                ]
            ]
        }
    )
    plan = write_plan(tmp_path / "plan.json", [job("H")])
    run = start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "fl", "--no-progress")
    procs = [run]
    try:
        wait_for((repo.path / ".orchestrator/runs/fl/journal.jsonl").is_file, "the run to start")
        out = tmp_path / "follow.out"
        with open(out, "w") as fh:
            follow = start_cli(repo.path, "logs", "--run-id", "fl", "--follow", "--kind", "command", stdout=fh)
        procs.append(follow)
        wait_for(lambda: "before-the-gate" in out.read_text(), "the first command while the agent is held")
        assert "after-the-gate" not in out.read_text() and follow.poll() is None
        gate.touch()
        assert follow.wait(timeout=60) == 0  # it ends by itself once the run has ended
        assert run.wait(timeout=60) == 0
        lines = out.read_text().splitlines()
        assert len(lines) == 2 and "before-the-gate" in lines[0] and "after-the-gate" in lines[1]
    finally:
        gate.touch()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_agent_text_cannot_drive_the_terminal(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    title = "\x1b]0;pwned\x07\x1b[2J"  # retitle the terminal, clear the screen
    rules = [{"match": "job E.", "turns": [[{"shell": f"true '{title}'"}, {"answer": answer("e")}]]}]
    run_plan(repo, fake_codex, tmp_path, "esc", [job("E")], rules)
    result = run_cli(repo.path, "logs", "--run-id", "esc", "--kind", "command")
    assert result.code == 0, result.err
    assert "\x1b" not in result.out and "\x07" not in result.out
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in result.out


def test_claude_and_gemini_streams_read_as_the_same_events() -> None:
    """The real CLIs' captured streams (tests/agent_captures) fold into commands, answers and errors."""
    from codex_orch.commands.events import EventReader

    def read(name: str) -> list[tuple[str, str]]:
        reader = EventReader("T", 1, name.split("_", maxsplit=1)[0])
        events = []
        for line in (Path(__file__).parent / "agent_captures" / name).read_bytes().splitlines():
            events += reader.feed(line, None)
        return [(e.kind, e.text) for e in events + reader.flush()]

    claude = read("claude_success_structured_stream.jsonl")
    assert ("command", "echo hello from claude > hello.txt && ls") in claude
    assert [kind for kind, _ in claude].count("message") == 1 and claude[-1] == ("turn", "turn completed")
    gemini = read("gemini_success_stream.jsonl")
    assert ("command", "echo hello > hello.txt") in gemini
    assert ("message", '{"status": "done", "files_changed": ["hello.txt"], "summary": "created"}') in gemini
    failed = read("gemini_fail_429_stream.jsonl")
    assert failed[-1][0] == "error" and "HTTP 429" in failed[-1][1]
    assert read("claude_fail_500_stream.jsonl")[-1][1].startswith("turn failed: API Error: 500")
