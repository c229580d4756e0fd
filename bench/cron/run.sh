#!/usr/bin/env bash
# bench/cron/run.sh [ROUNDS] [TICKS] - the scheduler's firing jitter in the
# server process (issue #12): one `jararaca server --scheduler` (1 worker, no
# master) runs bench/cron/app.lua, whose every-second action logs
# (tick, fired_at); jitter = fired_at - tick.
# Each round has two phases on a fresh server:
#   idle   no load: TICKS ticks (default 60), for reference;
#   load   wrk -t2 -c64 (the anchors' settings) on GET /ping for TICKS + 5 s;
#          the TICKS ticks from wrk's third second on (wrk runs through them).
# Prints a RESULT line per phase and round, then a table (bench/cron/summary.py):
# jitter p50 / p99 / max in ms, req/s during the run, and the machine's load
# (uptime) at the start of each phase. Target: p99 <= 5 ms under load.
# Needs wrk. Loopback only; every process is stopped by its PID.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS=${1:-3}
TICKS=${2:-60}
PORT=${CRON_PORT:-18097}
BIN=${JARARACA_BIN:-$ROOT/build/jararaca}
WORK=${BENCH_WORK:-/tmp/jararaca-bench-cron}
[ -x "$BIN" ] || { echo "build first: ./dev.sh build (no $BIN)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"
OUT="$WORK/results.txt"; : > "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SPID=
stop_server() {
  [ -n "$SPID" ] || return 0
  kill -TERM "$SPID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=
}
trap stop_server EXIT

# start_server LOG: a fresh server (fresh store) logging its ticks to LOG
start_server() {
  if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then
    echo "port $PORT is in use: not benchmarking a server we did not start (CRON_PORT=...)" >&2; exit 1
  fi
  rm -f "$WORK"/cron.scheduler.db*
  JARARACA_SCHEDULER_STORE="sqlite:///$WORK/cron.scheduler.db" \
    "$BIN" server "$ROOT/bench/cron/app.lua" --host 127.0.0.1 --port "$PORT" --scheduler \
    --workers 1 --worker-timeout 0 --log-level warn > "$1" 2>&1 &
  SPID=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.05; done
  curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null || { cat "$1" >&2; exit 1; }
  # the first tick fired: the timer runs
  for _ in $(seq 1 40); do grep -q "cron tick=" "$1" && return 0; sleep 0.05; done
  echo "no tick logged:" >&2; cat "$1" >&2; exit 1
}

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r" >&2
  # ---- idle: no load
  LOG="$WORK/idle-$r.log"
  start_server "$LOG"
  LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
  FROM=$(( $(date +%s) + 2 ))
  sleep "$((TICKS + 3))"
  stop_server
  python3 "$ROOT/bench/cron/summary.py" line "round=$r idle" "$LOG" "$FROM" "$((FROM + TICKS - 1))" "" "$LOAD" \
    | tee -a "$OUT"

  # ---- load: wrk on GET /ping while the ticks fire
  LOG="$WORK/load-$r.log"
  start_server "$LOG"
  LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
  FROM=$(( $(date +%s) + 3 ))
  wrk -t2 -c64 -d"$((TICKS + 5))s" --latency "http://127.0.0.1:$PORT/ping" > "$WORK/wrk-$r.txt" 2>&1
  stop_server
  python3 "$ROOT/bench/cron/summary.py" line "round=$r load" "$LOG" "$FROM" "$((FROM + TICKS - 1))" \
    "$WORK/wrk-$r.txt" "$LOAD" \
    | tee -a "$OUT"
done

python3 "$ROOT/bench/cron/summary.py" table "$OUT"
echo "raw results and logs: $WORK" >&2
