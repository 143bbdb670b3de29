"""The small files git keeps refs and settings in, read again only when their stat changed: what the
guard (git/guard.py) compares after every attempt, at the cost of a stat per file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# A watched file (a hook, git's config) is kept whole up to this size, so that it can be put back; a
# larger one is compared by size and mtime only, and a change to it is reported but never undone.
MAX_WATCHED_FILE = 16 << 20


class RefScan:
    """Reads the small files git keeps refs and settings in, again only when their stat changed (git
    replaces a ref file by renaming a new one over it, so its inode changes too)."""

    def __init__(self) -> None:
        self._cache: dict[Path | str, tuple[tuple[int, int, int, int], object]] = {}

    @staticmethod
    def _sig(info: os.stat_result) -> tuple[int, int, int, int]:
        return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)

    def packed(self, path: Path) -> dict[str, str]:
        try:
            sig = self._sig(path.stat())
        except FileNotFoundError:
            return {}
        cached = self._cache.get(path)
        if cached and cached[0] == sig:
            return cached[1]  # type: ignore[return-value]
        refs = {}
        for line in path.read_text("utf-8", "replace").splitlines():
            if line and line[0] not in "#^":
                sha, _, name = line.partition(" ")
                refs[name] = sha
        self._cache[path] = (sig, refs)
        return refs

    def loose(self, common: Path, top: str) -> dict[str, str]:
        """The loose refs at `top`: one ref file, or a folder walked down. Paths stay strings here: a run
        of hundreds of tasks keeps a branch each, and this runs after every attempt."""
        refs: dict[str, str] = {}
        files: list[tuple[str, os.stat_result]] = []
        root = str(common) + os.sep
        stack = [root + top]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except NotADirectoryError:
                files.append((folder, os.lstat(folder)))
                continue
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif not entry.name.endswith(".lock"):
                    files.append((entry.path, entry.stat(follow_symlinks=False)))
        for path, info in files:
            sig, cached = self._sig(info), self._cache.get(path)
            if cached and cached[0] == sig:
                value = cached[1]
            else:
                try:
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        value = handle.read().strip()
                except OSError:
                    continue
                self._cache[path] = (sig, value)
            if isinstance(value, str) and not value.startswith("ref:"):
                refs[path[len(root) :]] = value
        return refs

    def content(self, path: Path) -> bytes:
        """What a watched file holds, as compared: mode and bytes, a link's target, or a large file's
        size and mtime."""
        info = path.lstat()
        sig = self._sig(info)
        cached = self._cache.get(path)
        if cached and cached[0] == sig:
            return cached[1]  # type: ignore[return-value]
        if stat.S_ISLNK(info.st_mode):
            value = b"link:" + os.readlink(path).encode()
        elif info.st_size > MAX_WATCHED_FILE:
            value = f"large:{info.st_size}:{info.st_mtime_ns}".encode()
        else:
            try:
                value = (b"x" if info.st_mode & 0o111 else b"-") + path.read_bytes()
            except OSError:
                value = b"unreadable"
        self._cache[path] = (sig, value)
        return value
