"""An attempt's recorded events read as one shape, whatever the agent that wrote them.

Each attempt folder holds the agent's own stream (`events.jsonl`: codex's `exec --json`, claude's or
gemini's stream-json) and, beside it, when each of its lines arrived (`events.times`, one Unix time per
line; runs recorded before it existed have none, and their events have no time). `EventReader` turns
lines into `Event`s: a command with its exit code and output, a file change, a message, a reasoning
summary, an error, a turn boundary. Everything in them is agent text: never trusted, never rendered as
markup (the dashboard sets it as text), cut to a bounded length.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from codex_orch.agents.stream_json import listing, mapping
from codex_orch.untrusted import clean_text

KINDS = ("command", "file", "message", "reasoning", "error", "turn", "tool")
TEXT_CHARS = 2_000
OUTPUT_CHARS = 8_000
LINE_BYTES = 4 * 1024 * 1024  # a longer line (a flood, a huge output) is not parsed


@dataclass(frozen=True)
class Event:
    task: str
    attempt: int
    agent: str
    line: int  # 1-based line of events.jsonl
    at: float | None  # Unix time the line arrived; None when the run recorded no times
    kind: str  # one of KINDS
    text: str  # one line: the command, the files, the message
    output: str = ""  # a command's output (its tail), an error's detail
    exit_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failed(self) -> bool:
        return self.kind == "command" and self.exit_code not in (None, 0)


def _text(value: object, limit: int = TEXT_CHARS) -> str:
    return clean_text(value, limit) if isinstance(value, str) else ""


def _tail(value: object) -> str:
    text = value if isinstance(value, str) else ""
    return clean_text(text[-OUTPUT_CHARS:], OUTPUT_CHARS)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class EventReader:
    """Lines of one attempt's events.jsonl in, events out; keeps what spans lines (a tool's call and
    its result, gemini's message pieces)."""

    def __init__(self, task: str, attempt: int, agent: str) -> None:
        self.task, self.attempt, self.agent = task, attempt, agent
        self.line = 0
        self._at: float | None = None
        self._pending_text: list[str] = []  # gemini's assistant message, piece by piece
        self._tools: dict[str, str] = {}  # tool call id -> what it was (claude, gemini)

    def _event(self, kind: str, text: str, output: str = "", exit_code: int | None = None) -> Event:
        return Event(self.task, self.attempt, self.agent, self.line, self._at, kind, text, output, exit_code)

    def feed(self, raw: bytes, at: float | None) -> list[Event]:
        self.line += 1
        self._at = at
        if len(raw) > LINE_BYTES:
            return []
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return []
        if not isinstance(event, dict):
            return []
        if self.agent == "claude":
            return self._claude(event)
        if self.agent == "gemini":
            return self._gemini(event)
        return self._codex(event)

    def flush(self) -> list[Event]:
        """What a stream that ended left pending (gemini's last message)."""
        if not self._pending_text:
            return []
        text, self._pending_text = "".join(self._pending_text), []
        return [self._event("message", _text(text))]

    # --- codex exec --json ---------------------------------------------------------------------
    def _codex(self, event: dict[str, Any]) -> list[Event]:
        kind = event.get("type")
        if kind == "item.completed":
            item = mapping(event.get("item"))
            what = item.get("type")
            if what == "command_execution":
                output, code = _tail(item.get("aggregated_output")), _int(item.get("exit_code"))
                return [self._event("command", _text(item.get("command")), output, code)]
            if what == "file_change":
                changes = [mapping(c) for c in listing(item.get("changes")) if isinstance(c, dict)]
                text = ", ".join(f"{_text(c.get('kind'), 20)} {_text(c.get('path'), 500)}" for c in changes)
                return [self._event("file", _text(text))]
            if what == "agent_message":
                return [self._event("message", _text(item.get("text")))]
            if what == "reasoning":
                return [self._event("reasoning", _text(item.get("text")))]
            if what == "error":
                return [self._event("error", _text(item.get("message")))]
            return []
        if kind == "error":
            return [self._event("error", _text(event.get("message")))]
        if kind == "turn.failed":
            return [self._event("error", "turn failed: " + _text(mapping(event.get("error")).get("message")))]
        if kind == "thread.started":
            return [self._event("turn", "thread " + _text(event.get("thread_id"), 80))]
        if kind == "turn.completed":
            usage = mapping(event.get("usage"))
            tokens = f"tokens in {_int(usage.get('input_tokens'))}, out {_int(usage.get('output_tokens'))}"
            return [self._event("turn", f"turn completed ({tokens})")]
        return []

    # --- claude -p --output-format stream-json ---------------------------------------------------
    def _claude(self, event: dict[str, Any]) -> list[Event]:
        kind = event.get("type")
        out: list[Event] = []
        if kind == "system" and event.get("subtype") == "init":
            out.append(self._event("turn", "session " + _text(event.get("session_id"), 80)))
        elif kind == "assistant":
            for block in (mapping(b) for b in listing(mapping(event.get("message")).get("content"))):
                if block.get("type") == "tool_use":
                    name = _text(block.get("name"), 100)
                    out.append(self._tool_call(name, mapping(block.get("input")), block.get("id")))
                elif block.get("type") == "text":
                    out.append(self._event("message", _text(block.get("text"))))
                elif block.get("type") == "thinking":
                    out.append(self._event("reasoning", _text(block.get("thinking"))))
        elif kind == "user":
            for block in (mapping(b) for b in listing(mapping(event.get("message")).get("content"))):
                if block.get("type") == "tool_result" and block.get("is_error") is True:
                    out.append(self._tool_failed(block.get("tool_use_id"), block.get("content")))
        elif kind == "result":
            if event.get("is_error") is True or str(event.get("subtype", "")).startswith("error"):
                out.append(self._event("error", "turn failed: " + _text(event.get("result") or event.get("subtype"))))
            else:
                out.append(self._event("turn", "turn completed"))
        return out

    # --- gemini --output-format stream-json ------------------------------------------------------
    def _gemini(self, event: dict[str, Any]) -> list[Event]:
        kind = event.get("type")
        if kind == "message" and event.get("role") == "assistant":
            piece = _text(event.get("content"), OUTPUT_CHARS)
            self._pending_text = [*self._pending_text, piece] if event.get("delta") is True else [piece]
            return []
        out = self.flush()
        if kind == "init":
            out.append(self._event("turn", "session " + _text(event.get("session_id"), 80)))
        elif kind == "tool_use":
            name = _text(event.get("tool_name"), 100)
            out.append(self._tool_call(name, mapping(event.get("parameters")), event.get("tool_id")))
        elif kind == "tool_result" and event.get("status") == "error":
            detail = mapping(event.get("error")).get("message") or event.get("output")
            out.append(self._tool_failed(event.get("tool_id"), detail))
        elif kind == "error":
            out.append(self._event("error", _text(event.get("message"))))
        elif kind == "result":
            if event.get("status") not in (None, "success"):
                out.append(self._event("error", "turn failed: " + _text(mapping(event.get("error")).get("message"))))
            else:
                out.append(self._event("turn", "turn completed"))
        return out

    # --- tools of claude and gemini --------------------------------------------------------------
    def _tool_call(self, name: str, arguments: dict[str, Any], call_id: object) -> Event:
        if name == "StructuredOutput":  # claude's answer, given as a tool call
            return self._event("message", _text(json.dumps(arguments, ensure_ascii=False)))
        if name in ("Bash", "run_shell_command"):
            event = self._event("command", _text(arguments.get("command")))
        elif name in ("Write", "Edit", "MultiEdit", "NotebookEdit", "write_file", "replace"):
            event = self._event("file", "edit " + _text(arguments.get("file_path"), 500))
        else:
            event = self._event("tool", name)
        if isinstance(call_id, str):
            self._tools[call_id[:200]] = event.text
        return event

    def _tool_failed(self, call_id: object, content: object) -> Event:
        what = self._tools.get(call_id[:200], "a tool") if isinstance(call_id, str) else "a tool"
        if isinstance(content, list):  # claude: [{"type": "text", "text": ...}]
            content = "\n".join(_text(mapping(c).get("text"), OUTPUT_CHARS) for c in content)
        return self._event("error", f"failed: {what}", _tail(content))


def attempt_folder(run_dir: Path, task_id: str, n: int) -> Path:
    return run_dir / "tasks" / task_id / f"attempt-{n}"


class AttemptTail:
    """One attempt's events read as they are written: each `poll` returns the events of the complete
    lines added since the last one (so `logs --follow` and the dashboard tail by offset)."""

    def __init__(self, run_dir: Path, task_id: str, n: int, agent: str) -> None:
        folder = attempt_folder(run_dir, task_id, n)
        self.events_path, self.times_path = folder / "events.jsonl", folder / "events.times"
        self.reader = EventReader(task_id, n, agent)
        self.offset = 0
        self.times: list[float] = []
        self.times_offset = 0
        self.skipping = False  # inside a line longer than LINE_BYTES

    def _read_times(self) -> None:
        try:
            with open(self.times_path, "rb") as fh:
                fh.seek(self.times_offset)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self.times_offset += end
        for line in data[:end].splitlines():
            try:
                self.times.append(float(line))
            except ValueError:
                self.times.append(self.times[-1] if self.times else 0.0)

    def poll(self) -> list[Event]:
        out: list[Event] = []
        try:
            fh = open(self.events_path, "rb")  # noqa: SIM115 (closed by the with below)
        except OSError:
            return out
        with fh:
            fh.seek(self.offset)
            self._read_times()
            while True:
                raw = fh.readline(LINE_BYTES + 1)
                if not raw.endswith(b"\n"):
                    if len(raw) <= LINE_BYTES:
                        return out  # an incomplete last line: read again next time
                    self.offset += len(raw)  # a huge line: skipped to its end, not kept in memory
                    self.skipping = True
                    continue
                self.offset += len(raw)
                line = self.reader.line
                if self.skipping:
                    self.skipping = False
                    self.reader.line += 1
                    continue
                if line >= len(self.times):
                    self._read_times()
                out += self.reader.feed(raw, self.times[line] if line < len(self.times) else None)


def read_attempt(run_dir: Path, task_id: str, n: int, agent: str) -> list[Event]:
    """Every event of one attempt, in the order the agent wrote them (complete lines only)."""
    tail = AttemptTail(run_dir, task_id, n, agent)
    return tail.poll() + tail.reader.flush()
