"""The crash log of an unexpected error: the traceback with what a bug report needs (versions of
codex-orch, Python, git and the libraries, the platform, the command line), written to the user's
state folder, `$XDG_STATE_HOME/codex-orch` (by default `~/.local/state/codex-orch`), one file per
crash (as pre-commit keeps its `pre-commit.log` in its store)."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

LIBRARIES = ("click", "jsonschema", "rich", "Jinja2", "PyYAML", "detect-secrets")


def state_dir() -> Path:
    """Where codex-orch keeps what belongs to the user rather than to a repository."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "codex-orch"


def _git_version() -> str:
    try:
        from codex_orch.git.repo import Git

        code, out, err = Git(Path.cwd()).run_full("--version")
        return out if code == 0 else f"unknown ({err.strip()})"
    except Exception as exc:  # the report must not fail for want of git
        return f"unknown ({exc})"


def _versions() -> list[str]:
    from codex_orch import __version__

    lines = [
        f"codex-orch version: {__version__}",
        f"git --version: {_git_version()}",
        f"sys.version: {sys.version.replace(chr(10), ' ')}",
        f"sys.executable: {sys.executable}",
        f"platform: {platform.platform()}",
    ]
    for name in LIBRARIES:
        try:
            lines.append(f"{name}: {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{name}: not installed")
    return lines


def write_crash_log(exc: BaseException, argv: list[str]) -> Path:
    """Write the log of `exc` (being handled) and return its path: in the state folder, or in the system
    temp folder when that cannot be written."""
    now = datetime.now(UTC)
    text = "\n".join(
        [
            "### version information",
            "",
            "```",
            *_versions(),
            "```",
            "",
            "### error information",
            "",
            "```",
            f"command: codex-orch {' '.join(argv)}",
            f"time: {now.isoformat(timespec='seconds')}",
            f"{type(exc).__name__}: {exc}",
            "```",
            "",
            "```",
            "".join(traceback.format_exception(exc)).rstrip(),
            "```",
            "",
        ]
    )
    from codex_orch.redaction import Redactor

    text = Redactor(dict(os.environ)).text(text)  # a secret in a message or an argument stays out
    name = f"crash-{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}.log"
    try:
        folder = state_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(text, "utf-8")
        return path
    except OSError:
        fd, fallback = tempfile.mkstemp(prefix="codex-orch-crash-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return Path(fallback)
