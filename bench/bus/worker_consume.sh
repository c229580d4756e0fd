#!/bin/sh
# bench/bus/worker_consume.sh URL QUEUE COUNT PREFETCH: drain QUEUE (filled by
# someone else with COUNT messages) through `jararaca worker` and
# bench/bus/worker_app.lua (a trivial IncomingHandler: the decoded payload,
# then ack); prints `RESULT amqp jararaca-worker-consume msgs=N secs=S rate=R
# cpu_s=C cpu_us_per_msg=U` (the worker process's own CPU, see the app).
# The anchors' CUSTOM_CONSUME hook:
#   CUSTOM_CONSUME="$PWD/bench/bus/worker_consume.sh" ../shared/bench/anchors/run_amqp.sh
# QUEUE must be "<app>.<handler>" (the anchors' is anchors.bench): the
# worker consumes its handler's queue, so the app is named <app> and the
# handler <handler>. The app's exchanges and dead-letter queue are declared
# first (`jararaca declare`, with a handler named "setup" whose queue is
# declared instead of QUEUE: QUEUE exists already, without the arguments a
# handler's queue gets, and a redeclaration with other arguments is refused).
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${JARARACA_BIN:-$here/build/jararaca}
[ $# -eq 4 ] || { echo "usage: $0 URL QUEUE COUNT PREFETCH" >&2; exit 2; }
app=${2%.*}
handler=${2##*.}
[ "$app" != "$2" ] || { echo "$0: QUEUE must be <app>.<handler>, got $2" >&2; exit 2; }
export JARARACA_BUS_URL="$1" BENCH_APP="$app" BENCH_COUNT="$3"
BENCH_HANDLER=setup "$BIN" declare "$here/bench/bus/worker_app.lua" --log-level warn >/dev/null
BENCH_HANDLER=$handler exec "$BIN" worker "$here/bench/bus/worker_app.lua" --prefetch "$4" --log-level warn
