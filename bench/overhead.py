"""Per-task overhead of codex-orch against the floor, at 10, 100 and 1,000 tasks.

    .venv/bin/python bench/overhead.py [--sizes 10 100 1000]

Shared worktree, one worker, the instant bench agent (bench/agents/instant_codex.sh) that rewrites one
file (out/all/result.txt, new content each time) and answers at once — the same file every task, so
that git's own cost stays flat and any growth is codex-orch's. For each plan size:
- codex-orch: wall time of the `run` phase (from the run's creation to its end, as recorded in its
  journal) divided by the number of tasks, plus the process's total wall time;
- `codex-orch status` of the largest run, as a new process;
- the floor, measured in the same run: for each task, the same agent spawned with the same prompt on
  stdin (its events read to the end), then `git add -A` and `git commit` — what the work itself costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

from _common import INSTANT_CODEX, codex_orch_argv, configure_instant, env, git, scratch_repo


def floor(tasks: int) -> float:
    repo = scratch_repo()
    start = time.perf_counter()
    for i in range(tasks):
        subprocess.run(
            [str(INSTANT_CODEX), "exec", "--json", "-C", str(repo), "-o", str(repo.parent / "last.txt"), "-"],
            input=f"job all. task {i}".encode(),
            capture_output=True,
            check=True,
        )
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(["git", "commit", "-q", "-m", f"task {i}"], cwd=repo, check=True)
    return (time.perf_counter() - start) / tasks


def codex_orch(tasks: int) -> tuple[float, float, Path]:
    repo = scratch_repo()
    configure_instant(repo, 0)
    plan = repo.parent / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "goal": "bench",
                "assumptions": [],
                "tasks": [
                    {"role": "implementer", "prompt": f"job all. task {i}", "acceptance": ""} for i in range(tasks)
                ],
            }
        )
    )
    start = time.perf_counter()
    subprocess.run(
        codex_orch_argv("run", "--plan-file", str(plan), "--run-id", "bench", "--no-progress"),
        cwd=repo,
        env=env(),
        check=True,
        capture_output=True,
    )
    total = time.perf_counter() - start
    run_dir = repo / ".orchestrator" / "runs" / "bench"
    state = json.loads((run_dir / "state.json").read_text())
    run_phase = (
        datetime.fromisoformat(state["ended_at"]) - datetime.fromisoformat(state["created_at"])
    ).total_seconds()
    commits = int(git(repo, "rev-list", "--count", f"main..{state['branch']}"))
    assert commits == tasks, (commits, tasks)
    return run_phase / tasks, total, repo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()
    print(
        f"{'tasks':>6} {'codex-orch ms/task':>19} {'floor ms/task':>14} {'over floor':>11} {'ratio':>6}"
        f" {'process s':>10}"
    )
    per_task = {}
    largest = None
    for size in args.sizes:
        mine, total, repo = codex_orch(size)
        largest = repo
        base = floor(size)
        per_task[size] = mine
        print(
            f"{size:6} {mine * 1000:19.1f} {base * 1000:14.1f} {(mine - base) * 1000:+11.1f} {mine / base:6.2f} "
            f"{total:10.2f}"
        )
    if largest is not None:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(
                codex_orch_argv("status", "--run-id", "bench"), cwd=largest, env=env(), check=True, capture_output=True
            )
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"codex-orch status of the {max(args.sizes)}-task run: median {times[2] * 1000:.0f} ms (of 5)")
    if len(per_task) > 1:
        small, large = min(per_task), max(per_task)
        print(f"per-task cost at {large} tasks / at {small} tasks: {per_task[large] / per_task[small]:.2f}")


if __name__ == "__main__":
    main()
