"""The HTTP API of `codex-orch serve`: the operations of service/jobs.py as JSON endpoints, the job
event stream (`GET /api/events`, server-sent events), the MCP server at `/mcp`, and a place for more
(`extra_routes`: the dashboard's read-only run viewer mounts there).

Every request, on every route including `/mcp` and whatever is mounted, needs
`Authorization: Bearer <token>` (the token `serve` writes to `.orchestrator/serve.token`); without it:
401. No CORS headers are ever sent, so a web page of another origin cannot read any answer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from codex_orch.errors import OrchError
from codex_orch.service.jobs import JobService, NoSuchJob, WrongStatus
from codex_orch.service.store import FINISHED, JobStore, db_path

API_VERSION = 1


class BearerToken:
    """ASGI middleware: 401 for any HTTP request (or websocket) without the service's bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                response = JSONResponse(
                    {"error": "unauthorized: send the token of .orchestrator/serve.token as 'Authorization: Bearer …'"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    root: Path,
    token: str,
    extra_routes: Sequence[BaseRoute] = (),
    mcp_routes: Sequence[BaseRoute] = (),
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    poll: float = 0.2,
) -> ASGIApp:
    """The service's ASGI app. `extra_routes` (e.g. a `Mount("/runs", app=…)` of the dashboard) and the MCP
    routes come after the API's own; the bearer check wraps them all."""

    async def call(operation: Callable[[JobService], Any], status: int = 200) -> Response:
        def run() -> Any:
            service = JobService(root)
            try:
                return operation(service)
            finally:
                service.close()

        try:
            return JSONResponse(await run_in_threadpool(run), status_code=status)
        except OrchError as exc:
            code = 404 if isinstance(exc, NoSuchJob) else 409 if isinstance(exc, WrongStatus) else 400
            return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=code)

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise OrchError(f"request body: invalid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise OrchError("request body: a JSON object is expected")
        return value

    async def with_body(
        request: Request, use: Callable[[dict[str, Any]], Callable[[JobService], Any]], status: int = 200
    ) -> Response:
        try:
            data = await body(request)
        except OrchError as exc:
            return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=400)
        return await call(use(data), status)

    def job_id(request: Request) -> int:
        return int(request.path_params["job_id"])

    async def list_jobs(request: Request) -> Response:
        statuses = tuple(request.query_params.getlist("status"))
        return await call(lambda s: {"jobs": s.list_jobs(statuses)})

    async def add_job(request: Request) -> Response:
        return await with_body(request, lambda data: lambda s: s.add(data), 201)

    async def get_job(request: Request) -> Response:
        return await call(lambda s: s.show(job_id(request)))

    async def continue_job(request: Request) -> Response:
        return await with_body(
            request, lambda data: lambda s: s.continue_job(job_id(request), str(data.get("prompt", "")))
        )

    async def cancel_job(request: Request) -> Response:
        return await call(lambda s: s.cancel(job_id(request)))

    async def delete_job(request: Request) -> Response:
        return await call(lambda s: s.delete(job_id(request)))

    async def cleanup_jobs(request: Request) -> Response:
        return await with_body(
            request,
            lambda d: (
                lambda s: s.cleanup(
                    tuple(d.get("statuses") or FINISHED),
                    float(d.get("older_than_hours", 0)),
                    bool(d.get("apply", False)),
                )
            ),
        )

    async def list_worktrees(request: Request) -> Response:
        return await call(lambda s: {"worktrees": s.worktrees()})

    async def delete_worktree(request: Request) -> Response:
        force = request.query_params.get("force") in ("1", "true")
        return await call(lambda s: s.delete_worktree(job_id(request), force))

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "api_version": API_VERSION})

    async def events(request: Request) -> Response:
        """Job changes as server-sent events, from `?after=SEQ` or the Last-Event-ID header (default: new ones)."""
        start = request.query_params.get("after") or request.headers.get("last-event-id")
        return EventSourceResponse(
            _event_stream(root, request, int(start) if start and start.isdigit() else None, poll), ping=15
        )

    routes: list[BaseRoute] = [
        Route("/api/health", health),
        Route("/api/jobs", list_jobs, methods=["GET"]),
        Route("/api/jobs", add_job, methods=["POST"]),
        Route("/api/jobs/cleanup", cleanup_jobs, methods=["POST"]),
        Route("/api/jobs/{job_id:int}", get_job, methods=["GET"]),
        Route("/api/jobs/{job_id:int}", delete_job, methods=["DELETE"]),
        Route("/api/jobs/{job_id:int}/continue", continue_job, methods=["POST"]),
        Route("/api/jobs/{job_id:int}/cancel", cancel_job, methods=["POST"]),
        Route("/api/worktrees", list_worktrees, methods=["GET"]),
        Route("/api/worktrees/{job_id:int}", delete_worktree, methods=["DELETE"]),
        Route("/api/events", events, methods=["GET"]),
        *mcp_routes,
        *extra_routes,
    ]
    return BearerToken(Starlette(routes=routes, lifespan=lifespan), token)


async def _event_stream(root: Path, request: Request, after: int | None, poll: float) -> AsyncIterator[dict[str, Any]]:
    """Each row of the queue's `events` table once, in order: `event: job`, `id: SEQ`, data the JSON of
    {seq, ts, job, status, change, …} (docs/service.md lists the shapes)."""
    store = await run_in_threadpool(JobStore, db_path(root / ".orchestrator"))
    try:
        seq = after if after is not None else await run_in_threadpool(store.last_event)
        while True:  # EventSourceResponse cancels this when the client goes away
            rows = await run_in_threadpool(store.events_after, seq)
            for row in rows:
                seq = row["seq"]
                yield {"event": "job", "id": str(seq), "data": json.dumps(row)}
            if not rows:
                await asyncio.sleep(poll)
    finally:
        await run_in_threadpool(store.close)


@asynccontextmanager
async def no_lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
