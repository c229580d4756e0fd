/* http_client.c - the HTTP client's requests, origins and pools (see
 * http_client.h); one connection's life is in http_client_conn.c. */
#include "http_client_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REQ_BUF_KEEP (64 * 1024) /* a pooled request keeps buffers up to this */

const char *jr_hc_code_name(int status)
{
    switch (status) {
    case JR_HC_OK: return "ok";
    case JR_HC_ETIMEOUT: return "timeout";
    case JR_HC_EREFUSED: return "refused";
    case JR_HC_ERESOLVE: return "resolve";
    case JR_HC_ECLOSED: return "closed";
    case JR_HC_ETLS: return "tls";
    case JR_HC_ETOOLARGE: return "too_large";
    case JR_HC_EINVALID: return "invalid";
    default: return "nomem";
    }
}

void jr_hc_options_defaults(jr_hc_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_per_origin = 32;
    o->max_idle_per_origin = 32;
    o->idle_timeout_ms = 30000;
    o->connect_timeout_ms = 5000;
    o->max_response = 64u * 1024 * 1024;
    o->verify = 1;
}

jr_hc *jr_hc_new(uv_loop_t *loop, const jr_hc_options *o, char *err, size_t errlen)
{
    jr_hc *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->o = *o;
    if (c->o.max_per_origin == 0) c->o.max_per_origin = 1;
    if (o->ca_file) {
        c->ca_file = strdup(o->ca_file);
        if (!c->ca_file) {
            free(c);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    }
    c->o.ca_file = c->ca_file;
    return c;
}

void hc_origin_name(const hc_origin *o, char *buf, size_t n)
{
    int v6 = strchr(o->host, ':') != NULL;
    snprintf(buf, n, "%s://%s%s%s:%d", o->tls ? "https" : "http", v6 ? "[" : "", o->host, v6 ? "]" : "", o->port);
}

/* ---- requests: pool, queue, delivery ---- */

static void req_timer_closed(uv_handle_t *h)
{
    jr_hc_req *r = h->data;
    jr_hc *c = r->c;
    jr_buf_free(&r->out);
    jr_buf_free(&r->hdr);
    jr_buf_free(&r->body);
    jr_buf_free(&r->ptrs);
    free(r);
    c->handles--;
    hc_maybe_free(c);
}

static void req_recycle(jr_hc_req *r)
{
    jr_hc *c = r->c;
    uv_timer_stop(&r->timer);
    r->o = NULL;
    r->conn = NULL;
    r->cb = NULL;
    r->ud = NULL;
    if (c->closing) {
        uv_close((uv_handle_t *)&r->timer, req_timer_closed);
        return;
    }
    jr_buf_recycle(&r->out, REQ_BUF_KEEP);
    jr_buf_recycle(&r->hdr, REQ_BUF_KEEP);
    jr_buf_recycle(&r->body, REQ_BUF_KEEP);
    jr_buf_recycle(&r->ptrs, REQ_BUF_KEEP);
    r->prev = NULL;
    r->next = c->free_reqs;
    c->free_reqs = r;
}

static jr_hc_req *req_get(jr_hc *c)
{
    jr_hc_req *r = c->free_reqs;
    if (r) {
        c->free_reqs = r->next;
    } else {
        r = calloc(1, sizeof *r);
        if (!r) return NULL;
        r->c = c;
        uv_timer_init(c->loop, &r->timer);
        r->timer.data = r;
        c->handles++;
    }
    r->prev = r->next = NULL;
    r->retried = r->queued = 0;
    r->status = 0;
    r->in_value = 0;
    r->nhdr = 0;
    jr_buf_reset(&r->out);
    jr_buf_reset(&r->hdr);
    jr_buf_reset(&r->body);
    return r;
}

static void queue_unlink(jr_hc_req *r)
{
    hc_origin *o = r->o;
    if (r->prev) r->prev->next = r->next;
    else o->qhead = r->next;
    if (r->next) r->next->prev = r->prev;
    else o->qtail = r->prev;
    r->prev = r->next = NULL;
    r->queued = 0;
    o->nqueued--;
}

static void queue_push(jr_hc_req *r, int front)
{
    hc_origin *o = r->o;
    r->queued = 1;
    if (front) {
        r->prev = NULL;
        r->next = o->qhead;
        if (o->qhead) o->qhead->prev = r;
        else o->qtail = r;
        o->qhead = r;
    } else {
        r->next = NULL;
        r->prev = o->qtail;
        if (o->qtail) o->qtail->next = r;
        else o->qhead = r;
        o->qtail = r;
    }
    o->nqueued++;
}

/* The response's pointer arrays, over the "name\0value\0" pairs in hdr. */
static int build_response(jr_hc_req *r, jr_hc_response *res)
{
    size_t n = r->nhdr;
    size_t need = n * (2 * sizeof(char *) + 2 * sizeof(size_t));
    jr_buf_reset(&r->ptrs);
    if (n && jr_buf_reserve(&r->ptrs, need) != 0) return -1;
    const char **names = (const char **)(void *)r->ptrs.data;
    const char **values = names + n;
    size_t *nl = (size_t *)(void *)(values + n);
    size_t *vl = nl + n;
    const char *p = r->hdr.data;
    for (size_t i = 0; i < n; i++) {
        names[i] = p;
        nl[i] = strlen(p);
        p += nl[i] + 1;
        values[i] = p;
        vl[i] = strlen(p);
        p += vl[i] + 1;
    }
    res->status = r->status;
    res->nhdr = n;
    res->names = names;
    res->name_lens = nl;
    res->values = values;
    res->value_lens = vl;
    res->body = r->body.len ? r->body.data : "";
    res->body_len = r->body.len;
    return 0;
}

static void on_deferred(uv_timer_t *t)
{
    jr_hc_req *r = t->data;
    hc_req_done(r, r->def_status, r->def_msg);
}

void hc_req_done(jr_hc_req *r, int status, const char *msg)
{
    jr_hc *c = r->c;
    uv_timer_stop(&r->timer);
    if (c->in_request) {
        /* found while jr_hc_request runs (a reused connection's write failed
         * at once): the caller is not waiting yet */
        r->def_status = status;
        snprintf(r->def_msg, sizeof r->def_msg, "%s", msg ? msg : "");
        uv_timer_start(&r->timer, on_deferred, 0, 0);
        return;
    }
    jr_hc_response res, *resp = NULL;
    if (status == JR_HC_OK) {
        if (r->hdr.failed || r->body.failed || build_response(r, &res) != 0) {
            status = JR_HC_ENOMEM;
            msg = "out of memory for the response";
        } else {
            resp = &res;
        }
    }
    c->st.requests++;
    c->in_cb++;
    if (r->cb) r->cb(r, status, resp, msg, r->ud);
    c->in_cb--;
    req_recycle(r);
    hc_maybe_free(c);
}

static void on_req_timeout(uv_timer_t *t)
{
    jr_hc_req *r = t->data;
    hc_origin *o = r->o;
    char where[300], msg[400];
    hc_origin_name(o, where, sizeof where);
    snprintf(msg, sizeof msg, "the request to %s timed out (%s)", where,
             r->conn ? (r->conn->state == HC_BUSY ? "no complete response" : "still connecting")
                     : "still waiting for a free connection");
    if (r->conn) {
        /* the response may still come: the connection cannot serve another */
        hc_conn *k = r->conn;
        k->req = NULL;
        r->conn = NULL;
        hc_conn_close(k);
        hc_serve_queue(o);
    } else if (r->queued) {
        queue_unlink(r);
    }
    hc_req_done(r, JR_HC_ETIMEOUT, msg);
}

void jr_hc_abort(jr_hc_req *r)
{
    hc_origin *o = r->o;
    jr_hc *c = r->c;
    if (r->conn) {
        hc_conn *k = r->conn;
        k->req = NULL;
        r->conn = NULL;
        hc_conn_close(k);
        hc_serve_queue(o);
    } else if (r->queued) {
        queue_unlink(r);
    }
    c->st.requests++;
    req_recycle(r);
}

/* ---- dispatch ---- */

void hc_dispatch(jr_hc_req *r, int fresh)
{
    hc_origin *o = r->o;
    jr_hc *c = r->c;
    if (!fresh && o->idle) {
        hc_conn *k = o->idle;
        o->idle = k->idle_next;
        if (o->idle) o->idle->idle_prev = NULL;
        k->idle_next = k->idle_prev = NULL;
        o->nidle--;
        hc_conn_send(k, r);
        return;
    }
    if (o->nconn < c->o.max_per_origin) {
        if (hc_conn_open(c, o, r)) return;
        hc_req_done(r, JR_HC_ENOMEM, "out of memory for a connection");
        return;
    }
    queue_push(r, fresh); /* a retry keeps its place at the front */
}

void hc_conn_release(hc_conn *k)
{
    hc_origin *o = k->o;
    if (o->qhead) {
        jr_hc_req *r = o->qhead;
        queue_unlink(r);
        hc_conn_send(k, r);
        return;
    }
    if (o->nidle >= k->c->o.max_idle_per_origin || k->c->closing) {
        hc_conn_close(k);
        return;
    }
    hc_conn_make_idle(k);
    k->idle_prev = NULL;
    k->idle_next = o->idle;
    if (o->idle) o->idle->idle_prev = k;
    o->idle = k;
    o->nidle++;
}

void hc_serve_queue(hc_origin *o)
{
    while (o->qhead && !o->qhead->c->closing) {
        jr_hc_req *r = o->qhead;
        if (!o->idle && o->nconn >= r->c->o.max_per_origin) return;
        queue_unlink(r);
        hc_dispatch(r, 0);
    }
}

/* ---- building a request ---- */

static int is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int valid_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '\r' || ch == '\n' || ch == 0) return 0;
    }
    return 1;
}

typedef struct {
    int tls;
    char host[256];
    int port;
    const char *path;
    size_t path_len;
    int default_port;
} parsed_url;

static int parse_url(const char *url, parsed_url *u, char *err, size_t errlen)
{
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        u->tls = 0;
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        u->tls = 1;
        p = url + 8;
    } else {
        snprintf(err, errlen, "the URL must start with http:// or https://: %.200s", url);
        return -1;
    }
    const char *auth_end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(auth_end - p));
    if (at) {
        snprintf(err, errlen, "credentials in the URL are not supported (send an authorization header): %.200s", url);
        return -1;
    }
    const char *hs = p, *he;
    const char *port = NULL;
    if (*p == '[') {
        hs = p + 1;
        he = memchr(hs, ']', (size_t)(auth_end - hs));
        if (!he) goto bad;
        if (he[1] == ':') port = he + 2;
        else if (he + 1 != auth_end) goto bad;
    } else {
        he = memchr(p, ':', (size_t)(auth_end - p));
        if (he) port = he + 1;
        else he = auth_end;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof u->host) goto bad;
    for (size_t i = 0; i < hl; i++) {
        unsigned char ch = (unsigned char)hs[i];
        if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == '_' || ch == ':' || ch == '%')) goto bad;
        u->host[i] = (char)tolower(ch);
    }
    u->host[hl] = 0;
    u->default_port = 1;
    u->port = u->tls ? 443 : 80;
    if (port) {
        if (port == auth_end) goto bad;
        long v = 0;
        for (const char *q = port; q < auth_end; q++) {
            if (*q < '0' || *q > '9') goto bad;
            v = v * 10 + (*q - '0');
            if (v > 65535) goto bad;
        }
        if (v == 0) goto bad;
        u->port = (int)v;
        u->default_port = u->port == (u->tls ? 443 : 80);
    }
    u->path = auth_end;
    u->path_len = strcspn(auth_end, "#");
    for (size_t i = 0; i < u->path_len; i++) {
        unsigned char ch = (unsigned char)u->path[i];
        if (ch <= ' ' || ch == 0x7f) {
            snprintf(err, errlen, "the URL's path has a space or control character (percent-encode it): %.200s", url);
            return -1;
        }
    }
    return 0;
bad:
    snprintf(err, errlen, "bad host or port in the URL: %.200s", url);
    return -1;
}

static hc_origin *origin_get(jr_hc *c, const parsed_url *u)
{
    for (hc_origin *o = c->origins; o; o = o->next)
        if (o->port == u->port && o->tls == u->tls && strcmp(o->host, u->host) == 0) return o;
    hc_origin *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->host = strdup(u->host);
    if (!o->host) {
        free(o);
        return NULL;
    }
    o->tls = u->tls;
    o->port = u->port;
    o->next = c->origins;
    c->origins = o;
    return o;
}

static int hdr_is(const char *name, size_t n, const char *lower)
{
    return strlen(lower) == n && strncasecmp(name, lower, n) == 0;
}

static int serialize(jr_buf *b, const jr_hc_request_spec *s, const parsed_url *u, char *err, size_t errlen)
{
    jr_buf_append(b, s->method, strlen(s->method));
    jr_buf_append_char(b, ' ');
    if (u->path_len == 0 || u->path[0] != '/') jr_buf_append_char(b, '/');
    jr_buf_append(b, u->path, u->path_len);
    jr_buf_append(b, " HTTP/1.1\r\n", 11);
    int own_host = 0;
    for (size_t i = 0; i < s->nhdr; i++) {
        const char *n = s->names[i], *v = s->values[i];
        size_t nl = s->name_lens[i], vl = s->value_lens[i];
        int ok = nl > 0;
        for (size_t j = 0; ok && j < nl; j++) ok = is_tchar((unsigned char)n[j]);
        if (!ok) {
            snprintf(err, errlen, "bad header name \"%.*s\"", (int)(nl > 100 ? 100 : nl), n);
            return -1;
        }
        if (!valid_value(v, vl)) {
            snprintf(err, errlen, "the value of header %.*s has a CR, LF or NUL", (int)(nl > 100 ? 100 : nl), n);
            return -1;
        }
        /* framing is ours: the body we send decides its length, and the
         * connection's reuse is the pool's business */
        if (hdr_is(n, nl, "content-length") || hdr_is(n, nl, "transfer-encoding") || hdr_is(n, nl, "connection"))
            continue;
        if (hdr_is(n, nl, "host")) own_host = 1;
        jr_buf_append(b, n, nl);
        jr_buf_append(b, ": ", 2);
        jr_buf_append(b, v, vl);
        jr_buf_append(b, "\r\n", 2);
    }
    if (!own_host) {
        int v6 = strchr(u->host, ':') != NULL;
        jr_buf_append(b, "Host: ", 6);
        if (v6) jr_buf_append_char(b, '[');
        jr_buf_append(b, u->host, strlen(u->host));
        if (v6) jr_buf_append_char(b, ']');
        if (!u->default_port) {
            char port[16];
            int pl = snprintf(port, sizeof port, ":%d", u->port);
            jr_buf_append(b, port, (size_t)pl);
        }
        jr_buf_append(b, "\r\n", 2);
    }
    int wants_length = s->body || strcmp(s->method, "POST") == 0 || strcmp(s->method, "PUT") == 0 ||
                       strcmp(s->method, "PATCH") == 0;
    if (wants_length) {
        char cl[48];
        int l = snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", s->body ? s->body_len : 0);
        jr_buf_append(b, cl, (size_t)l);
    }
    jr_buf_append(b, "Connection: keep-alive\r\n\r\n", 26);
    if (s->body) jr_buf_append(b, s->body, s->body_len);
    return 0;
}

static int is_idempotent(const char *m)
{
    static const char *const idem[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", NULL};
    for (int i = 0; idem[i]; i++)
        if (strcmp(m, idem[i]) == 0) return 1;
    return 0;
}

int jr_hc_request(jr_hc *c, const jr_hc_request_spec *s, jr_hc_cb on_done, void *ud, jr_hc_req **out, char *err,
                  size_t errlen)
{
    if (c->closing) {
        snprintf(err, errlen, "the HTTP client is closed");
        return JR_HC_ECLOSED;
    }
    size_t ml = strlen(s->method);
    if (ml == 0 || ml > 32) goto bad_method;
    for (size_t i = 0; i < ml; i++)
        if (!is_tchar((unsigned char)s->method[i])) goto bad_method;
    parsed_url u;
    if (parse_url(s->url, &u, err, errlen) != 0) return JR_HC_EINVALID;
    if (u.tls && !c->tls) {
        c->tls = jr_hc_tls_ctx_new(c->o.ca_file, c->o.verify, err, errlen);
        if (!c->tls) return JR_HC_ETLS;
    }
    hc_origin *o = origin_get(c, &u);
    jr_hc_req *r = o ? req_get(c) : NULL;
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return JR_HC_ENOMEM;
    }
    if (serialize(&r->out, s, &u, err, errlen) != 0) {
        req_recycle(r);
        return JR_HC_EINVALID;
    }
    if (r->out.failed) {
        req_recycle(r);
        snprintf(err, errlen, "out of memory");
        return JR_HC_ENOMEM;
    }
    r->o = o;
    r->cb = on_done;
    r->ud = ud;
    r->idempotent = is_idempotent(s->method);
    r->head = strcmp(s->method, "HEAD") == 0;
    if (s->timeout_ms) uv_timer_start(&r->timer, on_req_timeout, s->timeout_ms, 0);
    *out = r;
    c->in_request = 1;
    hc_dispatch(r, 0);
    c->in_request = 0;
    return JR_HC_OK;
bad_method:
    snprintf(err, errlen, "bad HTTP method \"%.40s\"", s->method);
    return JR_HC_EINVALID;
}

void jr_hc_get_stats(const jr_hc *c, jr_hc_stats *st)
{
    *st = c->st;
    st->connections = st->idle = st->queued = 0;
    for (const hc_origin *o = c->origins; o; o = o->next) {
        st->connections += o->nconn;
        st->idle += o->nidle;
        st->queued += o->nqueued;
    }
    st->in_use = st->connections - st->idle;
}

void hc_maybe_free(jr_hc *c)
{
    if (!c->closing || c->handles > 0 || c->in_cb > 0 || c->origins) return;
    jr_hc_tls_ctx_free(c->tls);
    free(c->ca_file);
    free(c);
}

void jr_hc_free(jr_hc *c)
{
    if (c->closing) return;
    c->closing = 1;
    c->in_cb++; /* the struct outlives this function's loops whatever the callbacks do */
    for (hc_origin *o = c->origins; o; o = o->next) {
        while (o->qhead) {
            jr_hc_req *r = o->qhead;
            queue_unlink(r);
            hc_req_done(r, JR_HC_ECLOSED, "the HTTP client was closed");
        }
    }
    while (c->conns) {
        hc_conn *k = c->conns;
        jr_hc_req *r = k->req;
        if (r) {
            k->req = NULL;
            r->conn = NULL;
        }
        hc_conn_close(k); /* unlinks it from c->conns */
        if (r) hc_req_done(r, JR_HC_ECLOSED, "the HTTP client was closed");
    }
    while (c->free_reqs) {
        jr_hc_req *r = c->free_reqs;
        c->free_reqs = r->next;
        uv_close((uv_handle_t *)&r->timer, req_timer_closed);
    }
    while (c->origins) {
        hc_origin *o = c->origins;
        c->origins = o->next;
        free(o->host);
        free(o);
    }
    c->in_cb--;
    hc_maybe_free(c);
}
