"""What a task's commit holds, against what its agent said it changed; and the tokens (and cost) of
each attempt, against its thread's.

An agent that says it changed files that are not in its commit (it wrote them somewhere codex-orch does not
commit, or not at all), or that says nothing while its commit changes files, has an answer that cannot be
taken at its word: the task is flagged in the status table, the report and --json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codex_orch.agents.base import AgentResult, Usage


def answer_files(value: Any) -> list[str] | None:
    """The files an answer says it changed; None when its role's answer has no such list."""
    if not isinstance(value, dict) or not isinstance(value.get("files_changed"), list):
        return None
    return [f for f in value["files_changed"] if isinstance(f, str)]


def _normal(path: str, worktree: Path) -> str:
    """A path as the agent may write it (absolute in the worktree, `./x`, `a//b`) as git names it."""
    text = path.strip()
    if text.startswith("/"):
        try:
            text = str(Path(text).relative_to(worktree))
        except ValueError:
            return text
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return "/".join(parts)


def file_claims(claimed: Sequence[str] | None, committed: Sequence[str], worktree: Path) -> dict[str, Any] | None:
    """What does not add up between the answer's list and the commit, or None when it does.

    `not_in_commit`: files the answer lists that the commit does not change; `listed_none`: the commit
    changes files while the answer lists none. A folder the answer lists covers the files under it."""
    if claimed is None:
        return None
    in_commit = set(committed)
    missing = []
    for raw in claimed:
        path = _normal(raw, worktree)
        if path and path not in in_commit and not any(c.startswith(path.rstrip("/") + "/") for c in in_commit):
            missing.append(raw)
    listed_none = not claimed and bool(committed)
    if not missing and not listed_none:
        return None
    return {"not_in_commit": missing[:100], "listed_none": listed_none}


def describe(claims: Mapping[str, Any]) -> str:
    if claims.get("listed_none"):
        return "its answer lists no files, but its commit changes some"
    missing = claims.get("not_in_commit") or []
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return f"its answer lists files its commit does not hold: {shown}"


def thread_totals(attempts: list[dict[str, Any]], thread: str | None) -> tuple[Usage, float | None]:
    """What the thread had used, as its last attempt recorded it (nothing for a new thread)."""
    if not thread:
        return Usage(), None
    for attempt in reversed(attempts):
        if attempt.get("thread_id") == thread and attempt.get("thread_usage"):
            return Usage.from_json(attempt["thread_usage"]), attempt.get("thread_cost_usd")
    return Usage(), None


def totals_after(
    result: AgentResult, thread: str | None, totals: tuple[Usage, float | None]
) -> tuple[Usage, float | None]:
    """The thread's usage and cost after this attempt. codex reports usage over the whole thread, claude
    and gemini over the attempt only; claude's cost is over the whole session."""
    same = thread is not None and result.thread_id == thread
    usage = totals[0] + result.usage if same and not result.usage_cumulative else result.usage
    return usage, result.cost_usd


def thread_after(
    result: AgentResult, thread: str | None, totals: tuple[Usage, float | None]
) -> tuple[str | None, tuple[Usage, float | None]]:
    """The thread the next attempt goes on with, and its totals so far: this attempt's thread, or (when
    it reported none) the same as before."""
    if not result.thread_id:
        return thread, totals
    return result.thread_id, totals_after(result, thread, totals)


def attempt_share(
    result: AgentResult, thread: str | None, totals: tuple[Usage, float | None]
) -> tuple[Usage, float | None]:
    """This attempt's own usage and cost."""
    same = thread is not None and result.thread_id == thread
    usage = result.usage - totals[0] if same and result.usage_cumulative else result.usage
    cost = result.cost_usd
    if cost is not None and same and totals[1] is not None:
        cost = round(max(0.0, cost - totals[1]), 9)
    return usage, cost
