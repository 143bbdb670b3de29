"""The signals that interrupt codex-orch, and its output after the terminal is gone.

Ctrl-C (SIGINT), SIGTERM and a hang-up (SIGHUP: the terminal was closed, the ssh link dropped) all
stop codex-orch the same way: no new task starts, running agents and services are stopped with
everything they started, running tasks are recorded `interrupted`, the state is written, and the exit
code is 130 (EXIT_INTERRUPTED) whichever signal it was: the code says what state the run is in (`resume`
continues it), and the journal's `run.status` record names the signal.
"""

from __future__ import annotations

import os
import signal
import stat

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def silence_lost_terminal() -> None:
    """After a hang-up, writing to the terminal that was closed fails (EIO) and would break whatever
    writes next (a progress line, the final table) in the middle of stopping. Point stdout and stderr
    that were such a terminal at /dev/null; leave them alone when the terminal still works or when
    they are files or pipes (`nohup`, a log)."""
    for fd in (1, 2):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISCHR(mode) and not os.isatty(fd):
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
