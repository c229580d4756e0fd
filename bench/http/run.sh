#!/usr/bin/env bash
# bench/http/run.sh [ROUNDS] - jararaca vs nginx + lua-nginx-module on GET /hello?name=x.
#
# Same run, interleaved rounds, identical wrk settings (the anchors' scripts:
# 2 s warm-up, then wrk -t2 -c64 -d10s --latency): nginx-lua w1, jararaca w1,
# nginx-lua w2, jararaca w2. Then idle RSS per worker and RSS growth per 1000
# idle keep-alive connections. Prints RESULT lines and a table with req/s,
# p50/p99, server CPU per request and the ratios to nginx-lua.
# Needs ../shared/bench/anchors (copied to a writable place) and wrk, nginx
# (installed by the anchors' scripts). Loopback only; bounded durations.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS=${1:-2}
APP=$ROOT/examples/hello/app.lua
PORT=18086

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_prepare /tmp/jararaca-bench
A="$WORK/anchors"
OUT="$WORK/results.txt"; : > "$OUT"

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r" >&2
  "$A/http_nginx.sh" lua 1 | sed "s/^/round=$r /" | tee -a "$OUT"
  "$A/http_custom.sh" jararaca-w1 $PORT "$BIN" server "$APP" --host 127.0.0.1 --port $PORT --log-level warn \
    | sed "s/^/round=$r /" | tee -a "$OUT"
  "$A/http_nginx.sh" lua 2 | sed "s/^/round=$r /" | tee -a "$OUT"
  "$A/http_custom.sh" jararaca-w2 $PORT "$BIN" server "$APP" --host 127.0.0.1 --port $PORT --log-level warn --workers 2 \
    | sed "s/^/round=$r /" | tee -a "$OUT"
done

# ---- memory: idle RSS per worker, and growth per 1000 idle keep-alive connections
"$BIN" server "$APP" --host 127.0.0.1 --port $PORT --log-level warn > "$WORK/mem.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null || true' EXIT
for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
curl -s "http://127.0.0.1:$PORT/hello?name=x" >/dev/null
rss() { awk '/VmRSS/{print $2}' /proc/"$1"/status; }
# the worker's memory: under the watchdog (the default) $SPID is its master
WPID=$(pgrep -P $SPID | head -n1 || true); WPID=${WPID:-$SPID}
IDLE=$(rss $WPID)
python3 - "$PORT" "$WPID" <<'PY' | tee -a "$OUT"
import socket, sys
port, pid = int(sys.argv[1]), sys.argv[2]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1])
before = rss()
conns = []
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /hello?name=x HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b'"}'):
        data += s.recv(4096)
    conns.append(s)
after = rss()
print(f"RESULT mem jararaca idle_rss_kb={before} rss_after_1000_idle_keepalive_kb={after} growth_per_1000_kb={after-before}")
for s in conns: s.close()
PY
kill $SPID; wait $SPID 2>/dev/null || true
trap - EXIT

# ---- summary table
python3 - "$OUT" <<'PY'
import re, sys, collections
rows = collections.defaultdict(list)
mem = None
for line in open(sys.argv[1]):
    if "RESULT mem" in line:
        mem = line.strip(); continue
    m = re.search(r"RESULT http (\S+) rps=([\d.]+) p50=(\S+) p99=(\S+) wrk_cpu=(\d+)% server_cpu=(\d+)%", line)
    if m:
        label, rps, p50, p99, wcpu, scpu = m.groups()
        rows[label].append((float(rps), p50, p99, int(scpu)))
def avg(label, i):
    v = [r[i] for r in rows[label]]
    return sum(v) / len(v) if v else float("nan")
print("\n| server | req/s (per round) | mean req/s | p50 / p99 (per round) | server CPU % | CPU µs/req | req/s vs nginx-lua | CPU/req vs nginx-lua |")
print("|---|---|---|---|---|---|---|---|")
for w in ("w1", "w2"):
    base = f"nginx-lua-{w}"
    for label in (base, f"jararaca-{w}"):
        if label not in rows: continue
        rps = avg(label, 0); cpu = avg(label, 3)
        us = cpu / 100 * 1e6 / rps
        brps = avg(base, 0); bus = avg(base, 3) / 100 * 1e6 / brps
        print(f"| {label} | {' / '.join(f'{r[0]:.0f}' for r in rows[label])} | {rps:.0f} | "
              f"{' ; '.join(r[1] + ' / ' + r[2] for r in rows[label])} | {cpu:.0f} | {us:.1f} | "
              f"{rps/brps:.2f} | {us/bus:.2f} |")
if mem: print("\n" + mem)
PY
echo "raw results: $OUT" >&2
