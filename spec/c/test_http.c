/* test_http.c - the HTTP/1.1 server (core/http.c), driven in-process.
 *
 * The server and raw TCP clients (uv_tcp handles) share one uv loop. Every
 * wait is on an event (bytes arrived, EOF, a counter changed) with an unref'd
 * guard timer so a broken test fails instead of hanging. Timeout tests use
 * 100-300 ms timeouts. */
#include "buf.h"
#include "http.h"
#include "log.h"
#include "test.h"
#include "test_tcp.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t loop_storage;
static uv_loop_t *L = &loop_storage;

/* ------------------------------------------------------------ waiting */

static uv_timer_t g_guard;
static int g_timed_out;

static void on_guard(uv_timer_t *t) { g_timed_out = 1; }

static void wait_begin(unsigned ms)
{
    g_timed_out = 0;
    uv_timer_start(&g_guard, on_guard, ms, 0);
}

static void wait_end(void) { uv_timer_stop(&g_guard); }

/* Run the loop until cond holds (or ms passes, or nothing is left to run). */
#define WAIT(cond, ms)                                                  \
    do {                                                                \
        wait_begin(ms);                                                 \
        while (!(cond) && !g_timed_out && uv_loop_alive(L)) uv_run(L, UV_RUN_ONCE); \
        wait_end();                                                     \
    } while (0)

/* Run until every handle is closed (the guard is unref'd). */
static void drain(void)
{
    wait_begin(3000);
    while (uv_loop_alive(L) && !g_timed_out) uv_run(L, UV_RUN_ONCE);
    wait_end();
}

static uint64_t now_ms(void)
{
    uv_update_time(L);
    return uv_now(L);
}

/* ------------------------------------------------------------ raw clients */

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    jr_buf in;      /* everything received, NUL-terminated */
    int connected, connect_status;
    int eof, read_err;
    int closing, closed;
    uint64_t eof_ms;
    unsigned head_mask; /* bit i: the i-th response answers a HEAD request */
} client;

static void cl_closed(uv_handle_t *h)
{
    client *cl = h->data;
    cl->closed = 1;
}

static void cl_close(client *cl)
{
    if (!cl->closing) {
        cl->closing = 1;
        uv_close((uv_handle_t *)&cl->tcp, cl_closed);
    }
}

static void cl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *cl = s->data;
    if (n > 0) {
        if (jr_buf_reserve(&cl->in, (size_t)n + 1) != 0) {
            fprintf(stderr, "  client: out of memory\n");
            abort();
        }
        jr_buf_append(&cl->in, buf->base, (size_t)n);
        cl->in.data[cl->in.len] = '\0';
    } else if (n < 0) {
        if (n != UV_EOF) cl->read_err = (int)n;
        cl->eof = 1;
        cl->eof_ms = uv_now(L);
        cl_close(cl); /* like a normal client: done once the server closed */
    }
}

static void cl_on_connect(uv_connect_t *r, int status)
{
    client *cl = r->data;
    cl->connect_status = status;
    cl->connected = 1;
    if (status == 0) uv_read_start((uv_stream_t *)&cl->tcp, tcp_alloc, cl_read);
}

static client *cl_new_addr(const struct sockaddr *addr, int rcvbuf)
{
    client *cl = calloc(1, sizeof *cl);
    uv_tcp_init_ex(L, &cl->tcp, addr->sa_family);
    cl->tcp.data = cl;
    cl->creq.data = cl;
    if (rcvbuf) {
        int sz = rcvbuf;
        uv_recv_buffer_size((uv_handle_t *)&cl->tcp, &sz);
    }
    uv_tcp_connect(&cl->creq, &cl->tcp, addr, cl_on_connect);
    WAIT(cl->connected, 2000);
    return cl;
}

static client *cl_new(int port)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    return cl_new_addr((const struct sockaddr *)&a, 0);
}

/* Close (if the server did not) and free once the handle is closed. */
static void cl_free(client *cl)
{
    if (!cl) return;
    cl_close(cl);
    WAIT(cl->closed, 2000);
    jr_buf_free(&cl->in);
    free(cl);
}

static void cl_sendn(client *cl, const char *s, size_t n)
{
    if (cl->closing) return;
    tcp_write_copy((uv_stream_t *)&cl->tcp, s, n);
}

static void cl_send(client *cl, const char *s) { cl_sendn(cl, s, strlen(s)); }

/* Wait, without running the loop (so the server reads nothing), until the
 * server's kernel acknowledged all we sent: the bytes are in its socket.
 * (Loopback usually delivers within the write, but not on a busy machine.) */
static int cl_wait_acked(client *cl)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&cl->tcp, &fd) != 0) return 0;
    for (int i = 0; i < 2000; i++) {
        int n = -1;
        if (uv_stream_get_write_queue_size((uv_stream_t *)&cl->tcp) == 0 &&
            ioctl(fd, TIOCOUTQ, &n) == 0 && n == 0)
            return 1;
        usleep(1000);
    }
    return 0;
}

/* ------------------------------------------------------------ response parsing */

typedef struct {
    int status;
    char head[4096];
    char body[8192];
    size_t blen;
} resp;

static resp R[8];

static const char *find_header(const char *head, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r' && line[2] != '\0') {
        line += 2;
        const char *end = strstr(line, "\r\n");
        if (!end) break;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') v++;
            size_t vl = (size_t)(end - v);
            if (vl >= outlen) vl = outlen - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        line = end;
    }
    return NULL;
}

/* Value of a response header, or NULL (static buffer, one at a time). */
static const char *H(const resp *r, const char *name)
{
    static char v[1024];
    return find_header(r->head, name, v, sizeof v);
}

/* Parse complete responses out of d into R; returns how many. */
static int parse_resps(const char *d, size_t len, unsigned head_mask)
{
    size_t off = 0;
    int n = 0;
    while (n < 8 && d) {
        const char *e = memmem(d + off, len - off, "\r\n\r\n", 4);
        if (!e) break;
        size_t hl = (size_t)(e - (d + off)) + 4;
        resp *r = &R[n];
        size_t cp = hl < sizeof r->head ? hl : sizeof r->head - 1;
        memcpy(r->head, d + off, cp);
        r->head[cp] = '\0';
        r->status = hl > 12 ? atoi(d + off + 9) : 0;
        char v[64];
        size_t cl = find_header(r->head, "Content-Length", v, sizeof v) ? strtoul(v, NULL, 10) : 0;
        if ((head_mask & (1u << n)) || r->status < 200 || r->status == 204 || r->status == 304)
            cl = 0;
        if (len - off - hl < cl) break;
        size_t bc = cl < sizeof r->body ? cl : sizeof r->body - 1;
        memcpy(r->body, d + off + hl, bc);
        r->body[bc] = '\0';
        r->blen = cl;
        off += hl + cl;
        n++;
    }
    return n;
}

static int got(client *cl) { return parse_resps(cl->in.data, cl->in.len, cl->head_mask); }

/* ------------------------------------------------------------ the test server */

typedef struct {
    jr_http_server *srv;
    int port;
    int nreq;
    char order[512];      /* paths delivered and answers made, in order */
    jr_http_req *held[8];
    int nheld;
    int rc1, rc2, rc3, rc4, rc5, rc_ok;
    int delayed_rc;
    int big_rc;
    uint64_t big_at;
    int done_called;
    /* the last request as seen by the handler */
    char method[16], path[256], query[256], target[256], host[64], h0name[64], h0value[64];
    char remote[64], id[80];
    size_t hcount;
    int minor, ka, upgrade, head;
} tserver;

static tserver TS;

typedef struct {
    uv_timer_t t;
    jr_http_req *req;
} delayed;

static void delayed_closed(uv_handle_t *h) { free(h->data); }

static void cpy(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void add_order(const char *s)
{
    strncat(TS.order, s, sizeof TS.order - strlen(TS.order) - 1);
    strncat(TS.order, ",", sizeof TS.order - strlen(TS.order) - 1);
}

static int echo(jr_http_req *req)
{
    size_t ml, pl, ql, tl, bl, hl;
    const char *m = jr_http_req_method(req, &ml);
    const char *p = jr_http_req_path(req, &pl);
    const char *q = jr_http_req_query(req, &ql);
    const char *t = jr_http_req_target(req, &tl);
    const char *b = jr_http_req_body(req, &bl);
    const char *x = jr_http_req_header(req, "x-test", &hl);
    const char *id = jr_http_req_id(req);
    char remote[80];
    snprintf(remote, sizeof remote, "%s:%d", jr_http_req_remote_addr(req),
             jr_http_req_remote_port(req));
    char blen[32];
    snprintf(blen, sizeof blen, "%zu", bl);
    jr_http_header hs[] = {
        {"Content-Type", 12, "text/plain", 10},
        {"X-Method", 8, m, ml},
        {"X-Path", 6, p, pl},
        {"X-Query", 7, q, ql},
        {"X-Target", 8, t, tl},
        {"X-Id", 4, id, strlen(id)},
        {"X-Minor", 7, jr_http_req_version_minor(req) ? "1" : "0", 1},
        {"X-Upgrade", 9, jr_http_req_is_upgrade(req) ? "1" : "0", 1},
        {"X-Remote", 8, remote, strlen(remote)},
        {"X-Body-Len", 10, blen, strlen(blen)},
        {"X-Test-Echo", 11, x ? x : "", x ? hl : 0},
        /* must be ignored: the server frames the response itself */
        {"Content-Length", 14, "999", 3},
        {"Connection", 10, "upgrade", 7},
    };
    return jr_http_respond(req, 200, hs, sizeof hs / sizeof hs[0], bl ? b : "hello", bl ? bl : 5);
}

static void on_delayed(uv_timer_t *t)
{
    delayed *d = t->data;
    size_t pl;
    const char *p = jr_http_req_path(d->req, &pl);
    char tag[300];
    snprintf(tag, sizeof tag, "R:%.*s", (int)pl, p);
    add_order(tag);
    TS.delayed_rc = jr_http_respond(d->req, 200, NULL, 0, "slow", 4);
    jr_http_req_release(d->req);
    uv_close((uv_handle_t *)&d->t, delayed_closed);
}

static void on_request(jr_http_req *req, void *ud)
{
    tserver *ts = ud;
    size_t n;
    const char *s;
    ts->nreq++;
    s = jr_http_req_method(req, &n);
    cpy(ts->method, sizeof ts->method, s, n);
    s = jr_http_req_path(req, &n);
    cpy(ts->path, sizeof ts->path, s, n);
    s = jr_http_req_query(req, &n);
    cpy(ts->query, sizeof ts->query, s, n);
    s = jr_http_req_target(req, &n);
    cpy(ts->target, sizeof ts->target, s, n);
    s = jr_http_req_header(req, "HOST", &n);
    cpy(ts->host, sizeof ts->host, s ? s : "", s ? n : 0);
    ts->hcount = jr_http_req_header_count(req);
    const char *hn, *hv;
    size_t hnl, hvl;
    jr_http_req_header_at(req, 0, &hn, &hnl, &hv, &hvl);
    cpy(ts->h0name, sizeof ts->h0name, hn ? hn : "", hnl);
    cpy(ts->h0value, sizeof ts->h0value, hv ? hv : "", hvl);
    cpy(ts->remote, sizeof ts->remote, jr_http_req_remote_addr(req),
        strlen(jr_http_req_remote_addr(req)));
    cpy(ts->id, sizeof ts->id, jr_http_req_id(req), strlen(jr_http_req_id(req)));
    ts->minor = jr_http_req_version_minor(req);
    ts->ka = jr_http_req_keepalive(req);
    ts->upgrade = jr_http_req_is_upgrade(req);
    ts->head = jr_http_req_is_head(req);
    add_order(ts->path);

    if (strcmp(ts->path, "/hold") == 0) {
        jr_http_req_retain(req);
        if (ts->nheld < 8) ts->held[ts->nheld++] = req;
        else jr_http_req_release(req);
        return;
    }
    if (strcmp(ts->path, "/slow") == 0) {
        delayed *d = calloc(1, sizeof *d);
        d->req = req;
        jr_http_req_retain(req);
        uv_timer_init(L, &d->t);
        d->t.data = d;
        uv_timer_start(&d->t, on_delayed, 100, 0);
        return;
    }
    if (strcmp(ts->path, "/double") == 0) {
        ts->rc1 = jr_http_respond(req, 200, NULL, 0, "one", 3);
        ts->rc2 = jr_http_respond(req, 200, NULL, 0, "two", 3);
        return;
    }
    if (strcmp(ts->path, "/invalid") == 0) {
        jr_http_header crlf_v = {"X-A", 3, "a\r\nB: c", 7};
        jr_http_header lf_n = {"X\nA", 3, "v", 1};
        ts->rc1 = jr_http_respond(req, 103, /* a 1xx is no final answer */ NULL, 0, NULL, 0);
        ts->rc2 = jr_http_respond(req, 600, NULL, 0, NULL, 0);
        ts->rc3 = jr_http_respond(req, 200, &crlf_v, 1, NULL, 0);
        ts->rc4 = jr_http_respond(req, 200, &lf_n, 1, NULL, 0);
        ts->rc5 = jr_http_req_alive(req);
        ts->rc_ok = jr_http_respond(req, 201, NULL, 0, "made", 4);
        return;
    }
    if (strcmp(ts->path, "/nocontent") == 0) {
        ts->rc1 = jr_http_respond(req, 204, NULL, 0, "xyz", 3);
        return;
    }
    if (strcmp(ts->path, "/notmod") == 0) {
        ts->rc1 = jr_http_respond(req, 304, NULL, 0, NULL, 0);
        return;
    }
    if (strcmp(ts->path, "/big") == 0) {
        size_t sz = 16u << 20;
        char *big = malloc(sz);
        memset(big, 'b', sz);
        ts->big_at = uv_now(L);
        ts->big_rc = jr_http_respond(req, 200, NULL, 0, big, sz);
        free(big); /* the server copied what it still needs */
        return;
    }
    echo(req);
}

static jr_http_config test_config(void)
{
    jr_http_config cfg;
    jr_http_config_defaults(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.header_timeout_ms = 3000;
    cfg.body_timeout_ms = 3000;
    cfg.idle_timeout_ms = 3000;
    cfg.write_timeout_ms = 3000;
    return cfg;
}

static int start_server(const jr_http_config *cfg)
{
    memset(&TS, 0, sizeof TS);
    char err[256] = "";
    TS.srv = jr_http_server_start(L, cfg, on_request, &TS, err, sizeof err, NULL);
    if (!TS.srv) {
        fprintf(stderr, "  start failed: %s\n", err);
        return 0;
    }
    TS.port = jr_http_server_port(TS.srv);
    return TS.port > 0;
}

static void on_done(void *ud) { ((tserver *)ud)->done_called++; }

static void stop_server(void)
{
    for (int i = 0; i < TS.nheld; i++) jr_http_req_release(TS.held[i]);
    TS.nheld = 0;
    if (TS.srv) jr_http_server_free(TS.srv);
    TS.srv = NULL;
    drain();
}

static client *request(const char *raw)
{
    client *cl = cl_new(TS.port);
    cl_send(cl, raw);
    return cl;
}

/* raw on a fresh connection is answered 200 (the answer stays in R[0]). */
static void request_ok(const char *raw)
{
    client *cl = request(raw);
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, 200);
    cl_free(cl);
}

/* ------------------------------------------------------------ unit tests */

TEST(url_decode)
{
    char out[64];
    CHECK_EQ_INT(jr_http_url_decode(out, "a%20b", 5, 0), 3);
    CHECK_EQ_MEM(out, 3, "a b");
    CHECK_EQ_INT(jr_http_url_decode(out, "a+b", 3, 0), 3);
    CHECK_EQ_MEM(out, 3, "a+b");
    CHECK_EQ_INT(jr_http_url_decode(out, "a+b", 3, 1), 3);
    CHECK_EQ_MEM(out, 3, "a b");
    CHECK_EQ_INT(jr_http_url_decode(out, "%41%4a%4A%c3%A9", 15, 0), 5);
    CHECK_EQ_MEM(out, 5, "AJJ\xc3\xa9");
    CHECK_EQ_INT(jr_http_url_decode(out, "", 0, 0), 0);
    CHECK_EQ_INT(jr_http_url_decode(out, "%", 1, 0), -1);
    CHECK_EQ_INT(jr_http_url_decode(out, "ab%4", 4, 0), -1);
    CHECK_EQ_INT(jr_http_url_decode(out, "%zz", 3, 0), -1);
    CHECK_EQ_INT(jr_http_url_decode(out, "%g0", 3, 0), -1);
    /* only len bytes are looked at */
    CHECK_EQ_INT(jr_http_url_decode(out, "ab%20", 3, 0), -1);
    char inplace[] = "x%2Fy%25z";
    long n = jr_http_url_decode(inplace, inplace, strlen(inplace), 0);
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_MEM(inplace, (size_t)n, "x/y%z");
}

TEST(format_date)
{
    char out[32];
    size_t n = jr_http_format_date(out, (time_t)784111777);
    CHECK_EQ_INT(n, 29);
    CHECK_EQ_STR(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    n = jr_http_format_date(out, (time_t)0);
    CHECK_EQ_INT(n, 29);
    CHECK_EQ_STR(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    n = jr_http_format_date(out, (time_t)951782400); /* leap day 2000 */
    CHECK_EQ_STR(out, "Tue, 29 Feb 2000 00:00:00 GMT");
}

TEST(status_text)
{
    CHECK_EQ_STR(jr_http_status_text(200), "OK");
    CHECK_EQ_STR(jr_http_status_text(204), "No Content");
    CHECK_EQ_STR(jr_http_status_text(404), "Not Found");
    CHECK_EQ_STR(jr_http_status_text(408), "Request Timeout");
    CHECK_EQ_STR(jr_http_status_text(413), "Payload Too Large");
    CHECK_EQ_STR(jr_http_status_text(431), "Request Header Fields Too Large");
    CHECK_EQ_STR(jr_http_status_text(503), "Service Unavailable");
    CHECK_EQ_STR(jr_http_status_text(799), "Unknown");
    CHECK_EQ_STR(jr_http_status_text(0), "Unknown");
}

TEST(config_defaults)
{
    jr_http_config c;
    memset(&c, 0x5a, sizeof c);
    jr_http_config_defaults(&c);
    CHECK_EQ_STR(c.host, "0.0.0.0");
    CHECK_EQ_INT(c.port, 8000);
    CHECK_EQ_INT(c.reuseport, 0);
    CHECK_EQ_INT(c.backlog, 511);
    CHECK_EQ_INT(c.max_header_size, 16384);
    CHECK_EQ_INT(c.max_headers, 100);
    CHECK_EQ_INT(c.max_body_size, 1024 * 1024);
    CHECK_EQ_INT(c.header_timeout_ms, 10000);
    CHECK_EQ_INT(c.body_timeout_ms, 30000);
    CHECK_EQ_INT(c.idle_timeout_ms, 60000);
    CHECK_EQ_INT(c.write_timeout_ms, 30000);
    CHECK_EQ_INT(c.max_connections, 10000);
    CHECK_EQ_INT(c.max_keepalive_requests, 0);
    CHECK_EQ_INT(c.access_log, 0);
}

/* ------------------------------------------------------------ server tests */

TEST(start_errors_and_reuseport)
{
    jr_http_config cfg = test_config();
    char err[256];
    jr_http_server *a = jr_http_server_start(L, &cfg, on_request, &TS, err, sizeof err, NULL);
    CHECK(a != NULL);
    if (!a) return;
    /* same port again without SO_REUSEPORT: bind fails with a clear message */
    jr_http_config c2 = cfg;
    c2.port = jr_http_server_port(a);
    err[0] = '\0';
    int uverr = 0;
    jr_http_server *b = jr_http_server_start(L, &c2, on_request, &TS, err, sizeof err, &uverr);
    CHECK(b == NULL);
    CHECK_EQ_INT(uverr, UV_EADDRINUSE);
    CHECK(strstr(err, "bind 127.0.0.1:") != NULL);
    CHECK(strstr(err, "address already in use") != NULL);
    jr_http_server_free(a);

    /* two reuseport listeners share a port */
    cfg.reuseport = 1;
    a = jr_http_server_start(L, &cfg, on_request, &TS, err, sizeof err, NULL);
    CHECK(a != NULL);
    if (a) {
        c2 = cfg;
        c2.port = jr_http_server_port(a);
        b = jr_http_server_start(L, &c2, on_request, &TS, err, sizeof err, NULL);
        CHECK(b != NULL);
        if (b) CHECK_EQ_INT(jr_http_server_port(b), jr_http_server_port(a));
        jr_http_server_free(b);
        jr_http_server_free(a);
    }

    cfg = test_config();
    cfg.host = "not-an-address";
    err[0] = '\0';
    uverr = 1;
    CHECK(jr_http_server_start(L, &cfg, on_request, &TS, err, sizeof err, &uverr) == NULL);
    CHECK_EQ_INT(uverr, 0); /* a bad value, not a system error */
    CHECK(strstr(err, "invalid listen address") != NULL);
    drain();
}

TEST(ipv6_get)
{
    jr_http_config cfg = test_config();
    cfg.host = "::1";
    memset(&TS, 0, sizeof TS);
    char err[256];
    TS.srv = jr_http_server_start(L, &cfg, on_request, &TS, err, sizeof err, NULL);
    if (!TS.srv) { /* no IPv6 loopback here: nothing to test */
        printf("# skipped: %s\n", err);
        return;
    }
    TS.port = jr_http_server_port(TS.srv);
    struct sockaddr_in6 a;
    uv_ip6_addr("::1", TS.port, &a);
    client *cl = cl_new_addr((const struct sockaddr *)&a, 0);
    CHECK_EQ_INT(cl->connect_status, 0);
    cl_send(cl, "GET /six HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(TS.remote, "::1");
    cl_free(cl);
    stop_server();
}

TEST(simple_get)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /hello?x=1&y=2 HTTP/1.1\r\nHost: example\r\nX-Test:  abc  \r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(got(cl), 1);
    resp *r = &R[0];
    CHECK_EQ_INT(r->status, 200);
    CHECK(strncmp(r->head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK_EQ_STR(r->body, "hello");
    CHECK_EQ_STR(H(r, "Content-Length"), "5");
    CHECK_EQ_STR(H(r, "Connection"), "keep-alive");
    CHECK_EQ_STR(H(r, "Content-Type"), "text/plain");
    CHECK_EQ_STR(H(r, "X-Method"), "GET");
    CHECK_EQ_STR(H(r, "X-Path"), "/hello");
    CHECK_EQ_STR(H(r, "X-Query"), "x=1&y=2");
    CHECK_EQ_STR(H(r, "X-Target"), "/hello?x=1&y=2");
    CHECK_EQ_STR(H(r, "X-Test-Echo"), "abc");
    CHECK_EQ_STR(H(r, "X-Minor"), "1");
    CHECK(H(r, "Date") && strstr(H(r, "Date"), " GMT") && strlen(H(r, "Date")) == 29);
    /* caller's Content-Length / Connection headers were dropped */
    CHECK(strstr(r->head, ": 999\r\n") == NULL); /* (not "999": a request id in hex may hold it) */
    CHECK(strstr(r->head, "upgrade") == NULL);
    CHECK_EQ_STR(TS.method, "GET");
    CHECK_EQ_STR(TS.host, "example");
    CHECK_EQ_INT(TS.hcount, 2);
    CHECK_EQ_STR(TS.h0name, "Host");
    CHECK_EQ_STR(TS.h0value, "example");
    CHECK_EQ_STR(TS.remote, "127.0.0.1");
    CHECK_EQ_INT(TS.ka, 1);
    CHECK_EQ_INT(TS.head, 0);
    CHECK_EQ_INT(TS.upgrade, 0);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 1);
    CHECK_EQ_INT(jr_http_server_inflight(TS.srv), 0);
    CHECK_EQ_INT(cl->eof, 0);
    cl_free(cl);
    WAIT(jr_http_server_connections(TS.srv) == 0, 2000);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 0);
    stop_server();
}

TEST(keepalive_three_requests)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = cl_new(TS.port);
    const char *paths[] = {"/one", "/two", "/three"};
    char port0[64] = "";
    for (int i = 0; i < 3; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i]);
        cl_send(cl, req);
        WAIT(got(cl) >= i + 1, 2000);
        CHECK_EQ_INT(got(cl), i + 1);
        CHECK_EQ_INT(R[i].status, 200);
        CHECK_EQ_STR(H(&R[i], "X-Path"), paths[i]);
        CHECK_EQ_STR(H(&R[i], "Connection"), "keep-alive");
        if (i == 0) snprintf(port0, sizeof port0, "%s", H(&R[0], "X-Remote"));
        else CHECK_EQ_STR(H(&R[i], "X-Remote"), port0); /* same client socket */
    }
    CHECK_EQ_INT(cl->eof, 0);
    CHECK_EQ_INT(TS.nreq, 3);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 1);
    cl_free(cl);
    stop_server();
}

TEST(pipelining_in_order)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz");
    WAIT(got(cl) >= 3, 3000);
    CHECK_EQ_INT(got(cl), 3);
    CHECK_EQ_STR(R[0].body, "slow");
    CHECK_EQ_STR(H(&R[1], "X-Path"), "/a");
    CHECK_EQ_STR(R[1].body, "hello");
    CHECK_EQ_STR(H(&R[2], "X-Path"), "/b");
    CHECK_EQ_STR(R[2].body, "xyz");
    /* /a was not even parsed before /slow was answered */
    CHECK_EQ_STR(TS.order, "/slow,R:/slow,/a,/b,");
    CHECK_EQ_INT(TS.delayed_rc, JR_HTTP_OK);
    CHECK_EQ_INT(cl->eof, 0);
    /* and the connection still works afterwards */
    cl_send(cl, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 4, 2000);
    CHECK_EQ_INT(got(cl), 4);
    CHECK_EQ_STR(H(&R[3], "X-Path"), "/c");
    cl_free(cl);
    stop_server();
}

TEST(content_length_body)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello");
    cl_send(cl, " world");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(R[0].body, "hello world");
    CHECK_EQ_STR(H(&R[0], "X-Method"), "POST");
    CHECK_EQ_STR(H(&R[0], "X-Body-Len"), "11");
    cl_free(cl);
    stop_server();
}

TEST(chunked_body)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n");
    cl_send(cl, "6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(R[0].body, "hello world");
    CHECK_EQ_STR(H(&R[0], "X-Body-Len"), "11");
    CHECK_EQ_INT(TS.hcount, 2); /* trailer not added to the headers */
    cl_free(cl);
    stop_server();
}

TEST(expect_continue)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         "Content-Length: 5\r\n\r\n");
    WAIT(cl->in.len >= 25, 2000);
    CHECK(cl->in.data && strcmp(cl->in.data, "HTTP/1.1 100 Continue\r\n\r\n") == 0);
    CHECK_EQ_INT(TS.nreq, 0);
    cl_send(cl, "hello");
    WAIT(got(cl) >= 2, 2000);
    CHECK_EQ_INT(got(cl), 2);
    CHECK_EQ_INT(R[0].status, 100);
    CHECK_EQ_INT(R[1].status, 200);
    CHECK_EQ_STR(R[1].body, "hello");
    cl_free(cl);
    stop_server();
}

TEST(expect_continue_over_limit)
{
    jr_http_config cfg = test_config();
    cfg.max_body_size = 1024;
    CHECK(start_server(&cfg));
    client *cl = request("PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         "Content-Length: 5000\r\n\r\n");
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, 413);
    CHECK(strstr(cl->in.data, "100 Continue") == NULL);
    CHECK_EQ_STR(H(&R[0], "Connection"), "close");
    CHECK_EQ_INT(TS.nreq, 0);
    cl_free(cl);
    stop_server();
}

TEST(head_request)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n");
    cl->head_mask = 1;
    WAIT(got(cl) >= 2, 2000);
    CHECK_EQ_INT(got(cl), 2);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(H(&R[0], "Content-Length"), "5"); /* length of the would-be body */
    CHECK_EQ_STR(H(&R[0], "X-Method"), "HEAD");
    CHECK_EQ_INT(R[1].status, 200); /* parsed right after the head: no body bytes came */
    CHECK_EQ_STR(H(&R[1], "X-Path"), "/g");
    CHECK_EQ_STR(R[1].body, "hello");
    /* exactly two heads and one body on the wire */
    CHECK(strstr(cl->in.data, "\r\n\r\nHTTP/1.1 200 OK") != NULL);
    cl_free(cl);
    stop_server();
}

TEST(no_content_and_not_modified)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(R[0].status, 204);
    CHECK_EQ_INT(TS.rc1, JR_HTTP_OK);
    CHECK(H(&R[0], "Content-Length") == NULL);
    cl_send(cl, "GET /notmod HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 2, 2000);
    CHECK_EQ_INT(R[1].status, 304);
    CHECK(H(&R[1], "Content-Length") == NULL);
    cl_send(cl, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 3, 2000);
    CHECK_EQ_INT(got(cl), 3);
    CHECK_EQ_STR(H(&R[2], "X-Path"), "/after"); /* no stray body bytes in between */
    CHECK(strstr(cl->in.data, "xyz") == NULL);
    cl_free(cl);
    stop_server();
}

TEST(http10_close_and_keepalive)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /old HTTP/1.0\r\n\r\n");
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(H(&R[0], "Connection"), "close");
    CHECK_EQ_STR(H(&R[0], "X-Minor"), "0");
    CHECK_EQ_INT(TS.ka, 0);
    cl_free(cl);

    cl = request("GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_STR(H(&R[0], "Connection"), "keep-alive");
    CHECK_EQ_INT(TS.ka, 1);
    cl_send(cl, "GET /ka2 HTTP/1.0\r\n\r\n");
    WAIT(cl->eof, 2000);
    CHECK_EQ_INT(got(cl), 2);
    CHECK_EQ_STR(H(&R[1], "X-Path"), "/ka2");
    CHECK_EQ_STR(H(&R[1], "Connection"), "close");
    cl_free(cl);
    stop_server();
}

TEST(connection_close)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    /* the pipelined second request must not be answered */
    client *cl = request("GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         "GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_STR(H(&R[0], "Connection"), "close");
    CHECK_EQ_STR(H(&R[0], "X-Path"), "/bye");
    CHECK_EQ_INT(TS.nreq, 1);
    cl_free(cl);
    WAIT(jr_http_server_connections(TS.srv) == 0, 2000);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 0);
    stop_server();
}

TEST(max_keepalive_requests)
{
    jr_http_config cfg = test_config();
    cfg.max_keepalive_requests = 2;
    CHECK(start_server(&cfg));
    client *cl = request("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(cl->eof, 2000);
    CHECK_EQ_INT(got(cl), 2);
    CHECK_EQ_STR(H(&R[0], "Connection"), "keep-alive");
    CHECK_EQ_STR(H(&R[1], "Connection"), "close");
    CHECK_EQ_INT(TS.nreq, 2);
    cl_free(cl);
    stop_server();
}

static void check_error_response(client *cl, int status)
{
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, status);
    CHECK_EQ_STR(H(&R[0], "Content-Type"), "application/json");
    CHECK_EQ_STR(H(&R[0], "Connection"), "close");
    CHECK(strncmp(R[0].body, "{\"detail\":\"", 11) == 0);
    CHECK(R[0].blen > 13 && R[0].body[R[0].blen - 1] == '}');
}

TEST(malformed_request)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET / HTTP/1.1\r\nBad Header Line\r\n\r\n");
    check_error_response(cl, 400);
    cl_free(cl);
    cl = request("NOTAMETHOD / HTTP/1.1\r\n\r\n");
    check_error_response(cl, 400);
    cl_free(cl);
    /* smuggling shape: both Content-Length and chunked */
    cl = request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    check_error_response(cl, 400);
    cl_free(cl);
    CHECK_EQ_INT(TS.nreq, 0);
    /* the server is fine */
    cl = request("GET /fine HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(H(&R[0], "X-Path"), "/fine");
    cl_free(cl);
    stop_server();
}

/* RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, for any request
 * with more than one, and for a Host that is no host[:port]. */
TEST(host_header)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    static const char *bad[] = {
        "GET /a HTTP/1.1\r\nX-Test: 1\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: one\r\nHost: two\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: x\r\nX: y\r\nhOsT: x\r\n\r\n", /* same value, still two */
        "GET /a HTTP/1.0\r\nHost: one\r\nHost: two\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: user@host\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: host/path\r\n\r\n",
    };
    static const char *why[] = {"missing Host header", "more than one Host header",
                                "more than one Host header", "more than one Host header",
                                "invalid Host header", "invalid Host header",
                                "invalid Host header"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        client *cl = request(bad[i]);
        check_error_response(cl, 400);
        char want[128];
        snprintf(want, sizeof want, "{\"detail\":\"%s\"}", why[i]);
        CHECK_EQ_STR(R[0].body, want);
        cl_free(cl);
    }
    CHECK_EQ_INT(TS.nreq, 0);
    /* a keep-alive connection that sends one without Host loses the
     * connection after the 400, not the earlier answer */
    client *cl = request("GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\n\r\n");
    WAIT(cl->eof, 2000);
    CHECK_EQ_INT(got(cl), 2);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_INT(R[1].status, 400);
    CHECK_EQ_STR(H(&R[1], "Connection"), "close");
    cl_free(cl);
    /* accepted: HTTP/1.0 without Host, an empty Host, host:port, IP literals */
    static const char *good[] = {
        "GET /a HTTP/1.0\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost:\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
        "GET /a HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) request_ok(good[i]);
    CHECK_EQ_INT(TS.nreq, 6);
    stop_server();
}

/* We decode chunked only: any other transfer coding is 501, and framing
 * that cannot be trusted is 400 (RFC 9112 §6.1, §6.3). Nothing reaches the
 * handler; the connection closes after the answer. */
TEST(transfer_encoding)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    static const struct {
        const char *te; /* header lines */
        int status;
    } cases[] = {
        {"Transfer-Encoding: gzip, chunked\r\n", 501},
        {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", 501},
        {"Transfer-Encoding: deflate,chunked\r\n", 501},
        {"Transfer-Encoding: identity, chunked\r\n", 501},
        {"Transfer-Encoding: x-custom , chunked\r\n", 501},
        {"Transfer-Encoding: gzip\r\n", 400},            /* chunked not last: length unknown */
        {"Transfer-Encoding: identity\r\n", 400},
        {"Transfer-Encoding: chunked, gzip\r\n", 400},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", 400},
        {"Transfer-Encoding: chunked, chunked\r\n", 400}, /* chunked twice */
        {"Transfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n", 400},
        {"Content-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char raw[512];
        snprintf(raw, sizeof raw, "POST /te HTTP/1.1\r\nHost: x\r\n%s\r\n3\r\nabc\r\n0\r\n\r\n",
                 cases[i].te);
        client *cl = request(raw);
        check_error_response(cl, cases[i].status);
        if (R[0].status != cases[i].status) fprintf(stderr, "  case %zu: %s", i, cases[i].te);
        cl_free(cl);
    }
    client *cl = request("POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                         "3\r\nabc\r\n0\r\n\r\n");
    check_error_response(cl, 501);
    CHECK_EQ_STR(R[0].body,
                 "{\"detail\":\"transfer codings other than chunked are not implemented\"}");
    CHECK_EQ_STR(jr_http_status_text(501), "Not Implemented");
    CHECK(strncmp(R[0].head, "HTTP/1.1 501 Not Implemented\r\n", 30) == 0);
    cl_free(cl);
    /* HTTP/1.0 has no Transfer-Encoding: its framing cannot be trusted */
    cl = request("POST /te HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    check_error_response(cl, 400);
    cl_free(cl);
    CHECK_EQ_INT(TS.nreq, 0);
    /* chunked alone, in any case, with empty list elements, is fine */
    static const char *ok[] = {"chunked", "CHUNKED", ", chunked", "  chunked"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char raw[256];
        snprintf(raw, sizeof raw,
                 "POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                 ok[i]);
        request_ok(raw);
        CHECK_EQ_STR(R[0].body, "abc");
    }
    CHECK_EQ_INT(TS.nreq, 4);
    stop_server();
}

TEST(header_too_large)
{
    jr_http_config cfg = test_config();
    cfg.max_header_size = 1024;
    CHECK(start_server(&cfg));
    char big[2100];
    memset(big, 'a', 2000);
    big[2000] = '\0';
    char req[2300];
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", big);
    client *cl = request(req);
    check_error_response(cl, 431);
    cl_free(cl);
    /* a long request target counts as well */
    snprintf(req, sizeof req, "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", big);
    cl = request(req);
    check_error_response(cl, 431);
    cl_free(cl);
    /* just under the limit is fine */
    memset(big, 'a', 900);
    big[900] = '\0';
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", big);
    cl = request(req);
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(R[0].status, 200);
    cl_free(cl);
    CHECK_EQ_INT(TS.nreq, 1);
    stop_server();
}

TEST(too_many_headers)
{
    jr_http_config cfg = test_config();
    cfg.max_headers = 5;
    CHECK(start_server(&cfg));
    client *cl = request("GET / HTTP/1.1\r\nHost: x\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n");
    check_error_response(cl, 431);
    cl_free(cl);
    cl = request("GET / HTTP/1.1\r\nHost: x\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_INT(TS.hcount, 5);
    cl_free(cl);
    stop_server();
}

TEST(body_too_large)
{
    jr_http_config cfg = test_config();
    cfg.max_body_size = 1024;
    CHECK(start_server(&cfg));
    /* declared: refused at the headers, before any body byte */
    client *cl = request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
    check_error_response(cl, 413);
    cl_free(cl);
    /* chunked: refused once the total passes the limit */
    cl = request("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[700];
    memset(chunk, 'c', sizeof chunk);
    for (int i = 0; i < 2; i++) {
        cl_send(cl, "2bc\r\n");
        cl_sendn(cl, chunk, sizeof chunk);
        cl_send(cl, "\r\n");
    }
    cl_send(cl, "0\r\n\r\n");
    check_error_response(cl, 413);
    cl_free(cl);
    /* exactly at the limit is fine */
    cl = request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n");
    char body[1024];
    memset(body, 'b', sizeof body);
    cl_sendn(cl, body, sizeof body);
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(H(&R[0], "X-Body-Len"), "1024");
    cl_free(cl);
    CHECK_EQ_INT(TS.nreq, 1);
    stop_server();
}

static client *g_trickle;
static void on_trickle(uv_timer_t *t) { cl_send(g_trickle, "X-More: 1\r\n"); }

TEST(slowloris_header_timeout)
{
    jr_http_config cfg = test_config();
    cfg.header_timeout_ms = 200;
    CHECK(start_server(&cfg));
    client *cl = cl_new(TS.port);
    uint64_t t0 = now_ms();
    cl_send(cl, "GET / HTTP/1.1\r\nHost: x\r\n");
    /* a header line every 50 ms (slowloris) does not extend the deadline */
    uv_timer_t trickle;
    g_trickle = cl;
    uv_timer_init(L, &trickle);
    uv_timer_start(&trickle, on_trickle, 50, 50);
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    uint64_t dt = cl->eof_ms - t0;
    CHECK(dt >= 200 && dt < 1000);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, 408);
    CHECK_EQ_STR(H(&R[0], "Content-Type"), "application/json");
    CHECK_EQ_INT(TS.nreq, 0);
    uv_close((uv_handle_t *)&trickle, NULL);
    cl_free(cl);
    stop_server();
}

TEST(body_timeout)
{
    jr_http_config cfg = test_config();
    cfg.body_timeout_ms = 150;
    CHECK(start_server(&cfg));
    client *cl = request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, 408);
    CHECK_EQ_INT(TS.nreq, 0);
    cl_free(cl);
    stop_server();
}

TEST(idle_timeout)
{
    jr_http_config cfg = test_config();
    cfg.idle_timeout_ms = 150;
    cfg.header_timeout_ms = 150;
    CHECK(start_server(&cfg));
    uint64_t t0 = now_ms();
    client *cl = request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    size_t len = cl->in.len;
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    CHECK(cl->eof_ms - t0 >= 150);
    CHECK_EQ_INT(cl->in.len, len); /* closed silently */
    CHECK_EQ_INT(got(cl), 1);
    cl_free(cl);
    /* a connection that never sends anything goes quietly too */
    cl = cl_new(TS.port);
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    CHECK_EQ_INT(cl->in.len, 0);
    cl_free(cl);
    WAIT(jr_http_server_connections(TS.srv) == 0, 2000);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 0);
    stop_server();
}

TEST(max_connections)
{
    jr_http_config cfg = test_config();
    cfg.max_connections = 1;
    CHECK(start_server(&cfg));
    client *c1 = request("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(c1) >= 1, 2000);
    CHECK_EQ_INT(R[0].status, 200);
    client *c2 = request("GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
    check_error_response(c2, 503);
    cl_free(c2);
    CHECK_EQ_INT(TS.nreq, 1);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 1);
    /* the first connection is unaffected */
    cl_send(c1, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(c1) >= 2, 2000);
    CHECK_EQ_INT(got(c1), 2);
    CHECK_EQ_INT(R[1].status, 200);
    cl_free(c1);
    WAIT(jr_http_server_connections(TS.srv) == 0, 2000);
    /* a slot is free again */
    client *c3 = request("GET /third HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(c3) >= 1, 2000);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(H(&R[0], "X-Path"), "/third");
    cl_free(c3);
    stop_server();
}

TEST(path_decoding)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /a%20b/%C3%A9+c?q=%20x+y HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(TS.path, "/a b/\xc3\xa9+c");
    CHECK_EQ_STR(TS.query, "q=%20x+y"); /* raw */
    CHECK_EQ_STR(TS.target, "/a%20b/%C3%A9+c?q=%20x+y");
    /* absolute-form */
    cl_send(cl, "GET http://example.com/p/q?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    WAIT(got(cl) >= 2, 2000);
    CHECK_EQ_INT(R[1].status, 200);
    CHECK_EQ_STR(TS.path, "/p/q");
    CHECK_EQ_STR(TS.query, "x=1");
    CHECK_EQ_STR(TS.target, "http://example.com/p/q?x=1");
    cl_send(cl, "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    WAIT(got(cl) >= 3, 2000);
    CHECK_EQ_STR(TS.path, "/");
    CHECK_EQ_STR(TS.query, "");
    cl_free(cl);
    cl = request("GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n");
    check_error_response(cl, 400);
    cl_free(cl);
    cl = request("GET /a%2 HTTP/1.1\r\nHost: x\r\n\r\n");
    check_error_response(cl, 400);
    cl_free(cl);
    cl = request("GET /nul%00byte HTTP/1.1\r\nHost: x\r\n\r\n");
    check_error_response(cl, 400);
    cl_free(cl);
    CHECK_EQ_INT(TS.nreq, 3);
    stop_server();
}

static int is_generated_id(const char *id)
{
    char want[32];
    snprintf(want, sizeof want, "%x-", (unsigned)getpid());
    if (strncmp(id, want, strlen(want)) != 0) return 0;
    const char *p = id + strlen(want);
    if (!*p) return 0;
    for (; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

TEST(request_id)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    char longid[80];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    char req[512];
    snprintf(req, sizeof req,
             "GET /1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-123_x.Y\r\n\r\n"
             "GET /2 HTTP/1.1\r\nHost: x\r\nx-request-id: bad id!\r\n\r\n"
             "GET /3 HTTP/1.1\r\nHost: x\r\nX-Request-Id: %s\r\n\r\n"
             "GET /4 HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /5 HTTP/1.1\r\nHost: x\r\n\r\n",
             longid);
    client *cl = request(req);
    WAIT(got(cl) >= 5, 2000);
    CHECK_EQ_INT(got(cl), 5);
    char ids[5][80];
    for (int i = 0; i < 5; i++) snprintf(ids[i], sizeof ids[i], "%s", H(&R[i], "X-Id"));
    CHECK_EQ_STR(ids[0], "abc-123_x.Y");
    CHECK(is_generated_id(ids[1]));
    CHECK(is_generated_id(ids[2]));
    CHECK(is_generated_id(ids[3]));
    CHECK(is_generated_id(ids[4]));
    CHECK(strcmp(ids[3], ids[4]) != 0);
    CHECK(strcmp(ids[1], ids[2]) != 0);
    cl_free(cl);
    stop_server();
}

static int g_reset_closed;
static void on_reset_closed(uv_handle_t *h) { g_reset_closed = 1; }

TEST(respond_after_client_disconnect)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /hold?k=v HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(TS.nheld == 1, 2000);
    CHECK_EQ_INT(TS.nheld, 1);
    if (TS.nheld != 1) {
        cl_free(cl);
        stop_server();
        return;
    }
    jr_http_req *req = TS.held[0];
    CHECK(jr_http_req_alive(req));
    CHECK_EQ_INT(jr_http_server_inflight(TS.srv), 1);
    /* the client goes away hard (RST) */
    g_reset_closed = 0;
    cl->closing = 1;
    uv_tcp_close_reset(&cl->tcp, on_reset_closed);
    WAIT(g_reset_closed, 2000);
    cl->closed = 1;
    int rc = jr_http_respond(req, 200, NULL, 0, "late", 4);
    CHECK_EQ_INT(rc, JR_HTTP_ECLOSED);
    CHECK(!jr_http_req_alive(req));
    CHECK_EQ_INT(jr_http_server_inflight(TS.srv), 0);
    /* the data belongs to the request, not the dead connection */
    size_t n;
    const char *p = jr_http_req_path(req, &n);
    CHECK_EQ_MEM(p, n, "/hold");
    p = jr_http_req_query(req, &n);
    CHECK_EQ_MEM(p, n, "k=v");
    /* answering again still reports the closed connection */
    CHECK_EQ_INT(jr_http_respond(req, 200, NULL, 0, NULL, 0), JR_HTTP_ECLOSED);
    WAIT(jr_http_server_connections(TS.srv) == 0, 2000);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 0);
    cl_free(cl);
    stop_server();
}

TEST(double_and_invalid_respond)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /double HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 1, 2000);
    CHECK_EQ_INT(TS.rc1, JR_HTTP_OK);
    CHECK_EQ_INT(TS.rc2, JR_HTTP_EANSWERED);
    CHECK_EQ_STR(R[0].body, "one");
    cl_send(cl, "GET /invalid HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 2, 2000);
    CHECK_EQ_INT(got(cl), 2);
    CHECK_EQ_INT(TS.rc1, JR_HTTP_EINVALID);
    CHECK_EQ_INT(TS.rc2, JR_HTTP_EINVALID);
    CHECK_EQ_INT(TS.rc3, JR_HTTP_EINVALID);
    CHECK_EQ_INT(TS.rc4, JR_HTTP_EINVALID);
    CHECK_EQ_INT(TS.rc5, 1); /* still answerable after the rejected attempts */
    CHECK_EQ_INT(TS.rc_ok, JR_HTTP_OK);
    CHECK_EQ_INT(R[1].status, 201);
    CHECK_EQ_STR(R[1].body, "made");
    CHECK_EQ_INT(cl->eof, 0);
    CHECK_EQ_INT(jr_http_server_inflight(TS.srv), 0);
    cl_free(cl);
    stop_server();
}

TEST(upgrade_request)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                         "Upgrade: websocket\r\n\r\n");
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    CHECK_EQ_INT(got(cl), 1);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(H(&R[0], "X-Upgrade"), "1");
    CHECK_EQ_STR(H(&R[0], "Connection"), "close");
    CHECK_EQ_INT(TS.upgrade, 1);
    cl_free(cl);
    stop_server();
}

TEST(graceful_shutdown)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *busy = request("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    client *idle = request("GET /idle HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(TS.nheld == 1 && got(idle) >= 1, 2000);
    CHECK_EQ_INT(TS.nheld, 1);
    CHECK_EQ_INT(got(idle), 1);
    size_t idle_len = idle->in.len;
    client *partial = request("GET /partial HTTP/1.1\r\nHo");
    WAIT(jr_http_server_connections(TS.srv) == 3, 2000);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 3);
    CHECK_EQ_INT(jr_http_server_inflight(TS.srv), 1);
    int port = TS.port;

    jr_http_server_shutdown(TS.srv, 2000, on_done, &TS);
    jr_http_server_shutdown(TS.srv, 10, NULL, NULL); /* ignored */
    WAIT(idle->eof, 2000);
    CHECK(idle->eof);
    CHECK_EQ_INT(idle->in.len, idle_len);
    CHECK_EQ_INT(busy->eof, 0);
    CHECK_EQ_INT(partial->eof, 0); /* half a request: it is waited for */
    CHECK_EQ_INT(TS.done_called, 0);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 2);
    /* not accepting any more */
    client *late = cl_new(port);
    CHECK(late->connect_status < 0);
    cl_free(late);

    /* the half-received request completes and is answered, then closed */
    cl_send(partial, "st: x\r\n\r\n");
    WAIT(partial->eof, 2000);
    CHECK(partial->eof);
    CHECK_EQ_INT(got(partial), 1);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(H(&R[0], "X-Path"), "/partial");
    CHECK_EQ_STR(H(&R[0], "Connection"), "close");
    CHECK_EQ_INT(TS.done_called, 0);

    /* the in-flight request finishes, with Connection: close */
    if (TS.nheld == 1) {
        CHECK_EQ_INT(jr_http_respond(TS.held[0], 200, NULL, 0, "bye", 3), JR_HTTP_OK);
        jr_http_req_release(TS.held[0]);
        TS.nheld = 0;
    }
    WAIT(TS.done_called, 2000);
    CHECK_EQ_INT(TS.done_called, 1);
    CHECK(busy->eof);
    CHECK_EQ_INT(got(busy), 1);
    CHECK_EQ_INT(R[0].status, 200);
    CHECK_EQ_STR(R[0].body, "bye");
    CHECK_EQ_STR(H(&R[0], "Connection"), "close");
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 0);
    CHECK_EQ_INT(jr_http_server_inflight(TS.srv), 0);
    cl_free(busy);
    cl_free(idle);
    cl_free(partial);
    stop_server();
}

/* A request pipelined behind the one in flight when shutdown starts is
 * answered too: the first answer keeps the connection, the last closes it. */
TEST(shutdown_answers_pipelined_request)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnext");
    WAIT(TS.nheld == 1, 2000);
    CHECK_EQ_INT(TS.nheld, 1);
    jr_http_server_shutdown(TS.srv, 2000, on_done, &TS);
    if (TS.nheld == 1) {
        CHECK_EQ_INT(jr_http_respond(TS.held[0], 200, NULL, 0, "first", 5), JR_HTTP_OK);
        jr_http_req_release(TS.held[0]);
        TS.nheld = 0;
    }
    WAIT(cl->eof, 2000);
    CHECK(cl->eof);
    CHECK_EQ_INT(got(cl), 2);
    CHECK_EQ_STR(R[0].body, "first");
    CHECK_EQ_STR(H(&R[0], "Connection"), "keep-alive");
    CHECK_EQ_STR(H(&R[1], "X-Path"), "/next");
    CHECK_EQ_STR(R[1].body, "next");
    CHECK_EQ_STR(H(&R[1], "Connection"), "close");
    CHECK_EQ_INT(cl->read_err, 0); /* closed with FIN, not reset */
    WAIT(TS.done_called, 2000);
    CHECK_EQ_INT(TS.done_called, 1);
    CHECK_EQ_STR(TS.order, "/hold,/next,");
    cl_free(cl);
    stop_server();
}

/* An idle keep-alive connection whose next request is already in the socket
 * (sent, not yet read by the server) when shutdown starts: it is read and
 * answered with Connection: close instead of being closed under it. */
TEST(shutdown_answers_request_in_socket)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    client *idle = request("GET /idle HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(got(cl) >= 1 && got(idle) >= 1, 2000);
    CHECK_EQ_STR(H(&R[0], "Connection"), "keep-alive");
    /* the bytes reach the server's socket, but the loop does not run
     * before shutdown, so the server has not read them */
    cl_send(cl, "GET /two HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(cl_wait_acked(cl));
    jr_http_server_shutdown(TS.srv, 2000, on_done, &TS);
    WAIT(cl->eof && idle->eof, 2000);
    CHECK(cl->eof);
    CHECK(idle->eof);
    CHECK_EQ_INT(got(idle), 1); /* the idle one was closed without another answer */
    CHECK_EQ_INT(got(cl), 2);
    CHECK_EQ_INT(R[1].status, 200);
    CHECK_EQ_STR(H(&R[1], "X-Path"), "/two");
    CHECK_EQ_STR(H(&R[1], "Connection"), "close");
    WAIT(TS.done_called, 2000);
    CHECK_EQ_INT(TS.done_called, 1);
    CHECK_EQ_INT(TS.nreq, 3);
    cl_free(cl);
    cl_free(idle);
    stop_server();
}

/* A keep-alive answer still being written when shutdown starts: the
 * connection closes once it is written, unless a next request follows. */
TEST(shutdown_while_writing)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", TS.port, &a);
    client *cl = cl_new_addr((const struct sockaddr *)&a, 4096);
    cl_send(cl, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /after-big HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(TS.nreq == 1, 2000);
    CHECK_EQ_INT(TS.big_rc, JR_HTTP_OK);
    jr_http_server_shutdown(TS.srv, 3000, on_done, &TS);
    WAIT(cl->eof, 3000);
    CHECK(cl->eof);
    CHECK_EQ_INT(TS.nreq, 2);
    /* 16 MiB of 'b' with keep-alive, then the pipelined one with close */
    const char *second =
        cl->in.len > (16u << 20) ? strstr(cl->in.data + (16u << 20), "HTTP/1.1 200") : NULL;
    CHECK(second != NULL);
    if (second) {
        CHECK_EQ_INT(parse_resps(second, cl->in.len - (size_t)(second - cl->in.data), 0), 1);
        CHECK_EQ_STR(H(&R[0], "X-Path"), "/after-big");
        CHECK_EQ_STR(H(&R[0], "Connection"), "close");
    }
    WAIT(TS.done_called, 2000);
    CHECK_EQ_INT(TS.done_called, 1);
    cl_free(cl);
    stop_server();
}

TEST(shutdown_grace_expires)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *cl = request("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(TS.nheld == 1, 2000);
    CHECK_EQ_INT(TS.nheld, 1);
    /* a request whose headers never complete is bounded by the grace too */
    client *partial = request("GET /never HTTP/1.1\r\nHo");
    WAIT(jr_http_server_connections(TS.srv) == 2, 2000);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 2);
    uint64_t t0 = now_ms();
    jr_http_server_shutdown(TS.srv, 100, on_done, &TS);
    WAIT(TS.done_called, 2000);
    CHECK_EQ_INT(TS.done_called, 1);
    CHECK(now_ms() - t0 >= 90);
    WAIT(cl->eof && partial->eof, 2000);
    CHECK(cl->eof);
    CHECK_EQ_INT(cl->in.len, 0);
    CHECK(partial->eof);
    CHECK_EQ_INT(partial->in.len, 0);
    CHECK_EQ_INT(TS.nreq, 1);
    cl_free(partial);
    if (TS.nheld == 1) {
        CHECK(!jr_http_req_alive(TS.held[0]));
        CHECK_EQ_INT(jr_http_respond(TS.held[0], 200, NULL, 0, "x", 1), JR_HTTP_ECLOSED);
    }
    CHECK_EQ_INT(jr_http_server_inflight(TS.srv), 0);
    cl_free(cl);
    stop_server();
}

TEST(shutdown_without_connections)
{
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    jr_http_server_shutdown(TS.srv, 1000, on_done, &TS);
    CHECK_EQ_INT(TS.done_called, 0); /* never from inside shutdown */
    WAIT(TS.done_called, 2000);
    CHECK_EQ_INT(TS.done_called, 1);
    stop_server();
}

TEST(write_timeout)
{
    jr_http_config cfg = test_config();
    cfg.write_timeout_ms = 150;
    CHECK(start_server(&cfg));
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", TS.port, &a);
    client *cl = cl_new_addr((const struct sockaddr *)&a, 4096);
    uv_read_stop((uv_stream_t *)&cl->tcp); /* a client that never reads */
    cl_send(cl, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(TS.nreq == 1, 2000);
    CHECK_EQ_INT(TS.big_rc, JR_HTTP_OK);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 1);
    WAIT(jr_http_server_connections(TS.srv) == 0, 3000);
    CHECK_EQ_INT(jr_http_server_connections(TS.srv), 0);
    CHECK(now_ms() - TS.big_at >= 150); /* the server's clock when it answered */
    cl_free(cl);
    stop_server();
}

TEST(access_log)
{
    jr_http_config cfg = test_config();
    cfg.access_log = 1;
    CHECK(start_server(&cfg));
    char path[] = "/tmp/jr_http_logXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) {
        stop_server();
        return;
    }
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    client *cl = request("GET /logme?x=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: log-id-1\r\n\r\n"
                         "GET /bad%zz HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(cl->eof, 2000);
    dup2(saved, 2);
    close(saved);
    char buf[4096] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    unlink(path);
    if (n > 0) buf[n] = '\0';
    CHECK_EQ_INT(got(cl), 2);
    CHECK(strstr(buf, "[log-id-1] GET /logme?x=1 200 5 ") != NULL);
    CHECK(strstr(buf, "ms\n") != NULL);
    CHECK(strstr(buf, "INFO") != NULL);
    CHECK(strstr(buf, " 400 ") != NULL); /* server-made responses are logged too */
    cl_free(cl);
    stop_server();
}

TEST(free_with_open_connections)
{
    /* freeing a live server (no shutdown) closes everything; requests held by
     * a handler keep their data until released */
    jr_http_config cfg = test_config();
    CHECK(start_server(&cfg));
    client *a = request("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    client *b = request("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT(TS.nheld == 1 && got(b) >= 1, 2000);
    CHECK_EQ_INT(TS.nheld, 1);
    jr_http_req *held = TS.nheld ? TS.held[0] : NULL;
    TS.nheld = 0;
    jr_http_server_free(TS.srv);
    TS.srv = NULL;
    WAIT(a->eof && b->eof, 2000);
    CHECK(a->eof && b->eof);
    if (held) {
        CHECK(!jr_http_req_alive(held));
        CHECK_EQ_INT(jr_http_respond(held, 200, NULL, 0, NULL, 0), JR_HTTP_ECLOSED);
        size_t n;
        const char *p = jr_http_req_path(held, &n);
        CHECK_EQ_MEM(p, n, "/hold");
        jr_http_req_release(held); /* the server's memory goes with this */
    }
    cl_free(a);
    cl_free(b);
    drain();
}

int main(void)
{
    uv_loop_init(L);
    uv_timer_init(L, &g_guard);
    uv_unref((uv_handle_t *)&g_guard);

    RUN(url_decode);
    RUN(format_date);
    RUN(status_text);
    RUN(config_defaults);
    RUN(start_errors_and_reuseport);
    RUN(ipv6_get);
    RUN(simple_get);
    RUN(keepalive_three_requests);
    RUN(pipelining_in_order);
    RUN(content_length_body);
    RUN(chunked_body);
    RUN(expect_continue);
    RUN(expect_continue_over_limit);
    RUN(head_request);
    RUN(no_content_and_not_modified);
    RUN(http10_close_and_keepalive);
    RUN(connection_close);
    RUN(max_keepalive_requests);
    RUN(malformed_request);
    RUN(host_header);
    RUN(transfer_encoding);
    RUN(header_too_large);
    RUN(too_many_headers);
    RUN(body_too_large);
    RUN(slowloris_header_timeout);
    RUN(body_timeout);
    RUN(idle_timeout);
    RUN(max_connections);
    RUN(path_decoding);
    RUN(request_id);
    RUN(respond_after_client_disconnect);
    RUN(double_and_invalid_respond);
    RUN(upgrade_request);
    RUN(graceful_shutdown);
    RUN(shutdown_answers_pipelined_request);
    RUN(shutdown_answers_request_in_socket);
    RUN(shutdown_while_writing);
    RUN(shutdown_grace_expires);
    RUN(shutdown_without_connections);
    RUN(write_timeout);
    RUN(access_log);
    RUN(free_with_open_connections);

    uv_close((uv_handle_t *)&g_guard, NULL);
    uv_run(L, UV_RUN_DEFAULT);
    int rc = uv_loop_close(L);
    if (rc != 0) {
        printf("not ok - loop still has handles: %s\n", uv_strerror(rc));
        t_failed++;
    }
    return test_summary();
}
