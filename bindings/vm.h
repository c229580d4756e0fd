/* vm.h - the process-wide LuaJIT state and the registry of C modules.
 *
 * One jr_vm per process: a libuv loop and one lua_State. C modules register
 * themselves into package.loaded under "jararaca.core.<name>" (the Lua
 * framework in lua/jararaca/ wraps them); nothing is put in _G. */
#ifndef JR_VM_H
#define JR_VM_H

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

typedef struct jr_vm {
    lua_State *L;
    uv_loop_t *loop;
    int exit_code;
    int exit_requested;
} jr_vm;

extern jr_vm *jr_vm_global;

/* Per-module openers (each returns 1 with its module table on the stack). */
int jr_open_sched(lua_State *L);
int jr_open_http(lua_State *L);
int jr_open_router(lua_State *L);
int jr_open_sys(lua_State *L);
int jr_open_process(lua_State *L);
int jr_open_json(lua_State *L);
int jr_open_db(lua_State *L);
int jr_open_ws(lua_State *L);
int jr_open_amqp(lua_State *L);
int jr_open_cron(lua_State *L);
int jr_open_redis(lua_State *L);
int jr_open_otlp_encode(lua_State *L);
int jr_open_otlp(lua_State *L);

/* Expected failures (docs/errors.md): push nil, message, code and return
 * 3, for `return jr_push_fail(L, ...)`. code is a stable lowercase word
 * ("invalid", "timeout", "closed", ...).
 * jr_push_uv_fail: for a libuv error (negative): the message is "<what>:
 * <uv_strerror>", the code libuv's error name in lower case ("eaddrinuse",
 * "enoent"); jr_push_errno_fail: the same for an errno value.
 * jr_push_uv_code pushes that code alone (for a message made elsewhere). */
int jr_push_fail(lua_State *L, const char *msg, const char *code);
int jr_push_uv_fail(lua_State *L, int uverr, const char *fmt, ...);
int jr_push_errno_fail(lua_State *L, int err, const char *fmt, ...);
void jr_push_uv_code(lua_State *L, int uverr);

/* Traceback handler usable with lua_pcall. */
int jr_traceback(lua_State *L);

/* Metatables are keyed by the address of a static (never by a string).
 * jr_newmetatable registers one with methods as __index and gc as __gc;
 * jr_checkudata raises "bad argument #idx (NAME expected)" on mismatch. */
void jr_newmetatable(lua_State *L, void *key, const char *name, const luaL_Reg *methods,
                     lua_CFunction gc);
void *jr_checkudata(lua_State *L, int idx, void *key, const char *name);

/* A userdata core holds a pointer to (a client with calls parked on it)
 * must not be collected meanwhile: each pending use holds it, and the first
 * hold puts it in the registry, the last release takes it out. ref is the
 * registry reference while held (LUA_NOREF otherwise): push the object with
 * lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref). Zero-fill, then jr_anchor_init. */
typedef struct {
    int holds;
    int ref;
} jr_anchor;
void jr_anchor_init(jr_anchor *a);
/* The object at idx (whose anchor a is) is held once more. */
void jr_anchor_hold(lua_State *L, jr_anchor *a, int idx);
void jr_anchor_release(jr_anchor *a);

/* Option tables of the C modules: raise "WHAT: unknown option NAME" for a
 * key of the table at idx not in known (NULL-terminated); nothing for a
 * nil or absent argument (a table is required otherwise). */
void jr_check_options(lua_State *L, int idx, const char *what, const char *const *known);
/* Field name of the table at idx: a whole number in 0..max, or def when
 * absent; raises "WHAT: option NAME must be a whole number in 0..MAX". */
unsigned jr_opt_uint(lua_State *L, int idx, const char *what, const char *name, double max, unsigned def);

/* Create the state in vm (sets jr_vm_global), open libraries and register
 * the C modules. Returns NULL when out of memory. */
lua_State *jr_vm_open(jr_vm *vm);

#endif
