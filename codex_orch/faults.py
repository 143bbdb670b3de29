"""Test hooks that crash codex-orch at a named point, so that tests and drills can kill it exactly where
a power cut or a `kill -9` could, every time, instead of at a random moment.

With CODEX_ORCH_FAULT_AT=POINT in the environment, the process kills itself with SIGKILL when it
reaches POINT (or, with POINT:error, fails there as a full disk would: ENOSPC). POINT is a name with
an optional occurrence, `name#N` (the Nth time this process reaches it; the first by default):
- run creation (engine/run.py): `run-dir`, `plan.json`, `spec.md`, `codex-home`, `created`;
- the journal (state.py): `journal:before:<record type>` and `journal:after:<record type>`, e.g.
  `journal:before:task.committed` is the moment after a task's commit was made and before the
  journal says so.
Nothing happens when the variable is not set; reading it costs one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
import threading

FAULT_ENV = "CODEX_ORCH_FAULT_AT"
_seen: dict[str, int] = {}
_lock = threading.Lock()


def fault_point(name: str) -> None:
    fault = os.environ.get(FAULT_ENV)
    if not fault:
        return
    error = fault.endswith(":error")
    point, _, nth = fault.removesuffix(":error").partition("#")
    if point != name:
        return
    with _lock:
        _seen[name] = _seen.get(name, 0) + 1
        count = _seen[name]
    if count != int(nth or 1):
        return
    if error:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGKILL)
