"""`codex-orch cancel`: a run stopped from another shell, as Ctrl-C stops it in its own, then resumed.
(The Temporal case, a workflow whose submitter is gone, is in test_temporal.py.)"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from conftest import (
    FakeCodex,
    Repo,
    alive,
    answer,
    job,
    kill_all,
    marked,
    read_state,
    release,
    run_cli,
    start_cli,
    wait_marked,
    write_plan,
)


def held_agent(fake: FakeCodex, tmp_path: Path) -> tuple[Path, Path]:
    """An agent that marks that it started, waits at a gate, then writes held.txt and answers."""
    marks, gate = tmp_path / "started", tmp_path / "gate"
    steps: list[dict[str, Any]] = [{"marker": str(marks)}, {"gate": str(gate)}]
    steps += [{"write": "held.txt", "content": "held\n"}, {"answer": answer("held", ["held.txt"])}]
    fake.script({"default": [steps]})
    return marks, gate


def start_run(repo: Repo, tmp_path: Path, run_id: str) -> subprocess.Popen[Any]:
    plan = write_plan(tmp_path / "plan.json", [job("H")])
    return start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress")


def test_cancel_stops_the_driver_returns_once_the_run_is_recorded_interrupted_and_resume_finishes_it(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    marks, gate = held_agent(fake_codex, tmp_path)
    run = start_run(repo, tmp_path, "c1")
    try:
        [agent] = wait_marked(marks, 1, run)
        cancelled = run_cli(repo.path, "cancel", "--run-id", "c1")
        state = read_state(repo, "c1")  # read at once: cancel returned only when the run had stopped
        assert run.wait(timeout=60) == 130  # as on Ctrl-C
    finally:
        release(gate)
        run.kill()
        kill_all(marked(marks))
    assert cancelled.code == 0, cancelled.err
    assert f"SIGTERM sent to its driver (pid {run.pid}); it stopped: interrupted;" in cancelled.out
    assert "resume --run-id c1` continues it" in cancelled.out
    assert state["status"] == "interrupted"
    assert state["tasks"]["H"]["status"] == "interrupted"
    assert not alive(agent)  # stopped with its driver, not left behind

    resumed = run_cli(repo.path, "resume", "--run-id", "c1", "--no-progress")
    assert resumed.code == 0, resumed.err
    state = read_state(repo, "c1")
    assert state["tasks"]["H"]["status"] == "succeeded"
    assert repo.git("show", f"{state['branch']}:held.txt") == "held"
    assert len(repo.git("rev-list", f"{state['base_commit']}..{state['branch']}").split()) == 1


def test_cancel_no_wait_returns_while_the_driver_stops_and_json_says_what_it_did(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    marks, gate = held_agent(fake_codex, tmp_path)
    run = start_run(repo, tmp_path, "c2")
    try:
        wait_marked(marks, 1, run)
        cancelled = run_cli(repo.path, "cancel", "--run-id", "c2", "--no-wait", "--json")
        code = run.wait(timeout=60)
    finally:
        release(gate)
        run.kill()
        kill_all(marked(marks))
    assert cancelled.code == 0, cancelled.err
    said = json.loads(cancelled.out)
    assert said == {
        "kind": "cancel",
        "json_version": said["json_version"],
        "run_id": "c2",
        "how": "signalled",
        "status": "running",  # its state when the signal was sent: --no-wait does not wait for the rest
        "pid": run.pid,
    }
    assert code == 130
    assert read_state(repo, "c2")["status"] == "interrupted"


def test_cancel_of_a_finished_run_says_so_and_changes_nothing(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script({"default": [[{"write": "a.txt", "content": "a\n"}, {"answer": answer("a", ["a.txt"])}]]})
    plan = write_plan(tmp_path / "plan.json", [job("A")])
    assert run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "c3", "--no-progress").code == 0
    folder = repo.path / ".orchestrator" / "runs" / "c3"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    cancelled = run_cli(repo.path, "cancel", "--run-id", "c3")

    assert (cancelled.code, cancelled.out, cancelled.err) == (
        0,
        "run c3 is not running (succeeded): nothing to cancel.\n",
        "",
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_cancel_of_a_run_whose_driver_was_killed_says_resume_continues_it(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    marks, gate = held_agent(fake_codex, tmp_path)
    run = start_run(repo, tmp_path, "c4")
    try:
        wait_marked(marks, 1, run)
        run.kill()  # kill -9: the state still says running, and nobody drives it
        run.wait()
        cancelled = run_cli(repo.path, "cancel", "--run-id", "c4")
    finally:
        release(gate)
        kill_all(marked(marks))
    assert cancelled.code == 0, cancelled.err
    assert cancelled.out.startswith("run c4 has no live driver (it was killed): nothing runs to cancel; `")
    assert read_state(repo, "c4")["status"] == "running"  # unchanged: resume judges what was left


def test_cancel_of_an_unknown_run_is_one_line_and_exit_2(repo: Repo) -> None:
    cancelled = run_cli(repo.path, "cancel", "--run-id", "nope")
    assert cancelled.code == 2 and cancelled.out == ""
    runs = repo.path / ".orchestrator" / "runs"
    assert cancelled.err == f"codex-orch: error: --run-id: no run 'nope' in {runs}. `codex-orch runs` lists them.\n"


def test_a_lock_file_naming_another_program_gets_no_signal(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """The pid in the lock file is only signalled when it is a codex-orch: a lock held by something else
    whose file names an unrelated process (pid reuse, or an edited file) leaves that process alone."""
    fake_codex.script({"default": [[{"answer": answer("a")}]]})
    plan = write_plan(tmp_path / "plan.json", [job("A")])
    assert run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "c5", "--no-progress").code == 0
    bystander = subprocess.Popen(["sleep", "300"])
    lock = repo.path / ".orchestrator" / "runs" / "c5" / "lock"
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held, as by a driver
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{bystander.pid}\n".encode(), 0)
        cancelled = run_cli(repo.path, "cancel", "--run-id", "c5")
        still_there = bystander.poll() is None
    finally:
        os.close(fd)
        bystander.kill()
        bystander.wait()
    assert still_there
    assert cancelled.code == 2
    assert cancelled.err.strip().splitlines()[0] == (
        f"codex-orch: error: run c5: the pid of the process driving it is not in {lock}"
    )
