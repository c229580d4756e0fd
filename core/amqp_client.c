/* amqp_client.c - librabbitmq on our loop (see amqp_client.h for the contract).
 *
 * Life cycle of a connection:
 *   DOWN --timer--> CONNECTING (thread pool: blocking connect + login +
 *   channels 1..3 + confirm.select) --after_work--> ATTACHED (uv_poll on the
 *   socket; the "ops" FIFO re-declares and re-consumes) --ops drained--> UP
 * and any failure goes back to DOWN with the backoff timer running.
 *
 * The ops FIFO holds the synchronous AMQP methods (declarations, basic.qos,
 * basic.consume, channel.open): one is on the wire at a time and its reply
 * completes it, so replies need no matching beyond "the head". Publishes are
 * held while the FIFO is not empty, which keeps "declare, then publish" in
 * that order at the broker although they travel on different channels.
 *
 * Memory rules: frames read with amqp_simple_wait_frame_noblock live in the
 * connection's pool until amqp_maybe_release_buffers, so what outlives a
 * frame is copied (deliveries into a->d). A connection that fails is not
 * destroyed at once (we may be inside a callback running from the read
 * loop, holding its frames): it is parked in a->dead and destroyed when the
 * read loop ends, at the next attempt or at release. The client's memory is
 * released when all its uv handles have closed and no connect attempt is
 * running on the thread pool. */
#include "amqp_client.h"

#include "amqp_url.h"
#include "buf.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

enum { ST_DOWN, ST_CONNECTING, ST_ATTACHED, ST_UP };
enum { CH_PUB = 1, CH_CONS = 2, CH_DECL = 3 };
enum { D_EXCHANGE, D_QUEUE, D_BIND };
enum { OP_DECL, OP_QOS, OP_CONSUME, OP_REOPEN, OP_UP };

/* The broker's delivery tag in the low bits, our connection generation above:
 * an ack for a tag of an older connection must not reach the new one (the
 * broker would close the channel for an unknown tag). */
#define TAG_BITS 40
#define TAG_MASK ((UINT64_C(1) << TAG_BITS) - 1)

typedef struct decl {
    struct decl *next;
    int kind;
    char *s1, *s2, *s3; /* exchange: name, type; queue: name; bind: queue, exchange, key */
    char *dlx, *dlrk, *qtype;
    uint32_t ttl;
    jr_amqp_done_cb cb; /* cleared once answered */
    void *ud;
} decl;

typedef struct cons {
    struct cons *next;
    int id;
    char *queue;
    unsigned prefetch;
    jr_amqp_delivery_cb cb;
    void *ud;
    char tag[24]; /* our consumer tag: "jr-<id>" */
} cons;

typedef struct op {
    struct op *next;
    int kind, sent;
    decl *d;
    cons *c;
} op;

typedef struct pubm { /* one allocation: the record, then its headers, strings and body */
    struct pubm *next;
    uint64_t seq, at;
    jr_amqp_done_cb cb;
    void *ud;
    const char *exchange, *rk, *mid, *ctype, *body;
    size_t len, nh;
    jr_amqp_header *h;
} pubm;

typedef struct { /* a delivery being assembled from its method, header and body frames */
    int active;
    uint64_t tag;
    int redelivered;
    size_t body_size;
    jr_buf meta; /* NUL-terminated strings: exchange, key, consumer tag, message id, content type, headers */
    size_t o_ex, o_rk, o_ct, o_mid, o_ctype; /* offsets into meta; (size_t)-1 = none */
    jr_buf body;
    size_t nh, caph;
    size_t *hoff; /* per header: key offset, value offset, value length */
    jr_amqp_header *hv;
} dstate;

typedef struct {
    uv_work_t req;
    jr_amqp *a;
    amqp_connection_state_t conn;
    char err[256];
} attempt;

struct jr_amqp {
    uv_loop_t *loop;
    jr_amqp_url url;
    jr_amqp_options o;
    jr_amqp_callbacks cb;
    int state, closing, ever_up, down_reported;
    amqp_connection_state_t conn, dead;
    uv_poll_t *poll;
    uv_timer_t timer; /* backoff while DOWN; "fail now" (0 ms) from a call */
    uv_timer_t tick;  /* heartbeats and the age of waiting publishes */
    int open;         /* handles not closed + attempts running */
    uint64_t gen;     /* connection generation (delivery tags) */
    unsigned failures;
    uint64_t last_recv, last_send;
    unsigned hb_ms; /* negotiated heartbeat, 0 = none */
    uint64_t pub_seq;
    decl *decls;
    cons *conss;
    int next_cons;
    op *ops;
    pubm *qhead, *qtail; /* waiting unsent */
    size_t qbytes;
    pubm *fhead, *ftail; /* sent, awaiting confirms (seq order) */
    dstate d;
    jr_amqp_stats st;
    uint64_t rng;
    char last_err[256];
    char pending_err[256]; /* a failure found inside a call: reported from the timer */
};

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

static amqp_bytes_t B(const char *s) { return amqp_cstring_bytes(s ? s : ""); }

static char *sdup(const char *s, int *bad)
{
    if (!s) return NULL;
    char *o = strdup(s);
    if (!o) *bad = 1;
    return o;
}

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

static void conn_fail(jr_amqp *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ops_kick(jr_amqp *a);
static void start_attempt(jr_amqp *a);
static void maybe_release(jr_amqp *a);

/* ------------------------------------------------------------ publishes */

static void pub_done(jr_amqp *a, pubm *p, int status, const char *why)
{
    if (p->cb) p->cb(a, status, why, p->ud);
    free(p);
}

static void inflight_remove(jr_amqp *a, pubm *prev, pubm *p)
{
    if (prev) prev->next = p->next;
    else a->fhead = p->next;
    if (a->ftail == p) a->ftail = prev;
    a->st.inflight--;
}

/* basic.ack / basic.nack on the publishing channel. */
static void on_confirm(jr_amqp *a, uint64_t tag, int multiple, int status)
{
    uint64_t gen = a->gen;
    pubm *prev = NULL, *p = a->fhead;
    while (p && !a->closing && a->gen == gen) {
        pubm *next = p->next;
        if (p->seq == tag || (multiple && p->seq < tag)) {
            inflight_remove(a, prev, p);
            if (status == JR_AMQP_OK) a->st.published++;
            else a->st.nacked++;
            pub_done(a, p, status, status == JR_AMQP_OK ? NULL : "the broker nacked the message");
            if (!multiple) return;
        } else if (p->seq > tag) {
            return;
        } else {
            prev = p;
        }
        p = next;
    }
}

static int send_pub(jr_amqp *a, pubm *p)
{
    amqp_table_entry_t *ent = p->nh ? calloc(p->nh, sizeof *ent) : NULL;
    if (p->nh && !ent) return AMQP_STATUS_NO_MEMORY;
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2; /* persistent */
    if (p->mid) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = B(p->mid);
    }
    if (p->ctype) {
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props.content_type = B(p->ctype);
    }
    if (p->nh) {
        for (size_t i = 0; i < p->nh; i++) {
            ent[i].key = B(p->h[i].key);
            ent[i].value.kind = AMQP_FIELD_KIND_UTF8;
            ent[i].value.value.bytes.bytes = (void *)p->h[i].value;
            ent[i].value.value.bytes.len = p->h[i].vlen;
        }
        props._flags |= AMQP_BASIC_HEADERS_FLAG;
        props.headers.num_entries = (int)p->nh;
        props.headers.entries = ent;
    }
    amqp_bytes_t body = {p->len, (void *)p->body};
    int rc = amqp_basic_publish(a->conn, CH_PUB, B(p->exchange), B(p->rk), 0, 0, &props, body);
    free(ent);
    return rc;
}

/* Number p (confirms count publishes from 1 per channel), put it in flight,
 * send it. A failed send leaves it in flight: the drop that follows tells it. */
static int send_inflight(jr_amqp *a, pubm *p)
{
    p->next = NULL;
    p->seq = ++a->pub_seq;
    if (a->ftail) a->ftail->next = p;
    else a->fhead = p;
    a->ftail = p;
    a->st.inflight++;
    return send_pub(a, p);
}

/* Send what waits, in order, while up and no declaration is outstanding. */
static void flush_queue(jr_amqp *a)
{
    while (a->qhead && a->state == ST_UP && !a->ops && !a->closing) {
        pubm *p = a->qhead;
        a->qhead = p->next;
        if (!a->qhead) a->qtail = NULL;
        a->qbytes -= p->len;
        a->st.pending--;
        int rc = send_inflight(a, p);
        if (rc != AMQP_STATUS_OK) {
            conn_fail(a, "publishing: %s", amqp_error_string2(rc));
            return;
        }
    }
    a->last_send = uv_now(a->loop);
}

static void fail_queue(jr_amqp *a, pubm **head, int status, const char *why)
{
    while (*head && !(status != JR_AMQP_ECLOSED && a->closing)) {
        pubm *p = *head;
        *head = p->next;
        pub_done(a, p, status, why);
    }
}

/* ------------------------------------------------------------ connection state */

static void set_err(jr_amqp *a, const char *fmt, va_list ap) { vsnprintf(a->last_err, sizeof a->last_err, fmt, ap); }

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
    while (a->ops) {
        op *o = a->ops;
        a->ops = o->next;
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
static void conn_fail(jr_amqp *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_err(a, fmt, ap);
    va_end(ap);
    int was_up = a->state == ST_UP;
    detach(a);
    a->state = ST_DOWN;
    a->failures = was_up ? 0 : a->failures + 1;
    uv_timer_start(&a->timer, on_backoff, was_up ? 0 : backoff_ms(a), 0);
    char why[320];
    snprintf(why, sizeof why, "connection lost before the confirm: %s", a->last_err);
    pubm *f = a->fhead;
    a->fhead = a->ftail = NULL;
    a->st.unconfirmed += a->st.inflight;
    a->st.inflight = 0;
    fail_queue(a, &f, JR_AMQP_EDISCONNECTED, why);
    report_down(a);
}

static void on_fail_now(uv_timer_t *t)
{
    jr_amqp *a = t->data;
    if (a->conn) conn_fail(a, "%s", a->pending_err);
}

/* A send failed inside a call: report it from the loop, not from the call. */
static void fail_soon(jr_amqp *a, int rc, const char *what)
{
    snprintf(a->pending_err, sizeof a->pending_err, "%s: %s", what, amqp_error_string2(rc));
    uv_timer_start(&a->timer, on_fail_now, 0, 0);
}

/* ------------------------------------------------------------ the ops FIFO */

static int send_op(jr_amqp *a, struct op *o);

/* Put the head op on the wire from inside an API call: only a send, so no
 * callback runs inside the call; a failed send is reported from the loop. */
static void kick_from_call(jr_amqp *a)
{
    op *o = a->ops;
    if (!a->conn || !o || o->sent || o->kind == OP_UP) return;
    int rc = send_op(a, o);
    if (rc != AMQP_STATUS_OK) fail_soon(a, rc, "sending a declaration");
    else o->sent = 1;
}

static void table_add(amqp_table_entry_t *e, int *n, const char *key, const char *val)
{
    if (!val) return;
    e[*n].key = B(key);
    e[*n].value.kind = AMQP_FIELD_KIND_UTF8;
    e[*n].value.value.bytes = B(val);
    (*n)++;
}

static int send_op(jr_amqp *a, op *o)
{
    amqp_table_entry_t e[4];
    int n = 0;
    if (o->kind == OP_REOPEN) {
        amqp_channel_open_t m = {amqp_empty_bytes};
        return amqp_send_method(a->conn, CH_DECL, AMQP_CHANNEL_OPEN_METHOD, &m);
    }
    if (o->kind == OP_QOS) {
        amqp_basic_qos_t m = {0, (uint16_t)o->c->prefetch, 0};
        return amqp_send_method(a->conn, CH_CONS, AMQP_BASIC_QOS_METHOD, &m);
    }
    if (o->kind == OP_CONSUME) {
        amqp_basic_consume_t m = {0, B(o->c->queue), B(o->c->tag), 0, 0, 0, 0, amqp_empty_table};
        return amqp_send_method(a->conn, CH_CONS, AMQP_BASIC_CONSUME_METHOD, &m);
    }
    decl *d = o->d;
    if (d->kind == D_EXCHANGE) {
        amqp_exchange_declare_t m = {0, B(d->s1), B(d->s2), 0, 1, 0, 0, 0, amqp_empty_table};
        return amqp_send_method(a->conn, CH_DECL, AMQP_EXCHANGE_DECLARE_METHOD, &m);
    }
    if (d->kind == D_BIND) {
        amqp_queue_bind_t m = {0, B(d->s1), B(d->s2), B(d->s3), 0, amqp_empty_table};
        return amqp_send_method(a->conn, CH_DECL, AMQP_QUEUE_BIND_METHOD, &m);
    }
    table_add(e, &n, "x-dead-letter-exchange", d->dlx);
    table_add(e, &n, "x-dead-letter-routing-key", d->dlrk);
    table_add(e, &n, "x-queue-type", d->qtype);
    if (d->ttl) {
        e[n].key = B("x-message-ttl");
        e[n].value.kind = AMQP_FIELD_KIND_I64;
        e[n].value.value.i64 = d->ttl;
        n++;
    }
    amqp_queue_declare_t m = {0, B(d->s1), 0, 1, 0, 0, 0, {n, e}};
    return amqp_send_method(a->conn, CH_DECL, AMQP_QUEUE_DECLARE_METHOD, &m);
}

static amqp_method_number_t op_reply(const op *o)
{
    switch (o->kind) {
    case OP_REOPEN: return AMQP_CHANNEL_OPEN_OK_METHOD;
    case OP_QOS: return AMQP_BASIC_QOS_OK_METHOD;
    case OP_CONSUME: return AMQP_BASIC_CONSUME_OK_METHOD;
    default:
        return o->d->kind == D_EXCHANGE ? AMQP_EXCHANGE_DECLARE_OK_METHOD
               : o->d->kind == D_QUEUE  ? AMQP_QUEUE_DECLARE_OK_METHOD
                                        : AMQP_QUEUE_BIND_OK_METHOD;
    }
}

static int op_push(jr_amqp *a, int kind, decl *d, cons *c)
{
    op *o = calloc(1, sizeof *o), **pp = &a->ops;
    if (!o) return -1;
    o->kind = kind, o->d = d, o->c = c;
    while (*pp) pp = &(*pp)->next;
    *pp = o;
    return 0;
}

static void become_up(jr_amqp *a)
{
    a->state = ST_UP;
    a->failures = 0;
    if (a->ever_up) a->st.reconnects++;
    a->ever_up = 1;
    a->down_reported = 0;
    a->last_err[0] = '\0';
    if (a->cb.on_state) a->cb.on_state(1, NULL, a->cb.ud);
}

/* Send the head op if it is not on the wire; an OP_UP head completes at once. */
static void ops_kick(jr_amqp *a)
{
    uint64_t gen = a->gen;
    while (a->ops && !a->ops->sent && !a->closing && a->gen == gen && a->conn) {
        op *o = a->ops;
        if (o->kind == OP_UP) {
            a->ops = o->next;
            free(o);
            become_up(a);
            continue;
        }
        int rc = send_op(a, o);
        if (rc != AMQP_STATUS_OK) {
            conn_fail(a, "sending a declaration: %s", amqp_error_string2(rc));
            return;
        }
        o->sent = 1;
        a->last_send = uv_now(a->loop);
    }
    if (!a->ops && !a->closing && a->gen == gen) flush_queue(a);
}

static void decl_unlink(jr_amqp *a, decl *d)
{
    for (decl **pp = &a->decls; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            return;
        }
}

static void decl_free(decl *d)
{
    free(d->s1), free(d->s2), free(d->s3), free(d->dlx), free(d->dlrk), free(d->qtype);
    free(d);
}

static void decl_answer(jr_amqp *a, decl *d, int status, const char *why)
{
    jr_amqp_done_cb cb = d->cb;
    void *ud = d->ud;
    d->cb = NULL;
    if (status != JR_AMQP_OK) {
        decl_unlink(a, d);
        decl_free(d);
    }
    if (cb) cb(a, status, why, ud);
}

/* ------------------------------------------------------------ deliveries */

static size_t meta_str(jr_amqp *a, amqp_bytes_t b)
{
    size_t off = a->d.meta.len;
    jr_buf_append(&a->d.meta, b.bytes, b.len);
    jr_buf_append_char(&a->d.meta, '\0');
    return off;
}

static int header_add(jr_amqp *a, amqp_bytes_t key, const char *v, size_t vlen)
{
    dstate *d = &a->d;
    if (d->nh == d->caph) {
        size_t n = d->caph ? d->caph * 2 : 8;
        size_t *ho = realloc(d->hoff, n * 3 * sizeof *ho);
        if (!ho) return -1;
        d->hoff = ho;
        jr_amqp_header *hv = realloc(d->hv, n * sizeof *hv);
        if (!hv) return -1;
        d->hv = hv;
        d->caph = n;
    }
    d->hoff[d->nh * 3] = meta_str(a, key);
    d->hoff[d->nh * 3 + 1] = meta_str(a, (amqp_bytes_t){vlen, (void *)v});
    d->hoff[d->nh * 3 + 2] = vlen;
    d->nh++;
    return 0;
}

static void copy_headers(jr_amqp *a, const amqp_table_t *t)
{
    char num[32];
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_field_value_t *v = &t->entries[i].value;
        int n = -1;
        switch (v->kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
            header_add(a, t->entries[i].key, v->value.bytes.bytes, v->value.bytes.len);
            continue;
        case AMQP_FIELD_KIND_BOOLEAN: n = snprintf(num, sizeof num, "%s", v->value.boolean ? "true" : "false"); break;
        case AMQP_FIELD_KIND_I8: n = snprintf(num, sizeof num, "%d", v->value.i8); break;
        case AMQP_FIELD_KIND_U8: n = snprintf(num, sizeof num, "%u", v->value.u8); break;
        case AMQP_FIELD_KIND_I16: n = snprintf(num, sizeof num, "%d", v->value.i16); break;
        case AMQP_FIELD_KIND_U16: n = snprintf(num, sizeof num, "%u", v->value.u16); break;
        case AMQP_FIELD_KIND_I32: n = snprintf(num, sizeof num, "%" PRId32, v->value.i32); break;
        case AMQP_FIELD_KIND_U32: n = snprintf(num, sizeof num, "%" PRIu32, v->value.u32); break;
        case AMQP_FIELD_KIND_I64: n = snprintf(num, sizeof num, "%" PRId64, v->value.i64); break;
        case AMQP_FIELD_KIND_U64:
        case AMQP_FIELD_KIND_TIMESTAMP: n = snprintf(num, sizeof num, "%" PRIu64, v->value.u64); break;
        default: continue; /* tables, arrays, floats, decimals */
        }
        header_add(a, t->entries[i].key, num, (size_t)n);
    }
}

static cons *cons_by_tag(jr_amqp *a, const char *tag)
{
    for (cons *c = a->conss; c; c = c->next)
        if (strcmp(c->tag, tag) == 0) return c;
    return NULL;
}

static void dispatch(jr_amqp *a)
{
    dstate *d = &a->d;
    d->active = 0;
    if (d->meta.failed || d->body.failed) {
        conn_fail(a, "out of memory for a delivery");
        return;
    }
    const char *m = d->meta.data;
    cons *c = cons_by_tag(a, m + d->o_ct);
    if (!c) return; /* cancelled meanwhile: the broker requeues it when we close */
    for (size_t i = 0; i < d->nh; i++) {
        d->hv[i].key = m + d->hoff[i * 3];
        d->hv[i].value = m + d->hoff[i * 3 + 1];
        d->hv[i].vlen = d->hoff[i * 3 + 2];
    }
    jr_amqp_delivery dv = {
        .tag = (a->gen << TAG_BITS) | d->tag,
        .redelivered = d->redelivered,
        .exchange = m + d->o_ex,
        .routing_key = m + d->o_rk,
        .queue = c->queue,
        .body = d->body.data ? d->body.data : "",
        .len = d->body.len,
        .message_id = d->o_mid != (size_t)-1 ? m + d->o_mid : NULL,
        .content_type = d->o_ctype != (size_t)-1 ? m + d->o_ctype : NULL,
        .headers = d->hv,
        .nheaders = d->nh,
    };
    a->st.deliveries++;
    c->cb(a, &dv, c->ud);
}

static void on_deliver(jr_amqp *a, const amqp_basic_deliver_t *m)
{
    dstate *d = &a->d;
    jr_buf_reset(&d->meta);
    jr_buf_reset(&d->body);
    d->active = 1;
    d->nh = 0;
    d->tag = m->delivery_tag & TAG_MASK;
    d->redelivered = m->redelivered;
    d->o_ex = meta_str(a, m->exchange);
    d->o_rk = meta_str(a, m->routing_key);
    d->o_ct = meta_str(a, m->consumer_tag);
    d->o_mid = d->o_ctype = (size_t)-1;
    d->body_size = (size_t)-1; /* until the header frame */
}

static void on_header(jr_amqp *a, const amqp_frame_t *f)
{
    dstate *d = &a->d;
    const amqp_basic_properties_t *p = f->payload.properties.decoded;
    d->body_size = (size_t)f->payload.properties.body_size;
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) d->o_mid = meta_str(a, p->message_id);
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) d->o_ctype = meta_str(a, p->content_type);
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) copy_headers(a, &p->headers);
    if (d->body_size == 0) dispatch(a);
    else jr_buf_reserve(&d->body, d->body_size);
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
    if (ch != CH_DECL || rc != AMQP_STATUS_OK || !o || !o->sent || o->kind != OP_DECL) {
        conn_fail(a, "the broker closed channel %u: %s", ch, text);
        return;
    }
    /* a refused declaration: forget it, reopen the channel, go on */
    o->kind = OP_REOPEN, o->sent = 0;
    decl *d = o->d;
    o->d = NULL;
    uint64_t gen = a->gen;
    decl_answer(a, d, JR_AMQP_EREFUSED, text);
    if (!a->closing && a->gen == gen) ops_kick(a);
}

static void on_method(jr_amqp *a, const amqp_frame_t *f)
{
    amqp_method_number_t id = f->payload.method.id;
    void *m = f->payload.method.decoded;
    amqp_channel_t ch = f->channel;
    if (id == AMQP_BASIC_DELIVER_METHOD) return on_deliver(a, m);
    if (id == AMQP_BASIC_ACK_METHOD && ch == CH_PUB) {
        amqp_basic_ack_t *ack = m;
        return on_confirm(a, ack->delivery_tag, ack->multiple, JR_AMQP_OK);
    }
    if (id == AMQP_BASIC_NACK_METHOD && ch == CH_PUB) {
        amqp_basic_nack_t *nack = m;
        return on_confirm(a, nack->delivery_tag, nack->multiple, JR_AMQP_ENACKED);
    }
    if (id == AMQP_CHANNEL_CLOSE_METHOD) return on_channel_close(a, ch, m);
    if (id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *c = m;
        char text[256];
        close_text(c->reply_text, c->reply_code, text, sizeof text);
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(a->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return conn_fail(a, "the broker closed the connection: %s", text);
    }
    if (id == AMQP_CONNECTION_BLOCKED_METHOD || id == AMQP_CONNECTION_UNBLOCKED_METHOD) return;
    op *o = a->ops;
    if (!o || !o->sent || op_reply(o) != id) {
        conn_fail(a, "unexpected method 0x%08x on channel %u", (unsigned)id, ch);
        return;
    }
    a->ops = o->next;
    uint64_t gen = a->gen;
    if (o->kind == OP_DECL) decl_answer(a, o->d, JR_AMQP_OK, NULL);
    free(o);
    if (!a->closing && a->gen == gen) ops_kick(a);
}

static void on_frame(jr_amqp *a, const amqp_frame_t *f)
{
    switch (f->frame_type) {
    case AMQP_FRAME_METHOD: on_method(a, f); break;
    case AMQP_FRAME_HEADER:
        if (a->d.active && a->d.body_size == (size_t)-1) on_header(a, f);
        break;
    case AMQP_FRAME_BODY:
        if (!a->d.active || a->d.body_size == (size_t)-1) break;
        jr_buf_append(&a->d.body, f->payload.body_fragment.bytes, f->payload.body_fragment.len);
        if (a->d.body.len >= a->d.body_size) dispatch(a);
        break;
    default: break; /* heartbeats: last_recv is enough */
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    jr_amqp *a = h->data;
    if (status < 0) {
        conn_fail(a, "socket: %s", uv_strerror(status));
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
            conn_fail(a, "reading from the broker: %s", amqp_error_string2(rc));
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

static int rpc_ok(amqp_connection_state_t c, const char *what, char *err, size_t n)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return 1;
    int k = snprintf(err, n, "%s: ", what);
    reply_text(r, err + k, n - (size_t)k);
    return 0;
}

/* On the thread pool: the blocking part (a touches only immutable fields). */
static void attempt_work(uv_work_t *req)
{
    attempt *t = req->data;
    jr_amqp *a = t->a;
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
    if (!s) {
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
        amqp_destroy_connection(c);
        return;
    }
    amqp_rpc_reply_t r = amqp_login(c, a->url.vhost, 0, 131072, (int)a->o.heartbeat_s, AMQP_SASL_METHOD_PLAIN,
                                    a->url.user, a->url.password);
    int ok = 1;
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        int k = snprintf(t->err, sizeof t->err, "login as '%s' on vhost '%s': ", a->url.user, a->url.vhost);
        reply_text(r, t->err + k, sizeof t->err - (size_t)k);
        ok = 0;
    }
    for (amqp_channel_t ch = CH_PUB; ok && ch <= CH_DECL; ch++)
        ok = amqp_channel_open(c, ch) && rpc_ok(c, "opening a channel", t->err, sizeof t->err);
    if (ok) ok = amqp_confirm_select(c, CH_PUB) && rpc_ok(c, "confirm.select", t->err, sizeof t->err);
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
        conn_fail(a, "cannot watch the socket");
        return;
    }
    a->open++;
    a->poll->data = a;
    uv_poll_start(a->poll, UV_READABLE, on_readable);
    int bad = 0;
    for (decl *d = a->decls; d; d = d->next) bad |= op_push(a, OP_DECL, d, NULL);
    for (cons *k = a->conss; k; k = k->next) bad |= op_push(a, OP_QOS, NULL, k) | op_push(a, OP_CONSUME, NULL, k);
    bad |= op_push(a, OP_UP, NULL, NULL);
    if (bad) {
        conn_fail(a, "out of memory");
        return;
    }
    ops_kick(a);
    /* data may already sit in librabbitmq's buffers (read with the login) */
    if (a->conn && amqp_data_in_buffer(a->conn)) on_readable(a->poll, 0, UV_READABLE);
}

static void start_attempt(jr_amqp *a)
{
    attempt *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(a->last_err, sizeof a->last_err, "out of memory");
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
            conn_fail(a, "no heartbeat from the broker for %u s", 2 * a->hb_ms / 1000);
        } else if (now - a->last_send >= a->hb_ms / 2) {
            amqp_frame_t hb;
            memset(&hb, 0, sizeof hb);
            hb.frame_type = AMQP_FRAME_HEARTBEAT;
            hb.channel = 0;
            int rc = amqp_send_frame(a->conn, &hb);
            if (rc != AMQP_STATUS_OK) conn_fail(a, "sending a heartbeat: %s", amqp_error_string2(rc));
            else a->last_send = now;
        }
    }
    while (a->qhead && a->state != ST_UP && !a->closing && now - a->qhead->at >= a->o.max_pending_ms) {
        pubm *p = a->qhead;
        a->qhead = p->next;
        if (!a->qhead) a->qtail = NULL;
        a->qbytes -= p->len;
        a->st.pending--;
        pub_done(a, p, JR_AMQP_ETIMEOUT, "not sent: the broker was unreachable for max_pending_ms");
    }
}

/* ------------------------------------------------------------ public API */

jr_amqp *jr_amqp_new(uv_loop_t *loop, const char *url, const jr_amqp_options *opts,
                     const jr_amqp_callbacks *cb, char *err, size_t errlen)
{
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
        return NULL;
    }
    if (jr_amqp_url_parse(url, &a->url, err, errlen) != 0) {
        free(a);
        return NULL;
    }
    a->loop = loop;
    a->o = o;
    if (cb) a->cb = *cb;
    a->rng = uv_hrtime() ^ ((uint64_t)(uintptr_t)a << 16) ^ 0x9e3779b97f4a7c15ULL;
    jr_buf_init(&a->d.meta);
    jr_buf_init(&a->d.body);
    uv_timer_init(loop, &a->timer);
    uv_timer_init(loop, &a->tick);
    a->timer.data = a->tick.data = a;
    a->open = 2;
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
        /* tell the broker (it requeues our unacknowledged deliveries either way) */
        amqp_connection_close_t m = {AMQP_REPLY_SUCCESS, B("bye"), 0, 0};
        amqp_send_method(a->conn, 0, AMQP_CONNECTION_CLOSE_METHOD, &m);
    }
    detach(a);
    pubm *f = a->fhead, *q = a->qhead;
    a->fhead = a->ftail = a->qhead = a->qtail = NULL;
    fail_queue(a, &f, JR_AMQP_ECLOSED, "the client was closed");
    fail_queue(a, &q, JR_AMQP_ECLOSED, "the client was closed");
    while (a->decls) {
        decl *d = a->decls;
        a->decls = d->next;
        if (d->cb) d->cb(a, JR_AMQP_ECLOSED, "the client was closed", d->ud);
        decl_free(d);
    }
    uv_close((uv_handle_t *)&a->timer, close_timer_cb);
    uv_close((uv_handle_t *)&a->tick, close_timer_cb);
}

int jr_amqp_is_up(const jr_amqp *a) { return a && a->state == ST_UP && !a->closing; }

const char *jr_amqp_last_error(const jr_amqp *a) { return a ? a->last_err : ""; }

void jr_amqp_get_stats(const jr_amqp *a, jr_amqp_stats *out) { *out = a->st; }

static int add_decl(jr_amqp *a, decl *d, int bad)
{
    if (bad) {
        decl_free(d);
        return JR_AMQP_ENOMEM;
    }
    decl **pp = &a->decls;
    while (*pp) pp = &(*pp)->next;
    *pp = d;
    if (a->state == ST_ATTACHED || a->state == ST_UP) {
        if (op_push(a, OP_DECL, d, NULL) != 0) {
            decl_unlink(a, d);
            decl_free(d);
            return JR_AMQP_ENOMEM;
        }
        kick_from_call(a);
    }
    return 0;
}

static decl *new_decl(int kind, const char *s1, const char *s2, const char *s3, int *bad)
{
    decl *d = calloc(1, sizeof *d);
    if (!d) {
        *bad = 1;
        return NULL;
    }
    d->kind = kind;
    d->s1 = sdup(s1, bad), d->s2 = sdup(s2, bad), d->s3 = sdup(s3, bad);
    return d;
}

static int name_ok(const char *s, int empty_ok) { return s && (empty_ok || *s) && strlen(s) <= 255; }

int jr_amqp_declare_exchange(jr_amqp *a, const char *name, const char *type, jr_amqp_done_cb cb, void *ud)
{
    if (!a || a->closing) return JR_AMQP_ECLOSED;
    if (!name_ok(name, 0) || !type ||
        (strcmp(type, "direct") && strcmp(type, "topic") && strcmp(type, "fanout") && strcmp(type, "headers")))
        return JR_AMQP_EINVALID;
    int bad = 0;
    decl *d = new_decl(D_EXCHANGE, name, type, NULL, &bad);
    if (!d) return JR_AMQP_ENOMEM;
    d->cb = cb, d->ud = ud;
    return add_decl(a, d, bad);
}

int jr_amqp_declare_queue(jr_amqp *a, const char *name, const jr_amqp_queue_args *args, jr_amqp_done_cb cb, void *ud)
{
    if (!a || a->closing) return JR_AMQP_ECLOSED;
    if (!name_ok(name, 0)) return JR_AMQP_EINVALID;
    int bad = 0;
    decl *d = new_decl(D_QUEUE, name, NULL, NULL, &bad);
    if (!d) return JR_AMQP_ENOMEM;
    if (args) {
        d->dlx = sdup(args->dead_letter_exchange, &bad);
        d->dlrk = sdup(args->dead_letter_routing_key, &bad);
        d->qtype = sdup(args->queue_type, &bad);
        d->ttl = args->message_ttl_ms;
    }
    d->cb = cb, d->ud = ud;
    return add_decl(a, d, bad);
}

int jr_amqp_bind(jr_amqp *a, const char *queue, const char *exchange, const char *routing_key,
                 jr_amqp_done_cb cb, void *ud)
{
    if (!a || a->closing) return JR_AMQP_ECLOSED;
    if (!name_ok(queue, 0) || !name_ok(exchange, 0) || !name_ok(routing_key, 1)) return JR_AMQP_EINVALID;
    int bad = 0;
    decl *d = new_decl(D_BIND, queue, exchange, routing_key, &bad);
    if (!d) return JR_AMQP_ENOMEM;
    d->cb = cb, d->ud = ud;
    return add_decl(a, d, bad);
}

static size_t opt_len(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *put_str(char **w, const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*w, s, n);
    const char *r = *w;
    *w += n;
    return r;
}

int jr_amqp_publish(jr_amqp *a, const char *exchange, const char *routing_key, const void *body,
                    size_t len, const jr_amqp_props *props, jr_amqp_done_cb cb, void *ud)
{
    if (!a || a->closing) return JR_AMQP_ECLOSED;
    jr_amqp_props none = {0};
    if (!props) props = &none;
    if (!exchange || !name_ok(routing_key, 1) || strlen(exchange) > 255 || (len && !body) ||
        (props->nheaders && !props->headers))
        return JR_AMQP_EINVALID;
    size_t total = sizeof(pubm) + props->nheaders * sizeof(jr_amqp_header) + opt_len(exchange) +
                   opt_len(routing_key) + opt_len(props->message_id) + opt_len(props->content_type) + len;
    for (size_t i = 0; i < props->nheaders; i++) {
        if (!props->headers[i].key || (props->headers[i].vlen && !props->headers[i].value)) return JR_AMQP_EINVALID;
        total += opt_len(props->headers[i].key) + props->headers[i].vlen;
    }
    int sending = a->state == ST_UP && !a->ops && !a->qhead;
    if (!sending && a->qbytes + len > a->o.max_pending_bytes && a->qhead) return JR_AMQP_EBUSY;
    pubm *p = malloc(total);
    if (!p) return JR_AMQP_ENOMEM;
    memset(p, 0, sizeof *p);
    p->cb = cb, p->ud = ud, p->len = len, p->nh = props->nheaders;
    p->at = uv_now(a->loop);
    p->h = (jr_amqp_header *)(p + 1);
    char *w = (char *)(p->h + p->nh);
    p->exchange = put_str(&w, exchange);
    p->rk = put_str(&w, routing_key);
    p->mid = put_str(&w, props->message_id);
    p->ctype = put_str(&w, props->content_type);
    for (size_t i = 0; i < p->nh; i++) {
        p->h[i].key = put_str(&w, props->headers[i].key);
        p->h[i].vlen = props->headers[i].vlen;
        if (p->h[i].vlen) memcpy(w, props->headers[i].value, p->h[i].vlen);
        p->h[i].value = w;
        w += p->h[i].vlen;
    }
    if (len) memcpy(w, body, len);
    p->body = w;
    if (!sending) {
        if (a->qtail) a->qtail->next = p;
        else a->qhead = p;
        a->qtail = p;
        a->qbytes += len;
        a->st.pending++;
        return 0;
    }
    int rc = send_inflight(a, p);
    if (rc != AMQP_STATUS_OK) fail_soon(a, rc, "publishing");
    else a->last_send = uv_now(a->loop);
    return 0;
}

int jr_amqp_consume(jr_amqp *a, const char *queue, unsigned prefetch, jr_amqp_delivery_cb cb, void *ud)
{
    if (!a || a->closing) return JR_AMQP_ECLOSED;
    if (!name_ok(queue, 0) || prefetch < 1 || prefetch > 65535 || !cb) return JR_AMQP_EINVALID;
    cons *c = calloc(1, sizeof *c);
    if (!c || !(c->queue = strdup(queue))) {
        free(c);
        return JR_AMQP_ENOMEM;
    }
    c->id = ++a->next_cons;
    c->prefetch = prefetch, c->cb = cb, c->ud = ud;
    snprintf(c->tag, sizeof c->tag, "jr-%d", c->id);
    cons **pp = &a->conss;
    while (*pp) pp = &(*pp)->next;
    *pp = c;
    if (a->state == ST_ATTACHED || a->state == ST_UP) {
        if (op_push(a, OP_QOS, NULL, c) != 0 || op_push(a, OP_CONSUME, NULL, c) != 0) {
            /* the consumer stays remembered: the next connection resumes it */
            fail_soon(a, AMQP_STATUS_NO_MEMORY, "consuming");
            return c->id;
        }
        kick_from_call(a);
    }
    return c->id;
}

static int settle(jr_amqp *a, uint64_t tag, amqp_method_number_t id, int requeue)
{
    if (!a || a->closing) return JR_AMQP_ECLOSED;
    uint64_t gen = tag >> TAG_BITS, t = tag & TAG_MASK;
    if (gen == 0 || gen > a->gen || t == 0) return JR_AMQP_EINVALID;
    if (gen != a->gen || !a->conn) return JR_AMQP_EDISCONNECTED;
    int rc;
    if (id == AMQP_BASIC_ACK_METHOD) {
        amqp_basic_ack_t m = {t, 0};
        rc = amqp_send_method(a->conn, CH_CONS, id, &m);
    } else if (id == AMQP_BASIC_NACK_METHOD) {
        amqp_basic_nack_t m = {t, 0, requeue ? 1 : 0};
        rc = amqp_send_method(a->conn, CH_CONS, id, &m);
    } else {
        amqp_basic_reject_t m = {t, requeue ? 1 : 0};
        rc = amqp_send_method(a->conn, CH_CONS, id, &m);
    }
    if (rc != AMQP_STATUS_OK) {
        fail_soon(a, rc, "acknowledging");
        return JR_AMQP_EDISCONNECTED;
    }
    a->last_send = uv_now(a->loop);
    return 0;
}

int jr_amqp_ack(jr_amqp *a, uint64_t tag) { return settle(a, tag, AMQP_BASIC_ACK_METHOD, 0); }
int jr_amqp_nack(jr_amqp *a, uint64_t tag, int requeue) { return settle(a, tag, AMQP_BASIC_NACK_METHOD, requeue); }
int jr_amqp_reject(jr_amqp *a, uint64_t tag, int requeue) { return settle(a, tag, AMQP_BASIC_REJECT_METHOD, requeue); }
