"""`status` and `report`: reading a run."""

from __future__ import annotations

import json

import click

from codex_orch.cli.common import latest_run, repo, say, stdout_console
from codex_orch.errors import OrchError


@click.command()
@click.option("--run-id", help="The run (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", is_flag=True, help="Refresh until the run ends (Ctrl-C to stop watching).")
def status(run_id: str | None, as_json: bool, watch: bool) -> None:
    """Show a run's tasks and their state."""
    from codex_orch.cli.render import print_status, status_table
    from codex_orch.commands.views import build_view, view_to_json
    from codex_orch.layout import Layout, id_problem
    from codex_orch.state import read_state

    layout = Layout(repo())
    run_id = run_id or latest_run(layout.runs_dir)
    if id_problem(run_id) or not layout.run_dir(run_id).is_dir():
        raise OrchError(f"--run-id: no run {run_id!r} in {layout.runs_dir}")
    if as_json:
        click.echo(json.dumps(view_to_json(build_view(read_state(layout.run_dir(run_id)))), indent=2))
        return
    console = stdout_console()
    if not watch:
        print_status(console, build_view(read_state(layout.run_dir(run_id))))
        return
    import time

    from rich.live import Live

    with Live(console=console, auto_refresh=False) as live:
        while True:
            view = build_view(read_state(layout.run_dir(run_id)))
            live.update(status_table(view), refresh=True)
            if view.status != "running":
                break
            time.sleep(0.5)


@click.command()
@click.option("--run-id", required=True, help="The run.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries report_version).")
def report(run_id: str, as_json: bool) -> None:
    """Write runs/<id>/report.md and print it: tasks, attempts, failures, tokens, commits, findings."""
    from codex_orch.commands.report import report_json, write_report

    path, data = write_report(repo(), run_id)
    if as_json:
        click.echo(json.dumps(report_json(data), indent=2))
        return
    stdout_console().file.write(path.read_text("utf-8"))
    say(f"written to {path}", err=True)
