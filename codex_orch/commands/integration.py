"""The integration merge queue: the succeeded tasks' work merged one by one, in dependency order, onto
the target branch's tip, the `integration.doctor` command run on the result, and when it is red, a
bisection to the first task whose merge turns it red; that task is `integration_failed` and the rest
land without it. The target moves only to a tip the doctor passed, and never when none did.

What a task's work is depends on the run's workspace mode. Landing and shared runs: the run branch
holds one commit per task, in an order where each task's dependencies come first; a task's work is
that commit's change, re-applied on the queue's tip (the commit itself while nothing before it was
left out). Per-task runs: a task's work is its branch, merged into the queue's tip (its branch
starts from its dependencies' commits, so a task depending on one left out cannot land without it).

Doctor runs for n tasks: one on the whole batch; when red, at most ceil(log2 n) to find the first red
prefix (the target's own tip is taken as green: the queue starts there); then one on the batch rebuilt
without the culprit. If that is red too, the last green prefix lands and the tasks after the culprit
are left out for the next `merge`, which bisects them again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from codex_orch.commands.runs import task_tips
from codex_orch.commands.validate import command_env, run_command
from codex_orch.config import Config
from codex_orch.errors import EXIT_USAGE, InputError, OrchError
from codex_orch.failures import FailureKind, info
from codex_orch.git.integrate import Applied, merge_in, reapply
from codex_orch.git.refs import ref_sha
from codex_orch.git.repo import Git
from codex_orch.git.worktrees import detached_worktree
from codex_orch.proc.sandbox import SandboxUnavailable, confined
from codex_orch.run_record import RunRecord
from codex_orch.state import RunStore, workspace_mode

CANARY_VARIABLE = "CODEX_ORCH_CANARY"


class DoctorUntrusted(OrchError):
    """integration.canary: the doctor passed although told to fail; its green would prove nothing."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Step:
    task: str
    branch: str
    commit: str  # the queue's tip once this task's work is on it
    how: str  # "fast-forward", "re-applied", "merge"


@dataclass(frozen=True)
class DoctorRun:
    commit: str
    tasks: tuple[str, ...]  # whose work the candidate holds (beyond the target's tip)
    ok: bool
    returncode: int | None
    timed_out: bool
    log: str
    canary: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "tasks": list(self.tasks),
            "ok": self.ok,
            "returncode": self.returncode,
            "timed_out": self.timed_out,
            "log": self.log,
            "canary": self.canary,
        }


@dataclass
class Queue:
    """What the queue did: the tip the target may move to, and the fate of every task."""

    tip: str
    landed: list[Step] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # integration_failed: why
    left_out: dict[str, str] = field(default_factory=dict)  # not landed, not to blame: why
    already_in: list[str] = field(default_factory=list)
    doctor_runs: list[DoctorRun] = field(default_factory=list)
    canary: DoctorRun | None = None
    culprit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tip": self.tip,
            "landed": [{"task": s.task, "commit": s.commit, "how": s.how} for s in self.landed],
            "failed": self.failed,
            "left_out": self.left_out,
            "already_in": self.already_in,
            "doctor_runs": [r.to_json() for r in self.doctor_runs],
            "canary": self.canary.to_json() if self.canary else None,
            "culprit": self.culprit,
        }


class Doctor:
    """integration.doctor, run in a scratch worktree of each candidate tip (reset and cleaned first)."""

    def __init__(self, git: Git, config: Config, worktree: Path, logs: Path) -> None:
        assert config.integration.doctor is not None
        self.git = git
        self.command = config.integration.doctor
        self.source = config.source
        self.worktree = worktree
        self.logs = logs
        self.stop_grace = config.limits.stop_grace
        self.sandbox = config.integration.sandbox
        self.runs: list[DoctorRun] = []

    def check(self, commit: str, tasks: tuple[str, ...], canary: bool = False) -> DoctorRun:
        detached_worktree(self.git, self.worktree, commit, clean=True)
        env = command_env()
        env.pop(CANARY_VARIABLE, None)
        if canary:
            env[CANARY_VARIABLE] = "1"
        where = "canary" if canary else str(len(self.runs) + 1)
        with tempfile.TemporaryDirectory(prefix="codex-orch-doctor-") as tmp:
            command = self.command
            if self.sandbox != "none":  # it runs the agents' code: confined like a gate
                try:
                    argv = confined(command.argv, [self.worktree], Path(tmp), self.worktree)
                except SandboxUnavailable as exc:
                    raise InputError(f"{self.source}: integration.doctor: {exc}", exc.hint) from None
                command = replace(command, argv=argv)
            result = run_command(command, where, self.worktree, self.logs, self.stop_grace, {**env, "TMPDIR": tmp})
        if result.error is not None:
            raise InputError(
                f"{self.source}: integration.doctor: {self.command.argv[0]!r} could not start: {result.error}",
                "Nothing was merged. Fix the command (it runs in a worktree of the candidate tip).",
            )
        run = DoctorRun(commit, tasks, result.ok, result.returncode, result.timed_out, result.stdout_log, canary)
        if not canary:
            self.runs.append(run)
        return run


@dataclass(frozen=True)
class _Item:
    task: str
    branch: str
    commit: str  # a run-branch commit to re-apply, or a task branch's tip to merge


def _items(git: Git, state: dict[str, Any]) -> tuple[list[_Item], bool]:
    """The succeeded tasks' work in the order to merge it, and whether it is re-applied (linear runs)."""
    tasks = state["tasks"]
    if workspace_mode(state) == "per-task":
        return [_Item(tid, branch, sha) for tid, branch, sha in task_tips(git, RunRecord.from_state(state))], False
    branch = state["branch"]
    tip = ref_sha(git, f"refs/heads/{branch}")
    if tip is None:
        raise InputError(f"the run's branch {branch!r} no longer exists", "Was the run cleaned?")
    owner = {t["commit"]: tid for tid, t in tasks.items() if t.get("commit") and t["status"] == "succeeded"}
    order = git.run("rev-list", "--reverse", "--first-parent", f"{state['base_commit']}..{tip}").split()
    return [_Item(owner[c], branch, c) for c in order if c in owner], True


def _build(
    git: Git,
    start: str,
    items: list[_Item],
    linear: bool,
    out: set[str],
    deps: dict[str, list[str]],
    message: Callable[[_Item], str],
    identity: tuple[str, str] | None,
) -> tuple[list[Step], dict[str, str], dict[str, str], list[str]]:
    """The items put on `start` one by one. Returns the steps, the items that conflict (with the files),
    those left out because a dependency is `out` (which they join), and those already in."""
    steps: list[Step] = []
    conflicts: dict[str, str] = {}
    waiting: dict[str, str] = {}
    already: list[str] = []
    current = start
    for item in items:
        missing = next((d for d in deps.get(item.task, []) if d in out), None)
        if missing is not None:
            waiting[item.task] = f"depends on {missing}, which is not integrated"
            out.add(item.task)
            continue
        applied: Applied = (
            reapply(git, current, item.commit, identity)
            if linear
            else merge_in(git, current, item.commit, message(item), identity)
        )
        if applied.commit is None:
            files = ", ".join(applied.conflicts[:10]) + (" …" if len(applied.conflicts) > 10 else "")
            conflicts[item.task] = f"its work conflicts with the tasks merged before it in {files}"
            out.add(item.task)
        elif applied.how == "already in":
            already.append(item.task)
        else:
            current = applied.commit
            steps.append(Step(item.task, item.branch, current, applied.how))
    return steps, conflicts, waiting, already


def run_queue(
    git: Git, state: dict[str, Any], old: str, doctor: Doctor, canary: bool, identity: tuple[str, str] | None
) -> Queue:
    """Merge, check, bisect; moves no ref. `old`: the target's tip, where the queue starts."""
    run_id = state["run_id"]
    items, linear = _items(git, state)
    deps = {tid: list(t["blocked_by"]) for tid, t in state["tasks"].items()}
    out = {tid for tid, t in state["tasks"].items() if t["status"] != "succeeded"}

    def message(item: _Item) -> str:
        return f"Merge {item.branch} (task {item.task})\n\nOrch-Run: {run_id}\nOrch-Task: {item.task}\n"

    steps, conflicts, waiting, already = _build(git, old, items, linear, out, deps, message, identity)
    queue = Queue(old, failed=dict(conflicts), left_out=dict(waiting), already_in=already)
    if not steps:
        return queue
    tasks = tuple(s.task for s in steps)
    if canary:
        queue.canary = doctor.check(steps[-1].commit, tasks, canary=True)
        if queue.canary.ok:
            queue.doctor_runs = doctor.runs
            return queue  # the caller refuses: a doctor that cannot fail
    if doctor.check(steps[-1].commit, tasks).ok:
        queue.tip, queue.landed, queue.doctor_runs = steps[-1].commit, steps, doctor.runs
        return queue
    lo, hi = 1, len(steps)  # the first red prefix, knowing the whole batch is red
    while lo < hi:
        mid = (lo + hi) // 2
        if doctor.check(steps[mid - 1].commit, tasks[:mid]).ok:
            lo = mid + 1
        else:
            hi = mid
    culprit = steps[lo - 1].task
    green = steps[: lo - 1]
    base = green[-1].commit if green else old
    queue.culprit = culprit
    queue.failed[culprit] = (
        f"the doctor passed with {', '.join(tasks[: lo - 1]) or 'the target alone'} and failed once {culprit} "
        "was merged on top"
    )
    out.add(culprit)
    rest = [item for item in items if item.task in tasks[lo:]]
    rebuilt, conflicts, waiting, _ = _build(git, base, rest, linear, out, deps, message, identity)
    queue.left_out.update(waiting)
    queue.left_out.update({t: f"{why} once {culprit} was left out" for t, why in conflicts.items()})
    queue.tip, queue.landed = base, green
    if rebuilt:
        if doctor.check(rebuilt[-1].commit, tuple(s.task for s in green + rebuilt)).ok:
            queue.tip, queue.landed = rebuilt[-1].commit, green + rebuilt
        else:
            for step in rebuilt:
                queue.left_out[step.task] = (
                    f"the doctor was still red without {culprit}; not bisected further: `merge` again to find the next"
                )
    queue.doctor_runs = doctor.runs
    return queue


def record_queue(store: RunStore, queue: Queue, n: int, target: str, old: str) -> None:
    """The queue's outcome in the run's journal: the run's record, then one per task it concerned."""
    store.record("run.integration", n=n, into=target, old=old, new=queue.tip, **queue.to_json())
    hint = info(FailureKind.INTEGRATION_FAILED).hint
    for step in queue.landed:
        store.record("task.integration", task=step.task, result="landed", commit=step.commit, how=step.how)
    for tid in queue.already_in:
        store.record("task.integration", task=tid, result="already in")
    for tid, why in queue.failed.items():
        error = {"kind": str(FailureKind.INTEGRATION_FAILED), "message": why, "hint": hint}
        store.record("task.integration", task=tid, result="integration_failed", message=why, error=error)
    for tid, why in queue.left_out.items():
        store.record("task.integration", task=tid, result="left out", message=why)


def untrusted(config: Config) -> DoctorUntrusted:
    argv = " ".join(config.integration.doctor.argv if config.integration.doctor else ())
    return DoctorUntrusted(
        f"{config.source}: integration.doctor ({argv}) exited 0 with {CANARY_VARIABLE}=1 set: it cannot fail, so "
        "its green would prove nothing; nothing was merged.",
        f"Make the doctor fail when {CANARY_VARIABLE}=1 is set (e.g. a test that asserts it is unset), or set "
        "integration.canary: false to trust it anyway.",
    )
