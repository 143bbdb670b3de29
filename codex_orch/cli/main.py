"""The `codex-orch` group: its commands, and the one handler that maps every error to a line and an exit code.

Each command lives in the module of its group (run.py, plan.py, runs.py, lifecycle.py, init.py) and
imports the core inside its body, so that `codex-orch --help` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys

import click

from codex_orch import __version__
from codex_orch.cli import dashboard, init, jobs, lifecycle, logs, plan, run, runs, service, worker
from codex_orch.cli.common import say_error
from codex_orch.errors import EXIT_INTERRUPTED, EXIT_USAGE, OrchError
from codex_orch.interrupts import silence_lost_terminal

EXIT_INTERNAL = 3


def _as_interrupt(signum: int, _frame: object) -> None:
    """SIGTERM and SIGHUP outside a run's drive (which stops its agents first) interrupt like Ctrl-C."""
    if signum == signal.SIGHUP:
        silence_lost_terminal()
    raise KeyboardInterrupt


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="codex-orch")
def main() -> None:
    """Run plans of coding tasks through codex agents in git worktrees, safely and resumably."""


for _command in (
    init.init,
    run.run,
    run.task,
    plan.plan_command,
    run.resume,
    run.cancel,
    runs.runs,
    runs.status,
    runs.report,
    logs.logs,
    logs.timeline,
    dashboard.dashboard,
    lifecycle.merge,
    lifecycle.clean,
    lifecycle.prune,
    lifecycle.validate,
    service.serve,
    service.mcp,
    jobs.jobs,
    worker.worker,
):
    main.add_command(_command)


def _drop_inherited_git_vars() -> None:
    """GIT_* variables inherited from the caller (GIT_DIR, GIT_INDEX_FILE: codex-orch started from a git
    hook) leave os.environ before anything runs, so that no child of codex-orch inherits one by accident;
    its own git gets an environment built without them anyway (git/repo.py's clean_env). Agents and
    validate commands get the same rule (without_git_vars)."""
    from codex_orch.git.environment import without_git_vars

    for key in set(os.environ) - set(without_git_vars(os.environ)):
        del os.environ[key]


def entry(argv: list[str] | None = None) -> int:
    """Run the CLI; map every error to one line and an exit code."""
    from codex_orch.proc.child import die_with_parent_if_asked

    die_with_parent_if_asked()  # a job's run, started by the job service: it does not outlive the service
    _drop_inherited_git_vars()
    previous = {sig: signal.signal(sig, _as_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        main.main(args=argv, prog_name="codex-orch", standalone_mode=False)
        return 0
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except click.exceptions.Abort:
        say_error("interrupted")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        say_error("interrupted")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except OrchError as exc:
        say_error(f"error: {exc}")
        return exc.exit_code
    except Exception as exc:  # an unexpected bug: one line here, the traceback and versions in a file
        from codex_orch.cli.crash import write_crash_log

        path = write_crash_log(exc, sys.argv[1:] if argv is None else argv)
        say_error(f"internal error: {type(exc).__name__}: {exc} (details for a bug report in {path})")
        return EXIT_INTERNAL
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


__all__ = ["EXIT_USAGE", "entry", "main"]
