"""The agent contract: an attempt request in, a stream of events, a result out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from codex_orch.failures import FailureKind
from codex_orch.redaction import Redactor
from codex_orch.untrusted import UntrustedValue, json_type, short

MAX_TOKENS = 2**53 - 1  # a token count beyond this is not a count (and would lose precision in JSON readers)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Usage:
        """Usage as codex-orch recorded it in the state (anything that is not a count reads as 0)."""
        data = data if isinstance(data, Mapping) else {}
        return cls(**{f.name: _count(data.get(f.name)) or 0 for f in fields(cls)})

    @classmethod
    def from_agent(cls, data: object, where: str = "usage") -> Usage:
        """Usage as an agent reported it: an object of whole numbers from 0 to MAX_TOKENS (a count left
        out or null is 0, unknown keys are ignored); anything else raises UntrustedValue."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise UntrustedValue(f"{where} must be an object, not {json_type(data)}")
        counts = {}
        for f in fields(cls):
            value = data.get(f.name)
            count = _count(value)
            if count is None and value is not None:
                raise UntrustedValue(
                    f"{where}.{f.name} must be a whole number from 0 to {MAX_TOKENS}, not {short(value)}"
                )
            counts[f.name] = count or 0
        return cls(**counts)

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __sub__(self, other: Usage) -> Usage:
        return Usage(**{f.name: max(0, getattr(self, f.name) - getattr(other, f.name)) for f in fields(self)})


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None


@dataclass(frozen=True)
class AttemptRequest:
    prompt: str
    workdir: Path
    attempt_dir: Path
    sandbox: str
    output_schema: Path
    env: Mapping[str, str]
    timeout: float
    idle_timeout: float
    stop_grace: float
    model: str | None = None
    profile: str | None = None
    resume_thread: str | None = None
    command: tuple[str, ...] = ("codex",)
    extra_args: tuple[str, ...] = ()
    redactor: Redactor | None = None
    max_reconnects: int | None = None  # notices in a row tolerated without progress; None: any number
    max_turns: int | None = None  # backends that have such a limit (claude --max-turns)

    @property
    def events_path(self) -> Path:
        return self.attempt_dir / "events.jsonl"

    @property
    def times_path(self) -> Path:
        """When each line of events.jsonl arrived (the agents' events carry no time of their own)."""
        return self.attempt_dir / "events.times"

    @property
    def stderr_path(self) -> Path:
        return self.attempt_dir / "stderr.log"

    @property
    def last_message_path(self) -> Path:
        return self.attempt_dir / "last_message.txt"


@dataclass(frozen=True)
class AgentResult:
    thread_id: str | None
    final_message: str | None
    usage: Usage  # as reported: for a resumed thread, cumulative over the thread
    failure: FailureKind | None
    failure_message: str
    exit_code: int | None
    pid: int | None
    started: float
    ended: float
    event_count: int = 0
    garbage_lines: int = 0
    item_counts: Mapping[str, int] = field(default_factory=dict)
    stop_steps: tuple[str, ...] = ()
    usage_cumulative: bool = True  # usage covers the whole resumed thread (codex); False: this attempt only
    cost_usd: float | None = None  # as the agent reports it (claude): cumulative over a resumed thread


@dataclass(frozen=True)
class Progress:
    """What the agent is doing now, for live displays."""

    thread_id: str | None
    action: str
    usage: Usage | None = None  # the turn's, when it ends
    so_far: Usage | None = None  # what the turn has used so far, while it runs (claude: per model response)


class StopEither(threading.Event):
    """What run_streaming polls (`is_set`) to stop the agent: set to stop this one attempt (by its event
    reader, or by a budget it crossed), or the run's own cancel event (Ctrl-C, --fail-fast), which is
    never set from here."""

    def __init__(self, outer: threading.Event | None) -> None:
        super().__init__()
        self.outer = outer

    def is_set(self) -> bool:
        return super().is_set() or (self.outer is not None and self.outer.is_set())


class AgentBackend(Protocol):
    name: str

    def build_argv(self, request: AttemptRequest) -> list[str]: ...

    def run(
        self,
        request: AttemptRequest,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> AgentResult: ...
