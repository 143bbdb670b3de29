"""Nothing a contained child starts outlives it: codex-orch reaps its descendants.

A contained child (an attempt's agent, a service, a validation command) is a *unit*. When the unit
ends, every process it started is killed, including those that left its process group and session
(`setsid`, a double fork, `nohup ... &`), and never a process codex-orch runs itself (its git).

How the processes of a unit are known:
- codex-orch makes itself a *child subreaper* (Linux `PR_SET_CHILD_SUBREAPER`): a process whose
  parent dies is re-parented to codex-orch instead of to init, so nothing the agent starts can leave
  codex-orch's tree of descendants.
- With `CODEX_ORCH_REAPER=cgroup`, where codex-orch may make cgroups (v2: root, or a cgroup
  delegated to the user), each unit gets one (proc/cgroups.py): membership is exact and the kernel
  kills all of it at once. Not the default: moving each child into its cgroup costs ~10 ms.
- By default (and where no cgroup can be made) each process below codex-orch is attributed, in
  this order: to the unit whose leader it is or whose session it is in (a session cannot be joined,
  only left); to the unit of its parent; to the unit whose marker it carries in the environment it
  was started with (`CODEX_ORCH_UNIT`, a random value per unit). A process below codex-orch that none
  of these names, in a session that is not codex-orch's own (codex-orch's git runs in codex-orch's
  session), is a *stray*: something a unit started that cleared its environment and left its session.
  A stray is killed when the last live unit that was already running when the stray was born ends
  (so with several units at once, a stray may live until the last of them ends).

docs/security.md lists what this guarantees, the tests that show it, and its limits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from codex_orch.proc import cgroups, procfs
from codex_orch.proc.cgroups import Cgroups

log = logging.getLogger(__name__)

UNIT_VAR = "CODEX_ORCH_UNIT"  # no KEY/SECRET/TOKEN in the name: codex drops such variables from its shells
# "cgroup": a cgroup per unit where this process may make them (else the process tree); anything else
# ("tree", unset): the process tree. Moving a child into its cgroup waits for the kernel to synchronize
# (~10 ms per child on the project's machine), which bench/overhead.py's instant agent would feel.
MODE_VAR = "CODEX_ORCH_REAPER"
_PR_SET_CHILD_SUBREAPER = 36
Stray = Literal["stray"]
STRAY: Stray = "stray"


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux 3.4+); False where it cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class Unit:
    """One contained child and everything it starts. `env()` before the spawn, `attach()` after it,
    `end()` when the child is done or stopped: it kills what is left."""

    def __init__(self, reaper: Reaper, label: str) -> None:
        self.reaper = reaper
        self.label = label
        self.token = secrets.token_hex(16)
        self.leader: int | None = None
        # In clock ticks after boot, as /proc tells when a process started: from now on, a process
        # may be this unit's (its leader, between fork and exec, does not carry the marker yet).
        self.start = procfs.now_ticks() - 1
        self.forks = procfs.forks()
        self.cgroup: Path | None = None

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        return {**base, UNIT_VAR: self.token}

    def attach(self, pid: int) -> None:
        """The child started as `pid`: into a cgroup of its own where possible, with whatever it has
        already started (found by the process tree: it ran for a moment before it was moved)."""
        info = procfs.stat(pid)
        self.leader = pid
        if self.reaper.cgroups is None or info is None:
            return
        self.cgroup = self.reaper.cgroups.adopt(pid, info.start)
        if self.cgroup is not None and procfs.forks() - self.forks > 1:  # more than the child itself
            scan = self.reaper.scan(self._table())
            for early in scan.table:
                if early != pid and scan.owner(early) is self:
                    cgroups.move(self.cgroup, early)

    def members(self) -> list[int]:
        """The live processes of the unit (the leader included), strays it answers for too."""
        if self.cgroup is not None:
            return [p for p in cgroups.procs(self.cgroup) if (i := procfs.stat(p)) is not None and not i.zombie]
        scan = self.reaper.scan(self._table())
        return [pid for pid, info in scan.table.items() if not info.zombie and scan.owns(self, pid)]

    def end(self) -> tuple[str, ...]:
        """Kill every process of the unit that is still alive; what was done, for the log."""
        try:
            if self.cgroup is not None:
                found = {pid: procfs.stat(pid) for pid in cgroups.procs(self.cgroup)}
                cgroups.kill(self.cgroup)
                cgroups.remove(self.cgroup)
                killed = {pid: info for pid, info in found.items() if info is not None}
                dead: dict[int, procfs.ProcInfo] = {}
            elif self.reaper.subreaper and not _has_children():
                # Whatever the unit left would be below us (we are its subreaper): we have no child
                # at all, so nothing is left, and /proc need not be read (a run of one task at a time).
                killed = dead = {}
            else:
                killed, dead = self._kill_tree()
            self.reaper.reap_zombies([*killed, *dead])
        finally:
            self.reaper.forget(self)
        return _steps(self.leader, {p: i for p, i in killed.items() if p != self.leader})

    def _table(self) -> dict[int, procfs.ProcInfo]:
        """The processes that may be this unit's: those born after its leader (pids grow until they wrap
        around, which the count of forks since the leader's start tells), else all."""
        leader = self.leader or 0
        wrapped = procfs.forks() - self.forks >= self.reaper.pid_max - leader
        return procfs.table(0 if wrapped else leader)

    def _kill_tree(self, wait: float = 5.0) -> tuple[dict[int, procfs.ProcInfo], dict[int, procfs.ProcInfo]]:
        """SIGKILL the unit's processes until none is left: those killed, and the unit's zombies (its
        processes that had ended and were re-parented to us, where nobody collected them)."""
        deadline = time.monotonic() + wait
        killed: dict[int, procfs.ProcInfo] = {}
        dead: dict[int, procfs.ProcInfo] = {}
        while True:
            scan = self.reaper.scan(self._table())
            victims = {pid: info for pid, info in scan.table.items() if not info.zombie and scan.owns(self, pid)}
            # zombies of the unit's own (not strays: those may be an embedding program's children)
            dead.update({p: i for p, i in scan.table.items() if i.zombie and scan.owner(p) is self})
            if not victims:
                return killed, dead
            if time.monotonic() > deadline:
                log.warning("%s: processes %s would not die", self.label, sorted(victims))
                return killed, dead
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            killed.update(victims)
            time.sleep(0.01)


def _has_children() -> bool:
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _steps(leader: int | None, left: Mapping[int, procfs.ProcInfo | None]) -> tuple[str, ...]:
    if not left:
        return ()
    in_group = [p for p, i in left.items() if i is not None and i.pgrp == leader]
    escaped = [(p, i) for p, i in left.items() if p not in in_group]
    steps = []
    if in_group:
        steps.append("killed leftover processes of the group")
    if escaped:
        shown = ", ".join(f"{p} ({i.comm if i else '?'})" for p, i in escaped[:5])
        more = f" and {len(escaped) - 5} more" if len(escaped) > 5 else ""
        steps.append(f"killed {len(escaped)} process(es) that had left the group: {shown}{more}")
    return tuple(steps)


class Reaper:
    """The process-wide registry of live units (parallel attempts run in threads of one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.units: dict[str, Unit] = {}
        self.me = os.getpid()
        self.my_sid = os.getsid(0)
        self.subreaper = become_subreaper()
        self.cgroups = Cgroups.setup() if os.environ.get(MODE_VAR) == "cgroup" else None
        self.pid_max = procfs.pid_max()
        if not self.subreaper:
            log.info("cannot become a child subreaper here: only process groups are stopped")

    def unit(self, label: str) -> Unit:
        unit = Unit(self, label)
        with self._lock:
            self.units[unit.token] = unit
        return unit

    def forget(self, unit: Unit) -> None:
        with self._lock:
            self.units.pop(unit.token, None)

    def live(self) -> list[Unit]:
        with self._lock:
            return list(self.units.values())

    def scan(self, table: dict[int, procfs.ProcInfo]) -> Scan:
        return Scan(self, table, self.live())

    def reap_zombies(self, killed: Iterable[int]) -> None:
        """Collect the exit of killed processes that were re-parented to us (never a leader: its Popen
        does that), so that they do not stay zombies."""
        leaders = {u.leader for u in self.live()}
        for pid in killed:
            info = procfs.stat(pid)
            if info is None or info.ppid != self.me or pid in leaders:
                continue
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


class Scan:
    """Who owns which process, in one reading of the process table."""

    def __init__(self, reaper: Reaper, table: dict[int, procfs.ProcInfo], live: list[Unit]) -> None:
        self.reaper = reaper
        self.table = table
        self.live = live
        self.leaders = {u.leader: u for u in live if u.leader}
        self._older: dict[int, procfs.ProcInfo | None] = {}  # read on demand: parents older than the table
        self._memo: dict[int, Unit | Stray | None] = {}

    def info(self, pid: int) -> procfs.ProcInfo | None:
        if pid in self.table:
            return self.table[pid]
        if pid not in self._older:
            self._older[pid] = procfs.stat(pid)
        return self._older[pid]

    def owns(self, unit: Unit, pid: int) -> bool:
        """Is this process the unit's, or a stray the unit answers for?"""
        owner = self.owner(pid)
        if owner is unit:
            return True
        info = self.info(pid)
        return owner == STRAY and info is not None and self._answers_for(unit, info)

    def owner(self, pid: int) -> Unit | Stray | None:
        if pid in self._memo:
            return self._memo[pid]
        self._memo[pid] = None  # a guard while the parents are looked up
        info = self.info(pid)
        owner: Unit | Stray | None = None
        me = self.reaper.me
        if info is not None and pid > 1 and pid != me and info.sid != self.reaper.my_sid:
            if pid in self.leaders:
                owner = self.leaders[pid]
            elif info.sid in self.leaders:
                owner = self.leaders[info.sid]
            elif info.ppid not in (0, 1, me):
                owner = self.owner(info.ppid)
            if owner is None and self._below_me(info):
                token = procfs.environ_value(pid, UNIT_VAR)
                owner = next((u for u in self.live if u.token == token), STRAY)
        self._memo[pid] = owner
        return owner

    def _below_me(self, info: procfs.ProcInfo) -> bool:
        for _ in range(4096):
            if info.ppid == self.reaper.me:
                return True
            parent = self.info(info.ppid) if info.ppid > 1 else None
            if parent is None:
                return False
            info = parent
        return False

    def _answers_for(self, unit: Unit, stray: procfs.ProcInfo) -> bool:
        """A stray born while `unit` ran is killed with it, unless another live unit was running then too."""
        if stray.start < unit.start:
            return False
        return not any(u is not unit and u.start <= stray.start for u in self.live)


_reaper: Reaper | None = None
_reaper_lock = threading.Lock()


def contain(label: str) -> Unit:
    """A new unit of this process's reaper (made, and this process made a subreaper, on first use)."""
    global _reaper
    with _reaper_lock:
        if _reaper is None or _reaper.me != os.getpid():
            _reaper = Reaper()
        reaper = _reaper
    return reaper.unit(label)
