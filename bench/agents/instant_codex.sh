#!/usr/bin/env bash
# A minimal agent for benchmarks: speaks just enough of `codex exec --json` (thread.started, one
# file_change, the agent_message, turn.completed, the -o file) with almost no start-up cost (bash builtins; one mkdir), so that
# a benchmark measures codex-orch rather than the agent. BENCH_AGENT_SLEEP seconds of "work";
# it writes out/<task marker>/result.txt where the marker is the first "job N." in the prompt.
set -euo pipefail
out=""; cd_dir="."
while (($#)); do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -C) cd_dir="$2"; shift 2 ;;
    -s|--output-schema|-m|-p|-c) shift 2 ;;
    *) shift ;;
  esac
done
IFS= read -r -d '' prompt || true  # all of stdin, without forking cat
job="${prompt#*job }"; job="${job%%.*}"
tid="bench-$$-$RANDOM"
printf '{"type":"thread.started","thread_id":"%s"}\n{"type":"turn.started"}\n' "$tid"
[[ "${BENCH_AGENT_SLEEP:-0}" == "0" ]] || sleep "$BENCH_AGENT_SLEEP"
mkdir -p "$cd_dir/out/$job"
printf '%s\n' "$tid" > "$cd_dir/out/$job/result.txt"
# BENCH_AGENT_ANSWER: another answer, for a tool whose schema differs (bench/overhead.py --compare-with)
answer='{"status":"done","summary":"bench job","files_changed":[],"decisions":[],"risks":[],"next_tasks":[]}'
answer="${BENCH_AGENT_ANSWER:-$answer}"

printf '{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"out/%s/result.txt","kind":"add"}],"status":"completed"}}\n' "$job"
printf '{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"%s"}}\n' "${answer//\"/\\\"}"
printf '{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":5,"reasoning_output_tokens":0}}\n'
[[ -z "$out" ]] || printf '%s' "$answer" > "$out"
