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
void jr_amqp_flush_queue(jr_amqp *a)
{
    while (a->qhead && a->state == ST_UP && !a->ops && !a->closing) {
        pubm *p = a->qhead;
        a->qhead = p->next;
        if (!a->qhead) a->qtail = NULL;
        a->qbytes -= p->len;
        a->st.pending--;
        int rc = send_inflight(a, p);
        if (rc != AMQP_STATUS_OK) {
            jr_amqp_conn_fail(a, "publishing: %s", amqp_error_string2(rc));
            return;
        }
    }
    a->last_send = uv_now(a->loop);
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
    if (rc != AMQP_STATUS_OK) jr_amqp_fail_soon(a, rc, "publishing");
    else a->last_send = uv_now(a->loop);
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
