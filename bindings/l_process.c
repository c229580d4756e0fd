/* l_process.c - jararaca.core.process: child processes on the loop.
 *
 *   local p, msg, code = process.spawn{ "/path/bin", "arg1", ..., env = { K = "v" },
 *                                 stdout = "/tmp/out.log", stderr = "/tmp/err.log", cwd = "/dir" }
 *   p:pid()                      the child's pid
 *   p:kill("SIGTERM")            true | nil, msg, "esrch" (it exited) | nil, msg, "e..."
 *   p:wait([timeout])            exit_status, term_signal | nil, msg, "timeout" (parks the task)
 *   process.kill_all([sig])      signal every child still running (default SIGKILL) -> count
 * stdout/stderr: a file path (appended), or nil to inherit ours. env entries
 * are added to (or override) the current environment. Failures follow
 * docs/errors.md: a program that cannot be started or an output file that
 * cannot be opened is nil, "cannot spawn <argv0>: <why>", libuv's error
 * name in lower case ("enoent", "eacces"); a bad options table raises. */
#include <errno.h>
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

typedef struct proc_ud {
    uv_process_t h;
    int exited;
    int64_t status;
    int term_signal;
    int closed;
    int closing; /* handles (process, timer) whose close callback is pending */
    jr_waiter waiter; /* the task in p:wait() */
    uv_timer_t timer;
    int timer_on;
    int ref; /* anchors the userdata while the child runs */
    struct proc_ud *prev, *next; /* the running children (kill_all) */
} proc_ud;

/* The children still running: `jararaca test` kills the ones a failed spec
 * left behind, so a run never leaves servers listening after it. */
static proc_ud *g_running;

static void unlink_running(proc_ud *p)
{
    if (p->prev) p->prev->next = p->next;
    else if (g_running == p) g_running = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

/* The userdata holds both handles: it stays anchored until the last of
 * their close callbacks (libuv runs them in no promised order). */
static void one_closed(proc_ud *p)
{
    if (--p->closing > 0) return;
    p->closed = 1;
    luaL_unref(jr_vm_global->L, LUA_REGISTRYINDEX, p->ref);
    p->ref = LUA_NOREF;
}

static void timer_closed(uv_handle_t *h) { one_closed(h->data); }

static void stop_timer(proc_ud *p)
{
    if (p->timer_on) {
        uv_timer_stop(&p->timer);
        p->timer_on = 0;
    }
}

static void on_handle_closed(uv_handle_t *h) { one_closed(h->data); }

static void on_exit_cb(uv_process_t *h, int64_t status, int term_signal)
{
    proc_ud *p = h->data;
    p->exited = 1;
    unlink_running(p);
    p->status = status;
    p->term_signal = term_signal;
    stop_timer(p);
    p->closing = 2;
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
        jr_waiter_resume(&p->waiter, jr_push_fail(co, "the process is still running", "timeout"));
    }
}

/* options[field] when it is a path, else NULL (kept alive by the table). */
static const char *out_path(lua_State *L, const char *field)
{
    lua_getfield(L, 1, field);
    const char *path = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);
    return path;
}

/* A file opened for appending, -1 for none (NULL: the child inherits ours),
 * or -errno when it cannot be opened. */
static int open_out(const char *path)
{
    if (!path) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

static void close_out(int fd)
{
    if (fd >= 0) close(fd);
}

/* Everything that may raise (bad options, Lua out of memory) happens before
 * the output files are opened, and the argv/envp arrays are userdata: a
 * raise leaks nothing. */
static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int argc = (int)lua_objlen(L, 1);
    if (argc < 1) return luaL_error(L, "spawn: give at least the program path");
    char **args = lua_newuserdata(L, ((size_t)argc + 1) * sizeof *args);
    for (int i = 0; i < argc; i++) {
        lua_rawgeti(L, 1, i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "spawn: argument %d must be a string, got %s", i + 1, luaL_typename(L, -1));
        args[i] = (char *)lua_tostring(L, -1); /* kept alive by the table */
        lua_pop(L, 1);
    }
    args[argc] = NULL;
    const char *argv0 = args[0];

    /* Environment: ours, with env = {} entries added or replaced. */
    lua_getfield(L, 1, "env");
    int envtab = lua_gettop(L);
    int has_env = lua_istable(L, envtab);
    if (!has_env && !lua_isnil(L, envtab))
        return luaL_error(L, "spawn: env must be a table, got %s", luaL_typename(L, envtab));
    size_t nenv = 0;
    while (environ[nenv]) nenv++;
    size_t nextra = 0;
    if (has_env) {
        lua_pushnil(L);
        while (lua_next(L, envtab)) {
            if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
                return luaL_error(L, "spawn: env entries must be name = string");
            nextra++;
            lua_pop(L, 1);
        }
    }
    char **env = lua_newuserdata(L, (nenv + nextra + 1) * sizeof *env);
    size_t ne = 0;
    for (size_t i = 0; i < nenv; i++) {
        int overridden = 0;
        const char *eq = has_env ? strchr(environ[i], '=') : NULL;
        if (eq) {
            lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
            lua_rawget(L, envtab);
            overridden = !lua_isnil(L, -1);
            lua_pop(L, 1);
        }
        if (!overridden) env[ne++] = environ[i];
    }
    if (has_env) {
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
    env[ne] = NULL;
    const char *out_file = out_path(L, "stdout");
    const char *err_file = out_path(L, "stderr");
    lua_getfield(L, 1, "cwd");
    const char *cwd = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* (kept alive by the table) */

    proc_ud *p = lua_newuserdata(L, sizeof *p);
    memset(p, 0, sizeof *p);
    p->ref = LUA_NOREF;
    lua_pushlightuserdata(L, &k_proc_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    /* Anchored before the spawn (until the close callback): after it, a
     * running child's handle must not depend on an allocation. */
    p->ref = luaL_ref(L, LUA_REGISTRYINDEX);

    int out = open_out(out_file);
    if (out < -1) {
        luaL_unref(L, LUA_REGISTRYINDEX, p->ref);
        return jr_push_errno_fail(L, -out, "cannot spawn %s: cannot open its stdout file %s", argv0, out_file);
    }
    int err = open_out(err_file);
    if (err < -1) {
        close_out(out);
        luaL_unref(L, LUA_REGISTRYINDEX, p->ref);
        return jr_push_errno_fail(L, -err, "cannot spawn %s: cannot open its stderr file %s", argv0, err_file);
    }
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = out >= 0 ? out : 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = err >= 0 ? err : 2;

    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.file = argv0;
    o.args = args;
    o.env = env;
    o.cwd = cwd;
    o.exit_cb = on_exit_cb;
    o.stdio_count = 3;
    o.stdio = stdio;
    int rc = uv_spawn(jr_vm_global->loop, &p->h, &o);
    close_out(out); /* the child has its copies */
    close_out(err);
    p->h.data = p;
    if (rc != 0) {
        /* uv_spawn failed: libuv has set the handle up; close it (the
         * close callback drops the anchor). */
        p->exited = 1;
        p->closing = 1; /* the timer was never initialised */
        uv_close((uv_handle_t *)&p->h, on_handle_closed);
        return jr_push_uv_fail(L, rc, "cannot spawn %s", argv0);
    }
    uv_timer_init(jr_vm_global->loop, &p->timer);
    p->timer.data = p;
    p->next = g_running;
    if (g_running) g_running->prev = p;
    g_running = p;
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
    const char *name = luaL_optstring(L, 2, "SIGTERM");
    int sig = jr_signal_from_name(name);
    if (sig < 0) return luaL_argerror(L, 2, "unknown signal");
    /* Its pid may belong to another process by now: never signal it. */
    if (p->exited) return jr_push_fail(L, "the process has exited", "esrch");
    int rc = uv_process_kill(&p->h, sig);
    if (rc != 0) return jr_push_uv_fail(L, rc, "cannot send %s to process %d", name, p->h.pid);
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

static int l_kill_all(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, "SIGKILL");
    int sig = jr_signal_from_name(name);
    if (sig < 0) return luaL_argerror(L, 1, "unknown signal");
    lua_Integer n = 0;
    /* Still linked means not reaped yet: the pid is still our child's. */
    for (proc_ud *p = g_running; p; p = p->next)
        if (uv_process_kill(&p->h, sig) == 0) n++;
    lua_pushinteger(L, n);
    return 1;
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
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_spawn);
    lua_setfield(L, -2, "spawn");
    lua_pushcfunction(L, l_kill_all);
    lua_setfield(L, -2, "kill_all");
    return 1;
}
