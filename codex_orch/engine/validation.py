"""The agent's final answer: parsed under the limits for untrusted JSON, checked against the role's
schema, and the retry prompt."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codex_orch.failures import FailureKind
from codex_orch.schema_check import schema_errors
from codex_orch.untrusted import JsonLimits, UntrustedValue, clean_text, parse_json

MAX_QUOTED_ERRORS = 20
MAX_ERROR_CHARS = 500  # one validator error, as stored and quoted (jsonschema quotes the whole value)
# What an answer may be: a strict-schema answer is a few levels deep and a few kilobytes long.
ANSWER_LIMITS = JsonLimits(max_bytes=1024 * 1024, max_depth=64, allow_nul=False)


@dataclass(frozen=True)
class Verdict:
    value: Any | None
    failure: FailureKind | None
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.failure is None


def _strip_fence(text: str) -> str:
    """Models sometimes wrap JSON in a ```json fence; accept exactly that and nothing looser."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        body = stripped[3:-3]
        first_newline = body.find("\n")
        if first_newline >= 0 and body[:first_newline].strip() in ("", "json"):
            return body[first_newline + 1 :]
    return stripped


def judge(final_message: str | None, schema: dict[str, Any]) -> Verdict:
    if not final_message or not final_message.strip():
        return Verdict(None, FailureKind.EMPTY_ANSWER, ("the final message was empty",))
    try:
        value = parse_json(_strip_fence(final_message), ANSWER_LIMITS)
    except UntrustedValue as exc:
        return Verdict(None, FailureKind.ANSWER_UNSAFE, (str(exc),))
    except json.JSONDecodeError as exc:
        return Verdict(None, FailureKind.NOT_JSON, (f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",))
    problems = schema_errors(value, schema)
    if problems:
        errors = tuple(clean_text(f"{place}: {msg}", MAX_ERROR_CHARS) for place, msg in problems)
        return Verdict(value, FailureKind.SCHEMA_INVALID, errors)
    return Verdict(value, None, ())


def checked(verdict: Verdict, problems: Sequence[str]) -> Verdict:
    """A schema-valid verdict after the role's own checks of the answer: still ok, or answer_invalid."""
    if not verdict.ok or not problems:
        return verdict
    return Verdict(verdict.value, FailureKind.ANSWER_INVALID, tuple(clean_text(p, MAX_ERROR_CHARS) for p in problems))


def retry_prompt(verdict: Verdict, schema_name: str) -> str:
    quoted = "\n".join(f"- {error}" for error in verdict.errors[:MAX_QUOTED_ERRORS])
    more = len(verdict.errors) - MAX_QUOTED_ERRORS
    if more > 0:
        quoted += f"\n- … and {more} more"
    if verdict.failure == FailureKind.SECRET:
        return (
            "codex-orch did not commit your work: it holds secrets, which must never be committed.\n\n"
            f"Found at:\n{quoted}\n\n"
            "Remove each one (read credentials from the environment when the code runs instead of writing them "
            "into files, and keep them out of your answer), then reply with the JSON object the output schema "
            f"({schema_name}) asks for, as before."
        )
    if verdict.failure == FailureKind.ANSWER_INVALID:
        return (
            f"Your final message conforms to the output schema ({schema_name}) but could not be accepted.\n\n"
            f"codex-orch's checks reported:\n{quoted}\n\n"
            "Fix these problems. Do not redo the work unless it is incomplete. Reply with the corrected JSON "
            "object only."
        )
    return (
        "Your final message could not be accepted: it must be one JSON object that conforms to the output "
        f"schema ({schema_name}), with no text around it.\n\n"
        f"The validator reported:\n{quoted}\n\n"
        "Do not redo the work unless it is incomplete. Reply with the corrected JSON object only."
    )
