"""CODEX_HOME for the agent: the user's own, or one per run written from codex.config."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codex_orch.errors import InputError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # with fullmatch: "$" would let "key\n" through


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, where) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v, where)}" for k, v in value.items()) + " }"
    raise InputError(f"{where}: value {value!r} cannot be written as TOML")


def to_toml(data: Mapping[str, Any], where: str = "codex.config") -> str:
    """A small TOML writer: scalars and lists first, then one [table] per nested mapping."""
    lines: list[str] = []

    def table(prefix: list[str], body: Mapping[str, Any]) -> None:
        scalars = [(k, v) for k, v in body.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in body.items() if isinstance(v, Mapping)]
        if prefix and (scalars or not tables):
            lines.append(f"[{'.'.join(_key(p) for p in prefix)}]")
        for key, value in scalars:
            lines.append(f"{_key(key)} = {_value(value, where + '.' + '.'.join([*prefix, key]))}")
        if scalars:
            lines.append("")
        for key, value in tables:
            table([*prefix, key], value)

    table([], data)
    return "\n".join(lines).rstrip() + "\n"


def prepare_isolated_home(home: Path, settings: Mapping[str, Any]) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(to_toml(settings), "utf-8")
    return home
