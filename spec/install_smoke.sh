#!/usr/bin/env bash
# install_smoke.sh BUILD_DIR - `cmake --install` into a temporary prefix, then
# check that the installed binary finds its Lua framework (not the source
# tree's) and the /docs page's files beside it, answers --help, and serves
# the hello example.
set -euo pipefail
BUILD=$1
SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=$(mktemp -d)
trap 'rm -rf "$PREFIX"; [ -n "${PID:-}" ] && kill $PID 2>/dev/null || true' EXIT
cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null
test -f "$PREFIX/share/jararaca/lua/jararaca/init.lua"
for f in docs_page.html docs_page.css docs_page.js; do
  test -f "$PREFIX/share/jararaca/lua/jararaca/assets/$f" || { echo "not installed: assets/$f"; exit 1; }
done
checks=1
help=$("$PREFIX/bin/jararaca" --help)
echo "$help" | grep -q "^  jararaca server APP.lua" || { echo "jararaca --help lists no server command: $help"; exit 1; }
help=$("$PREFIX/bin/jararaca" server --help)
echo "$help" | grep -q "^  --port N" || { echo "jararaca server --help shows no --port: $help"; exit 1; }
checks=$((checks + 1))
out=$("$PREFIX/bin/jararaca" version)
case "$out" in "jararaca "*) ;; *) echo "unexpected version output: $out"; exit 1;; esac
# the installed Lua files are the ones used, not the source tree's
echo "$out" | grep -q "lua files: $PREFIX/bin/../share/jararaca/lua" || { echo "wrong lua dir: $out"; exit 1; }
checks=$((checks + 1))
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
checks=$((checks + 1))
# /docs: the page with its style and script inlined from the installed assets
docs=$(curl -s "http://127.0.0.1:$PORT/docs")
for want in '<body data-spec-url="/openapi.json">' '--mono: ui-monospace' 'getElementById("docs-config")'; do
  case "$docs" in *"$want"*) ;; *) echo "/docs lacks $want"; cat "$PREFIX/log"; exit 1;; esac
done
checks=$((checks + 1))
kill -TERM $PID; wait $PID; PID=
echo "$checks passed, 0 failed"
