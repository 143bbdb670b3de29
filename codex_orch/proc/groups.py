"""Process groups: who is still in one, stopping all of it, and telling our orphaned agent from a
stranger that reuses its pid."""

from __future__ import annotations

import logging
import os
import signal
import time

log = logging.getLogger(__name__)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []  # no process at all, not even a zombie: no need to scan /proc
    except PermissionError:
        pass
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: fall back to asking the kernel about the group as a whole
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parens, so split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry))
    return members


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


def start_time(pid: int) -> float | None:
    """When a live process started (seconds since the epoch), from /proc; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def is_our_orphan(pgid: int, started: float, slack: float = 120.0) -> bool:
    """Is process group `pgid` still the agent an attempt started at `started` (epoch seconds)?

    A recorded pid can belong to an unrelated process by now (pids are reused after a reboot or a
    wrap-around), and killing its group would hurt the user. While any member of a group lives, its
    id cannot be reused; so a group without its leader is ours, and a group whose leader lives is
    ours only when that leader started when the attempt did."""
    if not group_members(pgid):
        return False
    leader = start_time(pgid)
    return leader is None or abs(leader - started) <= slack
