/* test_wsbackplane.c - the glue between a hub and its backplane
 * (core/wsbackplane.c): spec parsing, and two hubs (two instances) joined
 * through the run's real Redis. Fan-out to real connections is test_wshub's;
 * the mesh between forked workers is test_mesh's; whole servers sharing
 * Redis or workers are spec/integration/websocket_backplane_spec.lua's. */
#include "log.h"
#include "test.h"
#include "test_loop.h"
#include "test_redis_service.h"
#include "wsbackplane.h"
#include "wshub.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char g_url[128];

static jr_wshub_counters hub_counters(jr_wshub *h)
{
    jr_wshub_counters c;
    jr_wshub_stats(h, &c);
    return c;
}

static jr_wsbp_counters bp_counters(jr_wsbp *bp)
{
    jr_wsbp_counters c;
    jr_wsbp_stats(bp, &c);
    return c;
}

TEST(bad_specs_are_refused_with_what_is_wrong)
{
    jr_wshub *h = jr_wshub_new(NULL);
    char err[256];
    err[0] = '\0';
    CHECK(jr_wsbp_start(L, h, "amqp://x", "c", err, sizeof err) == NULL);
    CHECK(strstr(err, "amqp://x") != NULL);
    err[0] = '\0';
    CHECK(jr_wsbp_start(L, h, "redis://127.0.0.1:1", NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "channel") != NULL);
    err[0] = '\0';
    CHECK(jr_wsbp_start(L, h, "redis://127.0.0.1:notaport", "c", err, sizeof err) == NULL);
    CHECK(strstr(err, "port") != NULL);
    /* a password in a mistyped or unsupported URL is not repeated */
    err[0] = '\0';
    CHECK(jr_wsbp_start(L, h, "Redis://:hunter2@127.0.0.1:6379/0", "c", err, sizeof err) == NULL);
    CHECK(strstr(err, "hunter2") == NULL);
    CHECK(strstr(err, "Redis://***@127.0.0.1:6379/0") != NULL);
    err[0] = '\0';
    CHECK(jr_wsbp_start(L, h, "rediss://:hunter2@127.0.0.1:6379/0", "c", err, sizeof err) == NULL);
    CHECK(strstr(err, "hunter2") == NULL);
    CHECK(strstr(err, "TLS") != NULL);
    jr_wshub_free(h);
}

/* One process that is not a prefork worker has nobody to tell: "local" and
 * "none" publish nothing and the hub's sends stay local. */
TEST(none_and_local_in_one_process_publish_nothing)
{
    const char *specs[] = {"none", "local", "", NULL};
    for (int i = 0; i < 4; i++) {
        jr_wshub *h = jr_wshub_new(NULL);
        char err[256] = "";
        jr_wsbp *bp = jr_wsbp_start(L, h, specs[i], NULL, err, sizeof err);
        CHECK(bp != NULL);
        if (!bp) continue;
        CHECK_EQ_STR(bp_counters(bp).kind, i == 1 ? "local" : "none");
        CHECK_EQ_INT(jr_wshub_broadcast(h, "x", 1, 1), 0);
        CHECK_EQ_INT(hub_counters(h).published, 0);
        jr_wsbp_free(bp);
        jr_wshub_free(h);
    }
}

/* Two instances on one channel: what one sends reaches the other once, the
 * echo of its own is dropped; an instance on another channel hears nothing. */
TEST(two_instances_through_redis)
{
    char channel[64], other[64], err[256] = "";
    snprintf(channel, sizeof channel, "jr-test-ws-%d", (int)getpid());
    snprintf(other, sizeof other, "jr-test-ws-%d-other", (int)getpid());
    jr_wshub *a = jr_wshub_new(NULL), *b = jr_wshub_new(NULL), *c = jr_wshub_new(NULL);
    jr_wsbp *pa = jr_wsbp_start(L, a, g_url, channel, err, sizeof err);
    jr_wsbp *pb = jr_wsbp_start(L, b, g_url, channel, err, sizeof err);
    jr_wsbp *pc = jr_wsbp_start(L, c, g_url, other, err, sizeof err);
    CHECK(pa && pb && pc);
    if (!pa || !pb || !pc) return;
    WAIT(bp_counters(pa).up && bp_counters(pb).up && bp_counters(pc).up, 5000);
    CHECK_EQ_STR(bp_counters(pa).kind, "redis");
    CHECK(bp_counters(pa).up);

    const char *rooms[] = {"tasks"};
    size_t lens[] = {5};
    CHECK_EQ_INT(jr_wshub_send(a, rooms, lens, 1, "hello", 5, 1), 0); /* no local member */
    CHECK_EQ_INT(jr_wshub_broadcast(b, "\0bin", 4, 0), 0);
    WAIT(hub_counters(b).delivered == 1 && hub_counters(a).delivered == 1 && hub_counters(a).own_dropped == 1 &&
             hub_counters(b).own_dropped == 1,
         5000);
    CHECK_EQ_INT(hub_counters(a).published, 1);
    CHECK_EQ_INT(hub_counters(b).delivered, 1);  /* a's room send */
    CHECK_EQ_INT(hub_counters(a).delivered, 1);  /* b's broadcast */
    CHECK_EQ_INT(hub_counters(a).own_dropped, 1);
    CHECK_EQ_INT(hub_counters(b).own_dropped, 1);
    CHECK_EQ_INT(bp_counters(pb).received, 2);   /* its own echo + a's */
    /* c listens elsewhere: a marker sent on c's channel arrives, nothing before it. */
    CHECK_EQ_INT(jr_wshub_broadcast(c, "marker", 6, 1), 0);
    WAIT(hub_counters(c).own_dropped == 1, 5000);
    CHECK_EQ_INT(hub_counters(c).own_dropped, 1);
    CHECK_EQ_INT(hub_counters(c).delivered, 0);

    jr_wsbp_free(pa);
    jr_wsbp_free(pb);
    jr_wsbp_free(pc);
    jr_wshub_free(a);
    jr_wshub_free(b);
    jr_wshub_free(c);
    WAIT(!uv_loop_alive(L), 5000);
}

int main(void)
{
    jr_log_set_level(JR_LOG_ERROR);
    test_loop_init();
    if (test_redis_shared(g_url, sizeof g_url) != 0) return 1;
    RUN(bad_specs_are_refused_with_what_is_wrong);
    RUN(none_and_local_in_one_process_publish_nothing);
    RUN(two_instances_through_redis);
    test_redis_shared_done();
    if (test_loop_close() != 0) return 1;
    return test_summary();
}
