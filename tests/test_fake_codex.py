"""The fake codex must speak what the real one speaks: checked against the real CLI's captures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import FAKE_CODEX, Repo

CAPTURES = Path(__file__).resolve().parent / "fake_codex" / "captures"  # copied from shared/codex-captures


def fake(
    tmp_path: Path,
    cwd: Path,
    *args: str,
    script: dict[str, Any] | None = None,
    prompt: str = "do it",
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEX_HOME": str(tmp_path / "home"), "FAKE_CODEX_LOG": str(tmp_path / "log.jsonl")}
    if script is not None:
        (tmp_path / "script.json").write_text(json.dumps(script))
        env["FAKE_CODEX_SCRIPT"] = str(tmp_path / "script.json")
    return subprocess.run(
        [sys.executable, str(FAKE_CODEX), *args],
        cwd=cwd,
        input=prompt,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def shape(event: dict[str, Any]) -> tuple[str, str | None]:
    return event["type"], (event.get("item") or {}).get("type")


def test_event_sequence_matches_the_real_capture(repo: Repo, tmp_path: Path) -> None:
    real = events((CAPTURES / "success_shell_stdout.jsonl").read_text())
    real = [e for e in real if shape(e) != ("item.completed", "error")]  # unknown-model notice, not protocol
    script = {"default": [[{"shell": "echo hi > hello.txt"}, {"answer": {"status": "done"}}]]}
    result = fake(tmp_path, repo.path, "exec", "--json", "-o", str(tmp_path / "last.txt"), "-", script=script)
    assert result.returncode == 0, result.stderr
    mine = events(result.stdout)
    assert [shape(e) for e in mine] == [shape(e) for e in real]
    assert set(mine[-1]["usage"]) == set(real[-1]["usage"])
    assert set(mine[2]["item"]) == set(real[2]["item"]) and set(mine[3]["item"]) == set(real[3]["item"])
    assert (repo.path / "hello.txt").read_text() == "hi\n"
    assert (tmp_path / "last.txt").read_text() == '{"status": "done"}'


def test_turn_failed_matches_the_real_capture(repo: Repo, tmp_path: Path) -> None:
    real = [
        e
        for e in events((CAPTURES / "fail_500_noretry_stdout.jsonl").read_text())
        if shape(e) not in (("item.completed", "error"), ("error", None))
    ]
    result = fake(
        tmp_path,
        repo.path,
        "exec",
        "--json",
        "-o",
        str(tmp_path / "last.txt"),
        "-",
        script={"default": [[{"fail": "We're currently experiencing high demand"}]]},
    )
    assert result.returncode == 1
    assert [shape(e) for e in events(result.stdout)] == [shape(e) for e in real]
    assert (tmp_path / "last.txt").read_text() == ""


def test_resume_continues_the_thread_with_cumulative_usage(repo: Repo, tmp_path: Path) -> None:
    script = {"rules": [{"match": "task X", "turns": [[{"answer": "first"}], [{"answer": "second"}]]}]}
    first = fake(tmp_path, repo.path, "exec", "--json", "-", script=script, prompt="task X")
    thread = events(first.stdout)[0]["thread_id"]
    second = fake(
        tmp_path,
        repo.path,
        "exec",
        "--json",
        "-s",
        "workspace-write",
        "resume",
        thread,
        "-",
        script=script,
        prompt="fix it",
    )
    evs = events(second.stdout)
    assert evs[0] == {"type": "thread.started", "thread_id": thread}
    assert evs[2]["item"]["text"] == "second"
    assert evs[-1]["usage"]["input_tokens"] == 2 * events(first.stdout)[-1]["usage"]["input_tokens"]
    unknown = fake(tmp_path, repo.path, "exec", "--json", "resume", "nope", "-", script=script)
    assert unknown.returncode == 1 and "no rollout found" in unknown.stderr


def test_usage_errors_and_the_git_check(repo: Repo, tmp_path: Path) -> None:
    assert fake(tmp_path, repo.path, "exec", "--full-auto", "-").returncode == 2
    assert fake(tmp_path, repo.path, "exec", "-s", "yolo", "-").returncode == 2
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    result = fake(tmp_path, outside, "exec", "--json", "-")
    assert result.returncode == 1 and "Not inside a trusted directory" in result.stderr
    assert fake(tmp_path, outside, "exec", "--json", "--skip-git-repo-check", "-").returncode == 0
    assert fake(tmp_path, repo.path, "exec", "--json", "-", script={"default": [[{"bogus": 1}]]}).returncode == 3


def test_ignore_signals_survives_term(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "script.json").write_text(
        json.dumps({"default": [[{"ignore_signals": True}, {"marker": str(tmp_path / "m")}, {"hang": True}]]})
    )
    env = {**os.environ, "CODEX_HOME": str(tmp_path / "home"), "FAKE_CODEX_SCRIPT": str(tmp_path / "script.json")}
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_CODEX), "exec", "--json", "-"],
        cwd=repo.path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not (tmp_path / "m").exists():
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_flood_writes_the_bytes_asked_for(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({"default": [[{"flood": 20_000_000}]]}))
    result = subprocess.run(
        [sys.executable, str(FAKE_CODEX), "exec", "--json", "-"],
        cwd=repo.path,
        input=b"x",
        capture_output=True,
        env={**os.environ, "CODEX_HOME": str(tmp_path / "home"), "FAKE_CODEX_SCRIPT": str(tmp_path / "s.json")},
    )
    assert result.returncode == 0
    assert 20_000_000 <= len(result.stdout) < 22_000_000
    lines = result.stdout.splitlines()
    assert json.loads(lines[5])["item"]["type"] == "reasoning" and len(lines[5]) == 4095
