"""A real `codex-orch dashboard` process for the dashboard's tests, and plain HTTP to it."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import FakeCodex, Repo, answer, job, run_plan, start_cli


@dataclass
class Dashboard:
    url: str
    token_file: Path
    proc: subprocess.Popen[str]

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                body = exc.read()
            try:
                return exc.code, json.loads(body or b"null")
            except ValueError:  # a route that does not exist: Starlette's plain "Not Found"
                return exc.code, body.decode()


@contextmanager
def dashboard(root: Path) -> Iterator[Dashboard]:
    """`codex-orch dashboard --port 0` in `root`, its URL read from the line it prints; stopped after."""
    proc = start_cli(root, "dashboard", "--port", "0", stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert " on http://" in first, first + proc.stderr.read()
        url = first.split(" on ", 1)[1].strip().rstrip("/")
        token_line = proc.stderr.readline()
        yield Dashboard(url, Path(token_line.rsplit(" ", 1)[1].strip()), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


GATE = "test -f ok.txt || { printf '%s\\n' 'collected 1 item' '<img src=x onerror=alert(1)>' 'FAILED: no ok.txt'; exit 3; }"


def gated_run(repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str) -> dict[str, Any]:
    """Task A's first answer fails the gate `check` (exit 3, XSS in its output); its fix passes it."""
    repo.configure(
        gates=[{"name": "check", "run": ["sh", "-c", GATE], "sandbox": "none"}],
        worktree={"setup": [["sh", "-c", "echo set up"]]},
    )
    turns = [
        [{"write": "a.txt", "content": "a\n"}, {"answer": answer("a", ["a.txt"])}],
        [{"write": "ok.txt", "content": "ok\n"}, {"answer": answer("a fixed", ["a.txt", "ok.txt"])}],
    ]
    return run_plan(repo, fake, tmp_path, run_id, [job("A")], [{"match": "job A.", "turns": turns}])
