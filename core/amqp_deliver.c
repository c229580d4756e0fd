/* amqp_deliver.c - deliveries: assembled from their basic.deliver, content
 * header and body frames into copies (frames live in librabbitmq's pool
 * only until it is recycled), handed to the consumer's callback, and
 * settled by tag (ack, nack, reject). */
#include "amqp_int.h"

#include <inttypes.h>
#include <stdio.h>

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
        jr_amqp_conn_fail(a, "out of memory for a delivery");
        return;
    }
    const char *m = d->meta.data;
    cons *c = d->get ? NULL : cons_by_tag(a, m + d->o_ct);
    if (!c && !d->get) return; /* unknown consumer tag: the broker requeues it when we close */
    if (d->get && (!a->ops || a->ops->kind != OP_QUERY)) return; /* (get-ok is accepted only for a get at the head) */
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
        .queue = c ? c->queue : a->ops->q->name, /* a get's: the head op's query */
        .body = d->body.data ? d->body.data : "",
        .len = d->body.len,
        .message_id = d->o_mid != (size_t)-1 ? m + d->o_mid : NULL,
        .content_type = d->o_ctype != (size_t)-1 ? m + d->o_ctype : NULL,
        .headers = d->hv,
        .nheaders = d->nh,
    };
    a->st.deliveries++;
    if (c) c->cb(a, &dv, c->ud);
    else jr_amqp_query_got(a, &dv);
}

static void begin(jr_amqp *a, int get, uint64_t tag, int redelivered, amqp_bytes_t ex, amqp_bytes_t rk)
{
    dstate *d = &a->d;
    jr_buf_reset(&d->meta);
    jr_buf_reset(&d->body);
    d->active = 1;
    d->get = get;
    d->nh = 0;
    d->tag = tag & TAG_MASK;
    d->redelivered = redelivered;
    d->o_ex = meta_str(a, ex);
    d->o_rk = meta_str(a, rk);
    d->o_ct = d->o_mid = d->o_ctype = (size_t)-1;
    d->body_size = (size_t)-1; /* until the header frame */
}

void jr_amqp_on_deliver(jr_amqp *a, const amqp_basic_deliver_t *m)
{
    begin(a, 0, m->delivery_tag, m->redelivered, m->exchange, m->routing_key);
    a->d.o_ct = meta_str(a, m->consumer_tag);
}

/* basic.get-ok: the message comes like a delivery; the get's query gets it. */
void jr_amqp_on_get_ok(jr_amqp *a, const amqp_basic_get_ok_t *m)
{
    begin(a, 1, m->delivery_tag, m->redelivered, m->exchange, m->routing_key);
}

void jr_amqp_on_header(jr_amqp *a, const amqp_frame_t *f)
{
    dstate *d = &a->d;
    if (!d->active || d->body_size != (size_t)-1) return; /* not after a basic.deliver */
    const amqp_basic_properties_t *p = f->payload.properties.decoded;
    d->body_size = (size_t)f->payload.properties.body_size;
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) d->o_mid = meta_str(a, p->message_id);
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) d->o_ctype = meta_str(a, p->content_type);
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) copy_headers(a, &p->headers);
    if (d->body_size == 0) dispatch(a);
    else jr_buf_reserve(&d->body, d->body_size);
}

void jr_amqp_on_body(jr_amqp *a, const amqp_frame_t *f)
{
    dstate *d = &a->d;
    if (!d->active || d->body_size == (size_t)-1) return;
    jr_buf_append(&d->body, f->payload.body_fragment.bytes, f->payload.body_fragment.len);
    if (d->body.len >= d->body_size) dispatch(a);
}

/* ---- settling ----
 * An ack, nack or reject goes into the output buffer (amqp_out.c), written
 * with the other frames of this loop turn (and in their order) by one
 * send(). */

int jr_amqp_tag_live(const jr_amqp *a, uint64_t tag)
{
    return a && !a->closing && a->conn && (tag >> TAG_BITS) == a->gen;
}

static int settle(jr_amqp *a, uint64_t tag, amqp_method_number_t id, int requeue)
{
    if (!a || a->closing) return JR_AMQP_ECLOSED;
    uint64_t gen = tag >> TAG_BITS, t = tag & TAG_MASK;
    if (gen == 0 || gen > a->gen || t == 0) return JR_AMQP_EINVALID;
    if (gen != a->gen || !a->conn) return JR_AMQP_EDISCONNECTED;
    union {
        amqp_basic_ack_t ack;
        amqp_basic_nack_t nack;
        amqp_basic_reject_t reject;
    } m;
    if (id == AMQP_BASIC_ACK_METHOD) m.ack = (amqp_basic_ack_t){t, 0};
    else if (id == AMQP_BASIC_NACK_METHOD) m.nack = (amqp_basic_nack_t){t, 0, requeue ? 1 : 0};
    else m.reject = (amqp_basic_reject_t){t, requeue ? 1 : 0};
    /* arguments: a long long tag and one octet of bits */
    return jr_amqp_out_method(a, CH_CONS, id, &m, 9) == 0 ? 0 : JR_AMQP_EDISCONNECTED;
}

int jr_amqp_ack(jr_amqp *a, uint64_t tag) { return settle(a, tag, AMQP_BASIC_ACK_METHOD, 0); }
int jr_amqp_nack(jr_amqp *a, uint64_t tag, int requeue) { return settle(a, tag, AMQP_BASIC_NACK_METHOD, requeue); }
int jr_amqp_reject(jr_amqp *a, uint64_t tag, int requeue) { return settle(a, tag, AMQP_BASIC_REJECT_METHOD, requeue); }
