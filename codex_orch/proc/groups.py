"""Process groups and sessions: who is still in one, stopping all of it, and telling our orphaned agent
from a stranger that reuses its pid."""

from __future__ import annotations

import logging
import os
import signal
import time

from codex_orch.proc import cgroups, procfs

log = logging.getLogger(__name__)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []  # no process at all, not even a zombie: no need to scan /proc
    except PermissionError:
        pass
    if not procfs.pids():  # no /proc: the kernel's word for the group as a whole
        return [pgid]
    return [p.pid for p in procfs.table().values() if p.pgrp == pgid and not p.zombie]


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of a session: what a child started in its own session left, unless
    a process of it started a session of its own (setsid)."""
    return [p.pid for p in procfs.table().values() if p.sid == sid and not p.zombie]


def kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap_group(pgid: int, wait: float = 5.0) -> bool:
    """SIGKILL every member of the group until none is left; True when the group is gone."""
    deadline = time.monotonic() + wait
    while True:
        members = group_members(pgid)
        if not members:
            return True
        if time.monotonic() > deadline:
            log.warning("process group %d still has members %s", pgid, members)
            return False
        kill_group(pgid, signal.SIGKILL)
        time.sleep(0.02)


def reap_session(sid: int, wait: float = 5.0) -> bool:
    """SIGKILL every process of the session (its groups and their members) until none is left."""
    deadline = time.monotonic() + wait
    while True:
        members = session_members(sid)
        if not members:
            return True
        if time.monotonic() > deadline:
            log.warning("session %d still has members %s", sid, members)
            return False
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)


def start_time(pid: int) -> float | None:
    """When a live process started (seconds since the epoch), from /proc; None if it is gone."""
    return procfs.start_epoch(pid)


def is_our_orphan(pgid: int, started: float, slack: float = 120.0) -> bool:
    """Is process group `pgid` still the agent an attempt started at `started` (epoch seconds)?

    A recorded pid can belong to an unrelated process by now (pids are reused after a reboot or a
    wrap-around), and killing its group would hurt the user. While any member of a group lives, its
    id cannot be reused; so a group without its leader is ours, and a group whose leader lives is
    ours only when that leader started when the attempt did."""
    if not group_members(pgid) and not session_members(pgid):
        return False
    leader = start_time(pgid)
    return leader is None or abs(leader - started) <= slack


def reap_orphan(pid: int, started: float) -> bool:
    """Stop what is left of a child codex-orch started in its own session at `started` and lost track
    of (codex-orch was killed): its cgroup when it had one (proc/cgroups.py), its process group and its
    session, when they are provably still ours. True when something was ours to stop."""
    found = bool(cgroups.kill_orphaned(pid, started))
    if not is_our_orphan(pid, started):
        return found
    reap_group(pid)
    reap_session(pid)
    return True
