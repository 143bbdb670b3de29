"""Parallel speed-up against the ideal wall time, and nothing lost when tasks collide.

    .venv/bin/python bench/parallel.py [--tasks 60] [--seconds 0.5] [--workers 4] [--repeat 3]
                                       [--same-file 8]

The agent is bench/agents/instant_codex.sh: it sleeps the given seconds and costs ~7 ms otherwise, so
the figure is codex-orch's. Ideal = ceil(tasks / workers) x seconds. Measured: the whole
`codex-orch run` process (interpreter start-up, checks, worktrees, agents, commits, landings, state),
and its run phase alone (from the run's creation to its end, as recorded in state.json). Cases, each
run --repeat times, alternating; the median and the worst are printed:
- `no paths`: the default configuration (landing mode), tasks that declare no `paths`;
- `shared`: one shared worktree (`workspace: shared`), each task declaring disjoint `paths`;
- `per-task`: a worktree per task, branches left apart (`workspace: per-task`);
- `floor`: not codex-orch: bench/agents/floor_runner.py imports the libraries codex-orch needs before its
  first agent and runs the same agents with a thread pool (no checks, git or state), to show how much of
  the ideal this stack and this agent leave (its "run phase" is its first agent to its last one's end).
Each run is checked: every task succeeded, one commit per task on the run branch (landing) or its own.

Then the same-file case: --same-file tasks (default 8) all append a line to one file
(bench/agents/append_codex.sh), in the default configuration. Every landing after the first conflicts;
the agent is asked to resolve it and keeps both sides. Printed: how each task ended, the conflict
rounds, and whether every line a succeeded task wrote is on the run branch.
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
from typing import Any

from _common import ROOT, codex_orch_argv, configure_instant, env, git, scratch_repo

CASES = {"no paths": None, "shared": "shared", "per-task": "per-task", "floor": "floor"}
FLOOR = ROOT / "bench" / "agents" / "floor_runner.py"


def write_plan(repo: Path, tasks: int, paths: bool) -> Path:
    plan = repo.parent / "plan.json"
    entries: list[dict[str, Any]] = []
    for i in range(tasks):
        entry: dict[str, Any] = {"role": "implementer", "prompt": f"job {i}.", "acceptance": ""}
        if paths:
            entry["paths"] = [f"out/{i}/**"]
        entries.append(entry)
    plan.write_text(json.dumps({"goal": "bench", "assumptions": [], "tasks": entries}))
    return plan


def run_plan(repo: Path, plan: Path, workers: int) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    result = subprocess.run(
        codex_orch_argv(
            "run", "--plan-file", str(plan), "--run-id", "bench", "--max-workers", str(workers), "--no-progress"
        ),
        cwd=repo,
        env=env(),
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    state = json.loads((repo / ".orchestrator" / "runs" / "bench" / "state.json").read_text())
    if result.returncode not in (0, 1):
        raise SystemExit(f"codex-orch exited {result.returncode}: {result.stderr[-2000:]}")
    return elapsed, state


def floor(tasks: int, seconds: float, workers: int) -> tuple[float, float]:
    """The floor case: bench/agents/floor_runner.py, the same agents with nothing around them."""
    folder = scratch_repo()
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(FLOOR), str(tasks), str(workers)],
        cwd=folder,
        env={**env(), "BENCH_AGENT_SLEEP": f"{seconds:g}"},
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - start
    made = len(list((folder / "out").glob("*/result.txt")))
    if made != tasks:
        raise SystemExit(f"floor: {made} agents' files for {tasks} tasks")
    return elapsed, float(out.stdout)


def run(case: str, tasks: int, seconds: float, workers: int) -> tuple[float, float]:
    if case == "floor":
        return floor(tasks, seconds, workers)
    repo = scratch_repo()
    workspace = CASES[case]
    if workspace is None:
        configure_instant(repo, seconds)
    else:
        configure_instant(repo, seconds, workspace=workspace)
    elapsed, state = run_plan(repo, write_plan(repo, tasks, paths=workspace == "shared"), workers)
    statuses = [t["status"] for t in state["tasks"].values()]
    if statuses.count("succeeded") != tasks:
        raise SystemExit(f"{case}: not every task succeeded: {statuses}")
    if workspace is None:
        commits = int(git(repo, "rev-list", "--count", f"main..{state['branch']}"))
        if commits != tasks:
            raise SystemExit(f"{case}: {commits} commits on the run branch for {tasks} tasks")
    in_run = (datetime.fromisoformat(state["ended_at"]) - datetime.fromisoformat(state["created_at"])).total_seconds()
    return elapsed, in_run


def same_file(tasks: int, seconds: float, workers: int) -> None:
    repo = scratch_repo()
    configure_instant(repo, seconds)
    config = repo / ".orchestrator" / "orchestrator.yaml"
    config.write_text(config.read_text().replace("instant_codex.sh", "append_codex.sh"))
    assert (ROOT / "bench" / "agents" / "append_codex.sh").exists()
    elapsed, state = run_plan(repo, write_plan(repo, tasks, paths=False), workers)
    ended: dict[str, int] = {}
    for t in state["tasks"].values():
        how = t["status"] + (f" ({t['error']['kind']})" if t.get("error") else "")
        ended[how] = ended.get(how, 0) + 1
    rounds = sum(len(t.get("attempts") or []) - 1 for t in state["tasks"].values())
    on_branch = git(repo, "show", f"{state['branch']}:shared.txt").splitlines()
    lost = [
        tid
        for i, (tid, t) in enumerate(sorted(state["tasks"].items()))
        if t["status"] == "succeeded" and f"line from job {i}" not in on_branch
    ]
    markers = [line for line in on_branch if line.startswith(("<<<<<<<", "=======", ">>>>>>>"))]
    print(
        f"same file, {tasks} tasks, {workers} workers: {elapsed:.2f} s; ended {ended}; {rounds} extra attempts"
        f" (conflict rounds); lines of succeeded tasks missing on the run branch: {len(lost)} {lost};"
        f" conflict markers left: {len(markers)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--same-file", type=int, default=8, metavar="N")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    ideal = math.ceil(args.tasks / args.workers) * args.seconds
    print(f"{args.tasks} tasks x {args.seconds:g} s agent, {args.workers} workers: ideal {ideal:.2f} s")
    samples: dict[str, list[tuple[float, float]]] = {case: [] for case in args.cases}
    for _ in range(args.repeat):
        for case in args.cases:
            samples[case].append(run(case, args.tasks, args.seconds, args.workers))
    for case in args.cases:
        whole = [w for w, _ in samples[case]]
        in_run = [r for _, r in samples[case]]
        print(
            f"{case:9} ({args.repeat} runs): whole process median {statistics.median(whole):5.2f} s ="
            f" {statistics.median(whole) / ideal:.3f} x, worst {max(whole) / ideal:.3f} x;"
            f" run phase median {statistics.median(in_run):5.2f} s = {statistics.median(in_run) / ideal:.3f} x,"
            f" worst {max(in_run) / ideal:.3f} x"
        )
    if args.same_file:
        same_file(args.same_file, args.seconds, args.workers)


if __name__ == "__main__":
    main()
