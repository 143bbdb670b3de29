"""A run's report as CI systems read it: a JUnit XML file and a GitHub Actions step summary.

Both render the same `Report` that report.md and --json come from (commands/report.py). A task is a
test case: succeeded passes; failed carries a <failure> of its failure kind (failures.py); a task
that never ran to an end (blocked, cancelled, interrupted, pending, running) is <skipped> with why.
The XML is built with xml.etree; the agents' text may hold characters XML 1.0 forbids, which are
written out visibly (`\\x1b`, `\\ud800`) rather than dropped or left to break the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree as ET

from codex_orch import __version__
from codex_orch.atomic import atomic_write
from codex_orch.commands.report import Report, agent_time
from codex_orch.commands.views import TaskView
from codex_orch.errors import InputError
from codex_orch.failures import FAILURES, FailureKind
from codex_orch.redaction import Redactor

# Everything but the characters XML 1.0 allows (its production `Char`): C0 controls other than tab,
# newline and carriage return, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SKIP_REASON = {
    "pending": "not run",
    "running": "still running",
    "interrupted": "interrupted",
    "cancelled": "cancelled",
    "blocked": "blocked",
}


def xml_text(value: object) -> str:
    """`value` as text XML 1.0 can carry: each forbidden character becomes its visible escape."""
    return _NOT_XML_CHAR.sub(_escape, str(value))


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def failure_kind(task: TaskView) -> str | None:
    """The kind that ended a task that did not succeed: its error, else its last failed attempt's."""
    if task.status == "succeeded":
        return None
    if task.error_kind:
        return task.error_kind
    failed = task.failure_kinds
    return failed[-1] if failed else None


# --- JUnit ---------------------------------------------------------------------------------------
def _seconds(value: float | None) -> str:
    return f"{max(value or 0.0, 0.0):.3f}"  # the schema's time: digits, at most three decimals


def _sub(parent: ET.Element | None, tag: str, text: object = None, **attrs: object) -> ET.Element:
    values = {k: xml_text(v) for k, v in attrs.items() if v is not None}
    element = ET.Element(tag, values) if parent is None else ET.SubElement(parent, tag, values)
    if text is not None:
        element.text = xml_text(text)
    return element


def task_output(task: TaskView) -> str:
    """What system-out holds for a task: the agent's summary, the commit, the files, the tokens."""
    result = task.result if isinstance(task.result, dict) else {}
    u = task.usage
    lines = [
        f"status: {task.status}",
        f"summary: {result.get('summary') or '-'}",
        f"commit: {task.commit or '-'}" + (f" on {task.branch}" if task.commit and task.branch else ""),
        f"files: {', '.join(task.files_changed) or '-'}",
        f"tokens: input {u.input_tokens} (cached {u.cached_input_tokens}, cache write "
        f"{u.cache_write_input_tokens}), output {u.output_tokens} (reasoning {u.reasoning_output_tokens})",
        f"attempts: {len(task.attempts)}; agent time {agent_time(task):.1f}s",
    ]
    if task.blocked_by:
        lines.append(f"waits for: {', '.join(task.blocked_by)}")
    return "\n".join(lines) + "\n"


def _failure_details(task: TaskView, kind: str) -> str:
    lines = [f"attempt {a.n}: {a.failure}: {a.failure_message}" for a in task.attempts if a.failure]
    try:
        lines.append(f"hint: {FAILURES[FailureKind(kind)].hint}")
    except ValueError:  # not a failure of an attempt ("failed" without a kind)
        pass
    return "\n".join(lines) + "\n" if lines else ""


def _wall_time(report: Report) -> float:
    """The run's time from start to end (parallel tasks overlap); the tasks' sum while it has no end."""
    view = report.view
    if view.created_at and view.ended_at:
        return (datetime.fromisoformat(view.ended_at) - datetime.fromisoformat(view.created_at)).total_seconds()
    return sum(t.duration or 0.0 for t in view.tasks)


def junit_xml(report: Report) -> bytes:
    view = report.view
    failed = [t for t in view.tasks if t.status == "failed"]
    skipped = [t for t in view.tasks if t.status not in ("succeeded", "failed")]
    counts = {"tests": len(view.tasks), "failures": len(failed), "errors": 0, "skipped": len(skipped)}
    total = _seconds(_wall_time(report))
    totals = {k: counts[k] for k in ("tests", "failures", "errors")}  # <testsuites> has no "skipped"
    root = _sub(None, "testsuites", name="codex-orch", time=total, **totals)
    started = datetime.fromisoformat(view.created_at).isoformat(timespec="seconds") if view.created_at else None
    suite = _sub(root, "testsuite", name=f"codex-orch run {view.run_id}", time=total, timestamp=started, **counts)
    props = _sub(suite, "properties")
    for name, value in (
        ("run_id", view.run_id),
        ("status", view.status),
        ("goal", report.goal),
        ("base_branch", report.base_branch or ""),
        ("base_commit", view.base_commit or ""),
        ("branch", view.branch or ""),
        ("codex_orch_version", __version__),
    ):
        _sub(props, "property", name=name, value=value)
    for task in view.tasks:
        classname = f"{view.run_id}.{task.role}"
        case = _sub(suite, "testcase", name=task.id, classname=classname, time=_seconds(task.duration))
        kind = failure_kind(task)
        if task.status == "failed":
            message = task.error_message or next((a.failure_message for a in reversed(task.attempts) if a.failure), "")
            _sub(case, "failure", _failure_details(task, kind or ""), type=kind or "failed", message=message)
        elif task.status != "succeeded":
            reason = _SKIP_REASON.get(task.status, task.status)
            if task.error_message:
                reason += f": {task.error_message}"
            _sub(case, "skipped", type=kind or task.status, message=reason)
        _sub(case, "system-out", task_output(task))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(path: Path, report: Report) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, junit_xml(report))
    return path


# --- GitHub step summary -------------------------------------------------------------------------
def _cell(value: object) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def github_summary(report: Report) -> str:
    """A short markdown section: one row per task and a line of totals. Only values codex-orch made
    (ids, roles, statuses, kinds, shas, numbers): none of the agents' own words."""
    view = report.view
    lines = [
        f"### codex-orch run `{view.run_id}`: {view.status}",
        "",
        "| task | role | status | failure kind | commit | tokens in/out |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t in view.tasks:
        commit = f"`{t.commit[:10]}`" if t.commit else "-"
        lines.append(
            f"| {_cell(t.id)} | {_cell(t.role)} | {t.status} | {_cell(failure_kind(t) or '-')} | {commit} "
            f"| {t.usage.input_tokens}/{t.usage.output_tokens} |"
        )
    counts = ", ".join(f"{n} {status}" for status, n in sorted(view.counts.items()))
    u = view.usage
    lines += [
        "",
        f"**Totals:** {len(view.tasks)} tasks ({counts}); {report.attempts} attempts; tokens in {u.input_tokens}, "
        f"out {u.output_tokens}; agent time {report.agent_time:.1f}s",
    ]
    return "\n".join(lines) + "\n"


def append_github_summary(path: Path, report: Report) -> Path:
    """Append the section to the step summary file (GitHub creates it; each call adds one section)."""
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(("\n" if fh.tell() else "") + github_summary(report))
    except OSError as exc:
        raise InputError(
            f"--github-summary: cannot append to {path} (GITHUB_STEP_SUMMARY): {exc.strerror}",
            "GitHub Actions sets it to a writable file; check what the job sets it to.",
        ) from exc
    return path


# --- all the CI outputs of one `report` -----------------------------------------------------------
@dataclass(frozen=True)
class CiRequest:
    junit: Path | None = None
    github_summary: bool = False
    summary_file: Path | None = None  # $GITHUB_STEP_SUMMARY; None when unset or empty
    bundle: Path | None = None
    force: bool = False  # --bundle may replace an existing file


@dataclass(frozen=True)
class CiPlan:
    request: CiRequest
    redactor: Redactor | None  # the bundle's, when one is asked for


def plan_ci_outputs(request: CiRequest, root: Path, run_folder: Path) -> CiPlan:
    """Every refusal before anything is written (the report included)."""
    if request.junit is not None and request.junit.is_dir():
        raise InputError(f"--junit: {request.junit} is a directory.", "Name the XML file to write.")
    summary = request.summary_file
    if request.github_summary and summary is not None and (summary.is_dir() or not summary.parent.is_dir()):
        raise InputError(
            f"--github-summary: GITHUB_STEP_SUMMARY names {summary}, which is not a file that can be appended to.",
            "GitHub Actions sets it to a writable file; check what the job sets it to.",
        )
    if request.bundle is None:
        return CiPlan(request, None)
    from codex_orch.commands.bundle import bundle_redactor, check_destination

    check_destination(request.bundle, run_folder, request.force)
    return CiPlan(request, bundle_redactor(root))


def write_ci_outputs(plan: CiPlan, report: Report, run_folder: Path) -> list[str]:
    """Write what was asked for; return the lines that say where each went (for stderr)."""
    request, said = plan.request, []
    if request.junit is not None:
        said.append(f"junit: written to {write_junit(request.junit, report)}")
    if request.github_summary:
        if request.summary_file is None:
            said.append("github summary: GITHUB_STEP_SUMMARY is not set (not in GitHub Actions?); no summary written")
        else:
            said.append(f"github summary: appended to {append_github_summary(request.summary_file, report)}")
    if request.bundle is not None and plan.redactor is not None:
        from codex_orch.commands.bundle import write_bundle

        made = write_bundle(run_folder, report.view, request.bundle, request.force, plan.redactor)
        said.append(f"bundle: written to {made.path} ({len(made.files)} files, {len(made.left_out)} left out)")
    return said
