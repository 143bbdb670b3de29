#!/usr/bin/env bash
# A bench agent whose tasks all edit one file (bench/parallel.py's same-file case): it appends
# "line from job N" to shared.txt and answers. Asked to resolve a landing conflict (the prompt says the
# work "could not land"), it keeps both sides: it deletes git's conflict-marker lines and answers again.
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
IFS= read -r -d '' prompt || true
job="${prompt#*job }"; job="${job%%.*}"
tid="bench-$$-$RANDOM"
printf '{"type":"thread.started","thread_id":"%s"}\n{"type":"turn.started"}\n' "$tid"
[[ "${BENCH_AGENT_SLEEP:-0}" == "0" ]] || sleep "$BENCH_AGENT_SLEEP"
file="$cd_dir/shared.txt"
if [[ "$prompt" == *"could not land"* ]]; then
  kept=""
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^(\<\<\<\<\<\<\<|=======|\>\>\>\>\>\>\>) ]] || kept+="$line"$'\n'
  done < "$file"
  printf '%s' "$kept" > "$file"
else
  printf 'line from job %s\n' "$job" >> "$file"
fi
answer='{"status":"done","summary":"bench job","files_changed":["shared.txt"],"decisions":[],"risks":[],"next_tasks":[]}'
printf '{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"shared.txt","kind":"update"}],"status":"completed"}}\n'
printf '{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"%s"}}\n' "${answer//\"/\\\"}"
printf '{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":5,"reasoning_output_tokens":0}}\n'
[[ -z "$out" ]] || printf '%s' "$answer" > "$out"
