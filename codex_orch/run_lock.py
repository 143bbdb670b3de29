"""The lock of one run: an `flock` on runs/<id>/lock, released by the kernel when its holder dies (even
by kill -9), which is how `resume` knows a task recorded running has no live driver."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from codex_orch.errors import RunLockedError

LOCK_NAME = "lock"


class RunLock:
    """An exclusive, non-blocking lock on a run: released by the kernel when its holder dies."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self._fd = -1

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise RunLockedError(
                f"run {self.path.parent.name} is being driven by another codex-orch process (pid {holder}).",
                "Wait for it to finish, or stop it first.",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def is_held_elsewhere(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def holder(self) -> int | None:
        """The pid the holder wrote into the lock file, if that process is a codex-orch (a pid that
        another program has taken over since, or a file someone edited, is no holder to signal)."""
        try:
            pid = int(self.path.read_text("ascii").strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"codex_orch" in cmdline or b"codex-orch" in cmdline else None

    def wait_released(self) -> None:
        """Block until no process holds the lock (its holder released it or died); takes it for no longer
        than that."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
