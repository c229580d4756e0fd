/* test_loop.h - the one uv loop of a C test and WAIT, which runs it until a
 * condition holds. Every wait has an unref'd guard timer, so a broken test
 * fails (the condition is false afterwards) instead of hanging, and the
 * guard never keeps the loop alive by itself.
 *   int main(void) { test_loop_init(); RUN(...); test_loop_close(); ... } */
#ifndef JR_TEST_LOOP_H
#define JR_TEST_LOOP_H

#include <uv.h>

static uv_loop_t loop_storage;
static uv_loop_t *L = &loop_storage;

static uv_timer_t g_guard;
static int g_timed_out;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    g_timed_out = 1;
}

#define WAIT(cond, ms)                                                              \
    do {                                                                            \
        g_timed_out = 0;                                                            \
        uv_timer_start(&g_guard, on_guard, (ms), 0);                                \
        while (!(cond) && !g_timed_out && uv_loop_alive(L)) uv_run(L, UV_RUN_ONCE); \
        uv_timer_stop(&g_guard);                                                    \
    } while (0)

static void test_loop_init(void)
{
    uv_loop_init(L);
    uv_timer_init(L, &g_guard);
    uv_unref((uv_handle_t *)&g_guard);
}

static void test_loop_close(void)
{
    uv_close((uv_handle_t *)&g_guard, NULL);
    uv_run(L, UV_RUN_DEFAULT);
    uv_loop_close(L);
}

#endif
