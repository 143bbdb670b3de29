"""Secrets from the environment never reach codex-orch's files.

The agent needs the environment (codex reads its API key from it) and may print anything; whatever
codex-orch writes — events, stderr, prompts, answers, the journal and state, commit messages,
decisions, reports — passes through a Redactor that replaces, with a marker naming the variable:
- the value of every environment variable whose name says it is a secret (KEY, TOKEN, SECRET,
  PASSWORD, PASSWD, CREDENTIAL);
- in the value of any variable that holds a credential URL (`scheme://user:password@host`, such as
  `DATABASE_URL`), the whole value, the `scheme://user:password@` part and the password itself;
each in every form it takes where codex-orch finds text: as it is, escaped inside a JSON string
(once — a command's output in an event — and twice — the agent's JSON answer inside an event —,
with and without `\\uXXXX` for non-ASCII characters), and percent-encoded as in a URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would blank out ordinary text
# scheme://user:password@host — the user may be empty (redis://:password@host), the password may not
# characters no JSON or URL encoding changes: a run of them in a value is in every form of it
_KEPT_RUN = re.compile(r"[A-Za-z0-9_.~-]+")
CREDENTIAL_URL = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:(?P<password>[^\s/?#@]+)@)[^\s/?#@]")


def _json_escaped(value: str, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)[1:-1]


def encoded_forms(value: str) -> set[str]:
    """The value as it may appear in text codex-orch writes: raw, JSON-escaped once and twice (with
    and without \\uXXXX escapes), and percent-encoded (path, component and form encodings)."""
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    for inner in (True, False):
        once = _json_escaped(value, inner)
        forms.update((once, _json_escaped(once, True), _json_escaped(once, False)))
    return forms


def _secret_parts(name: str, value: str) -> Iterator[str]:
    """What of one variable's value must not be written: all of it when its name says it is a
    secret; the credential URLs in it, whatever its name."""
    if SECRET_NAME.search(name):
        yield value
    for match in CREDENTIAL_URL.finditer(value):
        password = match.group("password")
        yield from (value, match.group("prefix"), password, unquote(password))


def _anchor(part: str) -> str:
    """The longest run of characters that every form of `part` holds as they are ("" if none)."""
    return max(_KEPT_RUN.findall(part), key=len, default="")


class Redactor:
    """Each secret in all its forms, longest first. The forms of one value share an anchor (a run of
    its characters no encoding changes): text that lacks the anchor is not searched for them, so a
    stream costs one search per anchor, not one per form."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        pairs: dict[str, tuple[str, str]] = {}  # form -> (variable, anchor)
        for name, value in environ.items():
            for part in _secret_parts(name, value):
                if len(part) >= MIN_SECRET_LENGTH:
                    for form in encoded_forms(part):
                        pairs.setdefault(form, (name, _anchor(part)))
        ordered = sorted(pairs.items(), key=lambda kv: -len(kv[0]))  # longest first
        self._secrets = [(form, name) for form, (name, _) in ordered]
        anchors = list(dict.fromkeys(anchor for _, (_, anchor) in ordered))
        self._anchors = anchors
        self._anchor_bytes = [a.encode("utf-8") for a in anchors]
        self._forms = [(form, f"[REDACTED:{name}]", anchors.index(anchor)) for form, (name, anchor) in ordered]
        self._bytes = [(f.encode("utf-8"), m.encode("utf-8"), i) for f, m, i in self._forms]
        self.longest = max((len(f) for f, _, _ in self._bytes), default=0)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    @property
    def names(self) -> list[str]:
        """The names of the variables whose values are redacted (never the values)."""
        return sorted({name for _, name in self._secrets})

    @property
    def secrets(self) -> tuple[tuple[str, str], ...]:
        """Every (form of a secret value, name of its variable), longest first."""
        return tuple(self._secrets)

    def text(self, text: str) -> str:
        present = [anchor in text for anchor in self._anchors]
        for form, marker, anchor in self._forms:
            if present[anchor] and form in text:
                text = text.replace(form, marker)
        return text

    def data(self, data: bytes) -> bytes:
        present = [anchor in data for anchor in self._anchor_bytes]
        for form, marker, anchor in self._bytes:
            if present[anchor] and form in data:
                data = data.replace(form, marker)
        return data

    def value(self, obj: Any) -> Any:
        """A JSON-like value with every string in it, keys included, redacted. Redacting the strings
        rather than the JSON text they make keeps the text valid whatever a secret starts with."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.value(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.value(v) for v in obj]
        return obj

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts a byte stream written in chunks: holds back the last (longest form of a secret - 1)
    bytes of each chunk so that a secret split across two chunks, in any of its forms, is still found."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self._redactor:
            return chunk
        data = self._redactor.data(self._held + chunk)
        keep = self._redactor.longest - 1  # at least MIN_SECRET_LENGTH - 1: never 0 when there are secrets
        self._held = data[-keep:]  # all of it while it is shorter
        return data[:-keep]

    def flush(self) -> bytes:
        data, self._held = self._redactor.data(self._held), b""
        return data
