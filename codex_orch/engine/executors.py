"""How a run's tasks are executed, behind one call: `execute(ctx, options) -> RunOutcome`.

`local` (the default) is drive.py: the scheduler and its threads in this process. Another executor
lives in an optional package, imported only when a run names it (`executor:` in orchestrator.yaml,
`run --executor`), so the plain CLI never loads it: `temporal` is codex_orch/temporal/submitter.py
(`pip install codex-orch-cli[temporal]`, docs/scale-out.md). A run remembers its executor and its
settings in runs/<id>/executor.json, so `resume` goes on the way the run started.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_orch.atomic import atomic_write_json
from codex_orch.config import Config
from codex_orch.engine.context import RunContext
from codex_orch.engine.drive import RunOptions, RunOutcome, drive
from codex_orch.errors import InputError

Execute = Callable[[RunContext, RunOptions], RunOutcome]

# name -> module holding `check(config, settings)`, `execute(ctx, options, settings)` and `cancel(run_id,
# settings)`; None: drive.py
EXECUTORS: dict[str, str | None] = {"local": None, "temporal": "codex_orch.temporal.submitter"}
EXTRAS = {"temporal": "temporal"}  # the pip extra that brings each one's dependencies
# the workspace modes each can run (checked before its package is loaded): workers commit each task on
# their own machine, the submitter lands them on the run branch
WORKSPACES = {"temporal": ("landing",)}
RECORD = "executor.json"


@dataclass(frozen=True)
class ExecutorChoice:
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)


def choose(config: Config, options: RunOptions, run_dir: Path | None = None) -> ExecutorChoice:
    """The run's executor: the one it started with (resume), else `--executor`, else `executor:`; its
    settings are the config's section of that name with the command line's values over it."""
    recorded = recorded_choice(run_dir) if run_dir is not None else None
    if recorded is not None:
        return recorded
    name = options.executor or str(config.raw.get("executor") or "local")
    if name not in EXECUTORS:
        raise InputError(f"--executor: unknown executor {name!r}", f"Use one of: {', '.join(EXECUTORS)}.")
    settings = dict(config.raw.get(name) or {})
    settings.update({k: v for k, v in options.executor_settings if v is not None})
    return ExecutorChoice(name, settings)


def recorded_choice(run_dir: Path) -> ExecutorChoice | None:
    """The executor a run started with and its settings (runs/<id>/executor.json), if it recorded one."""
    recorded = run_dir / RECORD
    if not recorded.is_file():
        return None
    data = json.loads(recorded.read_text("utf-8"))
    return ExecutorChoice(str(data["name"]), dict(data.get("settings") or {}))


def cancel_elsewhere(run_dir: Path, run_id: str) -> bool:
    """Stop what an executor runs for the run with no driver of it alive here (Temporal: the run's
    workflow, after its submitter died). True when something was running and is stopped now; always
    False for a local run, whose work never outlives its driver."""
    choice = recorded_choice(run_dir)
    module_name = EXECUTORS.get(choice.name) if choice is not None else None
    if choice is None or module_name is None:
        return False
    return bool(load_optional(choice.name, module_name).cancel(run_id, choice.settings))


def load_optional(name: str, module_name: str) -> Any:
    """A module of an optional executor, or the one line that says how to install what it needs."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and exc.name.startswith("codex_orch"):
            raise
        raise InputError(
            f"executor {name!r}: its dependencies are not installed (no module {exc.name!r}).",
            f"pip install 'codex-orch-cli[{EXTRAS[name]}]'",
        ) from None


def prepare(config: Config, choice: ExecutorChoice) -> Execute:
    """The executor's call, checked before the run writes anything (its package is installed, its
    settings make sense for this config)."""
    module_name = EXECUTORS[choice.name]
    if module_name is None:
        return drive
    modes = WORKSPACES.get(choice.name)
    if modes and config.workspace_mode not in modes:
        raise InputError(
            f"{config.source}: executor {choice.name} needs workspace: {' or '.join(modes)} "
            f"(not {config.workspace_mode!r}).",
            "Workers commit each task on their own machine; the submitter lands them on the run branch.",
        )
    module = load_optional(choice.name, module_name)
    settings = module.check(config, choice.settings)

    def execute(ctx: RunContext, options: RunOptions) -> RunOutcome:
        atomic_write_json(ctx.run_dir / RECORD, {"name": choice.name, "settings": dict(settings)})
        return module.execute(ctx, options, settings)

    return execute
