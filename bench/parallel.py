"""Parallel speed-up: 16 independent tasks of a 2 s agent at 8 workers, against the ideal wall time.

    .venv/bin/python bench/parallel.py [--tasks 16] [--seconds 2] [--workers 8] [--repeat 5]

The agent is bench/agents/instant_codex.sh: it sleeps the given seconds and costs ~7 ms otherwise, so
the figure is codex-orch's. Ideal = ceil(tasks / workers) x seconds. Measured: the whole
`codex-orch run` process (interpreter
start-up, checks, worktrees, 16 agents, 16 commits, state), and its run phase alone (from the run's
creation to its end, as recorded in state.json). Both workspace modes: per-task worktrees, and one
shared worktree where each task declares disjoint `paths`. Each mode runs --repeat times (alternating);
the median and the worst are printed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import time
from datetime import datetime

from _common import codex_orch_argv, configure_instant, env, scratch_repo


def run(mode: str, tasks: int, seconds: float, workers: int) -> tuple[float, float]:
    repo = scratch_repo()
    configure_instant(repo, seconds, use_single_workspace=(mode == "shared"))
    plan = repo.parent / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "goal": "bench",
                "assumptions": [],
                "tasks": [
                    {"role": "implementer", "prompt": f"job {i}.", "acceptance": "", "paths": [f"out/{i}/**"]}
                    for i in range(tasks)
                ],
            }
        )
    )
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
    if result.returncode != 0:
        raise SystemExit(f"{mode}: codex-orch exited {result.returncode}: {result.stderr[-2000:]}")
    state = json.loads((repo / ".orchestrator" / "runs" / "bench" / "state.json").read_text())
    in_run = (datetime.fromisoformat(state["ended_at"]) - datetime.fromisoformat(state["created_at"])).total_seconds()
    return elapsed, in_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ideal = math.ceil(args.tasks / args.workers) * args.seconds
    print(f"{args.tasks} tasks x {args.seconds:g} s agent, {args.workers} workers: ideal {ideal:.2f} s")
    modes = ("per-task", "shared")
    samples: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    for _ in range(args.repeat):
        for mode in modes:
            samples[mode].append(run(mode, args.tasks, args.seconds, args.workers))
    for mode in modes:
        whole = [w for w, _ in samples[mode]]
        in_run = [r for _, r in samples[mode]]
        print(
            f"{mode:9} worktrees ({args.repeat} runs): whole process median {statistics.median(whole):5.2f} s ="
            f" {statistics.median(whole) / ideal:.3f} x, worst {max(whole) / ideal:.3f} x;"
            f" run phase median {statistics.median(in_run):5.2f} s = {statistics.median(in_run) / ideal:.3f} x,"
            f" worst {max(in_run) / ideal:.3f} x"
        )


if __name__ == "__main__":
    main()
