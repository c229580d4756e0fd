#!/usr/bin/env bash
# bench/tasks/serve.sh CMD [ARGS...] - run the tasks app's server for bench/tasks/run.sh
# with a fresh message broker file, "<TASKS_DB without .db>.bus.db".
# Why: POST /tasks publishes a "task" message per task (examples/tasks/app.lua),
# and no worker consumes them during a benchmark. The anchor script removes
# TASKS_DB before each run but not the broker's file (by default tasks.bus.db
# next to it, shared by every run), so each run would start with the messages
# of the runs before it.
set -euo pipefail
: "${TASKS_DB:?TASKS_DB must be set (the anchor script sets it)}"
bus="${TASKS_DB%.db}.bus.db"
case "$bus" in /*) ;; *) bus="$PWD/$bus" ;; esac
rm -f "$bus" "$bus-wal" "$bus-shm"
export JARARACA_BUS_URL="sqlite:///$bus"
exec "$@"
