"""The `agents` section of orchestrator.yaml: the run's default agent, the fallback order, and the
settings of each backend besides codex (whose own section, `codex`, predates it and stays)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_orch.agent_registry import AGENTS, unknown_agent
from codex_orch.errors import InputError

_NAME = {"type": "string", "minLength": 1}
_OPT_STR = {"type": ["string", "null"]}

# What a backend other than codex takes: its command, arguments, environment, home and model.
_BACKEND_PROPERTIES: dict[str, Any] = {
    "command": {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
        ]
    },
    "extra_args": {"type": "array", "items": {"type": "string"}},
    "env": {"type": "object", "additionalProperties": {"type": "string"}},
    "home": {"type": "string", "minLength": 1},
    "settings": {"type": "object"},
    "model": _OPT_STR,
}
_MAX_TURNS = {"type": ["integer", "null"], "minimum": 1}  # claude's --max-turns; gemini has no such flag

AGENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "default": _NAME,
        "fallback": {"type": "array", "items": _NAME},
        "claude": {
            "type": "object",
            "additionalProperties": False,
            "properties": {**_BACKEND_PROPERTIES, "max_turns": _MAX_TURNS},
        },
        "gemini": {"type": "object", "additionalProperties": False, "properties": _BACKEND_PROPERTIES},
    },
}


@dataclass(frozen=True)
class BackendConfig:
    """A backend's settings (`agents.<name>`); for codex, taken from the `codex` section."""

    command: tuple[str, ...]
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    home: str = "inherit"  # inherit | isolated | an absolute path
    settings: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    max_turns: int | None = None


@dataclass(frozen=True)
class AgentsConfig:
    default: str | None = None
    fallback: tuple[str, ...] = ()
    backends: Mapping[str, BackendConfig] = field(default_factory=dict)

    def backend(self, name: str) -> BackendConfig:
        return self.backends[name]


def build_agents(raw: Mapping[str, Any], codex: Mapping[str, Any], source: str) -> AgentsConfig:
    """The checked `agents` section (its shape was checked by the schema; names and homes here)."""
    default = raw.get("default")
    if default is not None:
        problem = unknown_agent(default)
        if problem:
            raise InputError(f"{source}: agents.default: {problem}")
    fallback = tuple(raw.get("fallback") or ())
    for index, name in enumerate(fallback):
        problem = unknown_agent(name)
        if problem:
            raise InputError(f"{source}: agents.fallback[{index}]: {problem}")
        if name in fallback[:index]:
            raise InputError(f"{source}: agents.fallback[{index}]: {name!r} is already in the list")
    command = codex["command"]
    backends = {
        "codex": BackendConfig(
            command=(command,) if isinstance(command, str) else tuple(command),
            extra_args=tuple(codex.get("extra_args") or ()),
            env=dict(codex.get("env") or {}),
            home=codex["home"],
        )
    }
    for name, spec in AGENTS.items():
        if name == "codex":
            continue
        section = raw.get(name) or {}
        home = section.get("home", "inherit")
        if home not in ("inherit", "isolated") and not Path(home).is_absolute():
            raise InputError(
                f"{source}: agents.{name}.home: must be 'inherit', 'isolated' or an absolute path, not {home!r}"
            )
        program = section.get("command", spec.program)
        backends[name] = BackendConfig(
            command=(program,) if isinstance(program, str) else tuple(program),
            extra_args=tuple(section.get("extra_args") or ()),
            env=dict(section.get("env") or {}),
            home=home,
            settings=dict(section.get("settings") or {}),
            model=section.get("model"),
            max_turns=section.get("max_turns"),
        )
    return AgentsConfig(default=default, fallback=fallback, backends=backends)
