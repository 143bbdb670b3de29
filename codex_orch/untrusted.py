"""JSON from an agent is untrusted data: parsed under limits, so that nothing it holds can crash codex-orch
or poison what codex-orch writes (state, journal, report, commits, argv).

`parse_json` accepts exactly what a careful JSON producer emits — what codex's own serde_json can
produce — and refuses the rest with one line saying what was wrong and where:
- size: at most `max_bytes` of UTF-8;
- depth: at most `max_depth` nested arrays/objects (serde_json itself stops at 128);
- numbers: integers within int64, floats finite (no `1e400`, no `NaN`/`Infinity`, which Python's
  json module would accept and then write back as invalid JSON);
- Unicode: no lone surrogate (`"\\ud800"` parses into a string no UTF-8 writer can encode), and,
  where asked, no U+0000 (git and argv cannot carry it).
Anything that is not JSON at all raises ValueError (json.JSONDecodeError, UnicodeDecodeError); a
violation of the limits raises `UntrustedValue`, which is not a JSONDecodeError.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from codex_orch.schema_check import format_path

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_DIGITS = len(str(INT_MAX))  # a longer literal is out of range before it is converted


class UntrustedValue(ValueError):
    """A JSON value codex-orch refuses to take from an agent; the message says what and where."""


@dataclass(frozen=True)
class JsonLimits:
    max_bytes: int
    max_depth: int
    allow_nul: bool = True


@dataclass(frozen=True)
class _Refused:
    """A number the parser met and refused; reported with its place once the value is walked."""

    problem: str


def short(value: object, limit: int = 40) -> str:
    """A value as it may be quoted in a message: a repr (surrogates and controls escaped), shortened."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _int(literal: str) -> int | _Refused:
    digits = literal.lstrip("-")
    if len(digits) > _INT_DIGITS or not INT_MIN <= int(literal) <= INT_MAX:
        shown = literal if len(literal) <= 24 else f"{literal[:12]}…, {len(digits)} digits"
        return _Refused(f"number out of range ({shown}; integers must fit in 64 bits)")
    return int(literal)


def _float(literal: str) -> float | _Refused:
    value = float(literal)
    return value if math.isfinite(value) else _Refused(f"number out of range ({literal[:24]})")


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a JSON number")


def parse_json(data: str | bytes, limits: JsonLimits) -> Any:
    """The value of `data` (a str, or UTF-8 bytes), checked against `limits`; see the module docstring."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise UntrustedValue(f"larger than {limits.max_bytes:,} bytes ({size:,})")
    try:
        value = json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise UntrustedValue(f"nested deeper than {limits.max_depth} levels") from None
    check_value(value, limits)
    return value


def _nodes(value: Any) -> Iterator[tuple[Any, tuple[str | int, ...], bool]]:
    """Every node with its path, keys included, walked without recursion (depth is what is checked)."""
    stack: list[tuple[Any, tuple[str | int, ...], bool]] = [(value, (), False)]
    while stack:
        node, path, is_key = stack.pop()
        yield node, path, is_key
        if isinstance(node, dict):
            for key, child in node.items():
                stack.append((key, (*path, key), True))
                stack.append((child, (*path, key), False))
        elif isinstance(node, list):
            stack.extend((child, (*path, i), False) for i, child in enumerate(node))


def check_value(value: Any, limits: JsonLimits) -> None:
    """Depth, numbers and strings of a value parsed by `parse_json`; the first problem, with its place."""
    for node, path, is_key in _nodes(value):
        if len(path) > limits.max_depth:
            raise UntrustedValue(f"nested deeper than {limits.max_depth} levels")
        if isinstance(node, _Refused):
            raise UntrustedValue(f"{format_path(path)}: {node.problem}")
        if isinstance(node, str):
            what = "a key" if is_key else "the string"
            if _SURROGATE.search(node):
                raise UntrustedValue(f"{format_path(path)}: {what} holds a lone surrogate (invalid Unicode)")
            if not limits.allow_nul and "\0" in node:
                raise UntrustedValue(f"{format_path(path)}: {what} holds a NUL character (U+0000)")


def clean_text(text: str, limit: int) -> str:
    """Text of uncertain origin made safe to store and print: lone surrogates replaced, at most `limit`
    characters (an exception's message, an agent's error message)."""
    text = _SURROGATE.sub("\ufffd", text)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
