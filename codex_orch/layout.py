"""Where things live in a host repository (`.orchestrator/…`) and in the installed package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

ORCH_DIR = ".orchestrator"
CONFIG_NAME = "orchestrator.yaml"

# Task and run ids become folder names and parts of branch names: keep them to a safe alphabet.
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # used with fullmatch: "$" would let "x\n" through


def id_problem(value: str) -> str | None:
    """Why `value` cannot be a task or run id, or None when it can."""
    if not ID_RE.fullmatch(value):
        return "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
    if ".." in value or value.endswith((".", ".lock")):
        return "must not contain '..' nor end with '.' or '.lock'"
    return None


def packaged_templates() -> Path:
    """The defaults shipped with codex-orch (templates/ in the source tree)."""
    return Path(str(resources.files("codex_orch.templates")))


@dataclass(frozen=True)
class Layout:
    """Paths inside one host repository."""

    root: Path

    @property
    def orch_dir(self) -> Path:
        return self.root / ORCH_DIR

    @property
    def config_path(self) -> Path:
        return self.orch_dir / CONFIG_NAME

    @property
    def schemas_dir(self) -> Path:
        return self.orch_dir / "schemas"

    @property
    def prompts_dir(self) -> Path:
        return self.orch_dir / "prompts"

    @property
    def runs_dir(self) -> Path:
        return self.orch_dir / "runs"

    @property
    def worktrees_dir(self) -> Path:
        return self.orch_dir / "worktrees"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def run_worktree(self, run_id: str) -> Path:
        return self.worktrees_dir / run_id

    def task_worktree(self, run_id: str, task_id: str) -> Path:
        return self.worktrees_dir / run_id / task_id
