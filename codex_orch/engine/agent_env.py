"""What the agent process gets: its command (found before anything is written), its environment, its
home (CODEX_HOME, CLAUDE_CONFIG_DIR, GEMINI_CLI_HOME), and the redactor built from the secrets it
could see. One `AgentSetup` per backend a run uses."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from codex_orch.agent_registry import AGENTS
from codex_orch.config import Config
from codex_orch.errors import InputError
from codex_orch.git.environment import without_git_vars
from codex_orch.redaction import Redactor

# The variable that points each agent CLI at its home (settings, login, sessions).
HOME_VARIABLES = {"codex": "CODEX_HOME", "claude": "CLAUDE_CONFIG_DIR", "gemini": "GEMINI_CLI_HOME"}


def command_key(agent: str) -> str:
    return "codex.command" if agent == "codex" else f"agents.{agent}.command"


def resolve_command(config: Config, root: Path, agent: str = "codex") -> tuple[str, ...]:
    """The agent's command (codex.command, agents.<name>.command) with its program found: on PATH, or a
    path relative to the repository."""
    program, *rest = config.agents.backend(agent).command
    key, install = command_key(agent), AGENTS[agent].install
    if "/" in program:
        path = Path(program) if Path(program).is_absolute() else root / program
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InputError(
                f"{config.source}: {key}: {program!r} is not an executable file",
                f"Install {agent} ({install}) or fix the path.",
            )
        return (str(path), *rest)
    if shutil.which(program) is None:
        raise InputError(
            f"{config.source}: {key}: {program!r} was not found on PATH.",
            f"Install {agent} ({install}) or set {key} in orchestrator.yaml.",
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
    if env.get("CODEX_HOME"):
        temp_dir_apart(env, Path(env["CODEX_HOME"]))
    if worktrees is not None:
        env["GIT_CEILING_DIRECTORIES"] = str(worktrees)
    return env


def temp_dir_apart(env: dict[str, str], codex_home: Path) -> None:
    """Where the system has bubblewrap, codex (0.169) will not put its sandbox helper in a CODEX_HOME
    that lies inside its temp dir (TMPDIR, else /tmp), and then runs no command at all ("bwrap: execvp
    codex-linux-sandbox: No such file or directory"). A home inside the temp dir (a repository under
    /tmp with `codex.home: isolated`) gets a temp dir of its own beside it."""
    temp = Path(env.get("TMPDIR") or "/tmp").resolve()
    if codex_home.resolve().is_relative_to(temp):
        own = codex_home.parent / f"{codex_home.name}-tmp"
        own.mkdir(mode=0o700, parents=True, exist_ok=True)
        env["TMPDIR"] = str(own)


def redactor_for(config: Config) -> Redactor:
    secrets: dict[str, str] = dict(os.environ)
    for backend in config.agents.backends.values():
        secrets.update(backend.env)
    return Redactor({**secrets, **config.codex.env})


def codex_home_for(config: Config, run_dir: Path) -> Path | None:
    return home_for(config, "codex", run_dir)


def home_for(config: Config, agent: str, run_dir: Path) -> Path | None:
    """The agent's home for a run: None (the user's own), runs/<id>/<agent>-home, or the configured path."""
    home = config.agents.backend(agent).home
    if home == "inherit":
        return None
    if home == "isolated":
        return run_dir / f"{agent}-home"
    return Path(home)


@dataclass(frozen=True)
class AgentSetup:
    """How one backend is started in this run."""

    command: tuple[str, ...]
    env: Mapping[str, str]
    extra_args: tuple[str, ...] = ()
    model: str | None = None  # agents.<name>.model: the model when neither the task nor its role names one
    max_turns: int | None = None


class AgentSetups:
    """The setup of each backend, made when a task first needs it (its command was checked before the
    run started, for every agent its plan names; a follow-up task may need another)."""

    def __init__(
        self, config: Config, root: Path, homes: Mapping[str, str | None], worktrees: Path, codex_env: Mapping[str, str]
    ) -> None:
        self.config, self.root, self.homes, self.worktrees = config, root, homes, worktrees
        self.codex_env = codex_env
        self._made: dict[str, AgentSetup] = {}
        self._lock = threading.Lock()

    def get(self, agent: str) -> AgentSetup:
        with self._lock:
            if agent not in self._made:
                self._made[agent] = self._make(agent)
            return self._made[agent]

    def _make(self, agent: str) -> AgentSetup:
        backend = self.config.agents.backend(agent)
        command = resolve_command(self.config, self.root, agent)
        if agent == "codex":
            return AgentSetup(command, self.codex_env, self.config.codex.extra_args)
        env = without_git_vars(os.environ)
        env.update(backend.env)
        home = self.homes.get(agent)
        if home:
            env[HOME_VARIABLES[agent]] = home
        env["GIT_CEILING_DIRECTORIES"] = str(self.worktrees)
        return AgentSetup(command, env, backend.extra_args, backend.model, backend.max_turns)
