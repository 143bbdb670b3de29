"""The isolated homes of Claude Code and Gemini CLI: a folder per run (CLAUDE_CONFIG_DIR,
GEMINI_CLI_HOME) holding the settings file each CLI reads, written from `agents.<name>.settings`.
Their sessions live there too, so `resume` continues them. (codex: codex_home.py.)"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Where each CLI reads its settings, inside its home.
SETTINGS_FILES = {"claude": "settings.json", "gemini": ".gemini/settings.json"}


def prepare_agent_home(agent: str, home: Path, settings: Mapping[str, Any]) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    if settings:
        path = home / SETTINGS_FILES[agent]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=1) + "\n", "utf-8")
    return home
