"""Nothing an agent starts outlives its attempt: real hostile processes against the reaper.

The hostile agent's shell starts three processes that try to outlive it, each writing its pid to a
file: a `setsid nohup` one in the background, a classic double-forked daemon (fork, setsid, fork), and
one with its environment cleared (`env -i setsid -f`). Each test runs both ways codex-orch can know an
attempt's processes: the process tree (the default, what any user gets) and cgroups
(`CODEX_ORCH_REAPER=cgroup`, where this machine lets codex-orch make them: as root here).
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    FakeCodex,
    Repo,
    alive,
    answer,
    journal,
    marked,
    read_state,
    run_cli,
    start_cli,
    wait_for,
    wait_marked,
    wait_recorded,
    write_plan,
)

from codex_orch.errors import EXIT_INTERRUPTED

DOUBLE_FORK = """
import os, sys
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open(sys.argv[1], "a") as fh:
    fh.write(f"{os.getpid()}\\n")
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
os.execvp("sleep", ["sleep", "1000"])
"""

DAEMONS = """#!/bin/bash
# $1: the file each daemon appends its pid to
pids=$1
setsid nohup sh -c 'echo $$ >> "$0"; exec sleep 1000' "$pids" </dev/null >/dev/null 2>&1 &
{python} {double_fork} "$pids"
env -i setsid -f sh -c 'echo $$ >> "$0"; exec sleep 1000' "$pids" </dev/null >/dev/null 2>&1
until [ "$(wc -l < "$pids")" -ge 3 ]; do sleep 0.02; done
"""

MODES = ["cgroup", "tree"]


def cgroups_usable() -> bool:
    from codex_orch.proc.cgroups import _own_cgroup

    own = _own_cgroup()
    return own is not None and os.access(own, os.W_OK)


def mode_env(mode: str) -> dict[str, str]:
    if mode == "cgroup" and not cgroups_usable():
        pytest.skip("this machine does not let codex-orch make cgroups (not root, nothing delegated)")
    return {"CODEX_ORCH_REAPER": mode}


def daemons(tmp_path: Path, name: str = "pids") -> tuple[dict[str, Any], Path]:
    """The shell step of a hostile agent, and the file its three daemons write their pids to."""
    (tmp_path / "double_fork.py").write_text(DOUBLE_FORK)
    script = tmp_path / "daemons.sh"
    script.write_text(DAEMONS.format(python=sys.executable, double_fork=tmp_path / "double_fork.py"))
    pids = tmp_path / f"{name}.txt"
    pids.touch()
    return {"shell": f"bash {script} {pids}"}, pids


def living(pids: list[int]) -> list[int]:
    return [p for p in pids if alive(p)]


@pytest.fixture
def strays() -> Iterator[list[Path]]:
    """Pid files whose processes a test started: whatever a failing test leaves alive is killed."""
    files: list[Path] = []
    yield files
    for pid in [p for f in files for p in marked(f)]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def one_task(tmp_path: Path, **extra: Any) -> Path:
    return write_plan(
        tmp_path / "plan.json",
        [{"role": "implementer", "prompt": "do it", "acceptance": "", "blocked_by": [], **extra}],
    )


@pytest.mark.parametrize("mode", MODES)
def test_what_an_agent_started_dies_when_its_attempt_succeeds(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, mode: str, strays: list[Path]
) -> None:
    env = mode_env(mode)
    step, pids = daemons(tmp_path)
    strays.append(pids)
    fake_codex.script({"default": [[step, {"answer": answer()}]]})
    result = run_cli(
        repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "ok", "--no-progress", env=env
    )
    assert result.code == 0, result.err + result.out
    assert len(marked(pids)) == 3 and living(marked(pids)) == []
    steps = read_state(repo, "ok")["tasks"]["T0001"]["attempts"][0]["stop_steps"]
    assert any("process(es) that had left the group" in s for s in steps), steps


@pytest.mark.parametrize("mode", MODES)
def test_what_an_agent_started_dies_when_its_attempt_times_out(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, mode: str, strays: list[Path]
) -> None:
    env = mode_env(mode)
    repo.configure(limits={"timeout": 60, "idle_timeout": 30, "stop_grace": 1, "transient_retries": 0})
    step, pids = daemons(tmp_path)
    strays.append(pids)
    fake_codex.script({"default": [[step, {"hang": True}]]})
    plan = one_task(tmp_path, timeout=4)
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "slow", "--no-progress", env=env)
    assert result.code == 1, result.err + result.out
    task = read_state(repo, "slow")["tasks"]["T0001"]
    assert task["status"] == "failed" and task["error"]["kind"] == "timeout"
    assert len(marked(pids)) == 3 and living(marked(pids)) == []


def interrupt_mid_task(
    repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str, sig: int, env: dict[str, str], strays: list[Path]
) -> tuple[int, list[int], int, str]:
    """Start a run whose agent starts the daemons then works on; send `sig` to codex-orch. The agent's
    pid, the daemons' pids, codex-orch's exit code and its output. The agent's second turn answers."""
    step, pids = daemons(tmp_path)
    strays.append(pids)
    marker = tmp_path / "agent.pid"
    fake.script({"default": [[step, {"marker": str(marker)}, {"hang": True}], [{"answer": answer()}]]})
    out = tmp_path / "out.txt"
    with open(out, "w") as fh:
        proc = start_cli(
            repo.path,
            *("run", "--plan-file", str(one_task(tmp_path)), "--run-id", run_id, "--no-progress"),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_marked(marker, proc=proc)  # the agent started its daemons
        finally:
            proc.send_signal(sig)
            code = proc.wait(timeout=60)
    return marked(marker)[0], marked(pids), code, out.read_text()


@pytest.mark.parametrize(
    ("sig", "mode"),
    [(signal.SIGINT, "tree"), (signal.SIGTERM, "cgroup"), (signal.SIGHUP, "tree"), (signal.SIGHUP, "cgroup")],
    ids=["SIGINT-tree", "SIGTERM-cgroup", "SIGHUP-tree", "SIGHUP-cgroup"],
)
def test_a_signal_to_codex_orch_stops_the_agent_and_its_daemons_and_resume_finishes(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, sig: signal.Signals, mode: str, strays: list[Path]
) -> None:
    env = mode_env(mode)
    agent, daemon_pids, code, out = interrupt_mid_task(repo, fake_codex, tmp_path, "sig", sig, env, strays)
    assert code == EXIT_INTERRUPTED == 130, out
    assert len(daemon_pids) == 3 and living([agent, *daemon_pids]) == []
    state = read_state(repo, "sig")
    assert state["status"] == "interrupted" and state["tasks"]["T0001"]["status"] == "interrupted"
    assert [r.get("signal") for r in journal(repo, "sig") if r["type"] == "run.status"] == [sig.name]

    resumed = run_cli(repo.path, "resume", "--run-id", "sig", "--no-progress", env=env)
    assert resumed.code == 0, resumed.err + resumed.out
    assert read_state(repo, "sig")["tasks"]["T0001"]["status"] == "succeeded"


def test_closing_the_terminal_stops_the_run_like_ctrl_c(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, strays: list[Path]
) -> None:
    """codex-orch on a real terminal (the live table), and the terminal goes away: the kernel sends
    SIGHUP, and every later write to that terminal fails. The run still stops in order."""
    step, pids = daemons(tmp_path)
    strays.append(pids)
    marker = tmp_path / "agent.pid"
    fake_codex.script({"default": [[step, {"marker": str(marker)}, {"hang": True}], [{"answer": answer()}]]})
    master, slave = pty.openpty()
    argv = [sys.executable, "-m", "codex_orch", "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "tty"]
    # setsid -c: codex-orch leads a session whose controlling terminal is the pty, as a login shell's job
    proc = subprocess.Popen(["setsid", "-c", *argv], cwd=repo.path, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen = bytearray()
    done = threading.Event()

    def drain() -> None:  # a terminal that nobody reads blocks its writer
        while not done.is_set():
            if select.select([master], [], [], 0.05)[0]:
                try:
                    seen.extend(os.read(master, 65536))
                except OSError:
                    return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_marked(marker, proc=proc)  # the agent started its daemons
    finally:
        done.set()
        reader.join()
        os.close(master)  # the terminal window is closed
    code = proc.wait(timeout=60)
    assert code == EXIT_INTERRUPTED, seen.decode(errors="replace")[-2000:]
    assert living([marked(marker)[0], *marked(pids)]) == []
    state = read_state(repo, "tty")
    assert state["status"] == "interrupted" and state["tasks"]["T0001"]["status"] == "interrupted"


@pytest.mark.parametrize("mode", MODES)
def test_parallel_attempts_each_take_only_their_own_processes(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, mode: str, strays: list[Path]
) -> None:
    """A finishes while B still works: A's daemons die with A, B's live on until B ends."""
    env = mode_env(mode)
    repo.configure(workspace="per-task")
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    a_step, a_pids = daemons(a_dir)
    b_step, b_pids = daemons(b_dir)
    strays += [a_pids, b_pids]
    release = tmp_path / "release"
    b_turn = [b_step, {"shell": f"until [ -e {release} ]; do sleep 0.05; done"}, {"answer": answer("B")}]
    fake_codex.script(
        {
            "rules": [
                {"match": "job A.", "turns": [[a_step, {"answer": answer("A")}]]},
                {"match": "job B.", "turns": [b_turn]},
            ]
        }
    )
    tasks = [{"id": t, "role": "implementer", "prompt": f"job {t}.", "acceptance": "", "blocked_by": []} for t in "AB"]
    plan = write_plan(tmp_path / "plan.json", tasks)
    proc = start_cli(
        repo.path, "run", "--plan-file", str(plan), "--run-id", "par", "--no-progress", "--max-workers", "2", env=env
    )
    try:
        wait_for(lambda: len(marked(b_pids)) == 3, "B's daemons")
        wait_for(lambda: read_state(repo, "par")["tasks"]["A"]["status"] == "succeeded", "A to finish")
        a_setsid, a_double_fork, _ = marked(a_pids)
        if mode == "cgroup":
            assert living(marked(a_pids)) == []
        else:  # a stray with no marker may wait for B's end: it was born while B ran too
            assert living([a_setsid, a_double_fork]) == []
        assert living(marked(b_pids)) == marked(b_pids)  # B's are not A's
    finally:
        release.touch()
        code = proc.wait(timeout=60)
    assert code == 0
    assert living(marked(a_pids) + marked(b_pids)) == []


def test_codex_orchs_own_processes_are_never_taken_for_an_agents(tmp_path: Path, strays: list[Path]) -> None:
    """Processes codex-orch runs itself survive an attempt's end: a child in its own session (as its git
    commands are) started during the attempt, and one detached into a session of its own before the
    attempt began (as `git maintenance run --auto` detaches its gc)."""
    from codex_orch.proc.stream import ProcRequest, run_streaming

    def request(script: str) -> ProcRequest:
        return ProcRequest(
            argv=("bash", "-c", script),
            cwd=tmp_path,
            env=dict(os.environ),
            stdout_path=tmp_path / "out.txt",
            stderr_path=tmp_path / "err.txt",
            stop_grace=1,
        )

    run_streaming(request("true"), lambda line: None)  # now a subreaper: the detached one comes to us
    early = tmp_path / "early.txt"
    strays.append(early)
    (tmp_path / "double_fork.py").write_text(DOUBLE_FORK)
    subprocess.run([sys.executable, str(tmp_path / "double_fork.py"), str(early)], check=True)
    wait_for(lambda: len(marked(early)) == 1, "the detached process")

    step, pids = daemons(tmp_path)
    strays.append(pids)
    attempt = request(step["shell"] + "; echo started; sleep 60")
    cancel = threading.Event()
    started = threading.Event()
    outcome: list[Any] = []
    worker = threading.Thread(
        target=lambda: outcome.append(run_streaming(attempt, lambda line: started.set(), cancel)), daemon=True
    )
    worker.start()
    own = subprocess.Popen(["sleep", "1000"])
    try:
        wait_for(started.is_set, "the attempt to start its daemons")
        cancel.set()
        worker.join(timeout=30)
        assert outcome and outcome[0].cancelled
        assert len(marked(pids)) == 3 and living(marked(pids)) == []
        assert alive(own.pid) and living(marked(early)) == marked(early)
    finally:
        own.kill()
        own.wait()


SERVICE = """#!/bin/bash
setsid sh -c 'echo $$ >> "$0"; exec sleep 1000' "$1" </dev/null >/dev/null 2>&1 &
until [ -s "$1" ]; do sleep 0.02; done
echo ready
exec sleep 1000
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_services_daemon_is_stopped_with_the_service(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, mode: str, strays: list[Path]
) -> None:
    env = mode_env(mode)
    script, pid_file = tmp_path / "service.sh", tmp_path / "service-daemon.txt"
    script.write_text(SERVICE)
    strays.append(pid_file)
    repo.configure(
        services=[{"name": "db", "command": ["bash", str(script), str(pid_file)], "ready": {"log": "ready"}}]
    )
    fake_codex.script({"default": [[{"answer": answer()}]]})
    result = run_cli(
        repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "svc", "--no-progress", env=env
    )
    assert result.code == 0, result.err + result.out
    assert len(marked(pid_file)) == 1 and living(marked(pid_file)) == []
    steps = read_state(repo, "svc")["services"]["db"]["stop_steps"]
    assert steps[0].startswith("sent SIGINT to process group") and "1 process(es) that left it" in steps[0], steps


# --- no worktree is deleted, and no live lock removed, while a process works there ------------------
def test_clean_keeps_a_worktree_a_process_works_in_and_names_it(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script({"default": [[{"write": "a.txt", "content": "a\n"}, {"answer": answer("a", ["a.txt"])}]]})
    result = run_cli(repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "c", "--no-progress")
    assert result.code == 0, result.err
    state = read_state(repo, "c")
    worktree = Path(state["worktree"])
    assert run_cli(repo.path, "merge", "--run-id", "c").code == 0  # nothing but the process keeps it now
    sitter = subprocess.Popen(["sleep", "1000"], cwd=worktree)  # a shell, a dev server left in it
    hold = "import sys, time; f = open(sys.argv[1]); print('open', flush=True); time.sleep(1000)"
    reader = subprocess.Popen(
        [sys.executable, "-c", hold, str(worktree / "a.txt")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "open\n"
        kept = run_cli(repo.path, "clean", "--run-id", "c", "--force")
        assert kept.code == 0, kept.err
        assert worktree.is_dir() and (worktree / "a.txt").read_text() == "a\n"
        assert f"kept worktree {worktree}: in use by pid {sitter.pid} (sleep 1000) works in it" in kept.out
        assert f"pid {reader.pid} (" in kept.out and f"has {worktree / 'a.txt'} open" in kept.out
        assert f"kept branch {state['branch']}: checked out in {worktree}" in kept.out
    finally:
        for proc in (sitter, reader):
            proc.kill()
            proc.wait()
        if reader.stdout is not None:
            reader.stdout.close()
    cleaned = run_cli(repo.path, "clean", "--run-id", "c")
    assert cleaned.code == 0 and not worktree.exists(), cleaned.err + cleaned.out


LOCK_HOLDER = """
import os, sys, time
lock, ready, go, verdict = sys.argv[1:5]
fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL)  # as git takes it
os.write(fd, b"held by a live git\\n")
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.02)
try:
    intact = os.stat(lock).st_ino == os.fstat(fd).st_ino
except FileNotFoundError:
    intact = False
open(verdict, "w").write("intact" if intact else "removed")
if intact:
    os.unlink(lock)  # git is done: it renames or removes its lock
"""


def test_resume_never_removes_an_index_lock_a_live_git_holds(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, strays: list[Path]
) -> None:
    first, second = tmp_path / "first.pid", tmp_path / "second.pid"
    fake_codex.script(
        {
            "default": [
                [{"write": "a.txt", "content": "half\n"}, {"marker": str(first)}, {"hang": True}],
                [{"marker": str(second)}, {"write": "a.txt", "content": "a\n"}, {"answer": answer("a", ["a.txt"])}],
            ]
        }
    )
    strays.append(first)
    proc = start_cli(repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "lk", "--no-progress")
    try:
        wait_marked(first, proc=proc)
        wait_recorded(repo, "lk", "attempt.thread", proc=proc)  # so that resume continues the thread
    finally:
        proc.send_signal(signal.SIGKILL)  # codex-orch crashes
        proc.wait(timeout=10)
    worktree = Path(read_state(repo, "lk")["worktree"])
    lock = worktree / repo.git("-C", str(worktree), "rev-parse", "--git-path", "index.lock")
    (tmp_path / "holder.py").write_text(LOCK_HOLDER)
    ready, verdict = tmp_path / "ready", tmp_path / "verdict"
    holder = subprocess.Popen(
        [sys.executable, str(tmp_path / "holder.py"), str(lock), str(ready), str(second), str(verdict)]
    )
    try:
        wait_for(ready.exists, "the git-like process to take the lock")
        resumed = run_cli(repo.path, "resume", "--run-id", "lk", "--no-progress")
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert verdict.read_text() == "intact"  # still its lock when the resumed agent was already at work
    assert resumed.code == 0, resumed.err + resumed.out  # its commit waited for the lock, then went on
    assert read_state(repo, "lk")["tasks"]["T0001"]["status"] == "succeeded"


def test_resume_does_not_delete_a_half_made_worktree_a_process_works_in(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, strays: list[Path]
) -> None:
    repo.configure(workspace="per-task")
    marker = tmp_path / "a.pid"
    strays.append(marker)
    fake_codex.script(
        {
            "rules": [
                {"match": "job A.", "turns": [[{"marker": str(marker)}, {"hang": True}], [{"answer": answer("A")}]]},
                {"match": "job B.", "turns": [[{"answer": answer("B")}]]},
            ]
        }
    )
    tasks = [
        {"id": "A", "role": "implementer", "prompt": "job A.", "acceptance": "", "blocked_by": []},
        {"id": "B", "role": "implementer", "prompt": "job B.", "acceptance": "", "blocked_by": ["A"]},
    ]
    proc = start_cli(repo.path, "run", "--plan-file", str(write_plan(tmp_path / "p.json", tasks)), "--run-id", "hm")
    try:
        wait_marked(marker, proc=proc)  # A's agent is at work
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == EXIT_INTERRUPTED
    # B's worktree folder, as a crash between making it and recording it would leave it, and someone in it
    folder = repo.path / ".orchestrator" / "worktrees" / "hm" / "B"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine\n")
    sitter = subprocess.Popen(["sleep", "1000"], cwd=folder)
    try:
        resumed = run_cli(repo.path, "resume", "--run-id", "hm", "--no-progress")
        assert resumed.code == 1, resumed.err + resumed.out
        assert (folder / "notes.txt").read_text() == "mine\n" and alive(sitter.pid)
        task = read_state(repo, "hm")["tasks"]["B"]
        assert task["status"] == "failed" and task["error"]["kind"] == "workspace"
        assert f"pid {sitter.pid} (sleep 1000) works in it" in task["error"]["message"]
    finally:
        sitter.kill()
        sitter.wait()


def test_resume_after_kill_9_empties_the_orphaned_agents_cgroup(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, strays: list[Path]
) -> None:
    """With cgroups, even the daemons that left the agent's session are found after codex-orch died.
    (Without them, resume stops the orphaned agent's process group and session only: see
    docs/security.md.)"""
    env = mode_env("cgroup")
    agent = tmp_path / "agent.pid"
    step, pids = daemons(tmp_path)
    strays += [pids, agent]
    fake_codex.script({"default": [[step, {"marker": str(agent)}, {"hang": True}], [{"answer": answer()}]]})
    proc = start_cli(repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "k9", env=env)
    try:
        wait_marked(agent, proc=proc)  # the agent started its daemons
        wait_recorded(repo, "k9", "attempt.thread", proc=proc)  # so that resume continues the thread
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    orphans = [marked(agent)[0], *marked(pids)]
    assert len(orphans) == 4 and living(orphans) == orphans  # kill -9 gives codex-orch no chance
    resumed = run_cli(repo.path, "resume", "--run-id", "k9", "--no-progress", env=env)
    assert resumed.code == 0, resumed.err + resumed.out
    assert living(orphans) == []


def test_resume_after_kill_9_stops_what_the_orphaned_agent_left_in_its_session(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, strays: list[Path]
) -> None:
    """Without cgroups, what resume can still prove is the orphaned agent's: its process group and its
    session (a session cannot be joined). A job-control shell puts its job in a group of its own."""
    agent, pids = tmp_path / "agent.pid", tmp_path / "pids.txt"
    strays += [pids, agent]
    job = f"set -m; sh -c 'echo $$ >> {pids}; exec sleep 1000' </dev/null >/dev/null 2>&1 &"
    fake_codex.script({"default": [[{"shell": job}, {"marker": str(agent)}, {"hang": True}], [{"answer": answer()}]]})
    proc = start_cli(repo.path, "run", "--plan-file", str(one_task(tmp_path)), "--run-id", "s9")
    try:
        wait_marked(agent, proc=proc)  # the agent started its job
        wait_marked(pids)
        wait_recorded(repo, "s9", "attempt.thread", proc=proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    left = marked(pids)[0]
    assert alive(left) and os.getpgid(left) != marked(agent)[0]  # outside the agent's group
    resumed = run_cli(repo.path, "resume", "--run-id", "s9", "--no-progress")
    assert resumed.code == 0, resumed.err + resumed.out
    assert not alive(left)
