"""`worker`: run this repository's queued jobs (the job service, docs/service.md), or with
--temporal-address serve Temporal runs from this machine (executor: temporal; docs/scale-out.md)."""

from __future__ import annotations

from pathlib import Path

import click

from codex_orch.cli.common import epilog


@click.command(
    epilog=epilog(
        [
            "codex-orch worker --count 4",
            "codex-orch worker --temporal-address temporal.internal:7233 --task-queue codex-orch",
            "codex-orch worker --temporal-address 127.0.0.1:7233 --repo /srv/clones/app --max-tasks 2",
        ],
        {0: "stopped by Ctrl-C or SIGTERM", 2: "bad input"},
    )
)
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True, help="Jobs run at once (job queue).")
@click.option(
    "--lease",
    type=click.FloatRange(min=1),
    default=30,
    show_default=True,
    help="Seconds a job's claim lasts unrenewed.",
)
@click.option("--temporal-address", help="HOST:PORT of Temporal: serve Temporal runs instead of the job queue.")
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
    count: int,
    lease: float,
    temporal_address: str | None,
    namespace: str,
    task_queue: str,
    clone: Path | None,
    max_tasks: int,
    partial_every: float,
    identity: str | None,
) -> None:
    """Run queued jobs, or Temporal runs' tasks (--temporal-address)."""
    import asyncio

    if temporal_address is None:
        from codex_orch.cli.service import job_worker

        job_worker(count, lease)
        return

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
