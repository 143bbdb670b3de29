"""What the agent process gets: its command (found before anything is written), its environment, its
CODEX_HOME, and the redactor built from the secrets it could see."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from codex_orch.config import Config
from codex_orch.errors import InputError
from codex_orch.git.environment import without_git_vars
from codex_orch.redaction import Redactor


def resolve_command(config: Config, root: Path) -> tuple[str, ...]:
    """codex.command with its program found: on PATH, or a path relative to the repository."""
    program, *rest = config.codex.command
    if "/" in program:
        path = Path(program) if Path(program).is_absolute() else root / program
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InputError(
                f"{config.source}: codex.command: {program!r} is not an executable file",
                "Install codex (npm i -g @openai/codex) or fix the path.",
            )
        return (str(path), *rest)
    if shutil.which(program) is None:
        raise InputError(
            f"{config.source}: codex.command: {program!r} was not found on PATH.",
            "Install codex (npm i -g @openai/codex) or set codex.command in orchestrator.yaml.",
        )
    return (program, *rest)


def agent_env(config: Config, codex_home: Path | None, worktrees: Path | None = None) -> dict[str, str]:
    """The agent's environment: ours without GIT_* variables that point git elsewhere, plus codex.env.

    With `worktrees` (the folder the run's worktrees are in), git run by the agent stops looking for a
    repository there: a worktree whose .git file is gone is no repository at all, instead of the
    user's checkout around it (which its commits would otherwise land in)."""
    env = without_git_vars(os.environ)
    env.update(config.codex.env)
    if codex_home is not None:
        env["CODEX_HOME"] = str(codex_home)
    if worktrees is not None:
        env["GIT_CEILING_DIRECTORIES"] = str(worktrees)
    return env


def redactor_for(config: Config) -> Redactor:
    return Redactor({**os.environ, **config.codex.env})


def codex_home_for(config: Config, run_dir: Path) -> Path | None:
    if config.codex.home == "inherit":
        return None
    if config.codex.home == "isolated":
        return run_dir / "codex-home"
    return Path(config.codex.home)
