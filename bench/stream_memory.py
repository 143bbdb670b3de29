"""Peak memory of codex-orch while an agent streams a huge event log.

    .venv/bin/python bench/stream_memory.py [--gigabytes 1]

The fake codex floods N GB of JSONL reasoning events, then answers. codex-orch streams every byte to
events.jsonl; this script samples codex-orch's own VmHWM (peak resident set, from /proc) until it
exits and prints it with the bytes recorded and the throughput.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from _common import answer, codex_orch_argv, configure, env, scratch_repo


def peak_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gigabytes", type=float, default=1.0)
    args = parser.parse_args()
    size = int(args.gigabytes * 1024**3)
    repo = scratch_repo()
    configure(
        repo,
        {"default": [[{"flood": size, "line_bytes": 4096}, {"answer": answer("flooded")}]]},
        limits={"idle_timeout": 120, "timeout": 3600},
    )
    plan = repo.parent / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "goal": "flood",
                "assumptions": [],
                "tasks": [{"role": "implementer", "prompt": "flood", "acceptance": ""}],
            }
        )
    )
    start = time.perf_counter()
    proc = subprocess.Popen(
        codex_orch_argv("run", "--plan-file", str(plan), "--run-id", "flood", "--no-progress"),
        cwd=repo,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = 0
    while proc.poll() is None:
        value = peak_rss_kib(proc.pid)
        if value:
            peak = max(peak, value)
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"codex-orch exited {proc.returncode}: {stderr}")
    events = repo / ".orchestrator/runs/flood/tasks/T0001/attempt-1/events.jsonl"
    recorded = events.stat().st_size
    print(
        f"event stream recorded: {recorded / 1024**2:,.0f} MiB in {elapsed:.1f} s"
        f" ({recorded / 1024**2 / elapsed:,.0f} MiB/s)"
    )
    print(f"codex-orch peak RSS (VmHWM): {peak / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
