/* amqp_client.h - an AMQP 0-9-1 client (RabbitMQ) on our libuv loop: librabbitmq
 * 0.11's frame API driven by a uv_poll on its socket. No Lua here; bindings/
 * wraps it (the message bus's RabbitMQ backend). Not named amqp.h: core/ is
 * on the include path, and librabbitmq's own <amqp.h> must stay reachable.
 *
 *   jr_amqp_options o; jr_amqp_options_defaults(&o);
 *   jr_amqp_callbacks cb = { on_state, ud };
 *   jr_amqp *a = jr_amqp_new(loop, "amqp://guest:guest@127.0.0.1:5672/", &o, &cb, &status, err, sizeof err);
 *   jr_amqp_declare_exchange(a, "app", "topic", done, ud);
 *   jr_amqp_declare_queue(a, "app.task", NULL, done, ud);
 *   jr_amqp_bind(a, "app.task", "app", "task", done, ud);
 *   jr_amqp_publish(a, "app", "task", body, len, &props, on_confirm, ud);
 *   jr_amqp_consume(a, "app.task", 200, on_delivery, ud);   ... jr_amqp_ack(a, d->tag);
 *   jr_amqp_queue_info(a, "app.task", on_counts, ud);     (also exchange_exists, purge, get)
 *   jr_amqp_cancel(a, consumer_id, done, ud);
 *   jr_amqp_free(a);                                    (then keep running the loop)
 *
 * Connection. One TCP connection with three channels: 1 publishes in
 * confirm mode, 2 carries the consumers, 3 the declarations. Connecting
 * (TCP connect, AMQP handshake and login, opening the channels,
 * confirm.select) runs on libuv's thread pool with librabbitmq's blocking
 * calls, bounded by connect_timeout_ms, so the loop never waits for a slow
 * or unreachable broker; the connection belongs to the loop thread only once
 * that is done. From then on every frame is read on the loop when the socket
 * is readable (a zero timeout: never waiting) and every write is a
 * non-blocking send; a write waits only when the kernel's send buffer is
 * full (the broker not reading, e.g. under its memory alarm). Publishes
 * and acknowledgements made in one turn of the loop are written together,
 * in call order, by one send() before the loop next waits.
 *
 * Heartbeats: heartbeat_s is proposed to the broker (the smaller non-zero
 * one wins); we send a heartbeat frame every half interval and drop the
 * connection when nothing has arrived for two intervals (a dead peer, a
 * half-open TCP connection).
 *
 * Reconnection. After any failure (connect, login, socket error or EOF,
 * heartbeat timeout, connection.close or an unexpected channel.close from
 * the broker) the connection is dropped and a new attempt starts after an
 * exponential backoff with jitter: a delay from [d/2, d], d =
 * reconnect_initial_ms doubling per failed attempt up to reconnect_max_ms;
 * the first attempt after a drop is immediate when the connection had been
 * up for reconnect_max_ms or more (a broker that drops every connection as
 * soon as it is up gets the backoff). On every new connection the
 * client re-declares what was declared (in order) and resumes every
 * consumer, then it is "up" (on_state) and sends the publishes waiting.
 *
 * Publishing (at-least-once). Messages are persistent (delivery mode 2) and
 * each has a confirm callback that runs exactly once:
 *   - JR_AMQP_OK: the broker confirmed (basic.ack, also multiple=true): the
 *     message is routed to its queues and, for durable queues, written;
 *   - JR_AMQP_ENACKED: the broker nacked it (basic.nack): not stored;
 *   - JR_AMQP_EDISCONNECTED: it was sent but the connection dropped before
 *     the confirm: it may or may not have been stored. The caller decides to
 *     publish again (duplicates are then possible: consumers dedupe by
 *     message id); it is never silently lost;
 *   - JR_AMQP_ETIMEOUT: it waited unsent (the client was not up) for
 *     max_pending_ms;
 *   - JR_AMQP_ECLOSED: jr_amqp_free was called before any of the above.
 * While not up, publishes wait unsent, in order, up to max_pending_bytes
 * (body bytes); beyond that jr_amqp_publish fails at once with EBUSY. A
 * publish to an exchange that does not exist makes RabbitMQ close the
 * publishing channel: the client reconnects, and every unconfirmed publish
 * gets EDISCONNECTED with the broker's reason.
 *
 * Declarations are durable and remembered: declared now when up (else when
 * the connection is next up), and again after every reconnect. Their
 * callback runs once, with the broker's first answer: JR_AMQP_OK, or
 * JR_AMQP_EREFUSED with the broker's reason (e.g. PRECONDITION_FAILED for a
 * queue that exists with other arguments), and a refused declaration is
 * forgotten. Publishes called after a declaration are sent after it is
 * answered, so a message never reaches the broker before its exchange.
 *
 * Consuming. Each consumer has its own prefetch (basic.qos before its
 * basic.consume): at most that many unacknowledged deliveries at a time.
 * Acknowledge with jr_amqp_ack / nack / reject using the delivery's tag. Tags
 * carry the connection they came from: after a reconnect the broker has
 * requeued every unacknowledged delivery of the old connection (they come
 * again with redelivered = 1), and acknowledging an old tag does nothing and
 * returns EDISCONNECTED. Acknowledging one tag twice is a protocol error
 * (RabbitMQ closes the channel; the client reconnects).
 *
 * Queries (queue_info, exchange_exists, purge, get) and jr_amqp_cancel: see
 * their declarations below.
 *
 * Callbacks run on the loop thread, never from inside the call that caused
 * them (jr_amqp_free is the documented exception). jr_amqp_free may be
 * called from any callback. Not thread-safe: one client per loop. */
#ifndef JR_AMQP_CLIENT_H
#define JR_AMQP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct jr_amqp jr_amqp;

/* Result codes (negative) of the calls and callbacks. */
enum {
    JR_AMQP_OK = 0,
    JR_AMQP_ETIMEOUT = -1,      /* a publish waited unsent for max_pending_ms */
    JR_AMQP_EDISCONNECTED = -2, /* the connection dropped first (or an old delivery tag) */
    JR_AMQP_ECLOSED = -3,       /* jr_amqp_free was called */
    JR_AMQP_EINVALID = -4,      /* bad arguments */
    JR_AMQP_ENOMEM = -5,
    JR_AMQP_ENACKED = -6,       /* the broker nacked a publish */
    JR_AMQP_EBUSY = -7,         /* the unsent-publish queue is full */
    JR_AMQP_EREFUSED = -8,      /* the broker refused a declaration */
    JR_AMQP_ENOTFOUND = -9      /* no such queue / exchange (the broker's 404), or consumer */
};
/* "ok", "timeout", "disconnected", "closed", "invalid", "nomem", "nacked",
 * "busy", "refused", "not_found": the stable identifiers of the error
 * triples. */
const char *jr_amqp_code_name(int code);

typedef struct {
    unsigned heartbeat_s;          /* proposed heartbeat, 0 = none; default 10 */
    unsigned connect_timeout_ms;   /* TCP + handshake + channels; default 5000 */
    unsigned reconnect_initial_ms; /* default 100 */
    unsigned reconnect_max_ms;     /* default 5000 */
    size_t max_pending_bytes;      /* unsent publishes while not up; default 16 MiB */
    unsigned max_pending_ms;       /* how long one waits unsent; default 10000 */
} jr_amqp_options;
void jr_amqp_options_defaults(jr_amqp_options *o);

typedef struct {
    /* up = 1: connected, declarations redone and consumers resumed (why
     * NULL). up = 0: the client went down or the first attempt failed; why
     * says what happened (never the password). Called on transitions only
     * (later failed attempts of one outage are silent; jr_amqp_last_error
     * has the latest reason). May be NULL. */
    void (*on_state)(int up, const char *why, void *ud);
    void *ud;
} jr_amqp_callbacks;

/* A header: a string value (any bytes, vlen of them). Received headers of
 * other AMQP types come as text: integers in decimal, booleans as
 * "true"/"false"; tables and arrays (x-death) are left out. */
typedef struct {
    const char *key;
    const char *value;
    size_t vlen;
} jr_amqp_header;

/* Message properties; every field may be NULL / 0. */
typedef struct {
    const char *message_id;
    const char *content_type;
    const jr_amqp_header *headers;
    size_t nheaders;
} jr_amqp_props;

typedef struct {
    uint64_t published;    /* publishes confirmed by basic.ack */
    uint64_t nacked;
    uint64_t unconfirmed;  /* sent, then the connection dropped first */
    uint64_t reconnects;   /* times the client came back up */
    uint64_t deliveries;
    size_t pending;        /* publishes waiting unsent */
    size_t inflight;       /* sent, awaiting their confirm */
} jr_amqp_stats;

/* url: amqp://[user[:password]@]host[:port][/vhost] (see amqp_url.h). Starts
 * connecting at once. NULL on a bad URL or option (*status = EINVALID; err
 * names the field at fault, never the password) or out of memory (*status =
 * ENOMEM): callers decide on the status, not on err's text. opts NULL =
 * defaults; cb, status and err may be NULL. */
jr_amqp *jr_amqp_new(uv_loop_t *loop, const char *url, const jr_amqp_options *opts,
                     const jr_amqp_callbacks *cb, int *status, char *err, size_t errlen);

/* Every pending callback (publish confirms, declarations, queries,
 * cancels: also a cancel of a consumer while down whose OK was not yet
 * delivered) runs with JR_AMQP_ECLOSED before this returns, and no callback runs after it; the
 * broker requeues unacknowledged deliveries. Memory is released once the
 * loop has closed the handles (and a connect attempt on the thread pool has
 * ended): keep running the loop. Safe from inside any callback. NULL is
 * fine. */
void jr_amqp_free(jr_amqp *a);

int jr_amqp_is_up(const jr_amqp *a);
/* The latest failure's reason ("" if none), valid until the next call into
 * a or return to the loop. */
const char *jr_amqp_last_error(const jr_amqp *a);
/* What kind of failure that was, for callers that decide on it (not on the
 * text): JR_AMQP_OK (none, or up since), JR_AMQP_EREFUSED (the broker
 * refused the login or the vhost: connection.close 403 ACCESS_REFUSED or
 * 530 NOT_ALLOWED), JR_AMQP_ETIMEOUT (librabbitmq's connect_timeout_ms ran
 * out), JR_AMQP_ENOMEM, else JR_AMQP_EDISCONNECTED (no TCP connection, or
 * it dropped). */
int jr_amqp_last_failure(const jr_amqp *a);
void jr_amqp_get_stats(const jr_amqp *a, jr_amqp_stats *out);

/* status: JR_AMQP_OK or a negative code; why: a reason for errors (the
 * broker's text when it refused), NULL for OK. */
typedef void (*jr_amqp_done_cb)(jr_amqp *a, int status, const char *why, void *ud);

/* Declarations (durable). Each returns 0 and then cb (may be NULL) runs
 * once later, or a negative code (EINVALID, ENOMEM, ECLOSED) and cb never
 * runs. type: "direct", "topic", "fanout" or "headers". */
int jr_amqp_declare_exchange(jr_amqp *a, const char *name, const char *type, jr_amqp_done_cb cb, void *ud);

/* Queue arguments; NULL / 0 fields are left out. */
typedef struct {
    const char *dead_letter_exchange;    /* x-dead-letter-exchange */
    const char *dead_letter_routing_key; /* x-dead-letter-routing-key */
    uint32_t message_ttl_ms;             /* x-message-ttl, 0 = none */
    const char *queue_type;              /* x-queue-type: "classic", "quorum" */
} jr_amqp_queue_args;
int jr_amqp_declare_queue(jr_amqp *a, const char *name, const jr_amqp_queue_args *args,
                          jr_amqp_done_cb cb, void *ud);
int jr_amqp_bind(jr_amqp *a, const char *queue, const char *exchange, const char *routing_key,
                 jr_amqp_done_cb cb, void *ud);

/* Publish one persistent message (copies everything). 0 and then cb runs
 * exactly once later (see "Publishing" above), or a negative code (EBUSY,
 * EINVALID, ENOMEM, ECLOSED) and cb never runs. cb may be NULL. */
int jr_amqp_publish(jr_amqp *a, const char *exchange, const char *routing_key, const void *body,
                    size_t len, const jr_amqp_props *props, jr_amqp_done_cb cb, void *ud);

/* A delivery, valid during the callback only (copy what you keep; the tag
 * stays usable until the connection drops). */
typedef struct {
    uint64_t tag; /* for jr_amqp_ack / nack / reject */
    int redelivered;
    const char *exchange, *routing_key, *queue;
    const char *body;
    size_t len;
    const char *message_id;   /* NULL when none */
    const char *content_type; /* NULL when none */
    const jr_amqp_header *headers;
    size_t nheaders;
} jr_amqp_delivery;
typedef void (*jr_amqp_delivery_cb)(jr_amqp *a, const jr_amqp_delivery *d, void *ud);

/* Consume from queue with manual acknowledgements, at most prefetch (1..65535)
 * unacknowledged at a time; resumed after every reconnect. A consumer id
 * (> 0), or EINVALID / ENOMEM / ECLOSED. */
int jr_amqp_consume(jr_amqp *a, const char *queue, unsigned prefetch, jr_amqp_delivery_cb cb, void *ud);

/* Stop a consumer (basic.cancel). Deliveries may still come until the
 * broker's cancel-ok; then cb runs with OK, the consumer's delivery
 * callback never runs again and its ud may be freed. Its deliveries stay
 * ackable (same channel). Cancelled while the client is down: it is only
 * forgotten (not resumed on the next connection) and cb runs with OK from
 * the loop; the connection dropping before the cancel-ok answers OK too
 * (the broker forgets the consumers of a closed connection). 0 and then cb
 * (may be NULL) runs once, ECLOSED from jr_amqp_free; or ENOTFOUND (no
 * such consumer, or cancelled already), ECLOSED, ENOMEM and cb never runs. */
int jr_amqp_cancel(jr_amqp *a, int consumer_id, jr_amqp_done_cb cb, void *ud);

/* Queries: one-shot synchronous methods, never remembered or redone.
 * Asked while the client is up (or re-declaring after a reconnect); while
 * it is down they answer EDISCONNECTED at once (the caller asks again
 * later). 0 and then cb runs once: OK; ENOTFOUND when the queue or
 * exchange does not exist (why: the broker's "404 NOT_FOUND - ..."; the
 * broker closes the channel that asked, the client reopens it and goes on:
 * publishes and consumers on the other channels are untouched); EREFUSED
 * for another refusal (e.g. 405 RESOURCE_LOCKED: an exclusive queue of
 * another connection); EDISCONNECTED (the connection dropped before the
 * answer); ECLOSED (jr_amqp_free). Or a negative code (EINVALID: names are
 * 1..255 bytes; EDISCONNECTED; ENOMEM; ECLOSED) and cb never runs. Like the
 * declarations they travel one at a time on the declarations channel, and
 * publishes called after them are sent after they are answered. */

/* messages: the queue's ready messages (not the unacknowledged ones);
 * consumers: its consumers. For jr_amqp_purge, messages is the count
 * purged and consumers 0. Both 0 unless status is OK. */
typedef void (*jr_amqp_count_cb)(jr_amqp *a, int status, const char *why, uint32_t messages,
                                 uint32_t consumers, void *ud);
/* queue.declare passive: does the queue exist, how many messages are ready. */
int jr_amqp_queue_info(jr_amqp *a, const char *queue, jr_amqp_count_cb cb, void *ud);
/* exchange.declare passive: OK when the exchange exists, else ENOTFOUND. */
int jr_amqp_exchange_exists(jr_amqp *a, const char *exchange, jr_amqp_done_cb cb, void *ud);
/* queue.purge: drop the queue's ready messages (not the unacknowledged). */
int jr_amqp_purge(jr_amqp *a, const char *queue, jr_amqp_count_cb cb, void *ud);

/* d: the message (manual acknowledgement: settle d->tag with jr_amqp_ack /
 * nack / reject, like a consumer's delivery), valid during the callback;
 * NULL when the queue was empty or status is not OK. */
typedef void (*jr_amqp_get_cb)(jr_amqp *a, int status, const char *why, const jr_amqp_delivery *d, void *ud);
/* basic.get of one message (the queue is checked first with a passive
 * declare on the declarations channel: a missing queue answers ENOTFOUND
 * without closing the consumers' channel; a queue deleted between the two
 * steps makes the broker close that channel, and the client reconnects). */
int jr_amqp_get(jr_amqp *a, const char *queue, jr_amqp_get_cb cb, void *ud);

/* 0; EDISCONNECTED when the tag's connection is gone (the broker redelivers
 * the message); EINVALID for a tag never delivered; ECLOSED. */
int jr_amqp_ack(jr_amqp *a, uint64_t tag);
/* requeue 1: back to the queue (delivered again, redelivered = 1); 0: dropped
 * or dead-lettered (the queue's x-dead-letter-exchange). */
int jr_amqp_nack(jr_amqp *a, uint64_t tag, int requeue);
int jr_amqp_reject(jr_amqp *a, uint64_t tag, int requeue);
/* 1 when tag came on the connection that is up now (settling it can
 * work), 0 when that connection is gone: the broker has requeued the
 * message and delivers it again, so running it now would be a duplicate. */
int jr_amqp_tag_live(const jr_amqp *a, uint64_t tag);

#endif
