#!/usr/bin/env bash
# bench/tracing/instructions.sh [N] - the cost of tracing in instructions:
# each mode of bench/tracing/run.sh (base, off, drop, otlpc) runs the server
# under valgrind's callgrind, N requests (default 2000) after 300 warm-up
# ones are counted, and the instructions executed per request are printed
# per thread (the loop's thread, the OTLP exporter's). Deterministic where
# run.sh's req/s are not (a shared machine: steal, other jobs); it counts
# user space only (the kernel's work per request, the same in every mode
# but for the echoed header and the exporter's sends, is not in it).
# Needs valgrind (callgrind_control), node, curl.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
N=${1:-2000}
APP=$ROOT/bench/tracing/app.lua
BIN=${JARARACA_BIN:-$ROOT/build/jararaca}
WORK=${BENCH_WORK:-/tmp/jararaca-bench-tracing-ir}
PORT=${PORT:-18097}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"

source "$ROOT/bench/tracing/base_lua.sh"
make_base_lua "$ROOT" "$WORK"

OTLP_RECEIVER_DISCARD=count node "$ROOT/spec/support/otlp_receiver.js" > "$WORK/receiver.log" 2>&1 &
RECV=$!
SRV=
trap 'kill $RECV ${SRV:-} 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q '^port ' "$WORK/receiver.log" && break; sleep 0.05; done
RPORT=$(awk '/^port /{print $2; exit}' "$WORK/receiver.log")

run() { # MODE
  local mode=$1 env=(env JR_BENCH_TRACING=$1) out="$WORK/cg-$1"
  [ "$mode" = base ] && env=(env JR_BENCH_TRACING=off JARARACA_LUA_DIR="$WORK/lua-base")
  [ "$mode" = otlpc ] && env=(env JR_BENCH_TRACING=otlp OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$RPORT"
    OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none)
  "${env[@]}" valgrind --tool=callgrind --smc-check=all-non-file --separate-threads=yes \
    --callgrind-out-file="$out" "$BIN" server "$APP" --host 127.0.0.1 --port $PORT --worker-timeout 0 \
    --log-level warn > "$WORK/server-$mode.log" 2>&1 &
  SRV=$!
  for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$PORT/hello?name=x" && break; sleep 0.2; done
  node "$ROOT/bench/tracing/requests.js" $PORT 300 > /dev/null
  callgrind_control -z $SRV > /dev/null 2>&1
  node "$ROOT/bench/tracing/requests.js" $PORT "$N" > /dev/null
  callgrind_control -d $SRV > /dev/null 2>&1
  kill $SRV; wait $SRV 2>/dev/null || true; SRV=
  # the dump: one file per thread, .1-01 the loop's (main) thread
  local main exporter=0
  main=$(awk '/^summary:/{print $2}' "$out.1-01")
  for f in "$out".1-0[2-9]; do [ -f "$f" ] && exporter=$((exporter + $(awk '/^summary:/{print $2}' "$f"))); done
  echo "RESULT $mode loop_thread=$((main / N)) exporter_thread=$((exporter / N)) (instructions per request)"
}
for m in ${MODES:-base off drop otlpc}; do run "$m"; done
