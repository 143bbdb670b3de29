"""JSON Schema checks whose errors name the file and the place, on one line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from codex_orch.errors import InputError


def format_path(parts: Iterable[Any]) -> str:
    """`["tasks", 3, "blocked_by", 0]` -> `tasks[3].blocked_by[0]`; the empty path is `(top level)`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def schema_errors(instance: Any, schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Every violation as (place, message), most specific first, in a stable order."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    result = []
    for error in errors:
        place = format_path(error.absolute_path)
        message = error.message
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            message = f"unknown key {', '.join(repr(k) for k in extra)}"
            allowed = sorted(error.schema.get("properties", {}))
            if allowed:
                message += f" (known: {', '.join(allowed)})"
        result.append((place, message))
    return result


def check(instance: Any, schema: dict[str, Any], label: str) -> None:
    """Raise InputError `label: place: message` for the first violation."""
    errors = schema_errors(instance, schema)
    if errors:
        place, message = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(f"{label}: {place}: {message}{more}")


def strict_problems(schema: Any, where: str = "$") -> list[str]:
    """Why a JSON schema is not accepted in OpenAI strict mode (which codex's --output-schema uses):
    every object must say `additionalProperties: false` and list every property in `required`."""
    if not isinstance(schema, dict):
        return []
    problems = []
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties must be false")
        required = set(schema.get("required", []))
        missing, unknown = sorted(set(props) - required), sorted(required - set(props))
        if missing:
            problems.append(f"{where}: required must list every property (missing: {', '.join(missing)})")
        if unknown:
            problems.append(f"{where}: required names properties that are not defined: {', '.join(unknown)}")
        for name, sub in props.items():
            problems += strict_problems(sub, f"{where}.{name}")
    if "array" in types and "items" in schema:
        problems += strict_problems(schema["items"], f"{where}[]")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key, [])):
            problems += strict_problems(sub, f"{where}.{key}[{i}]")
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            problems += strict_problems(sub, f"{where}.{key}.{name}")
    return problems
