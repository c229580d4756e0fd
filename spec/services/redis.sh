#!/usr/bin/env bash
# spec/services/redis.sh - a private redis-server for the tests (no systemd
# here: the project starts and stops its own services).
#
#   redis.sh start DIR [redis-server options...]   daemon on a free port of 127.0.0.1;
#                                                  waits until it answers; writes DIR/redis.url
#   redis.sh restart DIR                           stop, then start again on the same port
#                                                  with the same options (outage tests)
#   redis.sh stop DIR                              stop it by its PID and wait for the exit
#   redis.sh run DIR [redis-server options...]     the same server in the foreground (exec):
#                                                  for a parent that owns the child and stops
#                                                  it (spec/support/redis.lua)
#
# DIR holds redis.conf, redis.args (the extra options, one per line),
# redis.port, redis.url, redis.pid and redis.log. No persistence (save "",
# appendonly no): every start is empty. Options are redis-server's, e.g.
# `--requirepass secret`.
set -euo pipefail

die() { echo "redis.sh: $*" >&2; exit 1; }

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: redis.sh start|restart|stop|run DIR [redis-server options...]"
shift 2
command -v redis-server >/dev/null || die "redis-server is not installed (Debian: apt-get install redis-server; ./dev.sh test does it)"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

. "$(dirname "$0")/common.sh"

# It answers: +PONG, or -NOAUTH when it has a password.
answers() {
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 line <&3 || line=
  exec 3<&- 3>&-
  case "$line" in +PONG* | -NOAUTH*) return 0 ;; *) return 1 ;; esac
}

write_conf() { # port daemonize
  cat >"$dir/redis.conf" <<CONF
bind 127.0.0.1
port $1
daemonize $2
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
save ""
appendonly no
CONF
  echo "$1" >"$dir/redis.port"
  echo "redis://127.0.0.1:$1" >"$dir/redis.url"
}

read_args() { args=(); [ -f "$dir/redis.args" ] && mapfile -t args <"$dir/redis.args"; return 0; }

# Start the daemon from DIR's files; 0 when it answers, 1 when it died
# (e.g. the port was taken meanwhile).
launch() {
  local port i pid=
  port=$(cat "$dir/redis.port")
  rm -f "$dir/redis.pid"
  read_args
  redis-server "$dir/redis.conf" "${args[@]}" >>"$dir/redis.log" 2>&1 || return 1
  for i in $(seq 1 200); do
    [ -z "$pid" ] && [ -s "$dir/redis.pid" ] && pid=$(cat "$dir/redis.pid")
    if [ -n "$pid" ]; then
      alive "$pid" || return 1
      answers "$port" && return 0
    fi
    sleep 0.05
  done
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  die "redis-server on port $port did not answer within 10 s (log: $dir/redis.log)"
}

stop() {
  [ -s "$dir/redis.pid" ] || return 0
  local pid i
  pid=$(cat "$dir/redis.pid")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.1; fi
    alive "$pid" && die "redis-server (pid $pid) does not stop"
  fi
  rm -f "$dir/redis.pid"
}

case "$cmd" in
  start)
    stop
    printf '%s\n' "$@" >"$dir/redis.args"
    [ $# -eq 0 ] && : >"$dir/redis.args"
    for _ in 1 2 3 4 5; do
      write_conf "$(free_port)" yes
      launch && exit 0
    done
    die "redis-server did not start (log: $dir/redis.log)"
    ;;
  restart)
    [ -f "$dir/redis.conf" ] || die "no redis.conf in $dir: use start first"
    stop
    launch || die "redis-server did not start again on port $(cat "$dir/redis.port") (log: $dir/redis.log)"
    ;;
  stop) stop ;;
  run)
    printf '%s\n' "$@" >"$dir/redis.args"
    [ $# -eq 0 ] && : >"$dir/redis.args"
    write_conf "${JR_REDIS_PORT:-$(free_port)}" no
    exec redis-server "$dir/redis.conf" "$@"
    ;;
  *) die "unknown command '$cmd' (start, restart, stop, run)" ;;
esac
