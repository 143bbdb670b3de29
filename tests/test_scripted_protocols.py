"""The scripted model server's Anthropic Messages and Gemini APIs on their own (no agent CLI): one script,
the same steps, each protocol's own shapes. test_real_claude.py and test_real_gemini.py show the real
CLIs accept them."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from codex_orch.testing.model_script import ScriptError, validate_script
from codex_orch.testing.scripted_model import ScriptedModelServer

ANSWER = {"status": "done", "summary": "ok"}
SCRIPT = {
    "rules": [
        {
            "match": "TASK",
            "steps": [
                {"shell": "echo hi > a.txt"},
                {"write": "b.txt", "content": "bee\n"},
                {"edit": "b.txt", "old": "bee", "new": "be"},
                {"answer": ANSWER, "usage": {"input_tokens": 50, "cached_tokens": 20, "output_tokens": 7}},
            ],
        }
    ],
    "default": [{"http": 429}],
}


def post(
    server: ScriptedModelServer, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, str]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(
            "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def sse(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


def claude_request(prompt: str, schema: bool = True) -> dict[str, Any]:
    reminder = {"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>"}
    return {
        "model": "m",
        "stream": True,
        "messages": [
            {"role": "user", "content": [reminder, {"type": "text", "text": prompt}]},
            {"role": "system", "content": [{"type": "text", "text": " - Primary working directory: /w/tree\n"}]},
        ],
        "tools": [{"name": "Bash"}, *([{"name": "StructuredOutput"}] if schema else [])],
    }


def tool_uses(events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    inputs = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    return [
        (
            block.get("name", block["type"]),
            json.loads(delta["partial_json"]) if "partial_json" in delta else delta["text"],
        )
        for block, delta in zip(starts, inputs, strict=True)
    ]


def test_anthropic_messages_from_the_same_script() -> None:
    with ScriptedModelServer(SCRIPT) as server:
        session = {"x-claude-code-session-id": "s-1"}
        calls = [
            tool_uses(sse(post(server, "/v1/messages?beta=true", claude_request("do TASK"), session)[1]))
            for _ in range(4)
        ]
        assert calls == [
            [("Bash", {"command": "echo hi > a.txt", "description": "scripted step"})],
            [("Write", {"file_path": "/w/tree/b.txt", "content": "bee\n"})],
            [
                ("Read", {"file_path": "/w/tree/b.txt"}),
                ("Edit", {"file_path": "/w/tree/b.txt", "old_string": "bee", "new_string": "be"}),
            ],
            [("StructuredOutput", ANSWER)],
        ]
        status, text = post(
            server, "/v1/messages", claude_request("do TASK", schema=False), {"x-claude-code-session-id": "s-2"}
        )
        events = sse(text)
        assert status == 200 and tool_uses(events) == [
            ("Bash", {"command": "echo hi > a.txt", "description": "scripted step"})
        ]
        usage = events[0]["message"]["usage"]
        assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (
            90,
            10,
        )  # Anthropic's input excludes cached
        status, text = post(server, "/v1/messages", claude_request("another"), {"x-claude-code-session-id": "s-3"})
        assert status == 429 and json.loads(text)["error"]["type"] == "rate_limit_error"
        requests = server.model_requests("anthropic")
        assert [(r["thread_id"], r["step_index"]) for r in requests] == [
            ("s-1", 0),
            ("s-1", 1),
            ("s-1", 2),
            ("s-1", 3),
            ("s-2", 0),
            ("s-3", 0),
        ]
    # an answer to a request without StructuredOutput is text
    with ScriptedModelServer({"default": [{"answer": ANSWER}]}) as server:
        events = sse(post(server, "/v1/messages", claude_request("x", schema=False))[1])
        assert tool_uses(events) == [("text", json.dumps(ANSWER))]
        assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_a_request_without_a_stream_takes_its_step_as_one_message() -> None:
    """What Claude Code sends after a stream that failed: the same thread, the next step, one JSON reply."""
    script = {"default": [{"failed": "overloaded"}, {"shell": "ls"}, {"failed": "still overloaded"}]}
    with ScriptedModelServer(script) as server:
        session = {"x-claude-code-session-id": "s"}
        events = sse(post(server, "/v1/messages", claude_request("x"), session)[1])
        assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "overloaded"}}
        whole = {**claude_request("x"), "stream": False}
        status, text = post(server, "/v1/messages", whole, session)
        message = json.loads(text)
        assert status == 200 and message["stop_reason"] == "tool_use"
        assert [(b["name"], b["input"]) for b in message["content"]] == [
            ("Bash", {"command": "ls", "description": "scripted step"})
        ]
        status, text = post(server, "/v1/messages", whole, session)
        assert status == 500 and json.loads(text)["error"]["message"] == "still overloaded"
        assert [r["step_index"] for r in server.model_requests("anthropic")] == [0, 1, 2]


def gemini_request(prompt: str, listing: str = "a.txt") -> dict[str, Any]:
    context = f"<session_context>\n- **Workspace Directories:**\n  - /w/tree\n- files: {listing}\n</session_context>"
    return {"contents": [{"role": "user", "parts": [{"text": context}, {"text": prompt}]}]}


def gemini_parts(text: str) -> list[dict[str, Any]]:
    return [part for chunk in sse(text) for part in chunk["candidates"][0]["content"]["parts"]]


def test_gemini_api_from_the_same_script() -> None:
    stream = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    with ScriptedModelServer(SCRIPT) as server:
        # the session context changes (gemini --resume lists the files again): still one conversation
        parts = [gemini_parts(post(server, stream, gemini_request("do TASK", listing=str(i)))[1]) for i in range(4)]
        assert parts == [
            [{"functionCall": {"name": "run_shell_command", "args": {"command": "echo hi > a.txt"}}}],
            [{"functionCall": {"name": "write_file", "args": {"file_path": "b.txt", "content": "bee\n"}}}],
            [
                {
                    "functionCall": {
                        "name": "replace",
                        "args": {
                            "file_path": "b.txt",
                            "old_string": "bee",
                            "new_string": "be",
                            "instruction": "scripted edit",
                        },
                    }
                }
            ],
            [{"text": json.dumps(ANSWER)}],
        ]
        last = sse(post(server, stream, gemini_request("do TASK"))[1])[-1]
        assert (
            last["usageMetadata"]["promptTokenCount"] == 50 and last["usageMetadata"]["cachedContentTokenCount"] == 20
        )
        # a side question (no stream) takes no step
        status, text = post(server, "/v1beta/models/flash:generateContent", gemini_request("which model?"))
        assert status == 200 and "candidates" in json.loads(text)
        status, text = post(server, stream, gemini_request("other"))
        assert status == 429 and json.loads(text)["error"]["status"] == "RESOURCE_EXHAUSTED"
        requests = server.model_requests("gemini")
        assert [r["step_index"] for r in requests] == [0, 1, 2, 3, 3, 0]
        assert len({r["thread_id"] for r in requests[:5]}) == 1 and requests[5]["thread_id"] != requests[0]["thread_id"]


def test_a_codex_patch_step_is_refused_by_the_other_protocols() -> None:
    with ScriptedModelServer({"default": [{"patch": "*** Begin Patch\n*** End Patch\n"}]}) as server:
        status, text = post(server, "/v1/messages", claude_request("x"))
        assert status == 500 and "use write/edit" in text
        status, text = post(server, "/v1beta/models/m:streamGenerateContent?alt=sse", gemini_request("x"))
        assert status == 500 and "use write/edit" in text


def test_write_and_edit_steps_need_their_text() -> None:
    with pytest.raises(ScriptError, match=r"default\[0\]\.content must be a string"):
        validate_script({"default": [{"write": "a.txt"}]})
    with pytest.raises(ScriptError, match=r"default\[0\]\.new must be a string"):
        validate_script({"default": [{"edit": "a.txt", "old": "x"}]})
