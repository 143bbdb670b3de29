#!/usr/bin/env bash
# README command 1: set everything up (venv, codex-orch, the pinned codex CLI) and run a real
# 3-task plan with the real codex CLI against a local SCRIPTED model server. No API key needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
