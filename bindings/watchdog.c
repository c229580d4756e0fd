/* watchdog.c - see watchdog.h.
 *
 * Getting a traceback out of a stuck worker. A signal handler cannot run
 * Lua, so ours only asks LuaJIT for a count hook (lua_sethook is the Lua API
 * meant to be called from a signal handler: Lua's ldebug.c says so, and
 * lua.c's and luajit.c's Ctrl-C use it that way); the hook then runs on the
 * stuck coroutine at its next bytecode, where logging a traceback is fine.
 *
 * LuaJIT does not run hooks in compiled code, and a loop like
 * `while true do end` is compiled within ~60 iterations, so the hook alone
 * would never fire there. Its profiler is the one documented way out of a
 * trace: in line mode ('l') every compiled line checks a flag, and SIGPROF
 * sets it, which exits the trace to the interpreter - where the count hook
 * fires. So an armed worker keeps the profiler running in line mode with an
 * interval that never elapses (the callback does nothing), and the signal
 * handler raises SIGPROF itself. The checks cost a predictable
 * test-and-branch per compiled line (docs/workers.md has the measurement).
 *
 * Stuck in C (a system call, a long C library call, an FFI call), neither
 * fires; the master SIGKILLs the worker after JR_PREFORK_WATCHDOG_GRACE_MS. */
#include "watchdog.h"

#include <errno.h>
#include <lauxlib.h>
#include <luajit.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "prefork.h"
#include "vm.h"

/* Exit status of a worker stopped by the watchdog (EX_SOFTWARE, as a VM panic). */
#define WATCHDOG_EXIT 70
/* The profiler's own timer: one sample a day of CPU time, i.e. never. */
#define PROFILE_MODE "li86400000"
/* Listening sockets are looked for among the first fds only; they are
 * opened at startup, long before the connections that push fds up. */
#define MAX_FD_SCAN 65536

static int g_armed;
static uv_timer_t g_beat;
static char k_describe; /* registry key of the describe function */
static int g_max_fd;
static int g_prof_signal; /* the profiler runs on SIGPROF (not a timer thread) */
static volatile sig_atomic_t g_fired;
static struct timespec g_signalled; /* when the master's signal came */

/* A hook later than this after the signal did not catch the loop in Lua. */
#define LATE_HOOK_MS 100

static void on_profile(void *data, lua_State *L, int samples, int vmstate)
{
    /* Reaching here already did the work: the trace was left. */
    (void)data, (void)L, (void)samples, (void)vmstate;
}

static int sigprof_handled(void)
{
    struct sigaction cur;
    return sigaction(SIGPROF, NULL, &cur) == 0 && cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN;
}

/* On the main state: the profiler keeps the state it was started with. */
static void start_profiler(void)
{
    luaJIT_profile_start(jr_vm_global->L, PROFILE_MODE, on_profile, NULL);
    /* LuaJIT builds whose profiler runs on a timer thread install no
     * SIGPROF handler: then compiled loops are left to the SIGKILL. */
    g_prof_signal = sigprof_handled();
}

static void on_beat(uv_timer_t *t)
{
    (void)t;
    jr_prefork_heartbeat();
    /* jit.profile.start() in user code replaces our profiler and its stop()
     * leaves none (SIGPROF back to default): take it back, or compiled
     * loops would be out of reach again. */
    if (g_prof_signal && !sigprof_handled()) start_profiler();
}

/* The count hook, on the stuck coroutine: name it, log, exit. */
static void on_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    const char *where = "code outside any request", *rid = NULL;
    lua_pushlightuserdata(L, &k_describe);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isfunction(L, -1)) {
        /* An error in it must not cost the traceback: protected, and ignored. */
        if (lua_pcall(L, 0, 2, 0) == 0) {
            if (lua_type(L, -2) == LUA_TSTRING) where = lua_tostring(L, -2);
            if (lua_type(L, -1) == LUA_TSTRING) rid = lua_tostring(L, -1);
        }
    }
    char secs[32], late[320] = "";
    snprintf(secs, sizeof secs, "%g", jr_prefork_worker_timeout_ms() / 1000.0);
    /* Held outside Lua (a C call, or libuv itself), the hook runs only when
     * Lua runs again: say so, the traceback may show innocent code. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long delay_ms = (long)(now.tv_sec - g_signalled.tv_sec) * 1000 + (now.tv_nsec - g_signalled.tv_nsec) / 1000000;
    if (delay_ms >= LATE_HOOK_MS)
        snprintf(late, sizeof late,
                 " Lua ran again only %ld ms after the watchdog's signal: the loop was held outside Lua"
                 " (in C) until then; the traceback shows where Lua resumed (the caller of that C code,"
                 " or what ran next).",
                 delay_ms);
    luaL_traceback(L, L, NULL, 0);
    lua_pushfstring(L,
                    "watchdog: the event loop made no progress for %s s (--worker-timeout) while running %s; "
                    "this worker exits and is replaced.%s Lua %s",
                    secs, where, late, lua_tostring(L, -1));
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    jr_log_msg(JR_LOG_ERROR, rid, msg, len);
    fflush(stdout);
    /* No unwinding, no atexit: other threads may hold locks, and the
     * database files are safe against a process that stops anywhere. */
    _exit(WATCHDOG_EXIT);
}

/* Stop taking connections: with SO_REUSEPORT the kernel keeps routing new
 * ones to a listening socket whatever its process does. Connections already
 * queued on it are reset by the close (docs/workers.md). */
static void close_listeners(void)
{
    for (int fd = 0; fd < g_max_fd; fd++) {
        int on = 0;
        socklen_t len = sizeof on;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on) close(fd);
    }
}

/* Async-signal-safe: clock_gettime, getsockopt, close, sigaction, raise and
 * lua_sethook. */
static void on_watchdog_signal(int sig)
{
    (void)sig;
    int saved = errno;
    if (!g_fired) {
        g_fired = 1;
        clock_gettime(CLOCK_MONOTONIC, &g_signalled);
        close_listeners();
        lua_sethook(jr_vm_global->L, on_hook, LUA_MASKCOUNT, 1);
        /* Only while a SIGPROF handler is there: the default action kills. */
        if (g_prof_signal && sigprof_handled()) raise(SIGPROF);
    }
    errno = saved;
}

int jr_watchdog_arm(lua_State *L, int describe_idx)
{
    unsigned every = jr_prefork_heartbeat_interval_ms();
    if (!every || g_armed) return 0;
    if (describe_idx && lua_isfunction(L, describe_idx)) {
        lua_pushlightuserdata(L, &k_describe);
        lua_pushvalue(L, describe_idx);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    long maxfd = sysconf(_SC_OPEN_MAX);
    g_max_fd = maxfd <= 0 || maxfd > MAX_FD_SCAN ? MAX_FD_SCAN : (int)maxfd;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog_signal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (sigaction(JR_PREFORK_WATCHDOG_SIGNAL, &sa, NULL) != 0)
        return luaL_error(L, "watchdog: cannot install the signal handler: %s", strerror(errno));
    int rc = uv_timer_init(jr_vm_global->loop, &g_beat);
    if (rc == 0) rc = uv_timer_start(&g_beat, on_beat, every, every);
    if (rc != 0) return luaL_error(L, "watchdog: cannot start the heartbeat timer: %s", uv_strerror(rc));
    /* The heartbeat must not keep a stopping worker alive. */
    uv_unref((uv_handle_t *)&g_beat);
    start_profiler();
    jr_prefork_heartbeat();
    g_armed = 1;
    return 1;
}
