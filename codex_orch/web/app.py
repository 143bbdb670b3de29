"""The dashboard as an ASGI app: `create_app(root, token_file)` serves the pages, the read-only run API,
its event streams and the token-guarded actions of one repository.

`codex-orch dashboard` runs it under uvicorn; the job service can mount the same app. Routes:

    GET  /                                  the runs page        GET /api/runs            the run list
    GET  /runs/{run}                        the run page         GET /api/runs/{run}      a run, its DAG
    GET  /runs/{run}/tasks/{task}           the task page        GET /api/runs/{run}/tasks/{task}
    GET  /api/stream/runs                   SSE: the run list    GET /api/runs/{run}/stream   SSE: its tasks
    GET  /api/jobs                          the job service's queue (jobs: null without its database)
    GET  /api/runs/{run}/tasks/{task}/stream  SSE: its agent's events
    POST /api/runs/{run}/{cancel|resume|merge}  bearer token, else 403
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from codex_orch.commands.runs import run_dir
from codex_orch.errors import InputError, OrchError
from codex_orch.layout import Layout, id_problem
from codex_orch.web import data, stream
from codex_orch.web.actions import Actions, Conflict, Forbidden, check_token
from codex_orch.web.jobs import jobs_json

STATIC = Path(str(resources.files("codex_orch.web") / "static"))
# The pages hold no inline script and load nothing from elsewhere; agent text is set as text.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'"
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _error(status: int, message: str, hint: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=HEADERS)


def _ok(value: Any) -> JSONResponse:
    return JSONResponse(value, headers={**HEADERS, "Cache-Control": "no-store"})


def _checked(request: Request, *names: str) -> list[str]:
    """Path parameters that must be run or task ids (they name folders)."""
    values = [str(request.path_params[name]) for name in names]
    for name, value in zip(names, values, strict=True):
        problem = id_problem(value)
        if problem:
            raise InputError(f"{name}: {value!r} {problem}")
    return values


def page(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return FileResponse(STATIC / name, headers={**HEADERS, "Cache-Control": "no-cache"})

    return serve


def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Awaitable[Response]]:
    """Map the core's errors to statuses: unknown run or task 404, refused action 403/409."""

    async def endpoint(request: Request) -> Response:
        try:
            return _ok(await asyncio.to_thread(handler, request))
        except Forbidden as exc:
            return _error(403, str(exc))
        except Conflict as exc:
            return _error(409, str(exc), exc.hint)
        except InputError as exc:
            return _error(404, str(exc), exc.hint)
        except OrchError as exc:
            return _error(409, str(exc), exc.hint)

    return endpoint


def events(make: Callable[[Request], AsyncIterator[bytes]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            body = make(request)
        except InputError as exc:
            return _error(404, str(exc), exc.hint)
        headers = {**HEADERS, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    return endpoint


def create_app(root: Path, token_file: Path | None = None, allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The dashboard of the repository at `root`; actions need the token in `token_file` (None: no action).
    `allowed_hosts`: the Host names it answers (others get 400), so that a web page whose name an attacker
    re-points at 127.0.0.1 (DNS rebinding) cannot read it; None: any (a server in front checks)."""
    root = Path(root)
    layout = Layout(root)
    actions = Actions(root)

    def run_folder(request: Request) -> Path:
        (run_id,) = _checked(request, "run")
        return run_dir(layout, run_id)

    def action(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                check_token(token_file, request.headers.get("authorization"))
            except Forbidden as exc:
                return _error(403, str(exc))
            return await guarded(lambda r: getattr(actions, name)(_checked(r, "run")[0]))(request)

        return endpoint

    def task_stream(request: Request) -> AsyncIterator[bytes]:
        folder = run_folder(request)
        (task,) = _checked(request, "task")
        return stream.task_changes(folder, task, request.is_disconnected)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(actions.stop)

    routes = [
        Route("/", page("index.html")),
        Route("/runs/{run}", page("run.html")),
        Route("/runs/{run}/tasks/{task}", page("task.html")),
        Route("/api/runs", guarded(lambda r: {"runs": data.runs_json(root)})),
        Route("/api/jobs", guarded(lambda r: jobs_json(root))),
        Route("/api/stream/runs", events(lambda r: stream.runs_changes(root, layout.runs_dir, r.is_disconnected))),
        Route("/api/runs/{run}", guarded(lambda r: data.run_json(root, *_checked(r, "run")))),
        Route("/api/runs/{run}/stream", events(lambda r: stream.run_changes(run_folder(r), r.is_disconnected))),
        Route("/api/runs/{run}/tasks/{task}", guarded(lambda r: data.task_json(root, *_checked(r, "run", "task")))),
        Route("/api/runs/{run}/tasks/{task}/stream", events(task_stream)),
        *(Route(f"/api/runs/{{run}}/{name}", action(name), methods=["POST"]) for name in ("cancel", "resume", "merge")),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.actions = actions
    return app
