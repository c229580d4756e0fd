# spec/services/common.sh - sourced by the service scripts (redis.sh,
# rabbitmq.sh): process and port checks through /proc. The sourcing script
# defines die().

# Alive and not a zombie: PID 1 here does not reap orphans, so a daemon
# that died stays a zombie and kill -0 would still succeed.
alive() {
  local st
  st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Something listens on the port (IPv4 or IPv6).
listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A port nobody listens on, from a range away from the ephemeral ports the
# kernel hands out to clients, and not one this script already chose (call
# it in the script's own shell, not in $(...), for that to hold).
taken=" "
free_port() {
  local p i
  for i in $(seq 1 50); do
    p=$((20000 + RANDOM % 12000))
    case "$taken" in *" $p "*) continue ;; esac
    listening "$p" || { taken="$taken$p "; echo "$p"; return 0; }
  done
  die "no free port found"
}
