#!/usr/bin/env bash
# The stress mode of docs/testing.md: the tests in a random order (pytest-randomly, a new seed each run)
# with two CPU hogs running beside them, RUNS runs in a row; it stops at the first red run and names its
# seed, so that run can be replayed exactly (pytest -p randomly --randomly-seed=SEED ...).
#
#   bash scripts/stress.sh [RUNS] [pytest arguments: files, -k ...]     (RUNS defaults to 20)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
runs="${1:-20}"
shift || true
hogs=()
stop_hogs() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_hogs EXIT
for _ in 1 2; do
    python3 -c 'while True: pass' &
    hogs+=("$!")
done
for run in $(seq 1 "$runs"); do
    seed=$(python3 -c 'import random; print(random.randrange(2**32))')
    echo "stress run $run/$runs: --randomly-seed=$seed"
    if ! .venv/bin/python -m pytest -n 2 -q -p randomly --randomly-seed="$seed" "$@"; then
        echo "stress: run $run/$runs failed; replay it with --randomly-seed=$seed" >&2
        exit 1
    fi
done
echo "stress: $runs runs green, in a random order, beside two CPU hogs"
