"""codex-orch driving the REAL Gemini CLI (tools/gemini, pinned) against the loopback scripted model.

Gemini CLI speaks the Gemini API (`:streamGenerateContent?alt=sse`), honours GOOGLE_GEMINI_BASE_URL
with the API-key auth type, and writes `--output-format stream-json` events: these runs of the binary
are where the backend's protocol comes from. Without the binary these tests FAIL, never skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import real_agents as real
from conftest import Repo, answer

pytestmark = pytest.mark.realagents


def test_a_schema_invalid_answer_is_continued_on_the_same_session(repo: Repo, tmp_path: Path) -> None:
    steps = [
        {"write": "notes.txt", "content": "one\n"},
        {"answer": {"status": "done", "summary": ["not", "a", "string"]}},
        {"answer": answer("fixed", ["notes.txt"])},
    ]
    result, server = real.run_scripted(repo, tmp_path, {"default": steps}, real.write_and_edit("gemini")[:1], "gmretry")
    requests = server.model_requests("gemini")
    assert result.code == 0, result.err + result.out
    _, session = real.retried_on_its_session(repo, "gmretry")
    assert len(requests) == 3 and len({r["thread_id"] for r in requests}) == 1  # one conversation, resumed
    last = json.dumps(requests[-1]["body"]["contents"])
    assert "Create notes.txt" in last  # the history came along
    assert "summary: ['not', 'a', 'string'] is not of type 'string'" in last  # codex-orch's own validation
    assert real.events(repo, "gmretry", "T0001", 2)[0]["session_id"] == session
