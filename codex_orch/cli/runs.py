"""`runs`, `status` and `report`: reading runs. Each takes the latest run when --run-id is not given."""

from __future__ import annotations

import json

import click

from codex_orch.cli.common import checked_layout, emit_json, epilog, run_id_or_latest, say, stdout_console


@click.command(
    epilog=epilog(
        ["codex-orch runs", "codex-orch runs --json | jq '.runs[-1].run_id'"],
        {0: "listed (also when there are none)", 2: "not in a git repository, or an invalid orchestrator.yaml"},
    )
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries json_version).")
def runs(as_json: bool) -> None:
    """List the runs of this repository, oldest first."""
    from codex_orch.commands.runs import list_runs

    found = list_runs(checked_layout())
    if as_json:
        emit_json("runs", {"runs": [r.to_json() for r in found]})
        return
    if not found:
        say("no runs yet; start one with `codex-orch run --plan-file PLAN`")
        return
    from codex_orch.cli.render import runs_table

    stdout_console().print(runs_table(found))


@click.command(
    epilog=epilog(
        ["codex-orch status", "codex-orch status --run-id 20261125-101500-ab12 --watch", "codex-orch status --json"],
        {0: "shown", 2: "no such run, no runs at all, or an invalid orchestrator.yaml"},
    )
)
@click.option("--run-id", help="The run (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries report_version).")
@click.option("--watch", is_flag=True, help="Refresh until the run ends (Ctrl-C to stop watching).")
def status(run_id: str | None, as_json: bool, watch: bool) -> None:
    """Show a run's tasks and their state."""
    from codex_orch.cli.render import print_status, status_table
    from codex_orch.commands.runs import run_dir
    from codex_orch.commands.views import build_view, view_to_json
    from codex_orch.state import read_state

    layout = checked_layout()
    folder = run_dir(layout, run_id_or_latest(layout, run_id))
    if as_json:
        click.echo(json.dumps(view_to_json(build_view(read_state(folder))), indent=2))
        return
    console = stdout_console()
    if not watch:
        print_status(console, build_view(read_state(folder)))
        return
    import time

    from rich.live import Live

    with Live(console=console, auto_refresh=False) as live:
        while True:
            view = build_view(read_state(folder))
            live.update(status_table(view), refresh=True)
            if view.status != "running":
                break
            time.sleep(0.5)


@click.command(
    epilog=epilog(
        ["codex-orch report", "codex-orch report --run-id 20261125-101500-ab12 --json > report.json"],
        {0: "written", 2: "no such run, no runs at all, or an invalid orchestrator.yaml"},
    )
)
@click.option("--run-id", help="The run (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries report_version).")
def report(run_id: str | None, as_json: bool) -> None:
    """Write and print a run's report (tasks, failures, tokens)."""
    from codex_orch.commands.report import report_json, write_report

    layout = checked_layout()
    path, data = write_report(layout.root, run_id_or_latest(layout, run_id))
    if as_json:
        click.echo(json.dumps(report_json(data), indent=2))
        return
    stdout_console().file.write(path.read_text("utf-8"))
    say(f"written to {path}", err=True)
