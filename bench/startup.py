"""Start-up time of `codex-orch --help` next to `python -c pass`, in one run.

    .venv/bin/python bench/startup.py [--runs 30]

Prints the median and best wall time of each, and the difference.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (byte-compiles codex_orch, as an install does)


def measure(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--extra", nargs="*", default=[], help="more codex-orch arguments to time, e.g. status")
    args = parser.parse_args()
    entry = Path(sys.executable).parent / "codex-orch"
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "codex-orch --help": [str(entry), "--help"],
    }
    for extra in args.extra:
        cases[f"codex-orch {extra}"] = [str(entry), *extra.split()]
    measure(cases["codex-orch --help"], 3)  # warm the file cache
    results = {name: measure(argv, args.runs) for name, argv in cases.items()}
    base = statistics.median(results["python -c pass"])
    print(f"{'command':32} {'median ms':>10} {'best ms':>10} {'over python':>12}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:32} {median * 1000:10.1f} {min(times) * 1000:10.1f} {(median - base) * 1000:+12.1f}")


if __name__ == "__main__":
    main()
