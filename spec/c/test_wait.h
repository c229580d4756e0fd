/* test_wait.h - awaiting events on a C test's uv loop.
 *
 *   test_wait_init();                 (after uv_loop_init(L))
 *   WAIT(cl->closed, 2000);           run the loop until the condition holds, or 2 s pass
 *   pass_time(150);                   let 150 ms of loop time pass (for behaviour about
 *                                     time itself, e.g. an age bound; never as a sync)
 *   test_wait_close();                (before the final uv_run / uv_loop_close)
 *
 * The guard timer is unref'd, so a broken test fails its checks instead of
 * hanging, and a loop with nothing left to do ends the wait at once. */
#ifndef JR_TEST_WAIT_H
#define JR_TEST_WAIT_H

#include <uv.h>

static uv_loop_t test_loop_storage;
static uv_loop_t *L = &test_loop_storage;

static uv_timer_t g_guard, g_pause;
static int g_timed_out, g_elapsed;

static void on_guard(uv_timer_t *t) { g_timed_out = 1; }
static void on_pause(uv_timer_t *t) { g_elapsed = 1; }

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

static inline void test_wait_init(void)
{
    uv_timer_init(L, &g_guard);
    uv_unref((uv_handle_t *)&g_guard);
    uv_timer_init(L, &g_pause);
    uv_unref((uv_handle_t *)&g_pause);
}

static inline void test_wait_close(void)
{
    uv_close((uv_handle_t *)&g_guard, NULL);
    uv_close((uv_handle_t *)&g_pause, NULL);
}

#endif
