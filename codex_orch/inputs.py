"""Reading the files a user hands codex-orch: one place for the checks and their one-line errors."""

from __future__ import annotations

from pathlib import Path

from codex_orch.errors import InputError


def read_text_file(path: Path, label: str, max_bytes: int, why_limit: str = "") -> str:
    """The file's UTF-8 text, or an InputError naming the file: missing, a directory, unreadable, larger
    than `max_bytes`, holding a NUL byte (binary), or not UTF-8."""
    try:
        size = path.stat().st_size
        if size > max_bytes and path.is_file():
            raise InputError(
                f"{label}: too large ({size / 1024**2:.1f} MiB; the limit is {max_bytes // 1024**2} MiB{why_limit})"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot read: {exc.strerror}") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise InputError(f"{label}: not a text file (NUL byte at offset {nul})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not UTF-8 text (invalid byte at offset {exc.start})") from None
