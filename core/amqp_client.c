/* amqp_client.c - librabbitmq on our loop (see amqp_client.h for the contract).
 *
 * Life cycle of a connection:
 *   DOWN --timer--> CONNECTING (thread pool: blocking connect + login +
 *   channels 1..3 + confirm.select) --after_work--> ATTACHED (uv_poll on the
 *   socket; the "ops" FIFO re-declares and re-consumes) --ops drained--> UP
 * and any failure goes back to DOWN with the backoff timer running.
 *
 * The ops FIFO holds the synchronous AMQP methods (declarations, basic.qos,
 * basic.consume, basic.cancel, channel.open, the queries of amqp_query.c):
 * one is on the wire at a time and its reply completes it, so replies need
 * no matching beyond "the head". Publishes are held while the FIFO is not
 * empty, which keeps "declare, then publish" in that order at the broker
 * although they travel on different channels.
 *
 * Memory rules: frames read with amqp_simple_wait_frame_noblock live in the
 * connection's pool until amqp_maybe_release_buffers, so what outlives a
 * frame is copied (deliveries into a->d). A connection that fails is not
 * destroyed at once (we may be inside a callback running from the read
 * loop, holding its frames): it is parked in a->dead and destroyed when the
 * read loop ends, at the next attempt or at release. The client's memory is
 * released when all its uv handles have closed and no connect attempt is
 * running on the thread pool.
 *
 * This file is the connection; amqp_topology.c, amqp_publish.c,
 * amqp_deliver.c, amqp_query.c and amqp_out.c hold the rest (amqp_int.h). */
#include "amqp_int.h"

#include <amqp_tcp_socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

const char *jr_amqp_code_name(int code)
{
    switch (code) {
    case JR_AMQP_OK: return "ok";
    case JR_AMQP_ETIMEOUT: return "timeout";
    case JR_AMQP_EDISCONNECTED: return "disconnected";
    case JR_AMQP_ECLOSED: return "closed";
    case JR_AMQP_EINVALID: return "invalid";
    case JR_AMQP_ENOMEM: return "nomem";
    case JR_AMQP_ENACKED: return "nacked";
    case JR_AMQP_EBUSY: return "busy";
    case JR_AMQP_EREFUSED: return "refused";
    case JR_AMQP_ENOTFOUND: return "not_found";
    default: return "unknown";
    }
}

void jr_amqp_options_defaults(jr_amqp_options *o)
{
    o->heartbeat_s = 10;
    o->connect_timeout_ms = 5000;
    o->reconnect_initial_ms = 100;
    o->reconnect_max_ms = 5000;
    o->max_pending_bytes = 16u << 20;
    o->max_pending_ms = 10000;
}

/* ------------------------------------------------------------ helpers */

static uint64_t rnd(jr_amqp *a)
{
    a->rng ^= a->rng << 13;
    a->rng ^= a->rng >> 7;
    a->rng ^= a->rng << 17;
    return a->rng;
}

/* From [d/2, d], d doubling per failure: clients cut off together do not
 * all come back in step. */
static uint64_t backoff_ms(jr_amqp *a)
{
    uint64_t d = a->o.reconnect_initial_ms;
    for (unsigned i = 1; i < a->failures && d < a->o.reconnect_max_ms; i++) d *= 2;
    if (d > a->o.reconnect_max_ms) d = a->o.reconnect_max_ms;
    return d / 2 + rnd(a) % (d / 2 + 1);
}

/* The text of a librabbitmq RPC reply, for errors. */
static void reply_text(amqp_rpc_reply_t r, char *out, size_t n)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: snprintf(out, n, "ok"); break;
    case AMQP_RESPONSE_NONE: snprintf(out, n, "no reply"); break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: snprintf(out, n, "%s", amqp_error_string2(r.library_error)); break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            snprintf(out, n, "%u %.*s", m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            snprintf(out, n, "%u %.*s", m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(out, n, "the broker answered method 0x%08x", (unsigned)r.reply.id);
        }
        break;
    }
}

/* A failed attempt's kind, from librabbitmq's status codes and the
 * broker's connection.close reply code, never from their text. */
static int status_kind(int rc)
{
    return rc == AMQP_STATUS_TIMEOUT || rc == AMQP_STATUS_HEARTBEAT_TIMEOUT ? JR_AMQP_ETIMEOUT : JR_AMQP_EDISCONNECTED;
}

static int reply_kind(amqp_rpc_reply_t r)
{
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) return status_kind(r.library_error);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *m = r.reply.decoded;
        /* 403: the login (user, password, or the vhost's permissions);
         * 530: connection.open of a vhost that does not exist */
        if (m->reply_code == AMQP_ACCESS_REFUSED || m->reply_code == AMQP_NOT_ALLOWED) return JR_AMQP_EREFUSED;
    }
    return JR_AMQP_EDISCONNECTED;
}

void jr_amqp_conn_fail(jr_amqp *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jr_amqp_ops_kick(jr_amqp *a);
static void start_attempt(jr_amqp *a);
static void maybe_release(jr_amqp *a);

/* ------------------------------------------------------------ connection state */

static void set_err(jr_amqp *a, const char *fmt, va_list ap)
{
    vsnprintf(a->last_err, sizeof a->last_err, fmt, ap);
    a->last_kind = JR_AMQP_EDISCONNECTED;
}

static void close_poll_cb(uv_handle_t *h)
{
    jr_amqp *a = h->data;
    free(h);
    a->open--;
    maybe_release(a);
}

static void detach(jr_amqp *a)
{
    if (a->poll) {
        uv_close((uv_handle_t *)a->poll, close_poll_cb);
        a->poll = NULL;
    }
    if (a->conn) {
        /* parked: frames of it may be in use up the stack */
        if (a->dead) amqp_destroy_connection(a->dead);
        a->dead = a->conn;
        a->conn = NULL;
    }
    jr_buf_recycle(&a->out, 0); /* acks: their tags died with the connection; publishes: told below */
    uv_prepare_stop(&a->flush);
    qry **qtail = &a->qdead;
    while (*qtail) qtail = &(*qtail)->next;
    while (a->ops) {
        op *o = a->ops;
        a->ops = o->next;
        if (o->q) { /* a query: answered by the caller of detach */
            *qtail = o->q;
            qtail = &o->q->next;
        }
        free(o);
    }
    a->d.active = 0;
}

static void report_down(jr_amqp *a)
{
    if (a->down_reported || a->closing) return;
    a->down_reported = 1;
    if (a->cb.on_state) a->cb.on_state(0, a->last_err, a->cb.ud);
}

static void on_backoff(uv_timer_t *t);

/* Drop the connection: unconfirmed publishes learn it, then the next attempt
 * is scheduled. Callbacks run from here: callers are loop callbacks. */
void jr_amqp_conn_fail(jr_amqp *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_err(a, fmt, ap);
    va_end(ap);
    /* A connection that had been up a while is retried at once; one dropped
     * soon after coming up continues the backoff, so a broker that drops
     * every connection is not hammered. */
    int stable = a->state == ST_UP && uv_now(a->loop) - a->up_since >= a->o.reconnect_max_ms;
    detach(a);
    a->state = ST_DOWN;
    a->failures = stable ? 0 : a->failures + 1;
    uv_timer_start(&a->timer, on_backoff, stable ? 0 : backoff_ms(a), 0);
    char why[320];
    snprintf(why, sizeof why, "connection lost before the confirm: %s", a->last_err);
    /* parked in a->dying, not a local list: a callback may free the client,
     * and jr_amqp_free then ends the rest (ECLOSED) before it returns */
    pubm **tail = &a->dying;
    while (*tail) tail = &(*tail)->next;
    *tail = a->fhead;
    a->fhead = a->ftail = NULL;
    a->st.unconfirmed += a->st.inflight;
    a->st.inflight = 0;
    jr_amqp_fail_pubs(a, &a->dying, JR_AMQP_EDISCONNECTED, why);
    snprintf(why, sizeof why, "connection lost before the answer: %s", a->last_err);
    jr_amqp_end_queries(a, JR_AMQP_EDISCONNECTED, why);
    jr_amqp_end_cancels(a, JR_AMQP_OK); /* the broker forgets a closed connection's consumers */
    report_down(a);
}

static void on_fail_now(uv_timer_t *t)
{
    jr_amqp *a = t->data;
    if (a->conn) jr_amqp_conn_fail(a, "%s", a->pending_err);
}

/* A send failed inside a call: report it from the loop, not from the call. */
void jr_amqp_fail_soon(jr_amqp *a, int rc, const char *what)
{
    snprintf(a->pending_err, sizeof a->pending_err, "%s: %s", what, amqp_error_string2(rc));
    uv_timer_start(&a->timer, on_fail_now, 0, 0);
}

void jr_amqp_become_up(jr_amqp *a)
{
    a->state = ST_UP;
    a->up_since = uv_now(a->loop);
    if (a->ever_up) a->st.reconnects++;
    a->ever_up = 1;
    a->down_reported = 0;
    a->last_err[0] = '\0';
    a->last_kind = JR_AMQP_OK;
    if (a->cb.on_state) a->cb.on_state(1, NULL, a->cb.ud);
}

/* ------------------------------------------------------------ frames */

static void close_text(amqp_bytes_t t, uint16_t code, char *out, size_t n)
{
    snprintf(out, n, "%u %.*s", code, (int)t.len, (const char *)t.bytes);
}

static void on_channel_close(jr_amqp *a, amqp_channel_t ch, const amqp_channel_close_t *m)
{
    char text[256];
    close_text(m->reply_text, m->reply_code, text, sizeof text);
    amqp_channel_close_ok_t ok = {0};
    int rc = amqp_send_method(a->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    op *o = a->ops;
    int query = o && o->kind == OP_QUERY && jr_amqp_query_on_decl(o->q);
    if (ch != CH_DECL || rc != AMQP_STATUS_OK || !o || !o->sent || (o->kind != OP_DECL && !query)) {
        jr_amqp_conn_fail(a, "the broker closed channel %u: %s", ch, text);
        return;
    }
    uint64_t gen = a->gen;
    if (query) { /* a missing queue or exchange (404): answer, reopen the channel, go on */
        jr_amqp_query_refused(a, o, m->reply_code, text);
        if (!a->closing && a->gen == gen) jr_amqp_ops_kick(a);
        return;
    }
    /* a refused declaration: forget it, reopen the channel, go on */
    o->kind = OP_REOPEN, o->sent = 0;
    decl *d = o->d;
    o->d = NULL;
    jr_amqp_decl_answer(a, d, JR_AMQP_EREFUSED, text);
    if (!a->closing && a->gen == gen) jr_amqp_ops_kick(a);
}

static void on_method(jr_amqp *a, const amqp_frame_t *f)
{
    amqp_method_number_t id = f->payload.method.id;
    void *m = f->payload.method.decoded;
    amqp_channel_t ch = f->channel;
    if (id == AMQP_BASIC_DELIVER_METHOD) return jr_amqp_on_deliver(a, m);
    if (id == AMQP_BASIC_ACK_METHOD && ch == CH_PUB) {
        amqp_basic_ack_t *ack = m;
        return jr_amqp_on_confirm(a, ack->delivery_tag, ack->multiple, JR_AMQP_OK);
    }
    if (id == AMQP_BASIC_NACK_METHOD && ch == CH_PUB) {
        amqp_basic_nack_t *nack = m;
        return jr_amqp_on_confirm(a, nack->delivery_tag, nack->multiple, JR_AMQP_ENACKED);
    }
    if (id == AMQP_CHANNEL_CLOSE_METHOD) return on_channel_close(a, ch, m);
    if (id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *c = m;
        char text[256];
        close_text(c->reply_text, c->reply_code, text, sizeof text);
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(a->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return jr_amqp_conn_fail(a, "the broker closed the connection: %s", text);
    }
    if (id == AMQP_CONNECTION_BLOCKED_METHOD || id == AMQP_CONNECTION_UNBLOCKED_METHOD) return;
    op *o = a->ops;
    if (!o || !o->sent || !jr_amqp_op_expects(o, id)) {
        jr_amqp_conn_fail(a, "unexpected method 0x%08x on channel %u", (unsigned)id, ch);
        return;
    }
    if (o->kind == OP_QUERY) return jr_amqp_query_reply(a, id, m);
    a->ops = o->next;
    uint64_t gen = a->gen;
    if (o->kind == OP_DECL) jr_amqp_decl_answer(a, o->d, JR_AMQP_OK, NULL);
    if (o->kind == OP_CANCEL) jr_amqp_cancel_ok(a, o);
    free(o);
    if (!a->closing && a->gen == gen) jr_amqp_ops_kick(a);
}

static void on_frame(jr_amqp *a, const amqp_frame_t *f)
{
    switch (f->frame_type) {
    case AMQP_FRAME_METHOD: on_method(a, f); break;
    case AMQP_FRAME_HEADER: jr_amqp_on_header(a, f); break;
    case AMQP_FRAME_BODY: jr_amqp_on_body(a, f); break;
    default: break; /* heartbeats: last_recv is enough */
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    jr_amqp *a = h->data;
    if (status < 0) {
        /* libuv reports any POLLERR as UV_EBADF; the socket's own error
         * says what happened (a reset, a refused write) */
        int soerr = 0;
        socklen_t len = sizeof soerr;
        int fd = a->conn ? amqp_get_sockfd(a->conn) : -1;
        if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0)
            jr_amqp_conn_fail(a, "socket: %s", strerror(soerr));
        else if (status == UV_EBADF)
            jr_amqp_conn_fail(a, "socket: the connection was closed");
        else
            jr_amqp_conn_fail(a, "socket: %s", uv_strerror(status));
        return;
    }
    /* librabbitmq consumes heartbeat frames itself: bytes arriving is what
     * proves the peer alive */
    a->last_recv = uv_now(a->loop);
    uint64_t gen = a->gen;
    while (a->conn && a->gen == gen && !a->closing) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(a->conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT) break;
        if (rc != AMQP_STATUS_OK) {
            jr_amqp_conn_fail(a, "reading from the broker: %s", amqp_error_string2(rc));
            break;
        }
        on_frame(a, &f);
    }
    if (a->closing) return;
    if (a->dead) {
        amqp_destroy_connection(a->dead);
        a->dead = NULL;
    }
    if (a->conn && a->gen == gen) amqp_maybe_release_buffers(a->conn);
}

/* ------------------------------------------------------------ connecting */

static int rpc_ok(amqp_connection_state_t c, const char *what, attempt *t)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return 1;
    int k = snprintf(t->err, sizeof t->err, "%s: ", what);
    reply_text(r, t->err + k, sizeof t->err - (size_t)k);
    t->kind = reply_kind(r);
    return 0;
}

/* On the thread pool: the blocking part (a touches only immutable fields). */
static void attempt_work(uv_work_t *req)
{
    attempt *t = req->data;
    jr_amqp *a = t->a;
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
    t->kind = JR_AMQP_EDISCONNECTED;
    if (!s) {
        t->kind = JR_AMQP_ENOMEM;
        snprintf(t->err, sizeof t->err, "out of memory");
        if (c) amqp_destroy_connection(c);
        return;
    }
    struct timeval tv = {a->o.connect_timeout_ms / 1000, (a->o.connect_timeout_ms % 1000) * 1000};
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    int rc = amqp_socket_open_noblock(s, a->url.host, a->url.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(t->err, sizeof t->err, "connecting to %s:%d: %s", a->url.host, a->url.port, amqp_error_string2(rc));
        t->kind = status_kind(rc);
        amqp_destroy_connection(c);
        return;
    }
    amqp_rpc_reply_t r = amqp_login(c, a->url.vhost, 0, 131072, (int)a->o.heartbeat_s, AMQP_SASL_METHOD_PLAIN,
                                    a->url.user, a->url.password);
    int ok = 1;
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        int k = snprintf(t->err, sizeof t->err, "login as '%s' on vhost '%s': ", a->url.user, a->url.vhost);
        reply_text(r, t->err + k, sizeof t->err - (size_t)k);
        t->kind = reply_kind(r);
        ok = 0;
    }
    for (amqp_channel_t ch = CH_PUB; ok && ch <= CH_DECL; ch++)
        ok = amqp_channel_open(c, ch) && rpc_ok(c, "opening a channel", t);
    if (ok) ok = amqp_confirm_select(c, CH_PUB) && rpc_ok(c, "confirm.select", t);
    if (!ok) {
        if (!t->err[0]) snprintf(t->err, sizeof t->err, "opening the channels: %s", "no reply");
        amqp_destroy_connection(c);
        return;
    }
    t->conn = c;
}

static void on_tick(uv_timer_t *tm);

static void attempt_done(uv_work_t *req, int status)
{
    attempt *t = req->data;
    jr_amqp *a = t->a;
    a->open--;
    amqp_connection_state_t c = t->conn;
    char err[256];
    snprintf(err, sizeof err, "%s", t->err);
    int kind = t->kind;
    free(t);
    if (a->closing) {
        if (c) amqp_destroy_connection(c);
        maybe_release(a);
        return;
    }
    if (!c) {
        a->state = ST_DOWN;
        a->failures++;
        snprintf(a->last_err, sizeof a->last_err, "%s", err);
        a->last_kind = kind;
        uv_timer_start(&a->timer, on_backoff, backoff_ms(a), 0);
        report_down(a);
        return;
    }
    a->conn = c;
    a->gen++;
    a->state = ST_ATTACHED;
    a->pub_seq = 0; /* confirm.select numbers from 1 on every channel */
    a->hb_ms = (unsigned)amqp_get_heartbeat(c) * 1000u;
    a->last_recv = a->last_send = uv_now(a->loop);
    a->poll = malloc(sizeof *a->poll);
    if (!a->poll || uv_poll_init(a->loop, a->poll, amqp_get_sockfd(c)) != 0) {
        free(a->poll);
        a->poll = NULL;
        jr_amqp_conn_fail(a, "cannot watch the socket");
        return;
    }
    a->open++;
    a->poll->data = a;
    uv_poll_start(a->poll, UV_READABLE, on_readable);
    int bad = 0;
    for (decl *d = a->decls; d; d = d->next) bad |= jr_amqp_op_push(a, OP_DECL, d, NULL);
    for (cons *k = a->conss; k; k = k->next)
        if (!k->cancelling) bad |= jr_amqp_op_push(a, OP_QOS, NULL, k) | jr_amqp_op_push(a, OP_CONSUME, NULL, k);
    bad |= jr_amqp_op_push(a, OP_UP, NULL, NULL);
    if (bad) {
        jr_amqp_conn_fail(a, "out of memory");
        return;
    }
    jr_amqp_ops_kick(a);
    /* data may already sit in librabbitmq's buffers (read with the login) */
    if (a->conn && (amqp_data_in_buffer(a->conn) || amqp_frames_enqueued(a->conn))) on_readable(a->poll, 0, UV_READABLE);
}

static void start_attempt(jr_amqp *a)
{
    attempt *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(a->last_err, sizeof a->last_err, "out of memory");
        a->last_kind = JR_AMQP_ENOMEM;
        uv_timer_start(&a->timer, on_backoff, backoff_ms(a), 0);
        return;
    }
    t->a = a;
    t->req.data = t;
    a->state = ST_CONNECTING;
    if (uv_queue_work(a->loop, &t->req, attempt_work, attempt_done) != 0) {
        free(t);
        a->state = ST_DOWN;
        uv_timer_start(&a->timer, on_backoff, backoff_ms(a), 0);
        return;
    }
    a->open++;
}

static void on_backoff(uv_timer_t *tm)
{
    jr_amqp *a = tm->data;
    if (a->dead) {
        amqp_destroy_connection(a->dead);
        a->dead = NULL;
    }
    start_attempt(a);
}

/* Heartbeats, a dead peer, publishes that waited too long. */
static void on_tick(uv_timer_t *tm)
{
    jr_amqp *a = tm->data;
    uint64_t now = uv_now(a->loop);
    if (a->conn && a->hb_ms) {
        if (now - a->last_recv > 2 * (uint64_t)a->hb_ms) {
            jr_amqp_conn_fail(a, "no heartbeat from the broker for %u s", 2 * a->hb_ms / 1000);
        } else if (now - a->last_send >= a->hb_ms / 2) {
            amqp_frame_t hb;
            memset(&hb, 0, sizeof hb);
            hb.frame_type = AMQP_FRAME_HEARTBEAT;
            hb.channel = 0;
            int rc = amqp_send_frame(a->conn, &hb);
            if (rc != AMQP_STATUS_OK) jr_amqp_conn_fail(a, "sending a heartbeat: %s", amqp_error_string2(rc));
            else a->last_send = now;
        }
    }
    jr_amqp_expire_pending(a, now);
}

/* ------------------------------------------------------------ public API */

jr_amqp *jr_amqp_new(uv_loop_t *loop, const char *url, const jr_amqp_options *opts,
                     const jr_amqp_callbacks *cb, int *status, char *err, size_t errlen)
{
    int st_dummy;
    if (!status) status = &st_dummy;
    *status = JR_AMQP_EINVALID;
    jr_amqp_options o;
    if (opts) o = *opts;
    else jr_amqp_options_defaults(&o);
    if (o.connect_timeout_ms == 0 || o.reconnect_initial_ms == 0 || o.reconnect_max_ms < o.reconnect_initial_ms ||
        o.heartbeat_s > 65535) {
        if (err && errlen)
            snprintf(err, errlen, "invalid AMQP options: connect_timeout_ms and reconnect_initial_ms must be > 0, "
                                  "reconnect_max_ms >= reconnect_initial_ms, heartbeat_s <= 65535");
        return NULL;
    }
    jr_amqp *a = calloc(1, sizeof *a);
    if (!a) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        *status = JR_AMQP_ENOMEM;
        return NULL;
    }
    int rc = jr_amqp_url_parse(url, &a->url, err, errlen);
    if (rc != 0) {
        free(a);
        if (rc == JR_AMQP_URL_ENOMEM) *status = JR_AMQP_ENOMEM;
        return NULL;
    }
    *status = JR_AMQP_OK;
    a->loop = loop;
    a->o = o;
    if (cb) a->cb = *cb;
    a->rng = uv_hrtime() ^ ((uint64_t)(uintptr_t)a << 16) ^ 0x9e3779b97f4a7c15ULL;
    jr_buf_init(&a->d.meta);
    jr_buf_init(&a->d.body);
    jr_buf_init(&a->out);
    uv_timer_init(loop, &a->timer);
    uv_timer_init(loop, &a->tick);
    uv_timer_init(loop, &a->soon);
    uv_prepare_init(loop, &a->flush);
    a->timer.data = a->tick.data = a->soon.data = a->flush.data = a;
    a->open = 4;
    uv_timer_start(&a->tick, on_tick, 200, 200);
    start_attempt(a);
    return a;
}

static void close_timer_cb(uv_handle_t *h)
{
    jr_amqp *a = h->data;
    a->open--;
    maybe_release(a);
}

static void maybe_release(jr_amqp *a)
{
    if (!a->closing || a->open > 0) return;
    if (a->dead) amqp_destroy_connection(a->dead);
    for (cons *c = a->conss, *n; c; c = n) {
        n = c->next;
        free(c->queue);
        free(c);
    }
    jr_buf_free(&a->d.meta);
    jr_buf_free(&a->d.body);
    jr_buf_free(&a->out);
    free(a->d.hoff);
    free(a->d.hv);
    jr_amqp_url_free(&a->url);
    free(a);
}

void jr_amqp_free(jr_amqp *a)
{
    if (!a || a->closing) return;
    a->closing = 1;
    if (a->conn) {
        jr_amqp_out_flush(a); /* acked before the close: not delivered again */
        /* tell the broker (it requeues our unacknowledged deliveries either way) */
        amqp_connection_close_t m = {AMQP_REPLY_SUCCESS, B("bye"), 0, 0};
        amqp_send_method(a->conn, 0, AMQP_CONNECTION_CLOSE_METHOD, &m);
    }
    detach(a);
    pubm *f = a->fhead, *q = a->qhead;
    a->fhead = a->ftail = a->qhead = a->qtail = NULL;
    jr_amqp_fail_pubs(a, &a->dying, JR_AMQP_ECLOSED, "the client was closed");
    jr_amqp_fail_pubs(a, &f, JR_AMQP_ECLOSED, "the client was closed");
    jr_amqp_fail_pubs(a, &q, JR_AMQP_ECLOSED, "the client was closed");
    while (a->decls) {
        decl *d = a->decls;
        a->decls = d->next;
        if (d->cb) d->cb(a, JR_AMQP_ECLOSED, "the client was closed", d->ud);
        jr_amqp_decl_free(d);
    }
    jr_amqp_end_queries(a, JR_AMQP_ECLOSED, "the client was closed");
    jr_amqp_end_cancels(a, JR_AMQP_ECLOSED);
    uv_close((uv_handle_t *)&a->soon, close_timer_cb);
    uv_close((uv_handle_t *)&a->timer, close_timer_cb);
    uv_close((uv_handle_t *)&a->tick, close_timer_cb);
    uv_close((uv_handle_t *)&a->flush, close_timer_cb);
}

int jr_amqp_is_up(const jr_amqp *a) { return a && a->state == ST_UP && !a->closing; }

const char *jr_amqp_last_error(const jr_amqp *a) { return a ? a->last_err : ""; }

int jr_amqp_last_failure(const jr_amqp *a) { return a ? a->last_kind : JR_AMQP_OK; }

void jr_amqp_get_stats(const jr_amqp *a, jr_amqp_stats *out) { *out = a->st; }
