#!/usr/bin/env bash
# bench/tracing/run.sh [ROUNDS] - the cost of tracing on GET /hello?name=x
# (examples/hello through bench/tracing/app.lua), one worker, same run.
#
# Four ways, interleaved in every round (identical wrk settings: the
# anchors' run_wrk, 2 s warm-up then wrk -t2 -c64 -d10s, keep-alive):
#   base  tracing not there: a copy of lua/ whose request hook in
#         http/dispatch.lua (the `if tracing_state.on then ... end` block of
#         the hot path, the only per-request tracing code when it is off) is
#         cut out, loaded with JARARACA_LUA_DIR; app without `tracing`
#   off   tracing compiled in, off (the app has no `tracing` table)
#   drop  tracing on, 100 % sampling, finished spans handed to a sink that
#         drops them (ids, span, attributes, traceparent echo: all of it)
#   otlp  tracing on, 100 % sampling, OTLP/HTTP export of the spans to the
#         test receiver (spec/support/otlp_receiver.js, node, on this machine:
#         it decodes every request and keeps counts); skipped with a note
#         when the tree has no OTLP exporter. MODES="off drop" to choose.
#   otlpc the same export to a second receiver that only counts requests and
#         bytes (OTLP_RECEIVER_DISCARD=count): a collector elsewhere, whose
#         decoding does not take this machine's two cores from the server
# Prints RESULT lines and a table: median req/s and server CPU µs per
# request per mode, and the differences the issue's targets are about
# (off vs base <= 2 %, drop/otlp vs off <= 15 % fewer req/s).
# Needs ../shared/bench/anchors (copied to a writable place), wrk, curl,
# node with spec/js's packages (npm ci in spec/js) for otlp.
# Noise: the machine is shared; "other CPU %" (the anchors' run_wrk) is what
# else ran meanwhile. Server CPU per request is read from /proc.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS=${1:-3}
APP=$ROOT/bench/tracing/app.lua
PORT=${PORT:-18087}
source "$ROOT/bench/lib.sh"
bench_setup /tmp/jararaca-bench-tracing
OUT="$WORK/results.txt"; : > "$OUT"

source "$ROOT/bench/tracing/base_lua.sh"
make_base_lua "$ROOT" "$WORK"

MODES=${MODES:-base off drop otlp otlpc}
RECV_PID=
RECV2_PID=
cleanup() { for p in $RECV_PID $RECV2_PID; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
if [[ " $MODES " == *" otlp "* ]]; then
  RECV=$ROOT/spec/support/otlp_receiver.js
  if [ ! -f "$RECV" ] || [ ! -f "$ROOT/lua/jararaca/otlp/traces.lua" ]; then
    echo "note: no OTLP exporter or receiver in this tree: otlp mode skipped" >&2
    MODES=${MODES/otlpc/}; MODES=${MODES/otlp/}
  else
    # the test receiver decodes every request and keeps only counts
    # (OTLP_RECEIVER_DISCARD); it prints "port <n>" once listening
    OTLP_RECEIVER_DISCARD=1 node "$RECV" > "$WORK/receiver.log" 2>&1 &
    RECV_PID=$!
    for i in $(seq 1 100); do grep -q '^port ' "$WORK/receiver.log" && break; sleep 0.05; done
    RPORT=$(awk '/^port /{print $2; exit}' "$WORK/receiver.log")
    [ -n "$RPORT" ] || { echo "the OTLP receiver did not start: $(cat "$WORK/receiver.log")" >&2; exit 1; }
    OTLP_RECEIVER_DISCARD=count node "$RECV" > "$WORK/receiver2.log" 2>&1 &
    RECV2_PID=$!
    for i in $(seq 1 100); do grep -q '^port ' "$WORK/receiver2.log" && break; sleep 0.05; done
    RPORT2=$(awk '/^port /{print $2; exit}' "$WORK/receiver2.log")
    [ -n "$RPORT2" ] || { echo "the counting OTLP receiver did not start: $(cat "$WORK/receiver2.log")" >&2; exit 1; }
  fi
fi

run_mode() { # MODE ROUND
  local mode=$1 env=(env JR_BENCH_TRACING=$1)
  [ "$mode" = base ] && env=(env JR_BENCH_TRACING=off JARARACA_LUA_DIR="$WORK/lua-base")
  # otlp: traces only (metrics and logs export off), to the receiver
  [ "$mode" = otlp ] && env+=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$RPORT" OTEL_METRICS_EXPORTER=none
    OTEL_LOGS_EXPORTER=none)
  [ "$mode" = otlpc ] && env=(env JR_BENCH_TRACING=otlp OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$RPORT2"
    OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none)
  "$A/http_custom.sh" "tracing-$mode" $PORT "${env[@]}" "$BIN" server "$APP" --host 127.0.0.1 --port $PORT \
    --log-level warn | sed "s/^/round=$2 /" | tee -a "$OUT"
}

uptime | sed 's/^/load before: /' | tee -a "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r" >&2
  for m in $MODES; do run_mode "$m" "$r"; done
done
uptime | sed 's/^/load after: /' | tee -a "$OUT"
# the receivers' own CPU (they share the two cores with the server and wrk)
cpu_s() { awk '{printf "%.1f", ($14 + $15) / 100}' "/proc/$1/stat"; }
if [ -n "$RECV_PID" ]; then
  echo "otlp receiver CPU: $(cpu_s "$RECV_PID") s; counting receiver CPU: $(cpu_s "$RECV2_PID") s" | tee -a "$OUT"
  curl -s "http://127.0.0.1:$RPORT/received?signal=traces" | sed 's/^/otlp receiver: /' | tee -a "$OUT"; echo
  curl -s "http://127.0.0.1:$RPORT2/received?signal=traces" | sed 's/^/counting receiver: /' | tee -a "$OUT"; echo
fi

python3 - "$OUT" <<'PY'
import re, sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m = re.search(r"RESULT http tracing-(\S+) rps=([\d.]+) .*server_cpu=(\d+)%.*other_cpu=(\d+)%", line)
    if m:
        mode, rps, cpu, other = m.groups()
        rps, cpu = float(rps), int(cpu)
        rows[mode].append((rps, cpu / 100 * 1e6 / rps if rps else float("nan"), int(other)))
med = {m: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for m, v in rows.items()}
print("\n| mode | req/s per round | median req/s | CPU µs/req per round | median CPU µs/req | other CPU % |")
print("|---|---|---|---|---|---|")
for m in ("base", "off", "drop", "otlp", "otlpc"):
    if m not in rows: continue
    v = rows[m]
    print(f"| {m} | {' / '.join(f'{r[0]:.0f}' for r in v)} | {med[m][0]:.0f} | "
          f"{' / '.join(f'{r[1]:.2f}' for r in v)} | {med[m][1]:.2f} | {' / '.join(str(r[2]) for r in v)} |")
def diff(a, b, target):
    if a in med and b in med:
        d = (med[a][0] / med[b][0] - 1) * 100
        c = (med[a][1] / med[b][1] - 1) * 100
        print(f"{a} vs {b}: req/s {d:+.1f} %, CPU per request {c:+.1f} % (target: >= -{target} % req/s)")
print()
diff("off", "base", 2)
diff("drop", "off", 15)
diff("otlp", "off", 15)
diff("otlpc", "off", 15)
PY
echo "raw results: $OUT" >&2
