"""The `agents.claude` and `agents.gemini` settings (orchestrator.yaml) that point the real Claude Code
and Gemini CLIs at a ScriptedModelServer on loopback and keep them offline: no login, no retries of a
failed request, no update checks, no telemetry. codex's own are `scripted_model.codex_config`.

Each gets an isolated home per run, so nothing of the user's own login or sessions is read.
"""

from __future__ import annotations

from typing import Any

# A key the CLIs send and the server ignores; long enough to be redacted like a real one.
SCRIPTED_KEY = "scripted-model-no-key"


def claude_config(root_url: str, command: str | list[str] = "claude") -> dict[str, Any]:
    return {
        "command": command,
        "home": "isolated",  # CLAUDE_CONFIG_DIR per run
        "env": {
            "ANTHROPIC_BASE_URL": root_url,
            "ANTHROPIC_API_KEY": SCRIPTED_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",  # one HTTP 500 is one failed request, not ten
        },
    }


def gemini_config(root_url: str, command: str | list[str] = "gemini", model: str = "gemini-2.5-pro") -> dict[str, Any]:
    return {
        "command": command,
        "home": "isolated",  # GEMINI_CLI_HOME per run, with .gemini/settings.json written from `settings`
        "model": model,  # without one, Gemini CLI first asks the server which model to use
        "env": {
            "GOOGLE_GEMINI_BASE_URL": root_url,
            "GEMINI_API_KEY": SCRIPTED_KEY,
            "GEMINI_CLI_NO_RELAUNCH": "1",  # no second node process started for a larger heap
        },
        "settings": {
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "general": {"maxAttempts": 1, "disableAutoUpdate": True, "disableUpdateNag": True},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
        },
    }
