"""Secrets from the environment never reach codex-orch's files.

The agent needs the environment (codex reads its API key from it) and may print anything; whatever
codex-orch writes — events, stderr, prompts, answers, the journal and state, commit messages,
decisions, reports — passes through a Redactor that replaces the value of every environment variable
whose name says it is a secret (KEY, TOKEN, SECRET, PASSWORD, PASSWD, CREDENTIAL) with a marker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would blank out ordinary text


class Redactor:
    def __init__(self, environ: Mapping[str, str]) -> None:
        pairs = {
            value: name
            for name, value in environ.items()
            if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH
        }
        self._secrets = sorted(pairs.items(), key=lambda kv: -len(kv[0]))  # longest first
        self._bytes = [(value.encode("utf-8"), f"[REDACTED:{name}]".encode()) for value, name in self._secrets]
        self.longest = max((len(v) for v, _ in self._bytes), default=0)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    @property
    def names(self) -> list[str]:
        """The names of the variables whose values are redacted (never the values)."""
        return sorted({name for _, name in self._secrets})

    def text(self, text: str) -> str:
        for value, name in self._secrets:
            if value in text:
                text = text.replace(value, f"[REDACTED:{name}]")
        return text

    def data(self, data: bytes) -> bytes:
        for value, marker in self._bytes:
            if value in data:
                data = data.replace(value, marker)
        return data

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts a byte stream written in chunks: holds back the last (longest secret - 1) bytes of each
    chunk so that a secret split across two chunks is still found."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self._redactor:
            return chunk
        data = self._redactor.data(self._held + chunk)
        keep = self._redactor.longest - 1
        if keep <= 0 or len(data) <= keep:
            self._held = data if keep > 0 else b""
            return b"" if keep > 0 else data
        self._held = data[-keep:]
        return data[:-keep]

    def flush(self) -> bytes:
        data, self._held = self._redactor.data(self._held), b""
        return data
