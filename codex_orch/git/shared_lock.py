"""A lock held by many at once or by one alone: codex-orch's own git operations on different refs run
side by side (`shared`), and the guard's check after an attempt runs with none of them (`exclusive`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SharedLock:
    """Shared holders run together; an exclusive holder runs alone. A thread waiting for `exclusive` goes
    before threads that ask for `shared` after it, so a steady stream of shared holders cannot starve it.
    Both modes are re-entrant in the thread that holds them (an exclusive holder may also ask for
    `shared`); asking for `exclusive` while holding only `shared` is a programming error and raises."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0  # threads holding it shared
        self._owner: int | None = None  # the thread holding it exclusive
        self._waiting = 0  # threads waiting for exclusive
        self._mine = threading.local()  # this thread's depth: shared, exclusive

    def _depths(self) -> tuple[int, int]:
        return getattr(self._mine, "shared", 0), getattr(self._mine, "exclusive", 0)

    @contextmanager
    def shared(self) -> Iterator[None]:
        shared, exclusive = self._depths()
        if not shared and not exclusive:
            with self._cond:
                while self._owner is not None or self._waiting:
                    self._cond.wait()
                self._shared += 1
        self._mine.shared = shared + 1
        try:
            yield
        finally:
            self._mine.shared = shared
            if not shared and not exclusive:
                with self._cond:
                    self._shared -= 1
                    if not self._shared:
                        self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        shared, exclusive = self._depths()
        if shared and not exclusive:
            raise RuntimeError("SharedLock: exclusive asked for while holding it shared (it would deadlock)")
        if not exclusive:
            with self._cond:
                self._waiting += 1
                try:
                    while self._owner is not None or self._shared:
                        self._cond.wait()
                finally:
                    self._waiting -= 1
                self._owner = threading.get_ident()
        self._mine.exclusive = exclusive + 1
        try:
            yield
        finally:
            self._mine.exclusive = exclusive
            if not exclusive:
                with self._cond:
                    self._owner = None
                    self._cond.notify_all()
