"""What the after-attempt guardrail check costs, on a repository with many refs.

    .venv/bin/python bench/guardrails.py [--refs 1000] [--repeat 200]

A scratch repository gets --refs refs (half loose branches, half packed tags, as a real repository
has them), a hooks folder with git's sample hooks, and one worktree watched by a Guard. Then:
- `start`: reading what should be (once per run);
- `check, nothing changed`: the check after an attempt that touched nothing of git's (the usual case);
- `check, one ref moved`: a check that finds a moved branch, keeps the agent's version and puts it back.
Prints the median and the 95th percentile of each, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import git, scratch_repo

from codex_orch.git.guard import Guard
from codex_orch.git.repo import Git
from codex_orch.git.worktrees import add_worktree, admin_dir


def make_refs(repo: Path, count: int) -> None:
    head = git(repo, "rev-parse", "HEAD")
    lines = []
    for i in range(count):
        ref = f"refs/heads/feature/b{i}" if i % 2 == 0 else f"refs/tags/v{i}"
        lines.append(f"create {ref} {head}")
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input="\n".join(lines) + "\n", text=True, check=True)
    git(repo, "pack-refs", "--no-all")  # tags packed, branches stay loose (pack-refs packs only tags then)


def timed(fn: object, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--refs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    repo = scratch_repo()
    make_refs(repo, args.refs)
    host = Git(repo)
    worktree = repo.parent / "wt"
    add_worktree(host, worktree, "orch/run-bench/workspace-shared", "HEAD")
    admin = admin_dir(host, worktree)
    guard = Guard(host, "bench")
    folder = Path(tempfile.mkdtemp(prefix="codex-orch-bench-guard-"))
    refs = len(git(repo, "for-each-ref", "--format=%(refname)").splitlines())

    def start() -> None:
        guard.start()
        guard.watch(worktree, admin, "orch/run-bench/workspace-shared")

    def check() -> None:
        assert guard.check(worktree, "refs/orch/bench/quarantine/T/1", folder) == []

    other = git(repo, "commit-tree", "-m", "x", "HEAD^{tree}")

    def check_moved() -> None:
        git(repo, "update-ref", "refs/heads/feature/b0", other)
        changes = guard.check(worktree, "refs/orch/bench/quarantine/T/1", folder)
        assert [c.name for c in changes] == ["refs/heads/feature/b0"]

    start()
    rows = [("start", *timed(start, max(20, args.repeat // 10)))]
    rows.append(("check, nothing changed", *timed(check, args.repeat)))
    moved = timed(check_moved, max(20, args.repeat // 10))  # includes the `git update-ref` that moves the ref
    rows.append(("check, one ref moved (+ git update-ref)", *moved))
    print(f"repository: {refs} refs ({args.refs // 2} loose branches, {args.refs - args.refs // 2} packed tags)")
    print(f"{'step':42} {'median ms':>10} {'p95 ms':>8}")
    for name, median, p95 in rows:
        print(f"{name:42} {median:10.2f} {p95:8.2f}")
    print(f"python {sys.version.split()[0]}, git {git(repo, '--version').split()[-1]}")


if __name__ == "__main__":
    main()
