/* test_otlp.c - the OTLP/HTTP exporter (core/otlp*.c) against a real local
 * collector (test_otlp_peer.h): the envelope bytes, batching, keep-alive,
 * retries (503, 429 + Retry-After), non-retryable answers, a collector that
 * hangs, a full queue, flush on free, TLS with a CA made at test time. */
#include "otlp.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdint.h>
#include <netdb.h>
#include <zlib.h>

#include "otlp_int.h"
#include "test.h"
#include "test_otlp_peer.h"

/* ---- reading protobuf back ---- */

typedef struct {
    const unsigned char *p, *end;
} pb;

/* Next length-delimited field: its number, and its bytes in *out. 0 at the end, -1 on bad input. */
static int pb_next(pb *r, pb *out)
{
    if (r->p >= r->end) return 0;
    unsigned tag = *r->p++;
    if ((tag & 7) != 2) return -1;
    uint64_t len = 0;
    for (int shift = 0; r->p < r->end; shift += 7) {
        unsigned char b = *r->p++;
        len |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    if (len > (uint64_t)(r->end - r->p)) return -1;
    out->p = r->p;
    out->end = r->p + len;
    r->p += len;
    return (int)(tag >> 3);
}

static int pb_is(pb f, const char *s) { return (size_t)(f.end - f.p) == strlen(s) && memcmp(f.p, s, strlen(s)) == 0; }

/* The items of one Export*ServiceRequest body, checked for the resource
 * and scope test_config gives. The number of items, or -1. */
static int envelope_items(const peer_request *rq, char items[][32], int max)
{
    pb req = {(const unsigned char *)rq->body, (const unsigned char *)rq->body + rq->body_len}, rs, f, sc, g;
    if (pb_next(&req, &rs) != 1 || pb_next(&req, &f) != 0) return -1; /* one resource_* */
    if (pb_next(&rs, &f) != 1 || !pb_is(f, "\x0a\x03res")) return -1; /* resource */
    if (pb_next(&rs, &sc) != 2 || pb_next(&rs, &f) != 0) return -1; /* one scope_* */
    if (pb_next(&sc, &f) != 1) return -1;                             /* scope */
    if (pb_next(&f, &g) != 1 || !pb_is(g, "jararaca")) return -1;
    if (pb_next(&f, &g) != 2 || !pb_is(g, "9.9")) return -1;
    int n = 0, k;
    while ((k = pb_next(&sc, &f)) == 2) {
        if (n < max) snprintf(items[n], 32, "%.*s", (int)(f.end - f.p), (const char *)f.p);
        n++;
    }
    return k == 0 ? n : -1;
}

/* ---- setup ---- */

static jr_otlp_header test_headers[] = {{"X-Tenant", "acme"}};

static jr_otlp_config test_config(const char *url)
{
    jr_otlp_config c;
    memset(&c, 0, sizeof c);
    c.signal[JR_OTLP_TRACES].enabled = 1;
    c.signal[JR_OTLP_TRACES].url = url;
    c.signal[JR_OTLP_TRACES].headers = test_headers;
    c.signal[JR_OTLP_TRACES].nheaders = 1;
    c.signal[JR_OTLP_TRACES].schedule_delay_ms = 60000; /* only full batches and flushes send */
    c.resource = "\x0a\x03res"; /* any bytes: the exporter copies them as they are */
    c.resource_len = 5;
    c.scope_name = "jararaca";
    c.scope_version = "9.9";
    return c;
}

static char url_buf[128];
static const char *peer_url(peer *p, const char *scheme, const char *host)
{
    snprintf(url_buf, sizeof url_buf, "%s://%s:%d/v1/traces", scheme, host, p->port);
    return url_buf;
}

static void push_n(jr_otlp *o, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char it[32];
        int k = snprintf(it, sizeof it, "span-%d", i);
        CHECK_EQ_INT(jr_otlp_push(o, JR_OTLP_TRACES, it, (size_t)k), JR_OTLP_OK);
    }
}

/* A peer with its script and an exporter of the traces to it; the
 * non-zero fields of tweak override test_config's. */
typedef struct {
    peer p;
    jr_otlp *o;
    struct jr_otlp_stats st;
} rig;

static void rig_start(rig *r, const char *const *script, int n, jr_otlp_signal_config tweak)
{
    CHECK(peer_start(&r->p, script, n, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&r->p, "http", "127.0.0.1"));
    jr_otlp_signal_config *t = &c.signal[JR_OTLP_TRACES];
    if (tweak.max_batch) t->max_batch = tweak.max_batch;
    if (tweak.max_queue) t->max_queue = tweak.max_queue;
    if (tweak.timeout_ms) t->timeout_ms = tweak.timeout_ms;
    if (tweak.export_timeout_ms) t->export_timeout_ms = tweak.export_timeout_ms;
    if (tweak.schedule_delay_ms) t->schedule_delay_ms = tweak.schedule_delay_ms;
    t->gzip = tweak.gzip;
    char err[256] = "";
    r->o = jr_otlp_new(&c, err, sizeof err);
    CHECK(r->o != NULL);
    if (!r->o) fprintf(stderr, "  jr_otlp_new: %s\n", err);
}

/* Pushes spans from..from+n-1, flushes, reads the stats into r->st. */
static void rig_export(rig *r, int from, int n)
{
    push_n(r->o, from, n);
    CHECK_EQ_INT(jr_otlp_flush(r->o, 20000), JR_OTLP_OK);
    jr_otlp_stats(r->o, JR_OTLP_TRACES, &r->st);
}

static void rig_stop(rig *r)
{
    jr_otlp_free(r->o, 1000);
    peer_stop(&r->p);
}

static const jr_otlp_signal_config as_is = {0};

/* The counts most tests check (the line of the caller in a failure is
 * the helper's: the test's name says which). */
static void check_counts(const struct jr_otlp_stats *st, int exported, int failed, int retries, int last_status)
{
    CHECK_EQ_INT(st->exported, exported);
    CHECK_EQ_INT(st->failed, failed);
    CHECK_EQ_INT(st->retries, retries);
    CHECK_EQ_INT(st->last_status, last_status);
}

/* ---- tests ---- */

TEST(batches_envelope_headers_keepalive)
{
    rig r;
    rig_start(&r, NULL, 0, (jr_otlp_signal_config){.max_batch = 3});
    rig_export(&r, 0, 7);
    CHECK_EQ_INT(r.st.exported, 7);
    CHECK_EQ_INT(r.st.batches, 3);
    CHECK_EQ_INT(r.st.queued, 0);
    CHECK_EQ_INT(r.st.failed + r.st.dropped + r.st.retries, 0);
    CHECK_EQ_INT(r.st.last_status, 200);
    CHECK_EQ_INT(r.st.connects, 1);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 3), 3);
    CHECK_EQ_INT(peer_connections(&r.p), 1); /* keep-alive: three batches, one connection */
    char items[8][32];
    int total = 0;
    for (int i = 0; i < peer_wait_requests(&r.p, 3) && i < 3; i++) {
        int n = envelope_items(&r.p.req[i], items, 8);
        CHECK(n == 3 || n == 1);
        for (int j = 0; j < n && j < 8; j++) {
            char want[32];
            snprintf(want, sizeof want, "span-%d", total + j);
            CHECK_EQ_STR(items[j], want); /* in push order */
        }
        total += n > 0 ? n : 0;
        const char *head = r.p.req[i].head;
        CHECK(strncmp(head, "POST /v1/traces HTTP/1.1\r\n", 26) == 0);
        CHECK(strcasestr(head, "\r\nContent-Type: application/x-protobuf\r\n") != NULL);
        CHECK(strcasestr(head, "\r\nX-Tenant: acme\r\n") != NULL);
        CHECK(strstr(head, "\r\nHost: 127.0.0.1:") != NULL);
    }
    CHECK_EQ_INT(total, 7);
    rig_stop(&r);
}

/* The schedule delay is a minute unless set: only a full batch, or the
 * delay given, can send without a flush. */
static void sends_unflushed(jr_otlp_signal_config tweak, int n)
{
    rig r;
    rig_start(&r, NULL, 0, tweak);
    push_n(r.o, 0, n);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 1), 1);
    char items[8][32];
    CHECK_EQ_INT(envelope_items(&r.p.req[0], items, 8), n);
    rig_stop(&r);
}

TEST(full_batch_goes_without_flush) { sends_unflushed((jr_otlp_signal_config){.max_batch = 4}, 4); }

TEST(schedule_delay_sends_a_partial_batch) { sends_unflushed((jr_otlp_signal_config){.schedule_delay_ms = 50}, 2); }

TEST(retries_503_then_exports_once)
{
    static const char *const script[] = {"503 busy", "503 busy", "200"};
    rig r;
    rig_start(&r, script, 3, as_is);
    rig_export(&r, 0, 2);
    check_counts(&r.st, 2, 0, 2, 200);
    CHECK_EQ_INT(r.st.batches, 1);
    CHECK(strstr(r.st.last_error, "HTTP 503") != NULL); /* the last failure stays readable */
    CHECK_EQ_INT(peer_wait_requests(&r.p, 3), 3);
    CHECK_EQ_INT(peer_connections(&r.p), 1); /* a 503 keeps the connection */
    rig_stop(&r);
}

TEST(retry_after_beyond_the_export_timeout_gives_up)
{
    /* 429 is retryable, but the collector asks for 60 s and the batch has 2:
     * honouring Retry-After means giving up now, not hammering it sooner. */
    static const char *const script[] = {"429 retry-after=60"};
    rig r;
    rig_start(&r, script, 1, (jr_otlp_signal_config){.export_timeout_ms = 2000});
    rig_export(&r, 0, 1);
    check_counts(&r.st, 0, 1, 0, 429);
    CHECK(strstr(r.st.last_error, "gave up") != NULL);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 1), 1);
    rig_stop(&r);
}

TEST(retry_after_as_an_http_date)
{
    /* A date 60 s ahead with 2 s left: given up after one attempt (our own
     * backoff would have retried); a date in the past: retried at once. */
    static const char *const ahead[] = {"503 retry-date=60"};
    rig r;
    rig_start(&r, ahead, 1, (jr_otlp_signal_config){.export_timeout_ms = 2000});
    rig_export(&r, 0, 1);
    check_counts(&r.st, 0, 1, 0, 503);
    CHECK(strstr(r.st.last_error, "gave up after 1 attempts") != NULL);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 1), 1);
    rig_stop(&r);

    static const char *const past[] = {"503 retry-date=-60", "200"};
    rig_start(&r, past, 2, as_is);
    rig_export(&r, 0, 1);
    check_counts(&r.st, 1, 0, 1, 200);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 2), 2);
    rig_stop(&r);
}

TEST(partial_success_counts_the_rejected_items)
{
    /* 5 spans, the collector keeps 3: 3 exported, 2 failed and rejected,
     * its message in last_error; then a warning only (rejected 0 with a
     * message) is a full success. */
    static const char *const script[] = {"partial=2:two spans had no trace id", "partial=0:use gzip"};
    rig r;
    rig_start(&r, script, 2, as_is);
    rig_export(&r, 0, 5);
    check_counts(&r.st, 3, 2, 0, 200);
    CHECK_EQ_INT(r.st.rejected, 2);
    CHECK_EQ_INT(r.st.batches, 1);
    CHECK(strstr(r.st.last_error, "rejected 2 spans of a batch of 5: two spans had no trace id") != NULL);
    rig_export(&r, 5, 1);
    check_counts(&r.st, 4, 2, 0, 200);
    CHECK_EQ_INT(r.st.rejected, 2);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 2), 2);
    rig_stop(&r);

    /* The same bytes as text/plain (a proxy's body, say): not read. */
    static const char *const text[] = {"200 \x0a\x02\x08\x05"};
    rig_start(&r, text, 1, as_is);
    rig_export(&r, 0, 5);
    check_counts(&r.st, 5, 0, 0, 200);
    CHECK_EQ_INT(r.st.rejected, 0);
    rig_stop(&r);

    /* A collector claiming more than the batch held: failed stops at the batch. */
    static const char *const more[] = {"partial=9:"};
    rig_start(&r, more, 1, as_is);
    rig_export(&r, 0, 2);
    check_counts(&r.st, 0, 2, 0, 200);
    CHECK_EQ_INT(r.st.rejected, 9);
    CHECK(strstr(r.st.last_error, "(no message)") != NULL);
    rig_stop(&r);
}

TEST(partial_success_of_metrics_counts_data_points_apart)
{
    /* The collector counts rejected data points: the batch's Metric items
     * stay exported, the points are in rejected. */
    static const char *const script[] = {"partial=4:points out of order"};
    peer p;
    CHECK(peer_start(&p, script, 1, NULL) == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/metrics", p.port);
    jr_otlp_config c = test_config("http://unused:1/");
    c.signal[JR_OTLP_TRACES].enabled = 0;
    c.signal[JR_OTLP_METRICS].enabled = 1;
    c.signal[JR_OTLP_METRICS].url = url;
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    CHECK(o != NULL);
    CHECK_EQ_INT(jr_otlp_push(o, JR_OTLP_METRICS, "metric-a", 8), JR_OTLP_OK);
    CHECK_EQ_INT(jr_otlp_push(o, JR_OTLP_METRICS, "metric-b", 8), JR_OTLP_OK);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_METRICS, &st);
    check_counts(&st, 2, 0, 0, 200);
    CHECK_EQ_INT(st.rejected, 4);
    CHECK(strstr(st.last_error, "rejected 4 data points of a batch of 2: points out of order") != NULL);
    jr_otlp_free(o, 1000);
    peer_stop(&p);
}

TEST(status_400_fails_without_retry)
{
    static const char *const script[] = {"400 span has no trace id"};
    rig r;
    rig_start(&r, script, 1, as_is);
    rig_export(&r, 0, 3);
    check_counts(&r.st, 0, 3, 0, 400);
    CHECK(strstr(r.st.last_error, "HTTP 400") != NULL);
    CHECK(strstr(r.st.last_error, "span has no trace id") != NULL);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 1), 1);
    rig_export(&r, 3, 1); /* the exporter goes on: the next batch is exported */
    CHECK_EQ_INT(r.st.exported, 1);
    rig_stop(&r);
}

TEST(hanging_collector_times_out_retries_then_fails)
{
    static const char *const script[] = {"hang", "hang", "hang", "hang", "hang", "hang", "hang", "hang",
                                         "hang", "hang", "hang", "hang", "hang", "hang", "hang", "hang"};
    rig r;
    rig_start(&r, script, 16, (jr_otlp_signal_config){.timeout_ms = 150, .export_timeout_ms = 1200});
    rig_export(&r, 0, 2);
    CHECK(r.st.retries >= 1);
    check_counts(&r.st, 0, 2, (int)r.st.retries, 0);
    CHECK_EQ_INT(peer_wait_requests(&r.p, (int)r.st.retries + 1), (int)r.st.retries + 1); /* every attempt reached the collector */
    CHECK(strstr(r.st.last_error, "timed out") != NULL);
    rig_stop(&r);
}

TEST(refused_connection_is_retried_then_fails)
{
    peer p; /* a port that was ours a moment ago and is closed now */
    CHECK(peer_start(&p, NULL, 0, NULL) == 0);
    const char *url = peer_url(&p, "http", "127.0.0.1");
    peer_stop(&p);
    jr_otlp_config c = test_config(url);
    c.signal[JR_OTLP_TRACES].export_timeout_ms = 800;
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 1);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.failed, 1);
    CHECK(st.retries >= 1);
    CHECK(strstr(st.last_error, "Connection refused") != NULL);
    jr_otlp_free(o, 1000);
}

TEST(queue_full_drops_and_counts_free_cuts_a_hang_short)
{
    static const char *const script[] = {"hang"};
    rig r;
    rig_start(&r, script, 1,
              (jr_otlp_signal_config){.max_batch = 1, .max_queue = 3, .timeout_ms = 60000, .export_timeout_ms = 60000});
    push_n(r.o, 0, 1);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 1), 1); /* the thread is now stuck in that POST */
    push_n(r.o, 1, 3);
    CHECK_EQ_INT(jr_otlp_push(r.o, JR_OTLP_TRACES, "x", 1), JR_OTLP_EFULL);
    CHECK_EQ_INT(jr_otlp_push(r.o, JR_OTLP_TRACES, "y", 1), JR_OTLP_EFULL);
    jr_otlp_stats(r.o, JR_OTLP_TRACES, &r.st);
    CHECK_EQ_INT(r.st.dropped, 2);
    CHECK_EQ_INT(r.st.queued, 3);
    CHECK_EQ_INT(jr_otlp_flush(r.o, 50), JR_OTLP_ETIMEDOUT);
    jr_otlp_free(r.o, 0); /* returns although the POST would hang for a minute */
    peer_stop(&r.p);
}

/* A DNS server that does not answer: the resolver (otlp_int.h's seam)
 * blocks until the test lets it go. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int calls, released, returned;
} dns = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static int stuck_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints, struct addrinfo **res)
{
    (void)host, (void)port, (void)hints;
    pthread_mutex_lock(&dns.mu);
    dns.calls++;
    pthread_cond_broadcast(&dns.cond);
    while (!dns.released) pthread_cond_wait(&dns.cond, &dns.mu);
    dns.returned++;
    pthread_cond_broadcast(&dns.cond);
    pthread_mutex_unlock(&dns.mu);
    *res = NULL;
    return EAI_AGAIN;
}

/* Waits (20 s hang guard) until *v >= n; returns *v. */
static int dns_wait(int *v, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&dns.mu);
    while (*v < n && pthread_cond_timedwait(&dns.cond, &dns.mu, &until) == 0) {
    }
    int got = *v;
    pthread_mutex_unlock(&dns.mu);
    return got;
}

TEST(a_lookup_that_never_answers_fails_the_attempt_and_does_not_hold_free)
{
    jr_otlp_getaddrinfo = stuck_getaddrinfo;
    jr_otlp_config c = test_config("http://collector.invalid:4318/v1/traces");
    c.signal[JR_OTLP_TRACES].timeout_ms = 100;
    c.signal[JR_OTLP_TRACES].export_timeout_ms = 700;
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    CHECK(o != NULL);
    push_n(o, 0, 1);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK); /* the batch ends: bounded by its export timeout */
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.failed, 1);
    CHECK_EQ_INT(st.exported, 0);
    CHECK(st.retries >= 1);
    CHECK(strstr(st.last_error, "resolving collector.invalid:4318 timed out") != NULL);
    CHECK_EQ_INT(dns_wait(&dns.calls, 1), 1); /* every attempt waited on the one lookup */
    jr_otlp_free(o, 0);

    /* Stopping while an attempt waits on the lookup: free returns, the
     * lookup is left to finish on its own. */
    c.signal[JR_OTLP_TRACES].timeout_ms = 60000;
    c.signal[JR_OTLP_TRACES].export_timeout_ms = 60000;
    o = jr_otlp_new(&c, err, sizeof err);
    CHECK(o != NULL);
    push_n(o, 0, 1);
    CHECK_EQ_INT(jr_otlp_flush(o, 0), JR_OTLP_ETIMEDOUT); /* asks for the export, does not wait */
    CHECK_EQ_INT(dns_wait(&dns.calls, 2), 2);
    jr_otlp_free(o, 0);
    pthread_mutex_lock(&dns.mu);
    CHECK_EQ_INT(dns.returned, 0); /* free did not wait for the resolver */
    dns.released = 1;
    pthread_cond_broadcast(&dns.cond);
    pthread_mutex_unlock(&dns.mu);
    CHECK_EQ_INT(dns_wait(&dns.returned, 2), 2); /* the abandoned lookups end (and free themselves) */
    jr_otlp_getaddrinfo = getaddrinfo;
}

TEST(free_flushes_what_is_queued)
{
    rig r;
    rig_start(&r, NULL, 0, as_is);
    push_n(r.o, 0, 5);
    jr_otlp_free(r.o, 20000);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 1), 1);
    char items[8][32];
    CHECK_EQ_INT(envelope_items(&r.p.req[0], items, 8), 5);
    peer_stop(&r.p);
}

/* One batch per answer of the script; each exported without a retry, on
 * `connects` connections. */
static void one_batch_each(const char *const *script, int n, int connects)
{
    rig r;
    rig_start(&r, script, n, as_is);
    for (int i = 0; i < n; i++) rig_export(&r, i, 1);
    check_counts(&r.st, n, 0, 0, 200);
    CHECK_EQ_INT(r.st.connects, connects);
    CHECK_EQ_INT(peer_wait_requests(&r.p, n), n);
    CHECK_EQ_INT(peer_connections(&r.p), connects);
    rig_stop(&r);
}

TEST(peer_closing_an_idle_connection_is_not_a_retry)
{
    static const char *const script[] = {"close", "close", "200"};
    one_batch_each(script, 3, 3);
}

TEST(answer_delimited_by_the_close_and_connection_close)
{
    /* Connection: close is honoured: a new connection for the second batch */
    static const char *const script[] = {"eof", "eof"};
    one_batch_each(script, 2, 2);
}

TEST(interim_1xx_answer_is_skipped)
{
    static const char *const script[] = {"100", "200"};
    one_batch_each(script, 2, 1);
}

TEST(gzip_bodies)
{
    rig r;
    rig_start(&r, NULL, 0, (jr_otlp_signal_config){.gzip = 1});
    rig_export(&r, 0, 40);
    check_counts(&r.st, 40, 0, 0, 200);
    CHECK_EQ_INT(peer_wait_requests(&r.p, 1), 1);
    peer_request *rq = &r.p.req[0];
    CHECK(strcasestr(rq->head, "\r\nContent-Encoding: gzip\r\n") != NULL);
    CHECK((unsigned char)rq->body[0] == 0x1f && (unsigned char)rq->body[1] == 0x8b); /* the gzip magic */
    static char plain[8192];
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(inflateInit2(&z, 15 + 16) == Z_OK);
    z.next_in = (Bytef *)rq->body;
    z.avail_in = (uInt)rq->body_len;
    z.next_out = (Bytef *)plain;
    z.avail_out = sizeof plain;
    CHECK_EQ_INT(inflate(&z, Z_FINISH), Z_STREAM_END);
    CHECK(rq->body_len < z.total_out); /* forty alike spans do compress */
    peer_request unzipped = {rq->head, plain, z.total_out};
    inflateEnd(&z);
    char items[64][32];
    CHECK_EQ_INT(envelope_items(&unzipped, items, 64), 40);
    CHECK_EQ_STR(items[39], "span-39");
    rig_stop(&r);
}

TEST(signals_have_their_own_queue_connection_and_counts)
{
    peer pt, pl;
    CHECK(peer_start(&pt, NULL, 0, NULL) == 0);
    CHECK(peer_start(&pl, NULL, 0, NULL) == 0);
    char logs_url[128];
    snprintf(logs_url, sizeof logs_url, "http://127.0.0.1:%d/v1/logs", pl.port);
    jr_otlp_config c = test_config(peer_url(&pt, "http", "127.0.0.1"));
    c.signal[JR_OTLP_LOGS].enabled = 1;
    c.signal[JR_OTLP_LOGS].url = logs_url;
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 3);
    CHECK_EQ_INT(jr_otlp_push(o, JR_OTLP_LOGS, "log-a", 5), JR_OTLP_OK);
    CHECK_EQ_INT(jr_otlp_push(o, JR_OTLP_LOGS, "log-b", 5), JR_OTLP_OK);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    check_counts(&st, 3, 0, 0, 200);
    jr_otlp_stats(o, JR_OTLP_LOGS, &st);
    check_counts(&st, 2, 0, 0, 200);
    jr_otlp_stats(o, JR_OTLP_METRICS, &st); /* off: all zero */
    check_counts(&st, 0, 0, 0, 0);
    CHECK_EQ_INT(peer_wait_requests(&pt, 1), 1);
    CHECK_EQ_INT(peer_wait_requests(&pl, 1), 1);
    char items[8][32];
    CHECK_EQ_INT(envelope_items(&pl.req[0], items, 8), 2);
    CHECK_EQ_STR(items[1], "log-b");
    CHECK(strncmp(pl.req[0].head, "POST /v1/logs HTTP/1.1\r\n", 24) == 0);
    jr_otlp_free(o, 1000);
    peer_stop(&pt);
    peer_stop(&pl);
}

TEST(url_parse)
{
    static const struct {
        const char *url, *host, *port, *path, *authority;
        int tls;
    } ok[] = {
        {"http://c:4318/v1/traces", "c", "4318", "/v1/traces", "c:4318", 0},
        {"https://otel.example.com/v1/logs", "otel.example.com", "443", "/v1/logs", "otel.example.com", 1},
        {"HTTP://c", "c", "80", "/", "c", 0},
        {"http://[::1]:4318/v1/metrics?tenant=a", "::1", "4318", "/v1/metrics?tenant=a", "[::1]:4318", 0},
        {"http://c:1?x=1", "c", "1", "/?x=1", "c:1", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        jr_otlp_url u;
        char err[256] = "";
        CHECK_EQ_INT(jr_otlp_url_parse(ok[i].url, &u, err, sizeof err), 0);
        CHECK_EQ_STR(u.host, ok[i].host);
        CHECK_EQ_STR(u.port, ok[i].port);
        CHECK_EQ_STR(u.path, ok[i].path);
        CHECK_EQ_STR(u.authority, ok[i].authority);
        CHECK_EQ_INT(u.tls, ok[i].tls);
        jr_otlp_url_free(&u);
    }
    static const char *const bad[][2] = {
        {"grpc://c:4317", "http:// or https://"},
        {"http://", "no host"},
        {"http://:4318/v1", "no host"},
        {"http://u:p@c/v1", "user:password"},
        {"http://[::1/v1", "unclosed ["},
        {"http://c:0/v1", "port"},
        {"http://c:x/v1", "port"},
        {"http://c/v1#frag", "fragment"},
        {"http://c/v 1", "space or a control character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jr_otlp_url u;
        char err[256] = "";
        CHECK_EQ_INT(jr_otlp_url_parse(bad[i][0], &u, err, sizeof err), -1);
        if (!strstr(err, bad[i][1])) fprintf(stderr, "  %s: got \"%s\"\n", bad[i][0], err);
        CHECK(strstr(err, bad[i][1]) != NULL);
    }
}

TEST(bad_config_is_refused_with_a_reason)
{
    char err[256];
    jr_otlp_config c = test_config("ftp://x/v1/traces");
    CHECK(jr_otlp_new(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "http:// or https://") != NULL);
    c = test_config("http://h:99999/v1/traces");
    CHECK(jr_otlp_new(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "port") != NULL);
    c = test_config("http://h/v1/traces");
    jr_otlp_header bad[] = {{"X-A", "1\r\nX-Injected: 2"}};
    c.signal[JR_OTLP_TRACES].headers = bad;
    CHECK(jr_otlp_new(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "line break") != NULL);
    c = test_config("http://h/v1/traces");
    c.signal[JR_OTLP_TRACES].max_queue = JR_OTLP_MAX_QUEUE_LIMIT + 1;
    CHECK(jr_otlp_new(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "above the limit") != NULL);
    c = test_config("https://h/v1/traces");
    c.ca_file = "/nonexistent/ca.pem";
    CHECK(jr_otlp_new(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "/nonexistent/ca.pem") != NULL);
    c = test_config("http://h/v1/traces"); /* pushing to a signal that is off */
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    CHECK(o != NULL);
    CHECK_EQ_INT(jr_otlp_push(o, JR_OTLP_LOGS, "x", 1), JR_OTLP_EINVAL);
    jr_otlp_free(o, 0);
}

/* ---- TLS: a self-signed certificate for DNS:localhost, made now ---- */

static char ca_path[64];

static SSL_CTX *make_tls_server(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"otlp test", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    /* localhost only, no IP SAN: https://127.0.0.1 must then fail the host check */
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost");
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, san, -1);
    X509_add_ext(x, bc, -1);
    X509_EXTENSION_free(san);
    X509_EXTENSION_free(bc);
    X509_sign(x, key, EVP_sha256());
    snprintf(ca_path, sizeof ca_path, "/tmp/jr-otlp-ca-XXXXXX");
    int fd = mkstemp(ca_path);
    FILE *f = fdopen(fd, "w");
    PEM_write_X509(f, x);
    fclose(f);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, x);
    SSL_CTX_use_PrivateKey(ctx, key);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

/* Exports `batches` one-span batches over https to host (the peer's port)
 * trusting ca (NULL: the system's CAs; no_verify: anything); the stats in *st. */
static void tls_export(peer *p, const char *host, const char *ca, int no_verify, int batches,
                       struct jr_otlp_stats *st)
{
    jr_otlp_config c = test_config(peer_url(p, "https", host));
    c.ca_file = ca;
    c.tls_no_verify = no_verify;
    char err[256] = "";
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    CHECK(o != NULL);
    for (int i = 0; i < batches; i++) {
        push_n(o, i, 1);
        CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    }
    jr_otlp_stats(o, JR_OTLP_TRACES, st);
    jr_otlp_free(o, 1000);
}

TEST(tls_verified_with_the_ca_file_wrong_host_and_unknown_ca_fail_without_retry_no_verify_passes)
{
    SSL_CTX *srv = make_tls_server();
    peer p;
    CHECK(peer_start(&p, NULL, 0, srv) == 0);
    struct jr_otlp_stats st;
    tls_export(&p, "localhost", ca_path, 0, 2, &st);
    CHECK_EQ_INT(st.exported, 2);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.connects, 1); /* keep-alive over TLS too */
    if (st.failed) fprintf(stderr, "  last_error: %s\n", st.last_error);
    CHECK_EQ_INT(peer_wait_requests(&p, 2), 2);
    char items[8][32];
    CHECK_EQ_INT(envelope_items(&p.req[0], items, 8), 1);

    tls_export(&p, "127.0.0.1", ca_path, 0, 1, &st); /* the certificate names localhost only */
    check_counts(&st, 0, 1, 0, 0);
    CHECK(strstr(st.last_error, "did not verify") != NULL);
    CHECK(strstr(st.last_error, "mismatch") != NULL);

    tls_export(&p, "localhost", NULL, 0, 1, &st); /* the system CAs do not know ours */
    check_counts(&st, 0, 1, 0, 0);
    CHECK(strstr(st.last_error, "did not verify") != NULL);
    CHECK_EQ_INT(peer_wait_requests(&p, 2), 2); /* nothing more was sent to an unverified peer */

    tls_export(&p, "127.0.0.1", NULL, 1, 1, &st); /* tls_no_verify: neither CA nor name checked */
    check_counts(&st, 1, 0, 0, 200);
    CHECK_EQ_INT(peer_wait_requests(&p, 3), 3);
    peer_stop(&p);
    SSL_CTX_free(srv);
    unlink(ca_path);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the peer writes to clients that may be gone */
    RUN(batches_envelope_headers_keepalive);
    RUN(full_batch_goes_without_flush);
    RUN(schedule_delay_sends_a_partial_batch);
    RUN(retries_503_then_exports_once);
    RUN(retry_after_beyond_the_export_timeout_gives_up);
    RUN(retry_after_as_an_http_date);
    RUN(partial_success_counts_the_rejected_items);
    RUN(partial_success_of_metrics_counts_data_points_apart);
    RUN(status_400_fails_without_retry);
    RUN(hanging_collector_times_out_retries_then_fails);
    RUN(refused_connection_is_retried_then_fails);
    RUN(queue_full_drops_and_counts_free_cuts_a_hang_short);
    RUN(a_lookup_that_never_answers_fails_the_attempt_and_does_not_hold_free);
    RUN(free_flushes_what_is_queued);
    RUN(peer_closing_an_idle_connection_is_not_a_retry);
    RUN(answer_delimited_by_the_close_and_connection_close);
    RUN(interim_1xx_answer_is_skipped);
    RUN(gzip_bodies);
    RUN(signals_have_their_own_queue_connection_and_counts);
    RUN(url_parse);
    RUN(bad_config_is_refused_with_a_reason);
    RUN(tls_verified_with_the_ca_file_wrong_host_and_unknown_ca_fail_without_retry_no_verify_passes);
    return test_summary();
}
