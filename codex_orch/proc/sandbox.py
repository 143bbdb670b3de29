"""Confining a command that runs code an agent wrote (a gate): bubblewrap (`bwrap`), the same tool
codex's own Linux sandbox is built on. Inside, the whole file system is read-only except the folders
named writable (the worktree) and a private temporary folder; there is no network (loopback included),
its processes are in their own pid namespace and die with it."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from codex_orch.errors import OrchError

BWRAP = "bwrap"


class SandboxUnavailable(OrchError):
    """bubblewrap is not installed: a confined command cannot run."""


def bwrap_path() -> str | None:
    return shutil.which(BWRAP)


def confined(argv: Sequence[str], writable: Sequence[Path], tmp: Path, cwd: Path) -> tuple[str, ...]:
    """`argv` run under bubblewrap: `writable` and `tmp` (also its TMPDIR) are the only folders it may
    write; everything else is read-only, and it has no network."""
    program = bwrap_path()
    if program is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so a gate cannot run confined",
            "Install it (Debian/Ubuntu: apt-get install bubblewrap), or give the gate `sandbox: none`.",
        )
    binds: list[str] = []
    for folder in (*writable, tmp):
        binds += ["--bind", str(folder), str(folder)]
    return (
        program,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        *binds,
        "--setenv",
        "TMPDIR",
        str(tmp),
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--chdir",
        str(cwd),
        "--",
        *argv,
    )
