"""Reading the files a user hands codex-orch (plan, spec, config): one place for the checks and their
one-line errors. Only regular files are read: a FIFO nobody writes to would hang the read, a device
could feed it forever."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from codex_orch.errors import InputError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int, label: str) -> InputError | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return InputError(f"{label}: is a directory, not a file")
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return InputError(f"{label}: is {kind}, not a regular file")


def read_text_file(path: Path, label: str, max_bytes: int, why_limit: str = "") -> str:
    """The file's UTF-8 text, or an InputError naming the file: missing, not a regular file (a
    directory, FIFO, device or socket: never opened for reading, so never waited on), unreadable,
    larger than `max_bytes`, holding a NUL byte (binary), or not UTF-8."""
    too_large = f"{label}: too large (%.1f MiB; the limit is {max_bytes // 1024**2} MiB{why_limit})"
    try:
        problem = _not_regular(os.stat(path).st_mode, label)
        if problem:
            raise problem
        # O_NONBLOCK: should the path be swapped for a FIFO after the check, opening it does not wait
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        try:
            info = os.fstat(fd)
            problem = _not_regular(info.st_mode, label)
            if problem:
                raise problem
            if info.st_size > max_bytes:
                raise InputError(too_large % (info.st_size / 1024**2))
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read(max_bytes + 1)  # the file may have grown since fstat
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot read: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise InputError(too_large % (len(data) / 1024**2))
    nul = data.find(b"\0")
    if nul >= 0:
        raise InputError(f"{label}: not a text file (NUL byte at offset {nul})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not UTF-8 text (invalid byte at offset {exc.start})") from None


# A YAML alias stands for a value written earlier, so a few hundred bytes of aliases to aliases (a
# "billion laughs") stand for billions of values. PyYAML shares them rather than copying, so loading is
# quick, but whatever walks the result (the schema check, an error message quoting a value) does not
# end. PyYAML has no limit of its own (yaml/pyyaml#235), so the loaded value is weighed as if every
# alias were written out, each shared value once per reference, and refused past this many characters:
# four times what the largest file allowed could hold without aliases.
EXPANSION_FACTOR = 4


def read_yaml_file(path: Path, label: str, max_bytes: int) -> Any:
    """The YAML value in a file (read as read_text_file does), safely loaded, its aliases bounded."""
    import yaml

    text = read_text_file(path, label, max_bytes)
    limit = EXPANSION_FACTOR * max_bytes
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~20x faster
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{label}: {where}invalid YAML: {problem}") from None
    except RecursionError:  # the pure-Python loader, on values nested thousands deep
        raise InputError(f"{label}: invalid YAML: nested too deeply") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise InputError(f"{label}: invalid YAML: {exc}") from None
    weight = expanded_size(data, limit)
    if weight is None:
        raise InputError(f"{label}: invalid YAML: an alias refers to a value that holds it (a recursive value)")
    if weight > limit:
        raise InputError(
            f"{label}: its YAML aliases expand to more than {limit:,} characters of values (a 'billion laughs'?)",
            "Write the values out, or use fewer aliases.",
        )
    return data


def expanded_size(value: Any, limit: int) -> int | None:
    """How big `value` is with every shared (aliased) value counted once per reference: a container
    counts 1, a scalar 1 plus the length of its text. Counting stops a little past `limit`; each
    container is visited once, so a billion laughs costs as little as its text. None: `value` holds
    itself (a recursive alias)."""
    if not isinstance(value, (dict, list)):
        return 1 + len(str(value))
    done: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, children_done = stack.pop()
        key = id(item)
        if key in done:
            continue
        if not children_done and key in on_path:
            return None
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        if children_done:
            on_path.discard(key)
            total = 1 + sum(done[id(c)] if isinstance(c, (dict, list)) else 1 + len(str(c)) for c in children)
            done[key] = min(total, limit + 1)
        else:
            on_path.add(key)
            stack.append((item, True))
            stack += [(child, False) for child in children if isinstance(child, (dict, list))]
    return done[id(value)]
