"""`codex-orch serve`: the HTTP API and its event stream, the token on every route, and the MCP server
driven by the official MCP Python SDK client over streamable HTTP and over stdio."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import urllib.request
from typing import Any

import anyio
from conftest import FakeCodex, Repo, git, wait_for
from service_helpers import Served, script_jobs, service_info, serving
from starlette.routing import Mount, Route

from codex_orch.service.server import build_app


def test_every_route_answers_401_without_the_token(repo: Repo, fake_codex: FakeCodex) -> None:
    extra = [Mount("/dashboard", routes=[Route("/", lambda request: None)])]  # what the dashboard will mount
    app = build_app(repo.path, "t0ken", "127.0.0.1", extra)
    routes = app.app.routes
    walked = []
    with serving(repo) as served:
        assert stat.S_IMODE((repo.path / ".orchestrator" / "serve.token").stat().st_mode) == 0o600
        for route in routes:
            path = route.path.replace("{job_id:int}", "1") or "/"
            methods = sorted(getattr(route, "methods", None) or {"GET", "POST", "DELETE"})
            for method in methods:
                if method == "HEAD":
                    continue
                for token in (None, "wrong", served.token + "x"):
                    status, body = served.call(method, path, {} if method == "POST" else None, token=token)
                    assert status == 401, (method, path, token, status, body)
                walked.append(f"{method} {path}")
        status, _ = served.call("GET", "/dashboard/", token=None)  # mounted apps are behind it too
        assert status == 401
        status, _ = served.call("GET", "/no/such/route", token=None)
        assert status == 401
        status, health = served.call("GET", "/api/health")
        assert status == 200 and health["ok"] is True
        assert "Access-Control-Allow-Origin" not in _headers(served, "/api/health")
    assert {"POST /mcp", "GET /api/events", "DELETE /api/jobs/1", "POST /api/jobs"} <= set(walked)


def _headers(served: Served, path: str) -> dict[str, str]:
    request = urllib.request.Request(
        served.url + path, headers={"Authorization": f"Bearer {served.token}", "Origin": "http://evil.example"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(response.headers)


def test_the_api_runs_jobs_and_streams_their_events(repo: Repo, fake_codex: FakeCodex) -> None:
    script_jobs(fake_codex)
    with serving(repo, "--workers", "1") as served:
        events = urllib.request.urlopen(
            urllib.request.Request(
                served.url + "/api/events?after=0", headers={"Authorization": f"Bearer {served.token}"}
            ),
            timeout=60,
        )
        status, job = served.call("POST", "/api/jobs", {"prompt": "write a file", "branch": "feat/api"})
        assert status == 201, job
        done = served.wait_job(job["id"], "done", "failed")
        assert done["status"] == "done", done
        assert git(repo.path, "rev-parse", "feat/api") == done["commit"]
        seen: list[dict[str, Any]] = []
        while not any(e.get("change") == "finished" for e in seen):
            line = events.readline().decode()
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
        events.close()
        assert [(e["job"], e["status"], e["change"]) for e in seen] == [
            (job["id"], "pending", "enqueued"),
            (job["id"], "running", "claimed"),
            (job["id"], "done", "finished"),
        ]
        assert seen[-1]["result"]["commit"] == done["commit"]
        assert served.call("GET", "/api/jobs/999") == (
            404,
            {"error": "no job 999", "hint": "List them: codex-orch jobs list"},
        )
        status, refused = served.call("POST", "/api/jobs", {"prompt": "x", "push": "sometimes"})
        assert (status, refused["error"][:10]) == (400, "job: push:"), (status, refused)
        status, listed = served.call("GET", "/api/jobs?status=done")
        assert status == 200 and [j["id"] for j in listed["jobs"]] == [job["id"]]


async def _scenario(client: Any, repo: Repo) -> None:
    """What the acceptance asks of an MCP client: enqueue, watch to done, the commit on the branch,
    continue, cancel one, delete a finished one, delete of a running one refused."""

    async def job(job_id: int) -> dict[str, Any]:
        result = await client.call_tool("get_job", {"job_id": job_id})
        assert not result.is_error, result
        return dict(result.structured_content)

    async def until(job_id: int, *statuses: str) -> dict[str, Any]:
        with anyio.move_on_after(90):
            while (current := await job(job_id))["status"] not in statuses:
                await anyio.sleep(0.1)
            return current
        raise AssertionError(f"job {job_id} never reached {statuses}: {await job(job_id)}")

    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {
        "enqueue_job", "list_jobs", "get_job", "continue_job", "cancel_job", "delete_job",
        "cleanup_jobs", "list_worktrees", "cleanup_worktrees", "delete_worktree",
    }  # fmt: skip
    assert all(t.input_schema and t.output_schema for t in tools.values())
    added = await client.call_tool("enqueue_job", {"prompt": "write a file", "branch": "feat/mcp"})
    assert not added.is_error, added
    job_id = added.structured_content["id"]
    done = await until(job_id, "done", "failed")
    assert done["status"] == "done", done
    assert git(repo.path, "rev-parse", "feat/mcp") == done["commit"]
    again = await client.call_tool("continue_job", {"job_id": job_id, "prompt": "write more"})
    assert not again.is_error and again.structured_content["status"] == "pending", again
    done2 = await until(job_id, "done", "failed")
    assert done2["status"] == "done" and git(repo.path, "show", "feat/mcp:more.txt") == "more"
    hang = (await client.call_tool("enqueue_job", {"prompt": "HANG-FOREVER here"})).structured_content["id"]
    await until(hang, "running")
    refused = await client.call_tool("delete_job", {"job_id": hang})
    assert refused.is_error
    assert refused.content[0].text == (  # the SDK's prefix, then the CLI's line
        f"Error executing tool delete_job: job {hang} is running: a running or awaiting_input job is never deleted. "
        f"Cancel it first (jobs cancel {hang})."
    )
    cancelled = await client.call_tool("cancel_job", {"job_id": hang})
    assert not cancelled.is_error, cancelled
    assert (await until(hang, "cancelled", "failed", "done"))["status"] == "cancelled"
    deleted = await client.call_tool("delete_job", {"job_id": job_id})
    assert not deleted.is_error and deleted.structured_content["deleted"] == job_id
    listed = await client.call_tool("list_jobs", {})
    assert [j["id"] for j in listed.structured_content["jobs"]] == [hang]


def test_the_official_mcp_client_over_streamable_http(repo: Repo, fake_codex: FakeCodex) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    script_jobs(fake_codex)
    with serving(repo, "--workers", "2") as served:

        async def main() -> None:
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {served.token}"})
            async with http, Client(streamable_http_client(served.url + "/mcp", http_client=http)) as client:
                await _scenario(client, repo)

        anyio.run(main)


def test_the_official_mcp_client_over_stdio_starts_the_service(repo: Repo, fake_codex: FakeCodex) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    script_jobs(fake_codex)
    repo.configure(guardrails={"refs": "run"})
    assert service_info(repo.path) is None
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "codex_orch", "mcp"], cwd=str(repo.path), env=dict(os.environ)
    )

    async def main() -> None:
        async with Client(params) as client:
            await _scenario(client, repo)

    try:
        anyio.run(main)
        assert service_info(repo.path) is not None  # the serve it started outlives the session
    finally:
        info = service_info(repo.path)
        if info and info.get("pid"):
            os.kill(int(info["pid"]), signal.SIGTERM)
            wait_for(lambda: service_info(repo.path) is None, "the started serve stopped", timeout=60)
