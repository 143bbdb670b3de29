"""The fake codex, run as a real child process: it must speak what the real codex-cli 0.169.0 speaks.

Shapes are checked against the real CLI's captured output (tests/fake_codex/captures, copied from
shared/codex-captures) and against facts observed by running the real binary (noted where used).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_CODEX, FakeCodex, Repo, alive, kill_all, make_fake, marked, release, wait_marked

CAPTURES = Path(__file__).resolve().parent / "fake_codex" / "captures"
# shared/codex-captures/success_patch_stdout.jsonl, lines 3-4 (real codex applying a patch)
REAL_FILE_CHANGE = [
    '{"type":"item.started","item":{"id":"item_0","type":"file_change","changes":[{"path":"/tmp/research-codex/runs/ws_patch/repo/src/patched.py","kind":"add"}],"status":"in_progress"}}',
    '{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"/tmp/research-codex/runs/ws_patch/repo/src/patched.py","kind":"add"}],"status":"completed"}}',
]
DEFAULT_USAGE = {
    "input_tokens": 100,
    "cached_input_tokens": 10,
    "cache_write_input_tokens": 0,
    "output_tokens": 20,
    "reasoning_output_tokens": 5,
}


def events(out: bytes | str) -> list[dict[str, Any]]:
    text = out.decode() if isinstance(out, bytes) else out
    return [json.loads(line) for line in text.splitlines()]


def shape(event: dict[str, Any]) -> tuple[str, str | None]:
    return event["type"], (event.get("item") or {}).get("type")


def real(name: str) -> list[dict[str, Any]]:
    """A real capture without the "unknown model" notice (a property of the mock setup, not the protocol)."""
    return [e for e in events((CAPTURES / name).read_text()) if shape(e) != ("item.completed", "error")]


@pytest.fixture
def fake(tmp_path: Path) -> FakeCodex:
    return make_fake(tmp_path / "fake")


def test_version(fake: FakeCodex, tmp_path: Path) -> None:
    result = fake.run(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout == b"codex-cli 0.169.0-fake\n"


def test_a_plain_turn_matches_the_real_capture(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    fake.script({"default": [[{"shell": "echo hi > hello.txt"}, {"answer": {"status": "done"}}]]})
    last = tmp_path / "last.txt"
    result = fake.run(repo.path, "exec", "--json", "-s", "workspace-write", "-C", str(repo.path), "-o", str(last), "-")
    assert result.returncode == 0, result.stderr
    mine, expected = events(result.stdout), real("success_shell_stdout.jsonl")
    assert [shape(e) for e in mine] == [shape(e) for e in expected]
    for a, b in zip(mine, expected, strict=True):  # the same keys, in the same order, at every level
        assert list(a) == list(b)
        assert list(a.get("item", {})) == list(b.get("item", {}))
        assert list(a.get("usage", {})) == list(b.get("usage", {}))
    assert mine[-1]["usage"] == DEFAULT_USAGE
    assert [e["item"]["id"] for e in mine if "item" in e] == ["item_0", "item_0", "item_1"]
    assert mine[2]["item"]["exit_code"] is None and mine[2]["item"]["status"] == "in_progress"
    assert mine[3]["item"]["exit_code"] == 0 and mine[3]["item"]["status"] == "completed"
    assert mine[3]["item"]["command"] == "/bin/bash -lc 'echo hi > hello.txt'"
    uuid.UUID(mine[0]["thread_id"])
    # compact JSON, one event per line, like codex
    first = result.stdout.split(b"\n")[0]
    assert first == b'{"type":"thread.started","thread_id":"' + mine[0]["thread_id"].encode() + b'"}'
    assert (repo.path / "hello.txt").read_text() == "hi\n"
    assert last.read_text() == '{"status": "done"}'  # the answer's text, verbatim, no newline


def test_file_steps_change_the_cd_dir_and_report_absolute_paths(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    work = repo.path / "sub"
    work.mkdir()
    (work / "old.txt").write_text("old\n")
    (work / "gone.txt").write_text("bye\n")
    outside = tmp_path / "outside" / "stray.txt"
    steps = [
        {"write": "a/b/new.txt", "content": "new\n"},
        {"write": "old.txt", "content": "replaced\n"},
        {"append": "old.txt", "content": "more\n"},
        {"append": "fresh.txt", "content": "x"},
        {"delete": "gone.txt"},
        {"write_outside": str(outside), "content": "stray"},
        {"answer": "ok"},
    ]
    code, evs, err = fake.script({"default": [steps]}).exec(tmp_path, "-C", str(work))
    assert code == 0, err
    assert (work / "a/b/new.txt").read_text() == "new\n"
    assert (work / "old.txt").read_text() == "replaced\nmore\n"
    assert (work / "fresh.txt").read_text() == "x"
    assert not (work / "gone.txt").exists() and outside.read_text() == "stray"
    changes = [e["item"]["changes"][0] for e in evs if e["type"] == "item.completed" and "changes" in e["item"]]
    assert changes == [
        {"path": str(work / "a/b/new.txt"), "kind": "add"},
        {"path": str(work / "old.txt"), "kind": "update"},
        {"path": str(work / "old.txt"), "kind": "update"},
        {"path": str(work / "fresh.txt"), "kind": "add"},
        {"path": str(work / "gone.txt"), "kind": "delete"},
        {"path": str(outside), "kind": "add"},
    ]
    expected = [json.loads(line) for line in REAL_FILE_CHANGE]
    assert [shape(e) for e in evs[2:4]] == [shape(e) for e in expected]
    assert [list(e["item"]) for e in evs[2:4]] == [list(e["item"]) for e in expected]
    assert [e["item"]["status"] for e in evs[2:4]] == ["in_progress", "completed"]


def test_shell_commands_are_shown_and_reported_as_real_codex_does(repo: Repo, fake: FakeCodex) -> None:
    # commands and their display observed with the real 0.169.0 (Rust shlex quoting)
    shown = {
        "ls": "/bin/bash -lc ls",
        "echo it's": '/bin/bash -lc "echo it\'s"',
        'echo "a $HOME"': "/bin/bash -lc 'echo \"a $HOME\"'",
        "false": "/bin/bash -lc false",
        "printf 'x\\n'": "/bin/bash -lc \"printf 'x\\\\n'\"",
        "echo ^x !y": "/bin/bash -lc 'echo ''^x !y'",
        "echo out; echo err >&2; exit 3": "/bin/bash -lc 'echo out; echo err >&2; exit 3'",
    }
    fake.script({"default": [[{"shell": cmd} for cmd in shown] + [{"answer": "ok"}]]})
    code, evs, err = fake.exec(repo.path, "-C", str(repo.path))
    assert code == 0, err
    done = [e["item"] for e in evs if e["type"] == "item.completed" and e["item"]["type"] == "command_execution"]
    assert [item["command"] for item in done] == list(shown.values())
    by_cmd = dict(zip(shown, done, strict=True))
    assert by_cmd["echo it's"]["exit_code"] == 2 and by_cmd["echo it's"]["status"] == "failed"  # a bash syntax error
    assert by_cmd["false"]["exit_code"] == 1 and by_cmd["false"]["status"] == "failed"
    assert by_cmd["printf 'x\\n'"]["aggregated_output"].endswith("x\n")
    assert by_cmd["echo ^x !y"]["aggregated_output"].endswith("^x !y\n")
    last = by_cmd["echo out; echo err >&2; exit 3"]
    assert last["aggregated_output"].endswith("out\nerr\n") and last["exit_code"] == 3 and last["status"] == "failed"


def test_resume_continues_the_thread_with_its_turns_and_cumulative_usage(
    repo: Repo, fake: FakeCodex, tmp_path: Path
) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object"}')
    fake.script(
        {
            "rules": [
                {
                    "match": "task X",
                    "turns": [
                        [{"usage": {"input_tokens": 1000, "output_tokens": 50}}, {"answer": "first"}],
                        [{"answer": "second"}],
                        [{"answer": "again"}],
                    ],
                },
                {"match": "fix it", "turns": [[{"answer": "a rule on the resume prompt must not match"}]]},
            ],
            "default": [[{"answer": "default"}]],
        }
    )
    last = tmp_path / "last.txt"
    code, first, err = fake.exec(repo.path, "--output-schema", str(schema), "-o", str(last), stdin="do task X now")
    assert code == 0, err
    assert last.read_text() == "first"
    thread = first[0]["thread_id"]
    assert first[-1]["usage"] == {**DEFAULT_USAGE, "input_tokens": 1000, "output_tokens": 50}
    # -s, -C before `resume`; -o, -m, -c, --json, --output-schema after it (all accepted by the real one)
    code, second, err = fake.exec(
        repo.path,
        "-s",
        "workspace-write",
        "-C",
        str(repo.path),
        "resume",
        thread,
        "-o",
        str(last),
        "-m",
        "gpt-x",
        "-c",
        "a=1",
        "--output-schema",
        str(schema),
        stdin="fix it",
    )
    assert code == 0, err
    assert second[0] == {"type": "thread.started", "thread_id": thread}
    assert [shape(e) for e in second] == [
        ("thread.started", None),
        ("turn.started", None),
        ("item.completed", "agent_message"),
        ("turn.completed", None),
    ]
    assert second[2]["item"] == {"id": "item_0", "type": "agent_message", "text": "second"}
    assert last.read_text() == "second"
    assert second[-1]["usage"] == {k: first[-1]["usage"][k] + DEFAULT_USAGE[k] for k in DEFAULT_USAGE}
    third = [fake.exec(repo.path, "resume", thread)[1] for _ in range(2)]
    assert [t[2]["item"]["text"] for t in third] == ["again", "again"]  # the last turn repeats
    assert third[-1][-1]["usage"]["input_tokens"] == 1000 + 3 * 100
    other = fake.exec(repo.path, stdin="something else")[1]
    assert other[0]["thread_id"] != thread and other[2]["item"]["text"] == "default"

    calls = fake.calls()
    assert [(c["thread_id"] == thread, c["turn"], c["resume"]) for c in calls] == [
        (True, 1, False),
        (True, 2, True),
        (True, 3, True),
        (True, 4, True),
        (False, 1, False),
    ]
    assert calls[0]["prompt"] == "do task X now" and calls[1]["prompt"] == "fix it"
    assert calls[0]["output_schema"] == str(schema) and calls[0]["output_schema_json"] == {"type": "object"}
    assert calls[1]["sandbox"] == "workspace-write" and calls[1]["model"] == "gpt-x" and calls[1]["config"] == ["a=1"]
    assert calls[1]["cd"] == str(repo.path) and calls[1]["codex_home"] == str(fake.home)
    assert calls[1]["output_last_message"] == str(last) and calls[1]["argv"][:2] == ["exec", "--json"]
    assert all(c["pid"] > 0 and c["rejected"] is None for c in calls)
    session = json.loads((fake.home / "sessions" / f"{thread}.json").read_text())
    assert session["prompt"] == "do task X now" and session["turns"] == 4
    assert session["usage"] == third[-1][-1]["usage"]


def test_resume_of_an_unknown_thread_and_options_resume_refuses(repo: Repo, fake: FakeCodex) -> None:
    missing = str(uuid.uuid4())
    code, evs, err = fake.exec(repo.path, "resume", missing)
    assert (code, evs) == (1, [])
    assert f"Error: thread/resume: thread/resume failed: no rollout found for thread id {missing}" in err
    assert fake.calls()[-1]["rejected"].startswith("Error: thread/resume") and fake.calls()[-1]["resume_id"] == missing
    # real 0.169.0: an id that is not a UUID and names no thread silently starts a NEW thread
    code, evs, _ = fake.exec(repo.path, "resume", "not-a-uuid")
    assert code == 0 and evs[0]["thread_id"] != "not-a-uuid"
    # real 0.169.0: -C, -s and -p are not options of `exec resume` (clap: unexpected argument, exit 2)
    thread = fake.exec(repo.path)[1][0]["thread_id"]
    for option in (["-s", "workspace-write"], ["-C", str(repo.path)], ["-p", "prof"], ["--sandbox=read-only"]):
        result = fake.run(repo.path, "exec", "--json", "resume", thread, *option, "-")
        assert result.returncode == 2, option
        assert b"unexpected argument" in result.stderr and b"codex exec resume" in result.stderr


def test_usage_and_config_errors(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    def run(*args: str, stdin: str = "do it") -> tuple[int, str]:
        result = fake.run(repo.path, *args, stdin=stdin)
        return result.returncode, result.stderr.decode()

    assert run("exec", "--full-auto", "-")[0] == 2  # removed in 0.169.0
    code, err = run("exec", "--bogus", "-")
    assert code == 2 and "unexpected argument '--bogus' found" in err
    code, err = run("exec", "-s", "yolo", "-")
    assert code == 2 and "invalid value 'yolo' for '--sandbox <SANDBOX_MODE>'" in err
    assert run("exec", "-o")[0] == 2
    assert run("exec", "one", "two")[0] == 2
    assert run("frobnicate")[0] == 2
    assert run("exec", "--json", "-c", "foo", "-") == (
        1,
        "Error parsing -c overrides: Invalid override (missing '='): foo\n",
    )
    assert run("exec", "--json", "-", stdin=" \n") == (1, "No prompt provided via stdin.\n")
    assert run("exec", "--json", stdin="")[0] == 1  # no prompt argument: stdin, empty
    assert run("exec", "--json", "-C", str(tmp_path / "missing"), "-")[0] == 1
    code, err = run("exec", "--json", "--output-schema", str(tmp_path / "none.json"), "-")
    assert code == 1 and "Failed to read output schema file" in err
    (tmp_path / "bad.json").write_text("{bad")
    code, err = run("exec", "--json", "--output-schema", str(tmp_path / "bad.json"), "-")
    assert code == 1 and "is not valid JSON" in err
    assert all(c["rejected"] for c in fake.calls())  # every rejected invocation is logged too
    rejected = len(fake.calls())
    # accepted spellings
    for args in (
        ["--sandbox=read-only"],
        ["-sread-only"],
        ["--cd", str(repo.path)],
        ["--yolo"],
        ["-p", "x", "-m", "y"],
        ["--dangerously-bypass-approvals-and-sandbox", "--skip-git-repo-check", "--config", "k=v"],
    ):
        assert run("exec", "--json", *args, "-")[0] == 0, args
    assert [c["rejected"] for c in fake.calls()[rejected:]] == [None] * 6


def test_prompt_argument_gets_piped_stdin_appended(repo: Repo, fake: FakeCodex) -> None:
    result = fake.run(repo.path, "exec", "--json", "the prompt", stdin="more\n")
    assert result.returncode == 0 and b"Reading additional input from stdin..." in result.stderr
    assert fake.calls()[-1]["prompt"] == "the prompt\n\n<stdin>\nmore\n</stdin>"  # as the real 0.169.0 sends it
    fake.run(repo.path, "exec", "--json", "alone", stdin="")
    assert fake.calls()[-1]["prompt"] == "alone"


def test_the_git_repo_check(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    code, evs, err = fake.exec(outside)
    assert (code, evs) == (1, [])
    assert err == "Not inside a trusted directory and --skip-git-repo-check was not specified.\n"
    assert fake.exec(repo.path, "-C", str(outside))[0] == 1  # -C is what counts, not the cwd
    assert fake.exec(outside, "--skip-git-repo-check")[0] == 0
    nested = repo.path / "deep" / "er"
    nested.mkdir(parents=True)
    assert fake.exec(outside, "-C", str(nested))[0] == 0
    linked = tmp_path / "linked"  # a linked worktree has a .git FILE
    linked.mkdir()
    (linked / ".git").write_text("gitdir: /somewhere\n")
    assert fake.exec(outside, "-C", str(linked))[0] == 0


def test_fail_ends_the_turn_as_the_real_capture(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    message = "We\u2019re currently experiencing high demand, which may cause temporary errors."
    last = tmp_path / "last.txt"
    last.write_text("stale")
    fake.script({"default": [[{"answer": "partial"}, {"fail": message}, {"write": "never.txt", "content": ""}]]})
    result = fake.run(repo.path, "exec", "--json", "-o", str(last), "-")
    assert result.returncode == 1
    mine, expected = events(result.stdout), real("fail_500_noretry_stdout.jsonl")
    assert [shape(e) for e in mine if shape(e) != ("item.completed", "agent_message")] == [shape(e) for e in expected]
    assert mine[-2:] == expected[-2:]  # the same error and turn.failed events, the message unescaped
    assert message.encode() in result.stdout
    assert last.read_text() == "" and not (repo.path / "never.txt").exists()


def test_exit_and_kill_self_end_at_once(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    last = tmp_path / "last.txt"
    fake.script({"default": [[{"answer": "ok"}, {"exit": 7}, {"answer": "never"}]]})
    result = fake.run(repo.path, "exec", "--json", "-o", str(last), "-")
    assert result.returncode == 7 and last.read_text() == ""
    assert [shape(e) for e in events(result.stdout)][-1] == ("item.completed", "agent_message")
    fake.script({"default": [[{"reasoning": "hm"}, {"kill_self": "SEGV"}]]})
    result = fake.run(repo.path, "exec", "--json", "-")
    assert result.returncode == -signal.SIGSEGV
    assert events(result.stdout)[-1]["item"] == {"id": "item_0", "type": "reasoning", "text": "hm"}


def test_bad_scripts_fail_loudly_with_exit_3(repo: Repo, fake: FakeCodex) -> None:
    scripts: tuple[dict[str, Any], ...] = (
        {"default": [[{"bogus": 1}]]},
        {"default": [[{"write": "a.txt", "contents": "typo"}]]},
        {"default": [[{"write": "a.txt", "shell": "ls"}]]},
        {"default": [[{"sleep": "1"}]]},
        {"default": [[{"usage": {"input": 1}}]]},
        {"default": [[{"kill_self": "NOPE"}]]},
        {"default": [[{"gate": "relative/path"}]]},
        {"default": [{"answer": "a flat list of steps instead of turns"}]},
        {"rules": [{"match": "x", "turns": []}]},
        {"rules": [{"match": "never used", "turns": [[{"shel": "ls"}]]}]},  # checked even if never reached
        {"defaults": []},
    )
    for script in scripts:
        result = fake.script(script).run(repo.path, "exec", "--json", "-")
        assert result.returncode == 3, script
        assert result.stderr.startswith(b"fake codex: ") and result.stdout == b""
    fake.script_path.write_text("{not json")
    assert fake.run(repo.path, "exec", "--json", "-").returncode == 3


def test_no_script_and_plain_output(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    code, evs, _ = fake.exec(repo.path)
    assert code == 0
    assert json.loads(evs[2]["item"]["text"]) == {"status": "done", "summary": "fake", "files_changed": []}
    fake.script({"default": [[{"reasoning": "x"}, {"answer": "plain answer"}]]})
    result = fake.run(repo.path, "exec", "-o", str(tmp_path / "o.txt"), "-")  # without --json: just the answer
    assert result.returncode == 0 and result.stdout == b"plain answer\n"
    assert (tmp_path / "o.txt").read_text() == "plain answer"


def test_read_only_sandbox_blocks_file_steps(repo: Repo, fake: FakeCodex) -> None:
    # real 0.169.0 under -s read-only: the patch is rejected, no item, no file, exit 0
    fake.script({"default": [[{"write": "ro.txt", "content": "x"}, {"answer": "ok"}]]})
    code, evs, err = fake.exec(repo.path, "-s", "read-only")
    assert code == 0 and not (repo.path / "ro.txt").exists() and "read-only sandbox" in err
    assert [shape(e) for e in evs if "item" in e] == [("item.completed", "agent_message")]
    assert fake.exec(repo.path, "-c", "sandbox_mode=read-only")[0] == 0 and not (repo.path / "ro.txt").exists()
    assert fake.exec(repo.path, "-s", "read-only", "--dangerously-bypass-approvals-and-sandbox")[0] == 0
    assert (repo.path / "ro.txt").read_text() == "x"


def test_odd_output_steps(repo: Repo, fake: FakeCodex) -> None:
    fake.script(
        {
            "default": [
                [
                    {"raw": "not json at all"},
                    {"raw_b64": base64.b64encode(b"\xff\xfe bytes").decode()},
                    {"big_line": 3_000_000},
                    {"stderr": "a warning"},
                    {"error_event": "Reconnecting... 1/5"},
                    {"answer": "ok"},
                ]
            ]
        }
    )
    result = fake.run(repo.path, "exec", "--json", "-")
    assert result.returncode == 0
    lines = result.stdout.split(b"\n")
    assert lines[2] == b"not json at all" and lines[3] == b"\xff\xfe bytes"
    assert len(lines[4]) == 3_000_000
    big = json.loads(lines[4])
    assert big["type"] == "item.completed" and big["item"]["type"] == "reasoning" and big["item"]["id"] == "item_0"
    assert json.loads(lines[5]) == {"type": "error", "message": "Reconnecting... 1/5"}
    assert json.loads(lines[6])["item"]["id"] == "item_1" and json.loads(lines[7])["type"] == "turn.completed"
    assert result.stderr.decode().splitlines()[-1] == "a warning"


def test_flood_writes_the_bytes_asked_for(repo: Repo, fake: FakeCodex) -> None:
    fake.script({"default": [[{"flood": 20_000_000}, {"answer": "ok"}]]})
    with subprocess.Popen(
        [sys.executable, str(FAKE_CODEX), "exec", "--json", "go"],
        cwd=repo.path,
        env=fake.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        out = proc.stdout.read()
    assert proc.returncode == 0
    lines = out.splitlines()
    flood = [line for line in lines if b'"type":"reasoning"' in line]
    assert 20_000_000 <= sum(len(line) + 1 for line in flood) < 20_000_000 + 4096
    assert {len(line) + 1 for line in flood} == {4096}
    assert json.loads(flood[0])["item"]["type"] == "reasoning" and json.loads(flood[-1])["type"] == "item.completed"
    assert [json.loads(line)["type"] for line in lines[-2:]] == ["item.completed", "turn.completed"]
    # line_bytes is honoured (how fast a flood goes is bench/stream_memory.py's business, not a test's)
    fake.script({"default": [[{"flood": 30_000_000, "line_bytes": 100}]]})
    with subprocess.Popen(
        [sys.executable, str(FAKE_CODEX), "exec", "--json", "go"],
        cwd=repo.path,
        env=fake.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        head = proc.stdout.read(1 << 16)
        total = len(head)
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
    assert proc.returncode == 0 and 30_000_000 <= total < 30_001_000, total
    assert len(head.split(b"\n")[3]) == 99


def test_a_gate_holds_the_agent_until_the_test_releases_it(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    fake.script({"default": [[{"marker": str(started)}, {"gate": str(gate)}, {"answer": "released"}]]})
    with open(tmp_path / "out.jsonl", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(FAKE_CODEX), "exec", "--json", "go"],
            cwd=repo.path,
            env=fake.env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    try:
        assert wait_marked(started, proc=proc) == [proc.pid]  # a whole line: never an empty marker
        held = events((tmp_path / "out.jsonl").read_bytes())
        assert [e["type"] for e in held] == ["thread.started", "turn.started"] and proc.poll() is None
        release(gate)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = events((tmp_path / "out.jsonl").read_bytes())
    assert [shape(e) for e in done[2:]] == [("item.completed", "agent_message"), ("turn.completed", None)]


def test_signals_ignore_and_default(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    """An agent that ignores SIGTERM and SIGINT goes on after both: held at a gate while they are sent, it
    then takes its next step (no sleep-and-hope that it would have died by now)."""

    def start(name: str, steps: list[dict[str, Any]]) -> tuple[subprocess.Popen[bytes], Path, Path]:
        ready, gate, after = tmp_path / f"{name}.ready", tmp_path / f"{name}.gate", tmp_path / f"{name}.after"
        turn = [*steps, {"marker": str(ready)}, {"gate": str(gate)}, {"marker": str(after)}, {"hang": True}]
        fake.script({"default": [turn]})
        proc = subprocess.Popen(
            [sys.executable, str(FAKE_CODEX), "exec", "--json", "go"],
            cwd=repo.path,
            env=fake.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_marked(ready, proc=proc) == [proc.pid]
        return proc, gate, after

    stubborn, gate, after = start("stubborn", [{"ignore_signals": True}, {"spawn_child": True}])
    children = marked(fake.children)
    try:
        stubborn.send_signal(signal.SIGTERM)
        stubborn.send_signal(signal.SIGINT)
        release(gate)
        assert wait_marked(after, proc=stubborn) == [stubborn.pid]  # alive, and past both signals
        assert alive(children[0]) and os.getpgid(children[0]) == os.getpgid(stubborn.pid)
    finally:
        stubborn.kill()
        stubborn.wait()
        kill_all(children)  # the grandchild this test made the fake start
    assert stubborn.returncode == -signal.SIGKILL

    # without ignore_signals: SIGTERM kills (as the real one: killed by signal 15), SIGINT exits 1
    for sig, code in ((signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 1)):
        proc, _gate, _after = start(sig.name, [])
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == code
