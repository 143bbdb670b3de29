"""Shared fixtures and helpers: an isolated environment, real temporary git repos, the scriptable fake
codex, codex-orch as a child process, and the handshake by which a test holds an agent where it wants it.

Tests wait for events, never for a fixed time: an agent marks that it started (`marked`) and waits at a
gate (`{"gate": path}`) until the test, having checked what it wanted to see, releases it (`release`)."""

from __future__ import annotations

import compileall
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FAKE_CODEX = TESTS / "fake_codex" / "codex"
CODEX_BIN = ROOT / "tools" / "codex" / "node_modules" / ".bin" / "codex"
_HOME = pytest.StashKey[Path]()
LONG = os.environ.get("CODEX_ORCH_LONG_TESTS") == "1"  # the long mode of docs/testing.md


def examples(suite: int, long: int) -> int:
    """How many examples a property test draws: `suite` in the test command (CI), `long` in the long
    mode (CODEX_ORCH_LONG_TESTS=1), run by hand beside the slow drills."""
    return long if LONG else suite


def pytest_configure(config: pytest.Config) -> None:
    # codex-orch byte-compiled once, as `pip install` leaves it: the tests start it as a child process
    # hundreds of times, and under PYTHONDONTWRITEBYTECODE (set on the project's machines) each start
    # would compile every module it imports from source again (~0.2 s a start)
    compileall.compile_dir(ROOT / "codex_orch", quiet=1)
    # Started as a background job of a script (`bash scripts/test.sh &`), the suite inherits SIGINT
    # ignored, and so would every child it starts: the tests that stop a child with SIGINT first would
    # see it ignored. Python restores the default only when it finds SIGINT at its default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # One isolated HOME and git identity for the whole session: no test sees the developer's config, nor
    # any GIT_* variable of theirs (the identity comes from the session's own global config).
    for key in list(os.environ):
        if key.startswith(("GIT_", "CODEX_", "FAKE_CODEX")):
            del os.environ[key]
    home = Path(tempfile.mkdtemp(prefix="codex-orch-test-home-"))
    config.stash[_HOME] = home
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n")
    os.environ["HOME"] = str(home)
    os.environ["GIT_CONFIG_GLOBAL"] = str(gitconfig)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ["NO_COLOR"] = "1"
    os.environ["COLUMNS"] = "200"


# The stress mode's quick selection (docs/testing.md, `-m "waits and not slow"`): the files whose tests
# have processes or threads wait on each other — handshakes with held agents, signals, limits, locks,
# servers, crash drills — where a timing assumption would show under load.
WAITS = frozenset(
    {
        "test_cancel.py",
        "test_containment.py",
        "test_dashboard.py",
        "test_drills.py",
        "test_engine_inprocess.py",
        "test_exit.py",
        "test_fake_codex.py",
        "test_gates.py",
        "test_lifecycle.py",
        "test_merge_queue.py",
        "test_parallel.py",
        "test_proc.py",
        "test_quota.py",
        "test_reaper.py",
        "test_reconnect_notices.py",
        "test_run.py",
        "test_service_drill.py",
        "test_service_http.py",
        "test_service_jobs.py",
        "test_services.py",
        "test_two_processes.py",
        "test_workspace.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in WAITS:
            item.add_marker(pytest.mark.waits)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's HOME goes with the session (each xdist worker removes its own)."""
    home = config.stash.get(_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def environ_stable() -> Iterator[None]:
    """A test that leaves os.environ changed fails: parallel workers share it in production."""
    before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    yield
    after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, f"test changed os.environ: {sorted(changed)}"


@pytest.fixture(autouse=True)
def no_subreaper_left() -> Iterator[None]:
    """A test that starts a contained child in this process (run_streaming, a run driven in-process) makes
    the process a child subreaper (proc/reaper.py), for good: orphans of any later test would be re-parented
    to it, and a process that embeds the tests and waits for its own children (mutmut's runner) would meet
    one it never started. Undone after each test, and the zombies adopted meanwhile collected."""
    yield
    from codex_orch.proc import procfs, reaper

    if reaper._reaper is None:
        return
    reaper._reaper = None
    ctypes.CDLL(None, use_errno=True).prctl(reaper._PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    for info in procfs.table().values():
        if info.ppid == os.getpid() and info.zombie:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.pid, os.WNOHANG)


# --- waiting for events ---------------------------------------------------------------------------
def alive(pid: int) -> bool:
    """Is the process running (a zombie is not)?"""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


HELD_LIMITS = {"timeout": 900, "idle_timeout": 900, "stop_grace": 1}


def wait_for(condition: Callable[[], object], what: str, timeout: float = 100) -> None:
    """Poll `condition()` until it is true; fail naming `what` after `timeout` seconds (a safety net, not a
    measurement: tests wait for events, never for a fixed time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def whole_lines(text: str) -> list[str]:
    """The lines of a file another process may be appending to, whole ones only: a reader can see a write
    in progress (a page of it at a time), so a line not yet ended is left out, never read half."""
    return text[: text.rfind("\n") + 1].splitlines()


def marked(path: Path) -> list[int]:
    """The pids in a marker file (the fake's `marker` step, `FAKE_CODEX_CHILD_PIDS`, a shell's `echo $$`)."""
    if not path.exists():
        return []
    return [int(line) for line in whole_lines(path.read_text()) if line.strip()]


def wait_marked(path: Path, count: int = 1, proc: subprocess.Popen[Any] | None = None) -> list[int]:
    """Wait until `count` processes have marked `path`; fail at once if `proc` (codex-orch, an agent)
    exits first."""

    def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited {proc.returncode} before {path.name} was marked")
        return len(marked(path)) >= count

    wait_for(ready, f"{count} mark(s) in {path}")
    return marked(path)


def release(gate: Path) -> None:
    """Open a gate an agent waits at (`{"gate": str(gate)}`)."""
    gate.touch()


def kill_all(pids: Iterable[int]) -> None:
    """Kill what a test made an agent start, if a failing test left it alive."""
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- git ------------------------------------------------------------------------------------------
def git(cwd: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def init_repo(path: Path) -> Path:
    """A git repository at `path` (made if missing) with one commit on main; every step checked."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# test repo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial commit")
    return path


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
    return Repo(init_repo(tmp_path / "repo"))


# --- the fake codex -------------------------------------------------------------------------------
@dataclass
class FakeCodex:
    """The fake codex executable, scripted per test: through the run's config (`config`), or run directly
    (`run`, `exec`)."""

    dir: Path

    @property
    def script_path(self) -> Path:
        return self.dir / "script.json"

    @property
    def log_path(self) -> Path:
        return self.dir / "calls.jsonl"

    @property
    def home(self) -> Path:
        return self.dir / "codex-home"

    @property
    def children(self) -> Path:
        return self.dir / "children.txt"

    def script(self, script: dict[str, Any]) -> FakeCodex:
        self.script_path.write_text(json.dumps(script))
        return self

    def calls(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in whole_lines(self.log_path.read_text()) if line.strip()]

    def config(self, **extra_env: str) -> dict[str, Any]:
        return {
            "command": [sys.executable, str(FAKE_CODEX)],
            "env": {
                "FAKE_CODEX_SCRIPT": str(self.script_path),
                "FAKE_CODEX_LOG": str(self.log_path),
                "CODEX_HOME": str(self.home),
                **extra_env,
            },
        }

    def env(self, **extra: str) -> dict[str, str]:
        """The environment to run the fake directly (its script only once one is written)."""
        env = {**os.environ, **self.config()["env"], "FAKE_CODEX_CHILD_PIDS": str(self.children), **extra}
        if not self.script_path.exists():
            del env["FAKE_CODEX_SCRIPT"]
        return env

    def run(
        self, cwd: Path, *args: str, stdin: str | bytes = "do it", timeout: float = 20
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, str(FAKE_CODEX), *args],
            cwd=cwd,
            input=stdin.encode() if isinstance(stdin, str) else stdin,
            capture_output=True,
            env=self.env(),
            timeout=timeout,
        )

    def exec(self, cwd: Path, *args: str, stdin: str = "do it") -> tuple[int, list[dict[str, Any]], str]:
        """`codex exec --json … -`: exit code, parsed events, stderr."""
        result = self.run(cwd, "exec", "--json", *args, "-", stdin=stdin)
        events = [json.loads(line) for line in result.stdout.decode().splitlines()]
        return result.returncode, events, result.stderr.decode()


def make_fake(folder: Path) -> FakeCodex:
    folder.mkdir()
    return FakeCodex(folder)


@pytest.fixture
def fake_codex(tmp_path: Path, repo: Repo) -> FakeCodex:
    fake = make_fake(tmp_path / "fake").script({})
    # Most tests were written for one shared worktree, and say so; landing runs (the default) have theirs.
    # An agent a test holds at a gate is released by the test, never ended by a limit, however starved the
    # machine (the stress mode): the limits are far off, and a test about limits sets its own.
    repo.configure(codex=fake.config(), workspace="shared", limits=HELD_LIMITS)
    return fake


def codex_bin() -> Path:
    """The pinned real codex CLI; a test that needs it FAILS (not skips) when it is missing."""
    if not (CODEX_BIN.exists() and os.access(CODEX_BIN, os.X_OK)):
        pytest.fail(f"codex CLI not found at {CODEX_BIN}: run scripts/install-codex.sh first", pytrace=False)
    return CODEX_BIN


# --- plans and answers ----------------------------------------------------------------------------
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


def job(task_id: str, blocked_by: Iterable[str] = (), role: str = "implementer", **extra: Any) -> dict[str, Any]:
    """A task whose prompt the fake's rules match on: `job <id>.`"""
    return {
        "id": task_id,
        "role": role,
        "prompt": f"job {task_id}.",
        "acceptance": "",
        "blocked_by": list(blocked_by),
        **extra,
    }


def writer(task_id: str, path: str, content: str | None = None) -> dict[str, Any]:
    """A rule: task `task_id` writes `path` and answers."""
    return {
        "match": f"job {task_id}.",
        "turns": [[{"write": path, "content": content or f"{task_id}\n"}, {"answer": answer(task_id, [path])}]],
    }


def write_plan(path: Path, tasks: Sequence[Any], goal: str = "test goal") -> Path:
    path.write_text(json.dumps({"goal": goal, "assumptions": ["tests run"], "tasks": list(tasks)}))
    return path


# --- codex-orch as a child process ----------------------------------------------------------------
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
    """codex-orch as a real child process left running (to be signalled or killed), stdin closed; one
    still running when its test ends is stopped then (`no_cli_left`)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "codex_orch", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=text,
        env={**os.environ, **(env or {})},
    )
    _STARTED.append(proc)
    return proc


_STARTED: list[subprocess.Popen[Any]] = []


@pytest.fixture(autouse=True)
def no_cli_left() -> Iterator[None]:
    """A test that fails while a codex-orch it started runs leaves that process to no one: it is stopped
    here (as Ctrl-C would, then killed) and reaped, its pipes closed, so that its agents end with it and
    no later test of this worker meets its ResourceWarning."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


def run_plan(
    repo: Repo,
    fake: FakeCodex,
    tmp_path: Path,
    run_id: str,
    tasks: list[dict[str, Any]],
    rules: list[Any],
    expect: int = 0,
) -> dict[str, Any]:
    """Run a plan to its end with these rules; its state."""
    fake.script({"rules": rules})
    plan = write_plan(tmp_path / f"{run_id}.json", tasks)
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress")
    assert result.code == expect, result.err + result.out
    return read_state(repo, run_id)


def read_state(repo: Repo, run_id: str) -> dict[str, Any]:
    from codex_orch.state import read_state as _read

    return _read(repo.path / ".orchestrator" / "runs" / run_id)


def journal(repo: Repo, run_id: str) -> list[dict[str, Any]]:
    """The run's journal records, in order (a torn last line left out)."""
    text = (repo.path / ".orchestrator" / "runs" / run_id / "journal.jsonl").read_text()
    return [json.loads(line) for line in whole_lines(text) if line.strip()]


def wait_recorded(
    repo: Repo, run_id: str, kind: str, task: str | None = None, proc: subprocess.Popen[Any] | None = None
) -> dict[str, Any]:
    """Wait until the run's journal holds a `kind` record (of `task`, if given), e.g. `attempt.thread`
    before a test kills codex-orch that resume is to continue; fail at once if `proc` exits first."""
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"codex-orch exited {proc.returncode} before {kind} was recorded")
        path = repo.path / ".orchestrator" / "runs" / run_id / "journal.jsonl"
        records = journal(repo, run_id) if path.exists() else []
        found[:] = [r for r in records if r["type"] == kind and (task is None or r.get("task") == task)]
        return bool(found)

    wait_for(recorded, f"{kind} in the journal of {run_id}")
    return found[0]
