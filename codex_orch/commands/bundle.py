"""`report --bundle FILE.tar.gz`: the run folder, redacted, with an index, to attach to a CI job.

The archive holds one folder, `codex-orch-run-<id>/`: `index.json` first (what each file is, its size
and sha256, what was left out and why, the run id, the codex-orch version), then `run/`, the run
folder (`.orchestrator/runs/<id>/`). Every file passes through the run's redactor (the values of
secret-named variables of the environment and of codex.env) as it is copied, even those codex-orch
wrote redacted already: a spec or plan holds what the user typed.

The run folder is hostile ground: an agent may have left links or fifos in its attempt folders. The
walk holds each folder open (os.fwalk) and opens each file with O_NOFOLLOW, so only regular files
inside the folder are read; links are listed as left out, never followed and never stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from codex_orch import __version__
from codex_orch.commands.views import RunView
from codex_orch.errors import InputError
from codex_orch.redaction import Redactor

BUNDLE_VERSION = 1
_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # never a link; a fifo cannot block

# Folders of the run that stay out, and why.
_LEAVE_OUT = {
    "codex-home": "the agent's own CODEX_HOME (codex.home: isolated): codex writes its sessions and any "
    "credentials there itself, not through codex-orch's redactor; events.jsonl holds what the agent did",
    "claude-home": "Claude Code's own CLAUDE_CONFIG_DIR (agents.claude.home: isolated): its sessions and "
    "settings, written by claude itself; events.jsonl holds what the agent did",
    "gemini-home": "Gemini CLI's own GEMINI_CLI_HOME (agents.gemini.home: isolated): its sessions and "
    "settings, written by gemini itself; events.jsonl holds what the agent did",
}
_WHAT = (
    ("state.json", "the run's state: the journal folded into one snapshot"),
    ("journal.jsonl", "every transition of the run, one JSON line each"),
    ("plan.json", "the plan as the run loaded it"),
    ("spec.md", "the spec file given to every prompt"),
    ("report.md", "the run's report (codex-orch report)"),
    ("lock", "the run's lock file: the pid of the last codex-orch process that drove the run"),
    ("tasks/*/attempt-*/prompt.md", "the prompt the agent was given"),
    ("tasks/*/attempt-*/events.jsonl", "the agent's JSONL event stream"),
    ("tasks/*/attempt-*/events.times", "when each line of events.jsonl arrived (Unix time, one per line)"),
    ("tasks/*/attempt-*/stderr.log", "the agent's stderr"),
    ("tasks/*/attempt-*/last_message.txt", "the agent's last message, as codex wrote it"),
    ("tasks/*/attempt-*/final.json", "the agent's final answer"),
    ("tasks/*/attempt-*/validation.txt", "the answer's check: valid, or the failure kind and the errors"),
    ("services/*.log", "the output of one of the run's services"),
    ("validate/*", "the output of a `codex-orch validate` command"),
    ("dashboard-resume.log", "the output of a `codex-orch resume` the dashboard started"),
)


@dataclass(frozen=True)
class Bundle:
    path: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[dict[str, str]] = field(default_factory=list)


def what(rel: str) -> str:
    return next((text for pattern, text in _WHAT if fnmatchcase(rel, pattern)), "a file of the run folder")


def check_destination(dest: Path, run_folder: Path, force: bool) -> None:
    """Refuse a destination before anything is written."""
    if dest.is_dir():
        raise InputError(f"--bundle: {dest} is a directory", "Name the .tar.gz file to write.")
    if dest.parent.resolve().is_relative_to(run_folder.resolve()):
        raise InputError(f"--bundle: {dest} is inside the run folder {run_folder}", "Write the bundle elsewhere.")
    if os.path.lexists(dest) and not force:
        raise InputError(f"--bundle: {dest} already exists.", "Use --force to replace it.")


def bundle_redactor(root: Path) -> Redactor:
    """The run's redactor: secret-named variables of this environment and of codex.env."""
    from codex_orch.config import load_config
    from codex_orch.engine.agent_env import redactor_for
    from codex_orch.layout import Layout

    return redactor_for(load_config(Layout(root)))


def _entries(folder: Path, left_out: list[dict[str, str]]) -> Iterator[tuple[str, int, int]]:
    """(path inside the folder, fd of its folder, mtime) of each regular file, in a stable order."""
    for dirpath, dirnames, filenames, dirfd in os.fwalk(folder, follow_symlinks=False):
        here = Path(dirpath).relative_to(folder)
        keep = []
        for name in sorted(dirnames + filenames):
            rel = (here / name).as_posix()
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if rel in _LEAVE_OUT:
                left_out.append({"path": rel, "why": _LEAVE_OUT[rel]})
            elif stat.S_ISLNK(st.st_mode):
                left_out.append({"path": rel, "why": "a symbolic link (not followed)"})
            elif stat.S_ISDIR(st.st_mode):
                keep.append(name)
            elif stat.S_ISREG(st.st_mode):
                yield rel, dirfd, int(st.st_mtime)
            else:
                left_out.append({"path": rel, "why": "not a regular file"})
        dirnames[:] = keep  # fwalk descends only into these (a link to a folder never)


def _copy_redacted(name: str, dirfd: int, redactor: Redactor, sink: io.BufferedWriter) -> str | None:
    """Copy one file through the redactor; its sha256, or None if it is not a regular file after all."""
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dirfd)
    except OSError:
        return None  # gone, or swapped for a link since the walk saw it
    digest = hashlib.sha256()
    stream = redactor.stream()
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            return None
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            data = stream.feed(chunk)
            digest.update(data)
            sink.write(data)
    data = stream.flush()
    digest.update(data)
    sink.write(data)
    return digest.hexdigest()


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


@dataclass(frozen=True)
class _Copy:
    arcname: str
    size: int
    mtime: int
    path: Path  # the redacted copy in the scratch folder


def _copy_all(run_folder: Path, redactor: Redactor, scratch: Path, bundle: Bundle) -> list[_Copy]:
    """Redacted copies of the run's files, made before the archive so that the index can come first
    and tells the sizes and hashes of exactly what follows it."""
    copies: list[_Copy] = []
    for rel, dirfd, mtime in _entries(run_folder, bundle.left_out):
        copy = scratch / str(len(copies))
        with copy.open("wb") as sink:
            sha = _copy_redacted(os.path.basename(rel), dirfd, redactor, sink)
        if sha is None:
            bundle.left_out.append({"path": rel, "why": "changed while it was read: no longer a regular file"})
            continue
        path, size = redactor.text(rel), copy.stat().st_size
        bundle.files.append({"path": path, "size": size, "sha256": sha, "what": what(rel)})
        copies.append(_Copy(f"run/{path}", size, mtime, copy))
    return copies


def _index(view: RunView, redactor: Redactor, bundle: Bundle) -> bytes:
    index = {
        "bundle_version": BUNDLE_VERSION,
        "run_id": view.run_id,
        "run_status": view.status,
        "codex_orch_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "layout": {"index.json": "this file", "run/": f"the run folder, .orchestrator/runs/{view.run_id}/"},
        "redacted": redactor.names,
        "redaction": "the values of these variables are replaced by [REDACTED:NAME] in every file",
        "files": bundle.files,
        "left_out": bundle.left_out,
    }
    return (json.dumps(index, indent=1) + "\n").encode("utf-8")


def write_bundle(run_folder: Path, view: RunView, dest: Path, force: bool, redactor: Redactor) -> Bundle:
    check_destination(dest, run_folder, force)
    top = f"codex-orch-run-{view.run_id}"
    bundle = Bundle(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="codex-orch-bundle-") as scratch:
        copies = _copy_all(run_folder, redactor, Path(scratch), bundle)
        index = _index(view, redactor, bundle)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                    tar.addfile(_member(f"{top}/index.json", len(index), int(time.time())), io.BytesIO(index))
                    for copy in copies:
                        with copy.path.open("rb") as fh:
                            tar.addfile(_member(f"{top}/{copy.arcname}", copy.size, copy.mtime), fh)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return bundle
