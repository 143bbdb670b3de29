"""Where what codex-orch's modules log goes while a run is driven: every record from INFO up (the
steps that stopped an agent, a wait for a locked index, a task's failure) to the run's own
`codex-orch.log`, redacted, and warnings also to stderr, one line each. Outside a run nothing is
configured: Python prints warnings to stderr and drops the rest."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from codex_orch.redaction import Redactor

LOG_NAME = "codex-orch.log"
_FORMAT = "%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s"


class _Redacting(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redactor.text(record.getMessage()), None
        return True


class _Stderr(logging.StreamHandler[TextIO]):
    """sys.stderr as it is when a record comes (the live table redirects it, a hang-up silences it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


@contextmanager
def run_log(run_dir: Path, redactor: Redactor | None) -> Iterator[Path]:
    """Log to `run_dir`/codex-orch.log (appended: a resumed run goes on in the same file) while the
    block runs."""
    logger = logging.getLogger("codex_orch")
    path = run_dir / LOG_NAME
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(_FORMAT))
    to_stderr = _Stderr()
    to_stderr.setLevel(logging.WARNING)
    to_stderr.setFormatter(logging.Formatter("codex-orch: warning: %(message)s"))
    if redactor is not None:
        for handler in (to_file, to_stderr):
            handler.addFilter(_Redacting(redactor))
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(to_file)
    logger.addHandler(to_stderr)
    try:
        yield path
    finally:
        logger.removeHandler(to_stderr)
        logger.removeHandler(to_file)
        logger.setLevel(level)
        to_file.close()
