"""The one family of user-facing errors and the exit codes they map to."""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_TASKS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class OrchError(Exception):
    """An expected failure: one line for the user, an optional hint, an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        return f"{sentence(self.message)} {self.hint}"


def sentence(text: str) -> str:
    """`text` ending with a full stop (or the mark it already has), so that a hint after it reads apart."""
    text = text.rstrip()
    return text if not text or text[-1] in ".!?:" else f"{text}."


class InputError(OrchError):
    """Bad input: a plan, config, spec file or argument that cannot be used (exit 2)."""


class GitError(OrchError):
    """git refused or failed; carries git's own words."""


class GuardrailError(OrchError):
    """Something the agent left in its worktree stops codex-orch from doing its part safely (a link where
    codex-orch writes, a folder in a file's place); fails the task as `guardrail`, never the run."""


class RunLockedError(OrchError):
    """Another codex-orch process is driving this run."""


class InputProblems(InputError):
    """Several problems with the input at once, each one line naming the file and the place.

    One problem reads as that one line; several as a count followed by one indented line each."""

    def __init__(self, problems: Sequence[str], hint: str | None = None) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:" + "".join(f"\n  {p}" for p in self.problems)
        super().__init__(message, hint)
