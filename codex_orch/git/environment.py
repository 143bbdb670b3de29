"""Which GIT_* variables codex-orch passes on: to its own git, to agents, to validate commands. One rule,
imported by all three (and cheap to import: the CLI applies it before anything else runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

# Who commits, and which config. Any other GIT_* variable (GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE,
# GIT_CONFIG_PARAMETERS, ...) could point git at another repository or change what it runs.
KEEP_GIT_VARS = (
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_NOSYSTEM",
)


def without_git_vars(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the GIT_* variables that could point git elsewhere (all but KEEP_GIT_VARS)."""
    return {k: v for k, v in env.items() if not k.startswith("GIT_") or k in KEEP_GIT_VARS}
