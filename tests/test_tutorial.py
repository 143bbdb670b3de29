"""docs/tutorial.md, run as written: every ```bash block, in order, in one bash, so it cannot drift.

The blocks are sourced one after the other into one bash started in the root of the checkout, as
the reader types them into one terminal: `cd`, variables and the background scripted model carry
over. Job control is on (`set -m`), as in an interactive shell, so each command is its own process
group — the group a terminal's Ctrl-C reaches. Conventions the tutorial follows:

- ```bash interrupt=T0002 — the reader presses Ctrl-C while that task runs. The test sends SIGINT to
  the run's process group once the run's state says the task is running on a known agent thread and
  the agent has changed a file in the run's worktree (never after a fixed wait), and expects exit
  code 130. The tutorial's script lets the stand-in think for 20 s after that first change: the SIGINT
  surely lands mid-task, once the model server has seen the thread (which `resume` continues).
- Nothing the reader would have to type in is left as a placeholder: ports, paths and pids are
  computed by the commands themselves.

The messages codex-orch prints are not asserted (they are its own tests' business); exit codes, the
run's state and git are.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from conftest import ROOT, alive, codex_bin, git

from codex_orch.errors import OrchError
from codex_orch.run_lock import LOCK_NAME
from codex_orch.state import read_state

pytestmark = pytest.mark.realcodex

TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```bash(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
BLOCK_TIMEOUT = 180.0


@dataclass(frozen=True)
class Block:
    number: int
    body: str
    interrupt_at: str | None  # the task whose running the reader interrupts with Ctrl-C


def bash_blocks(markdown: str) -> list[Block]:
    found = []
    for number, match in enumerate(FENCE.finditer(markdown), 1):
        tags = dict(tag.partition("=")[::2] for tag in match["info"].split())
        assert set(tags) <= {"interrupt"}, f"block {number}: unknown tags {tags}"
        found.append(Block(number, match["body"], tags.get("interrupt") or None))
    return found


def session_pids(sid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after the name: state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


def changed_a_file(task: dict[str, Any], worktree: str | None) -> bool:
    """Has the running task's agent changed anything in its worktree yet?"""
    where = task.get("worktree") or worktree
    if not where:
        return False
    folder = Path(where)
    return folder.is_dir() and bool(git(folder, "--no-optional-locks", "status", "--porcelain", check=False))


class Shell:
    """One bash, the reader's terminal. `run` sources a block into it and returns its exit code and
    the shell's working directory afterwards."""

    def __init__(self, cwd: Path, env: dict[str, str], log: IO[str]) -> None:
        self.log = log
        self.folder = Path(env["TMPDIR"])
        self._report_r, report_w = os.pipe()
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            pass_fds=(report_w,),
        )
        os.close(report_w)
        self._report_fd = report_w
        self._send("set -m -e -o pipefail")

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def run(self, block: Block, cwd: Path) -> tuple[int, Path]:
        script = self.folder / f"tutorial-block-{block.number}.sh"
        script.write_text(block.body)
        report = f'echo "$? $PWD" >&{self._report_fd}'
        if block.interrupt_at:  # exit 130 is expected here: the shell must go on
            self._send(f"set +e; source {script} </dev/null; {report}; set -e")
        else:
            self._send(f"source {script} </dev/null; {report}")
        interrupted = False
        deadline = time.monotonic() + BLOCK_TIMEOUT
        data = b""
        while b"\n" not in data:
            assert time.monotonic() < deadline, f"block {block.number} still running after {BLOCK_TIMEOUT:g} s"
            ready, _, _ = select.select([self._report_r], [], [], 0.1)
            if ready:
                data += os.read(self._report_r, 4096)
            elif self.proc.poll() is not None:  # its background jobs hold the pipe open: no EOF to wait for
                raise AssertionError(f"the shell exited in block {block.number} (a command failed):\n{self.tail()}")
            elif block.interrupt_at and not interrupted:
                interrupted = self._interrupt_when_running(cwd, block.interrupt_at)
        code, _, where = data.decode().strip().partition(" ")
        if block.interrupt_at:
            assert interrupted, f"block {block.number} ended before {block.interrupt_at} ran:\n{self.tail()}"
        return int(code), Path(where)

    def _interrupt_when_running(self, cwd: Path, task_id: str) -> bool:
        """Ctrl-C: SIGINT to the process group of the codex-orch driving the run, once `task_id` runs."""
        for run_dir in (cwd / ".orchestrator" / "runs").glob("*"):
            try:
                state = read_state(run_dir)
            except (OrchError, OSError, ValueError):  # not written yet
                continue
            task = state["tasks"].get(task_id)
            if (
                task
                and task["status"] == "running"
                and task.get("thread_id")
                and changed_a_file(task, state["worktree"])
            ):
                pid = int((run_dir / LOCK_NAME).read_text().split()[0])
                group = os.getpgid(pid)
                assert group != os.getpgid(self.proc.pid), "the run is not its own job: Ctrl-C would hit the shell"
                os.killpg(group, signal.SIGINT)
                return True
        return False

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]

    def close(self) -> None:
        """End the shell, then whatever it left running (the scripted model, if the test failed early)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        left = session_pids(self.proc.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while any(alive(p) for p in left) and time.monotonic() < deadline:
                time.sleep(0.05)
        os.close(self._report_r)


def the_run(project: Path) -> tuple[Path, dict[str, Any]]:
    runs = sorted((project / ".orchestrator" / "runs").glob("*"))
    assert len(runs) == 1, runs
    return runs[0], read_state(runs[0])


@pytest.mark.timeout(600)
def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    codex_bin()  # the tutorial drives the real codex: without it the test fails, as the other real-codex tests
    blocks = bash_blocks(TUTORIAL.read_text())
    assert [b.number for b in blocks if b.interrupt_at] != [], "the tutorial shows Ctrl-C and resume"

    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and p != venv_bin)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env |= {"PATH": path, "TMPDIR": str(scratch)}  # the reader's own shell: the venv is not active yet

    seen: list[str] = []
    thread = ""
    with open(tmp_path / "shell.log", "w") as log:
        shell = Shell(ROOT, env, log)
        try:
            cwd = ROOT
            for block in blocks:
                code, cwd = shell.run(block, cwd)
                expected = 130 if block.interrupt_at else 0
                assert code == expected, f"block {block.number} exited {code}:\n{block.body}\n{shell.tail()}"
                if block.interrupt_at:
                    _, state = the_run(cwd)
                    tasks = state["tasks"]
                    assert state["status"] == "interrupted"
                    assert tasks["T0001"]["status"] == "succeeded" and tasks["T0001"]["commit"]
                    assert tasks[block.interrupt_at]["status"] not in ("succeeded", "running", "pending")
                    thread = tasks[block.interrupt_at]["thread_id"]
                    seen.append("interrupted")
                elif "codex-orch resume" in block.body:
                    _, state = the_run(cwd)
                    assert state["status"] == "succeeded"
                    assert all(t["status"] == "succeeded" for t in state["tasks"].values())
                    assert state["tasks"]["T0002"]["attempts"][-1]["resumed_thread"] == thread
                    branch = state["branch"]
                    assert "def subtract" in git(cwd, "show", f"{branch}:calc.py")
                    assert git(cwd, "show", f"{branch}:test_calc.py").startswith("from calc import")
                    seen.append("resumed")
                elif "codex-orch merge" in block.body:
                    _, state = the_run(cwd)
                    assert git(cwd, "rev-parse", "main") == git(cwd, "rev-parse", state["tasks"]["T0002"]["commit"])
                    assert "def subtract" in (cwd / "calc.py").read_text()
                    seen.append("merged")
                if "codex-orch clean" in block.body:
                    _, state = the_run(cwd)
                    assert git(cwd, "branch", "--list", "orch/*") == ""
                    trees = [state["worktree"], *(t.get("worktree") for t in state["tasks"].values())]
                    assert not any(Path(w).exists() for w in trees if w)
                    seen.append("cleaned")
        finally:
            shell.close()
    assert seen == ["interrupted", "resumed", "merged", "cleaned"]
    assert git(cwd, "status", "--porcelain", "--untracked-files=no") == ""  # nothing left half-merged
