# bench/tracing/base_lua.sh - sourced by run.sh and instructions.sh:
#   make_base_lua ROOT DIR -> DIR/lua-base: lua/ with the hot path's tracing
# hook (http/dispatch.lua's `if tracing_state.on then ... end`, all the
# tracing code a request runs when tracing is off) cut out: the `base` mode.
# Fails loudly when the block is not found, rather than measuring the same
# code twice.
make_base_lua() {
  cp -r "$1/lua" "$2/lua-base"
  python3 - "$2/lua-base/jararaca/http/dispatch.lua" <<'PY'
import re, sys
p = sys.argv[1]
src = open(p).read()
new, n = re.subn(r"\n( *)if tracing_state\.on then\n.*?\n\1end\n", "\n", src, count=1, flags=re.S)
if n != 1 or "bind(ctx) -- the trampoline" not in new:
    sys.exit("bench/tracing: the request hook of http/dispatch.lua was not found; update base_lua.sh")
open(p, "w").write(new)
PY
}
