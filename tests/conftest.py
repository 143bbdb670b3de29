"""Shared fixtures: an isolated environment, real temporary git repos, the scriptable fake codex."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
FAKE_CODEX = TESTS / "fake_codex" / "codex"


def pytest_configure(config: pytest.Config) -> None:
    # One isolated HOME and git identity for the whole session: no test sees the developer's config.
    home = Path(tempfile.mkdtemp(prefix="codex-orch-test-home-"))
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n")
    os.environ["HOME"] = str(home)
    os.environ["GIT_CONFIG_GLOBAL"] = str(gitconfig)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ["NO_COLOR"] = "1"
    os.environ["COLUMNS"] = "200"
    for key in list(os.environ):
        if key.startswith("GIT_") and key not in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"):
            del os.environ[key]
        if key.startswith(("CODEX_", "FAKE_CODEX")):
            del os.environ[key]


@pytest.fixture(autouse=True)
def environ_stable() -> Iterator[None]:
    """A test that leaves os.environ changed fails: parallel workers share it in production."""
    before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    yield
    after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, f"test changed os.environ: {sorted(changed)}"


def alive(pid: int) -> bool:
    """Is the process running (a zombie is not)?"""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    """Poll `condition()` until it is true; fail naming `what` after `timeout` seconds (a safety net, not a
    measurement: tests wait for events, never for a fixed time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


@dataclass
class Repo:
    path: Path

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.path, *args, check=check)

    def write(self, rel: str, text: str) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def configure(self, **overrides: Any) -> None:
        """Write .orchestrator/orchestrator.yaml holding only these keys (the rest are defaults)."""
        path = self.path / ".orchestrator" / "orchestrator.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        current = yaml.safe_load(path.read_text()) if path.exists() else {}
        current = current or {}
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key].update(value)
            else:
                current[key] = value
        path.write_text(yaml.safe_dump(current, sort_keys=False))

    def branches(self) -> list[str]:
        return [b for b in self.git("branch", "--format=%(refname:short)").splitlines() if b]

    def worktrees(self) -> list[str]:
        return [
            line.split(" ", 1)[1]
            for line in self.git("worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")
        ]


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# test repo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial commit")
    return Repo(path)


@dataclass
class FakeCodex:
    """The fake codex executable, scripted per test through the run's config."""

    dir: Path
    script_path: Path
    log_path: Path

    def script(self, script: dict[str, Any]) -> None:
        self.script_path.write_text(json.dumps(script))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def config(self, **extra_env: str) -> dict[str, Any]:
        return {
            "command": [sys.executable, str(FAKE_CODEX)],
            "env": {
                "FAKE_CODEX_SCRIPT": str(self.script_path),
                "FAKE_CODEX_LOG": str(self.log_path),
                "CODEX_HOME": str(self.dir / "codex-home"),
                **extra_env,
            },
        }


@pytest.fixture
def fake_codex(tmp_path: Path, repo: Repo) -> FakeCodex:
    folder = tmp_path / "fake"
    folder.mkdir()
    fake = FakeCodex(folder, folder / "script.json", folder / "calls.jsonl")
    fake.script({})
    # Most tests were written for one shared worktree, and say so; landing runs (the default) have theirs.
    repo.configure(codex=fake.config(), workspace="shared", limits={"timeout": 60, "idle_timeout": 30, "stop_grace": 1})
    return fake


def answer(
    summary: str = "done",
    files: list[str] | None = None,
    decisions: list[dict[str, str]] | None = None,
    status: str = "done",
    **extra: Any,
) -> dict[str, Any]:
    """A schema-valid implementer answer."""
    value = {
        "status": status,
        "summary": summary,
        "files_changed": files or [],
        "decisions": decisions or [],
        "risks": [],
        "next_tasks": [],
    }
    value.update(extra)
    return value


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(cwd: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> CliResult:
    """codex-orch as a real child process, exactly as a user starts it."""
    result = subprocess.run(
        [sys.executable, "-m", "codex_orch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


def start_cli(
    cwd: Path,
    *args: str,
    stdout: Any = subprocess.DEVNULL,
    stderr: Any = subprocess.DEVNULL,
    text: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[Any]:
    """codex-orch as a real child process left running (to be signalled or killed), stdin closed."""
    return subprocess.Popen(
        [sys.executable, "-m", "codex_orch", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=text,
        env={**os.environ, **(env or {})},
    )


def read_state(repo: Repo, run_id: str) -> dict[str, Any]:
    from codex_orch.state import read_state as _read

    return _read(repo.path / ".orchestrator" / "runs" / run_id)


def write_plan(path: Path, tasks: list[dict[str, Any]], goal: str = "test goal") -> Path:
    path.write_text(json.dumps({"goal": goal, "assumptions": ["tests run"], "tasks": tasks}))
    return path
