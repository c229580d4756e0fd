/* test_redis.c - core/redis.c against real redis-servers.
 *
 * The shared test Redis comes from the ctest fixture ($JR_TEST_SERVICES/
 * redis.url, started once per run by spec/services/redis.sh); run by hand
 * without it, the test starts its own through the same script. Tests that
 * stop, restart or password-protect a server start a private one (the
 * shared one may serve other tests). Faults a real server does not produce
 * (a peer that stops answering) come from a TCP proxy in this process whose
 * server-to-client direction can be cut. Every wait is on an event, with an
 * unref'd guard timer so a broken test fails instead of hanging; the script
 * runs block the loop on purpose (the client must cope with a loop that
 * stalls). */
#include "buf.h"
#include "redis.h"
#include "redis_url.h"
#include "test.h"
#include "test_tcp.h"
#include "test_loop.h"
#include "test_proxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "test_redis_service.h"

static char g_shared_url[128];

/* ------------------------------------------------------------ the client's callbacks */

#define MAXM 32

typedef struct {
    int ups, downs;
    char why[512];
    int nmsgs;
    jr_buf ch[MAXM], msg[MAXM];
    jr_redis *free_me_on_message; /* jr_redis_free from inside on_message */
} events;

static events E;

static void reset_events(void)
{
    for (int i = 0; i < MAXM; i++) {
        jr_buf_free(&E.ch[i]);
        jr_buf_free(&E.msg[i]);
    }
    memset(&E, 0, sizeof E);
}

static void on_message(const char *ch, size_t clen, const char *data, size_t len, void *ud)
{
    if (E.nmsgs < MAXM) {
        jr_buf_append(&E.ch[E.nmsgs], ch, clen);
        jr_buf_append(&E.msg[E.nmsgs], data, len);
    }
    E.nmsgs++;
    if (E.free_me_on_message) {
        jr_redis *r = E.free_me_on_message;
        E.free_me_on_message = NULL;
        jr_redis_free(r);
    }
}

static void on_state(int up, const char *why, void *ud)
{
    if (up) E.ups++;
    else {
        E.downs++;
        snprintf(E.why, sizeof E.why, "%s", why ? why : "(null)");
    }
}

static const jr_redis_callbacks CB = {on_message, on_state, NULL};

static jr_redis_options fast_opts(void)
{
    jr_redis_options o;
    jr_redis_options_defaults(&o);
    o.reconnect_initial_ms = 20;
    o.reconnect_max_ms = 200;
    o.connect_timeout_ms = 2000;
    o.health_interval_ms = 0;
    return o;
}

/* A new client with fresh events (not waiting for it to be up). */
static jr_redis *client(const char *url, const jr_redis_options *o)
{
    char err[256] = "";
    reset_events();
    jr_redis *r = jr_redis_new(L, url, o, &CB, err, sizeof err);
    if (!r) fprintf(stderr, "  jr_redis_new(%s): %s\n", url, err);
    return r;
}

static jr_redis *connect_up(const char *url, const jr_redis_options *o)
{
    jr_redis *r = client(url, o);
    if (!r) return NULL;
    WAIT(jr_redis_is_up(r), 5000);
    if (!jr_redis_is_up(r)) fprintf(stderr, "  not up: %s\n", jr_redis_last_error(r));
    return r;
}

/* ------------------------------------------------------------ command callbacks */

typedef struct {
    int calls, status, type;
    long long integer;
    jr_buf str;
    size_t count;
} answer;

static void on_reply(jr_redis *r, int status, const jr_redis_reply *rp, void *ud)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
    if (!rp) return;
    a->type = jr_redis_reply_type(rp);
    a->integer = jr_redis_reply_integer(rp);
    a->count = jr_redis_reply_count(rp);
    size_t n = 0;
    const char *s = jr_redis_reply_str(rp, &n);
    jr_buf_reset(&a->str);
    if (s) jr_buf_append(&a->str, s, n);
}

static int command(jr_redis *r, answer *a, unsigned timeout_ms, int argc, ...)
{
    const char *argv[8];
    size_t lens[8];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = va_arg(ap, size_t);
    }
    va_end(ap);
    return jr_redis_command(r, argc, argv, lens, timeout_ms, on_reply, a);
}
#define S(lit) lit, sizeof(lit) - 1

/* A client through the proxy, up, with the proxy passing everything. */
static jr_redis *through_proxy(const jr_redis_options *o)
{
    char url[64];
    g_blackhole = 0;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", g_proxy_port);
    jr_redis *r = connect_up(url, o);
    CHECK(r && jr_redis_is_up(r));
    return r;
}

/* ------------------------------------------------------------ tests */

static int new_fails_with(const char *url, const char *want)
{
    char err[256] = "";
    jr_redis *r = jr_redis_new(L, url, NULL, &CB, err, sizeof err);
    if (r) {
        jr_redis_free(r);
        fprintf(stderr, "  %s was accepted\n", url);
        return 0;
    }
    if (!strstr(err, want)) {
        fprintf(stderr, "  %s: \"%s\" lacks \"%s\"\n", url, err, want);
        return 0;
    }
    if (strstr(err, "hunter2")) {
        fprintf(stderr, "  %s: the message repeats the password\n", url);
        return 0;
    }
    return 1;
}

TEST(bad_urls_are_refused_with_what_is_wrong)
{
    CHECK(new_fails_with(NULL, "empty"));
    CHECK(new_fails_with("", "empty"));
    CHECK(new_fails_with("http://x", "must start with redis://"));
    CHECK(new_fails_with("rediss://x", "TLS"));
    CHECK(new_fails_with("redis://", "no host"));
    CHECK(new_fails_with("redis://:6379", "no host"));
    CHECK(new_fails_with("redis://h:", "empty port"));
    CHECK(new_fails_with("redis://h:0", "port must be a number from 1 to 65535"));
    CHECK(new_fails_with("redis://h:65536", "port must be a number from 1 to 65535"));
    CHECK(new_fails_with("redis://h:12ab", "port must be a number"));
    CHECK(new_fails_with("redis://h/x", "database must be a number"));
    CHECK(new_fails_with("redis://h/1/2", "database must be a number"));
    CHECK(new_fails_with("redis://h?db=1", "query strings"));
    CHECK(new_fails_with("redis://hunter2@h", "needs a ':' before the password"));
    CHECK(new_fails_with("redis://:@h", "empty password"));
    CHECK(new_fails_with("redis://:hun%2xter2@h", "bad percent-escape in the password"));
    CHECK(new_fails_with("redis://:hunter2%00@h", "bad percent-escape"));
    CHECK(new_fails_with("redis://:hun/ter2@h", "must be percent-encoded"));
    CHECK(new_fails_with("redis://:hunter2@h:99999", "port must be"));
    CHECK(new_fails_with("redis://h$st", "not allowed in a host name ('$')"));
    CHECK(new_fails_with("redis://[::1", "'[' without ']'"));
    CHECK(new_fails_with("redis://[::1]x", "unexpected characters after the host"));
    jr_redis_options o = fast_opts();
    o.reconnect_max_ms = 1;
    char err[256];
    CHECK(jr_redis_new(L, "redis://h", &o, &CB, err, sizeof err) == NULL);
    CHECK(strstr(err, "reconnect_max_ms") != NULL);
}

TEST(good_urls_parse)
{
    jr_redis_url u;
    char err[128];
    CHECK_EQ_INT(jr_redis_url_parse("redis://h", &u, err, sizeof err), 0);
    CHECK_EQ_STR(u.host, "h");
    CHECK_EQ_INT(u.port, 6379);
    CHECK_EQ_INT(u.db, 0);
    CHECK(u.user == NULL && u.password == NULL);
    jr_redis_url_free(&u);
    CHECK_EQ_INT(jr_redis_url_parse("redis://us%40r:p@ss%2F:x@[::1]:7000/3", &u, err, sizeof err), 0);
    CHECK_EQ_STR(u.host, "::1");
    CHECK_EQ_INT(u.port, 7000);
    CHECK_EQ_INT(u.db, 3);
    CHECK_EQ_STR(u.user, "us@r");
    CHECK_EQ_STR(u.password, "p@ss/:x");
    jr_redis_url_free(&u);
    CHECK_EQ_INT(jr_redis_url_parse("redis://:pw@redis.example-1.internal/", &u, err, sizeof err), 0);
    CHECK(u.user == NULL);
    CHECK_EQ_STR(u.password, "pw");
    CHECK_EQ_STR(u.host, "redis.example-1.internal");
    jr_redis_url_free(&u);
}

TEST(publish_subscribe_round_trip_is_binary_safe)
{
    jr_redis_options o = fast_opts();
    jr_redis *r = client(g_shared_url, &o);
    CHECK(r != NULL);
    if (!r) return;
    static const char ch[] = "ch\0\r\n\xff";
    static const char other[] = "other";
    CHECK_EQ_INT(jr_redis_subscribe(r, ch, sizeof ch - 1), 0);
    WAIT(E.ups == 1, 5000);
    CHECK_EQ_INT(E.ups, 1);
    CHECK_EQ_INT(jr_redis_subscribe(r, other, 5), 0); /* while up: sent at once */
    CHECK_EQ_INT(jr_redis_subscribe(r, other, 5), 0); /* twice is a no-op */

    static const char payload[] = "a\0b\r\n*1\r\n$3\r\n";
    CHECK_EQ_INT(jr_redis_publish(r, ch, sizeof ch - 1, payload, sizeof payload - 1), 0);
    WAIT(E.nmsgs == 1, 5000);
    CHECK_EQ_INT(E.nmsgs, 1);
    CHECK(E.ch[0].len == sizeof ch - 1 && memcmp(E.ch[0].data, ch, sizeof ch - 1) == 0);
    CHECK(E.msg[0].len == sizeof payload - 1 && memcmp(E.msg[0].data, payload, sizeof payload - 1) == 0);

    size_t big = 1u << 20;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++) data[i] = (char)(i * 7 + (i >> 9));
    CHECK_EQ_INT(jr_redis_publish(r, other, 5, data, big), 0);
    WAIT(E.nmsgs == 2, 10000);
    CHECK_EQ_INT(E.nmsgs, 2);
    CHECK(E.msg[1].len == big && memcmp(E.msg[1].data, data, big) == 0);
    CHECK_EQ_MEM(E.ch[1].data, E.ch[1].len, "other");
    free(data);

    /* unsubscribed: nothing more for ch; `other`, published after, proves
     * the ch message had its chance to arrive first (one connection) */
    CHECK_EQ_INT(jr_redis_unsubscribe(r, ch, sizeof ch - 1), 0);
    CHECK_EQ_INT(jr_redis_publish(r, ch, sizeof ch - 1, S("lost")), 0);
    CHECK_EQ_INT(jr_redis_publish(r, other, 5, S("last")), 0);
    WAIT(E.nmsgs == 3, 5000);
    CHECK_EQ_INT(E.nmsgs, 3);
    CHECK_EQ_MEM(E.msg[2].data, E.msg[2].len, "last");

    jr_redis_stats st;
    WAIT((jr_redis_get_stats(r, &st), st.published == 4), 5000);
    CHECK_EQ_INT(st.published, 4);
    CHECK_EQ_INT(st.dropped, 0);
    CHECK_EQ_INT(st.reconnects, 0);
    jr_redis_free(r);
    CHECK_EQ_INT(E.downs, 0); /* free is not an outage */
}

TEST(commands_get_replies)
{
    jr_redis_options o = fast_opts();
    jr_redis *r = client(g_shared_url, &o);
    CHECK(r != NULL);
    if (!r) return;
    answer a = {0};
    /* not connected yet: refused at once, no callback */
    CHECK_EQ_INT(command(r, &a, 0, 1, S("PING")), JR_REDIS_EDISCONNECTED);
    WAIT(jr_redis_is_up(r), 5000);
    CHECK_EQ_INT(command(r, &a, 1000, 3, S("SET"), S("jr:test:k"), S("v\0\r\nx")), 0);
    WAIT(a.calls == 1, 5000);
    CHECK_EQ_INT(a.status, JR_REDIS_OK);
    CHECK_EQ_INT(a.type, JR_REDIS_REPLY_STATUS);
    CHECK_EQ_MEM(a.str.data, a.str.len, "OK");
    CHECK_EQ_INT(command(r, &a, 1000, 2, S("GET"), S("jr:test:k")), 0);
    WAIT(a.calls == 2, 5000);
    CHECK_EQ_INT(a.type, JR_REDIS_REPLY_STRING);
    CHECK(a.str.len == 5 && memcmp(a.str.data, "v\0\r\nx", 5) == 0);
    CHECK_EQ_INT(command(r, &a, 0, 2, S("GET"), S("jr:test:none")), 0);
    WAIT(a.calls == 3, 5000);
    CHECK_EQ_INT(a.type, JR_REDIS_REPLY_NIL);
    CHECK_EQ_INT(command(r, &a, 1000, 3, S("INCRBY"), S("jr:test:n"), S("41")), 0);
    WAIT(a.calls == 4, 5000);
    CHECK_EQ_INT(a.type, JR_REDIS_REPLY_INTEGER);
    CHECK(a.integer >= 41);
    CHECK_EQ_INT(command(r, &a, 1000, 2, S("INCR"), S("jr:test:k")), 0);
    WAIT(a.calls == 5, 5000);
    CHECK_EQ_INT(a.status, JR_REDIS_OK);
    CHECK_EQ_INT(a.type, JR_REDIS_REPLY_ERROR);
    CHECK(strstr(a.str.data ? a.str.data : "", "not an integer") != NULL);
    CHECK_EQ_INT(command(r, &a, 1000, 5, S("RPUSH"), S("jr:test:l"), S("a"), S(""), S("c")), 0);
    CHECK_EQ_INT(command(r, &a, 1000, 4, S("LRANGE"), S("jr:test:l"), S("0"), S("-1")), 0);
    WAIT(a.calls == 7, 5000);
    CHECK_EQ_INT(a.type, JR_REDIS_REPLY_ARRAY);
    CHECK(a.count >= 3);
    CHECK_EQ_INT(command(r, &a, 1000, 4, S("DEL"), S("jr:test:k"), S("jr:test:n"), S("jr:test:l")), 0);
    WAIT(a.calls == 8, 5000);
    /* commands that would break hiredis's view of the connection */
    CHECK_EQ_INT(command(r, &a, 0, 2, S("subscribe"), S("x")), JR_REDIS_EINVALID);
    CHECK_EQ_INT(command(r, &a, 0, 1, S("MONITOR")), JR_REDIS_EINVALID);
    CHECK_EQ_INT(command(r, &a, 0, 2, S("HELLO"), S("3")), JR_REDIS_EINVALID);
    CHECK_EQ_INT(jr_redis_command(r, 0, NULL, NULL, 0, on_reply, &a), JR_REDIS_EINVALID);
    CHECK_EQ_INT(a.calls, 8);
    jr_redis_free(r);
    CHECK_EQ_INT(command(NULL, &a, 0, 1, S("PING")), JR_REDIS_ECLOSED);
    jr_buf_free(&a.str);
    CHECK_EQ_STR(jr_redis_code_name(JR_REDIS_ETIMEOUT), "timeout");
    CHECK_EQ_STR(jr_redis_code_name(JR_REDIS_EDISCONNECTED), "disconnected");
}

TEST(a_silent_server_times_commands_out_and_free_closes_the_rest)
{
    jr_redis_options o = fast_opts();
    jr_redis *r = through_proxy(&o);
    if (!r) return;
    g_blackhole = 1;
    answer t = {0}, p[3] = {{0}};
    CHECK_EQ_INT(command(r, &t, 50, 1, S("PING")), 0);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(command(r, &p[i], i == 2 ? 60000 : 0, 1, S("PING")), 0);
    WAIT(t.calls == 1, 5000);
    CHECK_EQ_INT(t.calls, 1);
    CHECK_EQ_INT(t.status, JR_REDIS_ETIMEOUT);
    CHECK_EQ_INT(p[0].calls + p[1].calls + p[2].calls, 0);
    jr_redis_free(r);
    /* every pending command is told, once, before free returns */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(p[i].calls, 1);
        CHECK_EQ_INT(p[i].status, JR_REDIS_ECLOSED);
    }
    CHECK_EQ_INT(t.calls, 1);
    WAIT(g_proxy_conns == 0, 5000); /* the client closed its connections */
    CHECK_EQ_INT(g_proxy_conns, 0);
    CHECK_EQ_INT(t.calls + p[0].calls + p[1].calls + p[2].calls, 4);
    g_blackhole = 0;
}

/* Up but silent (the connection stays): publishes awaiting an answer are
 * bounded by max_pending_bytes; the rest is dropped and counted, and the
 * bound frees up as answers come (here: when the connection goes). */
TEST(a_silent_server_bounds_unanswered_publishes)
{
    jr_redis_options o = fast_opts();
    o.max_pending_bytes = 1000;
    o.health_interval_ms = 0; /* keep the silent connection: the bound is what is tested */
    jr_redis *r = through_proxy(&o);
    if (!r) return;
    g_blackhole = 1;
    char payload[96];
    memset(payload, 'p', sizeof payload);
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(jr_redis_publish(r, "ch", 2, payload, sizeof payload), 0);
    jr_redis_stats st;
    jr_redis_get_stats(r, &st);
    CHECK_EQ_INT(st.dropped, 10); /* 10 x (2 + 96) bytes fit in 1000 */
    CHECK_EQ_INT(st.published, 0);
    jr_redis_free(r);
    WAIT(g_proxy_conns == 0, 5000);
    g_blackhole = 0;
}

TEST(the_health_probe_drops_a_connection_that_went_silent)
{
    jr_redis_options o = fast_opts();
    o.health_interval_ms = 100;
    jr_redis *r = through_proxy(&o);
    if (!r) return;
    CHECK_EQ_INT(jr_redis_subscribe(r, S("hp")), 0);
    g_blackhole = 1;
    answer a = {0};
    CHECK_EQ_INT(command(r, &a, 0, 1, S("PING")), 0);
    WAIT(E.downs == 1, 5000);
    CHECK_EQ_INT(E.downs, 1);
    CHECK(strstr(E.why, "no answer to the health probe") != NULL);
    CHECK_EQ_INT(a.calls, 1);
    CHECK_EQ_INT(a.status, JR_REDIS_EDISCONNECTED);
    g_blackhole = 0;
    WAIT(E.ups == 2, 5000);
    CHECK_EQ_INT(E.ups, 2);
    jr_redis_stats st;
    jr_redis_get_stats(r, &st);
    CHECK_EQ_INT(st.reconnects, 1);
    /* resubscribed through the new connections */
    CHECK_EQ_INT(jr_redis_publish(r, S("hp"), S("again")), 0);
    WAIT(E.nmsgs == 1, 5000);
    CHECK_EQ_MEM(E.msg[0].data, E.msg[0].len, "again");
    jr_redis_free(r);
    jr_buf_free(&a.str);
}

TEST(auth_and_select_are_checked_with_clear_messages)
{
    char dir[64], url[160];
    int port = private_start(dir, sizeof dir, "--requirepass 'pa ss'");
    CHECK(port > 0);
    if (port <= 0) return;
    jr_redis_options o = fast_opts();
    struct {
        const char *fmt, *want;
    } bad[] = {
        {"redis://:wrong@127.0.0.1:%d", "AUTH failed on 127.0.0.1:"},
        {"redis://:wrong@127.0.0.1:%d", "WRONGPASS"},
        {"redis://127.0.0.1:%d", "NOAUTH"},
        {"redis://:pa%%20ss@127.0.0.1:%d/999", "SELECT failed on 127.0.0.1:"},
        {"redis://nobody:pa%%20ss@127.0.0.1:%d", "WRONGPASS"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reset_events();
        snprintf(url, sizeof url, bad[i].fmt, port);
        jr_redis *r = client(url, &o);
        WAIT(E.downs == 1, 5000);
        CHECK_EQ_INT(E.downs, 1);
        if (!strstr(E.why, bad[i].want)) {
            fprintf(stderr, "  %s: \"%s\" lacks \"%s\"\n", url, E.why, bad[i].want);
            CHECK(0);
        }
        CHECK(strstr(E.why, "pa ss") == NULL);
        CHECK_EQ_INT(jr_redis_last_failure(r), JR_REDIS_EREFUSED);
        /* retried (backoff), silently: one report per outage */
        answer a = {0};
        CHECK_EQ_INT(command(r, &a, 0, 1, S("PING")), JR_REDIS_EDISCONNECTED);
        jr_redis_free(r);
    }
    reset_events();
    snprintf(url, sizeof url, "redis://default:pa%%20ss@127.0.0.1:%d/2", port);
    jr_redis *r = connect_up(url, &o);
    CHECK(r && jr_redis_is_up(r));
    answer a = {0};
    if (r) {
        CHECK_EQ_INT(command(r, &a, 1000, 1, S("PING")), 0);
        WAIT(a.calls == 1, 5000);
        CHECK_EQ_MEM(a.str.data, a.str.len, "PONG");
        jr_redis_free(r);
    }
    jr_buf_free(&a.str);
    private_stop(dir);
}

TEST(an_outage_queues_publishes_within_bounds_and_resubscribes)
{
    reset_events();
    char dir[64], url[160];
    int port = private_start(dir, sizeof dir, "--requirepass secret");
    CHECK(port > 0);
    if (port <= 0) return;
    snprintf(url, sizeof url, "redis://:secret@127.0.0.1:%d/1", port);
    jr_redis_options o = fast_opts();
    o.max_pending_bytes = 100; /* five of the 20-byte publishes below */
    o.max_pending_ms = 60000;
    jr_redis *r = client(url, &o);
    CHECK_EQ_INT(jr_redis_subscribe(r, S("chan")), 0);
    WAIT(E.ups == 1, 5000);
    CHECK_EQ_INT(jr_redis_publish(r, S("chan"), S("before the outage")), 0);
    WAIT(E.nmsgs == 1, 5000);
    CHECK_EQ_INT(E.nmsgs, 1);

    CHECK_EQ_INT(sh("stop", dir, NULL), 0);
    WAIT(E.downs == 1, 5000);
    CHECK_EQ_INT(E.downs, 1);
    CHECK(strstr(E.why, "lost") != NULL);
    CHECK(!jr_redis_is_up(r));
    for (int i = 0; i < 10; i++) {
        char m[17];
        snprintf(m, sizeof m, "queued message %d", i);
        CHECK_EQ_INT(jr_redis_publish(r, S("chan"), m, 16), 0);
    }
    char huge[200] = {0};
    CHECK_EQ_INT(jr_redis_publish(r, S("chan"), huge, sizeof huge), 0); /* never fits */
    jr_redis_stats st;
    jr_redis_get_stats(r, &st);
    CHECK_EQ_INT(st.pending, 5);
    CHECK_EQ_INT(st.pending_bytes, 100);
    CHECK_EQ_INT(st.dropped, 6);

    CHECK_EQ_INT(sh("restart", dir, NULL), 0);
    WAIT(E.ups == 2 && E.nmsgs == 6, 10000);
    CHECK_EQ_INT(E.ups, 2);
    CHECK_EQ_INT(E.downs, 1); /* the refused attempts during the outage were not reported */
    CHECK_EQ_INT(E.nmsgs, 6);
    for (int i = 1; i < 6 && i < E.nmsgs; i++) {
        char m[17];
        snprintf(m, sizeof m, "queued message %d", i + 4);
        CHECK_EQ_MEM(E.msg[i].data, E.msg[i].len, m);
    }
    WAIT((jr_redis_get_stats(r, &st), st.published == 6), 5000);
    CHECK_EQ_INT(st.published, 6);
    CHECK_EQ_INT(st.pending, 0);
    CHECK_EQ_INT(st.reconnects, 1);
    jr_redis_free(r);
    private_stop(dir);
}

TEST(queued_publishes_expire_and_the_first_failure_is_reported_once)
{
    reset_events();
    char url[64];
    snprintf(url, sizeof url, "redis://localhost:%d", dead_port());
    jr_redis_options o = fast_opts();
    o.max_pending_ms = 100;
    jr_redis *r = client(url, &o);
    CHECK(r != NULL);
    if (!r) return;
    WAIT(E.downs == 1, 5000);
    CHECK(strstr(E.why, "cannot connect to localhost:") != NULL);
    CHECK(strstr(E.why, "refused") != NULL);
    CHECK_EQ_INT(jr_redis_publish(r, S("c"), S("old")), 0);
    pass_time(150); /* several refused attempts (backoff from 20 ms) */
    CHECK_EQ_INT(E.downs, 1);
    CHECK_EQ_INT(jr_redis_publish(r, S("c"), S("new")), 0);
    jr_redis_stats st;
    jr_redis_get_stats(r, &st);
    CHECK_EQ_INT(st.dropped, 1);
    CHECK_EQ_INT(st.pending, 1);
    jr_redis_free(r);
}

static int g_free_cb_calls;

static void free_in_reply(jr_redis *r, int status, const jr_redis_reply *rp, void *ud)
{
    g_free_cb_calls++;
    jr_redis_free(r);
}

TEST(free_from_inside_callbacks)
{
    jr_redis_options o = fast_opts();
    jr_redis *r = client(g_shared_url, &o); /* freed from on_message */
    CHECK(r != NULL);
    if (!r) return;
    jr_redis_subscribe(r, S("freeme"));
    WAIT(E.ups == 1, 5000);
    E.free_me_on_message = r;
    jr_redis_publish(r, S("freeme"), S("1"));
    jr_redis_publish(r, S("freeme"), S("2"));
    WAIT(E.nmsgs >= 1, 5000);
    CHECK_EQ_INT(E.nmsgs, 1);
    /* from a command callback, with another command pending */
    reset_events();
    r = connect_up(g_shared_url, &o);
    CHECK(r != NULL);
    if (!r) return;
    answer a = {0};
    const char *argv[1] = {"PING"};
    size_t len[1] = {4};
    g_free_cb_calls = 0;
    CHECK_EQ_INT(jr_redis_command(r, 1, argv, len, 1000, free_in_reply, NULL), 0);
    CHECK_EQ_INT(command(r, &a, 1000, 1, S("PING")), 0);
    WAIT(g_free_cb_calls == 1, 5000);
    CHECK_EQ_INT(g_free_cb_calls, 1);
    CHECK_EQ_INT(a.calls, 1);
    CHECK_EQ_INT(a.status, JR_REDIS_ECLOSED);
}

int main(void)
{
    test_loop_init();

    if (test_redis_shared(g_shared_url, sizeof g_shared_url) != 0) return 1;
    jr_redis_url u;
    if (jr_redis_url_parse(g_shared_url, &u, NULL, 0) != 0) return 1;
    proxy_start(u.port);
    jr_redis_url_free(&u);

    RUN(bad_urls_are_refused_with_what_is_wrong);
    RUN(good_urls_parse);
    RUN(publish_subscribe_round_trip_is_binary_safe);
    RUN(commands_get_replies);
    RUN(a_silent_server_times_commands_out_and_free_closes_the_rest);
    RUN(a_silent_server_bounds_unanswered_publishes);
    RUN(the_health_probe_drops_a_connection_that_went_silent);
    RUN(auth_and_select_are_checked_with_clear_messages);
    RUN(an_outage_queues_publishes_within_bounds_and_resubscribes);
    RUN(queued_publishes_expire_and_the_first_failure_is_reported_once);
    RUN(free_from_inside_callbacks);

    test_redis_shared_done();
    reset_events();
    uv_close((uv_handle_t *)&g_proxy, NULL);
    /* returns once every client's handles are closed (their memory freed) */
    if (test_loop_close() != 0) return 1;
    return test_summary();
}
