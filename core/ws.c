/* ws.c - WebSocket connections framed by us on our loop (contract in ws.h).
 *
 * Why not libwebsockets (which this replaced): it accepted unmasked client
 * frames, could only write from its writeable callback (an epoll_ctl and a
 * loop wakeup per recipient of a broadcast, measured 4 epoll_ctl + 1 sendto
 * per recipient), could not share one encoded frame between connections,
 * and kept ~320 KB of tables per context.
 *
 * A connection's life
 * -------------------
 *   ST_OPEN       messages flow. A peer close frame is echoed, on_close
 *                 runs, and the connection lingers. A protocol error sends
 *                 a close frame with its code, on_close runs, it lingers.
 *   ST_CLOSE_SENT we sent a close frame (jr_ws_close, idle timeout): data
 *                 still arriving is dropped; the peer's close frame makes
 *                 it linger; EOF or close_timeout_ms closes the socket.
 *   ST_LINGER     the close handshake is done (on_close has run): our side
 *                 of TCP is shut down once the writes are out (the server
 *                 ends the TCP connection first, RFC 6455 §7.1.1), and we
 *                 read and drop until the peer's EOF or close_timeout_ms, so
 *                 that unread input does not turn our close into a reset
 *                 that could destroy the close frame in flight.
 *   ST_DEAD       uv_close is under way; the close callback runs on_close if
 *                 it has not run (1006, or the code we closed with) and
 *                 frees the connection.
 * Callbacks to the owner run only from loop callbacks (read, write, close,
 * timer, idle), never from inside a jr_ws_* call: a broadcast loop that
 * sends to many connections never sees one of them vanish under it.
 *
 * on_open and whatever was pipelined behind the handshake run from a ctx
 * uv_idle on the next iteration (the "drain" list); the same list resumes a
 * paused connection whose last read was not fully processed (the rest waits
 * in c->stash, the only copy of input a connection ever keeps besides the
 * message being reassembled).
 */
#include "ws.h"
#include "buf.h"
#include "sha1.h"
#include "wsframe.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_SIZE 65536
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { ST_OPEN, ST_CLOSE_SENT, ST_LINGER, ST_DEAD };

struct jr_ws_frame {
    unsigned refs;
    size_t len;              /* header + payload */
    unsigned char bytes[];
};

/* A queued rest of a frame: the bytes point into f, retained until written. */
typedef struct {
    uv_write_t w;
    jr_ws_frame *f;
} wreq;

struct jr_ws_conn {
    uv_tcp_t tcp;            /* tcp.data = the connection */
    jr_ws_ctx *ctx;
    void *user;
    jr_ws_conn *prev, *next; /* ctx->conns */
    jr_ws_conn *drain_next;  /* ctx->drain */
    jr_ws_config cfg;
    jr_wsf_parser parser;
    jr_buf rx;               /* a message arriving in pieces */
    char *stash;             /* read but not processed (paused meanwhile), or pipelined */
    size_t stash_len;
    uint64_t last_rx, last_ping, deadline; /* uv_now ms */
    const char *close_why;   /* static reason of a close we started, or NULL */
    unsigned short close_code; /* the code on_close reports when we closed first */
    unsigned char state;
    int fd;                  /* the socket (uv_tcp_open'd), for send(2) on the fast path */
    unsigned opened : 1, reported : 1, paused : 1, reading : 1, in_drain : 1;
    unsigned shut : 1, eof : 1; /* lingering: our shutdown is done / the peer's EOF came */
};

struct jr_ws_ctx {
    uv_loop_t *loop;
    jr_ws_config cfg;
    jr_ws_callbacks cb;
    uv_timer_t sweep;
    uv_idle_t idle;
    unsigned tick_ms;
    jr_ws_conn *conns;
    jr_ws_conn *drain;
    size_t nopen;            /* adopted, on_close not yet run */
    jr_ws_counters counts;   /* read by jr_ws_ctx_stats (the metrics' scrape) */
    int freeing, nclosed;
    int rbuf_busy;           /* rbuf holds input being processed (callbacks run meanwhile) */
    char rbuf[RBUF_SIZE];    /* every connection reads here */
};

static void conn_process(jr_ws_conn *c, char *data, size_t n);

/* ------------------------------------------------------------ frames */

static jr_ws_frame *frame_raw(size_t len)
{
    jr_ws_frame *f = malloc(sizeof *f + len);
    if (!f) return NULL;
    f->refs = 1;
    f->len = len;
    return f;
}

static jr_ws_frame *frame_op(int opcode, const void *data, size_t len)
{
    jr_ws_frame *f = frame_raw(jr_wsf_header_len(len) + len);
    if (!f) return NULL;
    size_t hl = jr_wsf_header(f->bytes, 1, opcode, len);
    if (len) memcpy(f->bytes + hl, data, len);
    return f;
}

/* libuv's buffers count in unsigned int */
#define SEND_MAX ((size_t)UINT32_MAX - JR_WSF_MAX_HEADER)

jr_ws_frame *jr_ws_frame_new(const void *data, size_t len, int is_text)
{
    if ((len && !data) || len > SEND_MAX) return NULL;
    return frame_op(is_text ? JR_WSF_OP_TEXT : JR_WSF_OP_BINARY, data, len);
}

void jr_ws_frame_release(jr_ws_frame *f)
{
    if (f && --f->refs == 0) free(f);
}

/* ------------------------------------------------------------ connection end */

static void report(jr_ws_conn *c, int code, const char *reason, size_t rlen)
{
    if (c->reported) return;
    c->reported = 1;
    c->ctx->nopen--;
    if (c->ctx->cb.on_close)
        c->ctx->cb.on_close(c, code, reason ? reason : "", reason ? rlen : 0, c->ctx->cb.ud);
}

static void report_ours(jr_ws_conn *c)
{
    report(c, c->close_code ? c->close_code : 1006, c->close_why,
           c->close_why ? strlen(c->close_why) : 0);
}

static void ctx_handle_closed(uv_handle_t *h)
{
    jr_ws_ctx *ctx = h->data;
    if (++ctx->nclosed == 2) free(ctx);
}

/* The context is being freed and its last connection is gone. */
static void ctx_finish(jr_ws_ctx *ctx)
{
    uv_close((uv_handle_t *)&ctx->sweep, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->idle, ctx_handle_closed);
}

static void drain_remove(jr_ws_conn *c)
{
    if (!c->in_drain) return;
    jr_ws_conn **pp = &c->ctx->drain;
    while (*pp && *pp != c) pp = &(*pp)->drain_next;
    if (*pp) *pp = c->drain_next;
    c->in_drain = 0;
}

static void on_conn_closed(uv_handle_t *h)
{
    jr_ws_conn *c = h->data;
    jr_ws_ctx *ctx = c->ctx;
    report_ours(c);
    drain_remove(c);
    if (c->prev) c->prev->next = c->next;
    else ctx->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    jr_buf_free(&c->rx);
    free(c->stash);
    free(c);
    if (ctx->freeing && !ctx->conns) ctx_finish(ctx);
}

/* Close the socket now; what is queued is cancelled (its write callbacks
 * run before the close callback). */
static void conn_abort(jr_ws_conn *c)
{
    if (c->state == ST_DEAD) return;
    c->state = ST_DEAD;
    c->fd = -1; /* uv_close closes it now: the number may be reused at once */
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void set_reading(jr_ws_conn *c, int on);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    jr_ws_conn *c = req->handle->data;
    free(req);
    c->shut = 1;
    /* ECANCELED when already closing: a no-op */
    if (status < 0 || c->eof) conn_abort(c);
}

/* The close handshake is over for us (on_close has run): shut our side down
 * after the queued writes and wait for the peer's EOF (see the top). */
static void conn_linger(jr_ws_conn *c)
{
    if (c->state == ST_LINGER || c->state == ST_DEAD) return;
    c->state = ST_LINGER;
    c->deadline = uv_now(c->ctx->loop) + c->cfg.close_timeout_ms;
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_abort(c);
        return;
    }
    free(c->stash); /* unprocessed input: dropped like any that follows */
    c->stash = NULL;
    c->stash_len = 0;
    set_reading(c, 1);
}

/* ------------------------------------------------------------ writing */

static void on_written(uv_write_t *w, int status)
{
    wreq *r = (wreq *)w;
    jr_ws_conn *c = w->handle->data;
    jr_ws_frame_release(r->f);
    free(r);
    if (status < 0 && status != UV_ECANCELED) conn_abort(c); /* peer reset: 1006 */
}

/* Write hdr[0..hl) + data[0..len): at once when the kernel takes it, else
 * queue the rest, pointing into f when the bytes are f's (retained) or into a
 * new frame holding a copy of the rest. limited: the rest counts against
 * max_send_queue (our close frames and pings are not limited: one per
 * close, one per ping interval). */
static int conn_write(jr_ws_conn *c, const void *hdr, size_t hl, const void *data, size_t len,
                      jr_ws_frame *f, int limited)
{
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    size_t total = hl + len, done = 0;
    if (c->state == ST_DEAD) return JR_WS_ECLOSED;
    if (s->write_queue_size == 0) {
        /* Nothing of ours is queued in libuv, so the bytes may go straight
         * to the socket. send(2), not uv_try_write's write(2): on a socket
         * write goes through the VFS layer (fdget_pos, vfs_write), about 9 %
         * of the kernel time of a 2000-client broadcast (perf). */
        struct iovec v[2] = {{(void *)(uintptr_t)hdr, hl}, {(void *)(uintptr_t)data, len}};
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = v;
        m.msg_iovlen = len ? 2 : 1;
        ssize_t n;
        do n = len ? sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) : send(c->fd, hdr, hl, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_abort(c); /* reset, broken pipe: 1006 */
            return JR_WS_ECLOSED;
        }
        if (n > 0) done = (size_t)n;
        if (done == total) return JR_WS_OK;
    }
    size_t rest = total - done;
    if (limited && rest > c->cfg.max_send_queue - (s->write_queue_size < c->cfg.max_send_queue
                                                        ? s->write_queue_size
                                                        : c->cfg.max_send_queue)) {
        c->close_code = 1008;
        c->close_why = "send queue full";
        c->ctx->counts.slow_closed++;
        conn_abort(c);
        return JR_WS_EFULL;
    }
    wreq *r = malloc(sizeof *r);
    if (!r) goto nomem;
    const unsigned char *from;
    if (f) {
        f->refs++;
        from = f->bytes + done;
    } else {
        /* a copy of only the unsent rest */
        if (!(f = frame_raw(rest))) {
            free(r);
            goto nomem;
        }
        size_t hrest = done < hl ? hl - done : 0;
        memcpy(f->bytes, (const char *)hdr + (hl - hrest), hrest);
        if (rest > hrest)
            memcpy(f->bytes + hrest, (const char *)data + (len - (rest - hrest)), rest - hrest);
        from = f->bytes;
    }
    r->f = f;
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)from, (unsigned)rest);
    if (uv_write(&r->w, s, &b, 1, on_written) != 0) {
        jr_ws_frame_release(f);
        free(r);
        conn_abort(c);
        return JR_WS_ECLOSED;
    }
    return JR_WS_OK;
nomem:
    /* part of a frame may be out: the stream cannot continue */
    if (done) {
        c->close_code = 1011;
        c->close_why = "out of memory";
        conn_abort(c);
    }
    return JR_WS_ENOMEM;
}

static int send_op(jr_ws_conn *c, int opcode, const void *data, size_t len, int limited)
{
    unsigned char h[JR_WSF_MAX_HEADER];
    size_t hl = jr_wsf_header(h, 1, opcode, len);
    return conn_write(c, h, hl, data, len, NULL, limited);
}

static void send_close(jr_ws_conn *c, int code, const char *reason, size_t rlen)
{
    char p[125];
    size_t n = 0;
    if (code != 1005) { /* 1005 = the peer sent no code: echo an empty close */
        p[0] = (char)(code >> 8);
        p[1] = (char)code;
        if (rlen > 123) rlen = 123;
        if (rlen) memcpy(p + 2, reason, rlen);
        n = 2 + rlen;
    }
    send_op(c, JR_WSF_OP_CLOSE, p, n, 0);
}

/* We start the close: our close frame, then wait for the peer's. */
static void conn_start_close(jr_ws_conn *c, int code, const char *why, const char *reason,
                             size_t rlen)
{
    c->state = ST_CLOSE_SENT;
    c->close_code = (unsigned short)code;
    c->close_why = why;
    c->deadline = uv_now(c->ctx->loop) + c->cfg.close_timeout_ms;
    send_close(c, code, reason, rlen);
    if (c->state == ST_DEAD) return;
    jr_buf_free(&c->rx);
    c->paused = 0; /* the peer's close frame must be read */
    if (!c->stash) set_reading(c, 1);
}

/* ------------------------------------------------------------ reading */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    jr_ws_conn *c = h->data;
    buf->base = c->ctx->rbuf;
    buf->len = RBUF_SIZE;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    jr_ws_conn *c = s->data;
    if (n < 0) {
        if (n == UV_EOF && c->state == ST_LINGER && !c->shut) {
            /* our last frames (the close echo) are still going out: the
             * shutdown's callback closes once they are written */
            c->eof = 1;
            set_reading(c, 0);
            return;
        }
        /* EOF or reset: 1006 unless the close handshake said otherwise */
        conn_abort(c);
        return;
    }
    if (n == 0) return;
    c->last_rx = uv_now(c->ctx->loop);
    if (c->state == ST_LINGER) return; /* dropped: we only wait for EOF */
    c->ctx->rbuf_busy = 1;
    conn_process(c, buf->base, (size_t)n);
    c->ctx->rbuf_busy = 0;
}

static void set_reading(jr_ws_conn *c, int on)
{
    if (c->state == ST_DEAD || (int)c->reading == on) return;
    if (on) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            conn_abort(c);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = on ? 1 : 0;
}

static void deliver(jr_ws_conn *c, const char *data, size_t len, int is_text)
{
    c->ctx->counts.received++;
    if (c->ctx->cb.on_message) c->ctx->cb.on_message(c, data ? data : "", len, is_text, c->ctx->cb.ud);
}

/* A protocol error (or our own failure while receiving): fail the
 * connection with code (RFC 6455 §7.1.7). */
static void conn_fail(jr_ws_conn *c, int code, const char *why)
{
    if (c->state == ST_OPEN) {
        send_close(c, code, why, strlen(why));
        report(c, code, why, strlen(why));
        conn_linger(c);
    } else {
        conn_abort(c); /* closing already: nothing more to say */
    }
}

static void on_data(jr_ws_conn *c, const jr_wsf_event *ev)
{
    if (c->state != ST_OPEN) return; /* closing: data is dropped */
    int text = ev->opcode == JR_WSF_OP_TEXT;
    if (ev->last && c->rx.len == 0) {
        deliver(c, ev->data, ev->len, text); /* whole in this read: no copy */
        return;
    }
    if (jr_buf_append(&c->rx, ev->data, ev->len)) {
        conn_fail(c, 1011, "out of memory");
        return;
    }
    if (ev->last) {
        deliver(c, c->rx.data, c->rx.len, text);
        jr_buf_free(&c->rx); /* an idle connection keeps no message buffer */
    }
}

static void on_control(jr_ws_conn *c, const jr_wsf_event *ev)
{
    if (ev->opcode == JR_WSF_OP_PING) {
        /* limited: a client that pings and never reads would otherwise make
         * us queue pongs without bound; past max_send_queue it gets 1008 */
        if (c->state == ST_OPEN) send_op(c, JR_WSF_OP_PONG, ev->data, ev->len, 1);
    } else if (ev->opcode == JR_WSF_OP_CLOSE) {
        if (c->state == ST_OPEN) {
            send_close(c, ev->code, NULL, 0); /* echo the peer's code */
            report(c, ev->code, ev->reason, ev->rlen);
        } else {
            report_ours(c);
        }
        conn_linger(c);
    }
    /* a pong: receiving it already counted (last_rx) */
}

/* Feed n bytes to the parser and act on its events until they are used up,
 * the connection stops caring (lingering, dead), or the owner paused it
 * (the rest is stashed for jr_ws_resume). data is writable (unmasked in
 * place) and only valid during the call. */
static void conn_process(jr_ws_conn *c, char *data, size_t n)
{
    size_t off = 0, used;
    jr_wsf_event ev;
    while (c->state == ST_OPEN || c->state == ST_CLOSE_SENT) {
        if (c->paused && c->state == ST_OPEN) {
            if (off < n) {
                c->stash = malloc(n - off);
                if (!c->stash) {
                    conn_fail(c, 1011, "out of memory");
                    return;
                }
                memcpy(c->stash, data + off, n - off);
                c->stash_len = n - off;
            }
            set_reading(c, 0);
            return;
        }
        int r = jr_wsf_parse(&c->parser, data + off, n - off, &used, &ev);
        off += used;
        if (r == JR_WSF_NEED) return;
        if (r == JR_WSF_DATA) on_data(c, &ev);
        else if (r == JR_WSF_CONTROL) on_control(c, &ev);
        else conn_fail(c, ev.code, ev.reason);
    }
}

/* ------------------------------------------------------------ drain (open, resume) */

static void on_idle(uv_idle_t *h);

static void drain_add(jr_ws_conn *c)
{
    if (c->in_drain) return;
    c->in_drain = 1;
    c->drain_next = c->ctx->drain;
    c->ctx->drain = c;
    if (!uv_is_active((uv_handle_t *)&c->ctx->idle)) uv_idle_start(&c->ctx->idle, on_idle);
}

static void drain_one(jr_ws_conn *c)
{
    jr_ws_ctx *ctx = c->ctx;
    if (c->state == ST_DEAD) return;
    if (!c->opened) {
        c->opened = 1;
        if (c->state == ST_OPEN && ctx->cb.on_open) ctx->cb.on_open(c, ctx->cb.ud);
    }
    if (c->stash && !(c->paused && c->state == ST_OPEN)) {
        char *s = c->stash;
        size_t n = c->stash_len;
        c->stash = NULL;
        c->stash_len = 0;
        if (c->state != ST_LINGER) conn_process(c, s, n);
        free(s);
    }
    if (!c->stash && !(c->paused && c->state == ST_OPEN)) set_reading(c, 1);
}

static void on_idle(uv_idle_t *h)
{
    jr_ws_ctx *ctx = h->data;
    /* conns added while draining wait for the next iteration */
    jr_ws_conn *list = ctx->drain;
    ctx->drain = NULL;
    uv_idle_stop(h);
    for (jr_ws_conn *c = list; c; c = list) {
        list = c->drain_next;
        c->in_drain = 0;
        /* a callback may close (not free: that needs a close callback) any
         * connection; those still in `list` are skipped as ST_DEAD */
        drain_one(c);
    }
}

/* ------------------------------------------------------------ the sweep */

static void sweep_conn(jr_ws_conn *c, uint64_t now)
{
    const jr_ws_config *cfg = &c->cfg;
    if (c->state == ST_CLOSE_SENT || c->state == ST_LINGER) {
        if (now >= c->deadline) conn_abort(c);
        return;
    }
    if (c->state != ST_OPEN || !c->opened || c->paused) return;
    uint64_t quiet = now - c->last_rx;
    if (cfg->idle_timeout_ms && quiet >= cfg->idle_timeout_ms) {
        conn_start_close(c, 1001, "idle timeout", "idle timeout", 12);
        return;
    }
    uint64_t since = now - (c->last_ping > c->last_rx ? c->last_ping : c->last_rx);
    if (cfg->ping_interval_ms && since >= cfg->ping_interval_ms) {
        c->last_ping = now;
        send_op(c, JR_WSF_OP_PING, NULL, 0, 0);
    }
}

static void on_sweep(uv_timer_t *t)
{
    jr_ws_ctx *ctx = t->data;
    uint64_t now = uv_now(ctx->loop);
    for (jr_ws_conn *c = ctx->conns; c; c = c->next) sweep_conn(c, now);
}

/* The sweep's period: a quarter of the shortest timeout in use, so each
 * fires at most 25% late, within 5 ms .. 1 s. */
static void tick_for(jr_ws_ctx *ctx, const jr_ws_config *cfg)
{
    unsigned v[3] = {cfg->close_timeout_ms, cfg->ping_interval_ms, cfg->idle_timeout_ms};
    unsigned tick = ctx->tick_ms ? ctx->tick_ms : 1000;
    for (int i = 0; i < 3; i++)
        if (v[i] && v[i] / 4 < tick) tick = v[i] / 4;
    if (tick < 5) tick = 5;
    if (tick != ctx->tick_ms) {
        ctx->tick_ms = tick;
        uv_timer_start(&ctx->sweep, on_sweep, tick, tick);
    }
}

/* ------------------------------------------------------------ adopt */

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

static int config_ok(const jr_ws_config *cfg)
{
    return cfg->max_message_size && cfg->max_send_queue && cfg->close_timeout_ms;
}

/* Standard base64 with padding (RFC 4648 §4): out holds 4 * ((n + 2) / 3). */
static size_t b64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    return o;
}

/* "HTTP/1.1 101 ..." with Sec-WebSocket-Accept = base64(SHA-1(key + GUID)). */
static int build_101(jr_buf *b, const char *key, const jr_http_header *extra, size_t nextra)
{
    char in[24 + sizeof WS_GUID];
    memcpy(in, key, 24);
    memcpy(in + 24, WS_GUID, sizeof WS_GUID - 1);
    unsigned char md[JR_SHA1_LEN];
    jr_sha1(in, 24 + sizeof WS_GUID - 1, md);
    char accept[28];
    size_t alen = b64(md, sizeof md, accept); /* 28 characters */
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
    jr_buf_append(b, head, sizeof head - 1);
    jr_buf_append(b, accept, alen);
    jr_buf_append(b, "\r\n", 2);
    for (size_t i = 0; i < nextra; i++) {
        jr_buf_append(b, extra[i].name, extra[i].nlen);
        jr_buf_append(b, ": ", 2);
        jr_buf_append(b, extra[i].value, extra[i].vlen);
        jr_buf_append(b, "\r\n", 2);
    }
    jr_buf_append(b, "\r\n", 2);
    return b->failed ? -1 : 0;
}

static int check_upgrade(jr_http_req *req, const char **key)
{
    size_t ml, ul, cl, vl, kl;
    const char *method = jr_http_req_method(req, &ml);
    const char *up = jr_http_req_header(req, "Upgrade", &ul);
    const char *conn_h = jr_http_req_header(req, "Connection", &cl);
    const char *ver = jr_http_req_header(req, "Sec-WebSocket-Version", &vl);
    *key = jr_http_req_header(req, "Sec-WebSocket-Key", &kl);
    return jr_http_req_is_upgrade(req) && ml == 3 && memcmp(method, "GET", 3) == 0 && up &&
           has_token(up, ul, "websocket") && conn_h && has_token(conn_h, cl, "upgrade") && ver &&
           vl == 2 && memcmp(ver, "13", 2) == 0 && *key && is_b64_key(*key, kl);
}

int jr_ws_adopt(jr_ws_ctx *ctx, jr_http_req *req, const jr_ws_config *cfg,
                const jr_http_header *extra, size_t nextra, void *user, jr_ws_conn **out)
{
    if (out) *out = NULL;
    const char *key;
    if (!ctx || !req || ctx->freeing || (cfg && !config_ok(cfg)) || (nextra && !extra) ||
        !jr_http_headers_valid(extra, nextra) || !check_upgrade(req, &key))
        return JR_WS_EINVALID;
    jr_buf head = JR_BUF_INIT;
    jr_ws_conn *c = calloc(1, sizeof *c);
    if (!c || build_101(&head, key, extra, nextra)) {
        free(c);
        jr_buf_free(&head);
        return JR_WS_ENOMEM;
    }
    /* the pipelined rest lands in rbuf, unless a callback of ours adopts
     * while rbuf holds the input it was called for */
    char *tmp = ctx->rbuf_busy ? malloc(RBUF_SIZE) : ctx->rbuf;
    int fd = -1, dead = 0;
    size_t rest = 0;
    int r = tmp ? jr_http_req_detach(req, &fd, tmp, RBUF_SIZE, &rest) : JR_HTTP_ECLOSED;
    if (r != JR_HTTP_OK) {
        if (tmp != ctx->rbuf) free(tmp);
        free(c);
        jr_buf_free(&head);
        return !tmp                    ? JR_WS_ENOMEM
               : r == JR_HTTP_ETOOBIG  ? JR_WS_ETOOBIG
               : r == JR_HTTP_ESYS     ? JR_WS_ESYS
               : r == JR_HTTP_EINVALID ? JR_WS_EINVALID
                                       : JR_WS_ECLOSED;
    }
    if (rest && (c->stash = malloc(rest))) {
        memcpy(c->stash, tmp, rest);
        c->stash_len = rest;
    } else if (rest) {
        dead = 1; /* too late to give the request back: the connection ends (1006) */
    }
    if (tmp != ctx->rbuf) free(tmp);
    c->ctx = ctx;
    c->user = user;
    c->cfg = cfg ? *cfg : ctx->cfg;
    jr_wsf_parser_init(&c->parser, c->cfg.max_message_size);
    c->last_rx = uv_now(ctx->loop);
    c->next = ctx->conns;
    if (ctx->conns) ctx->conns->prev = c;
    ctx->conns = c;
    ctx->nopen++;
    ctx->counts.opened++;
    if (cfg) tick_for(ctx, cfg);
    uv_tcp_init(ctx->loop, &c->tcp);
    c->tcp.data = c;
    c->fd = fd;
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        c->fd = -1;
        close(fd);
        conn_abort(c); /* closes the fd-less handle; on_close 1006 follows */
    } else if (dead) {
        conn_abort(c);
    } else if (conn_write(c, head.data, head.len, NULL, 0, NULL, 0) != JR_WS_OK) {
        conn_abort(c); /* no 101 (out of memory before any byte): the client must not wait for one */
    }
    jr_buf_free(&head);
    drain_add(c);
    if (out) *out = c;
    return JR_WS_OK;
}

/* ------------------------------------------------------------ API */

void *jr_ws_conn_user(const jr_ws_conn *conn) { return conn ? conn->user : NULL; }

void jr_ws_conn_set_user(jr_ws_conn *conn, void *user)
{
    if (conn) conn->user = user;
}

int jr_ws_send(jr_ws_conn *c, const void *data, size_t len, int is_text)
{
    if (!c || (len && !data) || len > SEND_MAX) return JR_WS_EINVALID;
    if (c->state != ST_OPEN) return JR_WS_ECLOSED;
    unsigned char h[JR_WSF_MAX_HEADER];
    size_t hl = jr_wsf_header(h, 1, is_text ? JR_WSF_OP_TEXT : JR_WSF_OP_BINARY, len);
    jr_ws_ctx *ctx = c->ctx; /* read before the write, which may abort the connection */
    int r = conn_write(c, h, hl, data, len, NULL, 1);
    if (r == JR_WS_OK) ctx->counts.sent++;
    return r;
}

int jr_ws_send_frame(jr_ws_conn *c, jr_ws_frame *f)
{
    if (!c || !f) return JR_WS_EINVALID;
    if (c->state != ST_OPEN) return JR_WS_ECLOSED;
    jr_ws_ctx *ctx = c->ctx;
    int r = conn_write(c, f->bytes, f->len, NULL, 0, f, 1);
    if (r == JR_WS_OK) ctx->counts.sent++;
    return r;
}

int jr_ws_close(jr_ws_conn *c, int code, const char *reason, size_t rlen)
{
    if (!c || (rlen && !reason)) return JR_WS_EINVALID;
    /* RFC 6455 §7.4: 1004-1006 and 1015 must not be sent, 1016-2999 are
     * unassigned (a strict client fails the connection with 1002 on them,
     * as our parser does); 1012-1014 are registered for servers to send */
    if (!jr_wsf_close_code_valid(code) && !(code >= 1012 && code <= 1014)) return JR_WS_EINVALID;
    if (rlen > 123) return JR_WS_EINVALID; /* control frame payload: 125 bytes with the code */
    if (!jr_wsf_utf8_valid(reason, rlen)) return JR_WS_EINVALID; /* §5.5.1: the reason is UTF-8 */
    if (c->state != ST_OPEN) return JR_WS_ECLOSED;
    conn_start_close(c, code, NULL, reason, rlen);
    if (c->stash) drain_add(c); /* the peer's close may wait in it */
    return JR_WS_OK;
}

void jr_ws_pause(jr_ws_conn *c)
{
    if (!c || c->paused) return;
    c->paused = 1;
    if (c->state == ST_OPEN) set_reading(c, 0);
}

void jr_ws_resume(jr_ws_conn *c)
{
    if (!c || !c->paused) return;
    c->paused = 0;
    c->last_rx = uv_now(c->ctx->loop); /* the idle clock restarts */
    if (c->state == ST_DEAD) return;
    /* stashed bytes go first, from the loop (no callback inside this call) */
    if (c->stash || !c->opened) drain_add(c);
    else set_reading(c, 1);
}

size_t jr_ws_conn_queued(const jr_ws_conn *c)
{
    return c && c->state != ST_DEAD ? c->tcp.write_queue_size : 0;
}

/* ------------------------------------------------------------ context */

void jr_ws_config_defaults(jr_ws_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_message_size = 1024 * 1024;
    cfg->max_send_queue = 1024 * 1024;
    cfg->close_timeout_ms = 5000;
    cfg->ping_interval_ms = 30000;
    cfg->idle_timeout_ms = 60000;
}

size_t jr_ws_ctx_connections(const jr_ws_ctx *ctx) { return ctx ? ctx->nopen : 0; }

void jr_ws_ctx_stats(const jr_ws_ctx *ctx, jr_ws_counters *out)
{
    if (ctx) *out = ctx->counts;
    else memset(out, 0, sizeof *out);
}

jr_ws_ctx *jr_ws_ctx_new(uv_loop_t *loop, const jr_ws_config *cfg, const jr_ws_callbacks *cb,
                         char *err, size_t errlen)
{
    if (!loop || !cb) {
        snprintf(err, errlen, "ws: a loop and callbacks are required");
        return NULL;
    }
    if (cfg && !config_ok(cfg)) {
        snprintf(err, errlen, "ws: max_message_size, max_send_queue and close_timeout_ms must be > 0");
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
    ctx->cb = *cb;
    uv_timer_init(loop, &ctx->sweep);
    uv_idle_init(loop, &ctx->idle);
    ctx->sweep.data = ctx->idle.data = ctx;
    /* the sweep alone must not keep the loop running: connections do */
    uv_unref((uv_handle_t *)&ctx->sweep);
    tick_for(ctx, &ctx->cfg);
    return ctx;
}

void jr_ws_ctx_free(jr_ws_ctx *ctx)
{
    if (!ctx || ctx->freeing) return;
    ctx->freeing = 1;
    for (jr_ws_conn *c = ctx->conns; c; c = c->next) {
        if (c->state == ST_OPEN) {
            c->close_code = 1001;
            c->close_why = "going away";
            send_close(c, 1001, c->close_why, strlen(c->close_why));
        }
        report_ours(c);
        conn_linger(c); /* no-op for a dead one */
    }
    ctx->cb.on_open = NULL;
    ctx->cb.on_message = NULL;
    ctx->cb.on_close = NULL;
    if (!ctx->conns) ctx_finish(ctx);
}
