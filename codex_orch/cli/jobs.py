"""`jobs add|list|show|continue|cancel|delete|cleanup`: the job queue of `codex-orch serve`, from the shell.

Each command opens the queue's database directly (the same one the service's workers claim from), calls
one operation of service/jobs.py and renders its result; `--json` prints that result as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from codex_orch.cli.common import emit_json, epilog, repo, say

STATUS_CHOICE = click.Choice(["pending", "running", "awaiting_input", "done", "failed", "cancelled"])
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries json_version).")


def _call(operation: Callable[[Any], Any]) -> Any:
    from codex_orch.service.jobs import JobService

    service = JobService(repo())
    try:
        return operation(service)
    finally:
        service.close()


def _line(job: dict[str, Any]) -> str:
    extra = job.get("question") or job.get("error") or ""
    commit = (job.get("commit") or "")[:12]
    return (
        f"{job['id']:>5}  {job['status']:<15} {job['run_id']:<12} {job.get('branch') or '-'} {commit} {extra}".rstrip()
    )


def _show(kind: str, value: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(kind, value)
    else:
        say(_line(value) if "id" in value else json.dumps(value, indent=2))


@click.group(
    epilog=epilog(
        ["codex-orch jobs add 'Add a --verbose flag'", "codex-orch jobs list --json"],
        {0: "done", 2: "refused (one line says why)"},
    )
)
def jobs() -> None:
    """Queue, list, continue, cancel and clean up jobs."""


@jobs.command("add")
@click.argument("prompt", required=False)
@click.option("--plan-file", type=click.Path(path_type=Path), help="A whole plan instead of PROMPT.")
@click.option("--role", help="The task's role (default: implementer).")
@click.option("--acceptance", help="Acceptance criteria.")
@click.option("--context-file", "context_files", multiple=True, help="A file the agent reads first (repeatable).")
@click.option("--base-ref", help="The commit the job starts from (default: its branch's tip, else git.base_ref).")
@click.option("--branch", help="The branch that receives the work (jobs on one branch run one after another).")
@click.option("--feature-id", help="Names the branch feature/ID.")
@click.option("--push", type=click.Choice(["never", "always"]), help="always: push the branch to origin when done.")
@click.option("--agent", help="The agent (codex, claude, gemini).")
@json_option
def add(
    prompt: str | None, plan_file: Path | None, as_json: bool, context_files: tuple[str, ...], **options: Any
) -> None:
    """Queue a job: PROMPT (one task) or --plan-file."""
    from codex_orch.errors import InputError
    from codex_orch.plan_file import read_json_file

    if (prompt is None) == (plan_file is None):
        raise InputError("jobs add: give PROMPT or --plan-file (one of them)")
    request: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if plan_file is not None:
        request["plan"] = read_json_file(plan_file, str(plan_file))
    else:
        request["prompt"] = prompt
    if context_files:
        request["context_files"] = list(context_files)
    _show("job", _call(lambda s: s.add(request)), as_json)
    if not as_json:
        _say_if_no_service()


def _say_if_no_service() -> None:
    from codex_orch.service.server import running_service

    if running_service(repo()) is None:
        say("no `codex-orch serve` (nor `codex-orch worker`) is running here: the job waits for one", err=True)


@jobs.command("list")
@click.option("--status", "statuses", multiple=True, type=STATUS_CHOICE, help="Only these statuses (repeatable).")
@json_option
def list_jobs(statuses: tuple[str, ...], as_json: bool) -> None:
    """List the jobs, oldest first."""
    found = _call(lambda s: s.list_jobs(statuses))
    if as_json:
        emit_json("jobs", {"jobs": found})
        return
    say([_line(job) for job in found] or ["no jobs"])


@jobs.command("show")
@click.argument("job_id", type=int)
@json_option
def show(job_id: int, as_json: bool) -> None:
    """One job: its request, status, run, branch, commit, question or error."""
    job = _call(lambda s: s.show(job_id))
    if as_json:
        emit_json("job", job)
    else:
        say(json.dumps(job, indent=2))


@jobs.command("continue")
@click.argument("job_id", type=int)
@click.argument("prompt")
@json_option
def continue_(job_id: int, prompt: str, as_json: bool) -> None:
    """Send a follow-up to a done or awaiting_input job: its agent thread goes on in its run."""
    _show("job", _call(lambda s: s.continue_job(job_id, prompt)), as_json)


@jobs.command("cancel")
@click.argument("job_id", type=int)
@json_option
def cancel(job_id: int, as_json: bool) -> None:
    """Cancel a job (a running one is stopped by its worker; its run can be resumed)."""
    _show("job", _call(lambda s: s.cancel(job_id)), as_json)


@jobs.command("delete")
@click.argument("job_id", type=int)
@json_option
def delete(job_id: int, as_json: bool) -> None:
    """Forget a pending or finished job (never a running or awaiting_input one); its run stays."""
    deleted = _call(lambda s: s.delete(job_id))
    if as_json:
        emit_json("deleted", deleted)
    else:
        run = deleted["run_id"]
        say(f"deleted job {job_id} ({deleted['status']}); its run {run} stays (`codex-orch clean --run-id {run}`)")


@jobs.command("cleanup")
@click.option("--status", "statuses", multiple=True, type=click.Choice(["done", "failed", "cancelled"]))
@click.option("--older-than-hours", type=click.FloatRange(min=0), default=0, help="Only jobs finished longer ago.")
@click.option("--apply", is_flag=True, help="Do it (default: a dry run that says what would be done).")
@json_option
def cleanup(statuses: tuple[str, ...], older_than_hours: float, apply: bool, as_json: bool) -> None:
    """Clean finished jobs' runs (clean's rules: unmerged work is kept) and forget them. A dry run by default."""
    from codex_orch.service.store import FINISHED

    result = _call(lambda s: s.cleanup(statuses or FINISHED, older_than_hours, apply))
    if as_json:
        emit_json("cleanup", result)
        return
    verb = "cleaned" if apply else "would clean"
    for entry in result["jobs"]:
        kept = " (kept: holds work that is not merged)" if entry["kept"] else ""
        say(f"{verb} job {entry['id']} ({entry['status']}, run {entry['run_id']}){kept}")
    if not result["jobs"]:
        say("no finished job matches")
    elif not apply:
        say("dry run: nothing changed; --apply does it", err=True)
