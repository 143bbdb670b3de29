#!/usr/bin/env bash
# Set up a development checkout from scratch, idempotently: a virtualenv in .venv with codex-orch
# installed in editable mode (with its dev tools), the pinned codex CLI in tools/codex, and the pinned
# Claude Code and Gemini CLIs in tools/claude and tools/gemini (the real-agent tests drive all three).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"

if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv with $("$PYTHON" --version)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.codex-orch-installed
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    echo "setup: pip install -e .[dev]" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' >&2
    touch "$stamp"
fi
# Gates run agent-written code confined by bubblewrap (codex_orch/proc/sandbox.py); its tests need it.
if ! command -v bwrap >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: apt-get install bubblewrap" >&2
        apt-get install -y -q bubblewrap >&2
    else
        echo "setup: bubblewrap (bwrap) is missing: install it for confined gates (apt-get install bubblewrap)" >&2
    fi
fi
bash scripts/install-codex.sh >/dev/null
bash scripts/install-agent-clis.sh >/dev/null
# The dashboard's browser tests drive Debian's chromium through Playwright (never a downloaded browser).
if ! command -v chromium >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: apt-get install chromium (for the dashboard's browser tests)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
    else
        echo "setup: chromium is missing; install it (Debian: sudo apt-get install chromium) for tests/test_dashboard_browser.py" >&2
    fi
fi
