"""The guard's lock: codex-orch's own ref changes side by side, each check alone, no check starved.

Every ordering here is forced with barriers and events; the only waits on time are the bounds after
which a thread that should be blocked is taken to be blocked (a broken lock lets it through at once)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import Repo

from codex_orch.git.guard import Guard
from codex_orch.git.repo import Git
from codex_orch.git.shared_lock import SharedLock

BLOCKED = 0.3  # how long a thread that must wait is watched for not getting in


def _thread(target) -> threading.Thread:  # type: ignore[no-untyped-def]
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def test_shared_holders_are_inside_together() -> None:
    lock = SharedLock()
    both_in = threading.Barrier(3, timeout=10)

    def hold() -> None:
        with lock.shared():
            both_in.wait()  # breaks (BrokenBarrierError) unless both are inside at once

    threads = [_thread(hold), _thread(hold)]
    both_in.wait()
    for t in threads:
        t.join(10)


def test_an_exclusive_holder_is_alone_and_a_waiting_one_goes_before_later_shared_ones() -> None:
    lock = SharedLock()
    order: list[str] = []
    reader_in, release_reader, writer_waiting = threading.Event(), threading.Event(), threading.Event()

    def first_reader() -> None:
        with lock.shared():
            reader_in.set()
            release_reader.wait(10)
            order.append("reader 1 out")

    def writer() -> None:
        writer_waiting.set()
        with lock.exclusive():
            order.append("writer")

    def late_reader() -> None:
        with lock.shared():
            order.append("reader 2")

    r1 = _thread(first_reader)
    assert reader_in.wait(10)
    w = _thread(writer)
    assert writer_waiting.wait(10)
    w.join(BLOCKED)
    assert w.is_alive(), "the exclusive holder got in while a shared holder was inside"
    r2 = _thread(late_reader)
    r2.join(BLOCKED)
    assert r2.is_alive(), "a shared holder that came after a waiting exclusive one went first"
    release_reader.set()
    for t in (r1, w, r2):
        t.join(10)
    assert order == ["reader 1 out", "writer", "reader 2"]


def test_it_is_re_entrant_and_refuses_to_deadlock() -> None:
    lock = SharedLock()
    with lock.exclusive(), lock.exclusive(), lock.shared():
        pass
    with lock.shared(), lock.shared(), pytest.raises(RuntimeError, match="would deadlock"), lock.exclusive():
        pass
    done = threading.Event()

    def take_it() -> None:
        with lock.exclusive():
            done.set()

    _thread(take_it)  # free again: another thread gets it
    assert done.wait(10)


def test_two_of_codex_orchs_own_ref_changes_run_together_and_a_check_waits_for_both(repo: Repo, tmp_path: Path) -> None:
    guard = Guard(Git(repo.path), "r1")
    guard.start()
    head = repo.git("rev-parse", "HEAD")
    inside = threading.Barrier(3, timeout=10)
    release = threading.Event()

    def move(ref: str) -> None:
        with guard.ours(ref):
            repo.git("update-ref", ref, head)
            inside.wait()  # both blocks open at once, or this breaks
            release.wait(10)

    movers = [_thread(lambda: move("refs/heads/a")), _thread(lambda: move("refs/heads/b"))]
    inside.wait()
    changes: list[object] = []
    checker = _thread(lambda: changes.extend(guard.check(None, "refs/orch/r1/quarantine/x/1", tmp_path)))
    checker.join(BLOCKED)
    assert checker.is_alive(), "the check ran while codex-orch was moving refs"
    release.set()
    for t in (*movers, checker):
        t.join(10)
    assert changes == []  # both refs were codex-orch's own moves: nothing put back
    assert repo.git("rev-parse", "refs/heads/a") == repo.git("rev-parse", "refs/heads/b") == head
