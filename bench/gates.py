"""Gates and worktree setup of parallel tasks run concurrently: 8 tasks at 8 workers (landing run), each
gated by a confined `sleep` gate; then each of 8 worktrees set up with a venv.

    .venv/bin/python bench/gates.py [--tasks 8] [--gate-seconds 2] [--repeat 3]

The agent is bench/agents/instant_codex.sh (no work of its own). From the journal: each gate run's
start (its record's time minus its seconds) and end, and likewise each worktree's setup. Printed: the
wall time from the first gate's start to the last gate's end against the slowest single gate (1.0 would
be perfect overlap; 8.0 one after another), and the same for the setups.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import codex_orch_argv, configure_instant, env, scratch_repo


def spans(journal: Path, kind: str) -> list[tuple[float, float]]:
    """(start, end) of each gate run (kind task.gates) or setup (worktree.setup), in epoch seconds."""
    found = []
    for line in journal.read_text().splitlines():
        rec = json.loads(line)
        if rec["type"] != kind:
            continue
        end = datetime.fromisoformat(rec["ts"]).timestamp()
        for seconds in [r["seconds"] for r in rec["runs"]] if kind == "task.gates" else [rec["seconds"]]:
            found.append((end - seconds, end))
    return found


def once(tasks: int, gate_seconds: float) -> dict[str, Any]:
    repo = scratch_repo()
    configure_instant(
        repo,
        0,
        workspace="landing",
        limits={"max_workers": tasks},
        gates=[{"name": "slow", "run": ["sleep", f"{gate_seconds:g}"]}],
        worktree={"setup": [[sys.executable, "-m", "venv", "--without-pip", ".venv"]]},
    )
    plan = repo.parent / "plan.json"
    rows = [{"role": "implementer", "prompt": f"job {i}.", "acceptance": ""} for i in range(tasks)]
    plan.write_text(json.dumps({"goal": "bench", "assumptions": [], "tasks": rows}))
    argv = codex_orch_argv("run", "--plan-file", str(plan), "--run-id", "bench", "--no-progress")
    result = subprocess.run(argv, cwd=repo, env=env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"codex-orch exited {result.returncode}: {result.stderr[-2000:]}")
    journal = repo / ".orchestrator" / "runs" / "bench" / "journal.jsonl"
    out = {}
    for name, kind in (("gates", "task.gates"), ("setup", "worktree.setup")):
        found = spans(journal, kind)
        assert len(found) == tasks, (name, len(found))
        wall = max(e for _, e in found) - min(s for s, _ in found)
        slowest = max(e - s for s, e in found)
        out[name] = (wall, slowest, sum(e - s for s, e in found))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--gate-seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [once(args.tasks, args.gate_seconds) for _ in range(args.repeat)]
    for name in ("gates", "setup"):
        walls = [r[name][0] for r in runs]
        ratios = [r[name][0] / r[name][1] for r in runs]
        serial = statistics.median(r[name][2] for r in runs)
        print(
            f"{name}: {args.tasks} at once, wall median {statistics.median(walls):.2f} s "
            f"(one after another would be {serial:.2f} s); wall / slowest single: median "
            f"{statistics.median(ratios):.2f}, worst {max(ratios):.2f}"
        )


if __name__ == "__main__":
    main()
