# bench/lib.sh - sourced by the bench/*/run.sh scripts: the binary, and a
# writable copy of ../shared/bench/anchors (the anchors' scripts write into
# their folder, which may be read-only) in $WORK/anchors.
#   source "$ROOT/bench/lib.sh"; bench_setup /tmp/jararaca-bench-x   -> $BIN, $WORK, $A
bench_setup() {
  BIN=${JARARACA_BIN:-$ROOT/build/jararaca}
  local src=${ANCHORS_DIR:-$ROOT/../shared/bench/anchors}
  WORK=${BENCH_WORK:-$1}
  [ -x "$BIN" ] || { echo "build first: ./dev.sh build (no $BIN)" >&2; exit 2; }
  [ -d "$src" ] || { echo "anchors not found at $src (set ANCHORS_DIR)" >&2; exit 2; }
  rm -rf "$WORK"; mkdir -p "$WORK"
  cp -r "$src" "$WORK/anchors"; chmod -R u+w "$WORK/anchors"
  A="$WORK/anchors"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}
