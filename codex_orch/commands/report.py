"""`codex-orch report`: a run's story as data (JSON with report_version) and as markdown.

Both are built from the same view (views.py) plus what the lifecycle commands recorded (merge,
validation, clean); rendering never reads the state itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_orch.agents.base import Usage
from codex_orch.atomic import atomic_write
from codex_orch.commands.logs import FailureDigest, failure_digest
from codex_orch.commands.runs import run_dir
from codex_orch.commands.views import RunView, TaskView, build_view, view_to_json
from codex_orch.engine.accounting import describe
from codex_orch.layout import Layout
from codex_orch.run_record import RunRecord, read_record
from codex_orch.state import read_state

REPORT_VERSION = 1
REPORT_NAME = "report.md"


@dataclass(frozen=True)
class Report:
    view: RunView
    goal: str
    base_branch: str | None
    merge: Mapping[str, Any] | None
    validation: Mapping[str, Any] | None
    cleaned: Mapping[str, Any] | None
    failures: tuple[FailureDigest, ...] = ()  # why each failed task failed (its run folder's events)
    integration: Mapping[str, Any] | None = None  # the merge queue's last outcome (commands/integration.py)

    @property
    def attempts(self) -> int:
        return sum(len(t.attempts) for t in self.view.tasks)

    @property
    def agent_time(self) -> float:
        return round(sum(agent_time(t) for t in self.view.tasks), 3)


def agent_time(task: TaskView) -> float:
    return round(sum(a.duration or 0.0 for a in task.attempts), 3)


def _items(task: TaskView, key: str) -> list[Any]:
    value = (task.result or {}).get(key) if isinstance(task.result, dict) else None
    return list(value) if isinstance(value, list) else []


def build_report(run: RunRecord, folder: Path | None = None) -> Report:
    """The report of a run; with its folder, the failure digest from its attempts' files too."""
    return Report(
        view=build_view(run),
        goal=run.goal,
        base_branch=run.base_branch,
        merge=run.merge,
        validation=run.validation,
        cleaned=run.cleaned,
        failures=tuple(failure_digest(folder, read_state(folder))) if folder is not None else (),
        integration=run.integration,
    )


def write_report(root: Path, run_id: str) -> tuple[Path, Report]:
    """Build the run's report and write report.md in its folder."""
    folder = run_dir(Layout(root), run_id)
    report = build_report(read_record(folder), folder)
    path = folder / REPORT_NAME
    # backslashreplace: a run recorded before agents' values were checked may hold a lone surrogate
    atomic_write(path, report_markdown(report).encode("utf-8", "backslashreplace"))
    return path, report


# --- JSON ----------------------------------------------------------------------------------------
def report_json(report: Report) -> dict[str, Any]:
    data = view_to_json(report.view)
    data["report_version"] = REPORT_VERSION
    data["goal"] = report.goal
    data["base_branch"] = report.base_branch
    data["totals"] = {
        "tasks": len(report.view.tasks),
        "attempts": report.attempts,
        "agent_time": report.agent_time,
        "usage": report.view.usage.to_json(),
        "cost_usd": report.view.cost_usd,
    }
    for task, entry in zip(report.view.tasks, data["tasks"], strict=True):
        result = task.result if isinstance(task.result, dict) else {}
        entry["failure_kinds"] = list(task.failure_kinds)
        entry["agent_time"] = agent_time(task)
        entry["summary"] = result.get("summary")
        for key in ("risks", "decisions", "findings", "next_tasks"):
            entry[key] = _items(task, key)
    data["failures"] = [f.to_json() for f in report.failures]
    data["merge"] = report.merge
    data["integration"] = report.integration
    data["validation"] = report.validation
    data["cleaned"] = report.cleaned
    return data


# --- markdown ------------------------------------------------------------------------------------
def _cell(value: object) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def spend_line(view: RunView) -> str:
    """The run's cost in one line: "$1.2345", and what is not in it ("cost unknown: no price for model X")."""
    known = f"${view.cost_usd:.4f}"
    if view.cost_unknown:
        return f"{known} for the attempts priced; cost unknown: {'; '.join(view.cost_unknown)} (tokens only)"
    return known


def _tokens(usage: Usage) -> str:
    return (
        f"input {usage.input_tokens} (cached {usage.cached_input_tokens}, cache write "
        f"{usage.cache_write_input_tokens}), output {usage.output_tokens} (reasoning {usage.reasoning_output_tokens})"
    )


def report_markdown(report: Report) -> str:
    view = report.view
    counts = ", ".join(f"{n} {status}" for status, n in sorted(view.counts.items()))
    where = f"branch `{view.branch}` (shared worktree)" if view.single_workspace else "one branch per task"
    lines = [
        f"# codex-orch run {view.run_id} — {view.status}",
        "",
        f"**Goal:** {_cell(report.goal) or '(none)'}",
        "",
        f"- Created {view.created_at or '-'}, ended {view.ended_at or '-'}",
        f"- Base: `{report.base_branch or '(detached)'}` at `{(view.base_commit or '-')[:12]}`; work on {where}",
        f"- Tasks: {len(view.tasks)} ({counts}); attempts: {report.attempts}; agent time: {_secs(report.agent_time)}",
        f"- Tokens: {_tokens(view.usage)}",
        f"- Cost: {spend_line(view)}",
        "",
        "## Tasks",
        "",
        "| task | role | agent | status | attempts | failures | time | tokens in/out | commit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in view.tasks:
        lines.append(
            f"| {t.id} | {t.role} | {t.agents} | {t.status} | {len(t.attempts)} | {', '.join(t.failure_kinds) or '-'} "
            f"| {_secs(t.duration)} | {t.usage.input_tokens}/{t.usage.output_tokens} | {(t.commit or '-')[:10]} |"
        )
    lines += _failures_section(report.failures)
    for t in view.tasks:
        lines += ["", *_task_section(t)]
    lines += _integration_section(report.integration) + _merge_section(report.merge)
    lines += _validation_section(report.validation)
    return "\n".join(lines) + "\n"


def _task_section(t: TaskView) -> list[str]:
    result = t.result if isinstance(t.result, dict) else {}
    lines = [f"## {t.id} ({t.role}) — {t.status}", ""]
    if result.get("summary"):
        lines += [_cell(result["summary"]), ""]
    if t.blocked_by:
        lines.append(f"- Waits for: {', '.join(t.blocked_by)}")
    lines.append(f"- Time: {_secs(t.duration)} (agent {_secs(agent_time(t))}); tokens: {_tokens(t.usage)}")
    unknown = f"; cost unknown: {', '.join(t.cost_unknown)}" if t.cost_unknown else ""
    lines.append(f"- Agent: {t.agents}" + (f"; cost {_usd(t.cost_usd)}" if t.cost_usd is not None else "") + unknown)
    if t.commit:
        lines.append(f"- Commit: `{t.commit}` on `{t.branch}`")
    elif t.status == "succeeded":
        lines.append("- Commit: none (no changes)")
    if t.files_changed:
        lines.append("- Files changed: " + ", ".join(f"`{f}`" for f in t.files_changed))
    if t.violations:
        lines.append("- Changed outside its paths (set aside): " + ", ".join(f"`{f}`" for f in t.violations))
    if t.file_claims:
        lines.append(f"- **Flagged:** {_cell(describe(t.file_claims))}")
    if t.error_kind:
        lines.append(f"- Error: {t.error_kind}: {_cell(t.error_message or '')}")
    lines += [f"- {_cell(note)}" for note in t.notes]
    return lines + _checks_lines(t) + _attempts_table(t) + _answer_lists(t)


def _attempts_table(t: TaskView) -> list[str]:
    if not t.attempts:
        return []
    lines = [
        "",
        "| attempt | agent (model) | thread | outcome | time | input | cached | cache write | output "
        "| reasoning | cost |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for a in t.attempts:
        outcome = f"{a.failure}: {_cell(a.failure_message)[:120]}" if a.failure else "ok"
        runs_on = _cell(a.runs_on) + (f" (after {a.fallback_from})" if a.fallback_from else "")
        u = a.usage
        lines.append(
            f"| {a.n} | {runs_on} | {(a.thread_id or '-')[:13]} | {_cell(outcome)} | {_secs(a.duration)} "
            f"| {u.input_tokens} | {u.cached_input_tokens} | {u.cache_write_input_tokens} | {u.output_tokens} "
            f"| {u.reasoning_output_tokens} | {_usd(a.cost_usd)} |"
        )
    return lines


def _answer_lists(t: TaskView) -> list[str]:
    """What the agent's answer listed: risks, decisions, findings, proposed tasks."""
    lines: list[str] = []
    for title, key, fmt in (
        ("Risks", "risks", _cell),
        ("Decisions", "decisions", _decision),
        ("Reviewer findings", "findings", _finding),
        ("Proposed next tasks", "next_tasks", lambda n: f"{_cell(n.get('role', '?'))}: {_cell(n.get('prompt', ''))}"),
    ):
        items = _items(t, key)
        if items:
            lines += ["", f"**{title}**", ""] + [f"- {fmt(item)}" for item in items]
    return lines


def _failures_section(failures: tuple[FailureDigest, ...]) -> list[str]:
    """Why each failed task failed: its error, the last command that failed and its output, the validator."""
    if not failures:
        return []
    lines = ["", "## Failures", ""]
    for f in failures:
        attempts = f"{f.attempts} attempt" + ("s" if f.attempts != 1 else "")
        lines += [f"### {f.task} ({f.role}): {f.error_kind or 'failed'} after {attempts}", ""]
        lines += [_cell(f.error_message or "(no message)"), ""]
        if f.command is not None:
            where = f"attempt {f.command.attempt}, exit {f.command.exit_code}"
            lines.append(f"Last failed command ({where}): `{_cell(f.command.text)}`")
            if f.command.output.strip():
                tail = "\n".join(f.command.output.rstrip().splitlines()[-15:]).replace("~~~", "~ ~ ~")
                lines += ["", "~~~", tail, "~~~"]
            lines.append("")
        if f.validation:
            lines += ["Validator:", "", *(f"- {_cell(line)}" for line in f.validation), ""]
    return lines


def _checks_lines(t: TaskView) -> list[str]:
    """Its worktree's setup, each gate run and the fix rounds."""
    lines = []
    if t.setup is not None:
        outcome = "ok" if t.setup.get("ok") else f"failed: {_cell((t.setup.get('failed') or {}).get('why', ''))}"
        lines.append(f"- Setup: {outcome} in {_secs(t.setup.get('seconds'))}, log `{t.setup.get('log')}`")
    for run in t.gates:
        outcome = "passed" if run.get("ok") else "timed out" if run.get("timed_out") else f"exit {run.get('exit_code')}"
        lines.append(
            f"- Gate `{run['name']}` (attempt {run.get('n')}): {outcome} in {_secs(run.get('seconds'))}, "
            f"log `{run.get('log')}`"
        )
    if t.fix_rounds:
        lines.append(f"- Fix rounds: {t.fix_rounds}")
    return lines


def _decision(item: Any) -> str:
    if not isinstance(item, dict):
        return _cell(item)
    rationale = _cell(item.get("rationale", ""))
    return f"**{_cell(item.get('decision', ''))}**" + (f" — {rationale}" if rationale else "")


def _finding(item: Any) -> str:
    if not isinstance(item, dict):
        return _cell(item)
    where = item.get("file") or ""
    if where and item.get("line") is not None:
        where += f":{item['line']}"
    return f"[{item.get('severity', '?')}] " + (f"`{where}` — " if where else "") + _cell(item.get("message", ""))


def _integration_section(queue: Mapping[str, Any] | None) -> list[str]:
    """The merge queue's last outcome (commands/integration.py): the canary, each doctor run, the culprit."""
    if not queue:
        return []
    lines = ["", "## Integration queue", ""]
    canary = queue.get("canary")
    if canary:
        verdict = "passed: the doctor cannot fail, so it was not trusted" if canary["ok"] else "failed, as it must"
        lines.append(f"- Canary (CODEX_ORCH_CANARY=1): exit {canary['returncode']}: {verdict}")
    runs = queue.get("doctor_runs") or []
    lines.append(f"- Doctor runs: {len(runs)}")
    for i, run in enumerate(runs, start=1):
        verdict = "green" if run["ok"] else ("timed out" if run["timed_out"] else f"red (exit {run['returncode']})")
        lines.append(f"  {i}. `{run['commit'][:10]}` ({', '.join(run['tasks'])}): {verdict}; log `{run['log']}`")
    for tid, why in (queue.get("failed") or {}).items():
        lines.append(f"- **{tid}: integration_failed** — {_cell(why)}")
    for tid, why in (queue.get("left_out") or {}).items():
        lines.append(f"- {tid}: left out — {_cell(why)}")
    if queue.get("refused"):
        lines.append(f"- Refused: {queue['refused']}; nothing was merged")
    else:
        lines.append(f"- `{queue['into']}`: {queue['old'][:10]} → {queue['new'][:10]}")
    return lines


def _merge_section(merge: Mapping[str, Any] | None) -> list[str]:
    if not merge:
        return []
    lines = ["", "## Merge", ""]
    if merge["old"] == merge["new"]:
        lines.append(f"- `{merge['into']}` already held all the work ({merge.get('ts', '')})")
    else:
        lines.append(f"- `{merge['into']}` moved {merge['old'][:10]} → {merge['new'][:10]} ({merge.get('ts', '')})")
    if merge.get("integration_branch"):
        lines.append(f"- Integration branch: `{merge['integration_branch']}`")
    lines += [f"- {s['source']} `{s['branch']}`: {s['how']}" for s in merge.get("steps", [])]
    if merge.get("left_out"):
        lines.append("- Not merged: " + ", ".join(merge["left_out"]))
    return lines


def _validation_section(validation: Mapping[str, Any] | None) -> list[str]:
    if not validation:
        return []
    verdict = "passed" if validation["ok"] else "FAILED"
    lines = ["", "## Validation", "", f"- {verdict} ({validation.get('ts', '')})"]
    for r in validation.get("results", []):
        state = "ok" if r["ok"] else ("timed out" if r["timed_out"] else r.get("error") or f"exit {r['returncode']}")
        lines.append(f"- {r['name']} in {r['where']}: {state} ({_secs(r['duration'])})")
    return lines
