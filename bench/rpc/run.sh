#!/usr/bin/env bash
# bench/rpc/run.sh [ROUNDS] [N] [CONCURRENCY] - the RPC client against a local
# nginx (`return 200 "ok"`, keep-alive, 1 worker), in the same run as Node's
# undici (defaults: 3 rounds, 100000 GETs, 50 at a time over 50 connections).
# Per round, each client runs once (alternating who goes first); each prints
# req/s and its own CPU per request (user + system of the client process over
# the timed part, after a warm-up). Medians at the end; raw lines in $WORK/rpc.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/bench/rpc"
ROUNDS=${1:-3}; N=${2:-100000}; CONC=${3:-50}
BIN=${JARARACA_BIN:-$ROOT/build/jararaca}
WORK=${BENCH_WORK:-/tmp/jararaca-bench-rpc}
NGINX=${NGINX:-/usr/sbin/nginx}
[ -x "$BIN" ] || { echo "build first: ./dev.sh build (no $BIN)" >&2; exit 2; }
[ -x "$NGINX" ] || { echo "nginx not found at $NGINX (Debian: apt-get install nginx)" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# undici, pinned by bench/rpc/package-lock.json
if [ ! -f "$HERE/node_modules/.package-lock.json" ] || [ "$HERE/package-lock.json" -nt "$HERE/node_modules" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund >"$WORK/npm.log" 2>&1) || { cat "$WORK/npm.log" >&2; exit 1; }
  touch "$HERE/node_modules"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s|@PREFIX@|$WORK|g" -e "s|@PORT@|$PORT|g" "$HERE/nginx.conf.in" > "$WORK/nginx.conf"
"$NGINX" -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" &
NGINX_PID=$!
trap 'kill "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null || true' EXIT
URL="http://127.0.0.1:$PORT/"
for _ in $(seq 1 100); do
  curl -sf "$URL" >/dev/null 2>&1 && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/error.log" >&2; exit 1; }
  sleep 0.05 # polling for the listener of another process (no event to await)
done
curl -sf "$URL" | grep -qx ok || { echo "nginx does not answer on $URL" >&2; exit 1; }

OUT="$WORK/rpc.txt"; : > "$OUT"
echo "jararaca: $("$BIN" version | head -1); node $(node --version); nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'); $(uptime)" | tee -a "$OUT" >&2
ours() { RPC_URL="$URL" RPC_N="$N" RPC_CONC="$CONC" "$BIN" test "$HERE/client.lua" 2>&1 | grep '^RESULT' || { echo "our client failed" >&2; exit 1; }; }
node_() { node "$HERE/undici.mjs" "$URL" "$N" "$CONC" | grep '^RESULT'; }
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then a=ours; b=node_; else a=node_; b=ours; fi
  $a | sed "s/^/round=$r /" | tee -a "$OUT"
  $b | sed "s/^/round=$r /" | tee -a "$OUT"
done
echo "$(uptime)" | tee -a "$OUT" >&2
echo "raw lines: $OUT" >&2
# medians per client
awk '
  /RESULT/ {
    c = ""; for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    c = v["client"]; n[c]++; rps[c, n[c]] = v["rps"]; cpu[c, n[c]] = v["cpu_us_per_req"]
  }
  function median(arr, c, k,   a, i, j, t) {
    for (i = 1; i <= k; i++) a[i] = arr[c, i] + 0
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    printf "%-14s %10s %16s\n", "client", "req/s", "cpu us/req"
    for (c in n) { mr[c] = median(rps, c, n[c]); mc[c] = median(cpu, c, n[c]); printf "%-14s %10.0f %16.2f\n", c, mr[c], mc[c] }
    if (("jararaca" in n) && ("node-undici" in n))
      printf "jararaca / undici: %.2fx req/s, %.2fx cpu per request\n", mr["jararaca"] / mr["node-undici"], mc["jararaca"] / mc["node-undici"]
  }' "$OUT"
