/* redis.c - hiredis async on our loop (see redis.h for the contract).
 *
 * Two links (command, subscriber) share one life cycle:
 *   DOWN --timer--> RESOLVING --uv_getaddrinfo--> CONNECTING --ready--> READY
 * and any failure goes back to DOWN with the backoff timer running. The
 * link's one timer is the backoff while DOWN and the connect deadline
 * otherwise. CONNECTING covers the TCP connect and the handshake: [AUTH]
 * [SELECT] PING pipelined (the PING turns a server that wants a password we
 * did not give into a clear "NOAUTH" failure instead of a silent stall),
 * then, on the subscriber, one SUBSCRIBE of every remembered channel with
 * the probe channel last: its confirmation means all are subscribed.
 *
 * Hiredis ownership rules this file lives by (0.14 async.c):
 *   - a context we drop ourselves: link->ac is cleared first, then
 *     redisAsyncFree (hiredis defers it while inside one of the context's
 *     callbacks); its pending callbacks then run with a NULL reply and its
 *     disconnect callback fires, both recognising the context as stale
 *     (link->ac != ac);
 *   - a context hiredis drops (EOF, error): pending callbacks get NULL, then
 *     on_disconnect (if it had connected) or on_connect(ERR) (if not); after
 *     either returns hiredis frees it;
 *   - every command's callback runs exactly once (reply or NULL), so a
 *     command record is freed from there (plus its timer's close).
 * The client's memory is freed only when all its uv handles have closed,
 * which is after any deferred hiredis free has run (those run before control
 * returns to the loop), so no hiredis callback sees freed memory. */
#include "redis.h"

#include "redis_url.h"
#include "redis_uv.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { LINK_DOWN, LINK_RESOLVING, LINK_CONNECTING, LINK_READY };

typedef struct rlink {
    jr_redis *r;
    int is_sub;
    int state;
    redisAsyncContext *ac;
    uv_timer_t timer;     /* backoff while DOWN, connect deadline while connecting */
    uv_getaddrinfo_t gai;
    int gai_pending;      /* a resolution is running (it outlives a timed-out attempt) */
    unsigned failures;    /* since the link was last READY: the backoff exponent */
    int handshaken;       /* the PING answered: SUBSCRIBEs may be sent */
    int probe_due;        /* the current health probe is not answered yet */
} rlink;

typedef struct pub { /* a publish waiting for the client to be up */
    struct pub *next;
    uint64_t at; /* uv_now when queued */
    size_t clen, len;
    char bytes[]; /* channel, then data */
} pub;

typedef struct chan {
    struct chan *next;
    size_t len;
    char name[];
} chan;

typedef struct cmd {
    struct cmd *prev, *next; /* on r->cmds while not done */
    jr_redis *r;
    jr_redis_reply_cb cb;
    void *ud;
    uv_timer_t timer;
    int refs; /* hiredis's callback, and the timer until it is closed */
    int done; /* cb has run */
} cmd;

struct jr_redis {
    uv_loop_t *loop;
    jr_redis_url url;
    jr_redis_options o;
    jr_redis_callbacks cb;
    rlink lcmd, lsub;
    uv_timer_t health;
    uint64_t probe_seq;
    char probe_chan[80];
    size_t probe_clen;
    chan *chans;
    pub *qhead, *qtail;
    cmd *cmds;
    jr_redis_stats st;
    size_t inflight_bytes; /* PUBLISHes written, not answered yet (channel + payload) */
    int up, ever_up, down_reported, closing;
    int open; /* uv handles not closed yet + resolutions running */
    uint64_t rng;
    char last_err[256];
    int last_failure; /* the kind of the latest failure (jr_redis_last_failure) */
};

const char *jr_redis_code_name(int code)
{
    switch (code) {
    case JR_REDIS_OK: return "ok";
    case JR_REDIS_ETIMEOUT: return "timeout";
    case JR_REDIS_EDISCONNECTED: return "disconnected";
    case JR_REDIS_ECLOSED: return "closed";
    case JR_REDIS_EINVALID: return "invalid";
    case JR_REDIS_ENOMEM: return "nomem";
    case JR_REDIS_EREFUSED: return "refused";
    default: return "unknown";
    }
}

void jr_redis_options_defaults(jr_redis_options *o)
{
    o->max_pending_bytes = 1u << 20;
    o->max_pending_ms = 5000;
    o->reconnect_initial_ms = 100;
    o->reconnect_max_ms = 5000;
    o->connect_timeout_ms = 5000;
    o->health_interval_ms = 5000;
}

/* ------------------------------------------------------------ small helpers */

static int same(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

static chan *chan_find(jr_redis *r, const char *name, size_t len)
{
    for (chan *c = r->chans; c; c = c->next)
        if (same(c->name, c->len, name, len)) return c;
    return NULL;
}

/* xorshift64: jitter only needs to differ between processes and attempts */
static uint64_t rnd(jr_redis *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

/* Delay before the next attempt: from [d/2, d], d doubling per failure,
 * so that instances cut off together do not all come back in step. */
static uint64_t backoff_ms(jr_redis *r, rlink *l)
{
    uint64_t d = r->o.reconnect_initial_ms;
    for (unsigned i = 1; i < l->failures && d < r->o.reconnect_max_ms; i++) d *= 2;
    if (d > r->o.reconnect_max_ms) d = r->o.reconnect_max_ms;
    return d / 2 + rnd(r) % (d / 2 + 1);
}

static void set_err(jr_redis *r, const char *fmt, va_list ap)
{
    vsnprintf(r->last_err, sizeof r->last_err, fmt, ap);
}

static void link_start(rlink *l);
static void on_link_timer(uv_timer_t *t);
static void flush_queue(jr_redis *r);
static void maybe_release(jr_redis *r);

/* ------------------------------------------------------------ up / down */

static void report_down(jr_redis *r)
{
    r->up = 0;
    /* once per outage (the flag is cleared when up), which includes the
     * first attempts before the client was ever up */
    if (r->down_reported) return;
    r->down_reported = 1;
    if (r->cb.on_state) r->cb.on_state(0, r->last_err, r->cb.ud);
}

static void update_up(jr_redis *r)
{
    if (r->up || r->lcmd.state != LINK_READY || r->lsub.state != LINK_READY) return;
    r->up = 1;
    if (r->ever_up) r->st.reconnects++;
    r->ever_up = 1;
    r->down_reported = 0;
    /* before on_state: whatever the callback publishes comes after the queue */
    flush_queue(r);
    if (r->cb.on_state) r->cb.on_state(1, NULL, r->cb.ud);
}

static void link_fail(rlink *l, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Drop the link's connection (if any) and schedule the next attempt. kind:
 * what failed, for callers that decide on it (jr_redis_last_failure). */
static void link_fail(rlink *l, int kind, const char *fmt, ...)
{
    jr_redis *r = l->r;
    r->last_failure = kind;
    va_list ap;
    va_start(ap, fmt);
    set_err(r, fmt, ap);
    va_end(ap);
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->state = LINK_DOWN;
    l->handshaken = 0;
    l->probe_due = 0;
    /* pending commands get "disconnected" from in here: their callbacks may
     * free the client */
    if (ac) redisAsyncFree(ac);
    if (r->closing) return;
    l->failures++;
    uv_timer_start(&l->timer, on_link_timer, backoff_ms(r, l), 0);
    report_down(r);
}

static void link_ready(rlink *l)
{
    l->state = LINK_READY;
    l->failures = 0;
    l->probe_due = 0;
    uv_timer_stop(&l->timer);
    update_up(l->r);
}

/* ------------------------------------------------------------ pub/sub */

static void on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
    rlink *l = priv;
    jr_redis *r = l->r;
    redisReply *rp = reply;
    if (!rp || l->ac != ac || r->closing) return;
    if (rp->type != REDIS_REPLY_ARRAY || rp->elements < 3 || rp->element[0]->type != REDIS_REPLY_STRING ||
        rp->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rp->element[0]->str;
    redisReply *ch = rp->element[1];
    int probe = same(ch->str, ch->len, r->probe_chan, r->probe_clen);
    if (strcmp(kind, "message") == 0 && rp->element[2]->type == REDIS_REPLY_STRING) {
        redisReply *d = rp->element[2];
        if (probe) {
            char seq[24];
            int n = snprintf(seq, sizeof seq, "%llu", (unsigned long long)r->probe_seq);
            if (same(d->str, d->len, seq, (size_t)n)) l->probe_due = 0;
        } else if (r->cb.on_message && chan_find(r, ch->str, ch->len)) {
            r->cb.on_message(ch->str, ch->len, d->str, d->len, r->cb.ud);
        }
    } else if (strcmp(kind, "subscribe") == 0 && probe && l->state == LINK_CONNECTING) {
        link_ready(l);
    }
}

static int send_sub(rlink *l, const char *verb, const char *name, size_t len)
{
    const char *argv[2] = {verb, name};
    size_t lens[2] = {strlen(verb), len};
    return redisAsyncCommandArgv(l->ac, on_sub, l, 2, argv, lens) == REDIS_OK ? 0 : -1;
}

/* SUBSCRIBE every remembered channel, the probe channel last. */
static void subscribe_all(rlink *l)
{
    jr_redis *r = l->r;
    size_t n = 2;
    for (chan *c = r->chans; c; c = c->next) n++;
    const char **argv = malloc(n * sizeof *argv);
    size_t *lens = malloc(n * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        link_fail(l, JR_REDIS_ENOMEM, "out of memory");
        return;
    }
    size_t i = 0;
    argv[i] = "SUBSCRIBE";
    lens[i++] = 9;
    for (chan *c = r->chans; c; c = c->next) {
        argv[i] = c->name;
        lens[i++] = c->len;
    }
    argv[i] = r->probe_chan;
    lens[i++] = r->probe_clen;
    int rc = redisAsyncCommandArgv(l->ac, on_sub, l, (int)n, argv, lens);
    free(argv);
    free(lens);
    if (rc != REDIS_OK) link_fail(l, JR_REDIS_ENOMEM, "cannot send SUBSCRIBE (out of memory)");
}

int jr_redis_subscribe(jr_redis *r, const char *channel, size_t clen)
{
    if (!r || r->closing) return JR_REDIS_ECLOSED;
    if (chan_find(r, channel, clen)) return JR_REDIS_OK;
    chan *c = malloc(sizeof *c + clen + 1);
    if (!c) return JR_REDIS_ENOMEM;
    c->len = clen;
    if (clen) memcpy(c->name, channel, clen);
    c->name[clen] = '\0';
    c->next = r->chans;
    r->chans = c;
    /* before the handshake ends, subscribe_all will include it. hiredis
     * refuses only a context it is tearing down (whose reconnect subscribes
     * everything remembered) or when out of memory. */
    if (r->lsub.ac && r->lsub.handshaken) (void)send_sub(&r->lsub, "SUBSCRIBE", channel, clen);
    return JR_REDIS_OK;
}

int jr_redis_unsubscribe(jr_redis *r, const char *channel, size_t clen)
{
    if (!r || r->closing) return JR_REDIS_ECLOSED;
    for (chan **pp = &r->chans; *pp; pp = &(*pp)->next) {
        chan *c = *pp;
        if (!same(c->name, c->len, channel, clen)) continue;
        *pp = c->next;
        free(c);
        /* a failure to send only leaves the server sending messages that
         * on_sub no longer delivers; the next reconnect forgets it */
        if (r->lsub.ac && r->lsub.handshaken) (void)send_sub(&r->lsub, "UNSUBSCRIBE", channel, clen);
        break;
    }
    return JR_REDIS_OK;
}

/* ------------------------------------------------------------ publish */

/* priv carries the PUBLISH's size (channel + payload): replies come in
 * order, once each, also as NULL when the connection goes. */
static void on_publish_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    jr_redis *r = ((rlink *)ac->data)->r;
    redisReply *rp = reply;
    size_t size = (size_t)(uintptr_t)priv;
    r->inflight_bytes -= size < r->inflight_bytes ? size : r->inflight_bytes;
    if (!rp) r->st.unconfirmed++;
    else if (rp->type == REDIS_REPLY_ERROR) r->st.dropped++; /* refused (ACL, OOM) */
    else r->st.published++;
}

static int send_publish(jr_redis *r, const char *ch, size_t clen, const char *data, size_t len)
{
    const char *argv[3] = {"PUBLISH", ch, data};
    size_t lens[3] = {7, clen, len};
    if (redisAsyncCommandArgv(r->lcmd.ac, on_publish_reply, (void *)(uintptr_t)(clen + len), 3, argv, lens) !=
        REDIS_OK)
        return -1;
    r->inflight_bytes += clen + len;
    return 0;
}

static void drop_head(jr_redis *r)
{
    pub *p = r->qhead;
    r->qhead = p->next;
    if (!r->qhead) r->qtail = NULL;
    r->st.pending--;
    r->st.pending_bytes -= p->clen + p->len;
    r->st.dropped++;
    free(p);
}

static void drop_expired(jr_redis *r)
{
    uint64_t now = uv_now(r->loop);
    while (r->qhead && now - r->qhead->at > r->o.max_pending_ms) drop_head(r);
}

static int enqueue(jr_redis *r, const char *ch, size_t clen, const char *data, size_t len)
{
    drop_expired(r);
    if (clen + len > r->o.max_pending_bytes) {
        r->st.dropped++; /* could never fit: keep what is queued */
        return JR_REDIS_OK;
    }
    pub *p = malloc(sizeof *p + clen + len);
    if (!p) return JR_REDIS_ENOMEM;
    p->next = NULL;
    p->at = uv_now(r->loop);
    p->clen = clen;
    p->len = len;
    if (clen) memcpy(p->bytes, ch, clen);
    if (len) memcpy(p->bytes + clen, data, len);
    if (r->qtail) r->qtail->next = p;
    else r->qhead = p;
    r->qtail = p;
    r->st.pending++;
    r->st.pending_bytes += clen + len;
    while (r->st.pending_bytes > r->o.max_pending_bytes) drop_head(r);
    return JR_REDIS_OK;
}

static void flush_queue(jr_redis *r)
{
    drop_expired(r);
    while (r->qhead) {
        pub *p = r->qhead;
        if (send_publish(r, p->bytes, p->clen, p->bytes + p->clen, p->len) != 0) return; /* stays queued */
        r->qhead = p->next;
        if (!r->qhead) r->qtail = NULL;
        r->st.pending--;
        r->st.pending_bytes -= p->clen + p->len;
        free(p);
    }
}

int jr_redis_publish(jr_redis *r, const char *channel, size_t clen, const char *data, size_t len)
{
    if (!r || r->closing) return JR_REDIS_ECLOSED;
    /* hiredis refuses new commands on a context it is tearing down (the
     * client still looks up then): such a publish waits in the queue */
    if (r->up && !r->qhead) {
        /* Up but not answering (a stuck server that keeps the connection):
         * what awaits Redis's answer is bounded like the outage queue, so
         * memory stays bounded until the health probe drops the connection.
         * One publish goes whatever its size when nothing else waits. */
        if (r->inflight_bytes && r->inflight_bytes + clen + len > r->o.max_pending_bytes) {
            r->st.dropped++;
            return JR_REDIS_OK;
        }
        if (send_publish(r, channel, clen, data, len) == 0) return JR_REDIS_OK;
    }
    return enqueue(r, channel, clen, data, len);
}

/* ------------------------------------------------------------ commands */

static void cmd_release(cmd *c)
{
    if (--c->refs == 0) free(c);
}

static void cmd_timer_closed(uv_handle_t *h) { cmd_release(h->data); }

/* Run c's callback (once) and take it off the pending list. */
static void cmd_finish(cmd *c, int status, const redisReply *reply)
{
    jr_redis *r = c->r;
    c->done = 1;
    if (c->prev) c->prev->next = c->next;
    else r->cmds = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->refs > 1) uv_close((uv_handle_t *)&c->timer, cmd_timer_closed); /* the timer's ref */
    c->cb(r, status, (const jr_redis_reply *)reply, c->ud);
}

static void on_cmd_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    cmd *c = priv;
    (void)ac;
    if (!c->done)
        cmd_finish(c, reply ? JR_REDIS_OK : c->r->closing ? JR_REDIS_ECLOSED : JR_REDIS_EDISCONNECTED, reply);
    cmd_release(c); /* hiredis's ref: a timed-out command's late reply ends here */
}

static void on_cmd_timeout(uv_timer_t *t)
{
    cmd *c = t->data;
    if (!c->done) cmd_finish(c, JR_REDIS_ETIMEOUT, NULL);
}

/* Commands that would change the connection's protocol state behind
 * hiredis's back (pub/sub mode, RESP3, a reset) or end it. */
static int refused(const char *name, size_t len)
{
    static const char *const no[] = {"subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe",
                                     "sunsubscribe", "monitor", "hello", "reset", "quit"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strlen(no[i]) == len && strncasecmp(no[i], name, len) == 0) return 1;
    return 0;
}

int jr_redis_command(jr_redis *r, int argc, const char *const *argv, const size_t *argvlen,
                     unsigned timeout_ms, jr_redis_reply_cb cb, void *ud)
{
    if (!r || r->closing) return JR_REDIS_ECLOSED;
    if (argc < 1 || !argv || !argvlen || !cb || refused(argv[0], argvlen[0])) return JR_REDIS_EINVALID;
    if (r->lcmd.state != LINK_READY) return JR_REDIS_EDISCONNECTED;
    cmd *c = calloc(1, sizeof *c);
    if (!c) return JR_REDIS_ENOMEM;
    c->r = r;
    c->cb = cb;
    c->ud = ud;
    c->refs = 1;
    if (redisAsyncCommandArgv(r->lcmd.ac, on_cmd_reply, c, argc, (const char **)argv, argvlen) != REDIS_OK) {
        free(c); /* hiredis refuses a context it is tearing down */
        return JR_REDIS_EDISCONNECTED;
    }
    c->next = r->cmds;
    if (r->cmds) r->cmds->prev = c;
    r->cmds = c;
    if (timeout_ms) {
        uv_timer_init(r->loop, &c->timer);
        c->timer.data = c;
        c->refs++;
        uv_timer_start(&c->timer, on_cmd_timeout, timeout_ms, 0);
    }
    return JR_REDIS_OK;
}

/* ------------------------------------------------------------ connecting */

static void handshake_reply(redisAsyncContext *ac, void *reply, rlink *l, const char *what)
{
    redisReply *rp = reply;
    if (!rp || l->ac != ac) return; /* going away: the disconnect reports it */
    if (rp->type == REDIS_REPLY_ERROR) {
        /* the server answered and refused the session (a wrong password or
         * database, NOAUTH to the PING when a password is needed) */
        link_fail(l, JR_REDIS_EREFUSED, "%s failed on %s:%d: %s", what, l->r->url.host, l->r->url.port, rp->str);
        return;
    }
    if (strcmp(what, "PING") != 0) return;
    l->handshaken = 1;
    if (l->is_sub) subscribe_all(l);
    else link_ready(l);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv) { handshake_reply(ac, reply, priv, "AUTH"); }
static void on_select(redisAsyncContext *ac, void *reply, void *priv) { handshake_reply(ac, reply, priv, "SELECT"); }
static void on_ping(redisAsyncContext *ac, void *reply, void *priv) { handshake_reply(ac, reply, priv, "PING"); }

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    rlink *l = ac->data;
    if (l->ac != ac) return;
    jr_redis *r = l->r;
    if (status != REDIS_OK) {
        l->ac = NULL; /* hiredis frees it when we return */
        link_fail(l, JR_REDIS_EDISCONNECTED, "cannot connect to %s:%d: %s", r->url.host, r->url.port, ac->c.errstr);
        return;
    }
    jr_redis_url *u = &r->url;
    int rc = REDIS_OK;
    if (u->password) {
        const char *argv[3] = {"AUTH", u->user ? u->user : u->password, u->password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(u->password)};
        rc |= redisAsyncCommandArgv(ac, on_auth, l, u->user ? 3 : 2, argv, lens);
    }
    if (u->db) rc |= redisAsyncCommand(ac, on_select, l, "SELECT %d", u->db);
    rc |= redisAsyncCommand(ac, on_ping, l, "PING");
    if (rc != REDIS_OK) link_fail(l, JR_REDIS_ENOMEM, "cannot send the handshake (out of memory)");
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    rlink *l = ac->data;
    (void)status;
    if (l->ac != ac) return; /* one we dropped ourselves */
    l->ac = NULL;            /* hiredis frees it when we return */
    link_fail(l, JR_REDIS_EDISCONNECTED, "connection to %s:%d lost: %s", l->r->url.host, l->r->url.port,
              ac->errstr && *ac->errstr ? ac->errstr : "closed");
}

static void link_connect(rlink *l, const char *ip)
{
    jr_redis *r = l->r;
    redisAsyncContext *ac = redisAsyncConnect(ip, r->url.port);
    if (!ac) {
        link_fail(l, JR_REDIS_ENOMEM, "cannot connect to %s:%d: out of memory", r->url.host, r->url.port);
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        link_fail(l, JR_REDIS_EDISCONNECTED, "cannot connect to %s:%d: %s", r->url.host, r->url.port, why);
        return;
    }
    ac->data = l;
    if (jr_redis_uv_attach(ac, r->loop) != 0) {
        redisAsyncFree(ac);
        link_fail(l, JR_REDIS_EDISCONNECTED, "cannot watch the connection to %s:%d", r->url.host, r->url.port);
        return;
    }
    /* a dead peer is also noticed by the health probe; keepalive covers
     * a client configured without one */
    redisEnableKeepAlive(&ac->c);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->ac = ac;
    l->state = LINK_CONNECTING;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    rlink *l = req->data;
    jr_redis *r = l->r;
    l->gai_pending = 0;
    r->open--;
    char ip[64] = "";
    /* IPv4 first, as hiredis does: "localhost" often lists ::1 first while
     * servers commonly bind 127.0.0.1 only */
    struct addrinfo *pick = res;
    for (struct addrinfo *a = res; status == 0 && a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    if (status == 0 && pick) uv_ip_name(pick->ai_addr, ip, sizeof ip);
    if (res) uv_freeaddrinfo(res);
    if (r->closing) {
        maybe_release(r);
        return;
    }
    if (l->state != LINK_RESOLVING) return; /* that attempt timed out */
    if (status != 0 || !*ip)
        link_fail(l, JR_REDIS_EDISCONNECTED, "cannot resolve %s: %s", r->url.host, status ? uv_strerror(status) : "no address");
    else link_connect(l, ip);
}

static void link_start(rlink *l)
{
    jr_redis *r = l->r;
    l->state = LINK_RESOLVING;
    uv_timer_start(&l->timer, on_link_timer, r->o.connect_timeout_ms, 0);
    if (l->gai_pending) return; /* the resolution of a timed-out attempt serves this one */
    unsigned char addr[16];
    if (uv_inet_pton(AF_INET, r->url.host, addr) == 0 || uv_inet_pton(AF_INET6, r->url.host, addr) == 0) {
        link_connect(l, r->url.host);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    l->gai.data = l;
    int rc = uv_getaddrinfo(r->loop, &l->gai, on_resolved, r->url.host, NULL, &hints);
    if (rc != 0) {
        link_fail(l, JR_REDIS_EDISCONNECTED, "cannot resolve %s: %s", r->url.host, uv_strerror(rc));
        return;
    }
    l->gai_pending = 1;
    r->open++;
}

static void on_link_timer(uv_timer_t *t)
{
    rlink *l = t->data;
    if (l->state == LINK_DOWN) link_start(l);
    else if (l->state != LINK_READY)
        link_fail(l, JR_REDIS_ETIMEOUT, "connecting to %s:%d took longer than %u ms", l->r->url.host, l->r->url.port,
                  l->r->o.connect_timeout_ms);
}

/* ------------------------------------------------------------ health probe */

static void on_probe_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rlink *l = priv;
    if (reply && l->ac == ac) l->probe_due = 0;
}

static void on_health(uv_timer_t *t)
{
    jr_redis *r = t->data;
    rlink *links[2] = {&r->lcmd, &r->lsub};
    for (int i = 0; i < 2; i++) {
        if (links[i]->state == LINK_READY && links[i]->probe_due) {
            link_fail(links[i], JR_REDIS_EDISCONNECTED, "no answer to the health probe on %s:%d within %u ms", r->url.host, r->url.port,
                      r->o.health_interval_ms);
            if (r->closing) return;
        }
    }
    if (r->lcmd.state != LINK_READY) return;
    char seq[24];
    int n = snprintf(seq, sizeof seq, "%llu", (unsigned long long)++r->probe_seq);
    const char *argv[3] = {"PUBLISH", r->probe_chan, seq};
    size_t lens[3] = {7, r->probe_clen, (size_t)n};
    if (redisAsyncCommandArgv(r->lcmd.ac, on_probe_reply, &r->lcmd, 3, argv, lens) != REDIS_OK) return;
    r->lcmd.probe_due = 1;
    r->lsub.probe_due = r->lsub.state == LINK_READY;
}

/* ------------------------------------------------------------ life cycle */

static void link_init(jr_redis *r, rlink *l, int is_sub)
{
    l->r = r;
    l->is_sub = is_sub;
    l->state = LINK_DOWN;
    uv_timer_init(r->loop, &l->timer);
    l->timer.data = l;
    r->open++;
}

jr_redis *jr_redis_new(uv_loop_t *loop, const char *url, const jr_redis_options *opts,
                       const jr_redis_callbacks *cb, char *err, size_t errlen)
{
    jr_redis_options o;
    if (opts) o = *opts;
    else jr_redis_options_defaults(&o);
    if (o.reconnect_initial_ms == 0 || o.reconnect_max_ms < o.reconnect_initial_ms || o.connect_timeout_ms == 0) {
        if (err && errlen) snprintf(err, errlen, "invalid Redis options: reconnect_initial_ms and connect_timeout_ms must be > 0 "
                              "and reconnect_max_ms >= reconnect_initial_ms");
        return NULL;
    }
    jr_redis *r = calloc(1, sizeof *r);
    if (!r) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (jr_redis_url_parse(url, &r->url, err, errlen) != 0) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->o = o;
    if (cb) r->cb = *cb;
    r->rng = uv_hrtime() ^ ((uint64_t)(uintptr_t)r << 16) ^ (uint64_t)getpid();
    if (!r->rng) r->rng = 1;
    r->probe_clen = (size_t)snprintf(r->probe_chan, sizeof r->probe_chan, "__jr_redis:probe:%d:%016llx",
                                     (int)getpid(), (unsigned long long)rnd(r));
    link_init(r, &r->lcmd, 0);
    link_init(r, &r->lsub, 1);
    uv_timer_init(loop, &r->health);
    r->health.data = r;
    r->open++;
    if (o.health_interval_ms) uv_timer_start(&r->health, on_health, o.health_interval_ms, o.health_interval_ms);
    link_start(&r->lcmd);
    link_start(&r->lsub);
    return r;
}

static void maybe_release(jr_redis *r)
{
    if (r->open > 0) return;
    while (r->chans) {
        chan *c = r->chans;
        r->chans = c->next;
        free(c);
    }
    jr_redis_url_free(&r->url);
    free(r);
}

static void link_timer_closed(uv_handle_t *h)
{
    rlink *l = h->data;
    l->r->open--;
    maybe_release(l->r);
}

static void health_closed(uv_handle_t *h)
{
    jr_redis *r = h->data;
    r->open--;
    maybe_release(r);
}

void jr_redis_free(jr_redis *r)
{
    if (!r || r->closing) return;
    r->closing = 1;
    r->up = 0;
    while (r->cmds) cmd_finish(r->cmds, JR_REDIS_ECLOSED, NULL);
    while (r->qhead) drop_head(r);
    rlink *links[2] = {&r->lcmd, &r->lsub};
    for (int i = 0; i < 2; i++) {
        rlink *l = links[i];
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        l->state = LINK_DOWN;
        if (ac) redisAsyncFree(ac); /* its command callbacks find their records done */
        if (l->gai_pending) uv_cancel((uv_req_t *)&l->gai); /* on_resolved still runs */
        uv_close((uv_handle_t *)&l->timer, link_timer_closed);
    }
    uv_close((uv_handle_t *)&r->health, health_closed);
}

int jr_redis_is_up(const jr_redis *r) { return r && r->up; }

const char *jr_redis_last_error(const jr_redis *r) { return r ? r->last_err : ""; }
int jr_redis_last_failure(const jr_redis *r) { return r ? r->last_failure : JR_REDIS_OK; }

void jr_redis_get_stats(const jr_redis *r, jr_redis_stats *out) { *out = r->st; }

/* ------------------------------------------------------------ replies */

int jr_redis_reply_type(const jr_redis_reply *rp) { return ((const redisReply *)rp)->type; }

const char *jr_redis_reply_str(const jr_redis_reply *rp, size_t *len)
{
    const redisReply *x = (const redisReply *)rp;
    if (x->type != REDIS_REPLY_STRING && x->type != REDIS_REPLY_STATUS && x->type != REDIS_REPLY_ERROR) return NULL;
    if (len) *len = x->len;
    return x->str;
}

long long jr_redis_reply_integer(const jr_redis_reply *rp)
{
    const redisReply *x = (const redisReply *)rp;
    return x->type == REDIS_REPLY_INTEGER ? x->integer : 0;
}

size_t jr_redis_reply_count(const jr_redis_reply *rp)
{
    const redisReply *x = (const redisReply *)rp;
    return x->type == REDIS_REPLY_ARRAY ? x->elements : 0;
}

const jr_redis_reply *jr_redis_reply_at(const jr_redis_reply *rp, size_t i)
{
    const redisReply *x = (const redisReply *)rp;
    if (x->type != REDIS_REPLY_ARRAY || i >= x->elements) return NULL;
    return (const jr_redis_reply *)x->element[i];
}
