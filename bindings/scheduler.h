/* scheduler.h - coroutine scheduler: every request, message, scheduled run and
 * spawned function is a "task" running in a pooled Lua coroutine.
 *
 * C resumes exactly one Lua entry per task (a pooled trampoline, see
 * lua/jararaca/sched.lua). A C function that waits - for a server to drain,
 * a child to exit, a query to finish - parks the current task in a
 * jr_waiter (below) and yields; the event's callback pushes the results and
 * resumes it. All waits look the same from Lua: a call that returns later. */
#ifndef JR_SCHEDULER_H
#define JR_SCHEDULER_H

#include <lua.h>
#include <stdint.h>
#include <uv.h>

typedef struct jr_task jr_task;

typedef enum {
    JR_TASK_FREE = 0,   /* in the struct free list */
    JR_TASK_IDLE,       /* pooled coroutine waiting for work */
    JR_TASK_RUNNING,    /* being resumed right now */
    JR_TASK_READY,      /* queued for resumption on the next tick */
    JR_TASK_SLEEP,      /* parked on a timer (jararaca.sleep) */
    JR_TASK_WAIT,       /* parked until woken by jr_task_wake (or a timeout) */
    JR_TASK_IO          /* parked on a C operation that will resume it */
} jr_task_state;

void jr_sched_init(lua_State *L, uv_loop_t *loop);

/* The task being resumed, or NULL (main chunk / C callbacks). */
jr_task *jr_task_current(void);

/* fn runs after every task that was resumed from a libuv callback (not
 * from inside another task) has yielded or finished: a place to deliver
 * results that arrived meanwhile without waiting for the next turn of the
 * loop (l_db.c: finished database jobs). One hook; NULL removes it. */
void jr_sched_set_after_task(void (*fn)(void));

/* Start fn(args...) in a pooled task. Expects on L's stack: function and
 * nargs arguments on top; pops them. Runs at once when no task is running,
 * else it is queued (never nested). Returns the task. */
jr_task *jr_task_start(lua_State *L, int nargs);

/* Like jr_task_start, and on_end(ud) runs once when that function's run is
 * over, however it ended: returned, raised, was cancelled, or the task's
 * coroutine crashed. No Lua runs under on_end's caller (the task is already
 * back in the pool), so it may start tasks or answer requests. The last
 * resort of anything that must happen when a task ends (l_http.c: a request
 * its task never answered gets a 500). */
jr_task *jr_task_start_guarded(lua_State *L, int nargs, void (*on_end)(void *ud), void *ud);

/* A slot in which one task waits for a C event (a server draining, a child
 * exiting, a query finishing). The pattern of every waiting C function:
 *     return jr_waiter_park(L, &obj->waiter, "obj:wait()");
 * and of the event's callback:
 *     lua_State *co = jr_waiter_thread(&obj->waiter);
 *     if (co) { lua_pushinteger(co, result); jr_waiter_resume(&obj->waiter, 1); }
 * A waiter whose task was recycled meanwhile (generation mismatch) is empty. */
typedef struct {
    jr_task *task;
    uint32_t gen;
    uint32_t park; /* which park of the task: a later park elsewhere is not this one */
    int timed;     /* parked by jr_waiter_park_timed */
} jr_waiter;

/* Park the running task in w and yield. Raises "WHAT must be called inside a
 * task" outside a task and "WHAT: another task is already waiting" when w is
 * taken. Use as `return jr_waiter_park(...)`. */
int jr_waiter_park(lua_State *L, jr_waiter *w, const char *what);
/* Like jr_waiter_park, but the task waits as in sched.wait(): after seconds
 * (< 0: no deadline) it is resumed with nil, "the wait timed out", "timeout",
 * and a cancel resumes it at once with nil, "the task was cancelled",
 * "cancelled" (a wait that must not outlive j.timeout's cancel: a socket's
 * receive). In both cases w still names the task: the resumed code must
 * empty it (when w->task is still the running task: another task may have
 * parked in w meanwhile) before it parks anywhere else, or the event could
 * resume it there. A sched.wake() of the task also resumes it (with true):
 * callers treat that as spurious and wait again. */
int jr_waiter_park_timed(lua_State *L, jr_waiter *w, const char *what, double seconds);
/* Park until the event or a cancel (then resumed at once with nil, "the
 * task was cancelled", "cancelled"); no deadline, and sched.wake() passes
 * it by: for a C operation whose answer `true` must never be a spurious
 * wake (l_amqp.c: a publish confirmed). Nothing needs emptying w after a
 * cancel: the late event finds no task (jr_waiter_thread). */
int jr_waiter_park_cancellable(lua_State *L, jr_waiter *w, const char *what);
/* The waiting task's thread (push results on it), or NULL when none waits:
 * also NULL once the task was resumed otherwise (a timeout, a cancel) and
 * parked again anywhere, so an event that comes late is harmless even when
 * nobody emptied w (l_amqp.c relies on it: a cancelled publish's confirm). */
lua_State *jr_waiter_thread(jr_waiter *w);
/* Resume the waiting task with n values pushed on its thread; empties w. */
void jr_waiter_resume(jr_waiter *w, int n);

/* "SIGTERM" -> SIGTERM (TERM, INT, QUIT, HUP, KILL, STOP, CONT, USR1, USR2); -1 if unknown. */
int jr_signal_from_name(const char *name);
const char *jr_signal_name(int sig);

#endif
