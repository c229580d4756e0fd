/* test_wshub.c - the WebSocket fan-out hub (core/wshub.c) with real
 * connections: our HTTP server and ws.c on one loop, raw clients that read
 * the frames off the wire. Two hubs in one process stand for two instances;
 * a fake pub/sub bus between them delivers like Redis does (to every
 * subscriber, the publisher included). Every wait is on an event with an
 * unref'd guard timer. */
#include "http.h"
#include "mesh.h"
#include "test.h"
#include "test_loop.h"
#include "test_wsclient.h"
#include "ws.h"
#include "wsenv.h"
#include "wshub.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ------------------------------------------------------------ server + hubs */

#define MAXC 16

static struct {
    jr_http_server *srv;
    jr_ws_ctx *ws;
    int port;
    jr_ws_conn *conns[MAXC]; /* in the order they opened */
    int opened, closed;
    jr_wshub *hubs[2];
    wsc *clients[MAXC];
    int nclients;
} F;

static void on_open(jr_ws_conn *c, void *ud)
{
    if (F.opened < MAXC) F.conns[F.opened] = c;
    F.opened++;
}

static void on_message(jr_ws_conn *c, const char *data, size_t len, int is_text, void *ud) {}

/* Where the application removes a closed connection: also in the middle of
 * a fan-out walk, when ws.c closes a full connection synchronously. */
static void on_close(jr_ws_conn *c, int code, const char *reason, size_t rlen, void *ud)
{
    F.closed++;
    for (int i = 0; i < 2; i++)
        if (F.hubs[i]) jr_wshub_remove(F.hubs[i], c);
    for (int i = 0; i < F.opened && i < MAXC; i++)
        if (F.conns[i] == c) F.conns[i] = NULL;
}

static void on_request(jr_http_req *req, void *ud)
{
    if (jr_ws_adopt(F.ws, req, NULL, NULL, 0, NULL, NULL) != JR_WS_OK) jr_http_respond(req, 400, NULL, 0, "no", 2);
}

static int setup(size_t max_send_queue)
{
    memset(&F, 0, sizeof F);
    F.srv = tcp_http_listen(L, on_request, NULL);
    if (!F.srv) return 0;
    char err[256] = "";
    F.port = jr_http_server_port(F.srv);
    jr_ws_config wcfg;
    jr_ws_config_defaults(&wcfg);
    if (max_send_queue) wcfg.max_send_queue = max_send_queue;
    jr_ws_callbacks cb = {on_open, on_message, on_close, NULL};
    F.ws = jr_ws_ctx_new(L, &wcfg, &cb, err, sizeof err);
    return F.ws != NULL;
}

static void teardown(void)
{
    for (int i = 0; i < F.nclients; i++) wsc_close(F.clients[i]);
    jr_ws_ctx_free(F.ws);
    jr_http_server_free(F.srv);
    WAIT(!uv_loop_alive(L), 5000);
    CHECK(!uv_loop_alive(L));
    for (int i = 0; i < F.nclients; i++) wsc_free(F.clients[i]);
    for (int i = 0; i < 2; i++) jr_wshub_free(F.hubs[i]);
}

/* Open k clients, one at a time, so F.conns[i] is F.clients[i]'s. */
static void open_clients(int k)
{
    for (int i = 0; i < k; i++) {
        int want = F.opened + 1;
        wsc *c = wsc_start(L, F.port);
        F.clients[F.nclients++] = c;
        WAIT(F.opened == want && wsc_head(c), 3000);
        CHECK_EQ_INT(c->status, 101);
    }
}

/* The client's next frame is op/payload. */
static int next_is(wsc *c, int op, const void *payload, size_t len)
{
    int fop = -1;
    const char *d = NULL;
    size_t n = 0;
    WAIT(wsc_frame(c, &fop, &d, &n) || c->eof, 3000);
    if (fop < 0 || fop != op || n != len || (len && memcmp(d, payload, len) != 0)) {
        fprintf(stderr, "  got op %d, %zu bytes (want op %d, %zu bytes)\n", fop, n, op, len);
        return 0;
    }
    return 1;
}
#define NEXT_TEXT(c, s) CHECK(next_is((c), 1, (s), strlen(s)))

/* ------------------------------------------------------------ a fake pub/sub bus */

typedef struct {
    jr_buf msgs[16];
    int n;
    int fail;
} bus;

static int bus_publish(void *impl, const void *env, size_t len)
{
    bus *b = impl;
    if (b->fail || b->n == 16) return -1;
    jr_buf_init(&b->msgs[b->n]);
    jr_buf_append(&b->msgs[b->n++], env, len);
    return 0;
}

/* Deliver everything published to every hub, the publisher's too. */
static void bus_flush(bus *b)
{
    for (int i = 0; i < b->n; i++) {
        for (int h = 0; h < 2; h++)
            if (F.hubs[h]) CHECK(jr_wshub_deliver(F.hubs[h], b->msgs[i].data, b->msgs[i].len) >= 0);
        jr_buf_free(&b->msgs[i]);
    }
    b->n = 0;
}

static jr_wshub_counters hub_stats(int i)
{
    jr_wshub_counters c;
    jr_wshub_stats(F.hubs[i], &c);
    return c;
}

/* ------------------------------------------------------------ tests */

TEST(broadcast_reaches_every_member_once_with_one_frame)
{
    CHECK(setup(0));
    F.hubs[0] = jr_wshub_new(NULL);
    open_clients(3);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(jr_wshub_add(F.hubs[0], F.conns[i]), 1);
    jr_wshub_join(F.hubs[0], F.conns[0], "a", 1); /* in a room or not: a broadcast reaches members */
    CHECK_EQ_INT(jr_wshub_broadcast(F.hubs[0], "hello", 5, 1), 3);
    CHECK_EQ_INT(jr_wshub_broadcast(F.hubs[0], "\x00\xff", 2, 0), 3);
    for (int i = 0; i < 3; i++) {
        NEXT_TEXT(F.clients[i], "hello");
        CHECK(next_is(F.clients[i], 2, "\x00\xff", 2));
    }
    /* Removed members get nothing; an empty hub encodes nothing. */
    jr_wshub_remove(F.hubs[0], F.conns[1]);
    jr_wshub_remove(F.hubs[0], F.conns[1]); /* unknown now: harmless */
    CHECK_EQ_INT(jr_wshub_broadcast(F.hubs[0], "two", 3, 1), 2);
    NEXT_TEXT(F.clients[0], "two");
    NEXT_TEXT(F.clients[2], "two");
    CHECK_EQ_INT(jr_rooms_members(jr_wshub_rooms(F.hubs[0])), 2);
    teardown();
}

TEST(room_send_reaches_each_member_of_any_room_once)
{
    CHECK(setup(0));
    jr_wshub *h = F.hubs[0] = jr_wshub_new(NULL);
    open_clients(3);
    jr_wshub_join(h, F.conns[0], "a", 1);
    jr_wshub_join(h, F.conns[0], "b", 1);
    jr_wshub_join(h, F.conns[1], "b", 1);
    jr_wshub_join(h, F.conns[2], "c", 1);
    const char *rooms[] = {"a", "b", "nobody"};
    size_t lens[] = {1, 1, 6};
    CHECK_EQ_INT(jr_wshub_send(h, rooms, lens, 3, "ab", 2, 1), 2);
    CHECK_EQ_INT(jr_wshub_send(h, rooms + 2, lens + 2, 1, "none", 4, 1), 0);
    CHECK_EQ_INT(jr_wshub_send(h, rooms, lens, 0, "zero rooms", 10, 1), 0);
    CHECK_EQ_INT(jr_wshub_leave(h, F.conns[0], "a", 1), 1);
    CHECK_EQ_INT(jr_wshub_send(h, rooms, lens, 1, "a only", 6, 1), 0);
    /* A broadcast after: each client's frames show what it got before it. */
    CHECK_EQ_INT(jr_wshub_broadcast(h, "mark", 4, 1), 3);
    NEXT_TEXT(F.clients[0], "ab");
    NEXT_TEXT(F.clients[0], "mark");
    NEXT_TEXT(F.clients[1], "ab");
    NEXT_TEXT(F.clients[1], "mark");
    NEXT_TEXT(F.clients[2], "mark");
    CHECK_EQ_INT(jr_wshub_send(h, NULL, lens, 1, "x", 1, 1), JR_WSHUB_EINVALID);
    teardown();
}

/* Two instances through a Redis-like bus: a send on A reaches B's clients,
 * A drops its own echo, B never publishes what it delivers. */
TEST(backplane_carries_sends_to_the_other_instance)
{
    CHECK(setup(0));
    bus b = {0};
    jr_wshub_backplane bp = {bus_publish, &b};
    F.hubs[0] = jr_wshub_new(&bp);
    F.hubs[1] = jr_wshub_new(&bp);
    open_clients(3);
    jr_wshub_join(F.hubs[0], F.conns[0], "tasks", 5);
    /* Room names the original's ","/NUL framing could not carry. */
    const char odd[] = {'t', ',', '\0', 'x'};
    jr_wshub_join(F.hubs[1], F.conns[1], odd, sizeof odd);
    jr_wshub_join(F.hubs[1], F.conns[2], "tasks", 5);

    CHECK_EQ_INT(jr_wshub_broadcast(F.hubs[0], "all", 3, 1), 1); /* local: conns[0] */
    const char *rooms[] = {odd};
    size_t lens[] = {sizeof odd};
    const char bin[] = {'\0', ',', '\0'};
    CHECK_EQ_INT(jr_wshub_send(F.hubs[0], rooms, lens, 1, bin, sizeof bin, 0), 0); /* nobody here */
    CHECK_EQ_INT(b.n, 2);
    bus_flush(&b);
    NEXT_TEXT(F.clients[0], "all");
    NEXT_TEXT(F.clients[1], "all");
    NEXT_TEXT(F.clients[2], "all");
    CHECK(next_is(F.clients[1], 2, bin, sizeof bin));

    jr_wshub_counters a = hub_stats(0), bb = hub_stats(1);
    CHECK_EQ_INT(a.published, 2);
    CHECK_EQ_INT(a.own_dropped, 2); /* its echo, not sent twice */
    CHECK_EQ_INT(a.delivered, 0);
    CHECK_EQ_INT(bb.published, 0);  /* delivering never publishes */
    CHECK_EQ_INT(bb.delivered, 2);
    CHECK_EQ_INT(b.n, 0);

    /* A send on B reaches A's room member; only B's client in "tasks" and A's. */
    const char *tasks[] = {"tasks"};
    size_t tlen[] = {5};
    CHECK_EQ_INT(jr_wshub_send(F.hubs[1], tasks, tlen, 1, "deleted", 7, 1), 1);
    bus_flush(&b);
    NEXT_TEXT(F.clients[2], "deleted");
    NEXT_TEXT(F.clients[0], "deleted");
    CHECK_EQ_INT(jr_wshub_broadcast(F.hubs[1], "mark", 4, 1), 2);
    NEXT_TEXT(F.clients[1], "mark"); /* it was not in "tasks" */
    bus_flush(&b);
    teardown();
}

TEST(a_refused_publish_is_counted_and_local_clients_still_get_it)
{
    CHECK(setup(0));
    bus b = {.fail = 1};
    jr_wshub_backplane bp = {bus_publish, &b};
    F.hubs[0] = jr_wshub_new(NULL);
    open_clients(1);
    jr_wshub_add(F.hubs[0], F.conns[0]);
    jr_wshub_set_backplane(F.hubs[0], &bp);
    CHECK_EQ_INT(jr_wshub_broadcast(F.hubs[0], "local", 5, 1), 1);
    NEXT_TEXT(F.clients[0], "local");
    CHECK_EQ_INT(hub_stats(0).publish_failures, 1);
    CHECK_EQ_INT(hub_stats(0).published, 0);
    jr_wshub_set_backplane(F.hubs[0], NULL);
    CHECK_EQ_INT(jr_wshub_broadcast(F.hubs[0], "again", 5, 1), 1);
    CHECK_EQ_INT(hub_stats(0).publish_failures, 1); /* detached: not tried */
    teardown();
}

TEST(a_malformed_envelope_is_refused_and_counted)
{
    CHECK(setup(0));
    F.hubs[0] = jr_wshub_new(NULL);
    open_clients(1);
    jr_wshub_add(F.hubs[0], F.conns[0]);
    CHECK_EQ_INT(jr_wshub_deliver(F.hubs[0], "a,b\0payload", 11), JR_WSHUB_EINVALID);
    jr_buf env = JR_BUF_INIT;
    unsigned char other[JR_WSENV_ORIGIN_LEN] = {9};
    jr_wsenv_encode(&env, other, JR_WSENV_BROADCAST, 1, NULL, NULL, 0, "ok", 2);
    CHECK_EQ_INT(jr_wshub_deliver(F.hubs[0], env.data, env.len - 1), JR_WSHUB_EINVALID);
    CHECK_EQ_INT(jr_wshub_deliver(F.hubs[0], env.data, env.len), 1);
    jr_buf_free(&env);
    NEXT_TEXT(F.clients[0], "ok"); /* the first frame: nothing came of the bad ones */
    CHECK_EQ_INT(hub_stats(0).bad_envelopes, 2);
    CHECK_EQ_INT(hub_stats(0).delivered, 1);
    teardown();
}

/* Our own echo is dropped on its header: its body is not decoded (a
 * truncated one counts as our own, not as a bad envelope). */
TEST(an_own_echo_is_dropped_before_decoding)
{
    CHECK(setup(0));
    bus b = {0};
    jr_wshub_backplane bp = {bus_publish, &b};
    F.hubs[0] = jr_wshub_new(&bp);
    open_clients(1);
    jr_wshub_add(F.hubs[0], F.conns[0]);
    CHECK_EQ_INT(jr_wshub_broadcast(F.hubs[0], "mine", 4, 1), 1);
    NEXT_TEXT(F.clients[0], "mine");
    CHECK_EQ_INT(b.n, 1);
    CHECK_EQ_INT(jr_wshub_deliver(F.hubs[0], b.msgs[0].data, b.msgs[0].len - 1), 0);
    CHECK_EQ_INT(jr_wshub_deliver(F.hubs[0], b.msgs[0].data, b.msgs[0].len), 0);
    jr_buf_free(&b.msgs[0]);
    CHECK_EQ_INT(hub_stats(0).own_dropped, 2);
    CHECK_EQ_INT(hub_stats(0).bad_envelopes, 0);
    CHECK_EQ_INT(hub_stats(0).delivered, 0);
    teardown();
}

/* One recipient's full queue closes that connection (1008) in the middle of
 * the walk; everyone else still gets the message, now and later. */
TEST(a_full_recipient_does_not_stop_the_fan_out)
{
    size_t limit = 64 * 1024;
    CHECK(setup(limit));
    jr_wshub *h = F.hubs[0] = jr_wshub_new(NULL);
    open_clients(5);
    for (int i = 0; i < 5; i++) jr_wshub_join(h, F.conns[i], "r", 1);
    /* Client 2 does not read: fill the kernel's socket buffers until ws.c
     * has to queue, then its queue to just under the limit. */
    static char fill[64 * 1024]; /* = limit */
    for (int k = 0; k < 4096 && jr_ws_conn_queued(F.conns[2]) == 0; k++)
        CHECK_EQ_INT(jr_ws_send(F.conns[2], fill, 16 * 1024, 0), JR_WS_OK);
    CHECK(jr_ws_conn_queued(F.conns[2]) > 0);
    size_t room = limit - jr_ws_conn_queued(F.conns[2]);
    CHECK(room > 16);
    CHECK_EQ_INT(jr_ws_send(F.conns[2], fill, room - 16, 0), JR_WS_OK);
    const char *rooms[] = {"r"};
    size_t lens[] = {1};
    CHECK_EQ_INT(jr_wshub_send(h, rooms, lens, 1, "0123456789abcdef", 16, 1), 4);
    CHECK_EQ_INT(hub_stats(0).send_failures, 1);
    /* ws.c waits for the peer's close answer; this client just goes. */
    wsc_close(F.clients[2]);
    WAIT(F.closed == 1, 5000);
    CHECK_EQ_INT(F.closed, 1);
    CHECK_EQ_INT(jr_rooms_size(jr_wshub_rooms(h), "r", 1), 4); /* removed on close */
    CHECK_EQ_INT(jr_wshub_send(h, rooms, lens, 1, "later", 5, 1), 4);
    for (int i = 0; i < 5; i++) {
        if (i == 2) continue;
        NEXT_TEXT(F.clients[i], "0123456789abcdef");
        NEXT_TEXT(F.clients[i], "later");
    }
    teardown();
}

/* The wiring the server does with --workers N and no Redis: each hub
 * publishes into its worker's mesh, each mesh delivers into its hub. */
static int mesh_publish(void *impl, const void *env, size_t len) { return jr_mesh_publish(impl, env, len); }
static void mesh_deliver(const char *data, size_t len, void *ud) { jr_wshub_deliver(ud, data, len); }

TEST(two_workers_bridged_by_the_mesh)
{
    CHECK(setup(0));
    char ns[64], err[256] = "";
    snprintf(ns, sizeof ns, "jrtest-%d-hub", (int)getpid());
    jr_mesh *m[2];
    for (int i = 0; i < 2; i++) {
        F.hubs[i] = jr_wshub_new(NULL);
        jr_mesh_callbacks cb = {mesh_deliver, F.hubs[i]};
        m[i] = jr_mesh_new(L, ns, i, 2, NULL, &cb, err, sizeof err);
        CHECK(m[i] != NULL);
        jr_wshub_backplane bp = {mesh_publish, m[i]};
        jr_wshub_set_backplane(F.hubs[i], &bp);
    }
    open_clients(2);
    jr_wshub_join(F.hubs[0], F.conns[0], "tasks", 5);
    jr_wshub_join(F.hubs[1], F.conns[1], "tasks", 5);
    const char *rooms[] = {"tasks"};
    size_t lens[] = {5};
    CHECK_EQ_INT(jr_wshub_send(F.hubs[1], rooms, lens, 1, "Task 7 deleted", 14, 1), 1);
    NEXT_TEXT(F.clients[1], "Task 7 deleted");
    NEXT_TEXT(F.clients[0], "Task 7 deleted");
    CHECK_EQ_INT(hub_stats(0).delivered, 1);
    for (int i = 0; i < 2; i++) jr_mesh_free(m[i]);
    teardown();
}

int main(void)
{
    test_loop_init();
    RUN(broadcast_reaches_every_member_once_with_one_frame);
    RUN(room_send_reaches_each_member_of_any_room_once);
    RUN(backplane_carries_sends_to_the_other_instance);
    RUN(a_refused_publish_is_counted_and_local_clients_still_get_it);
    RUN(a_malformed_envelope_is_refused_and_counted);
    RUN(an_own_echo_is_dropped_before_decoding);
    RUN(a_full_recipient_does_not_stop_the_fan_out);
    RUN(two_workers_bridged_by_the_mesh);
    if (test_loop_close() != 0) return 1;
    return test_summary();
}
