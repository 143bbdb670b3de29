"""Agent backends: a Protocol and a registry (only codex for now)."""

from __future__ import annotations

from codex_orch.agents.base import AgentBackend, AgentResult, AttemptRequest, Usage

__all__ = ["AgentBackend", "AgentResult", "AttemptRequest", "Usage", "get_backend"]


def get_backend(name: str) -> AgentBackend:
    if name == "codex":
        from codex_orch.agents.codex import CodexBackend

        return CodexBackend()
    raise KeyError(name)
