"""A cgroup (v2) per contained child, where the machine lets codex-orch make one.

A cgroup holds every process started inside it, whatever it does to its parentage, session or
environment: so when one is writable it is the exact answer to "what did this agent start?", and
`cgroup.kill` (Linux 5.14) ends all of it at once. codex-orch makes a folder for itself under its own
cgroup (`codex-orch-<pid>-<start>`) and one per child in it (`<pid>-<start>` of the child). A child
moves in just after it started (Python cannot start it inside one); what it started before that is
moved in after it, found the way proc/reaper.py finds a unit's processes.

When codex-orch is killed (kill -9), its cgroups stay, with whatever still runs in them: `resume`
finds the cgroup of an orphaned agent by its recorded pid and start and empties it
(`kill_orphaned`); the next codex-orch that sets up in the same place removes the empty folders.

Writable means: root; or a cgroup delegated to the user (systemd's `user@UID.service` subtree, e.g.
a desktop terminal's scope, or `systemd-run --user --scope codex-orch ...`). Elsewhere (an ssh
session's scope, most containers, cgroup v1 only, not Linux) `Cgroups.setup()` returns None and the
reaper follows process trees instead (proc/reaper.py).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import time
from pathlib import Path

from codex_orch.proc import procfs

log = logging.getLogger(__name__)

PREFIX = "codex-orch-"


def _own_cgroup() -> Path | None:
    """The folder of this process's cgroup in the cgroup2 file system, when one is mounted."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as fh:
            path = next((line[3:].strip() for line in fh if line.startswith("0::")), None)
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return None
    if path is None:
        return None
    for fields in mounts:
        sep = fields.index("-") if "-" in fields else -1
        if sep > 0 and fields[sep + 1] == "cgroup2" and (path + "/").startswith(fields[3].rstrip("/") + "/"):
            folder = Path(fields[4]) / path[len(fields[3].rstrip("/")) :].lstrip("/")
            if folder.is_dir():
                return folder
    return None


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)


def procs(group: Path) -> list[int]:
    """Every process in the cgroup and the cgroups below it."""
    found: list[int] = []
    for folder, _, _ in os.walk(group):
        try:
            with open(os.path.join(folder, "cgroup.procs"), encoding="ascii") as fh:
                found += [int(line) for line in fh if line.strip()]
        except OSError:
            continue
    return found


def populated(group: Path) -> bool:
    try:
        with open(group / "cgroup.events", encoding="ascii") as fh:
            return any(line.strip() == "populated 1" for line in fh)
    except OSError:
        return bool(procs(group))


def kill(group: Path, wait: float = 5.0) -> list[int]:
    """SIGKILL every process in the cgroup (and below), and wait until it is empty; the pids killed."""
    pids = procs(group)
    if not pids:
        return []
    try:
        _write(group / "cgroup.kill", "1")
    except OSError:  # before Linux 5.14: signal each member, again until none is left
        pass
    deadline = time.monotonic() + wait
    while populated(group) and time.monotonic() < deadline:
        for pid in procs(group):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    if populated(group):
        log.warning("cgroup %s still holds processes %s", group, procs(group))
    return pids


def remove(group: Path) -> None:
    """Remove an empty cgroup and the (empty) cgroups below it, deepest first."""
    for folder, _, _ in sorted(os.walk(group), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass


class Cgroups:
    """The folder this codex-orch process makes its children's cgroups in."""

    def __init__(self, base: Path) -> None:
        self.base = base

    @classmethod
    def setup(cls) -> Cgroups | None:
        """Make this process's folder under its own cgroup; None when that is not allowed here."""
        own = _own_cgroup()
        me = procfs.stat(os.getpid())
        if own is None or me is None:
            return None
        base = own / f"{PREFIX}{os.getpid()}-{me.start}"
        try:
            base.mkdir(exist_ok=True)
        except OSError:
            return None
        for folder in _abandoned(own):
            if not populated(folder):
                remove(folder)
        atexit.register(remove, base)
        return cls(base)

    def adopt(self, pid: int, start: int) -> Path | None:
        """A cgroup for a just-started child, with the child moved in; None when the kernel refuses."""
        group = self.base / f"{pid}-{start}"
        try:
            group.mkdir()
        except OSError:
            return None
        if not move(group, pid):
            remove(group)
            return None
        return group


def move(group: Path, pid: int) -> bool:
    try:
        _write(group / "cgroup.procs", str(pid))
    except OSError as exc:
        log.info("cannot move pid %d into %s: %s", pid, group, exc)
        return False
    return True


def _abandoned(own: Path) -> list[Path]:
    """The folders of codex-orch processes that are gone (killed: kill -9, a crash)."""
    try:
        entries = [p for p in own.iterdir() if p.name.startswith(PREFIX) and p.is_dir()]
    except OSError:
        return []
    found = []
    for folder in entries:
        pid, _, start = folder.name[len(PREFIX) :].partition("-")
        owner = procfs.stat(int(pid)) if pid.isdigit() else None
        if owner is None or owner.zombie or str(owner.start) != start:
            found.append(folder)
    return found


def kill_orphaned(pid: int, started: float, slack: float = 120.0) -> list[int]:
    """Empty and remove the cgroup of a child that a killed codex-orch started at `started` (epoch
    seconds) as `pid`: everything it started dies, whatever session it moved to. The pids killed."""
    own = _own_cgroup()
    boot = procfs.boot_time()
    if own is None or boot is None:
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    killed: list[int] = []
    for folder in _abandoned(own):
        for group in folder.glob(f"{pid}-*"):
            start = group.name.partition("-")[2]
            if start.isdigit() and abs(boot + int(start) / ticks - started) <= slack:
                killed += kill(group)
                remove(group)
    return killed
