"""What every part of a run shares: paths, config, state, git, the agent's environment."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_orch.config import Config, RoleConfig
from codex_orch.engine.agent_env import AgentSetup, AgentSetups
from codex_orch.engine.budget import Breaker
from codex_orch.engine.prompts import PromptRenderer
from codex_orch.engine.quota import QuotaPauses
from codex_orch.engine.secret_scan import SecretScanner
from codex_orch.engine.slots import AgentSlots
from codex_orch.errors import InputError
from codex_orch.git.repo import Git
from codex_orch.git.workspace import Workspaces
from codex_orch.layout import Layout, packaged_templates
from codex_orch.plan import Plan
from codex_orch.redaction import Redactor
from codex_orch.state import RunStore

# notify(kind, task_id, data): progress for displays; never required for correctness.
Notify = Callable[[str, str | None, Mapping[str, Any]], None]


# answer_check(value) -> problems: a role's own checks of a schema-valid answer (a plan must load).
AnswerCheck = Callable[[Any], Sequence[str]]


def _no_notify(kind: str, task_id: str | None, data: Mapping[str, Any]) -> None:
    return None


@dataclass
class RunContext:
    layout: Layout
    config: Config
    run_id: str
    plan: Plan
    spec: str | None
    store: RunStore
    git: Git
    workspaces: Workspaces
    agent_env: Mapping[str, str]
    command: tuple[str, ...]
    cancel: threading.Event = field(default_factory=threading.Event)
    notify: Notify = _no_notify
    fail_fast: bool = False
    redactor: Redactor = field(default_factory=lambda: Redactor({}))
    secret_scanner: SecretScanner | None = None  # checks each task commit; None: none (tests of parts)
    answer_checks: Mapping[str, AnswerCheck] = field(default_factory=dict)  # by role
    run_agent: str | None = None  # --agent of the run
    setups: AgentSetups | None = None  # how each backend is started; None: codex only, from command/agent_env
    spend: Breaker | None = None  # budgets (engine/budget.py); None: no limits (tests of parts)
    quota: QuotaPauses | None = None  # pauses on a provider's quota (engine/quota.py); None: none
    agent_slots: AgentSlots | None = None  # agents at once, when the run admits more tasks (engine/slots.py)
    # called with a task's id once its commit is recorded (the conflict forecast, engine/forecast.py)
    on_commit: Callable[[str], None] | None = None
    # paths declared by the tasks running now (None: the task declared none and runs alone)
    active_paths: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    _schemas: dict[str, tuple[Path, dict[str, Any]]] = field(default_factory=dict)
    _renderer: PromptRenderer | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @property
    def mode(self) -> str:
        """How the run's tasks share worktrees: "landing", "shared" or "per-task"."""
        from codex_orch.state import workspace_mode

        return workspace_mode(
            {"workspace_mode": self.store.get("workspace_mode"), "single_workspace": self.store.get("single_workspace")}
        )

    @property
    def run_dir(self) -> Path:
        return self.layout.run_dir(self.run_id)

    @property
    def renderer(self) -> PromptRenderer:
        with self._guard:
            if self._renderer is None:
                self._renderer = PromptRenderer(self.layout)
            return self._renderer

    def other_paths(self, task_id: str) -> list[str]:
        with self._guard:
            return [glob for tid, globs in self.active_paths.items() if tid != task_id for glob in globs or ()]

    def set_active(self, task_id: str, paths: tuple[str, ...] | None, active: bool) -> None:
        with self._guard:
            if active:
                self.active_paths[task_id] = paths
            else:
                self.active_paths.pop(task_id, None)

    def agent_setup(self, agent: str) -> AgentSetup:
        if self.setups is None:
            return AgentSetup(self.command, self.agent_env, self.config.codex.extra_args)
        return self.setups.get(agent)

    def role(self, name: str) -> RoleConfig:
        return self.config.roles[name]

    def schema(self, role: RoleConfig) -> tuple[Path, dict[str, Any]]:
        """The role's output schema (path, parsed), read once per run."""
        with self._guard:
            if role.output_schema not in self._schemas:
                self._schemas[role.output_schema] = load_schema(self.layout, role.output_schema)
            return self._schemas[role.output_schema]


def load_schema(layout: Layout, name: str) -> tuple[Path, dict[str, Any]]:
    """A schema from .orchestrator/schemas, else from the packaged defaults."""
    for folder in (layout.schemas_dir, packaged_templates() / "schemas"):
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputError(f"{path}: invalid JSON schema file: {exc}") from None
            if not isinstance(data, dict):
                raise InputError(f"{path}: a schema must be a JSON object")
            return path.resolve(), data
    raise InputError(f"{name}: output schema not found in {layout.schemas_dir} nor among the defaults")
