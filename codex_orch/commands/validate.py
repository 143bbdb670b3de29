"""`codex-orch validate`: run the configured test and lint commands where the run's work is.

Shared workspace: in the run's worktree. Per-task workspaces: in the worktree of each head task (a
succeeded task whose branch no other succeeded task's branch contains; usually one, the last). The
commands run through proc.run_streaming (own process group, a timeout, no shell); their output goes
to runs/<id>/validate/<n>/, and the outcome is recorded in the run's state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codex_orch.commands.runs import changing, heads, run_dir, task_tips
from codex_orch.config import ValidateCommand, load_config
from codex_orch.errors import InputError
from codex_orch.git.environment import without_git_vars
from codex_orch.git.refs import ref_sha
from codex_orch.git.repo import Git
from codex_orch.layout import Layout
from codex_orch.proc.stream import ProcRequest, run_streaming
from codex_orch.run_record import RunRecord

TAIL_LINES = 20


@dataclass(frozen=True)
class CommandResult:
    name: str
    argv: tuple[str, ...]
    where: str  # "run" or the task id whose worktree it ran in
    worktree: str
    returncode: int | None
    timed_out: bool
    duration: float
    stdout_log: str
    stderr_log: str
    error: str | None = None  # the command could not start
    tail: str = ""  # the last lines of its output, when it failed

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "argv": list(self.argv),
            "where": self.where,
            "worktree": self.worktree,
            "ok": self.ok,
            "returncode": self.returncode,
            "timed_out": self.timed_out,
            "duration": self.duration,
            "stdout_log": self.stdout_log,
            "stderr_log": self.stderr_log,
            "error": self.error,
        }


@dataclass(frozen=True)
class ValidateOutcome:
    run_id: str
    results: tuple[CommandResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ok": self.ok, "results": [r.to_json() for r in self.results]}


def command_env() -> dict[str, str]:
    """The user's environment minus inherited GIT_* variables that could point git elsewhere."""
    return without_git_vars(os.environ)


def targets(git: Git, run: RunRecord, root: Path) -> list[tuple[str, Path]]:
    """Where the run's work is: (label, worktree) pairs. A landing run's work is its branch, which no
    worktree has checked out: a worktree of its tip is made (or moved to it) for validation."""
    found: list[tuple[str, str | None]]
    if run.workspace_mode == "shared":
        found = [("run", run.worktree)]
    elif run.workspace_mode == "landing":
        found = [("run", str(_tip_worktree(git, run, root)))]
    else:
        tips = heads(git, task_tips(git, run))
        if not tips:
            raise InputError(f"run {run.run_id} has no succeeded task: there is no work to validate")
        worktrees = {t.id: t.worktree for t in run.tasks}
        found = [(tid, worktrees[tid]) for tid, _, _ in tips]
    where = []
    for label, worktree in found:
        if not worktree or not (Path(worktree) / ".git").exists():
            raise InputError(
                f"the worktree of {'the run' if label == 'run' else label} is gone ({worktree})",
                "Was the run cleaned? Validate before `clean`, or check the branch out yourself.",
            )
        where.append((label, Path(worktree)))
    return where


def _tip_worktree(git: Git, run: RunRecord, root: Path) -> Path:
    """A worktree at the landing run branch's tip, detached (the branch itself moves as tasks land)."""
    from codex_orch.git.worktrees import detached_worktree

    branch = run.branch
    tip = ref_sha(git, f"refs/heads/{branch}")
    if tip is None:
        raise InputError(f"the run's branch {branch!r} no longer exists", "Was the run cleaned?")
    return detached_worktree(git, run.own_worktree("validate", root), tip)


def _tail(*paths: Path) -> str:
    lines: list[str] = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                fh.seek(max(0, path.stat().st_size - 16384))
                lines += fh.read().decode("utf-8", "replace").splitlines()[-TAIL_LINES:]
        except OSError:
            continue
    return "\n".join(lines[-TAIL_LINES:])


def run_command(
    command: ValidateCommand,
    where: str,
    worktree: Path,
    folder: Path,
    stop_grace: float,
    env: dict[str, str] | None = None,
) -> CommandResult:
    """Run one command in `worktree`, its output in `folder`; `env`: the environment (default: ours minus
    inherited GIT_* variables)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in command.name)
    stem = f"{where}-{safe}" if where != "run" else safe
    out, err = folder / f"{stem}.stdout.log", folder / f"{stem}.stderr.log"
    outcome = run_streaming(
        ProcRequest(
            argv=command.argv,
            cwd=worktree,
            env=command_env() if env is None else env,
            stdout_path=out,
            stderr_path=err,
            timeout=command.timeout,
            stop_grace=stop_grace,
        ),
        on_line=lambda line: None,
    )
    result = CommandResult(
        name=command.name,
        argv=command.argv,
        where=where,
        worktree=str(worktree),
        returncode=outcome.returncode,
        timed_out=outcome.timed_out,
        duration=round(outcome.ended - outcome.started, 3),
        stdout_log=str(out),
        stderr_log=str(err),
        error=outcome.spawn_error,
    )
    if not result.ok:
        result = replace(result, tail=_tail(out, err))
    return result


def validate_run(
    root: Path, run_id: str, on_start: Callable[[ValidateCommand, str, Path], None] | None = None
) -> ValidateOutcome:
    layout = Layout(root)
    folder = run_dir(layout, run_id)
    config = load_config(layout)
    if not config.validate_commands:
        raise InputError(
            f"{config.source}: validate.commands is empty: there is nothing to run",
            'Add e.g. `validate: {commands: [{name: tests, run: "pytest -q"}]}` to .orchestrator/orchestrator.yaml.',
        )
    git = Git(root)
    with changing(folder) as store:
        run = RunRecord.from_state(store.view())
        where = targets(git, run, root)
        logs = folder / "validate" / str(run.validations + 1)
        logs.mkdir(parents=True, exist_ok=True)
        results = []
        for label, worktree in where:
            for command in config.validate_commands:
                if on_start is not None:
                    on_start(command, label, worktree)
                results.append(run_command(command, label, worktree, logs, config.limits.stop_grace))
        outcome = ValidateOutcome(run_id, tuple(results))
        store.record(
            "run.validated",
            n=int(logs.name),
            ok=outcome.ok,
            results=[r.to_json() for r in results],
        )
    return outcome
