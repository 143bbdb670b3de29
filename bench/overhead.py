"""Per-task overhead of codex-orch against the floor, at 10, 100 and 1,000 tasks; and against another tool.

    .venv/bin/python bench/overhead.py [--sizes 10 100 1000]
    .venv/bin/python bench/overhead.py --compare-with /path/to/other/codex-orch [--tasks 600] [--repeat 3]

First part: shared worktree (`workspace: shared`), one worker, the instant bench agent
(bench/agents/instant_codex.sh) that rewrites one file (out/all/result.txt, new content each time) and
answers at once — the same file every task, so that git's own cost stays flat and any growth is
codex-orch's. For each plan size:
- codex-orch: wall time of the `run` phase (from the run's creation to its end, as recorded in its
  journal) divided by the number of tasks, plus the process's total wall time;
- `codex-orch status` of the largest run, as a new process;
- the floor, measured in the same run: for each task, the same agent spawned with the same prompt on
  stdin (its events read to the end), then `git add -A` and `git commit` — what the work itself costs.

--compare-with CMD: the same plan of independent tasks (default 600) run by codex-orch in its default
configuration (landing mode: a worktree per task, each commit landed on the run branch; default worker
count) and by CMD, the original codex-orch (github.com/shanedertrain/codex-orch, which needs Python >= 3.12:
install it into a venv of its own and pass its `codex-orch` script) in ITS default configuration (one
shared worktree, 4 workers, no commits), with its task and loop-round limits raised to the plan's size.
Both drive the same instant agent, found as `codex` on PATH by the original; the agent answers each
tool's own schema (BENCH_AGENT_ANSWER). The figure is the whole process's wall time per task, runs alternating.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path

import yaml
from _common import INSTANT_CODEX, codex_orch_argv, configure_instant, env, git, scratch_repo

# the original's task result schema (templates/schemas/task_result.schema.json there)
ORIGINAL_ANSWER = '{"summary":"bench job","decisions":[],"changes":[],"commands_ran":[],"risks":[],"next_tasks":[]}'


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


def write_plan(repo: Path, tasks: int, per_task: bool, **extra: object) -> Path:
    """Independent tasks; each writes out/<i>/ when per_task, else all write out/all/."""
    plan = repo.parent / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "goal": "bench",
                "assumptions": [],
                "tasks": [
                    {
                        "role": "implementer",
                        "prompt": f"job {i if per_task else 'all'}. task {i}",
                        "acceptance": "",
                        **extra,
                    }
                    for i in range(tasks)
                ],
            }
        )
    )
    return plan


def codex_orch(tasks: int, workspace: str | None = "shared", per_task: bool = False) -> tuple[float, float, Path]:
    repo = scratch_repo()
    if workspace is None:
        configure_instant(repo, 0)
    else:
        configure_instant(repo, 0, workspace=workspace)
    plan = write_plan(repo, tasks, per_task)
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


def original(command: str, tasks: int) -> float:
    """Wall time of the original codex-orch's whole `run` process over `tasks` instant tasks."""
    repo = scratch_repo()
    shim = repo.parent / "bin"
    shim.mkdir()
    (shim / "codex").write_text(f'#!/usr/bin/env bash\nexec {INSTANT_CODEX} "$@"\n')
    (shim / "codex").chmod(0o755)
    their_env = {**env(), "PATH": f"{shim}:{env()['PATH']}", "BENCH_AGENT_ANSWER": ORIGINAL_ANSWER}
    subprocess.run([command, "init"], cwd=repo, env=their_env, check=True, capture_output=True)
    config_path = repo / ".orchestrator" / "orchestrator.yaml"
    config = yaml.safe_load(config_path.read_text())
    # it runs while fewer than max_tasks tasks are recorded (the plan's own count included), for at most
    # max_iterations rounds of its scheduling loop
    config["limits"]["max_tasks"] = max(tasks + 1, config["limits"]["max_tasks"])
    config["limits"]["max_iterations"] = max(10 * tasks, config["limits"]["max_iterations"])
    config_path.write_text(yaml.safe_dump(config))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "its config")
    plan = write_plan(repo, tasks, True, blocked_by=[])
    start = time.perf_counter()
    result = subprocess.run(
        [command, "run", "--plan-file", str(plan), "--run-id", "bench", "--no-status"],
        cwd=repo,
        env=their_env,
        capture_output=True,
        text=True,
    )
    total = time.perf_counter() - start
    state = json.loads((repo / ".orchestrator" / "runs" / "bench" / "state.json").read_text())
    done = sum(task["status"] == "completed" for task in state["tasks"])
    if result.returncode != 0 or done != tasks:
        raise SystemExit(f"the original: exit {result.returncode}, {done}/{tasks} completed: {result.stdout[-2000:]}")
    return total


def compare(command: str, tasks: int, repeat: int) -> None:
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(repeat):
        ours.append(codex_orch(tasks, workspace=None, per_task=True)[1])
        theirs.append(original(command, tasks))
    mine, other = statistics.median(ours), statistics.median(theirs)
    print(f"{tasks} tasks, default configuration of each, whole process, median of {repeat} (alternating):")
    print(f"  codex-orch (landing, one commit per task) {mine:7.2f} s = {mine / tasks * 1000:6.1f} ms/task")
    print(f"  the original (shared, no commits)         {other:7.2f} s = {other / tasks * 1000:6.1f} ms/task")
    print(f"  ratio codex-orch / original: {mine / other:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--compare-with", metavar="CMD", help="the original codex-orch's command (see above)")
    parser.add_argument("--tasks", type=int, default=600, help="plan size for --compare-with")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool for --compare-with")
    args = parser.parse_args()
    if args.compare_with:
        compare(args.compare_with, args.tasks, args.repeat)
        return
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
