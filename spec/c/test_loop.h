/* test_loop.h - the one uv loop of a C test and the ways to await events on it.
 *
 *   int main(void) { test_loop_init(); RUN(...); return test_loop_close() ? 1 : test_summary(); }
 *   WAIT(cl->closed, 2000);   run the loop until the condition holds, or 2 s pass
 *   pass_time(150);           let 150 ms of loop time pass (for behaviour about
 *                             time itself, e.g. an age bound; never as a sync)
 *
 * Every wait has an unref'd guard timer, so a broken test fails (the
 * condition is false afterwards) instead of hanging, the guard never keeps
 * the loop alive by itself, and a loop with nothing left to do ends the wait
 * at once. */
#ifndef JR_TEST_LOOP_H
#define JR_TEST_LOOP_H

#include <stdio.h>
#include <uv.h>

static uv_loop_t loop_storage;
static uv_loop_t *L = &loop_storage;

static uv_timer_t g_guard, g_pause;
static int g_timed_out, g_elapsed;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    g_timed_out = 1;
}

static void on_pause(uv_timer_t *t)
{
    (void)t;
    g_elapsed = 1;
}

#define WAIT(cond, ms)                                                              \
    do {                                                                            \
        g_timed_out = 0;                                                            \
        uv_timer_start(&g_guard, on_guard, (ms), 0);                                \
        while (!(cond) && !g_timed_out && uv_loop_alive(L)) uv_run(L, UV_RUN_ONCE); \
        uv_timer_stop(&g_guard);                                                    \
    } while (0)

static inline void pass_time(unsigned ms)
{
    g_elapsed = 0;
    uv_timer_start(&g_pause, on_pause, ms, 0);
    WAIT(g_elapsed, ms + 5000);
}

static inline void test_loop_init(void)
{
    uv_loop_init(L);
    uv_timer_init(L, &g_guard);
    uv_unref((uv_handle_t *)&g_guard);
    uv_timer_init(L, &g_pause);
    uv_unref((uv_handle_t *)&g_pause);
}

/* Close the guards, run until every handle is closed; -1 (and a "not ok"
 * line) when the test left handles open. */
static inline int test_loop_close(void)
{
    uv_close((uv_handle_t *)&g_guard, NULL);
    uv_close((uv_handle_t *)&g_pause, NULL);
    uv_run(L, UV_RUN_DEFAULT);
    int rc = uv_loop_close(L);
    if (rc != 0) printf("not ok - handles left open on the loop: %s\n", uv_strerror(rc));
    return rc ? -1 : 0;
}

#endif
