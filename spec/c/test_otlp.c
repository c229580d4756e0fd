/* test_otlp.c - the OTLP/HTTP exporter (core/otlp*.c) against a real local
 * collector (test_otlp_peer.h): the envelope bytes, batching, keep-alive,
 * retries (503, 429 + Retry-After), non-retryable answers, a collector that
 * hangs, a full queue, flush on free, TLS with a CA made at test time. */
#include "otlp.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdint.h>

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

/* ---- tests ---- */

TEST(batches_envelope_headers_keepalive)
{
    peer p;
    CHECK(peer_start(&p, NULL, 0, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    c.signal[JR_OTLP_TRACES].max_batch = 3;
    char err[256] = "";
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    CHECK(o != NULL);
    push_n(o, 0, 7);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.exported, 7);
    CHECK_EQ_INT(st.batches, 3);
    CHECK_EQ_INT(st.queued, 0);
    CHECK_EQ_INT(st.failed + st.dropped + st.retries, 0);
    CHECK_EQ_INT(st.last_status, 200);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(p.nreq, 3);
    CHECK_EQ_INT(p.connections, 1); /* keep-alive: three batches, one connection */
    char items[8][32];
    int total = 0;
    for (int i = 0; i < p.nreq && i < 3; i++) {
        int n = envelope_items(&p.req[i], items, 8);
        CHECK(n == 3 || n == 1);
        for (int j = 0; j < n && j < 8; j++) {
            char want[32];
            snprintf(want, sizeof want, "span-%d", total + j);
            CHECK_EQ_STR(items[j], want); /* in push order */
        }
        total += n > 0 ? n : 0;
        CHECK(strncmp(p.req[i].head, "POST /v1/traces HTTP/1.1\r\n", 26) == 0);
        CHECK(strcasestr(p.req[i].head, "\r\nContent-Type: application/x-protobuf\r\n") != NULL);
        CHECK(strcasestr(p.req[i].head, "\r\nX-Tenant: acme\r\n") != NULL);
        CHECK(strstr(p.req[i].head, "\r\nHost: 127.0.0.1:") != NULL);
    }
    CHECK_EQ_INT(total, 7);
    jr_otlp_free(o, 1000);
    peer_stop(&p);
}

TEST(full_batch_goes_without_flush)
{
    peer p;
    CHECK(peer_start(&p, NULL, 0, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    c.signal[JR_OTLP_TRACES].max_batch = 4;
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 4); /* the schedule delay is a minute: only the full batch can send it */
    CHECK_EQ_INT(peer_wait_requests(&p, 1), 1);
    char items[8][32];
    CHECK_EQ_INT(envelope_items(&p.req[0], items, 8), 4);
    jr_otlp_free(o, 1000);
    peer_stop(&p);
}

TEST(schedule_delay_sends_a_partial_batch)
{
    peer p;
    CHECK(peer_start(&p, NULL, 0, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    c.signal[JR_OTLP_TRACES].schedule_delay_ms = 50;
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 2);
    CHECK_EQ_INT(peer_wait_requests(&p, 1), 1);
    char items[8][32];
    CHECK_EQ_INT(envelope_items(&p.req[0], items, 8), 2);
    jr_otlp_free(o, 1000);
    peer_stop(&p);
}

TEST(retries_503_then_exports_once)
{
    static const char *const script[] = {"503 busy", "503 busy", "200"};
    peer p;
    CHECK(peer_start(&p, script, 3, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 2);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.exported, 2);
    CHECK_EQ_INT(st.batches, 1);
    CHECK_EQ_INT(st.retries, 2);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.last_status, 200);
    CHECK(strstr(st.last_error, "HTTP 503") != NULL); /* the last failure stays readable */
    CHECK_EQ_INT(p.nreq, 3);
    CHECK_EQ_INT(p.connections, 1); /* a 503 keeps the connection */
    jr_otlp_free(o, 1000);
    peer_stop(&p);
}

TEST(retry_after_beyond_the_export_timeout_gives_up)
{
    /* 429 is retryable, but the collector asks for 60 s and the batch has 2:
     * honouring Retry-After means giving up now, not hammering it sooner. */
    static const char *const script[] = {"429 retry-after=60"};
    peer p;
    CHECK(peer_start(&p, script, 1, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    c.signal[JR_OTLP_TRACES].export_timeout_ms = 2000;
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 1);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.failed, 1);
    CHECK_EQ_INT(st.retries, 0);
    CHECK_EQ_INT(st.last_status, 429);
    CHECK(strstr(st.last_error, "gave up") != NULL);
    CHECK_EQ_INT(p.nreq, 1);
    jr_otlp_free(o, 1000);
    peer_stop(&p);
}

TEST(status_400_fails_without_retry)
{
    static const char *const script[] = {"400 span has no trace id"};
    peer p;
    CHECK(peer_start(&p, script, 1, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 3);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.failed, 3);
    CHECK_EQ_INT(st.exported, 0);
    CHECK_EQ_INT(st.retries, 0);
    CHECK_EQ_INT(st.last_status, 400);
    CHECK(strstr(st.last_error, "HTTP 400") != NULL);
    CHECK(strstr(st.last_error, "span has no trace id") != NULL);
    CHECK_EQ_INT(p.nreq, 1);
    /* the exporter goes on: the next batch is exported */
    push_n(o, 3, 1);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.exported, 1);
    jr_otlp_free(o, 1000);
    peer_stop(&p);
}

TEST(hanging_collector_times_out_retries_then_fails)
{
    static const char *const script[] = {"hang", "hang", "hang", "hang", "hang", "hang", "hang", "hang",
                                         "hang", "hang", "hang", "hang", "hang", "hang", "hang", "hang"};
    peer p;
    CHECK(peer_start(&p, script, 16, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    c.signal[JR_OTLP_TRACES].timeout_ms = 150;
    c.signal[JR_OTLP_TRACES].export_timeout_ms = 1200;
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 2);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.failed, 2);
    CHECK_EQ_INT(st.exported, 0);
    CHECK(st.retries >= 1);
    CHECK_EQ_INT(p.nreq, (int)st.retries + 1); /* every attempt reached the collector */
    CHECK_EQ_INT(st.last_status, 0);
    CHECK(strstr(st.last_error, "timed out") != NULL);
    jr_otlp_free(o, 1000);
    peer_stop(&p);
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
    peer p;
    CHECK(peer_start(&p, script, 1, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    c.signal[JR_OTLP_TRACES].max_batch = 1;
    c.signal[JR_OTLP_TRACES].max_queue = 3;
    c.signal[JR_OTLP_TRACES].timeout_ms = 60000;
    c.signal[JR_OTLP_TRACES].export_timeout_ms = 60000;
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 1);
    CHECK_EQ_INT(peer_wait_requests(&p, 1), 1); /* the thread is now stuck in that POST */
    push_n(o, 1, 3);
    CHECK_EQ_INT(jr_otlp_push(o, JR_OTLP_TRACES, "x", 1), JR_OTLP_EFULL);
    CHECK_EQ_INT(jr_otlp_push(o, JR_OTLP_TRACES, "y", 1), JR_OTLP_EFULL);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.dropped, 2);
    CHECK_EQ_INT(st.queued, 3);
    CHECK_EQ_INT(jr_otlp_flush(o, 50), JR_OTLP_ETIMEDOUT);
    jr_otlp_free(o, 0); /* returns although the POST would hang for a minute */
    peer_stop(&p);
}

TEST(free_flushes_what_is_queued)
{
    peer p;
    CHECK(peer_start(&p, NULL, 0, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 5);
    jr_otlp_free(o, 20000);
    CHECK_EQ_INT(p.nreq, 1);
    char items[8][32];
    CHECK_EQ_INT(envelope_items(&p.req[0], items, 8), 5);
    peer_stop(&p);
}

TEST(peer_closing_an_idle_connection_is_not_a_retry)
{
    static const char *const script[] = {"close", "close", "200"};
    peer p;
    CHECK(peer_start(&p, script, 3, NULL) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "http", "127.0.0.1"));
    char err[256];
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    for (int i = 0; i < 3; i++) {
        push_n(o, i, 1);
        CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    }
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.exported, 3);
    CHECK_EQ_INT(st.retries, 0);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.connects, 3);
    CHECK_EQ_INT(p.nreq, 3);
    jr_otlp_free(o, 1000);
    peer_stop(&p);
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

TEST(tls_verified_with_the_ca_file)
{
    SSL_CTX *srv = make_tls_server();
    peer p;
    CHECK(peer_start(&p, NULL, 0, srv) == 0);
    jr_otlp_config c = test_config(peer_url(&p, "https", "localhost"));
    c.ca_file = ca_path;
    char err[256] = "";
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    CHECK(o != NULL);
    push_n(o, 0, 2);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    push_n(o, 2, 1);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.exported, 3);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.connects, 1); /* keep-alive over TLS too */
    if (st.failed) fprintf(stderr, "  last_error: %s\n", st.last_error);
    CHECK_EQ_INT(p.nreq, 2);
    char items[8][32];
    CHECK_EQ_INT(envelope_items(&p.req[0], items, 8), 2);
    jr_otlp_free(o, 1000);
    peer_stop(&p);
    SSL_CTX_free(srv);
    unlink(ca_path);
}

TEST(tls_wrong_host_and_unknown_ca_fail_without_retry)
{
    SSL_CTX *srv = make_tls_server();
    peer p;
    CHECK(peer_start(&p, NULL, 0, srv) == 0);
    /* the certificate names localhost, not 127.0.0.1 */
    jr_otlp_config c = test_config(peer_url(&p, "https", "127.0.0.1"));
    c.ca_file = ca_path;
    char err[256] = "";
    jr_otlp *o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 1);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    struct jr_otlp_stats st;
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.failed, 1);
    CHECK_EQ_INT(st.retries, 0);
    CHECK(strstr(st.last_error, "did not verify") != NULL);
    CHECK(strstr(st.last_error, "mismatch") != NULL);
    jr_otlp_free(o, 1000);
    /* the right name, but the system CAs do not know our CA */
    c = test_config(peer_url(&p, "https", "localhost"));
    o = jr_otlp_new(&c, err, sizeof err);
    push_n(o, 0, 1);
    CHECK_EQ_INT(jr_otlp_flush(o, 20000), JR_OTLP_OK);
    jr_otlp_stats(o, JR_OTLP_TRACES, &st);
    CHECK_EQ_INT(st.failed, 1);
    CHECK_EQ_INT(st.retries, 0);
    CHECK(strstr(st.last_error, "did not verify") != NULL);
    jr_otlp_free(o, 1000);
    CHECK_EQ_INT(p.nreq, 0); /* nothing was sent to an unverified peer */
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
    RUN(status_400_fails_without_retry);
    RUN(hanging_collector_times_out_retries_then_fails);
    RUN(refused_connection_is_retried_then_fails);
    RUN(queue_full_drops_and_counts_free_cuts_a_hang_short);
    RUN(free_flushes_what_is_queued);
    RUN(peer_closing_an_idle_connection_is_not_a_retry);
    RUN(bad_config_is_refused_with_a_reason);
    RUN(tls_verified_with_the_ca_file);
    RUN(tls_wrong_host_and_unknown_ca_fail_without_retry);
    return test_summary();
}
