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
    run_id: str, as_json: bool, junit: str | None, github_summary: bool, bundle: str | None, force: bool
) -> None:
    """Write runs/<id>/report.md and print it: tasks, attempts, failures, tokens, commits, findings.

    \b
    Example, at the end of a CI job:
      codex-orch report --run-id ci-42 --junit junit.xml --github-summary --bundle run.tar.gz
    Exit codes: 0 written (whatever the run's outcome); 2 bad input (unknown run, --bundle file exists).
    """
    import os
    from pathlib import Path

    from codex_orch.commands.ci_report import CiRequest, plan_ci_outputs, write_ci_outputs
    from codex_orch.commands.report import report_json, write_report
    from codex_orch.commands.runs import run_dir
    from codex_orch.layout import Layout

    root = repo()
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    request = CiRequest(
        junit=Path(junit) if junit else None,
        github_summary=github_summary,
        summary_file=Path(summary) if summary else None,
        bundle=Path(bundle) if bundle else None,
        force=force,
    )
    ci = plan_ci_outputs(request, root, run_dir(Layout(root), run_id))
    path, data = write_report(root, run_id)
    if as_json:
        click.echo(json.dumps(report_json(data), indent=2))
    else:
        stdout_console().file.write(path.read_text("utf-8"))
        say(f"written to {path}", err=True)
    for line in write_ci_outputs(ci, data, path.parent):
        say(line, err=True)
