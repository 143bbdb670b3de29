"""Per-task worktree creation: codex-orch's path against plain `git worktree add`.

    .venv/bin/python bench/worktrees.py [--files 3000] [--count 20]

On a repository of a few thousand files that this script creates, times N worktree creations by
`Workspaces.ensure` (branch-name check, the repository lock, `git worktree add -b`) and N by
`git worktree add -b` run directly, alternating, and prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from _common import scratch_repo

from codex_orch.gitops import Git
from codex_orch.workspace import Workspaces


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--count", type=int, default=20)
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


if __name__ == "__main__":
    main()
