"""orchestrator.yaml: the packaged defaults, overlaid by the host repo's file, checked key by key."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_orch.agent_config import AgentsConfig, build_agents
from codex_orch.agent_registry import unknown_agent
from codex_orch.config_schema import CONFIG_SCHEMA
from codex_orch.errors import InputError
from codex_orch.inputs import read_yaml_file
from codex_orch.layout import CONFIG_NAME, Layout, packaged_templates
from codex_orch.prices import Price, build_prices
from codex_orch.schema_check import check
from codex_orch.verify_config import GateConfig, WorktreeSetup, build_gates, build_worktree, split_command


@dataclass(frozen=True)
class RoleConfig:
    name: str
    sandbox: str
    output_schema: str
    prompt_template: str
    model: str | None = None
    profile: str | None = None
    timeout: float | None = None
    idle_timeout: float | None = None
    agent: str | None = None  # the role's default agent (agents.default otherwise)


@dataclass(frozen=True)
class CodexConfig:
    command: tuple[str, ...]
    extra_args: tuple[str, ...]
    env: Mapping[str, str]
    home: str
    config: Mapping[str, Any]


@dataclass(frozen=True)
class GitConfig:
    base_ref: str
    branch_template: str
    shared_branch_template: str


@dataclass(frozen=True)
class Limits:
    retries: int
    transient_retries: int
    timeout: float
    idle_timeout: float
    stop_grace: float
    max_workers: int
    max_tasks: int = 100
    max_reconnects: int = 5
    conflict_rounds: int = 2  # a landing run: times a task's agent is asked to resolve a landing conflict
    fix_rounds: int = 2  # times a task's agent is asked to fix the work a gate failed
    max_quota_wait: float = 86400.0  # seconds a task may spend paused on its provider's quota (0: no pauses)


@dataclass(frozen=True)
class ValidateCommand:
    name: str
    argv: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class IntegrationConfig:
    """`integration`: the doctor command the merge queue runs on each candidate tip, and its canary."""

    doctor: ValidateCommand | None = None  # None: merge is all or nothing, with no doctor
    canary: bool = False  # first check that the doctor fails with CODEX_ORCH_CANARY=1 set
    sandbox: str = "workspace-write"  # confined like a gate (it runs the agents' code), or "none"


@dataclass(frozen=True)
class ReadyCheck:
    """When a service counts as ready: at most one of these is set; none: as soon as it started."""

    tcp: int | None = None  # a TCP connection to (host, tcp) is accepted
    host: str = "127.0.0.1"
    log: str | None = None  # a line of its output matches this regular expression (or holds it literally)
    delay: float | None = None  # it still runs after this many seconds


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    argv: tuple[str, ...]
    cwd: str  # relative to the repository root
    env: Mapping[str, str]
    ready: ReadyCheck
    ready_timeout: float = 30.0


@dataclass(frozen=True)
class Budgets:
    """`budgets`: limits of spend (None: no limit); `block` stops attempts at a limit, `warn` says so once."""

    task_tokens: int | None = None
    task_cost: float | None = None
    run_cost: float | None = None
    mode: str = "block"


@dataclass(frozen=True)
class SecretsConfig:
    scan: bool = True  # the staged diff and message of every task commit (engine/secret_scan.py)
    allow: tuple[str, ...] = ()  # detect-secrets plugin names, $VARIABLE names, path globs


@dataclass(frozen=True)
class Config:
    source: str  # the file it came from, or "(defaults)"
    codex: CodexConfig
    git: GitConfig
    workspace_mode: str  # one of WORKSPACE_MODES
    limits: Limits
    roles: Mapping[str, RoleConfig]
    role_aliases: Mapping[str, str]
    concurrency_allow: tuple[str, ...] = ()
    concurrency_ignore: tuple[str, ...] = ()
    on_violation: str = "warn"
    guard_all_refs: bool = True  # guardrails.refs: "all" (every ref but remote-tracking ones) or "run"
    on_hidden_work: str = "warn"
    follow_next_tasks: bool = False
    validate_commands: tuple[ValidateCommand, ...] = ()
    integration: IntegrationConfig = field(default_factory=IntegrationConfig)
    services: tuple[ServiceConfig, ...] | None = None  # None: not set (the codex-mem default applies)
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    agents: AgentsConfig = field(default_factory=AgentsConfig)
    worktree: WorktreeSetup = field(default_factory=WorktreeSetup)
    gates: tuple[GateConfig, ...] = ()
    prices: Mapping[str, Price] = field(default_factory=lambda: build_prices(None))
    budgets: Budgets = field(default_factory=Budgets)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def resolve_role(self, name: str) -> str | None:
        """The canonical role for `name` (itself or through an alias), or None."""
        if name in self.roles:
            return name
        target = self.role_aliases.get(name)
        return target if target in self.roles else None

    def roles_hint(self) -> str:
        hint = f"Valid roles: {', '.join(sorted(self.roles))}"
        if self.role_aliases:
            aliases = ", ".join(f"{k} -> {v}" for k, v in sorted(self.role_aliases.items()))
            hint += f" (aliases: {aliases})"
        return hint + "."


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and key not in ("env", "config", "settings"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


MAX_CONFIG_BYTES = 1024 * 1024


def _read_yaml(path: Path, label: str) -> Any:
    return read_yaml_file(path, label, MAX_CONFIG_BYTES)


_DEFAULTS: dict[str, Any] | None = None


def default_raw() -> dict[str, Any]:
    global _DEFAULTS
    if _DEFAULTS is None:
        _DEFAULTS = _read_yaml(packaged_templates() / CONFIG_NAME, "(packaged defaults)")
    return copy.deepcopy(_DEFAULTS)


def load_config(layout: Layout) -> Config:
    """The host repo's config over the defaults; the defaults alone when there is no file yet."""
    raw = default_raw()
    source = "(defaults)"
    path = layout.config_path
    if path.exists():  # not is_file(): a FIFO or a device there is an error, not "no config"
        label = str(path.relative_to(layout.root))
        user = _read_yaml(path, label)
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise InputError(f"{label}: (top level): must be a mapping of keys, not {type(user).__name__}")
        check(user, CONFIG_SCHEMA, label)
        user = _legacy_workspace(user, label)
        raw = _merge(raw, user)
        source = label
    return build_config(raw, source)


def _legacy_workspace(user: dict[str, Any], label: str) -> dict[str, Any]:
    """The original codex-orch's `use_single_workspace` (true: shared; false: per-task), as `workspace`."""
    if "use_single_workspace" not in user:
        return user
    legacy = "shared" if user["use_single_workspace"] else "per-task"
    if "workspace" in user and user["workspace"] != legacy:
        raise InputError(
            f"{label}: use_single_workspace: {str(user['use_single_workspace']).lower()} says {legacy!r}, "
            f"workspace says {user['workspace']!r}",
            "Keep one of them (workspace: landing | shared | per-task).",
        )
    return {**user, "workspace": legacy}


def build_config(raw: dict[str, Any], source: str) -> Config:
    check(raw, CONFIG_SCHEMA, source)
    roles: dict[str, RoleConfig] = {}
    for name, settings in raw["roles"].items():
        missing = [k for k in ("sandbox", "output_schema", "prompt_template") if k not in settings]
        if missing:
            raise InputError(f"{source}: roles.{name}: missing {', '.join(missing)}")
        problem = unknown_agent(settings["agent"]) if settings.get("agent") else None
        if problem:
            raise InputError(f"{source}: roles.{name}.agent: {problem}")
        roles[name] = RoleConfig(name=name, **settings)
    aliases = dict(raw.get("role_aliases") or {})
    for alias, target in aliases.items():
        if target not in roles:
            raise InputError(
                f"{source}: role_aliases.{alias}: unknown role {target!r}. Valid roles: {', '.join(sorted(roles))}."
            )
    codex = raw["codex"]
    command = codex["command"]
    home = codex["home"]
    if home not in ("inherit", "isolated") and not Path(home).is_absolute():
        raise InputError(f"{source}: codex.home: must be 'inherit', 'isolated' or an absolute path, not {home!r}")
    limits = raw["limits"]
    git = raw["git"]
    return Config(
        source=source,
        codex=CodexConfig(
            command=(command,) if isinstance(command, str) else tuple(command),
            extra_args=tuple(codex.get("extra_args") or ()),
            env=dict(codex.get("env") or {}),
            home=home,
            config=dict(codex.get("config") or {}),
        ),
        git=GitConfig(
            base_ref=git["base_ref"],
            branch_template=git["branch_template"],
            shared_branch_template=git["shared_branch_template"],
        ),
        workspace_mode=str(raw["workspace"]),
        limits=Limits(
            retries=int(limits["retries"]),
            transient_retries=int(limits["transient_retries"]),
            timeout=float(limits["timeout"]),
            idle_timeout=float(limits["idle_timeout"]),
            stop_grace=float(limits["stop_grace"]),
            max_workers=int(limits["max_workers"]),
            max_tasks=int(limits["max_tasks"]),
            max_reconnects=int(limits["max_reconnects"]),
            conflict_rounds=int(limits["conflict_rounds"]),
            fix_rounds=int(limits.get("fix_rounds", 2)),
            max_quota_wait=float(limits.get("max_quota_wait", 86400)),
        ),
        roles=roles,
        role_aliases=aliases,
        concurrency_allow=tuple(raw["concurrency"]["allow"]),
        concurrency_ignore=tuple(raw["concurrency"]["ignore"]),
        on_violation=raw["concurrency"]["on_violation"],
        guard_all_refs=raw["guardrails"]["refs"] == "all",
        on_hidden_work=raw["guardrails"]["on_hidden_work"],
        follow_next_tasks=bool(raw["follow_next_tasks"]),
        validate_commands=_validate_commands(raw.get("validate") or {}, source),
        integration=_integration(raw.get("integration") or {}, source),
        services=None if raw.get("services") is None else _services(raw["services"], source),
        secrets=SecretsConfig(scan=bool(raw["secrets"]["scan"]), allow=tuple(raw["secrets"]["allow"])),
        agents=build_agents(raw.get("agents") or {}, codex, source),
        worktree=build_worktree(raw.get("worktree") or {}, source),
        gates=build_gates(raw.get("gates") or (), list(roles), source),
        prices=build_prices(raw.get("prices")),
        budgets=Budgets(**(raw.get("budgets") or {})),
        raw=raw,
    )


def _validate_commands(section: Mapping[str, Any], source: str) -> tuple[ValidateCommand, ...]:
    """validate.commands: a string is split like a shell would (no shell runs it), a list is argv."""

    default_timeout = float(section.get("timeout", 900))
    commands = []
    for i, item in enumerate(section.get("commands") or ()):
        argv = _argv(item["run"], f"{source}: validate.commands[{i}].run")
        commands.append(ValidateCommand(item["name"], argv, float(item.get("timeout", default_timeout))))
    return tuple(commands)


def _integration(section: Mapping[str, Any], source: str) -> IntegrationConfig:
    doctor = section.get("doctor")
    if doctor is None:
        if section.get("canary"):
            raise InputError(f"{source}: integration.canary: true needs integration.doctor (the command it checks)")
        return IntegrationConfig()
    argv = _argv(doctor, f"{source}: integration.doctor")
    command = ValidateCommand("doctor", argv, float(section.get("timeout", 900)))
    sandbox = str(section.get("sandbox", "workspace-write"))
    return IntegrationConfig(command, bool(section.get("canary", False)), sandbox)


def _argv(command: str | list[str], where: str) -> tuple[str, ...]:
    """A command: a string split like a shell would (no shell runs it), or a list of arguments."""
    return split_command(command, where)


def _services(items: list[Mapping[str, Any]], source: str) -> tuple[ServiceConfig, ...]:
    services: list[ServiceConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"{source}: services[{i}]"
        name = item["name"]
        if name in seen:
            raise InputError(f"{where}.name: duplicate service {name!r} (also services[{seen[name]}])")
        seen[name] = i
        cwd = item.get("cwd", ".")
        if Path(cwd).is_absolute():
            raise InputError(f"{where}.cwd: {cwd!r} must be relative to the repository root")
        ready = item.get("ready") or {}
        services.append(
            ServiceConfig(
                name=name,
                argv=_argv(item["command"], f"{where}.command"),
                cwd=cwd,
                env=dict(item.get("env") or {}),
                ready=ReadyCheck(
                    tcp=ready.get("tcp"),
                    host=ready.get("host", "127.0.0.1"),
                    log=ready.get("log"),
                    delay=float(ready["delay"]) if "delay" in ready else None,
                ),
                ready_timeout=float(item.get("ready_timeout", 30)),
            )
        )
    return tuple(services)
