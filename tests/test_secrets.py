"""Secrets never leak through codex-orch: the environment's secrets never reach a file it writes, in any
form, even when the agent prints them; a task's commit holding one (or a well-known credential) is
refused and the task fails `secret`, naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from conftest import CliResult, FakeCodex, Repo, answer, git, read_state, run_cli, write_plan

from codex_orch.redaction import Redactor
from codex_orch.state import RunStore

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


# --- every form a secret takes in what codex-orch writes -------------------------------------------
SPECIAL = 'sk-"quoted"\\back\\slash-é-0123'  # a quote, backslashes and a non-ASCII character
URL = "postgres://u:p4ssw0rd@h/db"
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example key; detect-secrets flags it
GITHUB_TOKEN = "ghp_" + "0123456789abcdefghijABCDEFGHIJ012345"


def forms(value: str) -> set[str]:
    """The value raw, JSON-escaped once and twice (with and without \\uXXXX), percent-encoded."""
    once = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    twice = {json.dumps(f)[1:-1] for f in once} | {json.dumps(f, ensure_ascii=False)[1:-1] for f in once}
    return {value, *once, *twice, quote(value, safe=""), quote(value), quote_plus(value)}


def leaks(repo: Repo, values: list[str], *outputs: str) -> list[str]:
    """Where any form of the values is found: the files codex-orch wrote under .orchestrator (not the
    user's config, not the agent's worktree), every commit and message, and the given outputs."""
    found = []
    needles = [f for value in values for f in forms(value)]
    for path in (repo.path / ".orchestrator").rglob("*"):
        if path.is_file() and path.name != "orchestrator.yaml" and "worktrees" not in path.parts:
            data = path.read_bytes()
            found += [f"{path}: {n!r}" for n in needles if n.encode() in data]
    history = repo.git("log", "--all", "-p", "--format=%B")
    found += [f"git history: {n!r}" for n in needles if n in history]
    found += [f"output: {n!r}" for n in needles for out in outputs if n in out]
    return found


def one_task(tmp_path: Path, prompt: str = "use the key from the environment") -> Path:
    return write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": prompt, "acceptance": ""}])


def test_escaped_and_url_encoded_forms_of_a_secret_are_redacted(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script(
        {
            "default": [
                [
                    {"shell": "echo key=$DRILL_API_KEY"},  # its output is JSON-escaped in the event
                    {"shell": f"echo url=https://h/?k={quote(SPECIAL, safe='')}"},
                    {"stderr": f"debug {SPECIAL}"},
                    {"write": "out.txt", "content": "work"},
                    # the answer is JSON: escaped once in final.json, twice inside its event
                    {
                        "answer": answer(
                            f"done with {SPECIAL}",
                            decisions=[{"decision": f"use {SPECIAL}", "rationale": quote_plus(SPECIAL)}],
                        )
                    },
                ]
            ]
        }
    )
    result = run_cli(
        repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "esc", env={"DRILL_API_KEY": SPECIAL}
    )
    assert result.code == 0, result.err
    events = (repo.path / ".orchestrator/runs/esc/tasks/T0001/attempt-1/events.jsonl").read_text()
    assert "key=[REDACTED:DRILL_API_KEY]" in events and "k=[REDACTED:DRILL_API_KEY]" in events
    report = run_cli(repo.path, "report", "--run-id", "esc")
    status = run_cli(repo.path, "status", "--run-id", "esc", "--json")
    assert report.code == 0 and status.code == 0
    assert leaks(repo, [SPECIAL], result.out, result.err, report.out, status.out) == []


def test_a_credential_url_is_redacted_whatever_its_variable_is_called(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(codex=fake_codex.config(DATABASE_URL=URL))  # given to the agent through the config
    fake_codex.script(
        {
            "default": [
                [
                    {"shell": "echo $DATABASE_URL"},
                    {"stderr": "connecting as u with p4ssw0rd"},
                    {"write": "db.txt", "content": "migrated"},
                    {
                        "answer": answer(
                            f"migrated {URL}",
                            decisions=[{"decision": "mirror", "rationale": "postgres://u:p4ssw0rd@replica/db2"}],
                        )
                    },
                ]
            ]
        }
    )
    result = run_cli(repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "url")
    assert result.code == 0, result.err
    events = (repo.path / ".orchestrator/runs/url/tasks/T0001/attempt-1/events.jsonl").read_text()
    assert "[REDACTED:DATABASE_URL]" in events
    status = run_cli(repo.path, "status", "--run-id", "url", "--json")
    assert leaks(repo, [URL, "p4ssw0rd"], result.out, result.err, status.out) == []


def test_a_secret_split_across_chunks_in_any_form_is_redacted() -> None:
    redactor = Redactor({"DRILL_API_KEY": SPECIAL, "DATABASE_URL": URL})
    for value in (SPECIAL, URL, "p4ssw0rd"):
        for form in forms(value):
            payload = f"before {form} after".encode()
            for cut in range(1, len(payload)):
                stream = redactor.stream()
                out = stream.feed(payload[:cut]) + stream.feed(payload[cut:]) + stream.flush()
                assert form.encode() not in out and b"[REDACTED:" in out, (form, cut)
            stream = redactor.stream()
            out = b"".join(stream.feed(payload[i : i + 1]) for i in range(len(payload))) + stream.flush()
            assert form.encode() not in out, form


def test_the_journal_stays_valid_json_whatever_a_secret_starts_with(tmp_path: Path) -> None:
    # "n0123456789" is in the JSON text of "\n0123456789" (a newline, then digits) but not in the string
    redactor = Redactor({"DRILL_API_KEY": "n0123456789"})
    with RunStore.create(tmp_path, {"run_id": "j"}, [{"id": "T0001", "role": "implementer"}], redactor) as store:
        store.record("task.status", task="T0001", status="failed", error={"kind": "x", "message": "a\n0123456789"})
        store.record("task.status", task="T0001", status="failed", error={"kind": "x", "message": "n0123456789"})
    lines = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert lines[1]["error"]["message"] == "a\n0123456789"
    assert lines[2]["error"]["message"] == "[REDACTED:DRILL_API_KEY]"


# --- the scan of each task's commit ---------------------------------------------------------------
def run_writing(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, run_id: str, turns: list[Any], **config: Any
) -> CliResult:
    fake_codex.script({"default": turns})
    repo.configure(**config)
    return run_cli(
        repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", run_id, env={"DRILL_API_KEY": SECRET}
    )


def commits_hold(repo: Repo, text: str) -> bool:
    return text in repo.git("log", "--all", "-p", "--format=%B")


def nothing_staged(repo: Repo, run_id: str) -> bool:
    worktree = repo.path / ".orchestrator/worktrees" / run_id
    return git(worktree, "diff", "--cached", "--name-only") == ""


@pytest.mark.parametrize(
    ("path", "content", "line"),
    [
        ("app/settings.py", f"import os\nAPI_KEY = {SECRET!r}\n", 2),
        ("app/settings.json", json.dumps({"name": "app", "key": SPECIAL}, indent=1) + "\n", 3),  # JSON-escaped
        ("app/.env", f"NAME=app\nURL=https://h/?k={quote(SECRET)}\n", 2),
    ],
)
def test_an_agent_writing_a_secret_value_into_a_file_gets_no_commit(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, path: str, content: str, line: int
) -> None:
    fake_codex.script({"default": [[{"write": path, "content": content}, {"answer": answer("configured")}]]})
    repo.configure(limits={"retries": 0})
    result = run_cli(
        repo.path,
        "run",
        "--plan-file",
        str(one_task(tmp_path)),
        "--run-id",
        "val",
        env={"DRILL_API_KEY": SECRET if SECRET in content else SPECIAL},
    )
    assert result.code == 1, result.err
    error = read_state(repo, "val")["tasks"]["T0001"]["error"]
    assert error["kind"] == "secret"
    assert f"{path}:{line}: a secret from $DRILL_API_KEY" in error["message"]
    assert not commits_hold(repo, "configured") and nothing_staged(repo, "val")
    assert leaks(repo, [SECRET, SPECIAL], result.out, result.err) == []


def test_an_agent_that_removes_the_secret_when_asked_succeeds(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    turns = [
        [
            {"write": "app/settings.py", "content": f"API_KEY = {SECRET!r}\n"},
            {"answer": answer("configured", decisions=[{"decision": "keep the key in settings", "rationale": "r"}])},
        ],
        [
            {"write": "app/settings.py", "content": "import os\n\nAPI_KEY = os.environ['DRILL_API_KEY']\n"},
            {"answer": answer("reads it from the environment", decisions=[{"decision": "env", "rationale": "r"}])},
        ],
    ]
    result = run_writing(repo, fake_codex, tmp_path, "fix", turns, limits={"retries": 1})
    assert result.code == 0, result.err
    calls = fake_codex.calls()
    assert len(calls) == 2 and calls[1]["resume"] and calls[1]["thread_id"] == calls[0]["thread_id"]
    assert "app/settings.py:1: a secret from $DRILL_API_KEY" in calls[1]["prompt"]
    assert SECRET not in calls[1]["prompt"]
    task = read_state(repo, "fix")["tasks"]["T0001"]
    assert task["status"] == "succeeded"
    assert [a["failure"] for a in task["attempts"]] == ["secret", None]
    branch = read_state(repo, "fix")["branch"]
    assert "os.environ['DRILL_API_KEY']" in repo.git("show", f"{branch}:app/settings.py")
    decisions = repo.git("show", f"{branch}:docs/ai/decisions.md")
    assert "**env**" in decisions and "keep the key" not in decisions  # the refused commit's entry was taken back
    assert not commits_hold(repo, SECRET)


def test_a_well_known_credential_is_blocked(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    turns = [
        [
            # detect-secrets' own way to silence a line, which the agent can write too: not honoured
            {
                "write": "deploy/env.sh",
                "content": f"#!/bin/sh\nexport AWS_ACCESS_KEY_ID={AWS_KEY}  # pragma: allowlist secret\n",
            },
            {"answer": answer("deploy script")},
        ]
    ]
    result = run_writing(repo, fake_codex, tmp_path, "aws", turns, limits={"retries": 0})
    assert result.code == 1, result.err
    error = read_state(repo, "aws")["tasks"]["T0001"]["error"]
    assert error["kind"] == "secret" and "deploy/env.sh:2: AWS Access Key" in error["message"]
    assert AWS_KEY not in error["message"] and AWS_KEY not in result.out + result.err
    assert not commits_hold(repo, AWS_KEY) and nothing_staged(repo, "aws")


@pytest.mark.parametrize(
    "secrets", [{"allow": ["AWSKeyDetector"]}, {"allow": ["deploy/**"]}, {"scan": False}], ids=["plugin", "glob", "off"]
)
def test_the_config_lets_a_credential_through(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, secrets: dict[str, Any]
) -> None:
    turns = [[{"write": "deploy/env.sh", "content": f"AWS_ACCESS_KEY_ID={AWS_KEY}\n"}, {"answer": answer("deploy")}]]
    result = run_writing(repo, fake_codex, tmp_path, "ok", turns, limits={"retries": 0}, secrets=secrets)
    assert result.code == 0, result.err
    assert read_state(repo, "ok")["tasks"]["T0001"]["status"] == "succeeded"
    assert commits_hold(repo, AWS_KEY)


def test_credentials_in_the_answer_block_the_commit(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    turns = [
        [
            {"write": "notes.txt", "content": "notes\n"},
            {"answer": answer("done", decisions=[{"decision": f"use token {GITHUB_TOKEN}", "rationale": "r"}])},
        ],
        [{"answer": answer(f"done, key {AWS_KEY}")}],
        [{"answer": answer("done without credentials")}],
    ]
    result = run_writing(repo, fake_codex, tmp_path, "ans", turns, limits={"retries": 2})
    assert result.code == 0, result.err
    calls = fake_codex.calls()
    assert len(calls) == 3
    assert "docs/ai/decisions.md:" in calls[1]["prompt"] and "GitHub Token" in calls[1]["prompt"]
    assert "(commit message):1: AWS Access Key" in calls[2]["prompt"]
    task = read_state(repo, "ans")["tasks"]["T0001"]
    assert [a["failure"] for a in task["attempts"]] == ["secret", "secret", None]
    assert not commits_hold(repo, GITHUB_TOKEN) and not commits_hold(repo, AWS_KEY)


@pytest.mark.parametrize(
    ("secrets", "where"),
    [
        ({"allow": ["AWSKeyDetectr"]}, "secrets.allow[0]: unknown detect-secrets plugin 'AWSKeyDetectr'"),
        ({"scan": "yes"}, "secrets.scan"),
    ],
)
def test_a_bad_secrets_setting_is_refused_before_anything_is_written(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, secrets: dict[str, Any], where: str
) -> None:
    repo.configure(secrets=secrets)
    result = run_cli(repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "bad")
    assert result.code == 2 and where in result.err
    assert not (repo.path / ".orchestrator/runs/bad").exists() and fake_codex.calls() == []


def test_an_answer_that_makes_no_commit_is_not_held_up(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    # a reviewer quoting what it found: nothing is committed, so nothing is refused
    turns = [[{"answer": answer(f"config.py holds a hard-coded key, {AWS_KEY}")}]]
    result = run_writing(repo, fake_codex, tmp_path, "rev", turns, limits={"retries": 0})
    assert result.code == 0, result.err
    task = read_state(repo, "rev")["tasks"]["T0001"]
    assert task["status"] == "succeeded" and task["commit"] is None and len(task["attempts"]) == 1


def test_a_secret_in_a_file_name_is_found_too(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    turns = [[{"write": f"keys/{SECRET}.txt", "content": "nothing to see\n"}, {"answer": answer("stored")}]]
    result = run_writing(repo, fake_codex, tmp_path, "name", turns, limits={"retries": 0})
    assert result.code == 1, result.err
    error = read_state(repo, "name")["tasks"]["T0001"]["error"]
    assert error["kind"] == "secret"
    assert "keys/[REDACTED:DRILL_API_KEY].txt (its name): a secret from $DRILL_API_KEY" in error["message"]
    assert SECRET not in repo.git("log", "--all", "--name-only", "--format=%B")
