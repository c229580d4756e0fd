/* l_sys.c - jararaca.core.sys: logging, process exit, signals, pre-fork. */
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "prefork.h"
#include "scheduler.h"
#include "vm.h"
#include "watchdog.h"

/* sys.log(level, msg [, request_id [, trace_id, span_id]]) ; level = 0..3 */
static int l_log(lua_State *L)
{
    int level = (int)luaL_checkinteger(L, 1);
    size_t len;
    const char *msg = luaL_checklstring(L, 2, &len);
    const char *rid = luaL_optstring(L, 3, NULL);
    const char *tid = luaL_optstring(L, 4, NULL);
    const char *sid = luaL_optstring(L, 5, NULL);
    jr_log_msg_trace((jr_log_level)level, rid, tid, sid, msg, len);
    return 0;
}

/* sys.log_level() -> int ; sys.set_log(level_name|nil, "text"|"json"|nil)
 * -> true | nil, message, "invalid" (the names come from a command line or
 * the environment: a bad one is expected, not a bug) */
static int l_log_level(lua_State *L)
{
    lua_pushinteger(L, jr_log_get_level());
    return 1;
}

static int l_set_log(lua_State *L)
{
    int lv = -1;
    jr_log_format fmt = JR_LOG_TEXT;
    int set_fmt = 0;
    /* Check both before changing either: a failed call changes nothing. */
    if (!lua_isnoneornil(L, 1)) {
        lv = jr_log_parse_level(luaL_checkstring(L, 1));
        if (lv < 0) {
            lua_pushfstring(L, "unknown log level '%s' (debug, info, warn, error, off)", lua_tostring(L, 1));
            return jr_push_fail(L, lua_tostring(L, -1), "invalid");
        }
    }
    if (!lua_isnoneornil(L, 2)) {
        const char *f = luaL_checkstring(L, 2);
        if (strcmp(f, "json") == 0) fmt = JR_LOG_JSON;
        else if (strcmp(f, "text") != 0) {
            lua_pushfstring(L, "unknown log format '%s' (text, json)", f);
            return jr_push_fail(L, lua_tostring(L, -1), "invalid");
        }
        set_fmt = 1;
    }
    if (lv >= 0) jr_log_set_level((jr_log_level)lv);
    if (set_fmt) jr_log_set_format(fmt);
    lua_pushboolean(L, 1);
    return 1;
}

/* sys.exit(code): stop the loop; main() returns code. */
static int l_exit(lua_State *L)
{
    jr_vm_global->exit_code = (int)luaL_optinteger(L, 1, 0);
    jr_vm_global->exit_requested = 1;
    uv_stop(jr_vm_global->loop);
    return 0;
}

static int l_pid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

static int l_nproc(lua_State *L)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    lua_pushinteger(L, n > 0 ? n : 1);
    return 1;
}

static int l_hostname(lua_State *L)
{
    char buf[256];
    if (gethostname(buf, sizeof buf) != 0) strcpy(buf, "localhost");
    buf[sizeof buf - 1] = 0;
    lua_pushstring(L, buf);
    return 1;
}

/* sys.prefork(n, stop_timeout_ms [, worker_timeout_ms]) -> worker index (in
 * workers; the master never returns) | nil, message, errno code (no worker
 * could be started). worker_timeout_ms > 0 runs the watchdog. */
static int l_prefork(lua_State *L)
{
    int n = (int)luaL_checkinteger(L, 1);
    lua_Integer wt = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, wt >= 0, 3, "worker timeout must be >= 0 ms");
    if (wt > INT_MAX) wt = INT_MAX; /* ~24 days: never, in practice */
    jr_prefork_opts o = {.stop_timeout_ms = (unsigned)luaL_optinteger(L, 2, 30000),
                         .worker_timeout_ms = (unsigned)wt};
    int idx = jr_prefork_run(n, &o);
    if (idx < 0) return jr_push_errno_fail(L, errno, "cannot start %d workers", n);
    /* A forked child must re-create the loop's kernel state (epoll fd). */
    int rc = uv_loop_fork(jr_vm_global->loop);
    if (rc != 0) return luaL_error(L, "uv_loop_fork: %s", uv_strerror(rc));
    lua_pushinteger(L, idx);
    return 1;
}

/* sys.worker_ready([describe]): tell the master this worker serves; under a
 * watchdog, arm it first (describe() -> text, request_id names what a stuck
 * coroutine was serving in the watchdog's log line). */
static int l_worker_ready(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
    jr_watchdog_arm(L, lua_isfunction(L, 1) ? 1 : 0);
    jr_prefork_worker_ready();
    return 0;
}

/* ---- signals: sys.watch_signals() then sys.next_signal() parks until one arrives ---- */
static uv_signal_t g_sig[4];
static const int g_signums[4] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP};
static int g_sig_started;
static jr_waiter g_sig_waiter; /* the task in sys.next_signal() */
static int g_sig_pending[8];
static int g_sig_npending;

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    lua_State *co = jr_waiter_thread(&g_sig_waiter);
    if (co) {
        lua_pushstring(co, jr_signal_name(signum));
        jr_waiter_resume(&g_sig_waiter, 1);
        return;
    }
    if (g_sig_npending < 8) g_sig_pending[g_sig_npending++] = signum;
}

static int l_watch_signals(lua_State *L)
{
    (void)L;
    if (g_sig_started) return 0;
    for (int i = 0; i < 4; i++) {
        uv_signal_init(jr_vm_global->loop, &g_sig[i]);
        uv_signal_start(&g_sig[i], on_signal, g_signums[i]);
        /* Watching signals must not keep the process alive by itself. */
        uv_unref((uv_handle_t *)&g_sig[i]);
    }
    g_sig_started = 1;
    return 0;
}

static int l_next_signal(lua_State *L)
{
    if (g_sig_npending > 0) {
        int s = g_sig_pending[0];
        memmove(g_sig_pending, g_sig_pending + 1, sizeof(int) * (size_t)--g_sig_npending);
        lua_pushstring(L, jr_signal_name(s));
        return 1;
    }
    if (!g_sig_started) return luaL_error(L, "next_signal(): call watch_signals() first");
    /* Keep the loop alive while someone waits for a signal. */
    for (int i = 0; i < 4; i++) uv_ref((uv_handle_t *)&g_sig[i]);
    return jr_waiter_park(L, &g_sig_waiter, "next_signal()");
}

static int l_unref_signals(lua_State *L)
{
    (void)L;
    if (g_sig_started)
        for (int i = 0; i < 4; i++) uv_unref((uv_handle_t *)&g_sig[i]);
    return 0;
}

/* sys.time() -> wall-clock seconds since the epoch, microsecond resolution */
static int l_time(lua_State *L)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (double)tv.tv_sec + (double)tv.tv_usec / 1e6);
    return 1;
}

/* sys.random_bytes(n) -> n bytes from the kernel's CSPRNG (uuid4, tokens).
 * Served from a 4 KiB buffer so a uuid costs no system call most of the time.
 * A forked child empties the buffer it inherited (pool_forget): pre-forked
 * workers would otherwise hand out the same bytes, the same ids and tokens. */
static unsigned char pool[4096];
static size_t avail;

static void pool_forget(void) { avail = 0; }

static int l_random_bytes(lua_State *L)
{
    static int atfork;
    if (!atfork) {
        if (pthread_atfork(NULL, NULL, pool_forget) != 0) return luaL_error(L, "pthread_atfork failed");
        atfork = 1;
    }
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0 || n > 4096) return luaL_argerror(L, 1, "0..4096 bytes");
    if ((size_t)n > avail) {
        size_t got = 0;
        while (got < sizeof pool) {
            ssize_t r = getrandom(pool + got, sizeof pool - got, 0);
            if (r < 0) {
                if (errno == EINTR) continue;
                return luaL_error(L, "getrandom: %s", strerror(errno));
            }
            got += (size_t)r;
        }
        avail = sizeof pool;
    }
    lua_pushlstring(L, (const char *)pool + (sizeof pool - avail), (size_t)n);
    /* never hand out the same bytes twice */
    memset(pool + (sizeof pool - avail), 0, (size_t)n);
    avail -= (size_t)n;
    return 1;
}

/* sys.setenv(name, value|nil) -> true | nil, message, "einval" (an empty
 * name or one with '='): set or unset an environment variable of this
 * process (os.getenv sees it; children inherit it). For tests and tools. */
static int l_setenv(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int rc = lua_isnoneornil(L, 2) ? unsetenv(name) : setenv(name, luaL_checkstring(L, 2), 1);
    if (rc != 0) return jr_push_errno_fail(L, errno, "cannot set environment variable '%s'", name);
    lua_pushboolean(L, 1);
    return 1;
}

/* sys.kill(pid, signame) -> true | nil, message, "esrch" (no such process)
 * | "eperm" (not allowed) */
static int l_kill(lua_State *L)
{
    int pid = (int)luaL_checkinteger(L, 1);
    int sig = jr_signal_from_name(luaL_optstring(L, 2, "SIGTERM"));
    if (sig < 0) return luaL_argerror(L, 2, "unknown signal");
    if (kill(pid, sig) != 0)
        return jr_push_errno_fail(L, errno, "cannot send %s to process %d", jr_signal_name(sig), pid);
    lua_pushboolean(L, 1);
    return 1;
}

int jr_open_sys(lua_State *L)
{
    static const luaL_Reg fns[] = {{"log", l_log},
                                   {"log_level", l_log_level},
                                   {"set_log", l_set_log},
                                   {"exit", l_exit},
                                   {"pid", l_pid},
                                   {"nproc", l_nproc},
                                   {"hostname", l_hostname},
                                   {"prefork", l_prefork},
                                   {"worker_ready", l_worker_ready},
                                   {"watch_signals", l_watch_signals},
                                   {"next_signal", l_next_signal},
                                   {"unref_signals", l_unref_signals},
                                   {"kill", l_kill},
                                   {"time", l_time},
                                   {"setenv", l_setenv},
                                   {"random_bytes", l_random_bytes},
                                   {NULL, NULL}};
    lua_createtable(L, 0, 16);
    luaL_register(L, NULL, fns);
    lua_pushstring(L, JR_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
