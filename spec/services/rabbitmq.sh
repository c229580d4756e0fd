#!/usr/bin/env bash
# spec/services/rabbitmq.sh - a private RabbitMQ node for the tests (no
# systemd here: the project starts and stops its own services).
#
#   rabbitmq.sh start DIR          a node on free ports of 127.0.0.1; waits until
#                                  `rabbitmqctl await_startup` succeeds; writes
#                                  DIR/rabbitmq.url (amqp://guest:guest@127.0.0.1:PORT) last
#   rabbitmq.sh stop DIR           rabbitmqctl stop, then by PID; also its private epmd
#   rabbitmq.sh restart DIR        stop the node (SIGTERM to its PID: a clean shutdown) and start it
#                                  again on the same ports, node name and data: durable
#                                  queues and persistent messages survive (mnesia is kept)
#   rabbitmq.sh ctl DIR ARGS...    rabbitmqctl ARGS against that node (e.g.
#                                  close_all_connections test, list_queues name messages)
#
# Everything the node owns is in DIR: home/ (HOME, with the Erlang cookie
# that the server and rabbitmqctl share), mnesia/, log/, rabbitmq.conf, the
# ports (rabbitmq.port, rabbitmq.dist_port, rabbitmq.epmd_port), rabbitmq.pid
# (the Erlang VM) and server.out. The node never meets another broker: its
# own node name, its own epmd (ERL_EPMD_PORT) and distribution port, all on
# 127.0.0.1. Every start is empty (mnesia is wiped); a restart is not. The
# guest user works: it is limited to loopback connections, which is all we
# make.
#
# Starting takes 6-10 s (the Erlang VM and the rabbit application boot):
# ctest starts one node per run (the services fixture), shared by the tests.
set -euo pipefail

die() { echo "rabbitmq.sh: $*" >&2; exit 1; }

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: rabbitmq.sh start|stop|restart|ctl DIR [rabbitmqctl args...]"
shift 2
RMQ_BIN=/usr/lib/rabbitmq/bin
[ -x "$RMQ_BIN/rabbitmq-server" ] || die "rabbitmq-server is not installed (Debian: apt-get install rabbitmq-server; ./dev.sh test does it)"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

. "$(dirname "$0")/common.sh"

# The environment of the node and of rabbitmqctl, from DIR's port files.
node_env() {
  local port dist epmd
  port=$(cat "$dir/rabbitmq.port") dist=$(cat "$dir/rabbitmq.dist_port") epmd=$(cat "$dir/rabbitmq.epmd_port")
  export HOME="$dir/home" \
    ERL_EPMD_PORT=$epmd ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_NODENAME="jrtest$port@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$dist \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/rabbitmq.pid" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

ctl() { ( node_env; timeout 60 "$RMQ_BIN/rabbitmqctl" -q "$@" ); }

# The epmd our node started: the one whose environment names our epmd port
# (never another node's epmd).
epmd_pid() {
  local port p
  port=$(cat "$dir/rabbitmq.epmd_port" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = epmd ] || continue
    tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qx "ERL_EPMD_PORT=$port" && { echo "${p#/proc/}"; return 0; }
  done
  return 0
}

stop_pid() { # pid what
  local i
  alive "$1" || return 0
  kill -TERM "$1" 2>/dev/null || true
  for i in $(seq 1 200); do alive "$1" || return 0; sleep 0.05; done
  kill -KILL "$1" 2>/dev/null || true
  for i in $(seq 1 40); do alive "$1" || return 0; sleep 0.05; done
  die "$2 (pid $1) does not stop"
}

# Stop the Erlang VM, leaving its epmd and files: with rabbitmqctl stop
# (how = ctl), or at once by PID (how = term: SIGTERM makes RabbitMQ shut
# down cleanly too, syncing its message store, without the seconds
# rabbitmqctl's own VM takes to boot); SIGKILL if it does not go.
stop_vm() {
  local pid= i
  [ -s "$dir/rabbitmq.vm_pid" ] && pid=$(cat "$dir/rabbitmq.vm_pid")
  if [ -n "$pid" ] && alive "$pid"; then
    if [ "${1:-ctl}" = ctl ]; then
      ctl stop >/dev/null 2>&1 || true
      for i in $(seq 1 200); do alive "$pid" || break; sleep 0.05; done
    else
      kill -TERM "$pid" 2>/dev/null || true
      for i in $(seq 1 600); do alive "$pid" || break; sleep 0.05; done
    fi
    stop_pid "$pid" "the rabbitmq node"
  fi
  rm -f "$dir/rabbitmq.vm_pid" "$dir/rabbitmq.pid"
}

stop() {
  [ -s "$dir/rabbitmq.port" ] || return 0
  local epmd
  epmd=$(epmd_pid)
  stop_vm
  [ -n "$epmd" ] && stop_pid "$epmd" "the node's epmd"
  rm -f "$dir/rabbitmq.url"
}

# Start the node from DIR's files: 0 when await_startup succeeded, 1 when
# the VM died (e.g. a port was taken meanwhile).
launch() {
  local port pid i
  port=$(cat "$dir/rabbitmq.port")
  # RUNNING_UNDER_SYSTEMD makes the Debian script exec the VM instead of
  # keeping a shell in front of it: $! is then the VM itself, which is what
  # stop must wait for. No NOTIFY_SOCKET is set, so nothing else changes.
  ( node_env; export RUNNING_UNDER_SYSTEMD=true
    exec "$RMQ_BIN/rabbitmq-server" </dev/null >"$dir/server.out" 2>&1 ) &
  pid=$!
  echo "$pid" >"$dir/rabbitmq.vm_pid"
  # await_startup fails at once while the node is not registered yet: wait
  # for the AMQP listener first (60 s: a cold machine under load)
  for i in $(seq 1 1200); do
    alive "$pid" || return 1
    listening "$port" && break
    sleep 0.05
  done
  listening "$port" || { stop; die "the node did not listen on $port within 60 s (log: $dir/server.out)"; }
  for i in $(seq 1 20); do
    ctl await_startup >/dev/null 2>&1 && return 0
    alive "$pid" || return 1
    sleep 0.5
  done
  stop
  die "rabbitmqctl await_startup did not succeed (log: $dir/server.out)"
}

case "$cmd" in
  start)
    stop
    rm -rf "$dir/home" "$dir/mnesia" "$dir/log"
    mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
    : >"$dir/rabbitmq-env.conf"
    echo '[].' >"$dir/enabled_plugins"
    printf 'log.console = false\nlog.file.level = warning\n' >"$dir/rabbitmq.conf"
    head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$dir/home/.erlang.cookie"
    chmod 400 "$dir/home/.erlang.cookie"
    for _ in 1 2 3; do
      free_port >"$dir/rabbitmq.port"; free_port >"$dir/rabbitmq.dist_port"; free_port >"$dir/rabbitmq.epmd_port"
      if launch; then
        echo "amqp://guest:guest@127.0.0.1:$(cat "$dir/rabbitmq.port")" >"$dir/rabbitmq.url"
        exit 0
      fi
      stop
    done
    die "rabbitmq-server did not start (log: $dir/server.out)"
    ;;
  stop) stop ;;
  restart)
    # same ports (the clients reconnect to the URL they have), same node
    # name (its mnesia directory is named after it), same cookie
    [ -s "$dir/rabbitmq.port" ] || die "no node in $dir: use start first"
    stop_vm term
    launch || die "the node did not start again on port $(cat "$dir/rabbitmq.port") (log: $dir/server.out)"
    ;;
  ctl)
    [ -s "$dir/rabbitmq.port" ] || die "no node in $dir: use start first"
    ctl "$@"
    ;;
  *) die "unknown command '$cmd' (start, stop, restart, ctl)" ;;
esac
