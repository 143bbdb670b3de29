"""Reading Linux's /proc: one process's ids, the table of processes, a variable of a process's
environment, and which processes use a path (their working directory, an open file, their program).

Every reader tolerates a process that ends while it is being read (it is then simply absent) and a
process it may not read (another user's: its environment and files are skipped)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = "/proc"


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgrp: int
    sid: int
    state: str  # R, S, D, Z (zombie), T (stopped), ...
    start: int  # clock ticks after boot: with the pid, names one process for its whole life
    comm: str

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def stat(pid: int) -> ProcInfo | None:
    """The ids of a process from /proc/<pid>/stat; None when it is gone."""
    try:
        fd = os.open(f"{PROC}/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _parse(pid, raw)


def _parse(pid: int, raw: bytes) -> ProcInfo | None:
    # pid (comm) state ppid pgrp session ...: comm may hold spaces and parens, so split after the last ')'.
    close = raw.rfind(b")")
    fields = raw[close + 2 :].split()
    if close < 0 or len(fields) < 20:
        return None
    comm = raw[raw.find(b"(") + 1 : close].decode("utf-8", "replace")
    return ProcInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0].decode(), int(fields[19]), comm)


def pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir(PROC) if name.isdigit()]
    except OSError:  # no /proc (not Linux)
        return []


def table(from_pid: int = 0) -> dict[int, ProcInfo]:
    """Every process (zombies included) whose pid is at least `from_pid`."""
    found = {}
    for pid in pids():
        if pid >= from_pid:
            info = stat(pid)
            if info is not None:
                found[pid] = info
    return found


def forks() -> int:
    """How many processes and threads the system has created since boot (/proc/stat `processes`)."""
    try:
        with open(f"{PROC}/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"processes "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def pid_max() -> int:
    try:
        with open(f"{PROC}/sys/kernel/pid_max", "rb") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 32768  # the smallest default: the safe guess for "could pids have wrapped around?"


def now_ticks() -> int:
    """Now, on the clock of ProcInfo.start (clock ticks after boot, suspended time included)."""
    clock = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)  # Linux; elsewhere /proc is absent anyway
    return int(time.clock_gettime(clock) * os.sysconf("SC_CLK_TCK"))


def boot_time() -> float | None:
    try:
        with open(f"{PROC}/stat", "rb") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def start_epoch(pid: int) -> float | None:
    """When a live process started (seconds since the epoch); None if it is gone or a zombie."""
    info = stat(pid)
    boot = boot_time()
    if info is None or info.zombie or boot is None:
        return None
    return boot + info.start / os.sysconf("SC_CLK_TCK")


def environ_value(pid: int, key: str) -> str | None:
    """The value of one variable in the environment a process was started with (None: unset or unreadable)."""
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    prefix = key.encode() + b"="
    for entry in data.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode("utf-8", "replace")
    return None


def command_line(pid: int) -> str:
    """The command a process runs, for messages: its argv joined, or its name."""
    try:
        with open(f"{PROC}/{pid}/cmdline", "rb") as fh:
            argv = [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        argv = []
    if argv:
        text = " ".join(argv)
        return text if len(text) <= 120 else text[:117] + "..."
    info = stat(pid)
    return f"[{info.comm}]" if info else "?"


@dataclass(frozen=True)
class PathUser:
    pid: int
    command: str
    how: str  # "works in it" (cwd), "runs a program from it", "has FILE open"

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command}) {self.how}"


def _inside(link: str, folder: str) -> bool:
    return link == folder or link.startswith(folder + "/")


def path_users(folders: Iterable[Path], exclude: Iterable[int] = ()) -> dict[Path, list[PathUser]]:
    """For each folder, the live processes that work in it, run a program from it, or hold a file
    under it open (their cwd, exe and fds, from /proc). Processes we may not inspect are skipped."""
    wanted = {str(Path(f).resolve()): Path(f) for f in folders}
    found: dict[Path, list[PathUser]] = {f: [] for f in wanted.values()}
    skip = {os.getpid(), *exclude}
    for pid in pids():
        if pid not in skip:
            for folder, how in _uses(pid, wanted).items():
                found[folder].append(PathUser(pid, command_line(pid), how))
    return found


def _uses(pid: int, wanted: dict[str, Path]) -> dict[Path, str]:
    """The folders of `wanted` (resolved path -> folder) that process `pid` uses, each with the first way
    found: its cwd, exe or root, else an open file."""
    uses: dict[Path, str] = {}

    def note(link: str, how: str) -> None:
        for resolved, folder in wanted.items():
            if folder not in uses and _inside(link, resolved):
                uses[folder] = how

    for name, how in (("cwd", "works in it"), ("exe", "runs a program from it"), ("root", "has its root in it")):
        try:
            note(os.readlink(f"{PROC}/{pid}/{name}"), how)
        except OSError:
            continue
    try:
        fds = os.listdir(f"{PROC}/{pid}/fd")
    except OSError:
        fds = []
    for fd in fds:
        if len(uses) == len(wanted):
            break
        try:
            link = os.readlink(f"{PROC}/{pid}/fd/{fd}")
        except OSError:
            continue
        note(link, f"has {link} open")
    return uses


def file_holders(path: Path) -> list[PathUser]:
    """The live processes that hold this very file open (matched by device and inode, so a rename or a
    path spelled another way does not hide one)."""
    try:
        target = os.stat(path)
    except OSError:
        return []
    holders = []
    for pid in pids():
        if pid == os.getpid():
            continue
        try:
            fds = os.listdir(f"{PROC}/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"{PROC}/{pid}/fd/{fd}")
            except OSError:
                continue
            if st.st_ino == target.st_ino and st.st_dev == target.st_dev:
                holders.append(PathUser(pid, command_line(pid), f"has {path} open"))
                break
    return holders
