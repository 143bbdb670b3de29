"""`codex-orch serve`: one repository's job service in one process — the queue's workers (threads, each
driving its job's run in a child codex-orch), the HTTP API and the MCP server over streamable HTTP.

It holds `service/serve.lock` while it runs (one service per repository; `running_service` tells
whether one runs) and writes `service/serve.json` (pid, URL) beside it; the bearer token is
`.orchestrator/serve.token` (0600), made once and kept, so registered clients keep working across
restarts. It binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_orch.errors import OrchError
from codex_orch.layout import Layout
from codex_orch.service.worker import WorkerPool, WorkerSettings

TOKEN_NAME = "serve.token"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def token_path(root: Path) -> Path:
    return Layout(root).orch_dir / TOKEN_NAME


def service_dir(root: Path) -> Path:
    return Layout(root).orch_dir / "service"


def read_or_make_token(root: Path) -> str:
    """The service's bearer token: the file's, or a new one written 0600 (never readable by others)."""
    path = token_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        token = path.read_text("ascii").strip()
        if token:
            return token
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def running_service(root: Path) -> dict[str, Any] | None:
    """What `serve.json` says of the service running in this repository, or None when none runs."""
    folder = service_dir(root)
    lock = folder / "serve.lock"
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return dict(json.loads((folder / "serve.json").read_text("utf-8")))
        except (OSError, ValueError):
            return {"pid": None}
    finally:
        os.close(fd)
    return None


class ServiceLock:
    """One `serve` per repository: an exclusive flock the kernel drops when the process dies."""

    def __init__(self, root: Path) -> None:
        self.folder = service_dir(root)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.folder / "serve.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, info: dict[str, Any]) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise OrchError(
                f"a codex-orch serve already runs for this repository ({self.folder / 'serve.json'})",
                "Use it, or stop it first.",
            ) from None
        (self.folder / "serve.json").write_text(json.dumps(info), "utf-8")

    def release(self) -> None:
        (self.folder / "serve.json").unlink(missing_ok=True)
        os.close(self.fd)


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 2
    settings: WorkerSettings = field(default_factory=WorkerSettings)
    extra_routes: Sequence[Any] = ()  # more routes or mounts (the dashboard), behind the same token
    on_ready: Callable[[str], None] | None = None


def build_app(
    root: Path, token: str, host: str, extra_routes: Sequence[Any] = (), on_ready: Callable[[], Any] | None = None
) -> Any:
    """The service's ASGI app: the API, the MCP server's streamable HTTP route at /mcp (its session
    manager runs for the app's lifetime) and `extra_routes`, all behind the token."""
    from codex_orch.service.http import create_app
    from codex_orch.service.mcp_server import build_mcp

    mcp = build_mcp(root)
    mcp_app = mcp.streamable_http_app(streamable_http_path="/mcp", host=host)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            if on_ready is not None:
                on_ready()
            yield

    return create_app(root, token, extra_routes, mcp_app.routes, lifespan)


def serve(root: Path, options: ServeOptions) -> None:
    """Run the service until SIGINT/SIGTERM: workers, then the HTTP server; on the way out the workers
    stop their children in order (their jobs pending again, resumed by the next claim)."""
    import faulthandler
    import signal

    import uvicorn

    from codex_orch.scaffold import ensure_scaffold
    from codex_orch.service.store import JobStore, db_path

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: every thread's stack in the log
    layout = Layout(root)
    ensure_scaffold(layout)
    JobStore(db_path(layout.orch_dir)).close()  # the database exists (0600) before anything serves
    token = read_or_make_token(root)
    lock = ServiceLock(root)
    sock = _bind(options.host, options.port)
    port = sock.getsockname()[1]
    url = f"http://{'[' + options.host + ']' if ':' in options.host else options.host}:{port}"
    lock.acquire({"pid": os.getpid(), "url": url, "mcp": f"{url}/mcp", "workers": options.workers})
    pool = WorkerPool(root, options.workers, options.settings).start()
    try:
        ready = options.on_ready
        app = build_app(root, token, options.host, options.extra_routes, (lambda: ready(url)) if ready else None)
        config = uvicorn.Config(app, host=options.host, port=port, log_level="warning", lifespan="on", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        pool.stop()
        lock.release()


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is announced (port 0: a free one, said in serve.json)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OrchError(
            f"serve: cannot listen on {host}:{port}: {exc.strerror or exc}", "Choose another --port."
        ) from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def ensure_service(root: Path, wait: float = 30.0) -> str:
    """A service running in this repository: the one that runs, or one started now in the background (it
    outlives the caller, so jobs queued through an MCP session finish after it). What was done, in a line."""
    import sys
    import time

    from codex_orch.proc.child import start_detached

    found = running_service(root)
    if found is not None:
        return f"using the job service already running here ({found.get('url', '?')}, pid {found.get('pid')})"
    argv = [sys.executable, "-m", "codex_orch", "serve", "--port", "0"]
    pid = start_detached(argv, root, service_dir(root) / "serve.log")
    deadline = time.monotonic() + wait
    while (found := running_service(root)) is None or found.get("url") is None:
        if time.monotonic() > deadline:
            raise OrchError(
                f"started `codex-orch serve` (pid {pid}) but it did not come up within {wait:.0f} s",
                f"Read {service_dir(root) / 'serve.log'}.",
            )
        time.sleep(0.05)
    return (
        f"no job service was running here, so one was started (pid {pid}, {found['url']}) to run "
        "the jobs this session queues; it keeps running after the session (stop it with kill -TERM)"
    )
