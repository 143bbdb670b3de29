#!/usr/bin/env bash
# The test command: sets up what is missing (see setup.sh), then runs the whole suite, including the
# tests that drive the real codex CLI against the loopback scripted model server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/python -m pytest -n 2 "$@"
