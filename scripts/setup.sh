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
# Debian packages the tests need: bubblewrap (gates run agent-written code confined by it,
# codex_orch/proc/sandbox.py) and chromium (the dashboard's browser tests drive it through Playwright;
# never a downloaded browser). Installed when missing and this runs as root; otherwise it says how.
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: apt-get install ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
    else
        echo "setup: missing ${missing[*]}: install them (Debian: sudo apt-get install ${missing[*]}) for the gate and dashboard tests" >&2
    fi
fi
bash scripts/install-codex.sh >/dev/null
bash scripts/install-agent-clis.sh >/dev/null
