/* amqp_int.h - what the files of the AMQP client share (amqp_client.c: the
 * connection; amqp_topology.c: declarations and consumers, redone on every
 * connection; amqp_publish.c: publishes and confirms; amqp_deliver.c:
 * deliveries and their acknowledgements; amqp_query.c: one-shot queries,
 * queue_info, exchange_exists, purge, get; amqp_out.c: the output buffer
 * that publishes and acknowledgements are written through, once per loop
 * turn). Not a public header. */
#ifndef JR_AMQP_INT_H
#define JR_AMQP_INT_H

#include "amqp_client.h"
#include "amqp_url.h"
#include "buf.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ST_DOWN, ST_CONNECTING, ST_ATTACHED, ST_UP };
enum { CH_PUB = 1, CH_CONS = 2, CH_DECL = 3 };
enum { D_EXCHANGE, D_QUEUE, D_BIND };
enum { OP_DECL, OP_QOS, OP_CONSUME, OP_REOPEN, OP_UP, OP_QUERY, OP_CANCEL };
enum { Q_QUEUE, Q_EXCHANGE, Q_PURGE, Q_GET };

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
    int cancelling;  /* jr_amqp_cancel called: not resumed, answered at cancel-ok or a drop */
    jr_amqp_done_cb cancel_cb;
    void *cancel_ud;
} cons;

/* A one-shot query (amqp_query.c): answered once, never redone. */
typedef struct qry {
    struct qry *next; /* in a->qdead */
    int kind;         /* Q_* */
    int step;         /* Q_GET: 0 passive declare, 1 basic.get, 2 its message arriving */
    char *name;
    jr_amqp_done_cb done;   /* Q_EXCHANGE */
    jr_amqp_count_cb count; /* Q_QUEUE, Q_PURGE */
    jr_amqp_get_cb get;     /* Q_GET */
    void *ud;
} qry;

typedef struct op {
    struct op *next;
    int kind, sent;
    decl *d;
    cons *c;
    qry *q;
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
    int get; /* from basic.get-ok (the head op's query), not from a consumer */
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
    int kind; /* a failure's JR_AMQP_E* (jr_amqp_last_failure) */
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
    uv_timer_t soon;  /* answers decided inside a call (cdone), from the loop */
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
    qry *qdead;          /* queries whose connection dropped, their callbacks running */
    cons *cdone;         /* consumers cancelled while down, their callbacks due */
    pubm *qhead, *qtail; /* waiting unsent */
    size_t qbytes;
    pubm *fhead, *ftail; /* sent, awaiting confirms (seq order) */
    pubm *dying;         /* in flight at a drop, their callbacks running */
    uint64_t up_since;   /* uv_now when last up */
    dstate d;
    jr_buf out;         /* frames not written yet: acks, publishes (amqp_out.c) */
    uv_prepare_t flush; /* writes them before the loop next waits */
    jr_amqp_stats st;
    uint64_t rng;
    char last_err[256];
    int last_kind; /* what kind of failure last_err is (jr_amqp_last_failure) */
    char pending_err[256]; /* a failure found inside a call: reported from the timer */
};

static inline amqp_bytes_t B(const char *s) { return amqp_cstring_bytes(s ? s : ""); }

/* strdup that records a failure in *bad instead of returning it (NULL stays NULL). */
static inline char *sdup(const char *s, int *bad)
{
    if (!s) return NULL;
    char *o = strdup(s);
    if (!o) *bad = 1;
    return o;
}

/* An AMQP short string: 0..255 bytes (non-empty unless empty_ok). */
static inline int name_ok(const char *s, int empty_ok) { return s && (empty_ok || *s) && strlen(s) <= 255; }

static inline void jr_amqp_put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)(v & 0xff);
}

/* amqp_out.c: the output buffer, written once per loop turn. */
/* Write the frames waiting in a->out (0, or -1: the connection is failing,
 * the drop comes from the loop). Before anything that must follow them on
 * the wire; a drop discards them (their publishes are told EDISCONNECTED,
 * the acks' tags died with the connection). */
int jr_amqp_out_flush(jr_amqp *a);
void jr_amqp_on_flush(uv_prepare_t *h);
/* Room for n more bytes at the end of a->out, NULL when out of memory (the
 * caller writes its frame alone, after jr_amqp_out_flush). */
uint8_t *jr_amqp_out_room(jr_amqp *a, size_t n);
/* n bytes (whole frames) were written at jr_amqp_out_room: they go with
 * this loop turn's send(), or now when enough wait. 0, or -1 as flush. */
int jr_amqp_out_add(jr_amqp *a, size_t n);
/* A frame's header (type, channel, payload size) and end octet around a
 * payload of size bytes at the returned p + 7: FRAME_OVERHEAD bytes in all. */
enum { FRAME_OVERHEAD = 8 };
uint8_t *jr_amqp_frame_head(uint8_t *p, int type, uint16_t ch, size_t size);
/* Method m (id) on channel ch into a->out; max bounds its encoded
 * arguments. 0, or -1: the connection is failing (the drop comes from the
 * loop). */
int jr_amqp_out_method(jr_amqp *a, uint16_t ch, amqp_method_number_t id, void *m, size_t max);

/* amqp_client.c */
/* Drop the connection and schedule the next attempt (callbacks run from it:
 * only from loop callbacks). */
void jr_amqp_conn_fail(jr_amqp *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A send failed inside an API call: the drop happens from the loop. */
void jr_amqp_fail_soon(jr_amqp *a, int rc, const char *what);
void jr_amqp_become_up(jr_amqp *a);

/* amqp_topology.c */
int jr_amqp_op_push(jr_amqp *a, int kind, decl *d, cons *c);
void jr_amqp_ops_kick(jr_amqp *a);
/* kick from inside an API call: only sends, a failure is reported from the loop */
void jr_amqp_ops_kick_from_call(jr_amqp *a);
/* Is id the answer the (sent) head op o waits for? */
int jr_amqp_op_expects(const op *o, amqp_method_number_t id);
void jr_amqp_cancel_ok(jr_amqp *a, op *o);
/* At a drop (status OK: the broker forgets them) or jr_amqp_free (ECLOSED):
 * end the consumers being cancelled. */
void jr_amqp_end_cancels(jr_amqp *a, int status);
void jr_amqp_decl_answer(jr_amqp *a, decl *d, int status, const char *why);
void jr_amqp_decl_free(decl *d);

/* amqp_publish.c */
void jr_amqp_on_confirm(jr_amqp *a, uint64_t tag, int multiple, int status);
void jr_amqp_flush_queue(jr_amqp *a);
void jr_amqp_fail_pubs(jr_amqp *a, pubm **head, int status, const char *why);
void jr_amqp_expire_pending(jr_amqp *a, uint64_t now);

/* amqp_query.c */
int jr_amqp_query_send(jr_amqp *a, const qry *q);
int jr_amqp_query_expects(const qry *q, amqp_method_number_t id);
/* The head op's query answered by method id (m decoded): may call back. */
void jr_amqp_query_reply(jr_amqp *a, amqp_method_number_t id, void *m);
/* The head op's query on the declarations channel, closed by the broker
 * with code: answered, the op becomes the channel's reopening. */
void jr_amqp_query_refused(jr_amqp *a, op *o, int code, const char *why);
/* The head op's basic.get message is complete: pop it and call back. */
void jr_amqp_query_got(jr_amqp *a, const jr_amqp_delivery *d);
/* Answer the queries of a->qdead with status (EDISCONNECTED, ECLOSED). */
void jr_amqp_end_queries(jr_amqp *a, int status, const char *why);
/* Does the (sent) head op o talk on the declarations channel now? */
int jr_amqp_query_on_decl(const qry *q);

/* amqp_deliver.c */
void jr_amqp_on_deliver(jr_amqp *a, const amqp_basic_deliver_t *m);
void jr_amqp_on_get_ok(jr_amqp *a, const amqp_basic_get_ok_t *m);
void jr_amqp_on_header(jr_amqp *a, const amqp_frame_t *f);
void jr_amqp_on_body(jr_amqp *a, const amqp_frame_t *f);

#endif
