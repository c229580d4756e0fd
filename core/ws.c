/* ws.c - the libwebsockets bridge (contract in ws.h).
 *
 * How a connection gets here
 * --------------------------
 * http.c parsed the upgrade request and delivered it like any request.
 * jr_ws_adopt() checks the handshake headers, takes the socket with
 * jr_http_req_detach() (a dup of the fd plus the bytes pipelined behind the
 * request) and gives both to lws_adopt_socket_vhost_readbuf(). lws wants to
 * parse the request itself, but our parser has consumed it, so we give lws
 * a rebuilt minimal request: "GET / HTTP/1.1" with only the headers the
 * handshake needs. That keeps it small (lws takes at most 2048 bytes of
 * already-read data) whatever cookies or path the client sent, and keeps
 * routing ours: lws never sees the path.
 *
 * libwebsockets 4.1 on our loop
 * -----------------------------
 * LWS_SERVER_OPTION_LIBUV + foreign_loops = { our loop } +
 * CONTEXT_PORT_NO_LISTEN_SERVER: lws opens no socket and adds its own uv
 * handles (a poll per connection, timers) to our loop. Destroying the
 * context closes those handles asynchronously; lws writes NULL into
 * info.pcontext when it is done, so a uv_prepare watches that pointer and
 * frees our struct after it (lws callbacks may still run until then).
 *
 * One protocol, protocols[0], serves both the adopted socket's HTTP phase
 * (lws_callback_http_dummy) and the WebSocket phase: the rebuilt request
 * names no subprotocol, so lws binds the connection to it.
 *
 * Sending: lws may only write from LWS_CALLBACK_SERVER_WRITEABLE, so each
 * connection has a FIFO of frames (payload allocated with LWS_PRE bytes of
 * headroom, which lws_write needs for the frame header); one frame per
 * writeable callback. The FIFO is bounded by bytes (max_send_queue).
 */
#include "ws.h"
#include "buf.h"
#include "log.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* lws's limit for data handed to lws_adopt_socket_vhost_readbuf (the size of
 * its header rx buffer, lws-adopt.h). */
#define ADOPT_READBUF_MAX 2048

/* lws_write()'s frame type for a close frame: 4 in lws's private headers
 * (LWS_WRITE_CLOSE), left out of the public enum, which says
 * lws_close_reason() handles it; see on_writeable for why we need it. */
#define WRITE_CLOSE ((enum lws_write_protocol)4)

typedef struct out_msg {
    struct out_msg *next;
    size_t len;
    int is_text;
    unsigned char data[]; /* LWS_PRE headroom, then the payload */
} out_msg;

struct jr_ws_conn {
    jr_ws_ctx *ctx;
    struct lws *wsi;
    void *user;
    jr_ws_conn *prev, *next;
    out_msg *qhead, *qtail;
    size_t queued;          /* payload bytes in the queue */
    jr_buf rx;              /* message being reassembled */
    int rx_text;
    int close_code;         /* the code on_close reports; 0 = not decided yet */
    int send_close;         /* a close frame to send from the next writeable callback */
    char close_reason[123];
    size_t close_reason_len;
    unsigned opened : 1, closing : 1;
};

struct jr_ws_ctx {
    uv_loop_t *loop;
    jr_ws_config cfg;
    jr_ws_callbacks cb;
    struct lws_context *lws; /* set to NULL by lws when its destruction is complete */
    struct lws_vhost *vhost;
    struct lws_protocols protocols[2];
    void *foreign_loops[1];
    jr_ws_conn *conns;
    size_t nconns;
    jr_ws_conn *adopting;   /* the connection lws_adopt_* is creating right now */
    uv_prepare_t reaper;
    unsigned destroying : 1;
};

/* ------------------------------------------------------------ logging */

/* lws logs one ERR line per adopted socket in 4.1 (STACK.md: spurious); its
 * warnings and errors are otherwise worth seeing, at debug level, as they
 * describe peers misbehaving, not our process failing. */
static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    jr_logf(JR_LOG_DEBUG, NULL, "ws: lws %s: %.*s", level == LLL_ERR ? "error" : "warning",
            (int)n, line);
}

/* ------------------------------------------------------------ connections */

static void queue_drop(jr_ws_conn *c)
{
    out_msg *m = c->qhead;
    while (m) {
        out_msg *next = m->next;
        free(m);
        m = next;
    }
    c->qhead = c->qtail = NULL;
    c->queued = 0;
}

static void conn_unlink_free(jr_ws_conn *c)
{
    jr_ws_ctx *ctx = c->ctx;
    if (c->prev) c->prev->next = c->next;
    else ctx->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    ctx->nconns--;
    queue_drop(c);
    jr_buf_free(&c->rx);
    free(c);
}

/* The connection is gone for lws: tell the owner once, then forget it. */
static void conn_finish(jr_ws_conn *c, int code)
{
    if (c->wsi) lws_set_opaque_user_data(c->wsi, NULL);
    c->wsi = NULL;
    if (!c->close_code) c->close_code = code;
    if (c->ctx->cb.on_close) c->ctx->cb.on_close(c, c->close_code, c->ctx->cb.ud);
    conn_unlink_free(c);
}

/* Begin our side of the close: drop what is queued, send a close frame as
 * soon as the socket is writable, and give up on a peer that does not let
 * us (a slow reader never becomes writable) after close_timeout_s. */
static void conn_begin_close(jr_ws_conn *c, int code, const char *reason, size_t rlen)
{
    if (c->closing || !c->wsi) return;
    c->closing = 1;
    c->close_code = code;
    c->send_close = 1;
    if (rlen > sizeof c->close_reason) rlen = sizeof c->close_reason;
    if (rlen) memcpy(c->close_reason, reason, rlen);
    c->close_reason_len = rlen;
    queue_drop(c);
    jr_buf_reset(&c->rx);
    /* whole seconds: lws_set_timeout_us is declared in 4.1.6's headers but
     * not exported by Debian's libwebsockets.so.17 */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, (int)c->ctx->cfg.close_timeout_s);
    lws_callback_on_writable(c->wsi);
}

static jr_ws_conn *conn_of(jr_ws_ctx *ctx, struct lws *wsi)
{
    jr_ws_conn *c = lws_get_opaque_user_data(wsi);
    if (!c && ctx->adopting && (ctx->adopting->wsi == NULL || ctx->adopting->wsi == wsi)) {
        /* lws may call back before lws_adopt_* returned the wsi to us */
        c = ctx->adopting;
        c->wsi = wsi;
        lws_set_opaque_user_data(wsi, c);
    }
    return c;
}

static int on_receive(jr_ws_conn *c, struct lws *wsi, const char *in, size_t len)
{
    jr_ws_ctx *ctx = c->ctx;
    if (c->closing) return 0; /* we are closing: what still arrives is dropped */
    if (lws_is_first_fragment(wsi)) {
        jr_buf_reset(&c->rx);
        c->rx_text = !lws_frame_is_binary(wsi);
    }
    if (c->rx.len + len > ctx->cfg.max_message_size) {
        conn_begin_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large", 17);
        return 0;
    }
    if (len && jr_buf_append(&c->rx, in, len)) {
        conn_begin_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", 13);
        return 0;
    }
    if (lws_is_final_fragment(wsi)) {
        /* rx.data may be NULL for an empty first message */
        const char *data = c->rx.data ? c->rx.data : "";
        if (ctx->cb.on_message) ctx->cb.on_message(c, data, c->rx.len, c->rx_text, ctx->cb.ud);
        if (c->wsi) jr_buf_recycle(&c->rx, 65536);
    }
    return 0;
}

static int on_writeable(jr_ws_conn *c, struct lws *wsi)
{
    if (c->send_close) {
        /* We write the close frame ourselves. lws's documented way, calling
         * lws_close_reason() and returning -1 from this callback, logs
         * "sending close indication" and then kills the socket at once
         * (4.1.6 on libuv, measured): the peer got no close frame. */
        c->send_close = 0;
        unsigned char buf[LWS_PRE + 125];
        unsigned char *p = buf + LWS_PRE;
        p[0] = (unsigned char)(c->close_code >> 8);
        p[1] = (unsigned char)c->close_code;
        memcpy(p + 2, c->close_reason, c->close_reason_len);
        size_t n = 2 + c->close_reason_len;
        if (lws_write(wsi, p, n, WRITE_CLOSE) < (int)n) return -1;
        /* now wait for the peer's close (WS_PEER_INITIATED_CLOSE, where we
         * ask lws not to echo it) or for the close timeout */
        return 0;
    }
    out_msg *m = c->qhead;
    if (!m) return 0;
    c->qhead = m->next;
    if (!c->qhead) c->qtail = NULL;
    c->queued -= m->len;
    int n = lws_write(wsi, m->data + LWS_PRE, m->len, m->is_text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
    size_t len = m->len;
    free(m);
    /* lws keeps what the kernel did not take and sends it before the next
     * writeable callback; a negative or short count means the socket broke */
    if (n < 0 || (size_t)n < len) return -1;
    if (c->qhead) lws_callback_on_writable(wsi);
    return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct lws_context *lc = lws_get_context(wsi);
    jr_ws_ctx *ctx = lc ? lws_context_user(lc) : NULL;
    if (!ctx) return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        jr_ws_conn *c = conn_of(ctx, wsi);
        if (!c) return -1;
        c->opened = 1;
        if (ctx->cb.on_open && !c->closing) ctx->cb.on_open(c, ctx->cb.ud);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
        jr_ws_conn *c = conn_of(ctx, wsi);
        return c ? on_receive(c, wsi, in, len) : -1;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        jr_ws_conn *c = conn_of(ctx, wsi);
        return c ? on_writeable(c, wsi) : -1;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
        jr_ws_conn *c = conn_of(ctx, wsi);
        if (c && !c->close_code) {
            const unsigned char *p = in;
            c->close_code = len >= 2 ? (p[0] << 8) | p[1] : LWS_CLOSE_STATUS_NO_STATUS;
        }
        if (c && c->closing) return 1; /* the answer to our close frame: no echo, just close */
        if (c) c->closing = 1;
        return 0; /* lws echoes the close frame */
    }
    case LWS_CALLBACK_WSI_DESTROY: {
        /* The last callback of every wsi, also one that never finished its
         * handshake (LWS_CALLBACK_CLOSED comes only after ESTABLISHED). */
        jr_ws_conn *c = lws_get_opaque_user_data(wsi);
        if (!c && ctx->adopting && ctx->adopting->wsi == wsi) c = ctx->adopting;
        if (c) conn_finish(c, ctx->destroying ? LWS_CLOSE_STATUS_GOINGAWAY
                                              : LWS_CLOSE_STATUS_ABNORMAL_CLOSE);
        return 0;
    }
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ------------------------------------------------------------ adopt */

/* Append "Name: value\r\n" to b, value from req (checked for CR/LF by the
 * HTTP parser already). */
static int put_header(jr_buf *b, const char *name, const char *value, size_t vlen)
{
    return jr_buf_append(b, name, strlen(name)) || jr_buf_append(b, ": ", 2) ||
           jr_buf_append(b, value, vlen) || jr_buf_append(b, "\r\n", 2);
}

/* Does the comma-separated header value contain token (case-insensitive)? */
static int has_token(const char *v, size_t vlen, const char *token)
{
    size_t tl = strlen(token), pos = 0, el;
    const char *e;
    while (jr_http_list_next(v, vlen, &pos, &e, &el))
        if (el == tl && strncasecmp(e, token, tl) == 0) return 1;
    return 0;
}

static int is_b64_key(const char *k, size_t n)
{
    /* 16 random bytes in base64: 22 characters and "==" (RFC 6455 §4.1) */
    if (n != 24 || k[22] != '=' || k[23] != '=') return 0;
    for (size_t i = 0; i < 22; i++) {
        char ch = k[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return 0;
    }
    return 1;
}

int jr_ws_adopt(jr_ws_ctx *ctx, jr_http_req *req, void *user, jr_ws_conn **out)
{
    if (out) *out = NULL;
    if (!ctx || !req || ctx->destroying) return JR_WS_EINVALID;
    size_t ml, ul, cl, vl, kl;
    const char *method = jr_http_req_method(req, &ml);
    const char *up = jr_http_req_header(req, "Upgrade", &ul);
    const char *conn_h = jr_http_req_header(req, "Connection", &cl);
    const char *ver = jr_http_req_header(req, "Sec-WebSocket-Version", &vl);
    const char *key = jr_http_req_header(req, "Sec-WebSocket-Key", &kl);
    if (!jr_http_req_is_upgrade(req) || ml != 3 || memcmp(method, "GET", 3) != 0 || !up ||
        !has_token(up, ul, "websocket") || !conn_h || !has_token(conn_h, cl, "upgrade") || !ver ||
        vl != 2 || memcmp(ver, "13", 2) != 0 || !key || !is_b64_key(key, kl))
        return JR_WS_EINVALID;

    /* The request lws parses: ours was consumed by our parser. */
    jr_buf head;
    jr_buf_init(&head);
    static const char line[] = "GET / HTTP/1.1\r\nHost: jararaca\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
    if (jr_buf_reserve(&head, ADOPT_READBUF_MAX) || jr_buf_append(&head, line, sizeof line - 1) ||
        put_header(&head, "Sec-WebSocket-Key", key, kl) || jr_buf_append(&head, "\r\n", 2)) {
        jr_buf_free(&head);
        return JR_WS_ENOMEM;
    }
    jr_ws_conn *c = calloc(1, sizeof *c);
    if (!c) {
        jr_buf_free(&head);
        return JR_WS_ENOMEM;
    }
    int fd = -1;
    size_t rest = 0;
    int r = jr_http_req_detach(req, &fd, head.data + head.len, ADOPT_READBUF_MAX - head.len, &rest);
    if (r != JR_HTTP_OK) {
        jr_buf_free(&head);
        free(c);
        return r == JR_HTTP_ETOOBIG ? JR_WS_ETOOBIG
               : r == JR_HTTP_ESYS  ? JR_WS_ESYS
               : r == JR_HTTP_EINVALID ? JR_WS_EINVALID
                                       : JR_WS_ECLOSED;
    }
    head.len += rest;
    c->ctx = ctx;
    c->user = user;
    jr_buf_init(&c->rx);
    c->next = ctx->conns;
    if (ctx->conns) ctx->conns->prev = c;
    ctx->conns = c;
    ctx->nconns++;
    ctx->adopting = c;
    /* lws closes fd itself when it fails */
    struct lws *wsi = lws_adopt_socket_vhost_readbuf(ctx->vhost, fd, head.data, head.len);
    ctx->adopting = NULL;
    jr_buf_free(&head);
    if (!wsi) {
        /* WSI_DESTROY may have run for a half-made wsi: only free if not */
        jr_ws_conn *p = ctx->conns;
        while (p && p != c) p = p->next;
        if (p) conn_unlink_free(c);
        return JR_WS_EADOPT;
    }
    c->wsi = wsi;
    lws_set_opaque_user_data(wsi, c);
    if (out) *out = c;
    return JR_WS_OK;
}

/* ------------------------------------------------------------ send / close */

void *jr_ws_conn_user(const jr_ws_conn *conn) { return conn ? conn->user : NULL; }

int jr_ws_send(jr_ws_conn *c, const void *data, size_t len, int is_text)
{
    if (!c || (len && !data)) return JR_WS_EINVALID;
    if (c->closing || !c->wsi) return JR_WS_ECLOSED;
    if (len > c->ctx->cfg.max_send_queue - c->queued) {
        conn_begin_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue full", 15);
        return JR_WS_EFULL;
    }
    out_msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m) return JR_WS_ENOMEM;
    m->next = NULL;
    m->len = len;
    m->is_text = is_text ? 1 : 0;
    if (len) memcpy(m->data + LWS_PRE, data, len);
    if (c->qtail) c->qtail->next = m;
    else c->qhead = m;
    c->qtail = m;
    c->queued += len;
    lws_callback_on_writable(c->wsi);
    return JR_WS_OK;
}

/* INTERIM (see ws.h): lws can only write from its writeable callback, so
 * the frame is copied into each connection's queue. */
struct jr_ws_frame {
    size_t len;
    int is_text;
    char data[];
};

jr_ws_frame *jr_ws_frame_new(const void *data, size_t len, int is_text)
{
    if (len && !data) return NULL;
    jr_ws_frame *f = malloc(sizeof *f + len);
    if (!f) return NULL;
    f->len = len;
    f->is_text = is_text ? 1 : 0;
    if (len) memcpy(f->data, data, len);
    return f;
}

void jr_ws_frame_release(jr_ws_frame *f) { free(f); }

int jr_ws_send_frame(jr_ws_conn *c, jr_ws_frame *f)
{
    if (!f) return JR_WS_EINVALID;
    return jr_ws_send(c, f->data, f->len, f->is_text);
}

int jr_ws_close(jr_ws_conn *c, int code, const char *reason)
{
    if (!c) return JR_WS_EINVALID;
    /* RFC 6455 §7.4: 1004-1006 and 1015 must not be sent; below 1000 and
     * from 5000 are not defined */
    if (code < 1000 || code > 4999 || (code >= 1004 && code <= 1006) || code == 1015)
        return JR_WS_EINVALID;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123) return JR_WS_EINVALID; /* control frame payload: 125 bytes with the code */
    if (c->closing || !c->wsi) return JR_WS_ECLOSED;
    conn_begin_close(c, code, reason, rlen);
    return JR_WS_OK;
}

/* ------------------------------------------------------------ context */

void jr_ws_config_defaults(jr_ws_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_message_size = 1024 * 1024;
    cfg->max_send_queue = 1024 * 1024;
    cfg->close_timeout_s = 5;
}

size_t jr_ws_ctx_connections(const jr_ws_ctx *ctx) { return ctx ? ctx->nconns : 0; }

jr_ws_ctx *jr_ws_ctx_new(uv_loop_t *loop, const jr_ws_config *cfg, const jr_ws_callbacks *cb,
                         char *err, size_t errlen)
{
    if (!loop || !cb) {
        snprintf(err, errlen, "ws: a loop and callbacks are required");
        return NULL;
    }
    jr_ws_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        snprintf(err, errlen, "ws: out of memory");
        return NULL;
    }
    ctx->loop = loop;
    if (cfg) ctx->cfg = *cfg;
    else jr_ws_config_defaults(&ctx->cfg);
    if (!ctx->cfg.max_message_size || !ctx->cfg.max_send_queue || !ctx->cfg.close_timeout_s) {
        snprintf(err, errlen, "ws: max_message_size, max_send_queue and close_timeout_s must be > 0");
        free(ctx);
        return NULL;
    }
    ctx->cb = *cb;
    ctx->protocols[0].name = "jararaca-ws";
    ctx->protocols[0].callback = ws_callback;
    /* lws allocates this per connection and hands RECEIVE at most this much
     * at a time (on_receive reassembles). Measured server RSS per idle
     * connection (8000 of them): 5.7 KB with 16384 or lws's default, 2.7 KB
     * with 1024; the budget is 4 KiB. */
    ctx->protocols[0].rx_buffer_size = 1024;
    ctx->foreign_loops[0] = loop;

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = ctx->protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
    info.foreign_loops = ctx->foreign_loops;
    info.pcontext = &ctx->lws;
    info.user = ctx;
    info.gid = -1;
    info.uid = -1;
    ctx->lws = lws_create_context(&info);
    if (!ctx->lws) {
        snprintf(err, errlen, "ws: libwebsockets could not create its context "
                              "(is the libwebsockets-evlib-uv package installed?)");
        free(ctx);
        return NULL;
    }
    uv_prepare_init(loop, &ctx->reaper);
    ctx->reaper.data = ctx;
    ctx->vhost = lws_get_vhost_by_name(ctx->lws, "default");
    if (!ctx->vhost) {
        snprintf(err, errlen, "ws: libwebsockets created no default vhost");
        jr_ws_ctx_free(ctx); /* freed once the loop has closed lws's handles */
        return NULL;
    }
    return ctx;
}

static void on_reaper_closed(uv_handle_t *h) { free(h->data); }


static void count_closing(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h)) ++*(int *)arg;
}

/* Finishing lws's destruction on a foreign loop (measured with 4.1.6): the
 * first lws_context_destroy() closes lws's uv handles, the last of them from
 * the close callbacks of the first ones, and then stops: the context is
 * neither freed nor is info.pcontext cleared, though its docs say so. A
 * second lws_context_destroy() frees it, but only safely once those close
 * callbacks have all run (they use the context). lws gives no event for
 * that, so each loop iteration we look for handles still closing (only
 * while destroying, and erring on the late side if the application closes
 * handles of its own meanwhile). */
static void on_reap(uv_prepare_t *p)
{
    jr_ws_ctx *ctx = p->data;
    if (ctx->lws) {
        int closing = 0;
        uv_walk(ctx->loop, count_closing, &closing);
        if (closing) return;
        lws_context_destroy(ctx->lws); /* clears ctx->lws through info.pcontext */
        if (ctx->lws) /* another lws than the one measured: never destroy twice more */
            jr_logf(JR_LOG_ERROR, NULL, "ws: libwebsockets did not finish destroying its context");
    }
    uv_prepare_stop(p);
    uv_close((uv_handle_t *)p, on_reaper_closed);
}

void jr_ws_ctx_free(jr_ws_ctx *ctx)
{
    if (!ctx || ctx->destroying) return;
    ctx->destroying = 1;
    for (jr_ws_conn *c = ctx->conns; c; c = c->next)
        if (!c->close_code) c->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
    lws_context_destroy(ctx->lws);
    /* Connections lws did not report while destroying: report them now. */
    while (ctx->conns) conn_finish(ctx->conns, LWS_CLOSE_STATUS_GOINGAWAY);
    uv_prepare_start(&ctx->reaper, on_reap);
}
