#!/usr/bin/env bash
# install_smoke.sh BUILD_DIR - `cmake --install` into a temporary prefix, then
# check that the installed binary finds its Lua framework (not the source
# tree's) and serves the hello example.
set -euo pipefail
BUILD=$1
SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=$(mktemp -d)
trap 'rm -rf "$PREFIX"; [ -n "${PID:-}" ] && kill $PID 2>/dev/null || true' EXIT
cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null
test -f "$PREFIX/share/jararaca/lua/jararaca/init.lua"
out=$("$PREFIX/bin/jararaca" version)
case "$out" in "jararaca "*) ;; *) echo "unexpected version output: $out"; exit 1;; esac
# the installed Lua files are the ones used, not the source tree's
echo "$out" | grep -q "lua files: $PREFIX/bin/../share/jararaca/lua" || { echo "wrong lua dir: $out"; exit 1; }
cp "$SRC/examples/hello/app.lua" "$PREFIX/app.lua"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cd "$PREFIX"
"$PREFIX/bin/jararaca" server app.lua --host 127.0.0.1 --port "$PORT" > "$PREFIX/log" 2>&1 &
PID=$!
for i in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
  kill -0 $PID 2>/dev/null || { cat "$PREFIX/log"; exit 1; }
  sleep 0.05
done
body=$(curl -s "http://127.0.0.1:$PORT/hello?name=installed")
[ "$body" = '{"message":"Hello installed"}' ] || { echo "bad body: $body"; cat "$PREFIX/log"; exit 1; }
kill -TERM $PID; wait $PID; PID=
echo "1 passed, 0 failed"
