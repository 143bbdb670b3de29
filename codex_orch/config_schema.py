"""The JSON Schema of orchestrator.yaml: every key, its type and range; an unknown key is an error naming
the file and the key (config.py loads and builds the config from it)."""

from __future__ import annotations

from typing import Any

from codex_orch.agent_config import AGENTS_SCHEMA
from codex_orch.layout import ID_RE
from codex_orch.prices import PRICES_SCHEMA
from codex_orch.schema_check import MAX_SECONDS, SECONDS
from codex_orch.verify_config import GATES_SCHEMA, WORKTREE_SCHEMA

SANDBOXES = ("read-only", "workspace-write", "danger-full-access")
# landing: each task in a worktree of its own from the run branch's tip, its commit landed on the run
# branch (the default); shared: one worktree for the run; per-task: a branch per task, merged by `merge`.
WORKSPACE_MODES = ("landing", "shared", "per-task")


_POS_NUM = SECONDS  # seconds: positive and finite (NaN and infinities are refused for every number)


_OPT_POS_NUM = {**SECONDS, "type": ["number", "null"]}


_OPT_STR = {"type": ["string", "null"]}


_STR_LIST = {"type": "array", "items": {"type": "string"}}


def _closed(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


_ROLE = _closed(
    {
        "sandbox": {"enum": list(SANDBOXES)},
        "output_schema": {"type": "string", "minLength": 1},
        "prompt_template": {"type": "string", "minLength": 1},
        "model": _OPT_STR,
        "profile": _OPT_STR,
        "timeout": _OPT_POS_NUM,
        "idle_timeout": _OPT_POS_NUM,
        "agent": _OPT_STR,
    }
)


_COMMAND = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ]
}


_SERVICE = _closed(
    {
        "name": {"type": "string", "pattern": f"^{ID_RE.pattern}\\Z"},  # \Z, not $: "$" accepts a final newline
        "command": _COMMAND,
        "cwd": {"type": "string", "minLength": 1},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "ready": {
            "anyOf": [
                _closed(
                    {
                        "tcp": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "host": {"type": "string", "minLength": 1},
                    },
                    required=["tcp"],
                ),
                _closed({"log": {"type": "string", "minLength": 1}}, required=["log"]),
                _closed({"delay": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}}, required=["delay"]),
            ]
        },
        "ready_timeout": _POS_NUM,
    },
    required=["name", "command"],
)


CONFIG_SCHEMA: dict[str, Any] = _closed(
    {
        "version": {"const": 1},
        "codex": _closed(
            {
                "command": {
                    "anyOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    ]
                },
                "extra_args": _STR_LIST,
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "home": {"type": "string", "minLength": 1},
                "config": {"type": "object"},
            }
        ),
        "agents": AGENTS_SCHEMA,
        "git": _closed(
            {
                "base_ref": {"type": "string", "minLength": 1},
                "branch_template": {"type": "string", "minLength": 1},
                "shared_branch_template": {"type": "string", "minLength": 1},
            }
        ),
        "workspace": {"enum": list(WORKSPACE_MODES)},
        "use_single_workspace": {"type": "boolean"},
        "follow_next_tasks": {"type": "boolean"},
        "executor": {"enum": ["local", "temporal"]},
        "temporal": _closed(
            {
                "address": {"type": "string", "minLength": 1},
                "namespace": {"type": "string", "minLength": 1},
                "task_queue": {"type": "string", "minLength": 1},
                "remote": {"type": "string", "minLength": 1},
                "heartbeat_timeout": _POS_NUM,
                "max_attempts": {"type": "integer", "minimum": 1},
            }
        ),
        "limits": _closed(
            {
                "retries": {"type": "integer", "minimum": 0},
                "transient_retries": {"type": "integer", "minimum": 0},
                "timeout": _POS_NUM,
                "idle_timeout": _POS_NUM,
                "stop_grace": _POS_NUM,
                "max_workers": {"type": "integer", "minimum": 1},
                "max_tasks": {"type": "integer", "minimum": 1},
                "max_reconnects": {"type": "integer", "minimum": 0},
                "conflict_rounds": {"type": "integer", "minimum": 0},
                "fix_rounds": {"type": "integer", "minimum": 0},
                "max_quota_wait": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
            }
        ),
        "roles": {"type": "object", "additionalProperties": _ROLE},
        "role_aliases": {"type": "object", "additionalProperties": {"type": "string"}},
        "concurrency": _closed({"allow": _STR_LIST, "ignore": _STR_LIST, "on_violation": {"enum": ["warn", "fail"]}}),
        "guardrails": _closed({"refs": {"enum": ["all", "run"]}, "on_hidden_work": {"enum": ["warn", "fail"]}}),
        "validate": _closed(
            {
                "commands": {
                    "type": "array",
                    "items": _closed(
                        {
                            "name": {"type": "string", "minLength": 1},
                            "run": {
                                "anyOf": [
                                    {"type": "string", "minLength": 1},
                                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                                ]
                            },
                            "timeout": _POS_NUM,
                        },
                        required=["name", "run"],
                    ),
                },
                "timeout": _POS_NUM,
            }
        ),
        "integration": _closed(
            {
                "doctor": {
                    "anyOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    ]
                },
                "timeout": _POS_NUM,
                "canary": {"type": "boolean"},
                "sandbox": {"enum": ["workspace-write", "none"]},
            }
        ),
        "services": {"type": ["array", "null"], "items": _SERVICE},
        "secrets": _closed({"scan": {"type": "boolean"}, "allow": _STR_LIST}),
        "worktree": WORKTREE_SCHEMA,
        "gates": GATES_SCHEMA,
        "prices": PRICES_SCHEMA,
        "budgets": _closed(
            {
                "task_tokens": {"type": ["integer", "null"], "minimum": 1},
                "task_cost": {"type": ["number", "null"], "exclusiveMinimum": 0},
                "run_cost": {"type": ["number", "null"], "exclusiveMinimum": 0},
                "mode": {"enum": ["warn", "block"]},
            }
        ),
    }
)
