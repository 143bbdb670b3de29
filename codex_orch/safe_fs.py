"""Writing into a folder an agent controls, without following anything it planted there.

A worktree belongs to the agent: any folder in it may have become a symlink to somewhere else, any
file a folder, a FIFO or a link. Every path codex-orch writes, appends to or removes there is walked
one component at a time from the root with `O_NOFOLLOW` (and `O_DIRECTORY` for folders), so that the
write lands inside the root or not at all. What blocks a path is an `UnsafePath`, which the caller turns
into a failure of the task, never of the process.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(Exception):
    """A path inside the root that codex-orch will not write through (a link, a folder in a file's place)."""

    def __init__(self, rel: str, why: str) -> None:
        super().__init__(f"{rel}: {why}")
        self.rel = rel
        self.why = why


def _parts(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise UnsafePath(rel, "not a plain relative path")
    return parts


def _why(err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return "is a symbolic link (not followed)"
    if err.errno == errno.ENOTDIR:
        return "a part of it is not a folder (a file or a symbolic link)"
    if err.errno == errno.EISDIR:
        return "is a folder, not a file"
    return os.strerror(err.errno or 0).lower()


@contextmanager
def _parent(root: Path, parts: list[str], rel: str, create: bool) -> Iterator[int]:
    """An fd of the folder holding the last part, reached without following links."""
    fds = [os.open(root, _DIR_FLAGS)]
    try:
        for i, name in enumerate(parts[:-1]):
            try:
                fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o755, dir_fd=fds[-1])
                except FileExistsError:
                    pass
                try:
                    fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
                except OSError as exc:
                    raise UnsafePath("/".join(parts[: i + 1]), _why(exc)) from None
            except OSError as exc:
                raise UnsafePath("/".join(parts[: i + 1]), _why(exc)) from None
        yield fds[-1]
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _open_file(root: Path, rel: str, flags: int, mode: int = 0o644) -> int:
    parts = _parts(rel)
    with _parent(root, parts, rel, create=bool(flags & os.O_CREAT)) as parent:
        try:
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=parent)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise UnsafePath(rel, _why(exc)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(rel, "is not a regular file")
    os.set_blocking(fd, True)
    return fd


def append_text(root: Path, rel: str, text: str, header: str = "") -> int:
    """Append `text` to root/rel, creating it (with `header` first) and its folders when missing.
    Returns the file's size before (0 when it was made), for `truncate` to take the text back out."""
    fd = _open_file(root, rel, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        before = os.fstat(fd).st_size
        data = ((header if before == 0 else "") + text).encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return before


def truncate(root: Path, rel: str, size: int) -> None:
    """Cut root/rel back to `size` bytes (0: remove it), reached without links."""
    if size == 0:
        remove(root, rel)
        return
    fd = _open_file(root, rel, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def write_bytes(root: Path, rel: str, data: bytes, mode: int = 0o644) -> None:
    """Replace root/rel with `data`: whatever was in its place (a link, a FIFO) is removed first, so
    nothing outside the root is written; a folder in its place is an UnsafePath."""
    parts = _parts(rel)
    with _parent(root, parts, rel, create=True) as parent:
        try:
            info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise UnsafePath(rel, "is a folder, not a file")
        if info is not None and not stat.S_ISREG(info.st_mode):
            os.unlink(parts[-1], dir_fd=parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(parts[-1], flags, mode, dir_fd=parent)
        except OSError as exc:
            raise UnsafePath(rel, _why(exc)) from None
        try:
            os.fchmod(fd, mode)  # a file that was there keeps its own mode through O_TRUNC
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def clear(root: Path, rel: str) -> bool:
    """Remove whatever is at root/rel: a file, a link (never what it points at), or a folder with all it
    holds, reached without following links; False when nothing was there."""
    parts = _parts(rel)
    try:
        with _parent(root, parts, rel, create=False) as parent:
            if stat.S_ISDIR(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode):
                shutil.rmtree(parts[-1], dir_fd=parent)
            else:
                os.unlink(parts[-1], dir_fd=parent)
    except FileNotFoundError:
        return False
    return True


def symlink(root: Path, rel: str, target: str) -> None:
    """Make root/rel a link to `target`, its folder reached without following links."""
    parts = _parts(rel)
    with _parent(root, parts, rel, create=True) as parent:
        try:
            os.symlink(target, parts[-1], dir_fd=parent)
        except OSError as exc:
            raise UnsafePath(rel, _why(exc)) from None


def remove(root: Path, rel: str) -> bool:
    """Remove the file or link root/rel itself (never what a link points at); False when it was not there."""
    parts = _parts(rel)
    try:
        with _parent(root, parts, rel, create=False) as parent:
            os.unlink(parts[-1], dir_fd=parent)
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise UnsafePath(rel, "is a folder, not a file") from None
    return True


def read_bytes(root: Path, rel: str, limit: int = 1 << 20) -> bytes | None:
    """The bytes of root/rel when it is a regular file reached without links (None when missing)."""
    try:
        fd = _open_file(root, rel, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)
