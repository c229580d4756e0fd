/* http_client_conn.c - one connection of the HTTP client: resolve, connect,
 * TLS handshake, write a request, parse its response with llhttp, then go
 * idle or close (see http_client.h for the pool and the retry rule). */
#include "http_client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uv_write_t w;
    hc_conn *k;
    unsigned seq; /* k->served when written: a late failure of an older request's write is not ours */
    size_t len;
    char data[];
} hc_write;

static void conn_fail(hc_conn *k, int status, const char *msg, int at_write);
static void conn_complete(hc_conn *k, int keep);

/* ---- llhttp callbacks ---- */

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    jr_hc_req *r = ((hc_conn *)p->data)->req;
    if (jr_buf_reserve(&r->hdr, n) != 0) return -1;
    char *d = r->hdr.data + r->hdr.len;
    for (size_t i = 0; i < n; i++) {
        char ch = at[i];
        d[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    r->hdr.len += n;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    jr_hc_req *r = ((hc_conn *)p->data)->req;
    r->in_value = 1;
    return jr_buf_append_char(&r->hdr, 0);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    jr_hc_req *r = ((hc_conn *)p->data)->req;
    return jr_buf_append(&r->hdr, at, n);
}

static int on_header_value_complete(llhttp_t *p)
{
    jr_hc_req *r = ((hc_conn *)p->data)->req;
    /* trailing whitespace is not part of the value (RFC 9110 5.5) */
    while (r->hdr.len > 0 && (r->hdr.data[r->hdr.len - 1] == ' ' || r->hdr.data[r->hdr.len - 1] == '\t') &&
           r->hdr.data[r->hdr.len - 1] != 0)
        r->hdr.len--;
    r->in_value = 0;
    r->nhdr++;
    return jr_buf_append_char(&r->hdr, 0);
}

static int on_headers_complete(llhttp_t *p)
{
    hc_conn *k = p->data;
    jr_hc_req *r = k->req;
    r->status = p->status_code;
    if (r->status >= 100 && r->status < 200 && r->status != 101) return 0; /* an interim response: no body */
    return r->head ? 1 : 0; /* a HEAD response announces a length it does not send */
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    jr_hc_req *r = ((hc_conn *)p->data)->req;
    return jr_buf_append(&r->body, at, n);
}

static int on_message_complete(llhttp_t *p)
{
    hc_conn *k = p->data;
    jr_hc_req *r = k->req;
    if (r->status >= 100 && r->status < 200 && r->status != 101) {
        /* 100 Continue, 103 Early Hints: skipped, the real response follows */
        jr_buf_reset(&r->hdr);
        r->nhdr = 0;
        r->status = 0;
        return 0;
    }
    k->done = 1;
    return HPE_PAUSED; /* stop at the response's end: anything after it is not ours */
}

static const llhttp_settings_t k_settings = {
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- writing ---- */

static void on_written(uv_write_t *w, int status)
{
    hc_write *hw = (hc_write *)w;
    hc_conn *k = hw->k;
    unsigned seq = hw->seq;
    free(hw);
    if (status < 0 && status != UV_ECANCELED && k->state != HC_CLOSING && k->req && k->served == seq) {
        char msg[400], where[300];
        hc_origin_name(k->o, where, sizeof where);
        snprintf(msg, sizeof msg, "the connection to %s failed while sending the request: %s", where,
                 uv_strerror(status));
        conn_fail(k, JR_HC_ECLOSED, msg, 1);
    }
}

/* Write n bytes (a copy: the request may be recycled before the write
 * completes). 0, or -1 after failing the connection. */
static int conn_write(hc_conn *k, const char *data, size_t n)
{
    if (n == 0) return 0;
    hc_write *hw = malloc(sizeof *hw + n);
    if (!hw) {
        conn_fail(k, JR_HC_ENOMEM, "out of memory for the request", 0);
        return -1;
    }
    hw->k = k;
    hw->seq = k->served;
    hw->len = n;
    memcpy(hw->data, data, n);
    uv_buf_t b = uv_buf_init(hw->data, (unsigned)n);
    int rc = uv_write(&hw->w, (uv_stream_t *)&k->tcp, &b, 1, on_written);
    if (rc < 0) {
        free(hw);
        char msg[300];
        snprintf(msg, sizeof msg, "cannot send the request: %s", uv_strerror(rc));
        conn_fail(k, JR_HC_ECLOSED, msg, 1);
        return -1;
    }
    return 0;
}

/* Send what OpenSSL has for the peer. */
static int tls_flush(hc_conn *k)
{
    jr_buf_reset(&k->tlsout);
    if (jr_hc_tls_drain(k->tls, &k->tlsout) != 0) {
        conn_fail(k, JR_HC_ENOMEM, "out of memory (TLS)", 0);
        return -1;
    }
    return conn_write(k, k->tlsout.data, k->tlsout.len);
}

void hc_conn_send(hc_conn *k, jr_hc_req *r)
{
    jr_hc *c = k->c;
    uv_timer_stop(&k->timer);
    uv_ref((uv_handle_t *)&k->tcp);
    uv_ref((uv_handle_t *)&k->timer);
    k->req = r;
    r->conn = k;
    k->state = HC_BUSY;
    k->got_bytes = 0;
    k->done = 0;
    k->rx = 0;
    jr_buf_reset(&r->hdr);
    jr_buf_reset(&r->body);
    r->nhdr = 0;
    r->status = 0;
    llhttp_init(&k->parser, HTTP_RESPONSE, &k_settings);
    k->parser.data = k;
    if (k->served > 0) c->st.reused++;
    if (k->tls) {
        if (jr_hc_tls_write(k->tls, r->out.data, r->out.len) != 0) {
            conn_fail(k, JR_HC_ETLS, "TLS: cannot encrypt the request", 0);
            return;
        }
        tls_flush(k);
        return;
    }
    conn_write(k, r->out.data, r->out.len);
}

/* ---- closing ---- */

static void conn_closed(uv_handle_t *h)
{
    hc_conn *k = h->data;
    if (--k->pending > 0) return;
    jr_hc *c = k->c;
    jr_hc_tls_free(k->tls);
    jr_buf_free(&k->tlsout);
    free(k);
    c->handles--;
    hc_maybe_free(c);
}

void hc_conn_close(hc_conn *k)
{
    if (k->state == HC_CLOSING) return;
    jr_hc *c = k->c;
    hc_origin *o = k->o;
    if (k->state == HC_IDLE) {
        if (k->idle_prev) k->idle_prev->idle_next = k->idle_next;
        else o->idle = k->idle_next;
        if (k->idle_next) k->idle_next->idle_prev = k->idle_prev;
        k->idle_prev = k->idle_next = NULL;
        o->nidle--;
    }
    if (k->state == HC_RESOLVING) uv_cancel((uv_req_t *)&k->gai); /* its callback still comes */
    k->state = HC_CLOSING;
    if (k->prev) k->prev->next = k->next;
    else c->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    k->prev = k->next = NULL;
    o->nconn--;
    k->o = NULL; /* the origin may be freed before the handles close */
    uv_close((uv_handle_t *)&k->timer, conn_closed);
    uv_close((uv_handle_t *)&k->tcp, conn_closed);
}

/* A failure of k: it closes; its request (if any) is retried once on a
 * fresh connection under the rule of http_client.h, else ends with status. */
static void conn_fail(hc_conn *k, int status, const char *msg, int at_write)
{
    hc_origin *o = k->o;
    jr_hc_req *r = k->req;
    int reused = k->served > 0, got = k->got_bytes;
    k->req = NULL;
    if (r) r->conn = NULL;
    hc_conn_close(k);
    if (r && status == JR_HC_ECLOSED && reused && !got && !r->retried && (r->idempotent || at_write) &&
        !r->c->closing) {
        r->retried = 1;
        hc_dispatch(r, 1);
        hc_serve_queue(o);
        return;
    }
    hc_serve_queue(o);
    if (r) hc_req_done(r, status, msg);
}

static void fail_fmt(hc_conn *k, int status, const char *what, const char *detail)
{
    char msg[600], where[300];
    hc_origin_name(k->o, where, sizeof where);
    /* A message cut at 600 bytes still says what failed and where. */
    if (snprintf(msg, sizeof msg, "%s %s%s%s", what, where, detail ? ": " : "", detail ? detail : "") < 0)
        msg[0] = 0;
    conn_fail(k, status, msg, 0);
}

/* The current response is whole: the request is answered, the connection
 * serves the next one (keep) or closes. */
static void conn_complete(hc_conn *k, int keep)
{
    jr_hc_req *r = k->req;
    hc_origin *o = k->o;
    k->req = NULL;
    r->conn = NULL;
    k->served++;
    if (keep && !k->c->closing) {
        hc_conn_release(k);
    } else {
        hc_conn_close(k);
        hc_serve_queue(o);
    }
    hc_req_done(r, JR_HC_OK, NULL);
}

/* ---- reading ---- */

/* Response bytes: 1 when the response ended or the connection failed
 * (stop feeding), 0 for more. */
static int conn_parse(hc_conn *k, const char *data, size_t n)
{
    k->got_bytes = 1;
    k->rx += n;
    if (k->rx > k->c->o.max_response) {
        char detail[80];
        snprintf(detail, sizeof detail, "more than %zu bytes", k->c->o.max_response);
        fail_fmt(k, JR_HC_ETOOLARGE, "the response is too large from", detail);
        return 1;
    }
    llhttp_errno_t e = llhttp_execute(&k->parser, data, n);
    if (k->done) {
        size_t used = n;
        if (e == HPE_PAUSED) used = (size_t)(llhttp_get_error_pos(&k->parser) - data);
        /* bytes after the response would be taken for the next one's */
        conn_complete(k, used == n && k->req->status != 101 && llhttp_should_keep_alive(&k->parser));
        return 1;
    }
    if (e != HPE_OK) {
        fail_fmt(k, e == HPE_USER || k->req->hdr.failed || k->req->body.failed ? JR_HC_ENOMEM : JR_HC_EINVALID,
                 "malformed response from", llhttp_get_error_reason(&k->parser));
        return 1;
    }
    return 0;
}

/* The peer ended the stream (EOF or TLS close_notify). */
static void conn_eof(hc_conn *k)
{
    if (k->state != HC_BUSY || !k->req) {
        hc_conn_close(k); /* an idle connection the server dropped */
        return;
    }
    if (k->got_bytes && llhttp_message_needs_eof(&k->parser)) {
        llhttp_finish(&k->parser); /* a close-delimited body ends here */
        if (k->done) {
            conn_complete(k, 0);
            return;
        }
    }
    fail_fmt(k, JR_HC_ECLOSED,
             k->got_bytes ? "the connection closed before the response was complete from"
                          : "the connection closed before any response from",
             NULL);
}

static void handshake_step(hc_conn *k);

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    hc_conn *k = h->data;
    *b = uv_buf_init(k->c->rbuf, sizeof k->c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    hc_conn *k = s->data;
    if (nread == 0 || k->state == HC_CLOSING) return;
    if (nread < 0) {
        if (nread == UV_EOF) {
            conn_eof(k);
        } else if (k->state == HC_BUSY && k->req) {
            fail_fmt(k, JR_HC_ECLOSED, "the connection failed", uv_strerror((int)nread));
        } else if (k->state == HC_HANDSHAKE) {
            fail_fmt(k, JR_HC_ETLS, "the connection failed during the TLS handshake with", uv_strerror((int)nread));
        } else {
            hc_conn_close(k);
        }
        return;
    }
    if (!k->tls) {
        if (k->state != HC_BUSY || !k->req) {
            hc_conn_close(k); /* bytes nobody asked for: the connection is not in a known state */
            return;
        }
        conn_parse(k, b->base, (size_t)nread);
        return;
    }
    if (jr_hc_tls_feed(k->tls, b->base, (size_t)nread) != 0) {
        fail_fmt(k, JR_HC_ENOMEM, "out of memory (TLS) with", NULL);
        return;
    }
    if (k->state == HC_HANDSHAKE) {
        handshake_step(k);
        return;
    }
    for (;;) {
        int got = jr_hc_tls_read(k->tls, k->c->tbuf, sizeof k->c->tbuf);
        if (got == 0) {
            tls_flush(k); /* TLS 1.3 tickets and the like: nothing for us, maybe an answer for the peer */
            return;
        }
        if (got < 0) {
            conn_eof(k);
            return;
        }
        if (k->state != HC_BUSY || !k->req) {
            hc_conn_close(k);
            return;
        }
        if (conn_parse(k, k->c->tbuf, (size_t)got)) return;
    }
}

static void handshake_step(hc_conn *k)
{
    char err[400];
    int rc = jr_hc_tls_handshake(k->tls, err, sizeof err);
    if (tls_flush(k) != 0) return;
    if (rc < 0) {
        fail_fmt(k, JR_HC_ETLS, "TLS with", err);
        return;
    }
    if (rc == 1) {
        uv_timer_stop(&k->timer);
        hc_conn_send(k, k->req);
    }
}

/* ---- connecting ---- */

static void on_conn_timer(uv_timer_t *t)
{
    hc_conn *k = t->data;
    if (k->state == HC_IDLE) {
        hc_conn_close(k); /* idle_timeout */
        return;
    }
    if (k->fail_status) { /* a connect that failed at once, reported from the loop */
        fail_fmt(k, k->fail_status, k->fail_status == JR_HC_ERESOLVE ? "cannot resolve the host of" : "cannot connect to",
                 uv_strerror(k->fail_uv));
        return;
    }
    char detail[64];
    snprintf(detail, sizeof detail, "no connection within %.3g s", (double)k->c->o.connect_timeout_ms / 1000.0);
    fail_fmt(k, JR_HC_ETIMEOUT, k->state == HC_HANDSHAKE ? "TLS handshake timed out with" : "connect timed out to",
             detail);
}

static void on_connect(uv_connect_t *req, int status)
{
    hc_conn *k = req->data;
    if (k->state == HC_CLOSING) return;
    if (status < 0) {
        fail_fmt(k, JR_HC_EREFUSED, "cannot connect to", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1); /* one small request, then wait: never hold it back */
    int rc = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    if (rc < 0) {
        fail_fmt(k, JR_HC_ECLOSED, "cannot read from", uv_strerror(rc));
        return;
    }
    if (!k->o->tls) {
        uv_timer_stop(&k->timer);
        hc_conn_send(k, k->req);
        return;
    }
    k->tls = jr_hc_tls_new(k->c->tls, k->o->host);
    if (!k->tls) {
        fail_fmt(k, JR_HC_ETLS, "cannot start TLS with", NULL);
        return;
    }
    k->state = HC_HANDSHAKE;
    handshake_step(k);
}

static void start_connect(hc_conn *k, const struct sockaddr *addr)
{
    k->state = HC_CONNECTING;
    k->connect.data = k;
    int rc = uv_tcp_connect(&k->connect, &k->tcp, addr, on_connect);
    if (rc < 0) {
        /* never fail inside jr_hc_request: report from the loop */
        k->fail_status = rc == UV_ENOMEM ? JR_HC_ENOMEM : JR_HC_EREFUSED;
        k->fail_uv = rc;
        uv_timer_start(&k->timer, on_conn_timer, 0, 0);
    }
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    hc_conn *k = g->data;
    if (k->state == HC_CLOSING) {
        if (res) uv_freeaddrinfo(res);
        conn_closed((uv_handle_t *)&k->tcp); /* the pending count's share of the lookup */
        return;
    }
    k->pending--;
    if (status < 0 || !res) {
        if (res) uv_freeaddrinfo(res);
        fail_fmt(k, JR_HC_ERESOLVE, "cannot resolve the host of", uv_strerror(status));
        return;
    }
    /* IPv4 first: "localhost" often lists ::1 first while servers listen
     * on 127.0.0.1; one address is tried (no happy eyeballs) */
    struct addrinfo *pick = res;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    struct sockaddr_storage ss;
    memcpy(&ss, pick->ai_addr, pick->ai_addrlen);
    uv_freeaddrinfo(res);
    start_connect(k, (struct sockaddr *)&ss);
}

hc_conn *hc_conn_open(jr_hc *c, hc_origin *o, jr_hc_req *r)
{
    hc_conn *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->c = c;
    k->o = o;
    uv_timer_init(c->loop, &k->timer);
    uv_tcp_init(c->loop, &k->tcp);
    k->timer.data = k;
    k->tcp.data = k;
    k->pending = 2;
    c->handles++;
    o->nconn++;
    k->next = c->conns;
    if (c->conns) c->conns->prev = k;
    c->conns = k;
    k->req = r;
    r->conn = k;
    if (c->o.connect_timeout_ms) uv_timer_start(&k->timer, on_conn_timer, c->o.connect_timeout_ms, 0);
    struct sockaddr_storage ss;
    if (uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)&ss) == 0) {
        start_connect(k, (struct sockaddr *)&ss);
        return k;
    }
    k->state = HC_RESOLVING;
    k->gai.data = k;
    char port[8];
    snprintf(port, sizeof port, "%d", o->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(c->loop, &k->gai, on_resolved, o->host, port, &hints);
    if (rc < 0) {
        k->fail_status = JR_HC_ERESOLVE;
        k->fail_uv = rc;
        k->state = HC_CONNECTING;
        uv_timer_start(&k->timer, on_conn_timer, 0, 0);
        return k;
    }
    k->pending++;
    return k;
}

void hc_conn_make_idle(hc_conn *k)
{
    k->state = HC_IDLE;
    /* a pooled connection alone does not keep the process running */
    uv_unref((uv_handle_t *)&k->tcp);
    uv_unref((uv_handle_t *)&k->timer);
    if (k->c->o.idle_timeout_ms) uv_timer_start(&k->timer, on_conn_timer, k->c->o.idle_timeout_ms, 0);
}
