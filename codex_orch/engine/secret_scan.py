"""Secrets in a task's commit, found before the commit is made.

The lines a task's commit adds (its staged diff, the decisions entry included) and its message are
searched for
- the values the Redactor hides (redaction.py), in every form it knows: raw, JSON-escaped,
  percent-encoded; and
- well-known credential formats, by detect-secrets (Yelp) with the plugins in PLUGINS: keys and
  tokens of a fixed format, private keys, credentials in URLs, JSON Web Tokens. Its keyword and
  high-entropy plugins are left out: on 2,470 ordinary files (this repository and its virtualenv)
  they flagged 477 lines (hashes, test passwords, `password=` in docs); the chosen set flagged 12,
  10 in detect-secrets' own sources (the shapes it looks for), 2 an example URL in a comment.
A hit stops the commit: the task fails with kind `secret`, naming each file and line and what was
found there, never the secret itself (the agent is asked to fix it on its thread while
limits.retries allows). `secrets.allow` in orchestrator.yaml lets hits through: a plugin name
(that kind of credential anywhere), `$NAME` (that variable's value anywhere), or a path glob
(anything in those files); `secrets.scan: false` turns the scan off.

The engine hands `for_commit(message)` to the workspace's commit as `check_staged`, which git calls
with the staged diff after staging and before committing: git/ stays free of policy and of this
dependency.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from codex_orch.config import Config
from codex_orch.errors import InputError, OrchError
from codex_orch.git.workspace import path_matches
from codex_orch.redaction import Redactor

PLUGINS = (
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)
MESSAGE = "(commit message)"  # where a hit in the commit message is said to be
NAME_LINE = 0  # the "line" of a hit in a new file's name
_SHOWN = 10  # findings named in the failure message; the retry prompt names them all
_DETECT_SECRETS = threading.Lock()  # its settings are process-wide: one scan at a time


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str  # "AWS Access Key", "a secret from $API_KEY": never the secret itself
    rule: str  # the plugin's name, or "$NAME"

    def __str__(self) -> str:
        return (
            f"{self.path} (its name): {self.what}"
            if self.line == NAME_LINE
            else f"{self.path}:{self.line}: {self.what}"
        )


class SecretsFound(OrchError):
    """A task's commit would hold secrets; it was not made."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        listed = "; ".join(str(f) for f in self.findings[:_SHOWN])
        more = f"; and {len(self.findings) - _SHOWN} more" if len(self.findings) > _SHOWN else ""
        super().__init__(
            f"secrets in the changes to commit: {listed}{more}",
            "Remove them from the files, or let them through with secrets.allow in orchestrator.yaml.",
        )


def check_allow(config: Config) -> None:
    """An allow-list entry close to a plugin's name is a misspelt one (taken for a path glob, it
    would allow nothing)."""
    import difflib

    for i, entry in enumerate(config.secrets.allow):
        near = difflib.get_close_matches(entry, PLUGINS, n=1, cutoff=0.8)
        if near and entry not in PLUGINS:
            raise InputError(
                f"{config.source}: secrets.allow[{i}]: unknown detect-secrets plugin {entry!r}",
                f"Did you mean {near[0]!r}? Known plugins: {', '.join(PLUGINS)}.",
            )


class SecretScanner:
    def __init__(self, config: Config, redactor: Redactor) -> None:
        check_allow(config)
        self.enabled = config.secrets.scan
        self.allow = config.secrets.allow
        self.redactor = redactor

    def warm_up(self) -> None:
        """Import and set up what the first scan needs (unidiff, detect-secrets: ~0.1 s), called on a
        thread of its own while the first agents work, so that no task's commit waits for it."""
        if self.enabled:
            import unidiff  # noqa: F401

            with _DETECT_SECRETS:
                _configured()

    def for_commit(self, message: str) -> Callable[[str], None]:
        """The check of one commit, given its staged diff (`git diff --cached -U0`): raises
        SecretsFound for the lines the diff adds and the message's. Called only when something is
        staged: a message that makes no commit (a reviewer quoting what it found) is not held up."""

        def check_staged(diff: str) -> None:
            if self.enabled:
                lines = list(enumerate(message.splitlines(), start=1))
                self._raise_if([*self._in_diff(diff), *self._in_lines(MESSAGE, lines)])

        return check_staged

    def check_text(self, path: str, text: str) -> None:
        """Raise SecretsFound for what `text` would add to `path` (the decisions entry a landing adds)."""
        if self.enabled:
            self._raise_if(self._in_lines(path, list(enumerate(text.splitlines(), start=1))))

    def _raise_if(self, findings: list[Finding]) -> None:
        kept = [f for f in findings if not self._allowed(f)]
        if kept:
            raise SecretsFound(kept)

    def _allowed(self, finding: Finding) -> bool:
        return finding.rule in self.allow or (finding.path != MESSAGE and path_matches(finding.path, self.allow))

    def _in_diff(self, diff: str) -> list[Finding]:
        from unidiff import PatchSet, UnidiffParseError

        try:
            patches = PatchSet.from_string(diff)
        except UnidiffParseError as exc:  # unscanned is uncommitted
            raise OrchError(
                f"the staged diff could not be read for the secret scan ({exc}); nothing was committed"
            ) from None
        findings: list[Finding] = []
        for patch in patches:
            added = [(ln.target_line_no or 0, ln.value.rstrip("\n")) for hunk in patch for ln in hunk if ln.is_added]
            if patch.is_added_file or patch.is_rename:  # a name is committed too
                added.insert(0, (NAME_LINE, patch.path))
            if added:
                findings += self._in_lines(patch.path, added)
        return findings

    def _in_lines(self, path: str, lines: list[tuple[int, str]]) -> list[Finding]:
        found = {(f.line, f.rule): f for f in [*self._values(path, lines), *_patterns(path, lines)]}
        return sorted(found.values(), key=lambda f: (f.line, f.rule))

    def _values(self, path: str, lines: list[tuple[int, str]]) -> Iterator[Finding]:
        """The hidden values, searched in the added lines joined (a value may span lines)."""
        if not self.redactor:
            return
        text = "\n".join(line for _, line in lines)
        starts = [0]
        for _, line in lines[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        for form, name in self.redactor.secrets:
            at = text.find(form)
            while at >= 0:
                number = lines[bisect.bisect_right(starts, at) - 1][0]
                yield Finding(path, number, f"a secret from ${name}", f"${name}")
                at = text.find(form, at + len(form))


def _patterns(path: str, lines: Iterable[tuple[int, str]]) -> list[Finding]:
    """detect-secrets' findings on the lines that one of its plugins' own patterns matches (its full
    scan costs ~0.5 ms a line; the patterns alone, a few µs)."""
    from detect_secrets.core.scan import scan_line

    found = []
    with _DETECT_SECRETS:
        plugins = _configured()
        patterns = [p for plugin in plugins for p in getattr(plugin, "denylist", None) or ()]
        every_line = any(getattr(plugin, "denylist", None) is None for plugin in plugins)
        names = {plugin.secret_type: type(plugin).__name__ for plugin in plugins}
        for number, line in lines:
            if every_line or any(p.search(line) for p in patterns):
                found += [Finding(path, number, str(s.type), names.get(s.type, str(s.type))) for s in scan_line(line)]
    return found


_configured_plugins: list[Any] | None = None


def _configured() -> list[Any]:
    """detect-secrets set up once per process: PLUGINS, its default filters but the one that lets a
    `pragma: allowlist secret` comment (which the agent can write) silence a line, and no
    verification (which would send the secret over the network)."""
    global _configured_plugins
    if _configured_plugins is None:
        from detect_secrets.settings import get_plugins, get_settings

        settings = get_settings()
        settings.clear()
        settings.configure_plugins([{"name": name} for name in PLUGINS])
        settings.disable_filters(
            "detect_secrets.filters.allowlist.is_line_allowlisted",
            "detect_secrets.filters.common.is_ignored_due_to_verification_policies",
        )
        _configured_plugins = list(get_plugins())
    return _configured_plugins
