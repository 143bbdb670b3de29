from __future__ import annotations

import atexit
import os
import sys
import threading


def main() -> None:
    from codex_orch.cli.main import entry

    exit_now(entry())


def exit_now(code: int) -> None:
    """End the process without tearing the interpreter down object by object.

    By the time a command returns, its state is written and closed and its locks released: what is left
    is CPython freeing every module and object one at a time (~35 ms with jsonschema, jinja2 and rich
    loaded; the operating system does it at once). Exit handlers still run and output is still
    flushed. While any other thread is alive, the ordinary exit waits for it as usual."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.current_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what CPython's own exit reports as status 120
            code = code or 120
    os._exit(code)


if __name__ == "__main__":
    main()
