/* amqp_publish.c - publishes: the unsent queue, the in-flight list in
 * confirm order, and every publish's one callback (see amqp_client.h,
 * "Publishing"). */
#include "amqp_int.h"

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
void jr_amqp_on_confirm(jr_amqp *a, uint64_t tag, int multiple, int status)
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

/* A short string's encoded size (B() sends NULL as ""). */
static size_t shortstr_size(const char *s) { return 1 + (s ? strlen(s) : 0); }

/* The publish's three kinds of frames (AMQP 0-9-1, 2.3.5 and 4.2.6): the
 * basic.publish method frame; the content header frame: class (60),
 * weight (0), body size, then the property flags and list; the body in
 * frames of at most frame_max - 8 bytes (none for an empty body). Encoded
 * into a->out with librabbitmq's documented encoders (amqp_framing.h:
 * amqp_encode_method, amqp_encode_properties; they return the encoded
 * length), around frame headers of our own: what amqp_basic_publish
 * writes, in one buffer. PUB_* or an AMQP_STATUS error (negative). */
enum { PUB_SENT = 0, PUB_NO_ROOM = 1, PUB_FAILING = 2 };
static int encode_pub(jr_amqp *a, const pubm *p, amqp_basic_properties_t *props)
{
    int fmax = amqp_get_frame_max(a->conn);
    size_t chunk = fmax > FRAME_OVERHEAD ? (size_t)fmax - FRAME_OVERHEAD : p->len + 1; /* 0: no limit */
    size_t nbody = (p->len + chunk - 1) / chunk;
    size_t margs = 2 + shortstr_size(p->exchange) + shortstr_size(p->rk) + 1; /* ticket, names, bits */
    size_t pargs = 2 + 1;                                                     /* flags, delivery mode */
    if (p->ctype) pargs += shortstr_size(p->ctype);
    if (p->mid) pargs += shortstr_size(p->mid);
    if (p->nh) pargs += 4;
    for (size_t i = 0; i < p->nh; i++) pargs += shortstr_size(p->h[i].key) + 1 + 4 + p->h[i].vlen;
    size_t need = FRAME_OVERHEAD + 4 + margs + FRAME_OVERHEAD + 12 + pargs + nbody * FRAME_OVERHEAD + p->len;
    uint8_t *f = jr_amqp_out_room(a, need), *w = f;
    if (!f) return PUB_NO_ROOM;
    amqp_basic_publish_t m = {0, B(p->exchange), B(p->rk), 0, 0};
    int n = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &m, (amqp_bytes_t){margs, w + 7 + 4});
    if (n < 0) return n;
    jr_amqp_put_be(jr_amqp_frame_head(w, AMQP_FRAME_METHOD, CH_PUB, 4 + (size_t)n), AMQP_BASIC_PUBLISH_METHOD, 4);
    w += FRAME_OVERHEAD + 4 + (size_t)n;
    n = amqp_encode_properties(AMQP_BASIC_CLASS, props, (amqp_bytes_t){pargs, w + 7 + 12});
    if (n < 0) return n;
    uint8_t *h = jr_amqp_frame_head(w, AMQP_FRAME_HEADER, CH_PUB, 12 + (size_t)n);
    jr_amqp_put_be(h, AMQP_BASIC_CLASS, 2);
    jr_amqp_put_be(h + 2, 0, 2);
    jr_amqp_put_be(h + 4, p->len, 8);
    w += FRAME_OVERHEAD + 12 + (size_t)n;
    for (size_t off = 0, k; off < p->len; off += k) {
        k = p->len - off < chunk ? p->len - off : chunk;
        memcpy(jr_amqp_frame_head(w, AMQP_FRAME_BODY, CH_PUB, k), p->body + off, k);
        w += FRAME_OVERHEAD + k;
    }
    return jr_amqp_out_add(a, (size_t)(w - f)) == 0 ? PUB_SENT : PUB_FAILING; /* failing: the drop is scheduled */
}

/* 0, or -1: the connection is failing (the drop, from the loop, tells p
 * and the other unconfirmed publishes). */
static int send_pub(jr_amqp *a, pubm *p)
{
    amqp_table_entry_t one, *ent = p->nh > 1 ? calloc(p->nh, sizeof *ent) : &one;
    if (!ent) {
        jr_amqp_fail_soon(a, AMQP_STATUS_NO_MEMORY, "publishing");
        return -1;
    }
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
    int rc = encode_pub(a, p, &props), failing = rc == PUB_FAILING;
    if (rc == PUB_NO_ROOM) { /* no memory for the batch: this one alone, after the others */
        failing = jr_amqp_out_flush(a) != 0;
        if (!failing) {
            amqp_bytes_t body = {p->len, (void *)p->body};
            rc = amqp_basic_publish(a->conn, CH_PUB, B(p->exchange), B(p->rk), 0, 0, &props, body);
            if (rc == AMQP_STATUS_OK) a->last_send = uv_now(a->loop);
        }
    }
    if (ent != &one) free(ent);
    if (failing) return -1;
    if (rc != AMQP_STATUS_OK) {
        jr_amqp_fail_soon(a, rc, "publishing");
        return -1;
    }
    return 0;
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
void jr_amqp_flush_queue(jr_amqp *a)
{
    while (a->qhead && a->state == ST_UP && !a->ops && !a->closing) {
        pubm *p = a->qhead;
        a->qhead = p->next;
        if (!a->qhead) a->qtail = NULL;
        a->qbytes -= p->len;
        a->st.pending--;
        if (send_inflight(a, p) != 0) return;
    }
}

void jr_amqp_fail_pubs(jr_amqp *a, pubm **head, int status, const char *why)
{
    while (*head && !(status != JR_AMQP_ECLOSED && a->closing)) {
        pubm *p = *head;
        *head = p->next;
        pub_done(a, p, status, why);
    }
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
    /* names, message id, content type and header keys are AMQP short
     * strings: at most 255 bytes (the encoder would refuse the frame) */
    if (!exchange || !name_ok(routing_key, 1) || !name_ok(exchange, 1) || (len && !body) ||
        (props->nheaders && !props->headers) || (props->message_id && !name_ok(props->message_id, 1)) ||
        (props->content_type && !name_ok(props->content_type, 1)))
        return JR_AMQP_EINVALID;
    size_t total = sizeof(pubm) + props->nheaders * sizeof(jr_amqp_header) + opt_len(exchange) +
                   opt_len(routing_key) + opt_len(props->message_id) + opt_len(props->content_type) + len;
    for (size_t i = 0; i < props->nheaders; i++) {
        if (!name_ok(props->headers[i].key, 1) || (props->headers[i].vlen && !props->headers[i].value))
            return JR_AMQP_EINVALID;
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
    send_inflight(a, p); /* a failure is reported from the loop */
    return 0;
}

/* Publishes that waited unsent (the client not up) for max_pending_ms end
 * with ETIMEOUT: a caller is not kept waiting without bound. */
void jr_amqp_expire_pending(jr_amqp *a, uint64_t now)
{
    while (a->qhead && a->state != ST_UP && !a->closing && now - a->qhead->at >= a->o.max_pending_ms) {
        pubm *p = a->qhead;
        a->qhead = p->next;
        if (!a->qhead) a->qtail = NULL;
        a->qbytes -= p->len;
        a->st.pending--;
        pub_done(a, p, JR_AMQP_ETIMEOUT, "not sent: the broker was unreachable for max_pending_ms");
    }
}
