#!/usr/bin/env bash
# bench/http/validation.sh - what typed-route validation costs (1 worker):
# GET /hello (no body), POST /echo (decode + encode, no schema) and POST
# /users (a flat 10-field object validated against a schema, shaped by the
# response schema). Same wrk settings as the anchors (-t2 -c64, 2 s warm-up,
# 10 s). Prints req/s, p50/p99 and server CPU µs per request for each.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN=${JARARACA_BIN:-$ROOT/build/jararaca}
PORT=${PORT:-18096}
SECS=${WRK_SECS:-10}
"$BIN" server "$ROOT/examples/hello/app.lua" --host 127.0.0.1 --port $PORT --log-level warn &
SPID=$!
trap 'kill $SPID 2>/dev/null || true' EXIT
for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
ticks() { awk '{print $14+$15}' /proc/$SPID/stat; }
HZ=$(getconf CLK_TCK)
run() { # label path [script]
  local label=$1 path=$2; shift 2
  wrk -t2 -c64 -d2s "$@" "http://127.0.0.1:$PORT$path" >/dev/null
  local t0; t0=$(ticks)
  local out; out=$(wrk -t2 -c64 -d${SECS}s --latency "$@" "http://127.0.0.1:$PORT$path")
  local t1; t1=$(ticks)
  local reqs rps p50 p99 non2xx
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/{print $5}')
  echo "RESULT validation $label rps=$rps p50=$p50 p99=$p99 cpu_us_per_req=$(echo "($t1-$t0)*1000000/$HZ/$reqs" | bc -l | cut -c1-5) non2xx=${non2xx:-0}"
}
run get-hello "/hello?name=x"
WRK_PATH=/echo run post-echo-untyped /echo -s "$ROOT/bench/http/post.lua"
WRK_PATH=/users run post-users-typed /users -s "$ROOT/bench/http/post.lua"
