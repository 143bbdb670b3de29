"""Every way an agent attempt can fail, in one table: what it is, whether to retry, what to do."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    TIMEOUT = "timeout"
    IDLE = "idle"
    CRASHED = "crashed"
    SPAWN_FAILED = "spawn_failed"
    TURN_FAILED = "turn_failed"
    TRANSPORT = "transport"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    EMPTY_ANSWER = "empty_answer"
    NOT_JSON = "not_json"
    SCHEMA_INVALID = "schema_invalid"
    ANSWER_INVALID = "answer_invalid"
    ANSWER_UNSAFE = "answer_unsafe"
    PROTOCOL = "protocol"
    AGENT_REPORTED = "agent_reported"
    INTERRUPTED = "interrupted"
    WORKSPACE = "workspace"
    PATHS_VIOLATION = "paths_violation"
    GUARDRAIL = "guardrail"
    HIDDEN_WORK = "hidden_work"
    INTERNAL = "internal"
    SECRET = "secret"
    CONFLICT = "conflict"
    MAX_TURNS = "max_turns"
    SETUP_FAILED = "setup_failed"
    GATE_FAILED = "gate_failed"
    BUDGET = "budget"
    INTEGRATION_FAILED = "integration_failed"


class Retry(StrEnum):
    ANSWER = "answer"  # continue the same thread, quoting what was wrong with the answer
    TRANSIENT = "transient"  # try again (on the thread when there is one), up to limits.transient_retries
    NEVER = "never"


@dataclass(frozen=True)
class FailureInfo:
    kind: FailureKind
    retry: Retry
    hint: str


FAILURES: dict[FailureKind, FailureInfo] = {
    info.kind: info
    for info in (
        FailureInfo(
            FailureKind.TIMEOUT,
            Retry.TRANSIENT,
            "The attempt ran past its wall-clock limit; raise limits.timeout or the task's timeout, or split the task.",
        ),
        FailureInfo(
            FailureKind.IDLE,
            Retry.TRANSIENT,
            "No progress (an event other than an error notice or an unreadable line) within the idle limit; the "
            "agent or its model server hung (limits.idle_timeout).",
        ),
        FailureInfo(
            FailureKind.CRASHED, Retry.TRANSIENT, "The agent exited abnormally; see stderr.log in the attempt folder."
        ),
        FailureInfo(
            FailureKind.SPAWN_FAILED,
            Retry.NEVER,
            "The agent could not be started; check codex.command in orchestrator.yaml and that codex is installed.",
        ),
        FailureInfo(
            FailureKind.TURN_FAILED,
            Retry.NEVER,
            "The agent reported that its turn failed; see the message and events.jsonl.",
        ),
        FailureInfo(
            FailureKind.TRANSPORT,
            Retry.TRANSIENT,
            "The model server failed or cut the stream; try again later (limits.transient_retries).",
        ),
        FailureInfo(
            FailureKind.RATE_LIMITED,
            Retry.TRANSIENT,
            "The model provider rate-limited the request. Dispatch to that agent pauses until the reset it named "
            "(else backs off) and the attempt goes on by itself, up to limits.max_quota_wait; lower "
            "limits.max_workers, or resume later.",
        ),
        FailureInfo(
            FailureKind.AUTH,
            Retry.NEVER,
            "The model provider refused the credentials; log in with `codex login` or set the provider's key.",
        ),
        FailureInfo(FailureKind.EMPTY_ANSWER, Retry.ANSWER, "The agent finished without a final message."),
        FailureInfo(FailureKind.NOT_JSON, Retry.ANSWER, "The final message was not JSON."),
        FailureInfo(
            FailureKind.SCHEMA_INVALID,
            Retry.ANSWER,
            "The final message did not conform to the role's output schema (validation.txt lists why).",
        ),
        FailureInfo(
            FailureKind.ANSWER_INVALID,
            Retry.ANSWER,
            "The final message fit the schema but failed the role's own checks (a plan that does not load: "
            "duplicate or unknown ids, a dependency cycle, an unknown role); validation.txt lists why.",
        ),
        FailureInfo(
            FailureKind.ANSWER_UNSAFE,
            Retry.ANSWER,
            "The final message held a value codex-orch does not take from an agent: larger than 1 MiB, nested "
            "deeper than 64 levels, a number beyond 64 bits or not finite, a lone surrogate or a NUL character; "
            "validation.txt says which and where.",
        ),
        FailureInfo(
            FailureKind.PROTOCOL,
            Retry.TRANSIENT,
            "The agent's event stream broke the protocol (an event too deep, a number out of range, invalid "
            "Unicode, a field of the wrong type, a malformed thread id); nothing it said was kept. See events.jsonl.",
        ),
        FailureInfo(
            FailureKind.AGENT_REPORTED,
            Retry.NEVER,
            "The agent itself reported the task blocked or failed; read its summary and risks.",
        ),
        FailureInfo(
            FailureKind.INTERRUPTED,
            Retry.NEVER,
            "The attempt was stopped by Ctrl-C or a crash of codex-orch; `codex-orch resume` continues it.",
        ),
        FailureInfo(
            FailureKind.WORKSPACE,
            Retry.NEVER,
            "The task's worktree could not be prepared or committed; see the message.",
        ),
        FailureInfo(
            FailureKind.PATHS_VIOLATION,
            Retry.NEVER,
            "The agent changed files outside the task's declared paths; they were saved under refs/orch/<run>/violations/<task> and reverted (concurrency.on_violation: fail).",
        ),
        FailureInfo(
            FailureKind.GUARDRAIL,
            Retry.ANSWER,
            "The agent changed what only codex-orch may change (refs, HEAD, the worktree's .git, git's config or hooks), or left a link where codex-orch writes; each change was put back and its version kept (refs/orch/<run>/quarantine/…, the attempt's guardrail/ folder). docs/security.md.",
        ),
        FailureInfo(
            FailureKind.HIDDEN_WORK,
            Retry.ANSWER,
            "The agent's work would not be in its commit: files ignored by a .gitignore it wrote, a nested repository, special or unreadable files (guardrails.on_hidden_work: fail).",
        ),
        FailureInfo(
            FailureKind.INTERNAL,
            Retry.NEVER,
            "codex-orch itself failed while running this task (the message names the exception; the traceback "
            "is in internal-error.log in the task's folder). Other tasks were not affected; `resume` tries again.",
        ),
        FailureInfo(
            FailureKind.CONFLICT,
            Retry.NEVER,
            "The task's work conflicted with what other tasks landed on the run branch, and its agent did not resolve it within limits.conflict_rounds; its commit is on its own branch (docs/usage.md, Worktrees).",
        ),
        FailureInfo(
            FailureKind.SECRET,
            Retry.ANSWER,
            "The task's changes or its commit message held a secret (a value codex-orch redacts, or a "
            "credential detect-secrets knows) at the file and line named; nothing was committed, and the agent "
            "was asked to remove it (limits.retries). Remove it, or let it through with secrets.allow.",
        ),
        FailureInfo(
            FailureKind.INTEGRATION_FAILED,
            Retry.NEVER,
            "The merge queue found that this task's work turns integration.doctor red once merged with the "
            "others' (or does not apply on them); the rest landed without it. Its work stays on its branch; "
            "fix it there, or in a new task, and merge again (docs/usage.md, Merge queue).",
        ),
        FailureInfo(
            FailureKind.MAX_TURNS,
            Retry.NEVER,
            "The agent used every turn it was allowed (agents.claude.max_turns) without answering; raise the limit or split the task.",
        ),
        FailureInfo(
            FailureKind.SETUP_FAILED,
            Retry.NEVER,
            "A worktree.setup command failed (or a worktree.copy_files file could not be copied) before any "
            "agent ran; its output is in runs/<id>/setup/. Fix the command or the project, then `resume`.",
        ),
        FailureInfo(
            FailureKind.GATE_FAILED,
            Retry.NEVER,
            "A gate still failed after limits.fix_rounds rounds of the agent fixing its work; nothing was "
            "committed, the work is kept on refs/orch/<run>/failed/<task>, and the gate's log is in the last "
            "attempt's gates/ folder.",
        ),
        FailureInfo(
            FailureKind.BUDGET,
            Retry.NEVER,
            "A limit of `budgets` was reached (budgets.mode: block), so no further attempt started: raise "
            "budgets.task_tokens or budgets.task_cost, or `codex-orch resume --budget-run-cost X` for the run's.",
        ),
    )
}

# Failures of the agent's provider, not of the work: the next attempt may go to the next backend of
# agents.fallback (engine/agent_choice.py). Answer, gate and workspace failures never switch agents.
FALLBACK_KINDS = frozenset({FailureKind.RATE_LIMITED, FailureKind.AUTH, FailureKind.TRANSPORT})

# Turn-failure messages of the real codex CLI (see shared/CODEX.md), most specific first.
_TURN_PATTERNS: tuple[tuple[re.Pattern[str], FailureKind], ...] = (
    (re.compile(r"\b429\b|too many requests|rate.?limit|quota|usage limit", re.I), FailureKind.RATE_LIMITED),
    (re.compile(r"\b40[13]\b|unauthori[sz]ed|forbidden|invalid api key|authentication", re.I), FailureKind.AUTH),
    (re.compile(r"idle timeout", re.I), FailureKind.IDLE),
    (
        re.compile(
            r"\b5\d\d\b|high demand|stream closed|stream disconnected|connection|timed out|transport|"
            r"error sending request|internal server error|service unavailable|overloaded",
            re.I,
        ),
        FailureKind.TRANSPORT,
    ),
)


def classify_turn_failure(message: str) -> FailureKind:
    for pattern, kind in _TURN_PATTERNS:
        if pattern.search(message):
            return kind
    return FailureKind.TURN_FAILED


def classify_api_status(status: int | None, message: str) -> FailureKind:
    """An API error an agent reports with the provider's HTTP status (claude's api_error_status)."""
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status in (401, 403):
        return FailureKind.AUTH
    if status is not None and (status >= 500 or status == 408):
        return FailureKind.TRANSPORT
    return classify_turn_failure(message)


def info(kind: FailureKind) -> FailureInfo:
    return FAILURES[kind]


def classify_reconnects(message: str) -> FailureKind:
    """An agent that only kept saying it reconnects: `auth` or `rate_limited` when its message says so,
    else `transport`."""
    kind = classify_turn_failure(message)
    return kind if kind in (FailureKind.AUTH, FailureKind.RATE_LIMITED) else FailureKind.TRANSPORT
