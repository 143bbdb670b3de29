"""`serve`, `worker` and `mcp`: the job service (service/), its extra workers and its MCP stdio server."""

from __future__ import annotations

from pathlib import Path

import click

from codex_orch.cli.common import epilog, repo, say, say_error


@click.command(
    epilog=epilog(
        ["codex-orch serve", "codex-orch serve --port 9000 --workers 4", "codex-orch serve --host 0.0.0.0  # warns"],
        {0: "stopped by Ctrl-C or SIGTERM", 2: "bad input, or a serve already runs here"},
    )
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="The address to listen on (loopback only by default)."
)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free port.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Jobs run at once.")
@click.option(
    "--lease", type=click.FloatRange(min=1), default=30, show_default=True, help="Seconds a claim lasts unrenewed."
)
def serve(host: str, port: int, workers: int, lease: float) -> None:
    """Run the job service (workers, HTTP API, MCP)."""
    from codex_orch.service.server import LOOPBACK, ServeOptions, token_path
    from codex_orch.service.server import serve as run_service
    from codex_orch.service.worker import WorkerSettings

    root = repo()
    _warn_on_guarded_refs(root, workers)
    if host not in LOOPBACK:
        say_error(
            f"warning: listening on {host}, not loopback: anyone who can reach it and has the token can run agents here"
        )

    def ready(url: str) -> None:
        say(
            [f"codex-orch serve: {url} (API {url}/api, MCP {url}/mcp, events {url}/api/events)",
             f"token: {token_path(root)}; {workers} worker(s)"],
            err=True,
        )  # fmt: skip

    run_service(root, ServeOptions(host, port, workers, WorkerSettings(lease=lease), on_ready=ready))


def job_worker(count: int, lease: float) -> None:
    """`codex-orch worker` without --temporal-address: run queued jobs beside (or without) serve."""
    import threading

    from codex_orch.service.worker import WorkerPool, WorkerSettings

    _warn_on_guarded_refs(repo(), 2)  # beside serve's workers: runs at once
    pool = WorkerPool(repo(), count, WorkerSettings(lease=lease)).start()
    say(f"codex-orch worker: {count} worker(s) on this repository's queue; Ctrl-C stops them", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        pool.stop()  # running jobs stopped in order: pending again, resumed by the next claim


@click.command(
    epilog=epilog(
        ["codex-orch mcp", "claude mcp add codex-orch -- codex-orch mcp"],
        {0: "the client closed stdin", 2: "not in a git repository, or a bad .orchestrator/ config"},
    )
)
@click.option("--no-start", is_flag=True, help="Do not start `serve` when none runs (jobs then wait for one).")
def mcp(no_start: bool) -> None:
    """The MCP server over stdio."""
    from codex_orch.service.mcp_server import build_mcp
    from codex_orch.service.server import ensure_service

    root = repo()
    started = None if no_start else ensure_service(root)
    if started:
        say_error(started)
    build_mcp(root).run("stdio")


def _warn_on_guarded_refs(root: Path, workers: int) -> None:
    """With guardrails.refs: all, a run puts back every branch that changed while its agent worked, so
    jobs running at once would undo each other's branch moves (their work stays on their run branches)."""
    from codex_orch.config import load_config
    from codex_orch.layout import Layout

    if workers > 1 and load_config(Layout(root)).guard_all_refs:
        say_error(
            "warning: guardrails.refs is 'all': a job's run puts back the branches other jobs move while it "
            "runs; set `guardrails: {refs: run}` in orchestrator.yaml for the job service (docs/service.md)"
        )
