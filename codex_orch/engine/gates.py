"""Gates: the commands a task's work must pass after a schema-valid answer and before its commit, run
confined like the agent (proc/sandbox.py) unless a gate says `sandbox: none`; the prompt that hands a
failing gate back to the same agent thread (the fix loop); and a task that never passed, set aside.

Where a gate runs: in a landing or per-task run, the task's own worktree (its change on top of its
dependencies, nothing else). In a shared worktree, parallel siblings may have half-done files there,
so the gate runs in a scratch folder holding the task's prospective commit: HEAD plus the task's own
changes (under its declared paths; a task that declares none runs alone), written through a private
index and checked out there; the setup's output (`.venv/`, copied files) is linked in from the worktree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codex_orch.engine.context import RunContext
from codex_orch.engine.finish import FAILED_RESULT_STATUSES
from codex_orch.engine.setup import command_env
from codex_orch.engine.slots import Slot
from codex_orch.errors import OrchError
from codex_orch.git.workspace import Workspace, path_matches
from codex_orch.plan import Task
from codex_orch.proc.sandbox import confined
from codex_orch.proc.stream import ProcRequest, run_streaming
from codex_orch.verify_config import GateConfig, gates_for

TAIL_LINES = 60
TAIL_CHARS = 6000


@dataclass(frozen=True)
class GateRun:
    name: str
    argv: tuple[str, ...]
    exit_code: int | None
    seconds: float
    log: str
    timed_out: bool = False
    error: str | None = None  # it could not start (or not confined)
    tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "seconds": self.seconds,
            "log": self.log,
            "timed_out": self.timed_out,
            "error": self.error,
        }


def task_gates(ctx: RunContext, task: Task) -> tuple[GateConfig, ...]:
    return gates_for(ctx.config.gates, task.role, ctx.role(task.role).sandbox, task.gates)


def check_gates(
    ctx: RunContext, task: Task, ws: Workspace, n: int, folder: Path, answer: Any, slot: Slot
) -> GateRun | None:
    """Run the task's gates in order (recorded with attempt `n`), holding an agent slot (they run the
    agent's code); the first that fails, or None. An answer that reports the task blocked or failed is
    not gated: it fails as `agent_reported`."""
    gates = task_gates(ctx, task)
    if not gates or (isinstance(answer, dict) and answer.get("status") in FAILED_RESULT_STATUSES):
        return None
    if not slot.take():  # the run was stopped while this task waited: it is not gated, so it fails
        stopped = "the run was stopped before its gates ran"
        return GateRun(gates[0].name, gates[0].argv, None, 0.0, "", error=stopped, tail=stopped)
    runs: list[GateRun] = []
    try:
        with _gate_tree(ctx, task, ws) as where:
            for gate in gates:
                ctx.notify("gate", task.id, {"name": gate.name, "attempt": n})
                runs.append(_run_gate(ctx, gate, where, folder / "gates"))
                if not runs[-1].ok:
                    break
    finally:
        slot.give_back()
        ctx.store.record("task.gates", task=task.id, n=n, runs=[r.to_json() for r in runs])
    return None if not runs or runs[-1].ok else runs[-1]


def _run_gate(ctx: RunContext, gate: GateConfig, where: Path, folder: Path) -> GateRun:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{gate.name}.log"
    tmp = Path(tempfile.mkdtemp(prefix=f"codex-orch-gate-{gate.name}-"))
    try:
        argv = gate.argv
        if gate.sandbox != "none":
            try:
                argv = confined(gate.argv, [where], tmp, where)
            except OrchError as exc:
                log.write_text(f"{exc}\n", "utf-8")
                return GateRun(gate.name, gate.argv, None, 0.0, str(log), error=str(exc), tail=str(exc))
        outcome = run_streaming(
            ProcRequest(
                argv=argv,
                cwd=where,
                env={**command_env(), "TMPDIR": str(tmp)},
                stdout_path=log,
                stderr_path=log,
                timeout=gate.timeout,
                stop_grace=ctx.config.limits.stop_grace,
                redactor=ctx.redactor,
            ),
            on_line=lambda line: None,
            cancel=ctx.cancel,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    run = GateRun(
        gate.name,
        gate.argv,
        outcome.returncode,
        round(outcome.ended - outcome.started, 3),
        str(log),
        timed_out=outcome.timed_out,
        error=outcome.spawn_error,
    )
    return run if run.ok else replace(run, tail=log_tail(log))


def log_tail(log: Path) -> str:
    """The last TAIL_LINES lines of a log (at most TAIL_CHARS): what a fix prompt and the dashboard show."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4 * TAIL_CHARS))
            lines = fh.read().decode("utf-8", "replace").splitlines()[-TAIL_LINES:]
    except OSError:
        return ""
    return "\n".join(lines)[-TAIL_CHARS:]


@contextmanager
def _gate_tree(ctx: RunContext, task: Task, ws: Workspace) -> Iterator[Path]:
    """Where the task's gates run: its own worktree, or in a shared one a scratch folder holding the
    task's prospective commit (see the module's docstring), removed afterwards."""
    if ctx.mode != "shared":
        git = ctx.workspaces.git_at(ws.worktree).with_env({"GIT_LITERAL_PATHSPECS": "1"})
        before = {e.path for e in git.status() if e.code == "??"}
        try:
            yield ws.worktree
        finally:  # files the gates made (caches, reports) are not the agent's work: removed
            made = sorted({e.path for e in git.status() if e.code == "??"} - before)
            for i in range(0, len(made), 500):
                git.run("clean", "-f", "-q", "--", *made[i : i + 500])
        return
    git = ctx.workspaces.git_at(ws.worktree)
    files = [e.path for e in git.status() if task.paths is None or path_matches(e.path, task.paths)]
    scratch = Path(tempfile.mkdtemp(prefix=f"codex-orch-gate-{task.id}-"))
    fd, index = tempfile.mkstemp(prefix="codex-orch-gate-index-")
    os.close(fd)
    try:
        private = git.with_env({"GIT_INDEX_FILE": index, "GIT_LITERAL_PATHSPECS": "1"})
        private.run("read-tree", "HEAD")
        if files:
            private.run("add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", stdin="\0".join(files).encode())
        git.worktree(scratch, ws.admin).with_env({"GIT_INDEX_FILE": index}).run("checkout-index", "-a", "-f")
        setup = (ctx.store.get("setups") or {}).get(str(ws.worktree)) or {}
        for entry in setup.get("excluded") or ():
            _link_setup_output(ws.worktree, scratch, entry.strip("/"))
        yield scratch
    finally:
        os.unlink(index)
        shutil.rmtree(scratch, ignore_errors=True)


def _link_setup_output(worktree: Path, scratch: Path, rel: str) -> None:
    source, target = worktree / rel, scratch / rel
    if not rel or ".." in Path(rel).parts or target.exists() or not source.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)


def fix_prompt(gate: GateRun) -> str:
    """What the agent is told when a gate failed on its work: the gate, its exit, and a bounded tail."""
    if gate.error:
        outcome = f"could not run: {gate.error}"
    elif gate.timed_out:
        outcome = "ran past its time limit and was stopped"
    else:
        outcome = f"exited with code {gate.exit_code}"
    return (
        f"codex-orch ran the gate `{gate.name}` (`{' '.join(gate.argv)}`) on your work, and it {outcome}. "
        f"These are the last lines of its output (a tail, at most {TAIL_LINES} lines; earlier output is "
        f"not shown):\n\n```\n{gate.tail}\n```\n\nFix your work so that this gate passes (do not run git "
        "commands: codex-orch commits), then answer again with the JSON object the output schema asks for."
    )


def gate_failure(ctx: RunContext, task: Task, ws: Workspace, gate: GateRun) -> str:
    """A task whose gate never passed: its work saved on refs/orch/<run>/failed/<task> (in a shared
    worktree also taken out of it, so no later task commits it); the failure's message."""
    message = f"gate {gate.name!r} still failed (exit {gate.exit_code}) after {ctx.config.limits.fix_rounds} fix rounds"
    ref = f"refs/orch/{ctx.run_id}/failed/{task.id}"
    shared = ctx.mode == "shared"
    kept = ctx.workspaces.set_aside(
        ws.worktree, ref, f"{task.id}: work its gates failed\n\n{message}\n", task.paths if shared else None, shared
    )
    return message + (f"; its work is on {ref}" if kept else "; it changed no file")
