#!/usr/bin/env bash
# bench/tasks/list.sh [ROWS] [MIX_SECONDS] - the tasks app's list route on a big table:
#   1. seeds ROWS tasks (default 100000) through POST /tasks;
#   2. GET /tasks?page=0&page_size=10 for 10 s (wrk -t2 -c64), then by cursor
#      (?after=... from deep in the table);
#   3. a MIX_SECONDS (default 60) mix of list reads (-c32) and inserts (-c32)
#      at the same time, sampling the size of tasks.db-wal every 0.2 s: its peak.
# Prints req/s, p99, server CPU per request and the WAL's peak size. Env:
# JARARACA_BIN (default build/jararaca), WORKERS (1), PORT (18089).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROWS=${1:-100000}
MIX=${2:-60}
BIN=${JARARACA_BIN:-$ROOT/build/jararaca}
WORKERS=${WORKERS:-1}
PORT=${PORT:-18089}
WORK=$(mktemp -d /tmp/jararaca-bench-list.XXXXXX)
[ -x "$BIN" ] || { echo "build first: ./dev.sh build (no $BIN)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export TASKS_DB="$WORK/tasks.db"

"$BIN" server "$ROOT/examples/tasks/app.lua" --host 127.0.0.1 --port "$PORT" --log-level warn \
  --workers "$WORKERS" >"$WORK/server.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/tasks?page_size=1" >/dev/null && break; sleep 0.1; done

cat >"$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"benchmark task"}'
EOF

# CPU ticks (user + system) of the server and its children
ticks() {
  local t=0 p
  for p in $SPID $(pgrep -P "$SPID" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)

# run_wrk LABEL SECONDS CONNS URL [SCRIPT]
run_wrk() {
  local label=$1 secs=$2 conns=$3 url=$4 script=${5:-}
  local t0; t0=$(ticks)
  wrk -t2 -c"$conns" -d"${secs}s" --latency ${script:+-s "$script"} "$url" >"$WORK/$label.txt" 2>&1
  local t1; t1=$(ticks)
  local rps p99 errs
  rps=$(awk '/^Requests\/sec:/{print $2}' "$WORK/$label.txt")
  p99=$(awk '$1=="99%"{print $2}' "$WORK/$label.txt")
  errs=$(awk '/Socket errors|Non-2xx/{printf "%s ", $0}' "$WORK/$label.txt")
  awk -v l="$label" -v r="$rps" -v p="$p99" -v a="$t0" -v b="$t1" -v hz="$HZ" -v s="$secs" -v e="$errs" \
    -v mix="${6:-}" 'BEGIN{cpu=(mix=="")?sprintf("server CPU %5.1f us/req", (b-a)/hz/(r*s)*1e6):"(server CPU shared)";
      printf "%-26s %9.0f req/s  p99 %8s  %s  %s\n", l, r, p, cpu, (e==""?"errors none":e)}'
}

echo "seeding $ROWS tasks (workers=$WORKERS)..." >&2
while :; do
  n=$(curl -fs "http://127.0.0.1:$PORT/tasks?page_size=1" | sed -n 's/.*"unpaginated_total":\([0-9]*\).*/\1/p')
  [ "${n:-0}" -ge "$ROWS" ] && break
  # ~5k inserts/s at the least: a burst that cannot overshoot by much
  wrk -t2 -c32 -d"$(( (ROWS - ${n:-0}) / 10000 + 1 ))s" -s "$WORK/post.lua" "http://127.0.0.1:$PORT/tasks" >/dev/null 2>&1
done
echo "rows: $n" >&2

wrk -t2 -c64 -d3s "http://127.0.0.1:$PORT/tasks?page=0&page_size=10" >/dev/null 2>&1 # warm-up
run_wrk "list page 0" 10 64 "http://127.0.0.1:$PORT/tasks?page=0&page_size=10"
CURSOR=$(curl -fs "http://127.0.0.1:$PORT/tasks?page=999&page_size=10" | sed -n 's/.*"next_cursor":"\([^"]*\)".*/\1/p')
run_wrk "list by cursor (row 10k)" 10 64 "http://127.0.0.1:$PORT/tasks?page_size=10&after=$CURSOR"

echo "mix for ${MIX}s: list reads (-c32) and inserts (-c32) together..." >&2
sample_wal() { while :; do stat -c %s "$TASKS_DB-wal" 2>/dev/null || echo 0; sleep 0.2; done; }
sample_wal >"$WORK/wal.txt" &
SAMPLER=$!
run_wrk "mix: list" "$MIX" 32 "http://127.0.0.1:$PORT/tasks?page=0&page_size=10" "" mix &
L=$!
run_wrk "mix: insert" "$MIX" 32 "http://127.0.0.1:$PORT/tasks" "$WORK/post.lua" mix &
I=$!
wait $L $I || true
kill $SAMPLER 2>/dev/null || true
awk '$1+0 > m {m = $1+0} END {printf "WAL peak during the mix: %.1f MB (%d samples)\n", m/1048576, NR}' "$WORK/wal.txt"
ROWS_AFTER=$(curl -fs "http://127.0.0.1:$PORT/tasks?page_size=1" | sed -n 's/.*"unpaginated_total":\([0-9]*\).*/\1/p' || true)
echo "rows after the mix: ${ROWS_AFTER:-?}"
