"""`dashboard`: the live web pages of this repository's runs, served by uvicorn (web/app.py)."""

from __future__ import annotations

import click

from codex_orch.cli.common import checked_layout, epilog, say

TOKEN_NAME = "dashboard.token"


@click.command(
    epilog=epilog(
        ["codex-orch dashboard", "codex-orch dashboard --port 8765", "codex-orch dashboard --host 0.0.0.0 --port 80"],
        {0: "stopped (Ctrl-C)", 2: "not in a git repository, an invalid orchestrator.yaml, or the port is taken"},
    )
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (viewing needs no token).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free one).")
def dashboard(host: str, port: int) -> None:
    """Serve live pages of this repository's runs (Ctrl-C stops it)."""
    import asyncio
    import ipaddress
    import os
    import socket

    import uvicorn

    from codex_orch.errors import InputError
    from codex_orch.web.actions import write_token
    from codex_orch.web.app import create_app

    layout = checked_layout()
    token_file = layout.orch_dir / TOKEN_NAME
    write_token(token_file)
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise InputError(f"--port: cannot listen on {host}:{port}: {reason}") from None
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    say(f"dashboard of {layout.root} on http://{shown}:{bound_port}/", err=True)
    say(f"actions (cancel, resume, merge) need the token in {token_file}", err=True)
    loopback = ipaddress.ip_address(bound_host).is_loopback
    # a server on loopback answers only to its own names (a rebound DNS name must not read it)
    allowed = ["127.0.0.1", "localhost", "::1", "[::1]"] if loopback else None
    config = uvicorn.Config(
        create_app(layout.root, token_file, allowed),
        log_level="warning",
        timeout_graceful_shutdown=1,  # event streams never end by themselves
        lifespan="on",
    )
    server = uvicorn.Server(config)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
