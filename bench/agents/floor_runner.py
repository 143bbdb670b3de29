"""The floor of bench/parallel.py's no-paths case: what any Python orchestrator of this stack pays with no
checks, no git and no state. It imports the libraries codex-orch needs before its first agent (click,
jinja2, jsonschema, PyYAML), then runs TASKS bench agents (instant_codex.sh) WORKERS at a time, each with
"job N." on stdin in the current folder, and prints the seconds from its first agent to its last one's end.

    python bench/agents/floor_runner.py TASKS WORKERS
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click  # noqa: F401
import jinja2  # noqa: F401
import jsonschema  # noqa: F401
import yaml  # noqa: F401

AGENT = Path(__file__).resolve().parent / "instant_codex.sh"


def one(n: int) -> None:
    subprocess.run([str(AGENT), "exec", "--json"], input=f"job {n}.".encode(), stdout=subprocess.DEVNULL, check=True)


def main() -> None:
    tasks, workers = int(sys.argv[1]), int(sys.argv[2])
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(tasks)))
    print(f"{time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
