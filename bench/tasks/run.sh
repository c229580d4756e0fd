#!/usr/bin/env bash
# bench/tasks/run.sh [ROUNDS] [WORKERS] - the tasks app on SQLite against the
# original's stack (FastAPI + SQLAlchemy async + aiosqlite) in the same run:
# ../shared/bench/anchors/run_tasks.sh with jararaca as its CUSTOM server.
# GET /tasks/{id} (one indexed read in a transaction) and POST /tasks (one
# insert + commit, then the staged publish of its "task" message: a second
# write, to the broker's file; no worker runs, the messages stay queued;
# serve.sh gives each run a fresh broker file), seeded with 1000 tasks,
# wrk -t2 -c64 -d10s.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS=${1:-2}
WORKERS=${2:-1}
source "$ROOT/bench/lib.sh"
bench_setup /tmp/jararaca-bench-tasks
echo "jararaca settings: $("$BIN" version | head -1); journal_mode=WAL synchronous=NORMAL busy_timeout=5s pool_size=${TASKS_POOL_SIZE:-4} workers=$WORKERS" >&2
CUSTOM_LABEL=jararaca-w$WORKERS CUSTOM_PORT=18088 \
  CUSTOM_CMD="$ROOT/bench/tasks/serve.sh $BIN server $ROOT/examples/tasks/app.lua --host 127.0.0.1 --port 18088 --log-level warn --workers $WORKERS" \
  "$WORK/anchors/run_tasks.sh" "$ROUNDS"
