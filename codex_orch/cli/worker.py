"""`worker`: serve Temporal runs from this machine (executor: temporal; docs/scale-out.md)."""

from __future__ import annotations

from pathlib import Path

import click

from codex_orch.cli.common import epilog


@click.command(
    epilog=epilog(
        [
            "codex-orch worker --temporal-address temporal.internal:7233 --task-queue codex-orch",
            "codex-orch worker --repo /srv/clones/app --max-tasks 2",
        ],
        {0: "stopped by Ctrl-C or SIGTERM", 2: "bad input"},
    )
)
@click.option("--temporal-address", default="127.0.0.1:7233", show_default=True, help="HOST:PORT of Temporal.")
@click.option("--namespace", default="default", show_default=True, help="The Temporal namespace.")
@click.option("--task-queue", default="codex-orch", show_default=True, help="The queue runs send their tasks to.")
@click.option(
    "--repo",
    "clone",
    type=click.Path(path_type=Path, file_okay=False),
    help="This worker's clone of the project (default: the repository around the current directory).",
)
@click.option("--max-tasks", type=click.IntRange(min=1), default=1, show_default=True, help="Tasks at once.")
@click.option(
    "--partial-every",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds between pushes of a running task's work in progress.",
)
@click.option("--identity", help="This worker's name in Temporal and in the run's record (default: host:pid).")
def worker(
    temporal_address: str,
    namespace: str,
    task_queue: str,
    clone: Path | None,
    max_tasks: int,
    partial_every: float,
    identity: str | None,
) -> None:
    """Run Temporal runs' tasks here (executor: temporal)."""
    import asyncio

    from codex_orch.cli.common import repo
    from codex_orch.engine.executors import load_optional

    root = repo() if clone is None else Path(clone).resolve()
    serve = load_optional("temporal", "codex_orch.temporal.worker")
    identity = identity or serve.default_identity()
    click.echo(f"codex-orch worker {identity}: {temporal_address} / {task_queue}, clone {root}", err=True)
    try:
        asyncio.run(serve.serve(temporal_address, namespace, task_queue, root, identity, max_tasks, partial_every))
    except KeyboardInterrupt:
        pass
