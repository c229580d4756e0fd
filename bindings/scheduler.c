/* scheduler.c - the coroutine scheduler (see scheduler.h).
 *
 * Tasks are C structs that are recycled, never freed, so a Lua-side handle
 * (lightuserdata pointer + generation) can always be checked safely: a stale
 * handle has an older generation. Each task owns a pooled coroutine running
 * the Lua trampoline (lua/jararaca/sched.lua), which runs one function after
 * another and parks in idle() between them: no coroutine is created per
 * request once the pool is warm.
 *
 * Resumptions never nest: a resume requested while a task runs (a Lua wake,
 * a callback fired synchronously from a C call) goes to the ready queue,
 * drained by an idle handle on the next loop iteration. */
#include "scheduler.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vm.h"

#define JR_TASK_POOL_MAX 4096 /* idle coroutines kept for reuse */
#define JR_TASK_CHUNK 256

struct jr_task {
    lua_State *co;      /* the task's coroutine (main thread of the task) */
    int co_ref;         /* registry ref anchoring co */
    jr_task_state state;
    uint32_t gen;       /* bumped whenever the task is recycled */
    int started;        /* co has run the trampoline at least once */
    int nresume;        /* values pushed on co for the pending resumption */
    int cancelled;      /* cancel requested while parked on IO */
    int yield_now;      /* sleep(0): requeue at once after the yield */
    uint32_t parks;     /* bumped by every park: a waiter names one park, not the task */
    int no_wake;        /* parked by jr_waiter_park_cancellable: sched.wake passes it by */
    struct jr_timer *timer;
    void (*on_end)(void *); /* jr_task_start_guarded: runs when the body's run is over */
    void *end_ud;
    jr_task *next;      /* ready queue / idle pool / free list link */
};

typedef struct jr_timer {
    uv_timer_t h;
    jr_task *task;
    uint32_t gen;
} jr_timer;

static lua_State *g_L;
static uv_loop_t *g_loop;
static int g_trampoline_ref = LUA_NOREF;
static jr_task *g_current;
static jr_task *g_free;       /* structs without a coroutine */
static jr_task *g_idle;       /* structs with a pooled, idle coroutine */
static size_t g_idle_count, g_task_count, g_live_count;
static jr_task *g_ready_head, *g_ready_tail;
static uv_idle_t g_ready_idle;
static char k_park; /* address = the sentinel yielded by every park */

static void task_run(jr_task *t, int nargs);
static void on_ready_idle(uv_idle_t *h);

jr_task *jr_task_current(void) { return g_current; }

static jr_task *task_alloc(void)
{
    if (!g_free) {
        jr_task *chunk = calloc(JR_TASK_CHUNK, sizeof *chunk);
        if (!chunk) return NULL;
        for (int i = 0; i < JR_TASK_CHUNK; i++) {
            chunk[i].co_ref = LUA_NOREF;
            chunk[i].next = g_free;
            g_free = &chunk[i];
        }
    }
    jr_task *t = g_free;
    g_free = t->next;
    t->next = NULL;
    g_task_count++;
    return t;
}

/* Drop the coroutine and put the struct back on the free list. */
static void task_release(jr_task *t)
{
    if (t->co_ref != LUA_NOREF) luaL_unref(g_L, LUA_REGISTRYINDEX, t->co_ref);
    t->co_ref = LUA_NOREF;
    t->co = NULL;
    t->started = 0;
    t->state = JR_TASK_FREE;
    t->gen++;
    t->next = g_free;
    g_free = t;
    g_task_count--;
}

/* Two queues of tasks to resume: `ready` (woken by something: they run as
 * soon as the running task stops, see after_task) and `later` (they asked
 * to let the others run first: sleep(0), a bare yield; they run once per
 * turn of the loop, in the idle phase). */
static jr_task *g_later_head, *g_later_tail;

static void queue_push(jr_task **head, jr_task **tail, jr_task *t, int nargs)
{
    t->state = JR_TASK_READY;
    t->nresume = nargs;
    t->next = NULL;
    if (*tail) (*tail)->next = t;
    else *head = t;
    *tail = t;
    if (!uv_is_active((uv_handle_t *)&g_ready_idle)) uv_idle_start(&g_ready_idle, on_ready_idle);
}

static void ready_push(jr_task *t, int nargs) { queue_push(&g_ready_head, &g_ready_tail, t, nargs); }
static void later_push(jr_task *t, int nargs) { queue_push(&g_later_head, &g_later_tail, t, nargs); }

static void run_batch(jr_task *batch)
{
    while (batch) {
        jr_task *t = batch;
        batch = t->next;
        t->next = NULL;
        task_run(t, t->nresume);
    }
}

static void on_ready_idle(uv_idle_t *h)
{
    (void)h;
    /* Only what is queued now: a task that keeps re-queueing itself
     * (sleep(0) in a loop) must not starve I/O. */
    jr_task *batch = g_ready_head, *later = g_later_head;
    g_ready_head = g_ready_tail = g_later_head = g_later_tail = NULL;
    run_batch(batch);
    run_batch(later);
    if (!g_ready_head && !g_later_head) uv_idle_stop(&g_ready_idle);
}

/* Close a task's timer, if any (the timer frees itself when closed). */
static void timer_close_cb(uv_handle_t *h) { free(h->data); }
static void task_drop_timer(jr_task *t)
{
    if (!t->timer) return;
    uv_timer_stop(&t->timer->h);
    uv_close((uv_handle_t *)&t->timer->h, timer_close_cb);
    t->timer = NULL;
}

static void (*g_after_task)(void);

void jr_sched_set_after_task(void (*fn)(void)) { g_after_task = fn; }

static void task_stopped(jr_task *t, int rc);

/* After a task resumed from a libuv callback stops: deliver what finished
 * meanwhile (the hook), then run the tasks that are ready now - those it
 * woke (the next one in a queue it left, the next writer) - instead of
 * leaving them for the next turn of the loop, after every other event of
 * this one. One batch, like on_ready_idle: a task that keeps re-queueing
 * itself does not hold the loop. Not re-entered: what runs here queues its
 * own follow-ups for the next batch. */
static void after_task(void)
{
    static int busy;
    if (busy) return;
    busy = 1;
    if (g_after_task) g_after_task();
    jr_task *batch = g_ready_head;
    g_ready_head = g_ready_tail = NULL;
    run_batch(batch);
    if (!g_ready_head && !g_later_head) uv_idle_stop(&g_ready_idle);
    busy = 0;
}

/* Resume t with nargs values on its stack; handle how it stops. */
static void task_run(jr_task *t, int nargs)
{
    lua_State *co = t->co;
    t->state = JR_TASK_RUNNING;
    t->nresume = 0;
    t->no_wake = 0;
    jr_task *prev = g_current;
    g_current = t;
    int rc = lua_resume(co, nargs);
    g_current = prev;
    task_stopped(t, rc);
    if (!prev) after_task();
}

/* How t stopped (rc of lua_resume): parked, yielded, finished or crashed. */
static void task_stopped(jr_task *t, int rc)
{
    lua_State *co = t->co;
    if (rc == LUA_YIELD) {
        switch (t->state) {
        case JR_TASK_SLEEP:
            lua_settop(co, 0); /* the park sentinel */
            if (t->yield_now) {
                t->yield_now = 0;
                lua_pushboolean(co, 1);
                later_push(t, 1);
            }
            return;
        case JR_TASK_WAIT:
        case JR_TASK_IO:
            lua_settop(co, 0); /* the park sentinel */
            return;
        case JR_TASK_IDLE: {
            void (*on_end)(void *) = t->on_end;
            void *end_ud = t->end_ud;
            t->on_end = NULL;
            lua_settop(co, 0);
            task_drop_timer(t);
            t->gen++;
            g_live_count--;
            if (g_idle_count < JR_TASK_POOL_MAX) {
                t->next = g_idle;
                g_idle = t;
                g_idle_count++;
            } else {
                task_release(t);
            }
            /* Last: t is pooled already, so what on_end starts may reuse it. */
            if (on_end) on_end(end_ud);
            return;
        }
        case JR_TASK_READY: /* cannot happen: ready_push is only for parked tasks */
            return;
        default:
            /* A bare coroutine.yield() at the top of a task: treat it as
             * "let others run" and resume it on the next tick. */
            lua_settop(co, 0);
            later_push(t, 0);
            return;
        }
    }
    if (rc != 0) {
        /* The trampoline catches errors of task bodies, so reaching this is
         * a framework bug: log it and drop the coroutine. */
        const char *msg = lua_tostring(co, -1);
        luaL_traceback(g_L, co, msg ? msg : "(non-string error)", 0);
        jr_logf(JR_LOG_ERROR, NULL, "task crashed: %s", lua_tostring(g_L, -1));
        lua_pop(g_L, 1);
    }
    /* Finished (the trampoline returned) or crashed. */
    void (*on_end)(void *) = t->on_end;
    void *end_ud = t->end_ud;
    t->on_end = NULL;
    task_drop_timer(t);
    g_live_count--;
    task_release(t);
    if (on_end) on_end(end_ud);
}

jr_task *jr_task_start(lua_State *L, int nargs)
{
    return jr_task_start_guarded(L, nargs, NULL, NULL);
}

jr_task *jr_task_start_guarded(lua_State *L, int nargs, void (*on_end)(void *ud), void *ud)
{
    jr_task *t;
    if (g_idle) {
        t = g_idle;
        g_idle = t->next;
        g_idle_count--;
        t->next = NULL;
    } else {
        t = task_alloc();
        if (!t) luaL_error(L, "out of memory (task)");
        t->co = lua_newthread(g_L);
        t->co_ref = luaL_ref(g_L, LUA_REGISTRYINDEX);
        t->started = 0;
        t->cancelled = 0;
        t->timer = NULL;
    }
    t->cancelled = 0;
    t->yield_now = 0;
    t->on_end = on_end;
    t->end_ud = ud;
    g_live_count++;
    int n = nargs + 1; /* function + args */
    if (!t->started) {
        lua_rawgeti(t->co, LUA_REGISTRYINDEX, g_trampoline_ref);
        t->started = 1;
    }
    lua_xmove(L, t->co, n);
    if (g_current) ready_push(t, n);
    else task_run(t, n);
    return t;
}

/* Yield out of a parking C function: `return jr_task_yield(L);`. The
 * sentinel lets a user's coroutine wrapper pass the park outward. */
static int jr_task_yield(lua_State *L)
{
    if (g_current) g_current->parks++;
    lua_pushlightuserdata(L, &k_park);
    return lua_yield(L, 1);
}

/* Resume a parked task with nresults values already pushed on its thread.
 * Safe from any libuv callback; if a task is running, the resumption is
 * queued instead of nested. */
static void jr_task_resume(jr_task *t, int nresults)
{
    task_drop_timer(t);
    if (g_current) ready_push(t, nresults);
    else task_run(t, nresults);
}

/* ------------------------------------------------------------------ */
/* Waiters: one task waiting for one C event                           */

int jr_waiter_park(lua_State *L, jr_waiter *w, const char *what)
{
    jr_task *t = g_current;
    if (!t) return luaL_error(L, "%s must be called inside a task", what);
    if (w->task && w->task->gen == w->gen && w->task->state != JR_TASK_FREE)
        return luaL_error(L, "%s: another task is already waiting", what);
    w->task = t;
    w->gen = t->gen;
    w->park = t->parks + 1; /* the park jr_task_yield makes */
    w->timed = 0;
    t->state = JR_TASK_IO;
    return jr_task_yield(L);
}

static int arm_timer(lua_State *L, jr_task *t, double seconds);

static int park_timed(lua_State *L, jr_waiter *w, const char *what, double seconds, int no_wake)
{
    jr_task *t = g_current;
    if (!t) return luaL_error(L, "%s must be called inside a task", what);
    if (w->task && w->task->gen == w->gen && (w->task->state == JR_TASK_IO || w->task->state == JR_TASK_WAIT))
        return luaL_error(L, "%s: another task is already waiting", what);
    if (seconds == seconds && seconds >= 0) arm_timer(L, t, seconds);
    w->task = t;
    w->gen = t->gen;
    w->park = t->parks + 1;
    w->timed = 1;
    t->no_wake = no_wake; /* reset by task_run when it is resumed */
    t->state = JR_TASK_WAIT; /* what on_timer and sched.cancel resume */
    return jr_task_yield(L);
}

int jr_waiter_park_timed(lua_State *L, jr_waiter *w, const char *what, double seconds)
{
    return park_timed(L, w, what, seconds, 0);
}

int jr_waiter_park_cancellable(lua_State *L, jr_waiter *w, const char *what)
{
    return park_timed(L, w, what, -1, 1);
}

lua_State *jr_waiter_thread(jr_waiter *w)
{
    jr_task *t = w->task;
    if (!t || t->gen != w->gen) return NULL;
    /* parked again elsewhere since (a timed wait resumed by its timeout or a
     * cancel, then the task went on): this event is not what it waits for */
    if (t->parks != w->park) return NULL;
    if (t->state != JR_TASK_IO && !(w->timed && t->state == JR_TASK_WAIT)) return NULL;
    return t->co;
}

void jr_waiter_resume(jr_waiter *w, int n)
{
    jr_task *t = w->task;
    w->task = NULL;
    if (t) jr_task_resume(t, n);
}

static const struct {
    const char *name;
    int sig;
} k_signals[] = {{"SIGTERM", SIGTERM}, {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT},
                 {"SIGHUP", SIGHUP},   {"SIGKILL", SIGKILL}, {"SIGSTOP", SIGSTOP},
                 {"SIGCONT", SIGCONT}, {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}};

int jr_signal_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof k_signals / sizeof k_signals[0]; i++)
        if (strcmp(name, k_signals[i].name) == 0) return k_signals[i].sig;
    return -1;
}

const char *jr_signal_name(int sig)
{
    for (size_t i = 0; i < sizeof k_signals / sizeof k_signals[0]; i++)
        if (k_signals[i].sig == sig) return k_signals[i].name;
    return "SIGNAL";
}

/* ------------------------------------------------------------------ */
/* Lua API: jararaca.core.sched                                         */

static jr_task *check_task_running(lua_State *L, const char *what)
{
    jr_task *t = g_current;
    if (!t) luaL_error(L, "%s must be called inside a task (a request, message, job or spawned function)", what);
    return t;
}

static void on_timer(uv_timer_t *h)
{
    jr_timer *tm = h->data;
    jr_task *t = tm->task;
    if (t->gen != tm->gen || t->timer != tm) return; /* stale: already closed */
    lua_State *co = t->co;
    if (t->state == JR_TASK_SLEEP) {
        lua_pushboolean(co, 1);
        jr_task_resume(t, 1);
    } else if (t->state == JR_TASK_WAIT) {
        jr_task_resume(t, jr_push_fail(co, "the wait timed out", "timeout"));
    }
}

static int arm_timer(lua_State *L, jr_task *t, double seconds)
{
    jr_timer *tm = malloc(sizeof *tm);
    if (!tm) return luaL_error(L, "out of memory (timer)");
    uv_timer_init(g_loop, &tm->h);
    tm->h.data = tm;
    tm->task = t;
    tm->gen = t->gen;
    t->timer = tm;
    double ms = seconds * 1000.0;
    if (ms < 0) ms = 0;
    if (ms > 1e15) ms = 1e15;
    /* The loop's cached time may be stale after a long stretch of Lua:
     * refresh it so the timer does not fire early. */
    uv_update_time(g_loop);
    uv_timer_start(&tm->h, on_timer, (uint64_t)(ms + 0.5), 0);
    return 0;
}

/* sched.sleep(seconds) -> true | nil, message, "cancelled" */
static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    if (s != s) return luaL_argerror(L, 1, "NaN");
    jr_task *t = check_task_running(L, "jararaca.sleep()");
    if (s <= 0) {
        /* Let the others run: task_run requeues it right after the yield. */
        t->state = JR_TASK_SLEEP;
        t->yield_now = 1;
        return jr_task_yield(L);
    }
    arm_timer(L, t, s);
    t->state = JR_TASK_SLEEP;
    return jr_task_yield(L);
}

/* sched.wait([timeout]) -> true, ... (woken: what the waker passed)
 *   | nil, message, "timeout" | nil, message, "cancelled" */
static int l_wait(lua_State *L)
{
    jr_task *t = check_task_running(L, "wait()");
    if (!lua_isnoneornil(L, 1)) {
        double s = luaL_checknumber(L, 1);
        arm_timer(L, t, s);
    }
    t->state = JR_TASK_WAIT;
    return jr_task_yield(L);
}

static jr_task *check_handle(lua_State *L, int idx)
{
    luaL_checktype(L, idx, LUA_TLIGHTUSERDATA);
    jr_task *t = lua_touserdata(L, idx);
    uint32_t gen = (uint32_t)luaL_checknumber(L, idx + 1);
    if (!t || t->gen != gen || t->state == JR_TASK_FREE || t->state == JR_TASK_IDLE) return NULL;
    return t;
}

/* sched.wake(handle, gen, ...) -> true if t was waiting and is now scheduled */
static int l_wake(lua_State *L)
{
    int top = lua_gettop(L);
    jr_task *t = check_handle(L, 1);
    if (!t || t->state != JR_TASK_WAIT || t->no_wake) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int n = top - 2;
    lua_pushboolean(t->co, 1);
    if (n > 0) lua_xmove(L, t->co, n);
    jr_task_resume(t, n + 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* sched.cancel(handle, gen) -> true if a sleeping/waiting task was cancelled */
static int l_cancel(lua_State *L)
{
    jr_task *t = check_handle(L, 1);
    if (!t) { lua_pushboolean(L, 0); return 1; }
    if (t->state == JR_TASK_SLEEP || t->state == JR_TASK_WAIT) {
        jr_task_resume(t, jr_push_fail(t->co, "the task was cancelled", "cancelled"));
        lua_pushboolean(L, 1);
        return 1;
    }
    if (t->state == JR_TASK_IO || t->state == JR_TASK_READY || t->state == JR_TASK_RUNNING) {
        t->cancelled = 1;
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    return 1;
}

/* sched.cancelled() -> true when cancel() was requested for the running task */
static int l_cancelled(lua_State *L)
{
    lua_pushboolean(L, g_current && g_current->cancelled);
    return 1;
}

/* sched.spawn(fn, ...) -> handle, gen (starts on the next tick when called from a task) */
static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 1;
    jr_task *t = jr_task_start(L, nargs);
    lua_pushlightuserdata(L, t);
    lua_pushnumber(L, t->gen);
    return 2;
}

/* sched.current() -> handle, gen | nil */
static int l_current(lua_State *L)
{
    if (!g_current) return 0;
    lua_pushlightuserdata(L, g_current);
    lua_pushnumber(L, g_current->gen);
    return 2;
}

/* sched.idle(): the trampoline parks here between two task bodies. */
static int l_idle(lua_State *L)
{
    jr_task *t = check_task_running(L, "idle()");
    t->state = JR_TASK_IDLE;
    return lua_yield(L, 0);
}

static int l_set_trampoline(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (g_trampoline_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, g_trampoline_ref);
    lua_pushvalue(L, 1);
    g_trampoline_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* sched.now() -> seconds (loop time, ms resolution); sched.clock() -> hrtime seconds */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, (double)uv_now(g_loop) / 1000.0);
    return 1;
}
static int l_clock(lua_State *L)
{
    lua_pushnumber(L, (double)uv_hrtime() / 1e9);
    return 1;
}

static int l_stats(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, (double)g_live_count);
    lua_setfield(L, -2, "live");
    lua_pushnumber(L, (double)g_idle_count);
    lua_setfield(L, -2, "idle");
    lua_pushnumber(L, (double)g_task_count);
    lua_setfield(L, -2, "allocated");
    return 1;
}

int jr_open_sched(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"sleep", l_sleep},     {"wait", l_wait},       {"wake", l_wake},
        {"cancel", l_cancel},   {"cancelled", l_cancelled}, {"spawn", l_spawn},
        {"current", l_current}, {"idle", l_idle},       {"set_trampoline", l_set_trampoline},
        {"now", l_now},         {"clock", l_clock},     {"stats", l_stats},
        {NULL, NULL}};
    lua_createtable(L, 0, 16);
    luaL_register(L, NULL, fns);
    lua_pushlightuserdata(L, &k_park);
    lua_setfield(L, -2, "PARK");
    return 1;
}

void jr_sched_init(lua_State *L, uv_loop_t *loop)
{
    g_L = L;
    g_loop = loop;
    uv_idle_init(loop, &g_ready_idle);
}
