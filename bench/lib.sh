# shellcheck shell=bash
# bench/lib.sh: the start every benchmark against ../shared/bench/anchors
# shares. Source it from a bench/<name>/run.sh after setting ROOT, then call
#   bench_prepare DEFAULT_WORK_DIR
# It sets BIN (the jararaca binary; JARARACA_BIN overrides), SRC_ANCHORS
# (ANCHORS_DIR overrides) and WORK (BENCH_WORK overrides), exits 2 naming
# what is missing, copies the anchors to a writable $WORK/anchors and raises
# the descriptor limit to the hard one.
bench_prepare() {
  BIN=${JARARACA_BIN:-$ROOT/build/jararaca}
  SRC_ANCHORS=${ANCHORS_DIR:-$ROOT/../shared/bench/anchors}
  WORK=${BENCH_WORK:-$1}
  [ -x "$BIN" ] || { echo "build first: ./dev.sh build (no $BIN)" >&2; exit 2; }
  [ -d "$SRC_ANCHORS" ] || { echo "anchors not found at $SRC_ANCHORS (set ANCHORS_DIR)" >&2; exit 2; }
  rm -rf "$WORK"; mkdir -p "$WORK"
  cp -r "$SRC_ANCHORS" "$WORK/anchors"; chmod -R u+w "$WORK/anchors"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}
