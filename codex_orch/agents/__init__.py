"""Agent backends: a Protocol (base.py) and, for each name of the registry (agent_registry.py), the
module that drives that agent's CLI, imported when a task first runs on it."""

from __future__ import annotations

import importlib
from typing import cast

from codex_orch.agent_registry import AGENTS, unknown_agent
from codex_orch.agents.base import AgentBackend, AgentResult, AttemptRequest, Usage
from codex_orch.errors import InputError

__all__ = ["AgentBackend", "AgentResult", "AttemptRequest", "Usage", "get_backend"]


def get_backend(name: str) -> AgentBackend:
    """The backend registered as `name`; an unknown name is an InputError listing the known ones."""
    problem = unknown_agent(name)
    if problem:
        raise InputError(problem)
    spec = AGENTS[name]
    module = importlib.import_module(f"{__name__}.{spec.module}")
    return cast(AgentBackend, getattr(module, spec.cls)())
