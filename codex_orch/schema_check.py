"""JSON Schema checks whose errors name the file and the place, one line each, every one of them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from codex_orch.errors import InputProblems


def format_path(parts: Iterable[Any]) -> str:
    """`["tasks", 3, "blocked_by", 0]` -> `tasks[3].blocked_by[0]`; the empty path is `(top level)`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


# The longest duration codex-orch accepts (about 31 years): longer waits overflow the clocks of
# threading and select (threading.TIMEOUT_MAX is ~292 years on Linux, less elsewhere).
MAX_SECONDS = 1e9
# A positive number of seconds; NaN and infinities are refused by `schema_errors` for every number.
SECONDS: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS}
_MAX_MESSAGE = 300
MISSING = "a required property is missing"


def did_you_mean(key: str, known: Iterable[str]) -> str | None:
    """The known key that `key` most likely misspells, or None. Letter case is ignored; two swapped
    letters or a close match (difflib ratio >= 0.82) count: `gaol`, `blockedBy`, `promt`, `acceptence`,
    `path` are misspellings; `ids`, `notes`, `title`, `acceptance_criteria` are not."""
    import difflib

    by_lower = {name.lower(): name for name in known}
    lower = key.lower()
    swapped = {lower[:i] + lower[i + 1] + lower[i] + lower[i + 2 :] for i in range(len(lower) - 1)}
    transposed = sorted(swapped & by_lower.keys())  # two letters swapped (`gaol`): difflib rates them low
    if transposed:
        return by_lower[transposed[0]]
    matches = difflib.get_close_matches(lower, list(by_lower), n=1, cutoff=0.82)
    return by_lower[matches[0]] if matches else None


def unknown_key_message(key: str, known: Iterable[str]) -> str:
    known = sorted(known)
    guess = did_you_mean(key, known)
    if guess is not None:
        return f"unknown key {key!r}; did you mean {guess!r}?"
    return f"unknown key {key!r}" + (f" (known: {', '.join(known)})" if known else "")


def schema_errors(instance: Any, schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Every violation as (place, message), ordered by place. A missing property is reported at its
    own place; an unknown key names the known key it most likely misspells, and the missing key it
    stands for is then not reported twice. Every number that is NaN or infinite is a violation too
    (JSON Schema's comparisons let NaN through)."""
    from jsonschema import Draft202012Validator

    nonfinite = nonfinite_numbers(instance)
    found: list[tuple[tuple[Any, ...], str]] = [
        (place, f"{value} is not a finite number") for place, value in nonfinite
    ]
    guessed: set[tuple[Any, ...]] = set()
    missing: list[tuple[Any, ...]] = []
    explained = {place for place, _ in nonfinite}  # NaN is not also "greater than the maximum"
    for error in Draft202012Validator(schema).iter_errors(instance):
        path = tuple(error.absolute_path)
        if path in explained:
            continue
        if error.validator in ("anyOf", "oneOf") and any(place[: len(path)] == path for place in explained):
            continue  # no branch fits because of the NaN inside: said once, at the NaN
        if error.validator == "required" and isinstance(error.instance, dict):
            missing += [(*path, name) for name in error.validator_value if name not in error.instance]
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            for key in error.instance:
                if key not in known:
                    found.append((path, unknown_key_message(key, known)))
                    guess = did_you_mean(key, known)
                    if guess is not None:
                        guessed.add((*path, guess))
        else:
            message = error.message
            found.append((path, message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE] + "…"))
    found += [(place, MISSING) for place in missing if place not in guessed]
    ordered = sorted(dict.fromkeys(found), key=lambda item: (_place_order(item[0]), item[1]))
    return [(format_path(place), message) for place, message in ordered]


def _place_order(place: tuple[Any, ...]) -> list[tuple[int, Any]]:
    return [(0, part) if isinstance(part, int) else (1, str(part)) for part in place]


def nonfinite_numbers(value: Any) -> list[tuple[tuple[Any, ...], float]]:
    """Where NaN, Infinity or -Infinity occurs in a JSON-like value (iteratively: any depth)."""
    found = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            found.append((path, item))
        elif isinstance(item, dict):
            stack += [((*path, key), child) for key, child in item.items()]
        elif isinstance(item, list):
            stack += [((*path, index), child) for index, child in enumerate(item)]
    return found


def check(instance: Any, schema: dict[str, Any], label: str) -> None:
    """Raise InputProblems listing every violation, each `label: place: message`."""
    errors = schema_errors(instance, schema)
    if errors:
        raise InputProblems([f"{label}: {place}: {message}" for place, message in errors])


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
