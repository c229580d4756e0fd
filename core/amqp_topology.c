/* amqp_topology.c - what every new connection sets up again: declarations
 * (exchanges, queues, bindings) and consumers (basic.qos + basic.consume),
 * through the ops FIFO (see amqp_client.c's header comment); and the
 * cancelling of consumers (basic.cancel). */
#include "amqp_int.h"

static int send_op(jr_amqp *a, struct op *o);

/* Put the head op on the wire from inside an API call: only a send, so no
 * callback runs inside the call; a failed send is reported from the loop. */
void jr_amqp_ops_kick_from_call(jr_amqp *a)
{
    op *o = a->ops;
    if (!a->conn || !o || o->sent || o->kind == OP_UP) return;
    int rc = send_op(a, o);
    if (rc != AMQP_STATUS_OK) jr_amqp_fail_soon(a, rc, "sending a declaration");
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
    /* the publishes and acks made before it go first (amqp_out.c) */
    if (jr_amqp_out_flush(a) != 0) return AMQP_STATUS_SOCKET_ERROR;
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
    if (o->kind == OP_CANCEL) {
        amqp_basic_cancel_t m = {B(o->c->tag), 0};
        return amqp_send_method(a->conn, CH_CONS, AMQP_BASIC_CANCEL_METHOD, &m);
    }
    if (o->kind == OP_QUERY) return jr_amqp_query_send(a, o->q);
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

int jr_amqp_op_expects(const op *o, amqp_method_number_t id)
{
    switch (o->kind) {
    case OP_REOPEN: return id == AMQP_CHANNEL_OPEN_OK_METHOD;
    case OP_QOS: return id == AMQP_BASIC_QOS_OK_METHOD;
    case OP_CONSUME: return id == AMQP_BASIC_CONSUME_OK_METHOD;
    case OP_CANCEL: return id == AMQP_BASIC_CANCEL_OK_METHOD;
    case OP_QUERY: return jr_amqp_query_expects(o->q, id);
    default:
        return id == (o->d->kind == D_EXCHANGE ? AMQP_EXCHANGE_DECLARE_OK_METHOD
                      : o->d->kind == D_QUEUE  ? AMQP_QUEUE_DECLARE_OK_METHOD
                                               : AMQP_QUEUE_BIND_OK_METHOD);
    }
}

int jr_amqp_op_push(jr_amqp *a, int kind, decl *d, cons *c)
{
    op *o = calloc(1, sizeof *o), **pp = &a->ops;
    if (!o) return -1;
    o->kind = kind, o->d = d, o->c = c;
    while (*pp) pp = &(*pp)->next;
    *pp = o;
    return 0;
}

/* Send the head op if it is not on the wire; an OP_UP head completes at once. */
void jr_amqp_ops_kick(jr_amqp *a)
{
    uint64_t gen = a->gen;
    while (a->ops && !a->ops->sent && !a->closing && a->gen == gen && a->conn) {
        op *o = a->ops;
        if (o->kind == OP_UP) {
            a->ops = o->next;
            free(o);
            jr_amqp_become_up(a);
            continue;
        }
        int rc = send_op(a, o);
        if (rc != AMQP_STATUS_OK) {
            jr_amqp_conn_fail(a, "sending a declaration: %s", amqp_error_string2(rc));
            return;
        }
        o->sent = 1;
        a->last_send = uv_now(a->loop);
    }
    if (!a->ops && !a->closing && a->gen == gen) jr_amqp_flush_queue(a);
}

static void decl_unlink(jr_amqp *a, decl *d)
{
    for (decl **pp = &a->decls; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            return;
        }
}

void jr_amqp_decl_free(decl *d)
{
    free(d->s1), free(d->s2), free(d->s3), free(d->dlx), free(d->dlrk), free(d->qtype);
    free(d);
}

void jr_amqp_decl_answer(jr_amqp *a, decl *d, int status, const char *why)
{
    jr_amqp_done_cb cb = d->cb;
    void *ud = d->ud;
    d->cb = NULL;
    if (status != JR_AMQP_OK) {
        decl_unlink(a, d);
        jr_amqp_decl_free(d);
    }
    if (cb) cb(a, status, why, ud);
}

static int add_decl(jr_amqp *a, decl *d, int bad)
{
    if (bad) {
        jr_amqp_decl_free(d);
        return JR_AMQP_ENOMEM;
    }
    decl **pp = &a->decls;
    while (*pp) pp = &(*pp)->next;
    *pp = d;
    if (a->state == ST_ATTACHED || a->state == ST_UP) {
        if (jr_amqp_op_push(a, OP_DECL, d, NULL) != 0) {
            decl_unlink(a, d);
            jr_amqp_decl_free(d);
            return JR_AMQP_ENOMEM;
        }
        jr_amqp_ops_kick_from_call(a);
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
        if (jr_amqp_op_push(a, OP_QOS, NULL, c) != 0 || jr_amqp_op_push(a, OP_CONSUME, NULL, c) != 0) {
            /* the consumer stays remembered: the next connection resumes it */
            jr_amqp_fail_soon(a, AMQP_STATUS_NO_MEMORY, "consuming");
            return c->id;
        }
        jr_amqp_ops_kick_from_call(a);
    }
    return c->id;
}

static void cons_unlink(cons **head, cons *c)
{
    for (cons **pp = head; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

static void cons_free(cons *c)
{
    free(c->queue);
    free(c);
}

/* The broker's cancel-ok: no delivery for c comes any more. */
void jr_amqp_cancel_ok(jr_amqp *a, op *o)
{
    cons *c = o->c;
    cons_unlink(&a->conss, c);
    jr_amqp_done_cb cb = c->cancel_cb;
    void *ud = c->cancel_ud;
    cons_free(c);
    if (cb) cb(a, JR_AMQP_OK, NULL, ud);
}

void jr_amqp_end_cancels(jr_amqp *a, int status)
{
    /* one at a time from the client's lists: a callback may free the
     * client, and jr_amqp_free then ends the rest with ECLOSED */
    for (;;) {
        if (status != JR_AMQP_ECLOSED && a->closing) return;
        cons *c = a->cdone;
        if (c) {
            a->cdone = c->next;
        } else {
            for (c = a->conss; c && !c->cancelling; c = c->next) {}
            if (!c) return;
            cons_unlink(&a->conss, c);
        }
        jr_amqp_done_cb cb = c->cancel_cb;
        void *ud = c->cancel_ud;
        cons_free(c);
        if (cb) cb(a, status, status == JR_AMQP_OK ? NULL : "the client was closed", ud);
    }
}

static void on_soon(uv_timer_t *t) { jr_amqp_end_cancels(t->data, JR_AMQP_OK); }

int jr_amqp_cancel(jr_amqp *a, int consumer_id, jr_amqp_done_cb cb, void *ud)
{
    if (!a || a->closing) return JR_AMQP_ECLOSED;
    cons *c = a->conss;
    while (c && c->id != consumer_id) c = c->next;
    if (!c || c->cancelling) return JR_AMQP_ENOTFOUND;
    if (a->state == ST_ATTACHED || a->state == ST_UP) {
        /* after its qos and consume if those are still in the FIFO */
        if (jr_amqp_op_push(a, OP_CANCEL, NULL, c) != 0) return JR_AMQP_ENOMEM;
        c->cancelling = 1, c->cancel_cb = cb, c->cancel_ud = ud;
        jr_amqp_ops_kick_from_call(a);
        return 0;
    }
    /* down: the broker has no such consumer; forgotten now, answered from the loop */
    cons_unlink(&a->conss, c);
    c->cancelling = 1, c->cancel_cb = cb, c->cancel_ud = ud;
    c->next = NULL;
    cons **pp = &a->cdone; /* answered in the order asked */
    while (*pp) pp = &(*pp)->next;
    *pp = c;
    uv_timer_start(&a->soon, on_soon, 0, 0);
    return 0;
}
