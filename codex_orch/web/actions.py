"""What the dashboard may change, each behind the bearer token: cancel, resume and merge a run.

Viewing needs nothing; every action needs `Authorization: Bearer <token>` with the token read from
the token file (the service's, or the one `codex-orch dashboard` writes). Without a token file, or
with no header, a wrong token or another scheme, an action is refused (403) before anything is read.
A browser cannot add that header to a cross-site request without a CORS preflight the app never
answers, so a page elsewhere cannot act through a user's open dashboard.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_orch.commands.runs import is_driven, run_dir
from codex_orch.errors import OrchError
from codex_orch.layout import Layout
from codex_orch.proc.background import Background, start_background
from codex_orch.proc.stream import ProcRequest


class Forbidden(Exception):
    """An action without the right token."""


class Conflict(OrchError):
    """An action that does not apply to the run as it is now (nothing was changed)."""


def write_token(path: Path) -> str:
    """A new random token in `path` (mode 0600, replacing any older one)."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def check_token(token_file: Path | None, authorization: str | None) -> None:
    """Raise Forbidden unless `authorization` is `Bearer <the token in token_file>`."""
    if token_file is None:
        raise Forbidden("actions are disabled: this dashboard has no token file")
    try:
        expected = token_file.read_text("utf-8").strip()
    except OSError:
        raise Forbidden(f"actions are disabled: cannot read the token file {token_file}") from None
    scheme, _, given = (authorization or "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        raise Forbidden("this action needs the token: Authorization: Bearer <token>")


@dataclass
class Actions:
    """The actions on the runs of one repository; what they started, to stop when the app stops."""

    root: Path
    started: list[Background] = field(default_factory=list)

    def cancel(self, run_id: str) -> dict[str, Any]:
        """`codex-orch cancel` without waiting: SIGTERM to the process driving the run (it stops its
        agents, records the run interrupted and exits 130, as on Ctrl-C), or the Temporal workflow of a
        run whose submitter is gone cancelled."""
        from codex_orch.commands.cancel import cancel_run

        done = cancel_run(self.root, run_id, wait=False)
        if done.how == "not running":
            raise Conflict(f"run {run_id} is not being driven: nothing to cancel")
        return {"run_id": run_id, "how": done.how, **({"signalled": done.pid} if done.pid else {})}

    def resume(self, run_id: str) -> dict[str, Any]:
        """`codex-orch resume --run-id ID` as a child of this process (its output in the run folder)."""
        folder = run_dir(Layout(self.root), run_id)
        if is_driven(folder):
            raise Conflict(f"run {run_id} is being driven already")
        log = folder / "dashboard-resume.log"
        child = start_background(
            ProcRequest(
                argv=(sys.executable, "-m", "codex_orch", "resume", "--run-id", run_id, "--no-progress"),
                cwd=self.root,
                env=dict(os.environ),
                stdout_path=log,
                stderr_path=log,
            )
        )
        self.started.append(child)
        return {"run_id": run_id, "pid": child.pid, "log": str(log)}

    def merge(self, run_id: str) -> dict[str, Any]:
        from codex_orch.commands.merge import merge_run

        outcome = merge_run(self.root, run_id)
        return {"run_id": run_id, "into": outcome.into, "old": outcome.old, "new": outcome.new}

    def stop(self) -> None:
        """Stop the resumes this app started (each run stays resumable)."""
        for child in self.started:
            if child.poll() is None:
                child.stop()
