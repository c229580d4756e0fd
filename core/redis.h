/* redis.h - a Redis client on our libuv loop (hiredis 0.14 async API, with
 * our own libuv watch, redis_uv.c, instead of hiredis's buggy adapter):
 * pub/sub with resubscription, publishes that survive short outages, and
 * generic commands with timeouts. No Lua here; bindings/ wraps it.
 *
 *   jr_redis_options o; jr_redis_options_defaults(&o);
 *   jr_redis_callbacks cb = { on_message, on_state, ud };
 *   jr_redis *r = jr_redis_new(loop, "redis://:secret@127.0.0.1:6379/0", &o, &cb, err, sizeof err);
 *   jr_redis_subscribe(r, "chan", 4);
 *   jr_redis_publish(r, "chan", 4, data, len);
 *   jr_redis_command(r, argc, argv, argvlen, 500, on_reply, ud);
 *   jr_redis_free(r);                        (then keep running the loop)
 *
 * Connections. Two TCP connections to the one server: one for commands and
 * PUBLISH, one for SUBSCRIBE (a subscribed Redis connection cannot run other
 * commands). Each (re)connect sends AUTH (when the URL has a password) and
 * SELECT (when it names a database other than 0) before anything else; the
 * subscriber then re-subscribes every remembered channel. The client is "up"
 * when both connections have done so; on_state reports the transitions.
 * Host names are resolved with uv_getaddrinfo on every attempt (hiredis would
 * resolve them blocking the loop), so a moved DNS name is followed; the
 * first IPv4 address is used when there is one (as hiredis does), else the
 * first address.
 *
 * Failures and reconnection. A connection is dropped when hiredis reports an
 * error or EOF, when connecting (TCP + AUTH/SELECT + SUBSCRIBE) takes longer
 * than connect_timeout_ms, when AUTH or SELECT are refused, or when it fails
 * the health probe: every health_interval_ms the command connection
 * publishes a probe on a channel private to this client, which the
 * subscriber connection is subscribed to; a connection that has not answered
 * the previous probe (the PUBLISH reply, or the message arriving) by the
 * next one is dropped. This notices half-dead TCP connections (a peer gone
 * without a FIN or RST, a stuck server) within two intervals on both
 * connections, which TCP keepalive alone would take minutes to do, and it
 * exercises the whole pub/sub path, not only the sockets. Hiredis 0.14 cannot
 * PING a subscribed connection (it misroutes the reply), hence the channel.
 * A dropped connection is reconnected after an exponential backoff with
 * jitter: a delay drawn from [d/2, d], d = reconnect_initial_ms doubling per
 * failed attempt up to reconnect_max_ms; the first attempt is immediate.
 *
 * Delivery semantics (Redis pub/sub is at-most-once):
 *   - a message reaches the subscribers that are subscribed when Redis
 *     handles the PUBLISH; a subscriber that is disconnected then misses it
 *     (Redis keeps nothing), so during an outage remote messages are lost;
 *   - while the client is up, jr_redis_publish writes the PUBLISH at once. If
 *     the connection is lost before Redis answers, the message may or may not
 *     have been delivered; it is not sent again (stats.unconfirmed). At most
 *     max_pending_bytes of PUBLISHes await Redis's answers: beyond that (a
 *     server that stopped answering but keeps the connection, until the
 *     health probe drops it) a publish is dropped (stats.dropped); one
 *     publish goes whatever its size when no other awaits an answer;
 *   - while the client is not up (either connection down), publishes wait in
 *     a queue bounded by max_pending_bytes (channel + payload bytes) and
 *     max_pending_ms (age). Past a bound the oldest are dropped first
 *     (stats.dropped); age is checked on every publish and at the flush, so
 *     what is flushed is never older than max_pending_ms. When the client
 *     is up again (subscriptions restored, so our own subscribers see them)
 *     the queue is sent in order, before any newer publish;
 *   - one client's publishes reach Redis in the order of the calls; nothing
 *     is ever delivered twice.
 *
 * Commands. jr_redis_command runs any command but (P)SUBSCRIBE,
 * (P)UNSUBSCRIBE and MONITOR on the command connection, with our own timeout
 * (hiredis 0.14 has none). It fails at once (no callback) when the command
 * connection is not ready: callers that can wait watch on_state. Replies come
 * in order on one connection, so a command that blocks on the server (BLPOP
 * with a long timeout) holds every later one and makes the health probe drop
 * the connection: do not use blocking commands here. A timed-out command's
 * late reply is discarded.
 *
 * Callbacks run on the loop thread, never from inside the call that caused
 * them (jr_redis_free is the documented exception). jr_redis_free may be
 * called from any callback.
 *
 * Not thread-safe: one client per loop. */
#ifndef JR_REDIS_H
#define JR_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct jr_redis jr_redis;
/* A reply, valid only during the callback that receives it (it is hiredis's
 * redisReply; read it with the accessors below, no hiredis.h needed). */
typedef struct jr_redis_reply jr_redis_reply;

/* Result codes (negative) of the calls and of command callbacks. */
enum {
    JR_REDIS_OK = 0,
    JR_REDIS_ETIMEOUT = -1,      /* no reply within the command's timeout */
    JR_REDIS_EDISCONNECTED = -2, /* the command connection is not ready, or was lost */
    JR_REDIS_ECLOSED = -3,       /* jr_redis_free was called */
    JR_REDIS_EINVALID = -4,      /* bad arguments (a command this API refuses) */
    JR_REDIS_ENOMEM = -5,
    JR_REDIS_EREFUSED = -6       /* the server refused the handshake (a failure kind) */
};
/* The stable lowercase identifier of a code ("timeout", "disconnected",
 * "closed", "invalid", "nomem"; "ok" for 0), for error triples in bindings. */
const char *jr_redis_code_name(int code);

typedef struct {
    size_t max_pending_bytes;      /* publish queue while not up; default 1 MiB */
    unsigned max_pending_ms;       /* oldest queued publish kept; default 5000 */
    unsigned reconnect_initial_ms; /* first backoff step; default 100 */
    unsigned reconnect_max_ms;     /* backoff ceiling; default 5000 */
    unsigned connect_timeout_ms;   /* TCP + AUTH/SELECT (+ SUBSCRIBE); default 5000 */
    unsigned health_interval_ms;   /* probe period, 0 = no probe; default 5000 */
} jr_redis_options;
void jr_redis_options_defaults(jr_redis_options *o);

typedef struct {
    /* A message on a subscribed channel; channel and data are valid during
     * the call only (binary: any bytes, not NUL-terminated). May be NULL. */
    void (*on_message)(const char *channel, size_t clen, const char *data, size_t len, void *ud);
    /* up = 1: both connections ready (why NULL). up = 0: the client went down,
     * why says what happened (e.g. "AUTH failed: WRONGPASS ..."). Called on
     * transitions only, plus once when the first attempt fails; later failed
     * attempts of the same outage are silent (jr_redis_last_error has the
     * latest reason). May be NULL. */
    void (*on_state)(int up, const char *why, void *ud);
    void *ud;
} jr_redis_callbacks;

typedef struct {
    uint64_t published;   /* PUBLISHes Redis acknowledged */
    uint64_t dropped;     /* publishes discarded unsent: queue or in-flight bounds, or queued at free */
    uint64_t unconfirmed; /* PUBLISHes sent but whose connection was lost before the reply */
    uint64_t reconnects;  /* times the client came back up after being up before */
    size_t pending;       /* publishes queued now */
    size_t pending_bytes; /* their channel + payload bytes */
} jr_redis_stats;

/* url: redis://[[user]:password@]host[:port][/db]; host a name, an IPv4
 * address or [IPv6]; port default 6379; db default 0; user and password
 * percent-decoded. A user means ACL AUTH (user password), Redis 6+. Starts
 * connecting at once. NULL on a bad URL or option (err names what is wrong,
 * without repeating the password) or out of memory. opts NULL = defaults;
 * cb may be NULL. */
jr_redis *jr_redis_new(uv_loop_t *loop, const char *url, const jr_redis_options *opts,
                       const jr_redis_callbacks *cb, char *err, size_t errlen);

/* Every pending command's callback runs with JR_REDIS_ECLOSED before this
 * returns, and no callback of any kind runs after it. Queued publishes are
 * dropped. Memory is released once the loop has closed the handles: keep
 * running the loop. Safe from inside any callback. NULL is fine. */
void jr_redis_free(jr_redis *r);

/* 1 when both connections are ready. */
int jr_redis_is_up(const jr_redis *r);
/* The reason of the latest connection failure ("" if none), valid until the
 * next call into r or return to the loop. */
const char *jr_redis_last_error(const jr_redis *r);
/* What kind of failure the latest was, for callers that decide on it (not
 * on the text): JR_REDIS_EREFUSED (the server refused the handshake), JR_REDIS_ETIMEOUT
 * (connect_timeout_ms ran out), JR_REDIS_ENOMEM, else JR_REDIS_EDISCONNECTED
 * (no connection, or it dropped); JR_REDIS_OK when none yet. Refused: an
 * error reply to AUTH, SELECT or the handshake's PING (NOAUTH). */
int jr_redis_last_failure(const jr_redis *r);
void jr_redis_get_stats(const jr_redis *r, jr_redis_stats *out);

/* Remember channel (any bytes) and subscribe to it now if connected, and
 * after every reconnect. 0, or JR_REDIS_ENOMEM / ECLOSED. Subscribing twice is
 * a no-op. The channel list is searched linearly: meant for a few channels. */
int jr_redis_subscribe(jr_redis *r, const char *channel, size_t clen);
/* Forget channel; on_message is not called for it after this returns.
 * 0 (also when it was not subscribed), or JR_REDIS_ECLOSED. */
int jr_redis_unsubscribe(jr_redis *r, const char *channel, size_t clen);

/* Publish (copies channel and data): sent now when up, queued otherwise (see
 * the delivery semantics above). 0 (sent or queued; a message larger than
 * max_pending_bytes while down is dropped and counted), or JR_REDIS_ENOMEM /
 * ECLOSED. */
int jr_redis_publish(jr_redis *r, const char *channel, size_t clen, const char *data, size_t len);

/* status: JR_REDIS_OK with reply (which may be a Redis error reply:
 * JR_REDIS_REPLY_ERROR), or ETIMEOUT / EDISCONNECTED / ECLOSED with reply
 * NULL. */
typedef void (*jr_redis_reply_cb)(jr_redis *r, int status, const jr_redis_reply *reply, void *ud);

/* Send argv (binary-safe, argvlen[i] bytes each) on the command connection.
 * timeout_ms 0 = wait for the reply or a disconnection. Returns 0 and then
 * cb runs exactly once, later; or a negative code and cb never runs:
 * EDISCONNECTED (the command connection is not ready), EINVALID (argc < 1,
 * or a pub/sub or MONITOR command), ECLOSED, ENOMEM. */
int jr_redis_command(jr_redis *r, int argc, const char *const *argv, const size_t *argvlen,
                     unsigned timeout_ms, jr_redis_reply_cb cb, void *ud);

/* Reply accessors (the values match hiredis's REDIS_REPLY_*). */
enum {
    JR_REDIS_REPLY_STRING = 1,
    JR_REDIS_REPLY_ARRAY = 2,
    JR_REDIS_REPLY_INTEGER = 3,
    JR_REDIS_REPLY_NIL = 4,
    JR_REDIS_REPLY_STATUS = 5,
    JR_REDIS_REPLY_ERROR = 6
};
int jr_redis_reply_type(const jr_redis_reply *rp);
/* The bytes of a STRING, STATUS or ERROR reply (NUL-terminated too), with
 * their length in *len when len is not NULL; NULL for other types. */
const char *jr_redis_reply_str(const jr_redis_reply *rp, size_t *len);
/* An INTEGER reply's value; 0 for other types. */
long long jr_redis_reply_integer(const jr_redis_reply *rp);
/* An ARRAY's element count (0 for other types), and element i (NULL when
 * out of range). */
size_t jr_redis_reply_count(const jr_redis_reply *rp);
const jr_redis_reply *jr_redis_reply_at(const jr_redis_reply *rp, size_t i);

#endif
