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
    from codex_orch.run_record import read_record

    layout = checked_layout()
    folder = run_dir(layout, run_id_or_latest(layout, run_id))
    if as_json:
        click.echo(json.dumps(view_to_json(build_view(read_record(folder))), indent=2))
        return
    if not watch:
        print_status(stdout_console(), build_view(read_record(folder)))
        return
    import time

    from rich.live import Live

    from codex_orch.cli.render import make_console

    console = make_console(live=True)

    with Live(console=console, auto_refresh=False) as live:
        while True:
            view = build_view(read_record(folder))
            live.update(status_table(view), refresh=True)
            if view.status != "running":
                break
            time.sleep(0.5)


@click.command(
    epilog=epilog(
        [
            "codex-orch report",
            "codex-orch report --run-id 20261125-101500-ab12 --json > report.json",
            "codex-orch report --run-id ci-42 --junit junit.xml --github-summary --bundle run.tar.gz",
        ],
        {
            0: "written (whatever the run's outcome: the JUnit file is what makes CI red)",
            2: "no such run, an invalid orchestrator.yaml, or --bundle's file exists",
        },
    )
)
@click.option("--run-id", help="The run (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries report_version).")
@click.option(
    "--junit",
    type=click.Path(),
    help="Also write a JUnit XML file: one test case per task (for CI test reports).",
)
@click.option(
    "--github-summary",
    is_flag=True,
    help="Also append a markdown summary to $GITHUB_STEP_SUMMARY (GitHub Actions); without it set, only a note.",
)
@click.option(
    "--bundle",
    type=click.Path(),
    help="Also write the run folder, redacted, with an index, as a .tar.gz (to attach to a CI job).",
)
@click.option("--force", is_flag=True, help="Let --bundle replace an existing file.")
def report(
    run_id: str | None, as_json: bool, junit: str | None, github_summary: bool, bundle: str | None, force: bool
) -> None:
    """Write and print a run's report (tasks, failures, tokens)."""
    import os
    from pathlib import Path

    from codex_orch.commands.ci_report import CiRequest, plan_ci_outputs, write_ci_outputs
    from codex_orch.commands.report import report_json, write_report
    from codex_orch.commands.runs import run_dir

    layout = checked_layout()
    run_id = run_id_or_latest(layout, run_id)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    request = CiRequest(
        junit=Path(junit) if junit else None,
        github_summary=github_summary,
        summary_file=Path(summary) if summary else None,
        bundle=Path(bundle) if bundle else None,
        force=force,
    )
    ci = plan_ci_outputs(request, layout.root, run_dir(layout, run_id))
    path, data = write_report(layout.root, run_id)
    if as_json:
        click.echo(json.dumps(report_json(data), indent=2))
    else:
        stdout_console().file.write(path.read_text("utf-8"))
        say(f"written to {path}", err=True)
    for line in write_ci_outputs(ci, data, path.parent):
        say(line, err=True)
