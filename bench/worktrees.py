"""Per-task worktree creation: codex-orch's path against plain `git worktree add`.

    .venv/bin/python bench/worktrees.py [--files 3000] [--count 20]

On a repository of a few thousand files that this script creates, times N worktree creations by
`Workspaces.ensure` (branch-name check, the repository lock, `git worktree add -b`) and N by
`git worktree add -b` run directly, alternating, and prints the medians and their ratio.

Then the parallel case (`--parallel 8`, as when 8 tasks start at once): 8 worktrees made by 8 threads
through `Workspaces.ensure`, against the same 8 made one after another, `--rounds` times each.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import threading
import time
from pathlib import Path

from _common import scratch_repo

from codex_orch.git.repo import Git
from codex_orch.git.workspace import Workspaces


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    repo = scratch_repo(files=args.files)
    git = Git(repo)
    base = git.head()
    workspaces = Workspaces(git, None)
    ours, plain = [], []
    for i in range(args.count):
        start = time.perf_counter()
        subprocess.run(
            ["git", "worktree", "add", "-q", "-b", f"plain/{i}", str(repo.parent / "plain" / str(i)), base],
            cwd=repo,
            check=True,
        )
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        workspaces.ensure(repo.parent / "orch" / str(i), f"orch/{i}", base)
        ours.append(time.perf_counter() - start)
    files = int(subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True).stdout.count("\n"))
    print(f"repository: {files} files; {args.count} worktrees each way")
    print(f"git worktree add      median {statistics.median(plain) * 1000:7.1f} ms")
    print(f"codex-orch (ensure)   median {statistics.median(ours) * 1000:7.1f} ms")
    print(f"ratio {statistics.median(ours) / statistics.median(plain):.2f}")

    together, one_by_one = [], []
    for r in range(args.rounds):
        together.append(make_many(workspaces, repo.parent / f"par{r}", f"par{r}", base, args.parallel, threads=True))
        one_by_one.append(make_many(workspaces, repo.parent / f"seq{r}", f"seq{r}", base, args.parallel, threads=False))
    print(f"{args.parallel} worktrees at once (threads)  median {statistics.median(together) * 1000:7.1f} ms")
    print(f"{args.parallel} worktrees one by one        median {statistics.median(one_by_one) * 1000:7.1f} ms")


def make_many(workspaces: Workspaces, folder: Path, prefix: str, base: str, count: int, threads: bool) -> float:
    jobs = [(folder / str(i), f"{prefix}/{i}") for i in range(count)]
    start = time.perf_counter()
    if threads:
        workers = [threading.Thread(target=workspaces.ensure, args=(path, branch, base)) for path, branch in jobs]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    else:
        for path, branch in jobs:
            workspaces.ensure(path, branch, base)
    elapsed = time.perf_counter() - start
    if not all((path / "README.md").is_file() for path, _ in jobs):
        raise SystemExit("a worktree was not checked out")
    return elapsed


if __name__ == "__main__":
    main()
