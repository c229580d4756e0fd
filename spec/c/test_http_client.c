/* test_http_client.c - core/http_client against real peers on 127.0.0.1: a
 * scripted TCP server on our loop (keep-alive, chunked, close-delimited,
 * reset, silent, malformed, held answers) and a TLS server in a thread
 * (OpenSSL, a self-signed certificate made with `openssl req` at test time). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_client.h"
#include "test.h"
#include "test_loop.h"
#include "test_tcp.h"

/* ---- the scripted server ---- */

enum { M_OK, M_CHUNKED, M_CLOSE_DELIM, M_RESET, M_SILENT, M_MALFORMED, M_HOLD, M_DROP_SECOND, M_BIG, M_HEAD };

typedef struct peer peer;
typedef struct {
    uv_tcp_t listen;
    int port;
    int mode;
    int accepted, requests, eofs;
    peer *held[16];
    int nheld;
    char last_req[2048];
} tserver;

struct peer {
    uv_tcp_t h;
    tserver *s;
    char buf[16384];
    size_t len;
    int nreq;
    int closed;
};

static void peer_closed(uv_handle_t *h) { free(h->data); }

static void peer_close(peer *p, int reset)
{
    if (p->closed) return;
    p->closed = 1;
    if (reset) uv_tcp_close_reset(&p->h, peer_closed);
    else uv_close((uv_handle_t *)&p->h, peer_closed);
}

static void say(peer *p, const char *s) { tcp_write_copy((uv_stream_t *)&p->h, s, strlen(s)); }

static void answer_ok(peer *p, const char *seq)
{
    char resp[256];
    snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Seq: %s\r\n\r\n%s", strlen(seq), seq, seq);
    say(p, resp);
}

/* One whole request in p->buf (head ended; its x-seq header, if any). */
static void on_request(peer *p, const char *seq)
{
    tserver *s = p->s;
    s->requests++;
    p->nreq++;
    switch (s->mode) {
    case M_OK: answer_ok(p, seq); break;
    case M_CHUNKED:
        say(p, "HTTP/1.1 100 Continue\r\n\r\n"
               "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Twice: a\r\nX-Twice: b\r\n"
               "Content-Type: text/plain\r\nX-Empty:\r\n\r\n"
               "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n");
        break;
    case M_CLOSE_DELIM:
        say(p, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
        peer_close(p, 0);
        break;
    case M_RESET:
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
        peer_close(p, 1);
        break;
    case M_SILENT: break;
    case M_MALFORMED: say(p, "HTTP/1.1 2x0 Nope\r\n\r\n"); break;
    case M_HOLD:
        if (s->nheld < 16) s->held[s->nheld++] = p;
        snprintf(p->buf + sizeof p->buf - 16, 16, "%s", seq); /* kept for the release */
        break;
    case M_DROP_SECOND:
        if (p->nreq == 2) peer_close(p, 0); /* as a server dropping an idle connection the client reuses */
        else answer_ok(p, seq);
        break;
    case M_BIG: {
        static char big[5000 + 100];
        int n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
        memset(big + n, 'x', 5000);
        tcp_write_copy((uv_stream_t *)&p->h, big, (size_t)n + 5000);
        break;
    }
    case M_HEAD: say(p, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"); break;
    }
}

static void release_held(tserver *s)
{
    int n = s->nheld;
    s->nheld = 0;
    for (int i = 0; i < n; i++) answer_ok(s->held[i], s->held[i]->buf + sizeof s->held[i]->buf - 16);
}

static void peer_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    peer *p = st->data;
    if (n < 0) {
        p->s->eofs++;
        for (int i = 0; i < p->s->nheld; i++)
            if (p->s->held[i] == p) p->s->held[i] = p->s->held[--p->s->nheld];
        peer_close(p, 0);
        return;
    }
    if (p->len + (size_t)n > sizeof p->buf - 16) n = (ssize_t)(sizeof p->buf - 16 - p->len);
    memcpy(p->buf + p->len, b->base, (size_t)n);
    p->len += (size_t)n;
    for (;;) {
        char *end = memmem(p->buf, p->len, "\r\n\r\n", 4);
        if (!end) return;
        size_t head = (size_t)(end - p->buf) + 4;
        size_t body = 0;
        char seq[16] = "-";
        char *cl = memmem(p->buf, head, "Content-Length: ", 16);
        if (cl) body = strtoul(cl + 16, NULL, 10);
        char *xs = memmem(p->buf, head, "x-seq: ", 7);
        if (xs) sscanf(xs + 7, "%15[^\r]", seq);
        if (p->len < head + body) return;
        size_t keep = head < sizeof p->s->last_req ? head : sizeof p->s->last_req - 1;
        memcpy(p->s->last_req, p->buf, keep);
        p->s->last_req[keep] = 0;
        memmove(p->buf, p->buf + head + body, p->len - head - body);
        p->len -= head + body;
        on_request(p, seq);
        if (p->closed) return;
    }
}

static void on_conn(uv_stream_t *l, int status)
{
    tserver *s = l->data;
    if (status < 0) return;
    peer *p = calloc(1, sizeof *p);
    p->s = s;
    uv_tcp_init(L, &p->h);
    p->h.data = p;
    if (uv_accept(l, (uv_stream_t *)&p->h) != 0) {
        uv_close((uv_handle_t *)&p->h, peer_closed);
        return;
    }
    s->accepted++;
    uv_read_start((uv_stream_t *)&p->h, tcp_alloc, peer_read);
}

static void server_start(tserver *s, int mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    uv_tcp_init(L, &s->listen);
    s->listen.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&s->listen, (struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&s->listen, 64, on_conn);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&s->listen, (struct sockaddr *)&got, &len);
    s->port = ntohs(got.sin_port);
}

static void listen_closed(uv_handle_t *h) { ((tserver *)h->data)->port = 0; }

/* The listener lives in the test's frame: closed before it returns. */
static void server_stop(tserver *s)
{
    uv_close((uv_handle_t *)&s->listen, listen_closed);
    WAIT(s->port == 0, 2000);
}

/* ---- the client side ---- */

typedef struct {
    int done, status, http;
    char msg[300];
    char body[8192];
    size_t blen;
    char headers[2048]; /* "name=value\n"... */
} result;

static void on_done(jr_hc_req *r, int status, const jr_hc_response *res, const char *msg, void *ud)
{
    (void)r;
    result *o = ud;
    o->done = 1;
    o->status = status;
    snprintf(o->msg, sizeof o->msg, "%s", msg ? msg : "");
    if (res) {
        o->http = res->status;
        o->blen = res->body_len < sizeof o->body ? res->body_len : sizeof o->body;
        memcpy(o->body, res->body, o->blen);
        size_t at = 0;
        for (size_t i = 0; i < res->nhdr && at < sizeof o->headers; i++)
            at += (size_t)snprintf(o->headers + at, sizeof o->headers - at, "%s=%s\n", res->names[i], res->values[i]);
    }
}

static jr_hc_req *start(jr_hc *c, const char *method, const char *url, const char *seq, const char *body,
                        uint64_t timeout_ms, result *out)
{
    memset(out, 0, sizeof *out);
    const char *names[] = {"x-seq", "Accept"};
    const char *values[] = {seq ? seq : "-", "text/plain"};
    size_t nl[] = {5, 6}, vl[] = {strlen(values[0]), 10};
    jr_hc_request_spec s = {method, url, names, nl, values, vl, 2, body, body ? strlen(body) : 0, timeout_ms};
    jr_hc_req *r = NULL;
    char err[300];
    int rc = jr_hc_request(c, &s, on_done, out, &r, err, sizeof err);
    if (rc != JR_HC_OK) {
        out->done = 1;
        out->status = rc;
        snprintf(out->msg, sizeof out->msg, "%s", err);
        return NULL;
    }
    return r;
}

static jr_hc *client(unsigned max, uint64_t idle_ms)
{
    jr_hc_options o;
    jr_hc_options_defaults(&o);
    o.max_per_origin = max;
    o.idle_timeout_ms = idle_ms;
    char err[200];
    return jr_hc_new(L, &o, err, sizeof err);
}

static void url_of(char *buf, size_t n, const char *scheme, const char *host, int port, const char *path)
{
    snprintf(buf, n, "%s://%s:%d%s", scheme, host, port, path);
}

static jr_hc_stats stats(jr_hc *c)
{
    jr_hc_stats st;
    jr_hc_get_stats(c, &st);
    return st;
}

/* ---- tests ---- */

TEST(keep_alive_reuses_one_connection)
{
    tserver s;
    server_start(&s, M_OK);
    jr_hc *c = client(4, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/a/b?x=1");
    for (int i = 0; i < 10; i++) {
        result r;
        char seq[8];
        snprintf(seq, sizeof seq, "%d", i);
        start(c, "GET", url, seq, NULL, 5000, &r);
        WAIT(r.done, 5000);
        CHECK_EQ_INT(r.status, JR_HC_OK);
        CHECK_EQ_INT(r.http, 200);
        CHECK_EQ_MEM(r.body, r.blen, seq);
    }
    CHECK_EQ_INT(s.accepted, 1);
    CHECK(strstr(s.last_req, "GET /a/b?x=1 HTTP/1.1\r\n") == s.last_req);
    char host[64];
    snprintf(host, sizeof host, "Host: 127.0.0.1:%d\r\n", s.port);
    CHECK(strstr(s.last_req, host) != NULL);
    CHECK(strstr(s.last_req, "Connection: keep-alive\r\n") != NULL);
    jr_hc_stats st = stats(c);
    CHECK_EQ_INT(st.connections, 1);
    CHECK_EQ_INT(st.idle, 1);
    CHECK_EQ_INT(st.requests, 10);
    CHECK_EQ_INT(st.reused, 9);
    jr_hc_free(c);
    WAIT(s.eofs == 1, 2000);
    CHECK_EQ_INT(s.eofs, 1);
    server_stop(&s);
}

TEST(chunked_interim_and_repeated_headers)
{
    tserver s;
    server_start(&s, M_CHUNKED);
    jr_hc *c = client(4, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "localhost", s.port, "/c"); /* resolved through getaddrinfo */
    result r;
    start(c, "POST", url, "1", "{\"a\":1}", 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_OK);
    CHECK_EQ_INT(r.http, 201);
    CHECK_EQ_MEM(r.body, r.blen, "hello world");
    CHECK(strstr(r.headers, "x-twice=a\nx-twice=b\n") != NULL);
    CHECK(strstr(r.headers, "content-type=text/plain\n") != NULL);
    CHECK(strstr(r.headers, "x-empty=\n") != NULL);
    CHECK(strstr(s.last_req, "Content-Length: 7\r\n") != NULL);
    CHECK_EQ_INT(stats(c).idle, 1); /* chunked framing keeps the connection */
    jr_hc_free(c);
    server_stop(&s);
}

TEST(close_delimited_body)
{
    tserver s;
    server_start(&s, M_CLOSE_DELIM);
    jr_hc *c = client(4, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/");
    result r;
    start(c, "GET", url, "1", NULL, 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_OK);
    CHECK_EQ_MEM(r.body, r.blen, "until the end");
    CHECK_EQ_INT(stats(c).connections, 0);
    jr_hc_free(c);
    server_stop(&s);
}

TEST(reset_mid_response_is_closed)
{
    tserver s;
    server_start(&s, M_RESET);
    jr_hc *c = client(4, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/");
    result r;
    start(c, "GET", url, "1", NULL, 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_ECLOSED);
    CHECK_EQ_INT(s.accepted, 1); /* bytes had arrived: never retried */
    CHECK_EQ_INT(stats(c).connections, 0);
    jr_hc_free(c);
    server_stop(&s);
}

TEST(silent_server_times_out)
{
    tserver s;
    server_start(&s, M_SILENT);
    jr_hc *c = client(4, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/");
    result r;
    start(c, "GET", url, "1", NULL, 100, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_ETIMEOUT);
    CHECK(strstr(r.msg, "timed out") != NULL);
    WAIT(s.eofs == 1, 2000); /* the connection is closed, not pooled */
    CHECK_EQ_INT(s.eofs, 1);
    CHECK_EQ_INT(stats(c).connections, 0);
    jr_hc_free(c);
    server_stop(&s);
}

static void flag_closed(uv_handle_t *h) { *(int *)h->data = 1; }

/* A port nothing listens on (bound, then closed). */
static int free_port(void)
{
    uv_tcp_t t;
    uv_tcp_init(L, &t);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
    int port = ntohs(got.sin_port), closed = 0;
    t.data = &closed;
    uv_close((uv_handle_t *)&t, flag_closed);
    WAIT(closed, 2000);
    return port;
}

TEST(refused_port_and_bad_requests)
{
    jr_hc *c = client(4, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", free_port(), "/");
    result r;
    start(c, "GET", url, "1", NULL, 5000, &r);
    CHECK(!r.done); /* never answered from inside jr_hc_request */
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_EREFUSED);
    CHECK(strstr(r.msg, "cannot connect to http://127.0.0.1:") != NULL);
    start(c, "GET", "ftp://x/", "1", NULL, 5000, &r);
    CHECK_EQ_INT(r.status, JR_HC_EINVALID);
    start(c, "GET", "http://a b/", "1", NULL, 5000, &r);
    CHECK_EQ_INT(r.status, JR_HC_EINVALID);
    start(c, "GET", "http://x:99999/", "1", NULL, 5000, &r);
    CHECK_EQ_INT(r.status, JR_HC_EINVALID);
    start(c, "GE T", "http://x/", "1", NULL, 5000, &r);
    CHECK_EQ_INT(r.status, JR_HC_EINVALID);
    start(c, "GET", "http://no-such-host.invalid/", "1", NULL, 5000, &r);
    WAIT(r.done, 10000);
    CHECK_EQ_INT(r.status, JR_HC_ERESOLVE);
    jr_hc_free(c);
}

TEST(queue_beyond_max_per_origin_is_fifo)
{
    tserver s;
    server_start(&s, M_HOLD);
    jr_hc *c = client(2, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/q");
    result r[5];
    for (int i = 0; i < 5; i++) {
        char seq[8];
        snprintf(seq, sizeof seq, "%d", i);
        start(c, "GET", url, seq, NULL, 5000, &r[i]);
    }
    WAIT(s.nheld == 2, 5000);
    jr_hc_stats st = stats(c);
    CHECK_EQ_INT(st.connections, 2);
    CHECK_EQ_INT(st.in_use, 2);
    CHECK_EQ_INT(st.queued, 3);
    /* answer what is held, round by round: the queue goes in order */
    int order[5], n = 0;
    for (int round = 0; round < 5 && n < 5; round++) {
        WAIT(s.nheld > 0, 5000);
        release_held(&s);
        int before = n;
        WAIT(r[0].done + r[1].done + r[2].done + r[3].done + r[4].done > before, 5000);
        for (int i = 0; i < 5; i++) {
            int seen = 0;
            for (int k = 0; k < n; k++) seen |= order[k] == i;
            if (!seen && r[i].done) order[n++] = i;
        }
    }
    CHECK_EQ_INT(n, 5);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(r[i].status, JR_HC_OK);
        char seq[8];
        snprintf(seq, sizeof seq, "%d", i);
        CHECK_EQ_MEM(r[i].body, r[i].blen, seq);
    }
    /* 0 and 1 first, then 2 and 3 (in either order across two connections), then 4 */
    CHECK(order[0] + order[1] == 1 && order[2] + order[3] == 5 && order[4] == 4);
    CHECK_EQ_INT(s.accepted, 2);
    jr_hc_free(c);
    server_stop(&s);
}

TEST(idle_timeout_closes)
{
    tserver s;
    server_start(&s, M_OK);
    jr_hc *c = client(4, 50);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/");
    result r;
    start(c, "GET", url, "1", NULL, 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_OK);
    WAIT(s.eofs == 1, 5000); /* the client closed the idle connection */
    CHECK_EQ_INT(s.eofs, 1);
    CHECK_EQ_INT(stats(c).connections, 0);
    jr_hc_free(c);
    server_stop(&s);
}

TEST(malformed_and_too_large)
{
    tserver s;
    server_start(&s, M_MALFORMED);
    jr_hc *c = client(4, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/");
    result r;
    start(c, "GET", url, "1", NULL, 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_EINVALID);
    CHECK(strstr(r.msg, "malformed response") != NULL);
    jr_hc_free(c);
    server_stop(&s);

    server_start(&s, M_BIG);
    jr_hc_options o;
    jr_hc_options_defaults(&o);
    o.max_response = 1000;
    char err[200];
    c = jr_hc_new(L, &o, err, sizeof err);
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/");
    start(c, "GET", url, "1", NULL, 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_ETOOLARGE);
    jr_hc_free(c);
    server_stop(&s);
}

TEST(head_has_no_body_and_keeps_the_connection)
{
    tserver s;
    server_start(&s, M_HEAD);
    jr_hc *c = client(4, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/");
    for (int i = 0; i < 2; i++) {
        result r;
        start(c, "HEAD", url, "1", NULL, 5000, &r);
        WAIT(r.done, 5000);
        CHECK_EQ_INT(r.status, JR_HC_OK);
        CHECK_EQ_INT(r.blen, 0);
        CHECK(strstr(r.headers, "content-length=100\n") != NULL);
    }
    CHECK_EQ_INT(s.accepted, 1);
    jr_hc_free(c);
    server_stop(&s);
}

TEST(reused_connection_dropped_retries_idempotent_only)
{
    tserver s;
    server_start(&s, M_DROP_SECOND);
    jr_hc *c = client(4, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/");
    result r;
    start(c, "GET", url, "1", NULL, 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_OK);
    /* the second GET on that connection is dropped unanswered: sent again on a fresh one */
    start(c, "GET", url, "2", NULL, 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_OK);
    CHECK_EQ_MEM(r.body, r.blen, "2");
    CHECK_EQ_INT(s.accepted, 2);
    /* a POST after its write went through is not: the server may have acted on it */
    start(c, "POST", url, "3", "x", 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_ECLOSED);
    CHECK_EQ_INT(s.accepted, 2);
    jr_hc_free(c);
    server_stop(&s);
}

TEST(abort_closes_the_connection_and_free_ends_pending)
{
    tserver s;
    server_start(&s, M_SILENT);
    jr_hc *c = client(1, 30000);
    char url[128];
    url_of(url, sizeof url, "http", "127.0.0.1", s.port, "/");
    result a, b, d;
    jr_hc_req *ra = start(c, "GET", url, "1", NULL, 0, &a);
    WAIT(s.requests == 1, 5000);
    start(c, "GET", url, "2", NULL, 0, &b); /* queued behind a */
    CHECK_EQ_INT(stats(c).queued, 1);
    jr_hc_abort(ra); /* no callback; its connection closes; b gets a new one */
    WAIT(s.eofs == 1 && s.requests == 2, 5000);
    CHECK_EQ_INT(s.eofs, 1);
    CHECK_EQ_INT(s.requests, 2);
    CHECK(!a.done);
    start(c, "GET", url, "3", NULL, 0, &d); /* queued behind b */
    jr_hc_free(c);
    CHECK(b.done && b.status == JR_HC_ECLOSED);
    CHECK(d.done && d.status == JR_HC_ECLOSED);
    server_stop(&s);
}

/* ---- TLS ---- */

typedef struct {
    int fd;
    int port;
    SSL_CTX *ctx;
    pthread_t th;
    int served, handshakes_failed;
} tls_server;

static void *tls_thread(void *arg)
{
    tls_server *t = arg;
    for (;;) {
        int fd = accept(t->fd, NULL, NULL);
        if (fd < 0) return NULL;
        SSL *ssl = SSL_new(t->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
            __atomic_add_fetch(&t->handshakes_failed, 1, __ATOMIC_SEQ_CST);
        } else {
            char buf[4096];
            size_t len = 0;
            for (;;) {
                int n = SSL_read(ssl, buf + len, (int)(sizeof buf - len - 1));
                if (n <= 0) break;
                len += (size_t)n;
                buf[len] = 0;
                char *end;
                while ((end = strstr(buf, "\r\n\r\n"))) {
                    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";
                    SSL_write(ssl, resp, (int)strlen(resp));
                    __atomic_add_fetch(&t->served, 1, __ATOMIC_SEQ_CST);
                    size_t used = (size_t)(end - buf) + 4;
                    memmove(buf, buf + used, len - used + 1);
                    len -= used;
                }
            }
        }
        SSL_free(ssl);
        close(fd);
        ERR_clear_error();
    }
}

static char g_dir[] = "/tmp/jr-hc-tls-XXXXXX";

static int tls_start(tls_server *t)
{
    memset(t, 0, sizeof *t);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost "
             "-keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
             g_dir, g_dir);
    if (system(cmd) != 0) return -1;
    t->ctx = SSL_CTX_new(TLS_server_method());
    char p[256];
    snprintf(p, sizeof p, "%s/cert.pem", g_dir);
    if (SSL_CTX_use_certificate_file(t->ctx, p, SSL_FILETYPE_PEM) != 1) return -1;
    snprintf(p, sizeof p, "%s/key.pem", g_dir);
    if (SSL_CTX_use_PrivateKey_file(t->ctx, p, SSL_FILETYPE_PEM) != 1) return -1;
    t->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(t->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(t->fd, 16) != 0) return -1;
    socklen_t len = sizeof a;
    getsockname(t->fd, (struct sockaddr *)&a, &len);
    t->port = ntohs(a.sin_port);
    return pthread_create(&t->th, NULL, tls_thread, t);
}

static void tls_stop(tls_server *t)
{
    shutdown(t->fd, SHUT_RDWR); /* accept() returns: the thread ends */
    pthread_join(t->th, NULL);
    close(t->fd);
    SSL_CTX_free(t->ctx);
}

static jr_hc *tls_client(const char *ca_file)
{
    jr_hc_options o;
    jr_hc_options_defaults(&o);
    o.ca_file = ca_file;
    char err[300];
    jr_hc *c = jr_hc_new(L, &o, err, sizeof err);
    return c;
}

TEST(tls_verified_refused_and_wrong_host)
{
    if (!mkdtemp(g_dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    tls_server t;
    int ok = tls_start(&t) == 0;
    CHECK(ok);
    if (!ok) return;
    char ca[256], url[128];
    snprintf(ca, sizeof ca, "%s/cert.pem", g_dir);

    /* verified with its CA file; two requests, one connection */
    jr_hc *c = tls_client(ca);
    url_of(url, sizeof url, "https", "localhost", t.port, "/s");
    result r;
    for (int i = 0; i < 2; i++) {
        start(c, "GET", url, "1", NULL, 5000, &r);
        WAIT(r.done, 5000);
        CHECK_EQ_INT(r.status, JR_HC_OK);
        CHECK_EQ_MEM(r.body, r.blen, "secure");
    }
    CHECK_EQ_INT(stats(c).reused, 1);
    jr_hc_free(c);

    /* the system CAs do not know it */
    c = tls_client(NULL);
    start(c, "GET", url, "1", NULL, 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_ETLS);
    CHECK(strstr(r.msg, "certificate") != NULL);
    jr_hc_free(c);

    /* trusted CA, but the certificate names localhost, not 127.0.0.1 */
    c = tls_client(ca);
    url_of(url, sizeof url, "https", "127.0.0.1", t.port, "/s");
    start(c, "GET", url, "1", NULL, 5000, &r);
    WAIT(r.done, 5000);
    CHECK_EQ_INT(r.status, JR_HC_ETLS);
    CHECK(strstr(r.msg, "mismatch") != NULL);
    jr_hc_free(c);

    CHECK_EQ_INT(__atomic_load_n(&t.served, __ATOMIC_SEQ_CST), 2);
    tls_stop(&t);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    test_loop_init();
    RUN(keep_alive_reuses_one_connection);
    RUN(chunked_interim_and_repeated_headers);
    RUN(close_delimited_body);
    RUN(reset_mid_response_is_closed);
    RUN(silent_server_times_out);
    RUN(refused_port_and_bad_requests);
    RUN(queue_beyond_max_per_origin_is_fifo);
    RUN(idle_timeout_closes);
    RUN(malformed_and_too_large);
    RUN(head_has_no_body_and_keeps_the_connection);
    RUN(reused_connection_dropped_retries_idempotent_only);
    RUN(abort_closes_the_connection_and_free_ends_pending);
    RUN(tls_verified_refused_and_wrong_host);
    return test_loop_close() ? 1 : test_summary();
}
