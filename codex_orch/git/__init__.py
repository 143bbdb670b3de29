"""Every git command codex-orch runs, and the run's worktrees, branches and commits."""
