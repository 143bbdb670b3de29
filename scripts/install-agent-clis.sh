#!/usr/bin/env bash
# Install the pinned Claude Code and Gemini CLIs (see tools/claude/package.json and
# tools/gemini/package.json) into tools/<name>/node_modules, from their package-lock.json.
# Idempotent: a CLI whose installed package has the pinned version is left alone. Prints the path of
# each binary, one a line. (codex: scripts/install-codex.sh.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

installed_version() {  # the version in the installed package's package.json (no need to start the CLI)
    local manifest="$1"
    if [[ -f "$manifest" ]]; then
        sed -n 's/^  "version": "\(.*\)",$/\1/p' "$manifest" | head -n 1
    fi
}

install_cli() {  # name, npm package, version, binary name
    local name="$1" package="$2" version="$3" binary="$4"
    local dir="$ROOT/tools/$name"
    local bin="$dir/node_modules/.bin/$binary"
    local manifest="$dir/node_modules/$package/package.json"
    if [[ "$(installed_version "$manifest")" != "$version" || ! -x "$bin" ]]; then
        if ! command -v npm >/dev/null 2>&1; then
            echo "install-agent-clis.sh: npm not found; install Node.js (>= 20) and npm first" >&2
            exit 1
        fi
        echo "install-agent-clis.sh: installing $package@$version into $dir" >&2
        (cd "$dir" && npm ci --no-audit --no-fund >&2)
        local got
        got="$(installed_version "$manifest")"
        if [[ "$got" != "$version" || ! -x "$bin" ]]; then
            echo "install-agent-clis.sh: expected $package $version at $bin after npm ci, got '${got:-nothing}'" >&2
            exit 1
        fi
    fi
    echo "$bin"
}

install_cli claude @anthropic-ai/claude-code 2.1.328 claude
install_cli gemini @google/gemini-cli 0.61.0 gemini
