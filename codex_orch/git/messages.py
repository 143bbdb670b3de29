"""What codex-orch writes into a task's commit: the message with its provenance trailers, and the
entry the task's decisions add to docs/ai/decisions.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def commit_message(
    run_id: str, task: Mapping[str, Any], attempt: int, thread_id: str | None, summary: str, agent: str = "codex"
) -> str:
    """The commit's message with its provenance trailers: codex's thread as `Codex-Thread: ID`, another
    agent's as `Agent-Thread: AGENT:ID` (docs/agents.md)."""
    first = " ".join(summary.split())[:72] or "no summary"
    body = summary.strip()
    lines = [f"{task['id']} ({task['role']}): {first}", ""]
    if body and body != first:
        lines += [body, ""]
    lines += [
        f"Orch-Run: {run_id}",
        f"Orch-Task: {task['id']}",
        f"Orch-Role: {task['role']}",
        f"Orch-Attempt: {attempt}",
        f"Codex-Thread: {thread_id or 'none'}" if agent == "codex" else f"Agent-Thread: {agent}:{thread_id or 'none'}",
    ]
    return "\n".join(lines) + "\n"


def decisions_entry(run_id: str, task_id: str, role: str, decisions: Sequence[Mapping[str, Any]], date: str) -> str:
    lines = [f"## {date} · run {run_id} · {task_id} ({role})", ""]
    for item in decisions:
        decision = " ".join(str(item.get("decision", "")).split())
        rationale = " ".join(str(item.get("rationale", "")).split())
        lines.append(f"- **{decision}**" + (f" — {rationale}" if rationale else ""))
    return "\n".join(lines) + "\n\n"
