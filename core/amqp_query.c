/* amqp_query.c - one-shot queries (see amqp_client.h, "Queries"):
 * queue_info (queue.declare passive), exchange_exists (exchange.declare
 * passive), purge (queue.purge) and get (basic.get). They ride the ops FIFO
 * like the declarations (one synchronous method on the wire at a time, its
 * reply completes it) but are not remembered: a drop answers them
 * EDISCONNECTED. The broker answers a missing queue or exchange by closing
 * the channel that asked (404): they ask on the declarations channel, which
 * amqp_client.c reopens, so the publishing and consuming channels never see
 * it. basic.get must run on the consumers' channel (its delivery tag is
 * settled there with the consumers' acks), so it checks the queue first
 * with a passive declare on the declarations channel. */
#include "amqp_int.h"

static void end_query(jr_amqp *a, qry *q, int status, const char *why, uint32_t n1, uint32_t n2,
                      const jr_amqp_delivery *d)
{
    if (status != JR_AMQP_OK) n1 = n2 = 0, d = NULL;
    switch (q->kind) {
    case Q_EXCHANGE:
        if (q->done) q->done(a, status, why, q->ud);
        break;
    case Q_GET:
        if (q->get) q->get(a, status, why, d, q->ud);
        break;
    default:
        if (q->count) q->count(a, status, why, n1, n2, q->ud);
        break;
    }
    free(q->name);
    free(q);
}

int jr_amqp_query_on_decl(const qry *q) { return q->kind != Q_GET || q->step == 0; }

int jr_amqp_query_send(jr_amqp *a, const qry *q)
{
    if (jr_amqp_out_flush(a) != 0) return AMQP_STATUS_SOCKET_ERROR; /* what was made before it goes first */
    if (q->kind == Q_EXCHANGE) {
        amqp_exchange_declare_t m = {0, B(q->name), B(""), 1, 0, 0, 0, 0, amqp_empty_table};
        return amqp_send_method(a->conn, CH_DECL, AMQP_EXCHANGE_DECLARE_METHOD, &m);
    }
    if (q->kind == Q_PURGE) {
        amqp_queue_purge_t m = {0, B(q->name), 0};
        return amqp_send_method(a->conn, CH_DECL, AMQP_QUEUE_PURGE_METHOD, &m);
    }
    if (q->kind == Q_GET && q->step == 1) {
        amqp_basic_get_t m = {0, B(q->name), 0}; /* manual acknowledgement */
        return amqp_send_method(a->conn, CH_CONS, AMQP_BASIC_GET_METHOD, &m);
    }
    amqp_queue_declare_t m = {0, B(q->name), 1, 0, 0, 0, 0, amqp_empty_table};
    return amqp_send_method(a->conn, CH_DECL, AMQP_QUEUE_DECLARE_METHOD, &m);
}

int jr_amqp_query_expects(const qry *q, amqp_method_number_t id)
{
    switch (q->kind) {
    case Q_EXCHANGE: return id == AMQP_EXCHANGE_DECLARE_OK_METHOD;
    case Q_PURGE: return id == AMQP_QUEUE_PURGE_OK_METHOD;
    case Q_GET:
        if (q->step == 1) return id == AMQP_BASIC_GET_OK_METHOD || id == AMQP_BASIC_GET_EMPTY_METHOD;
        if (q->step == 2) return 0; /* its content frames come, not a method */
        return id == AMQP_QUEUE_DECLARE_OK_METHOD; /* step 0: the passive declare */
    default: return id == AMQP_QUEUE_DECLARE_OK_METHOD;
    }
}

/* Pop the head op (its query answered): the next op goes on the wire after
 * the callback, unless it freed the client or the connection dropped. */
static qry *pop_head(jr_amqp *a)
{
    op *o = a->ops;
    qry *q = o->q;
    a->ops = o->next;
    free(o);
    return q;
}

static void kick_after(jr_amqp *a, uint64_t gen)
{
    if (!a->closing && a->gen == gen) jr_amqp_ops_kick(a);
}

void jr_amqp_query_reply(jr_amqp *a, amqp_method_number_t id, void *m)
{
    op *o = a->ops;
    qry *q = o->q;
    uint64_t gen = a->gen;
    if (q->kind == Q_GET && q->step == 0) {
        /* the queue exists: now the message, on the consumers' channel */
        q->step = 1;
        int rc = jr_amqp_query_send(a, q);
        if (rc != AMQP_STATUS_OK) jr_amqp_conn_fail(a, "basic.get: %s", amqp_error_string2(rc));
        else a->last_send = uv_now(a->loop);
        return;
    }
    if (id == AMQP_BASIC_GET_OK_METHOD) {
        q->step = 2;
        jr_amqp_on_get_ok(a, m); /* jr_amqp_query_got completes it */
        return;
    }
    q = pop_head(a);
    if (id == AMQP_QUEUE_DECLARE_OK_METHOD) {
        const amqp_queue_declare_ok_t *r = m;
        end_query(a, q, JR_AMQP_OK, NULL, r->message_count, r->consumer_count, NULL);
    } else if (id == AMQP_QUEUE_PURGE_OK_METHOD) {
        const amqp_queue_purge_ok_t *r = m;
        end_query(a, q, JR_AMQP_OK, NULL, r->message_count, 0, NULL);
    } else { /* exchange.declare-ok, basic.get-empty */
        end_query(a, q, JR_AMQP_OK, NULL, 0, 0, NULL);
    }
    kick_after(a, gen);
}

void jr_amqp_query_got(jr_amqp *a, const jr_amqp_delivery *d)
{
    op *o = a->ops;
    if (!o || o->kind != OP_QUERY || o->q->kind != Q_GET || o->q->step != 2) return;
    uint64_t gen = a->gen;
    end_query(a, pop_head(a), JR_AMQP_OK, NULL, 0, 0, d);
    kick_after(a, gen);
}

void jr_amqp_query_refused(jr_amqp *a, op *o, int code, const char *why)
{
    qry *q = o->q;
    o->q = NULL;
    o->kind = OP_REOPEN, o->sent = 0;
    end_query(a, q, code == AMQP_NOT_FOUND ? JR_AMQP_ENOTFOUND : JR_AMQP_EREFUSED, why, 0, 0, NULL);
}

void jr_amqp_end_queries(jr_amqp *a, int status, const char *why)
{
    /* one at a time from a->qdead: a callback may free the client, and
     * jr_amqp_free then ends the rest with ECLOSED before it returns */
    while (a->qdead && !(status != JR_AMQP_ECLOSED && a->closing)) {
        qry *q = a->qdead;
        a->qdead = q->next;
        end_query(a, q, status, why, 0, 0, NULL);
    }
}

static int ask(jr_amqp *a, int kind, const char *name, jr_amqp_done_cb done, jr_amqp_count_cb count,
               jr_amqp_get_cb get, void *ud)
{
    if (!a || a->closing) return JR_AMQP_ECLOSED;
    if (!name_ok(name, 0)) return JR_AMQP_EINVALID;
    if (a->state != ST_ATTACHED && a->state != ST_UP) return JR_AMQP_EDISCONNECTED;
    qry *q = calloc(1, sizeof *q);
    if (!q) return JR_AMQP_ENOMEM;
    q->kind = kind;
    q->done = done, q->count = count, q->get = get, q->ud = ud;
    q->name = strdup(name);
    op *o = q->name ? calloc(1, sizeof *o) : NULL;
    if (!o) {
        free(q->name);
        free(q);
        return JR_AMQP_ENOMEM;
    }
    o->kind = OP_QUERY, o->q = q;
    op **pp = &a->ops;
    while (*pp) pp = &(*pp)->next;
    *pp = o;
    jr_amqp_ops_kick_from_call(a);
    return 0;
}

int jr_amqp_queue_info(jr_amqp *a, const char *queue, jr_amqp_count_cb cb, void *ud)
{
    return ask(a, Q_QUEUE, queue, NULL, cb, NULL, ud);
}

int jr_amqp_exchange_exists(jr_amqp *a, const char *exchange, jr_amqp_done_cb cb, void *ud)
{
    return ask(a, Q_EXCHANGE, exchange, cb, NULL, NULL, ud);
}

int jr_amqp_purge(jr_amqp *a, const char *queue, jr_amqp_count_cb cb, void *ud)
{
    return ask(a, Q_PURGE, queue, NULL, cb, NULL, ud);
}

int jr_amqp_get(jr_amqp *a, const char *queue, jr_amqp_get_cb cb, void *ud)
{
    return ask(a, Q_GET, queue, NULL, NULL, cb, ud);
}
