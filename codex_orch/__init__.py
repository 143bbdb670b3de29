"""codex-orch: run plans of coding tasks through AI coding agents in git worktrees."""

from __future__ import annotations

__version__ = "0.1.0"
