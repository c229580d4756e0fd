#!/usr/bin/env bash
# bench/ws/run.sh [ROUNDS] [CLIENTS] - WebSocket fan-out: 2000 clients (or
# CLIENTS) in one room, 50 broadcasts of 64 bytes, jararaca (bench/ws/app.lua)
# in the same run as Node `ws`, python3-websockets and FastAPI:
# ../shared/bench/anchors/run_ws.sh with jararaca as its CUSTOM server.
# Reports per server: time until every client has a broadcast (p50/p99),
# server CPU per broadcast, RSS per connection.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS=${1:-2}
export CLIENTS=${2:-2000}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_prepare /tmp/jararaca-bench-ws
echo "jararaca: $("$BIN" version | head -1), workers=1, clients=$CLIENTS" >&2
CUSTOM_LABEL=jararaca CUSTOM_PORT=18193 CUSTOM_PATH=/ws \
  CUSTOM_CMD="$BIN server $ROOT/bench/ws/app.lua --host 127.0.0.1 --port 18193 --log-level warn --workers 1 --worker-timeout 0" \
  "$WORK/anchors/run_ws.sh" "$ROUNDS"
