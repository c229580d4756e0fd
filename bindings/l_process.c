/* l_process.c - jararaca.core.process: child processes on the loop.
 *
 *   local p, err = process.spawn{ "/path/bin", "arg1", ..., env = { K = "v" },
 *                                 stdout = "/tmp/out.log", stderr = "/tmp/err.log", cwd = "/dir" }
 *   p:pid()                      the child's pid
 *   p:kill("SIGTERM")            true | nil, err
 *   p:wait([timeout])            exit_status, term_signal | nil, "timeout" (parks the task)
 * stdout/stderr: a file path (appended), or nil to inherit ours. env entries
 * are added to (or override) the current environment. */
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scheduler.h"
#include "vm.h"

extern char **environ;

static char k_proc_mt;

typedef struct {
    uv_process_t h;
    int exited;
    int64_t status;
    int term_signal;
    int closed;
    jr_waiter waiter; /* the task in p:wait() */
    uv_timer_t timer;
    int timer_on;
    int ref; /* anchors the userdata while the child runs */
} proc_ud;

static void timer_closed(uv_handle_t *h) { (void)h; }

static void stop_timer(proc_ud *p)
{
    if (p->timer_on) {
        uv_timer_stop(&p->timer);
        p->timer_on = 0;
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    proc_ud *p = h->data;
    p->closed = 1;
    luaL_unref(jr_vm_global->L, LUA_REGISTRYINDEX, p->ref);
    p->ref = LUA_NOREF;
}

static void on_exit_cb(uv_process_t *h, int64_t status, int term_signal)
{
    proc_ud *p = h->data;
    p->exited = 1;
    p->status = status;
    p->term_signal = term_signal;
    stop_timer(p);
    uv_close((uv_handle_t *)&p->timer, timer_closed);
    uv_close((uv_handle_t *)h, on_handle_closed);
    lua_State *co = jr_waiter_thread(&p->waiter);
    if (co) {
        lua_pushinteger(co, (lua_Integer)status);
        lua_pushinteger(co, term_signal);
        jr_waiter_resume(&p->waiter, 2);
    }
}

static void on_wait_timeout(uv_timer_t *tm)
{
    proc_ud *p = tm->data;
    p->timer_on = 0;
    lua_State *co = jr_waiter_thread(&p->waiter);
    if (co) {
        lua_pushnil(co);
        lua_pushliteral(co, "timeout");
        jr_waiter_resume(&p->waiter, 2);
    }
}

static int open_out(lua_State *L, const char *field)
{
    lua_getfield(L, 1, field);
    int fd = -1;
    if (lua_isstring(L, -1)) {
        fd = open(lua_tostring(L, -1), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) luaL_error(L, "spawn: cannot open %s file '%s'", field, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    return fd;
}

static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int argc = (int)lua_objlen(L, 1);
    if (argc < 1) return luaL_error(L, "spawn: give at least the program path");
    char **args = calloc((size_t)argc + 1, sizeof *args);
    for (int i = 0; i < argc; i++) {
        lua_rawgeti(L, 1, i + 1);
        args[i] = (char *)luaL_checkstring(L, -1); /* kept alive by the table */
        lua_pop(L, 1);
    }
    /* Environment: ours, with env = {} entries added or replaced. */
    size_t nenv = 0;
    while (environ[nenv]) nenv++;
    size_t nextra = 0;
    lua_getfield(L, 1, "env");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) { nextra++; lua_pop(L, 1); }
    }
    char **env = calloc(nenv + nextra + 1, sizeof *env);
    size_t ne = 0;
    for (size_t i = 0; i < nenv; i++) {
        int overridden = 0;
        if (lua_istable(L, -1)) {
            const char *eq = strchr(environ[i], '=');
            if (eq) {
                lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
                lua_rawget(L, -2);
                overridden = !lua_isnil(L, -1);
                lua_pop(L, 1);
            }
        }
        if (!overridden) env[ne++] = environ[i];
    }
    int envtab = lua_gettop(L);
    if (lua_istable(L, envtab)) {
        /* "K=v" strings are kept alive in an anchor table (not in env:
         * adding keys to a table while traversing it is undefined). */
        lua_newtable(L);
        int anchor = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, envtab)) {
            lua_pushvalue(L, -2);
            lua_pushliteral(L, "=");
            lua_pushvalue(L, -3);
            lua_concat(L, 3);
            env[ne++] = (char *)lua_tostring(L, -1);
            lua_rawseti(L, anchor, (int)ne);
            lua_pop(L, 1);
        }
    }
    int out = open_out(L, "stdout");
    int err = open_out(L, "stderr");
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = out >= 0 ? out : 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = err >= 0 ? err : 2;

    proc_ud *p = lua_newuserdata(L, sizeof *p);
    memset(p, 0, sizeof *p);
    p->ref = LUA_NOREF;
    lua_pushlightuserdata(L, &k_proc_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);

    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.file = args[0];
    o.args = args;
    o.env = env;
    o.exit_cb = on_exit_cb;
    o.stdio_count = 3;
    o.stdio = stdio;
    lua_getfield(L, 1, "cwd");
    if (lua_isstring(L, -1)) o.cwd = lua_tostring(L, -1);
    int rc = uv_spawn(jr_vm_global->loop, &p->h, &o);
    lua_pop(L, 1);
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    free(args);
    free(env);
    if (rc != 0) {
        /* uv_spawn failed: the handle is closed by libuv; close ours too. */
        p->exited = 1;
        p->h.data = p;
        lua_pushvalue(L, -1);
        p->ref = luaL_ref(L, LUA_REGISTRYINDEX); /* until the close callback */
        uv_close((uv_handle_t *)&p->h, on_handle_closed);
        lua_pushnil(L);
        lua_rawgeti(L, 1, 1);
        lua_pushfstring(L, "spawn %s: %s", lua_tostring(L, -1), uv_strerror(rc));
        lua_remove(L, -2);
        return 2;
    }
    p->h.data = p;
    uv_timer_init(jr_vm_global->loop, &p->timer);
    p->timer.data = p;
    lua_pushvalue(L, -1);
    p->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static proc_ud *check_proc(lua_State *L) { return jr_checkudata(L, 1, &k_proc_mt, "process"); }

static int p_pid(lua_State *L)
{
    proc_ud *p = check_proc(L);
    lua_pushinteger(L, p->h.pid);
    return 1;
}

static int p_kill(lua_State *L)
{
    proc_ud *p = check_proc(L);
    int sig = jr_signal_from_name(luaL_optstring(L, 2, "SIGTERM"));
    if (sig < 0) return luaL_argerror(L, 2, "unknown signal");
    if (p->exited) {
        lua_pushnil(L);
        lua_pushliteral(L, "exited");
        return 2;
    }
    int rc = uv_process_kill(&p->h, sig);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, uv_strerror(rc));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int p_wait(lua_State *L)
{
    proc_ud *p = check_proc(L);
    if (p->exited) {
        lua_pushinteger(L, (lua_Integer)p->status);
        lua_pushinteger(L, p->term_signal);
        return 2;
    }
    double timeout = luaL_optnumber(L, 2, -1);
    if (!jr_task_current()) return luaL_error(L, "process:wait() must be called inside a task");
    if (timeout >= 0) {
        uv_update_time(jr_vm_global->loop);
        uv_timer_start(&p->timer, on_wait_timeout, (uint64_t)(timeout * 1000.0), 0);
        p->timer_on = 1;
    }
    return jr_waiter_park(L, &p->waiter, "process:wait()");
}

static int p_gc(lua_State *L)
{
    (void)L; /* anchored until the child exits; nothing to free after */
    return 0;
}

int jr_open_process(lua_State *L)
{
    static const luaL_Reg methods[] = {{"pid", p_pid}, {"kill", p_kill}, {"wait", p_wait}, {NULL, NULL}};
    jr_newmetatable(L, &k_proc_mt, "process", methods, p_gc);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_spawn);
    lua_setfield(L, -2, "spawn");
    return 1;
}
