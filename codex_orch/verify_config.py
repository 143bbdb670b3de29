"""The verification sections of orchestrator.yaml: `worktree` (setup commands and files copied into each
new worktree) and `gates` (commands a task's answer must pass before its commit), with their schema."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codex_orch.errors import InputError
from codex_orch.layout import ID_RE
from codex_orch.schema_check import SECONDS

GATE_SANDBOXES = ("workspace-write", "none")
DEFAULT_GATE_TIMEOUT = 900.0
DEFAULT_SETUP_TIMEOUT = 900.0

_COMMAND: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ]
}

WORKTREE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "setup": {"type": "array", "items": _COMMAND},
        "copy_files": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "setup_timeout": SECONDS,
    },
}

GATES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "run"],
        "properties": {
            "name": {"type": "string", "pattern": f"^{ID_RE.pattern}\\Z"},
            "run": _COMMAND,
            "timeout": SECONDS,
            "roles": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "sandbox": {"enum": list(GATE_SANDBOXES)},
        },
    },
}


@dataclass(frozen=True)
class WorktreeSetup:
    commands: tuple[tuple[str, ...], ...] = ()
    copy_files: tuple[str, ...] = ()
    timeout: float = DEFAULT_SETUP_TIMEOUT

    @property
    def active(self) -> bool:
        return bool(self.commands or self.copy_files)


@dataclass(frozen=True)
class GateConfig:
    name: str
    argv: tuple[str, ...]
    timeout: float = DEFAULT_GATE_TIMEOUT
    roles: tuple[str, ...] | None = None  # None: every role that writes (not read-only)
    sandbox: str = "workspace-write"  # or "none"


def split_command(command: str | Sequence[str], where: str) -> tuple[str, ...]:
    """A command: a string split like a shell would (no shell runs it), or a list of arguments."""
    if not isinstance(command, str):
        return tuple(command)
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise InputError(f"{where}: cannot split {command!r}: {exc}") from None
    if not argv:
        raise InputError(f"{where}: no command in {command!r}")
    return argv


def build_worktree(section: Mapping[str, Any], source: str) -> WorktreeSetup:
    commands = tuple(
        split_command(item, f"{source}: worktree.setup[{i}]") for i, item in enumerate(section.get("setup") or ())
    )
    return WorktreeSetup(
        commands=commands,
        copy_files=tuple(section.get("copy_files") or ()),
        timeout=float(section.get("setup_timeout", DEFAULT_SETUP_TIMEOUT)),
    )


def build_gates(items: Sequence[Mapping[str, Any]], roles: Sequence[str], source: str) -> tuple[GateConfig, ...]:
    gates: list[GateConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"{source}: gates[{i}]"
        name = item["name"]
        if name in seen:
            raise InputError(f"{where}.name: duplicate gate {name!r} (also gates[{seen[name]}])")
        seen[name] = i
        wanted = item.get("roles")
        for j, role in enumerate(wanted or ()):
            if role not in roles:
                raise InputError(f"{where}.roles[{j}]: unknown role {role!r}. Valid roles: {', '.join(sorted(roles))}.")
        gates.append(
            GateConfig(
                name=name,
                argv=split_command(item["run"], f"{where}.run"),
                timeout=float(item.get("timeout", DEFAULT_GATE_TIMEOUT)),
                roles=tuple(wanted) if wanted is not None else None,
                sandbox=str(item.get("sandbox", "workspace-write")),
            )
        )
    return tuple(gates)


def gates_for(
    gates: Sequence[GateConfig], role: str, sandbox: str, listed: Sequence[str] | None
) -> tuple[GateConfig, ...]:
    """The gates a task's answer must pass: those it lists (in the config's order), or by default every
    gate for its role (a gate without `roles`: every role whose agent may write)."""
    if listed is not None:
        return tuple(g for g in gates if g.name in listed)
    if not gates:
        return ()
    return tuple(g for g in gates if (role in g.roles if g.roles is not None else sandbox != "read-only"))
