/* http.c - HTTP/1.1 server on libuv + llhttp (contract in http.h).
 *
 * Shape of a connection
 * ---------------------
 * Each connection has one llhttp parser, one uv_timer and a state:
 *
 *   S_IDLE    keep-alive, waiting for the first byte of a request (idle timeout)
 *   S_HEAD    request line / headers arriving               (header timeout -> 408)
 *   S_BODY    body arriving                                   (body timeout -> 408)
 *   S_HANDLER request handed to on_request, no response yet   (no timeout)
 *   S_WRITING response not fully taken by the kernel yet      (write timeout -> close)
 *   S_LINGER  final response sent, FIN sent, draining input   (short timeout -> close)
 *   S_CLOSED  uv_close called; memory goes in the close callbacks
 *
 * Requests are processed strictly one at a time: on_message_complete returns
 * HPE_PAUSED, so llhttp_execute stops right after the message and we know how
 * many input bytes belong to it. The request is delivered; unparsed bytes
 * (pipelined requests) wait until its response is written, then the parser is
 * resumed on them. While a request is in flight or its response is unwritten
 * we do not read, so memory per connection is bounded by one read chunk.
 * (Reading is stopped after on_request returns without an answer rather than
 * before calling it: no read callback can run in between, and a handler that
 * answers synchronously then costs no uv_read_stop/uv_read_start pair.)
 *
 * Every response the server makes itself (400/408/413/431/501/503/505) and every
 * "Connection: close" response ends in a lingering close: FIN, then input is
 * drained until the client closes (at most LINGER_MS).
 *
 * Performance notes (the hello-world fast path does no malloc and no extra
 * syscalls beyond read + write):
 *  - One 64 KiB read buffer is shared by the whole server (libuv calls
 *    alloc_cb and read_cb back to back). Only when a request goes async while
 *    pipelined bytes are left over are those bytes copied into the
 *    connection's own `pend` buffer.
 *  - When the handler answers synchronously inside on_request and the
 *    response fits in the socket buffer (uv_try_write), reading is never
 *    stopped and restarted: uv_read_stop/start cost epoll_ctl calls.
 *  - Request objects (with their string/body/header buffers) are recycled on
 *    a per-server free list.
 *  - The response head is built with memcpy into a per-connection buffer;
 *    the body is sent from the caller's memory with writev and only copied
 *    when the kernel did not take everything at once.
 *  - The Date header is formatted once per second.
 *  - Timeouts use one timer per connection armed lazily: moving a deadline
 *    later only writes a field; the timer re-arms itself when it fires early.
 */
#include "http.h"
#include "buf.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE 65536         /* shared read buffer */
#define LINGER_MS 1000          /* max time to drain input after the final response */
#define REQ_FREELIST_MAX 256    /* recycled request objects kept per server */
#define KEEP_BUF_MAX 65536      /* larger per-request/connection buffers are freed on reuse */

/* ---------------------------------------------------------------- types */

enum { S_IDLE, S_HEAD, S_BODY, S_HANDLER, S_WRITING, S_LINGER, S_CLOSED };

typedef struct {
    uint32_t no, nl, vo, vl; /* name/value offsets and lengths in req->strs */
} hdr_ent;

typedef struct conn conn;

struct jr_http_req {
    jr_http_server *srv;
    conn *conn;     /* set while the connection holds its reference */
    int refs;
    unsigned delivered : 1, answered : 1, is_head : 1, upgrade : 1, keepalive : 1,
        expect_continue : 1, id_ready : 1;
    uint8_t http_major, http_minor;
    const char *method; /* static string from llhttp */
    size_t method_len;
    /* Everything textual lives in strs (NUL-terminated pieces, by offset so
     * the buffer may grow while parsing). */
    jr_buf strs;
    jr_buf body;
    uint32_t url_off, url_len, path_off, path_len, query_off, query_len;
    int32_t xrid; /* index of the X-Request-Id header, -1 if none */
    hdr_ent *hdrs;
    size_t nhdrs, hcap;
    uint64_t start_ms;
    uint64_t start_hr; /* for the access log */
    char remote[INET6_ADDRSTRLEN];
    int remote_port;
    unsigned pid;
    char id[72];
    jr_http_req *next_free;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;      /* the response */
    uv_write_t creq;      /* "100 Continue" */
    uv_shutdown_t sreq;   /* FIN before lingering close */
    llhttp_t parser;
    jr_http_server *srv;
    jr_http_req *req;     /* request being parsed, in flight, or being written */
    conn *prev, *next;
    int state;
    int nclosed;          /* close callbacks seen (tcp + timer) */
    unsigned reading : 1, in_run : 1, closing : 1, close_after : 1, counted : 1, msg_done : 1,
        in_field : 1, skip_hdr : 1, url_started : 1, in_shared : 1, cont_pending : 1,
        timer_armed : 1,
        nhost : 2,        /* Host header lines of the request being parsed (saturates at 2) */
        te_other : 1;     /* its Transfer-Encoding names a coding other than chunked */
    int err_status;       /* set by parser callbacks before failing */
    const char *err_detail;
    size_t header_bytes, body_bytes;
    /* Input being parsed: either the server's shared read buffer (only
     * during this connection's read callback) or `pend`. */
    const char *sh;
    size_t sh_len;
    size_t in_pos;
    jr_buf pend;
    jr_buf wbuf;            /* response head (and unsent rest when written async) */
    uint64_t deadline;    /* 0 = none */
    uint64_t timer_due;
    unsigned nrequests;
    /* for the access log of the response being written */
    int log_status;
    size_t log_blen;
    char remote[INET6_ADDRSTRLEN];
    int remote_port;
};

struct jr_http_server {
    uv_loop_t *loop;
    jr_http_config cfg;
    jr_http_on_request on_request;
    void *ud;
    uv_tcp_t listener;
    uv_timer_t grace;
    unsigned listener_open : 1, listener_closing : 1, grace_open : 1, grace_closing : 1,
        shutting : 1, done_called : 1, free_pending : 1, freed : 1;
    int port;
    conn *conns;          /* every connection whose handles are not closed yet */
    size_t active;        /* open, non-rejected connections */
    size_t inflight;
    void (*done)(void *);
    void *done_ud;
    size_t live_reqs;     /* request objects not on the free list */
    jr_http_req *free_reqs;
    size_t nfree;
    unsigned pid;
    time_t date_sec;
    size_t date_len;
    char date_line[64];   /* "Date: ...\r\n" */
    char rbuf[RBUF_SIZE];
};

static void conn_close(conn *c);
static void conn_run(conn *c);
static void send_error(conn *c, int status, const char *detail);
static void srv_try_free(jr_http_server *srv);
static void srv_check(jr_http_server *srv);

/* ---------------------------------------------------------------- utilities */

const char *jr_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

long jr_http_url_decode(char *dst, const char *src, size_t len, int plus_as_space)
{
    /* o <= i always, so decoding in place (dst == src) is safe. */
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '%') {
            if (len - i < 3) return -1;
            int h = hexval((unsigned char)src[i + 1]), l = hexval((unsigned char)src[i + 2]);
            if (h < 0 || l < 0) return -1;
            dst[o++] = (char)((h << 4) | l);
            i += 2;
        } else if (ch == '+' && plus_as_space) {
            dst[o++] = ' ';
        } else {
            dst[o++] = (char)ch;
        }
    }
    return (long)o;
}

size_t jr_http_format_date(char *out, time_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        memset(&tm, 0, sizeof tm);
        tm.tm_mday = 1;
        tm.tm_year = 70;
        tm.tm_wday = 4;
    }
    int n = snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                     tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
    if (n < 0) n = 0;
    if (n > 29) n = 29;
    return (size_t)n;
}

/* "Date: <rfc7231>\r\n", reformatted at most once per second. */
static const char *date_line(jr_http_server *srv, size_t *len)
{
    time_t now = time(NULL);
    if (now != srv->date_sec || !srv->date_len) {
        memcpy(srv->date_line, "Date: ", 6);
        size_t n = jr_http_format_date(srv->date_line + 6, now);
        memcpy(srv->date_line + 6 + n, "\r\n", 2);
        srv->date_len = 6 + n + 2;
        srv->date_sec = now;
    }
    *len = srv->date_len;
    return srv->date_line;
}

static char *put_mem(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_uint(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static int is_read_state(int s) { return s == S_IDLE || s == S_HEAD || s == S_BODY; }

/* Has the client sent (part of) another request that we have not handled:
 * bytes we hold unparsed, or bytes waiting in the socket? Asked only while
 * shutting down (one ioctl), to answer such a request instead of closing
 * the connection under it. */
static int conn_has_input(conn *c)
{
    size_t len = c->in_shared ? c->sh_len : c->pend.len;
    if (c->in_pos < len) return 1;
    uv_os_fd_t fd;
    int n = 0;
    if (c->closing || uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0) return 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* ---------------------------------------------------------------- requests */

static jr_http_req *req_get(jr_http_server *srv)
{
    jr_http_req *req = srv->free_reqs;
    if (req) {
        srv->free_reqs = req->next_free;
        srv->nfree--;
    } else {
        req = calloc(1, sizeof *req);
        if (!req) return NULL;
        req->srv = srv;
    }
    srv->live_reqs++;
    req->conn = NULL;
    req->refs = 1;
    req->delivered = req->answered = req->is_head = req->upgrade = req->keepalive = 0;
    req->expect_continue = req->id_ready = 0;
    req->http_major = 1;
    req->http_minor = 1;
    req->method = "";
    req->method_len = 0;
    jr_buf_reset(&req->strs);
    jr_buf_reset(&req->body);
    req->url_off = req->url_len = req->path_off = req->path_len = 0;
    req->query_off = req->query_len = 0;
    req->xrid = -1;
    req->nhdrs = 0;
    req->start_ms = req->start_hr = 0;
    req->pid = srv->pid;
    req->next_free = NULL;
    return req;
}

static void req_destroy(jr_http_req *req)
{
    jr_buf_free(&req->strs);
    jr_buf_free(&req->body);
    free(req->hdrs);
    free(req);
}

/* Last reference gone: recycle onto the server's free list. */
static void req_put(jr_http_req *req)
{
    jr_http_server *srv = req->srv;
    srv->live_reqs--;
    if (!srv->free_pending && srv->nfree < REQ_FREELIST_MAX) {
        jr_buf_recycle(&req->strs, KEEP_BUF_MAX);
        jr_buf_recycle(&req->body, KEEP_BUF_MAX);
        if (req->hcap > 256) {
            free(req->hdrs);
            req->hdrs = NULL;
            req->hcap = 0;
        }
        req->conn = NULL;
        req->next_free = srv->free_reqs;
        srv->free_reqs = req;
        srv->nfree++;
    } else {
        req_destroy(req);
        srv_try_free(srv);
    }
}

void jr_http_req_retain(jr_http_req *req)
{
    if (req) req->refs++;
}

void jr_http_req_release(jr_http_req *req)
{
    if (!req || req->refs <= 0) return;
    if (--req->refs == 0) req_put(req);
}

/* The connection lets go of its request (answered and written, or the
 * connection died). */
static void conn_drop_req(conn *c)
{
    jr_http_req *req = c->req;
    if (!req) return;
    c->req = NULL;
    req->conn = NULL;
    jr_http_req_release(req);
}

const char *jr_http_req_method(const jr_http_req *req, size_t *len)
{
    if (len) *len = req->method_len;
    return req->method;
}

const char *jr_http_req_target(const jr_http_req *req, size_t *len)
{
    if (len) *len = req->url_len;
    return req->strs.data ? req->strs.data + req->url_off : "";
}

const char *jr_http_req_path(const jr_http_req *req, size_t *len)
{
    if (len) *len = req->path_len;
    return req->strs.data ? req->strs.data + req->path_off : "";
}

const char *jr_http_req_query(const jr_http_req *req, size_t *len)
{
    if (len) *len = req->query_len;
    return req->strs.data && req->query_len ? req->strs.data + req->query_off : "";
}

int jr_http_req_version_minor(const jr_http_req *req) { return req->http_minor; }
int jr_http_req_keepalive(const jr_http_req *req) { return req->keepalive; }
int jr_http_req_is_head(const jr_http_req *req) { return req->is_head; }
int jr_http_req_is_upgrade(const jr_http_req *req) { return req->upgrade; }
size_t jr_http_req_header_count(const jr_http_req *req) { return req->nhdrs; }

void jr_http_req_header_at(const jr_http_req *req, size_t i, const char **name, size_t *nlen,
                           const char **value, size_t *vlen)
{
    if (i >= req->nhdrs) {
        if (name) *name = NULL;
        if (nlen) *nlen = 0;
        if (value) *value = NULL;
        if (vlen) *vlen = 0;
        return;
    }
    const hdr_ent *h = &req->hdrs[i];
    if (name) *name = req->strs.data + h->no;
    if (nlen) *nlen = h->nl;
    if (value) *value = req->strs.data + h->vo;
    if (vlen) *vlen = h->vl;
}

const char *jr_http_req_header(const jr_http_req *req, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nhdrs; i++) {
        const hdr_ent *h = &req->hdrs[i];
        if (h->nl == n && strncasecmp(req->strs.data + h->no, name, n) == 0) {
            if (vlen) *vlen = h->vl;
            return req->strs.data + h->vo;
        }
    }
    if (vlen) *vlen = 0;
    return NULL;
}

const char *jr_http_req_body(const jr_http_req *req, size_t *len)
{
    if (len) *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

const char *jr_http_req_remote_addr(const jr_http_req *req) { return req->remote; }
int jr_http_req_remote_port(const jr_http_req *req) { return req->remote_port; }
uint64_t jr_http_req_start_ms(const jr_http_req *req) { return req->start_ms; }

int jr_http_req_alive(const jr_http_req *req)
{
    return req->conn && !req->answered && !req->conn->closing;
}

static int valid_request_id(const char *s, size_t n)
{
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* "<pid hex>-<counter hex>" without snprintf: this runs for every request
 * whose id is asked for (the Lua side always asks), and printf's machinery
 * showed up in profiles. */
static void format_generated_id(char *out, unsigned pid, unsigned long long n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[32];
    size_t k = 0, pos = 0;
    do { tmp[k++] = hex[pid & 15]; pid >>= 4; } while (pid);
    while (k) out[pos++] = tmp[--k];
    out[pos++] = '-';
    do { tmp[k++] = hex[n & 15]; n >>= 4; } while (n);
    while (k) out[pos++] = tmp[--k];
    out[pos] = '\0';
}

/* Computed on first use: most requests in a benchmark never need an id. */
const char *jr_http_req_id(const jr_http_req *creq)
{
    static uint64_t counter;
    jr_http_req *req = (jr_http_req *)creq; /* lazily filled cache */
    if (req->id_ready) return req->id;
    int done = 0;
    if (req->xrid >= 0 && (size_t)req->xrid < req->nhdrs) {
        const hdr_ent *h = &req->hdrs[req->xrid];
        const char *v = req->strs.data + h->vo;
        if (valid_request_id(v, h->vl)) {
            memcpy(req->id, v, h->vl);
            req->id[h->vl] = '\0';
            done = 1;
        }
    }
    if (!done) format_generated_id(req->id, (unsigned)req->pid, ++counter);
    req->id_ready = 1;
    return req->id;
}

/* ---------------------------------------------------------------- timers */

static void on_conn_timer(uv_timer_t *t);

static void conn_arm(conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_conn_timer, ms, 0);
    c->timer_due = uv_now(c->srv->loop) + ms;
    c->timer_armed = 1;
}

/* Set the connection's single deadline. Moving it later is just a store;
 * the timer only needs restarting when the new deadline is earlier than
 * when it is already due to fire. */
static void set_deadline(conn *c, unsigned ms)
{
    uint64_t dl = uv_now(c->srv->loop) + ms;
    c->deadline = dl;
    if (!c->timer_armed || c->timer_due > dl) conn_arm(c, ms);
}

static void clear_deadline(conn *c) { c->deadline = 0; }

static void on_conn_timer(uv_timer_t *t)
{
    conn *c = t->data;
    c->timer_armed = 0;
    if (c->closing || !c->deadline) return;
    uint64_t now = uv_now(c->srv->loop);
    if (now < c->deadline) { /* deadline moved later since arming */
        conn_arm(c, c->deadline - now);
        return;
    }
    c->deadline = 0;
    switch (c->state) {
    case S_HEAD:
        send_error(c, 408, "request header timeout");
        break;
    case S_BODY:
        send_error(c, 408, "request body timeout");
        break;
    default: /* idle keep-alive, stuck write, lingering close */
        conn_close(c);
        break;
    }
}

/* ---------------------------------------------------------------- reading */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = h->data;
    buf->base = c->srv->rbuf;
    buf->len = RBUF_SIZE;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_reading(conn *c, int on)
{
    if (c->closing) return;
    if (on && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
    } else if (!on && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (nread == 0 || c->closing) return;
    if (nread < 0) { /* EOF or error: nothing more can come from this client */
        conn_close(c);
        return;
    }
    if (c->state == S_LINGER) return; /* draining after the final response */
    if (!is_read_state(c->state)) {
        /* Not expected (reading is off outside read states); keep the bytes. */
        if (c->in_shared) {
            c->in_shared = 0;
            jr_buf_reset(&c->pend);
            c->in_pos = 0;
        }
        if (jr_buf_append(&c->pend, buf->base, (size_t)nread)) conn_close(c);
        conn_reading(c, 0);
        return;
    }
    c->sh = buf->base;
    c->sh_len = (size_t)nread;
    c->in_pos = 0;
    c->in_shared = 1;
    conn_run(c);
}

/* ---------------------------------------------------------------- writing */

static void on_write_done(conn *c);
static void on_shutdown(uv_shutdown_t *r, int status);

static void on_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    if (c->closing) return; /* cancelled by uv_close */
    if (status < 0) {
        conn_close(c);
        return;
    }
    on_write_done(c);
}

static void on_continue_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->cont_pending = 0;
    if (status < 0 && !c->closing) conn_close(c);
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    conn *c = r->data;
    if (status < 0 && !c->closing) conn_close(c);
}

/* After the final response: send FIN and keep reading (discarding) until the
 * client closes or LINGER_MS passes. Closing right away with unread input
 * would make the kernel send RST, which can destroy the response in flight
 * (e.g. a 413 while the client is still uploading). */
static void start_linger(conn *c)
{
    c->state = S_LINGER;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    set_deadline(c, LINGER_MS);
    conn_reading(c, 1);
}

static void access_log(conn *c)
{
    jr_http_req *req = c->req;
    double ms = 0;
    if (req && req->start_hr) ms = (double)(uv_hrtime() - req->start_hr) / 1e6;
    jr_logf(JR_LOG_INFO, req ? jr_http_req_id(req) : NULL, "%s %s %d %zu %.1fms",
            req && req->delivered ? req->method : "-",
            req && req->delivered ? req->strs.data + req->url_off : "-", c->log_status, c->log_blen,
            ms);
}

/* The whole response left the process. */
static void on_write_done(conn *c)
{
    jr_http_server *srv = c->srv;
    if (srv->cfg.access_log && jr_log_enabled(JR_LOG_INFO)) access_log(c);
    conn_drop_req(c);
    c->nrequests++;
    jr_buf_recycle(&c->wbuf, KEEP_BUF_MAX);
    if (c->close_after) {
        start_linger(c);
        return;
    }
    /* Back to reading: parse what is left in the buffer (pipelining). While
     * shutting down this happens only when the client had already sent more
     * (see jr_http_respond); conn_run closes the connection once it is idle
     * with nothing left. */
    c->state = S_IDLE;
    set_deadline(c, srv->cfg.idle_timeout_ms);
    llhttp_resume(&c->parser);
    if (!c->in_run) conn_run(c); /* else the running parse loop picks it up */
}

/* Build and send a response. send_body/with_cl follow HEAD/1xx/204/304
 * rules decided by the caller. Returns JR_HTTP_OK or JR_HTTP_ECLOSED. */
static int conn_send(conn *c, int status, const jr_http_header *hs, size_t nh, const char *body,
                     size_t blen, int send_body, int with_cl, int close)
{
    jr_http_server *srv = c->srv;
    const char *text = jr_http_status_text(status);
    size_t tlen = strlen(text), dlen;
    const char *date = date_line(srv, &dlen);
    size_t need = 9 + 4 + tlen + 2 + dlen + 40 + 26 + 2;
    for (size_t i = 0; i < nh; i++) need += hs[i].nlen + hs[i].vlen + 4;
    jr_buf_reset(&c->wbuf);
    if (jr_buf_reserve(&c->wbuf, need)) {
        conn_close(c);
        return JR_HTTP_ECLOSED;
    }
    char *p = c->wbuf.data;
    p = put_mem(p, "HTTP/1.1 ", 9);
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    p = put_mem(p, text, tlen);
    p = put_mem(p, "\r\n", 2);
    for (size_t i = 0; i < nh; i++) {
        const jr_http_header *h = &hs[i];
        /* Framing headers are ours: a caller's Content-Length/Connection/Date
         * (or Transfer-Encoding, which would contradict Content-Length) is
         * dropped. */
        if ((h->nlen == 4 && strncasecmp(h->name, "date", 4) == 0) ||
            (h->nlen == 10 && strncasecmp(h->name, "connection", 10) == 0) ||
            (h->nlen == 14 && strncasecmp(h->name, "content-length", 14) == 0) ||
            (h->nlen == 17 && strncasecmp(h->name, "transfer-encoding", 17) == 0))
            continue;
        p = put_mem(p, h->name, h->nlen);
        *p++ = ':';
        *p++ = ' ';
        p = put_mem(p, h->value, h->vlen);
        p = put_mem(p, "\r\n", 2);
    }
    p = put_mem(p, date, dlen);
    if (with_cl) {
        p = put_mem(p, "Content-Length: ", 16);
        p = put_uint(p, blen);
        p = put_mem(p, "\r\n", 2);
    }
    if (close) p = put_mem(p, "Connection: close\r\n\r\n", 21);
    else p = put_mem(p, "Connection: keep-alive\r\n\r\n", 26);
    c->wbuf.len = (size_t)(p - c->wbuf.data);

    if (!send_body) blen = 0;
    c->close_after = close ? 1 : 0;
    c->log_status = status;
    c->log_blen = blen;

    /* Fast path: the kernel takes it all now. */
    uv_buf_t bufs[2] = {uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len),
                        uv_buf_init((char *)(uintptr_t)body, (unsigned)blen)};
    size_t total = c->wbuf.len + blen;
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, blen ? 2 : 1);
    if (n >= 0 && (size_t)n == total) {
        on_write_done(c);
        return JR_HTTP_OK;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return JR_HTTP_ECLOSED;
    }
    /* Slow path: keep the unsent rest in wbuf (the caller's body may be
     * freed when we return) and let libuv finish it. */
    size_t sent = n > 0 ? (size_t)n : 0, hl = c->wbuf.len;
    if (sent < hl) {
        memmove(c->wbuf.data, c->wbuf.data + sent, hl - sent);
        c->wbuf.len = hl - sent;
        if (jr_buf_append(&c->wbuf, body, blen)) {
            conn_close(c);
            return JR_HTTP_ECLOSED;
        }
    } else {
        jr_buf_reset(&c->wbuf);
        if (jr_buf_append(&c->wbuf, body + (sent - hl), blen - (sent - hl))) {
            conn_close(c);
            return JR_HTTP_ECLOSED;
        }
    }
    uv_buf_t rest = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &rest, 1, on_written) != 0) {
        conn_close(c);
        return JR_HTTP_ECLOSED;
    }
    c->state = S_WRITING;
    set_deadline(c, srv->cfg.write_timeout_ms);
    conn_reading(c, 0);
    return JR_HTTP_OK;
}

/* A response the server makes itself (limits, timeouts, bad requests);
 * the connection closes after it. */
static void send_error(conn *c, int status, const char *detail)
{
    if (c->closing || c->state == S_LINGER || c->state == S_WRITING) return;
    /* A half-parsed request is never delivered; drop it. */
    if (c->req && !c->req->delivered) conn_drop_req(c);
    char body[256];
    size_t n = 0;
    n += (size_t)snprintf(body, sizeof body, "{\"detail\":\"");
    for (const char *s = detail; *s && n < sizeof body - 8; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') body[n++] = '\\';
        body[n++] = ch < 0x20 ? ' ' : (char)ch;
    }
    memcpy(body + n, "\"}", 2);
    n += 2;
    static const jr_http_header ct = {"Content-Type", 12, "application/json", 16};
    clear_deadline(c);
    conn_send(c, status, &ct, 1, body, n, 1, 1, 1);
}

/* ---------------------------------------------------------------- parser callbacks */

static int fail(conn *c, int status, const char *detail)
{
    c->err_status = status;
    c->err_detail = detail;
    return HPE_USER;
}

static int count_header_bytes(conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->srv->cfg.max_header_size)
        return fail(c, 431, "request header too large");
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    conn *c = p->data;
    jr_http_server *srv = c->srv;
    jr_http_req *req = req_get(srv);
    if (!req) return fail(c, 500, "out of memory");
    req->conn = c;
    memcpy(req->remote, c->remote, sizeof req->remote);
    req->remote_port = c->remote_port;
    c->req = req;
    c->header_bytes = c->body_bytes = 0;
    c->in_field = c->skip_hdr = c->url_started = 0;
    c->nhost = c->te_other = 0;
    c->err_status = 0;
    c->err_detail = NULL;
    c->state = S_HEAD;
    set_deadline(c, srv->cfg.header_timeout_ms);
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t n)
{
    return count_header_bytes(p->data, n);
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    conn *c = p->data;
    jr_http_req *req = c->req;
    if (count_header_bytes(c, n)) return HPE_USER;
    if (!c->url_started) {
        c->url_started = 1;
        req->url_off = (uint32_t)req->strs.len;
    }
    if (jr_buf_append(&req->strs, at, n)) return fail(c, 500, "out of memory");
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    conn *c = p->data;
    jr_http_req *req = c->req;
    if (!c->url_started) {
        c->url_started = 1;
        req->url_off = (uint32_t)req->strs.len;
    }
    req->url_len = (uint32_t)(req->strs.len - req->url_off);
    if (jr_buf_append_char(&req->strs, '\0')) return fail(c, 500, "out of memory");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    conn *c = p->data;
    jr_http_req *req = c->req;
    if (count_header_bytes(c, n)) return HPE_USER;
    if (!c->in_field) {
        c->in_field = 1;
        /* Trailers (after a chunked body) count toward the size limit but are
         * not stored: handlers see the headers as sent before the body. */
        c->skip_hdr = (p->flags & F_TRAILING) ? 1 : 0;
        if (c->skip_hdr) return 0;
        if (req->nhdrs >= c->srv->cfg.max_headers) return fail(c, 431, "too many header fields");
        if (req->nhdrs == req->hcap) {
            size_t cap = req->hcap ? req->hcap * 2 : 16;
            hdr_ent *h = realloc(req->hdrs, cap * sizeof *h);
            if (!h) return fail(c, 500, "out of memory");
            req->hdrs = h;
            req->hcap = cap;
        }
        hdr_ent *h = &req->hdrs[req->nhdrs++];
        h->no = (uint32_t)req->strs.len;
        h->nl = h->vo = h->vl = 0;
    }
    if (c->skip_hdr) return 0;
    if (jr_buf_append(&req->strs, at, n)) return fail(c, 500, "out of memory");
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    conn *c = p->data;
    jr_http_req *req = c->req;
    c->in_field = 0;
    if (c->skip_hdr) return 0;
    hdr_ent *h = &req->hdrs[req->nhdrs - 1];
    h->nl = (uint32_t)(req->strs.len - h->no);
    if (jr_buf_append_char(&req->strs, '\0')) return fail(c, 500, "out of memory");
    h->vo = (uint32_t)req->strs.len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (count_header_bytes(c, n)) return HPE_USER;
    if (c->skip_hdr) return 0;
    if (jr_buf_append(&c->req->strs, at, n)) return fail(c, 500, "out of memory");
    return 0;
}

/* RFC 9112 §3.2: Host is uri-host [":" port]. Checked by character class
 * only (reg-name, IP literals and the port use nothing else); an empty value
 * is allowed (a target without authority). Whitespace, '/', '@', '?', '#',
 * quotes and non-ASCII bytes are not host characters. */
static int valid_host(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
            continue;
        if (!memchr("-._~%!$&'()*+,;=:[]", ch, 19)) return 0;
    }
    return 1;
}

/* Does a Transfer-Encoding value list a coding other than "chunked"? We
 * decode only chunked: a body still gzip- (or otherwise) encoded must not
 * reach a handler as if it were plain. Empty list elements are allowed
 * (RFC 9110 §5.6.1). Where chunked stands in the list llhttp checks. */
int jr_http_list_next(const char *v, size_t n, size_t *pos, const char **elem, size_t *elen)
{
    size_t i = *pos;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    if (i >= n) {
        *pos = n;
        return 0;
    }
    size_t s = i;
    while (i < n && v[i] != ',') i++;
    size_t e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    *pos = i;
    *elem = v + s;
    *elen = e - s;
    return 1;
}

static int names_other_coding(const char *v, size_t n)
{
    size_t pos = 0, el;
    const char *e;
    while (jr_http_list_next(v, n, &pos, &e, &el))
        if (!(el == 7 && strncasecmp(e, "chunked", 7) == 0)) return 1;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    conn *c = p->data;
    jr_http_req *req = c->req;
    if (c->skip_hdr) return 0;
    size_t idx = req->nhdrs - 1;
    hdr_ent *h = &req->hdrs[idx];
    size_t vl = req->strs.len - h->vo;
    const char *v = req->strs.data + h->vo;
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--; /* llhttp keeps trailing OWS */
    req->strs.len = h->vo + vl;
    h->vl = (uint32_t)vl;
    if (jr_buf_append_char(&req->strs, '\0')) return fail(c, 500, "out of memory");
    /* re-read after the append: strs may have moved */
    const char *name = req->strs.data + h->no;
    v = req->strs.data + h->vo;
    if (h->nl == 4 && strncasecmp(name, "host", 4) == 0) {
        if (c->nhost < 2) c->nhost++;
        if (!valid_host(v, vl)) return fail(c, 400, "invalid Host header");
    } else if (h->nl == 12 && req->xrid < 0 && strncasecmp(name, "x-request-id", 12) == 0) {
        req->xrid = (int32_t)idx;
    } else if (h->nl == 6 && strncasecmp(name, "expect", 6) == 0 && vl == 12 &&
               strncasecmp(v, "100-continue", 12) == 0) {
        req->expect_continue = 1;
    } else if (h->nl == 17 && strncasecmp(name, "transfer-encoding", 17) == 0 &&
               names_other_coding(v, vl)) {
        c->te_other = 1;
    }
    return 0;
}

/* Split the target into path (decoded copy appended to strs) and query.
 * Returns -1 for a malformed escape (or an encoded NUL, which no handler
 * expects inside a C string path). */
static int split_target(jr_http_req *req)
{
    size_t n = req->url_len;
    if (jr_buf_reserve(&req->strs, n + 2)) return -2;
    const char *t = req->strs.data + req->url_off; /* stable: capacity reserved above */
    size_t ps = 0;
    if (n && t[0] != '/') {
        /* absolute-form "scheme://authority/path": skip to the path */
        const char *sep = memmem(t, n, "://", 3);
        if (sep) {
            size_t i = (size_t)(sep - t) + 3;
            while (i < n && t[i] != '/' && t[i] != '?') i++;
            ps = i;
        }
    }
    size_t pe = ps;
    while (pe < n && t[pe] != '?' && t[pe] != '#') pe++;
    if (pe < n && t[pe] == '?') {
        size_t qe = pe + 1;
        while (qe < n && t[qe] != '#') qe++;
        req->query_off = req->url_off + (uint32_t)(pe + 1);
        req->query_len = (uint32_t)(qe - pe - 1);
    } else {
        req->query_off = req->url_off + (uint32_t)n;
        req->query_len = 0;
    }
    char *dst = req->strs.data + req->strs.len;
    req->path_off = (uint32_t)req->strs.len;
    long d;
    if (pe == ps && ps > 0) { /* "http://host" or "http://host?q" */
        dst[0] = '/';
        d = 1;
    } else {
        d = jr_http_url_decode(dst, t + ps, pe - ps, 0);
        if (d < 0 || memchr(dst, '\0', (size_t)d)) return -1;
    }
    dst[d] = '\0';
    req->path_len = (uint32_t)d;
    req->strs.len += (size_t)d + 1;
    return 0;
}

static void send_continue(conn *c)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (c->cont_pending) return;
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)msg, sizeof msg - 1);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)b.len) return;
    if (n < 0 && n != UV_EAGAIN) return; /* broken; reading will notice */
    if (n < 0) n = 0;
    b = uv_buf_init((char *)(uintptr_t)msg + n, (unsigned)(sizeof msg - 1 - (size_t)n));
    c->creq.data = c;
    if (uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written) == 0)
        c->cont_pending = 1;
}

static int on_headers_complete(llhttp_t *p)
{
    conn *c = p->data;
    jr_http_req *req = c->req;
    jr_http_server *srv = c->srv;
    req->http_major = p->http_major;
    req->http_minor = p->http_minor;
    if (p->http_major != 1) return fail(c, 505, "HTTP version not supported");
    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0. */
    if (c->nhost > 1) return fail(c, 400, "more than one Host header");
    if (c->nhost == 0 && p->http_minor >= 1) return fail(c, 400, "missing Host header");
    /* Transfer-Encoding (RFC 9112 §6). llhttp (strict: we set none of its
     * lenient flags) already refused it together with Content-Length, and
     * chunked twice or before another coding; a request whose last coding
     * is not chunked would only fail after this callback, so it is refused
     * here with a clearer message. */
    if (p->flags & F_TRANSFER_ENCODING) {
        if (p->http_minor == 0) /* §6.1: 1.0 has no Transfer-Encoding; framing is unreliable */
            return fail(c, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (!(p->flags & F_CHUNKED))
            return fail(c, 400, "chunked must be the final transfer coding");
        if (c->te_other) return fail(c, 501, "transfer codings other than chunked are not implemented");
    }
    req->method = llhttp_method_name((llhttp_method_t)p->method);
    req->method_len = strlen(req->method);
    req->is_head = p->method == HTTP_HEAD;
    req->keepalive = llhttp_should_keep_alive(p) ? 1 : 0;
    req->upgrade = p->upgrade ? 1 : 0;
    int r = split_target(req);
    if (r == -2) return fail(c, 500, "out of memory");
    if (r < 0) return fail(c, 400, "malformed percent-escape in path");
    int chunked = (p->flags & F_CHUNKED) != 0;
    int has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    if (has_cl && p->content_length > srv->cfg.max_body_size)
        return fail(c, 413, "request body too large");
    if (chunked || (has_cl && p->content_length > 0)) {
        c->state = S_BODY;
        set_deadline(c, srv->cfg.body_timeout_ms);
        if (has_cl && jr_buf_reserve(&req->body, (size_t)p->content_length))
            return fail(c, 500, "out of memory");
        /* The client waits for our go-ahead before sending the body. */
        if (req->expect_continue && p->http_minor >= 1) send_continue(c);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    conn *c = p->data;
    c->body_bytes += n;
    if (c->body_bytes > c->srv->cfg.max_body_size) return fail(c, 413, "request body too large");
    if (jr_buf_append(&c->req->body, at, n)) return fail(c, 500, "out of memory");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn *c = p->data;
    c->msg_done = 1;
    return HPE_PAUSED; /* one request at a time: stop right after this message */
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---------------------------------------------------------------- the parse loop */

static void deliver(conn *c)
{
    jr_http_server *srv = c->srv;
    jr_http_req *req = c->req;
    c->state = S_HANDLER;
    clear_deadline(c);
    req->delivered = 1;
    req->start_ms = uv_now(srv->loop);
    if (srv->cfg.access_log) req->start_hr = uv_hrtime();
    srv->inflight++;
    /* Hold a reference for the duration of the callback so the handler may
     * still look at req after answering it synchronously. */
    req->refs++;
    srv->on_request(req, srv->ud);
    jr_http_req_release(req);
}

static void parse_error(conn *c, llhttp_errno_t e)
{
    int status = c->err_status ? c->err_status : 400;
    const char *detail = c->err_detail;
    char tmp[160];
    if (!detail) {
        const char *why = llhttp_get_error_reason(&c->parser);
        snprintf(tmp, sizeof tmp, "malformed request: %s", why ? why : llhttp_errno_name(e));
        detail = tmp;
    }
    send_error(c, status, detail);
}

/* Parse buffered input until it is used up or a request is waiting for its
 * response. Not re-entered: a response finishing while the loop runs (the
 * handler answered synchronously) just flips the state back to reading and
 * the loop carries on, so pipelined requests never recurse. */
static void conn_run(conn *c)
{
    if (c->in_run) return;
    c->in_run = 1;
    for (;;) {
        if (c->closing || !is_read_state(c->state)) break;
        const char *base = c->in_shared ? c->sh : c->pend.data;
        size_t len = c->in_shared ? c->sh_len : c->pend.len, pos = c->in_pos;
        if (pos >= len) break;
        llhttp_errno_t e = llhttp_execute(&c->parser, base + pos, len - pos);
        if (e == HPE_OK) {
            c->in_pos = len;
            break;
        }
        if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && c->msg_done) {
            c->in_pos = pos + (size_t)(llhttp_get_error_pos(&c->parser) - (base + pos));
            c->msg_done = 0;
            deliver(c);
            continue;
        }
        c->in_pos = len;
        parse_error(c, e);
        break;
    }
    if (!c->closing) {
        size_t len = c->in_shared ? c->sh_len : c->pend.len;
        int waiting = c->state == S_HANDLER || (c->state == S_WRITING && !c->close_after);
        if (waiting && c->in_pos < len) {
            /* Pipelined bytes wait for the response; the shared buffer will
             * be reused by the next read, so move them to our own. */
            if (c->in_shared) {
                jr_buf_reset(&c->pend);
                if (jr_buf_append(&c->pend, c->sh + c->in_pos, len - c->in_pos)) {
                    c->in_run = 0;
                    conn_close(c);
                    return;
                }
                c->in_shared = 0;
                c->in_pos = 0;
            }
        } else {
            c->in_shared = 0;
            c->in_pos = 0;
            jr_buf_recycle(&c->pend, KEEP_BUF_MAX);
        }
        if (is_read_state(c->state)) conn_reading(c, 1);
        else if (c->state != S_LINGER) conn_reading(c, 0);
    }
    c->in_run = 0;
    /* Draining for shutdown: back to idle and nothing more from the client
     * (in our buffer or in the socket) means this connection is done. */
    if (!c->closing && c->srv->shutting && c->state == S_IDLE && !conn_has_input(c))
        conn_close(c);
}

/* ---------------------------------------------------------------- respond */

static int has_crlf(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
    return 0;
}

int jr_http_headers_valid(const jr_http_header *headers, size_t n)
{
    if (n && !headers) return 0;
    for (size_t i = 0; i < n; i++) {
        if (!headers[i].name || !headers[i].nlen || (headers[i].vlen && !headers[i].value) ||
            has_crlf(headers[i].name, headers[i].nlen) ||
            has_crlf(headers[i].value, headers[i].vlen))
            return 0;
    }
    return 1;
}

int jr_http_respond(jr_http_req *req, int status, const jr_http_header *headers, size_t nheaders,
                    const char *body, size_t body_len)
{
    if (!req) return JR_HTTP_EINVALID;
    if (req->answered) return JR_HTTP_EANSWERED;
    /* A final answer: a 1xx would leave the client waiting for one, and
     * RFC 9110 defines nothing above 599. */
    if (status < 200 || status > 599) return JR_HTTP_EINVALID;
    if (body_len && !body) return JR_HTTP_EINVALID;
    if (!jr_http_headers_valid(headers, nheaders)) return JR_HTTP_EINVALID;
    conn *c = req->conn;
    if (!c || c->closing || c->state != S_HANDLER) return JR_HTTP_ECLOSED;
    jr_http_server *srv = c->srv;
    req->answered = 1;
    srv->inflight--;
    unsigned maxka = srv->cfg.max_keepalive_requests;
    /* Shutting down, the connection closes after this answer unless the
     * client already sent (part of) its next request: that one is answered
     * too, and the last answer carries "Connection: close". */
    int close = !req->keepalive || req->upgrade || (maxka && c->nrequests + 1 >= maxka) ||
                (srv->shutting && !conn_has_input(c));
    int nobody = status < 200 || status == 204 || status == 304;
    int with_cl = !(status < 200 || status == 204 || (status == 304 && body_len == 0));
    int rc = conn_send(c, status, headers, nheaders, body, body_len, !nobody && !req->is_head,
                       with_cl, close);
    /* The write failed at once (peer reset): the request was never answered,
     * and any later attempt keeps reporting the closed connection. */
    if (rc == JR_HTTP_ECLOSED) req->answered = 0;
    return rc;
}

int jr_http_req_detach(jr_http_req *req, int *fd, char *rest, size_t cap, size_t *rest_len)
{
    if (!req || !fd || !rest_len || (cap && !rest) || !req->upgrade) return JR_HTTP_EINVALID;
    if (req->answered) return JR_HTTP_EANSWERED;
    conn *c = req->conn;
    if (!c || c->closing || c->state != S_HANDLER) return JR_HTTP_ECLOSED;
    const char *base = c->in_shared ? c->sh : c->pend.data;
    size_t len = c->in_shared ? c->sh_len : c->pend.len;
    size_t n = len > c->in_pos ? len - c->in_pos : 0;
    if (n > cap) return JR_HTTP_ETOOBIG;
    uv_os_fd_t own;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &own) != 0) return JR_HTTP_ECLOSED;
    /* A duplicate, not the descriptor itself: libuv closes its own when the
     * handle closes, and the new owner registers the duplicate with epoll
     * afresh (uv_close removes ours from epoll before closing it). */
    int dupfd = fcntl(own, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0) return JR_HTTP_ESYS;
    if (n) memcpy(rest, base + c->in_pos, n);
    *rest_len = n;
    *fd = dupfd;
    c->in_pos = len;
    req->answered = 1;
    c->srv->inflight--;
    if (c->srv->cfg.access_log)
        jr_logf(JR_LOG_INFO, jr_http_req_id(req), "%s %.*s upgrade handed over", req->method,
                (int)req->url_len, jr_http_req_target(req, NULL));
    conn_close(c);
    return JR_HTTP_OK;
}

/* ---------------------------------------------------------------- connections */

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (++c->nclosed < 2) return;
    jr_http_server *srv = c->srv;
    if (c->prev) c->prev->next = c->next;
    else srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    jr_buf_free(&c->pend);
    jr_buf_free(&c->wbuf);
    free(c);
    srv_check(srv);
}

/* Close now, whatever is pending (callbacks of cancelled writes run before
 * the close callbacks, so the struct stays valid for them). */
static void conn_close(conn *c)
{
    if (c->closing) return;
    jr_http_server *srv = c->srv;
    c->closing = 1;
    c->state = S_CLOSED;
    c->reading = 0;
    if (c->counted) {
        srv->active--;
        c->counted = 0;
    }
    if (c->req) {
        if (c->req->delivered && !c->req->answered) srv->inflight--;
        conn_drop_req(c);
    }
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    jr_http_server *srv = server->data;
    if (status < 0) {
        jr_logf(JR_LOG_WARN, NULL, "http: accept failed: %s", uv_strerror(status));
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        jr_logf(JR_LOG_ERROR, NULL, "http: out of memory accepting a connection");
        return;
    }
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    c->state = S_IDLE;
    if (srv->active >= srv->cfg.max_connections) {
        send_error(c, 503, "too many connections");
        return;
    }
    srv->active++;
    c->counted = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = (int)sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, c->remote, sizeof c->remote);
            c->remote_port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, c->remote, sizeof c->remote);
            c->remote_port = ntohs(a->sin_port);
        }
    }
    /* A fresh connection gets header_timeout to send its first request
     * (closed silently if it sends nothing). */
    set_deadline(c, srv->cfg.header_timeout_ms);
    conn_reading(c, 1);
}

/* ---------------------------------------------------------------- server */

void jr_http_config_defaults(jr_http_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "0.0.0.0";
    cfg->port = 8000;
    cfg->backlog = 511;
    cfg->max_header_size = 16384;
    cfg->max_headers = 100;
    cfg->max_body_size = 1024 * 1024;
    cfg->header_timeout_ms = 10000;
    cfg->body_timeout_ms = 30000;
    cfg->idle_timeout_ms = 60000;
    cfg->write_timeout_ms = 30000;
    cfg->max_connections = 10000;
    cfg->max_keepalive_requests = 0;
    cfg->access_log = 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    jr_http_server *srv = h->data;
    srv->listener_open = 0;
    srv_check(srv);
}

static void on_grace_closed(uv_handle_t *h)
{
    jr_http_server *srv = h->data;
    srv->grace_open = 0;
    srv_check(srv);
}

static void close_listener(jr_http_server *srv)
{
    if (srv->listener_open && !srv->listener_closing) {
        srv->listener_closing = 1;
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    }
}

static void close_grace(jr_http_server *srv)
{
    if (srv->grace_open && !srv->grace_closing) {
        srv->grace_closing = 1;
        uv_timer_stop(&srv->grace);
        uv_close((uv_handle_t *)&srv->grace, on_grace_closed);
    }
}

static void srv_try_free(jr_http_server *srv)
{
    if (!srv->free_pending || srv->freed || srv->listener_open || srv->grace_open || srv->conns ||
        srv->live_reqs)
        return;
    srv->freed = 1;
    while (srv->free_reqs) {
        jr_http_req *r = srv->free_reqs;
        srv->free_reqs = r->next_free;
        req_destroy(r);
    }
    free(srv);
}

/* Something closed: maybe shutdown is complete, maybe memory can go. */
static void srv_check(jr_http_server *srv)
{
    if (srv->shutting && !srv->done_called && !srv->free_pending && !srv->listener_open &&
        !srv->conns) {
        srv->done_called = 1;
        close_grace(srv);
        if (srv->done) {
            srv->done(srv->done_ud); /* may free srv: nothing after this */
            return;
        }
    }
    srv_try_free(srv);
}

static void on_grace(uv_timer_t *t)
{
    jr_http_server *srv = t->data;
    for (conn *c = srv->conns; c; c = c->next) conn_close(c);
}

jr_http_server *jr_http_server_start(uv_loop_t *loop, const jr_http_config *cfgin,
                                     jr_http_on_request on_request, void *ud, char *err,
                                     size_t errlen, int *uverr)
{
    int uverr_local;
    if (!uverr) uverr = &uverr_local;
    *uverr = 0; /* 0: a bad configuration value */
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    jr_http_config cfg, def;
    jr_http_config_defaults(&def);
    if (cfgin) cfg = *cfgin;
    else cfg = def;
    /* Zero means "default" for the limits (a zero limit would reject
     * everything); port 0 stays ephemeral. */
    if (!cfg.host || !*cfg.host) cfg.host = def.host;
    if (cfg.backlog <= 0) cfg.backlog = def.backlog;
    if (!cfg.max_header_size) cfg.max_header_size = def.max_header_size;
    if (cfg.max_header_size > (1u << 30)) cfg.max_header_size = 1u << 30; /* 32-bit offsets */
    if (!cfg.max_headers) cfg.max_headers = def.max_headers;
    if (!cfg.max_body_size) cfg.max_body_size = def.max_body_size;
    if (!cfg.header_timeout_ms) cfg.header_timeout_ms = def.header_timeout_ms;
    if (!cfg.body_timeout_ms) cfg.body_timeout_ms = def.body_timeout_ms;
    if (!cfg.idle_timeout_ms) cfg.idle_timeout_ms = def.idle_timeout_ms;
    if (!cfg.write_timeout_ms) cfg.write_timeout_ms = def.write_timeout_ms;
    if (!cfg.max_connections) cfg.max_connections = def.max_connections;
    if (!loop || !on_request) {
        snprintf(err, errlen, "http: loop and on_request are required");
        return NULL;
    }
    if (cfg.port < 0 || cfg.port > 65535) {
        snprintf(err, errlen, "invalid port %d", cfg.port);
        return NULL;
    }

    /* Address: "::1", "[::1]" or "127.0.0.1". */
    char host[INET6_ADDRSTRLEN + 2];
    const char *h = cfg.host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        snprintf(err, errlen, "invalid listen address \"%s\"", cfg.host);
        return NULL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int v6 = strchr(host, ':') != NULL, r;
    if (v6) r = uv_ip6_addr(host, cfg.port, (struct sockaddr_in6 *)&ss);
    else r = uv_ip4_addr(host, cfg.port, (struct sockaddr_in *)&ss);
    if (r != 0) {
        snprintf(err, errlen, "invalid listen address \"%s\": %s", cfg.host, uv_strerror(r));
        return NULL;
    }
    char where[INET6_ADDRSTRLEN + 16];
    snprintf(where, sizeof where, v6 ? "[%s]:%d" : "%s:%d", host, cfg.port);

    /* The socket is made by hand: libuv 1.44 cannot set SO_REUSEPORT. */
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *uverr = -errno;
        snprintf(err, errlen, "socket: %s", uv_strerror(*uverr));
        return NULL;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        *uverr = -errno;
        snprintf(err, errlen, "setsockopt SO_REUSEADDR: %s", uv_strerror(*uverr));
        close(fd);
        return NULL;
    }
    if (cfg.reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        *uverr = -errno;
        snprintf(err, errlen, "setsockopt SO_REUSEPORT: %s", uv_strerror(*uverr));
        close(fd);
        return NULL;
    }
    socklen_t alen = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, alen) != 0) {
        *uverr = -errno;
        snprintf(err, errlen, "bind %s: %s", where, uv_strerror(*uverr));
        close(fd);
        return NULL;
    }
    if (listen(fd, cfg.backlog) != 0) {
        *uverr = -errno;
        snprintf(err, errlen, "listen %s: %s", where, uv_strerror(*uverr));
        close(fd);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    int port = cfg.port;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);

    /* libuv writes with write(2)/writev(2): a peer that went away would
     * raise SIGPIPE and kill the process. Ignore it unless someone installed
     * a handler of their own; EPIPE then arrives as a write error. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }

    jr_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        *uverr = UV_ENOMEM;
        snprintf(err, errlen, "out of memory");
        close(fd);
        return NULL;
    }
    srv->loop = loop;
    srv->cfg = cfg;
    srv->cfg.host = NULL; /* the caller's string is not kept */
    srv->on_request = on_request;
    srv->ud = ud;
    srv->port = port;
    srv->pid = (unsigned)getpid();
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->grace.data = srv;
    srv->listener_open = 1;
    if ((r = uv_tcp_open(&srv->listener, fd)) != 0) {
        *uverr = r;
        snprintf(err, errlen, "uv_tcp_open %s: %s", where, uv_strerror(r));
        close(fd);
        srv->free_pending = 1;
        close_listener(srv); /* srv is freed by the close callback */
        return NULL;
    }
    if ((r = uv_listen((uv_stream_t *)&srv->listener, cfg.backlog, on_connection)) != 0) {
        *uverr = r;
        snprintf(err, errlen, "listen %s: %s", where, uv_strerror(r));
        srv->free_pending = 1;
        close_listener(srv);
        return NULL;
    }
    return srv;
}

int jr_http_server_port(const jr_http_server *srv) { return srv->port; }
size_t jr_http_server_connections(const jr_http_server *srv) { return srv->active; }
size_t jr_http_server_inflight(const jr_http_server *srv) { return srv->inflight; }

void jr_http_server_shutdown(jr_http_server *srv, unsigned grace_ms, void (*done)(void *ud),
                             void *ud)
{
    if (!srv || srv->shutting || srv->free_pending) return;
    srv->shutting = 1;
    srv->done = done;
    srv->done_ud = ud;
    close_listener(srv);
    /* Idle keep-alive connections go now, unless their client already sent
     * bytes of a next request (still in the socket: the read callback has
     * not run yet). Requests arriving (headers or body), in handlers or
     * being written finish; each connection closes after its last answer,
     * which says "Connection: close" (see jr_http_respond). */
    for (conn *c = srv->conns; c; c = c->next)
        if (c->state == S_IDLE && !conn_has_input(c)) conn_close(c);
    uv_timer_init(srv->loop, &srv->grace);
    srv->grace_open = 1;
    uv_timer_start(&srv->grace, on_grace, grace_ms, 0);
}

void jr_http_server_free(jr_http_server *srv)
{
    if (!srv || srv->free_pending) return;
    srv->free_pending = 1;
    close_listener(srv);
    for (conn *c = srv->conns; c; c = c->next) conn_close(c);
    close_grace(srv);
    /* Freed now if nothing is pending, else by the last close callback (or
     * the last jr_http_req_release of a request a handler still holds). */
    srv_try_free(srv);
}
