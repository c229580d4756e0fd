#!/usr/bin/env bash
# spec/services/prometheus.sh - a private Prometheus for the tests (no
# systemd here: the project starts and stops its own services). It scrapes
# one target, a jararaca server the test started, every second.
#
#   prometheus.sh start DIR HOST:PORT [PATH]   daemon on a free port of 127.0.0.1, scraping
#                                              http://HOST:PORT/PATH (default /metrics); waits
#                                              until /-/ready answers; writes DIR/prometheus.url
#   prometheus.sh stop DIR                     stop it by its PID and wait for the exit
#   prometheus.sh run DIR HOST:PORT [PATH]     the same server in the foreground (exec): for a
#                                              parent that owns the child and stops it
#                                              (spec/support/prometheus.lua)
#
# DIR holds prometheus.yml (the generated config), data/ (its TSDB, empty
# at every start), prometheus.port, prometheus.url, prometheus.pid and
# prometheus.log. JR_PROMETHEUS_PORT chooses the port of `run`.
set -euo pipefail

die() { echo "prometheus.sh: $*" >&2; exit 1; }

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: prometheus.sh start|stop|run DIR [HOST:PORT [PATH]]"
shift 2
command -v prometheus >/dev/null || die "prometheus is not installed (Debian: apt-get install prometheus; ./dev.sh test does it)"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

. "$(dirname "$0")/common.sh"

# It answers GET /-/ready with 200.
ready() {
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 2 line <&3 || line=
  exec 3<&- 3>&-
  case "$line" in "HTTP/1."?" 200"*) return 0 ;; *) return 1 ;; esac
}

write_conf() { # port target path
  [ -n "$2" ] || die "the target HOST:PORT is missing"
  cat >"$dir/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: jararaca
    metrics_path: ${3:-/metrics}
    static_configs:
      - targets: ["$2"]
CONF
  rm -rf "$dir/data"
  echo "$1" >"$dir/prometheus.port"
  echo "http://127.0.0.1:$1" >"$dir/prometheus.url"
}

args() { # port: sets argv
  argv=(prometheus "--config.file=$dir/prometheus.yml" "--storage.tsdb.path=$dir/data"
        "--web.listen-address=127.0.0.1:$1" "--log.level=warn")
}

stop() {
  [ -s "$dir/prometheus.pid" ] || return 0
  local pid
  pid=$(cat "$dir/prometheus.pid")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.1; fi
    alive "$pid" && die "prometheus (pid $pid) does not stop"
  fi
  rm -f "$dir/prometheus.pid"
}

case "$cmd" in
  start)
    stop
    for _ in 1 2 3 4 5; do
      port=$(free_port)
      write_conf "$port" "${1:-}" "${2:-}"
      args "$port"
      setsid "${argv[@]}" >>"$dir/prometheus.log" 2>&1 </dev/null &
      pid=$!
      echo "$pid" >"$dir/prometheus.pid"
      for _ in $(seq 1 400); do
        alive "$pid" || break
        ready "$port" && exit 0
        sleep 0.05
      done
      alive "$pid" && { stop; die "prometheus on port $port was not ready within 20 s (log: $dir/prometheus.log)"; }
      rm -f "$dir/prometheus.pid" # it died (the port was taken meanwhile?): another port
    done
    die "prometheus did not start (log: $dir/prometheus.log)"
    ;;
  stop) stop ;;
  run)
    port=${JR_PROMETHEUS_PORT:-$(free_port)}
    write_conf "$port" "${1:-}" "${2:-}"
    args "$port"
    exec "${argv[@]}"
    ;;
  *) die "unknown command '$cmd' (start, stop, run)" ;;
esac
