#!/usr/bin/env bash
# Install the pinned OpenAI Codex CLI (see tools/codex/package.json) into
# tools/codex/node_modules. Idempotent: does nothing when the right version is
# already there. Prints the path of the codex binary on its last line.
set -euo pipefail

CODEX_VERSION="0.169.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG_DIR="$ROOT/tools/codex"
BIN="$PKG_DIR/node_modules/.bin/codex"

installed_version() {
    # `codex --version` prints e.g. "codex-cli 0.169.0"
    if [[ -x "$BIN" ]]; then
        "$BIN" --version 2>/dev/null </dev/null | awk '{print $NF}' || true
    fi
}

if [[ "$(installed_version)" != "$CODEX_VERSION" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "install-codex.sh: npm not found; install Node.js (>= 16) and npm first" >&2
        exit 1
    fi
    echo "install-codex.sh: installing @openai/codex@$CODEX_VERSION into $PKG_DIR" >&2
    (cd "$PKG_DIR" && npm ci --no-audit --no-fund >&2)
    got="$(installed_version)"
    if [[ "$got" != "$CODEX_VERSION" ]]; then
        echo "install-codex.sh: expected codex $CODEX_VERSION after npm ci, got '${got:-nothing}'" >&2
        exit 1
    fi
fi

echo "$BIN"
