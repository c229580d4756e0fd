#!/usr/bin/env bash
# dev.sh - the two commands of the quick start (and a few more).
#
#   ./dev.sh run [server options]   install what is missing, build, run examples/tasks (SQLite, tasks.db)
#   ./dev.sh test                   install what is missing, build, run every test
#   ./dev.sh deps | build | asan    the steps on their own
#
# Works on a fresh Debian 12 as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
ASAN_DIR=${ASAN_DIR:-build-asan}
JOBS=$(nproc 2>/dev/null || echo 2)

# Debian packages the build and the tests need (pkg-config names in CMakeLists.txt).
PACKAGES=(build-essential cmake pkg-config libluajit2-5.1-dev libuv1-dev node-llhttp
          libsqlite3-dev libhiredis-dev librabbitmq-dev libssl-dev lua-cjson lua-busted
          ca-certificates tzdata)
# (tzdata: named time zones of the scheduler's cron, /usr/share/zoneinfo)
# Only the tests need these: a headless browser for /docs, and a private
# Redis and RabbitMQ (spec/services/{redis,rabbitmq}.sh start them;
# redis-tools has redis-cli, amqp-tools amqp-publish and friends), and the
# commands specs run: socat (amqp_spec's proxies), sqlite3 (migrate_spec),
# curl (install_smoke.sh), prometheus (a private Prometheus scraping
# /metrics, spec/services/prometheus.sh; it brings promtool).
TEST_PACKAGES=(chromium redis-server redis-tools rabbitmq-server amqp-tools socat sqlite3 curl prometheus)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

deps() {
  local missing=() p
  local want=("${PACKAGES[@]}")
  [ "${1:-}" = test ] && want+=("${TEST_PACKAGES[@]}")
  # node: whatever provides it (Debian's nodejs + npm, or an image's own build)
  if [ "${1:-}" = test ] && ! command -v npm >/dev/null 2>&1; then want+=(nodejs npm); fi
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    if as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/jararaca-apt.log 2>&1; then
      return 0
    fi
    if grep -qi 'Unable to locate\|has no installation candidate\|404' /tmp/jararaca-apt.log; then
      as_root apt-get update -q >/dev/null 2>&1 || true
    elif grep -qi 'lock' /tmp/jararaca-apt.log; then
      sleep 5
    else
      cat /tmp/jararaca-apt.log >&2; return 1
    fi
  done
  cat /tmp/jararaca-apt.log >&2
  return 1
}

# Node packages of the test suite (spec/js/package.json, locked).
node_deps() {
  # npm writes node_modules/.package-lock.json last: an emptied or half-made
  # node_modules (an interrupted install) has none, and is installed again
  if [ ! -f spec/js/node_modules/.package-lock.json ] || [ spec/js/package-lock.json -nt spec/js/node_modules ]; then
    log "npm ci in spec/js"
    (cd spec/js && npm ci --no-audit --no-fund >/tmp/jararaca-npm.log 2>&1) || { cat /tmp/jararaca-npm.log >&2; return 1; }
    touch spec/js/node_modules
  fi
}

build() {
  log "building into $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" -j"$JOBS"
}

asan() {
  log "building the C unit tests with ASan + UBSan into $ASAN_DIR"
  cmake -S . -B "$ASAN_DIR" -DJR_C_TESTS_ONLY=ON -DJR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build "$ASAN_DIR" -j"$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$ASAN_DIR" --output-on-failure
}

cmd=${1:-help}
shift || true
case "$cmd" in
  deps) deps ;;
  build) deps; build ;;
  run)
    deps; build
    log "serving examples/tasks on http://127.0.0.1:${JARARACA_PORT:-8000} (database ${TASKS_DB:-tasks.db}; docs at /docs; Ctrl-C stops)"
    exec "$BUILD_DIR/jararaca" server examples/tasks/app.lua "$@"
    ;;
  test)
    deps test; node_deps; build
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    log "tests (C units, busted unit and integration specs)"
    rc=0
    ctest --test-dir "$BUILD_DIR" -V > "$BUILD_DIR/ctest.log" 2>&1 || rc=1
    # each suite's own total, then ctest's
    grep -E '^[0-9]+: .*([0-9]+ passed, [0-9]+ failed|[0-9]+ successes / )' "$BUILD_DIR/ctest.log" \
      | sed -E 's/\x1b\[[0-9;]*m//g' || true
    sed -n '/tests passed/,$p' "$BUILD_DIR/ctest.log"
    if [ $rc -ne 0 ]; then
      log "failures (full log: $BUILD_DIR/ctest.log)"
      ctest --test-dir "$BUILD_DIR" --rerun-failed --output-on-failure || true
    fi
    asan || rc=1
    if [ $rc -eq 0 ]; then log "all test suites passed"; else log "some tests FAILED"; fi
    exit $rc
    ;;
  asan) deps; asan ;;
  *)
    sed -n '2,9p' "$0"
    [ "$cmd" = help ] || exit 2
    ;;
esac
