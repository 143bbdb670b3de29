"""The agent backends codex-orch knows: the one registry that the plan loader, the config, the CLI and
`agents.get_backend` all ask, and the rule that picks a task's agent.

A backend is a name, the module and class that drive its CLI (in `codex_orch/agents/`, imported only
when a task runs on it), the program it starts by default and where that program comes from. Adding a
backend is one entry here, one module there, and its settings in agent_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentSpec:
    name: str
    module: str  # under codex_orch.agents
    cls: str
    program: str  # the command when the config names none
    install: str  # how a user gets the program


AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec("codex", "codex", "CodexBackend", "codex", "npm i -g @openai/codex"),
        AgentSpec("claude", "claude", "ClaudeBackend", "claude", "npm i -g @anthropic-ai/claude-code"),
        AgentSpec("gemini", "gemini", "GeminiBackend", "gemini", "npm i -g @google/gemini-cli"),
    )
}

DEFAULT_AGENT = "codex"


def agent_names() -> tuple[str, ...]:
    return tuple(AGENTS)


def unknown_agent(name: str) -> str | None:
    """Why `name` is not an agent (one line listing the known ones), or None."""
    if name in AGENTS:
        return None
    return f"unknown agent {name!r}. Known: {', '.join(AGENTS)}."


@dataclass(frozen=True)
class AgentChoice:
    """The agent of a task, and where the choice came from (for status, report and plan --check)."""

    name: str
    source: str  # "task", "--agent", "roles.<role>.agent", "agents.default", "default"


def choose_agent(
    task_agent: str | None, run_agent: str | None, role_agent: str | None, role: str, config_default: str | None
) -> AgentChoice:
    """The plan's own choice for the task first, then the run's --agent, the role's default, the
    config's default, codex. The command line overrides the config, as everywhere; the task is the
    most specific choice of all."""
    for name, source in (
        (task_agent, "task"),
        (run_agent, "--agent"),
        (role_agent, f"roles.{role}.agent"),
        (config_default, "agents.default"),
    ):
        if name:
            return AgentChoice(name, source)
    return AgentChoice(DEFAULT_AGENT, "default")
