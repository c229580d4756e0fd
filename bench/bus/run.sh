#!/usr/bin/env bash
# bench/bus/run.sh [ROUNDS] [COUNT] - the message bus on RabbitMQ, jararaca
# against the anchors' clients in the same run (defaults: 3 rounds, 100000).
#   1. consume: ../shared/bench/anchors/run_amqp.sh with `jararaca worker`
#      (bench/bus/worker_consume.sh) as its CUSTOM_CONSUME: the C librabbitmq
#      consumer, aio-pika (asyncio and uvloop), Node amqplib and jararaca
#      drain the same pre-loaded queue in each round; the anchors' publish
#      rows come with it. (Its private node: 127.0.0.1:5682.)
#   2. on a node of the same script, per round: the C consumer and the
#      worker again, each client's CPU measured exactly (/usr/bin/time for
#      C, /proc for the worker; part 1 only has the C client's % of a core);
#      then publishing with confirms: the anchors' C publisher (window 1000)
#      and bench/bus/amqp_publish.lua (jararaca.bus.amqp's broker:publish:
#      batches of 200 and 1000, one message per call from 1000 tasks).
# BUS_SKIP_ANCHORS=1 skips part 1; ANCHORS_DIR: where the anchors are (from a
# worktree: ANCHORS_DIR=/path/to/shared/bench/anchors); ANCHORS_NODE_MODULES:
# an earlier copy's node_modules to use instead of npm install. The raw RESULT lines end in $WORK/bus.txt;
# the medians per client are printed at the end (bench/bus/summary.awk).
# The embedded broker has its own: build/jararaca test bench/bus/embedded_worker.lua
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS=${1:-3}; COUNT=${2:-100000}
source "$ROOT/bench/lib.sh"
bench_setup /tmp/jararaca-bench-bus
# (a node_modules of an earlier anchors copy spares run_amqp.sh its npm install)
if [ -n "${ANCHORS_NODE_MODULES:-}" ]; then cp -r "$ANCHORS_NODE_MODULES" "$A/node_modules"; fi
OUT="$WORK/bus.txt"; : > "$OUT"
echo "jararaca: $("$BIN" version | head -1); $(uptime)" | tee -a "$OUT" >&2
if [ -z "${BUS_SKIP_ANCHORS:-}" ]; then
  CUSTOM_CONSUME="$ROOT/bench/bus/worker_consume.sh" "$A/run_amqp.sh" "$ROUNDS" "$COUNT" 2>&1 | tee -a "$OUT"
fi
# part 2, on a node of our own (run_amqp.sh stopped its node)
(
  source "$A/common.sh"
  source "$A/rabbit.sh"
  C="$A/c/amqp_bench"
  [ -x "$C" ] || cc -O2 -Wall -o "$C" "$C.c" -lrabbitmq
  rabbit_start
  trap rabbit_stop EXIT
  Q=anchors.bench
  preload() {
    rabbitctl delete_queue "$Q" >/dev/null 2>&1 || true
    "$C" publish 127.0.0.1 "$AMQP_PORT" "$Q" "$COUNT" 1 >/dev/null
  }
  for r in $(seq 1 "$ROUNDS"); do
    log "round $r: consume, the client's CPU by /usr/bin/time (C) and /proc (jararaca)"
    preload
    line=$(/usr/bin/time -f '%U %S' -o "$WORK/c.time" "$C" consume 127.0.0.1 "$AMQP_PORT" "$Q" "$COUNT" 200)
    echo "round=$r ${line/c-consume/c-consume[exact-cpu]} cpu_s=$(awk '{printf "%.2f", $1 + $2}' "$WORK/c.time")" \
      | tee -a "$OUT"
    preload
    line=$("$ROOT/bench/bus/worker_consume.sh" "$AMQP_URL" "$Q" "$COUNT" 200)
    echo "round=$r ${line/jararaca-worker-consume/jararaca-worker-consume[exact-cpu]}" | tee -a "$OUT"
    log "round $r: publish with confirms"
    rabbitctl delete_queue "$Q" >/dev/null 2>&1 || true
    line=$(/usr/bin/time -f '%U %S' -o "$WORK/c.time" "$C" publish 127.0.0.1 "$AMQP_PORT" "$Q" "$COUNT" 1 1000)
    echo "round=$r $line cpu_s=$(awk '{printf "%.2f", $1 + $2}' "$WORK/c.time")" | tee -a "$OUT"
    rabbitctl delete_queue "$Q" >/dev/null 2>&1 || true
    AMQP_URL="$AMQP_URL" AMQP_COUNT="$COUNT" "$BIN" test "$ROOT/bench/bus/amqp_publish.lua" 2>&1 \
      | grep '^RESULT' | sed "s/^/round=$r /" | tee -a "$OUT"
  done
  echo "$(uptime)" | tee -a "$OUT"
)
echo "raw lines: $OUT" >&2
awk -f "$ROOT/bench/bus/summary.awk" "$OUT"
