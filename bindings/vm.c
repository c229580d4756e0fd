/* vm.c - the process's LuaJIT state: libraries, module registry, the Lua
 * search path, and helpers shared by the binding files. */
#include "vm.h"

#include "log.h"

#include <ctype.h>
#include <limits.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

jr_vm *jr_vm_global;

void jr_newmetatable(lua_State *L, void *key, const char *name, const luaL_Reg *methods,
                     lua_CFunction gc)
{
    lua_pushlightuserdata(L, key);
    lua_createtable(L, 0, 4);
    lua_createtable(L, 0, 16);
    /* Each method gets the metatable as upvalue 1, so jr_checkudata can
     * check its argument without a registry lookup (hot path). */
    for (const luaL_Reg *m = methods; m->name; m++) {
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, m->func, 1);
        lua_setfield(L, -2, m->name);
    }
    lua_setfield(L, -2, "__index");
    if (gc) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_rawset(L, LUA_REGISTRYINDEX);
}

void *jr_checkudata(lua_State *L, int idx, void *key, const char *name)
{
    void *p = lua_touserdata(L, idx);
    if (p && lua_getmetatable(L, idx)) {
        if (lua_rawequal(L, -1, lua_upvalueindex(1))) { /* a method of this type */
            lua_pop(L, 1);
            return p;
        }
        lua_pushlightuserdata(L, key);
        lua_rawget(L, LUA_REGISTRYINDEX);
        int same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (same) return p;
    }
    luaL_typerror(L, idx, name);
    return NULL;
}

void jr_anchor_init(jr_anchor *a)
{
    a->holds = 0;
    a->ref = LUA_NOREF;
}

void jr_anchor_hold(lua_State *L, jr_anchor *a, int idx)
{
    if (a->holds++ == 0) {
        lua_pushvalue(L, idx);
        a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

void jr_anchor_release(jr_anchor *a)
{
    if (--a->holds == 0) {
        luaL_unref(jr_vm_global->L, LUA_REGISTRYINDEX, a->ref);
        a->ref = LUA_NOREF;
    }
}

void jr_check_options(lua_State *L, int idx, const char *what, const char *const *known)
{
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
        int ok = 0;
        for (int i = 0; known[i] && lua_type(L, -2) == LUA_TSTRING; i++) ok |= strcmp(lua_tostring(L, -2), known[i]) == 0;
        if (!ok)
            luaL_error(L, "%s: unknown option %s", what,
                       lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "(not a string)");
    }
}

unsigned jr_opt_uint(lua_State *L, int idx, const char *what, const char *name, double max, unsigned def)
{
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    double v = lua_tonumber(L, -1);
    if (!lua_isnumber(L, -1) || !(v >= 0 && v <= max) || v != (double)(unsigned long long)v)
        luaL_error(L, "%s: option %s must be a whole number in 0..%.0f", what, name, max);
    lua_pop(L, 1);
    return (unsigned)v;
}

int jr_push_fail(lua_State *L, const char *msg, const char *code)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, code);
    return 3;
}

/* libuv's name of the error, lower-cased: one spelling for every OS error
 * whichever call reported it. An error libuv has no name for is "error"
 * (its name would be "Unknown system error N", not a stable word). */
void jr_push_uv_code(lua_State *L, int uverr)
{
    char name[64];
    uv_err_name_r(uverr, name, sizeof name);
    size_t n = strlen(name);
    int word = n > 1 && name[0] == 'E';
    for (size_t i = 0; word && i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!isupper(ch) && !isdigit(ch) && ch != '_') word = 0;
        name[i] = (char)tolower((unsigned char)name[i]);
    }
    if (word) lua_pushlstring(L, name, n);
    else lua_pushliteral(L, "error");
}

static int push_os_fail(lua_State *L, int uverr, const char *fmt, va_list ap)
{
    lua_pushnil(L);
    lua_pushvfstring(L, fmt, ap);
    lua_pushfstring(L, ": %s", uv_strerror(uverr));
    lua_concat(L, 2);
    jr_push_uv_code(L, uverr);
    return 3;
}

int jr_push_uv_fail(lua_State *L, int uverr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = push_os_fail(L, uverr, fmt, ap);
    va_end(ap);
    return n;
}

int jr_push_errno_fail(lua_State *L, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = push_os_fail(L, uv_translate_sys_error(err), fmt, ap);
    va_end(ap);
    return n;
}

int jr_traceback(lua_State *L)
{
    if (!lua_isstring(L, 1)) return 1; /* keep error objects as they are */
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

/* The framework's Lua files: $JARARACA_LUA_DIR, else <prefix>/share/jararaca/lua
 * next to an installed binary, else the source tree the binary was built from. */
static void find_lua_dir(char *out, size_t cap)
{
    const char *env = getenv("JARARACA_LUA_DIR");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    char exe[PATH_MAX];
    size_t sz = sizeof exe;
    if (uv_exepath(exe, &sz) == 0) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            char cand[PATH_MAX + 64];
            int n = snprintf(cand, sizeof cand, "%s/../%s/jararaca/init.lua", exe, JR_INSTALL_LUA_SUBDIR);
            if (n > 0 && (size_t)n < sizeof cand && file_exists(cand)) {
                n = snprintf(out, cap, "%s/../%s", exe, JR_INSTALL_LUA_SUBDIR);
                if (n > 0 && (size_t)n < cap) return;
            }
        }
    }
    snprintf(out, cap, "%s", JR_SOURCE_LUA_DIR);
}

static void preload(lua_State *L, const char *name, lua_CFunction open)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    open(L);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

/* An error outside any protected call (a bug in our C, or out of memory in
 * the VM) cannot be recovered: say so and exit non-zero. Under --workers the
 * master restarts the worker. */
static int on_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    jr_logf(JR_LOG_ERROR, NULL, "Lua VM panic: %s", msg ? msg : "(no message)");
    _exit(70);
    return 0;
}

lua_State *jr_vm_open(jr_vm *vm)
{
    lua_State *L = luaL_newstate();
    if (!L) return NULL;
    lua_atpanic(L, on_panic);
    vm->L = L;
    jr_vm_global = vm;
    luaL_openlibs(L);

    char dir[PATH_MAX];
    find_lua_dir(dir, sizeof dir);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);
    lua_pushstring(L, dir);
    lua_setfield(L, -2, "jararaca_lua_dir");
    lua_pop(L, 1);

    preload(L, "jararaca.core.sched", jr_open_sched);
    preload(L, "jararaca.core.http", jr_open_http);
    preload(L, "jararaca.core.router", jr_open_router);
    preload(L, "jararaca.core.sys", jr_open_sys);
    preload(L, "jararaca.core.process", jr_open_process);
    preload(L, "jararaca.core.json", jr_open_json);
    preload(L, "jararaca.core.db", jr_open_db);
    preload(L, "jararaca.core.ws", jr_open_ws);
    preload(L, "jararaca.core.amqp", jr_open_amqp);
    preload(L, "jararaca.core.cron", jr_open_cron);
    preload(L, "jararaca.core.redis", jr_open_redis);
    preload(L, "jararaca.core.otlp_encode", jr_open_otlp_encode);
    preload(L, "jararaca.core.otlp", jr_open_otlp);
    return L;
}
