/* l_amqp.c - jararaca.core.amqp: the RabbitMQ client of core/amqp_client.h
 * as seen from Lua. Every call that waits for the broker parks its task (the
 * loop never blocks); the rest answer at once.
 *
 *   local ac, msg, code = amqp.connect(url [, opts])   parks until the client is up
 *       opts: heartbeat_s, connect_timeout_ms, reconnect_initial_ms,
 *       reconnect_max_ms, max_pending_bytes, max_pending_ms (core's options)
 *       -> client | nil, msg, "invalid" (the URL or an option value)
 *          | "refused" (the broker refused the login or the vhost)
 *          | "unreachable" (TCP connect or handshake failed) | "timeout"
 *          (not up within connect_timeout_ms) | "cancelled"
 *       The first failed attempt answers (the client is then closed): the
 *       caller decides whether to try again.
 *   ac:declare_exchange(name, type [, opts])            parks until the broker answered
 *   ac:declare_queue(name [, { dead_letter_exchange, dead_letter_routing_key,
 *                              message_ttl (ms), queue_type }])
 *   ac:bind(queue, exchange, key)
 *       -> true | nil, msg, "refused" (the broker's reason) | "closed" | "cancelled"
 *       (declared while the client is down: answered once it is up again)
 *   ac:publish(exchange, key, body [, { message_id, content_type, headers = { k = v } }])
 *       exchange "" is the default exchange (key = a queue's name); header
 *       values are strings, numbers or booleans, all sent as text (2 -> "2",
 *       true -> "true"): consumers get strings back.
 *       parks until the broker confirms: true | nil, msg, "nacked" |
 *       "disconnected" (sent, the connection dropped before the confirm: it may
 *       be stored; publish again, consumers dedupe by message_id) | "timeout"
 *       (unsent for max_pending_ms) | "busy" (max_pending_bytes waiting
 *       unsent: answered at once) | "closed" | "cancelled"
 *   ac:consume(queue, prefetch, fn [, { direct = true }]) -> consumer id:
 *       fn(delivery) runs in a task of its own per delivery, at most
 *       prefetch unsettled at a time; direct: fn is called from the loop
 *       as the delivery arrives, no task (it must not wait: a consumer that
 *       hands deliveries to tasks of its own saves a task per message; an
 *       error it raises is logged)
 *       a delivery is a table: .body .headers .message_id .content_type
 *       .redelivered .routing_key .exchange .queue; delivery:ack() :nack(requeue)
 *       :reject() -> true | nil, msg, "disconnected" | "closed"; a second
 *       settle of one delivery raises (the broker would close the channel);
 *       delivery:live() -> false once its connection is gone (the broker
 *       delivers it again: skip it rather than run it twice)
 *   ac:cancel(consumer_id) parks until the broker's cancel-ok: true | nil,
 *       msg, "not_found" (no such consumer, or cancelled already) | "closed"
 *       | "cancelled". No delivery for it comes after; those that came stay
 *       settleable; its fn is released. Cancelled while the client is down:
 *       only forgotten (not resumed on reconnect), true.
 *   Queries (asked while the client is up; while it reconnects they answer
 *   nil, msg, "disconnected" at once: ask again later). A missing queue or
 *   exchange is nil, msg, "not_found" (the broker's reason in msg); the
 *   client carries on (only its declarations channel was closed and is
 *   reopened). Also "refused" (another refusal, e.g. RESOURCE_LOCKED),
 *   "disconnected" (the connection dropped first), "closed", "cancelled".
 *   ac:queue_info(queue) -> { messages = n (ready, not the unacked), consumers = n }
 *   ac:exchange_exists(exchange) -> true
 *   ac:purge(queue) -> the count of ready messages purged
 *   ac:get(queue) -> a delivery, exactly like consume's (settle it with
 *       :ack / :nack(requeue) / :reject) | false when the queue is empty.
 *       A get cancelled while it waits: the message, if one came, is
 *       nacked back to the queue.
 *   Names are 1..255 bytes (else they raise, like the declarations).
 *   ac:is_up() -> whether the connection is up now
 *   ac:stats() -> { up, published, nacked, unconfirmed, reconnects,
 *                   deliveries, pending, inflight }
 *   ac:close() -> true: parked calls answer "closed", consumers stop, the
 *       broker requeues what was not settled
 *
 * Cancellation: a task parked here (j.timeout around a publish) resumes at
 * once with nil, msg, "cancelled"; the broker's answer comes later to an op
 * nobody waits for (jr_waiter_park_cancellable: the late callback finds no
 * task) and only frees it. The message may still be stored.
 *
 * Lifetime: the client userdata is anchored in the registry while a call
 * is parked on it or it has consumers (core holds pointers to it); an
 * idle one is closed by the collector. A delivery keeps its client alive. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_client.h"
#include "amqp_url.h"
#include "log.h"
#include "scheduler.h"
#include "vm.h"

static char k_client_mt, k_delivery_mt, k_client_key, k_tag_hi, k_tag_lo, k_settled;

typedef struct consumer {
    struct consumer *next;
    struct client_ud *c;
    int fn_ref;
    int id; /* core's consumer id */
    int direct; /* fn called from the loop, not in a task */
} consumer;

typedef struct client_ud {
    jr_amqp *a;        /* NULL once closed */
    int connecting;    /* amqp.connect waits for the first state */
    jr_waiter waiter;  /* the task in amqp.connect */
    uv_timer_t *deadline;
    jr_anchor anchor; /* held while a call is parked or a consumer runs */
    consumer *consumers;
    char where[300];   /* amqp://user@host:port/vhost: never the password */
} client_ud;

/* What a parked call answers when core calls back. */
enum { ANS_TRUE, ANS_INFO, ANS_COUNT };

typedef struct {
    client_ud *c;
    jr_waiter w;
    int answer;   /* ANS_*: the success value of an on_done / on_count op */
    consumer *k;  /* ac:cancel: the consumer, freed when core answers */
} op;


static void close_client(client_ud *c)
{
    if (!c->a) return;
    jr_amqp *a = c->a;
    c->a = NULL;
    jr_amqp_free(a); /* parked calls answer "closed" (their ops release their holds) */
    while (c->consumers) {
        consumer *k = c->consumers;
        c->consumers = k->next;
        luaL_unref(jr_vm_global->L, LUA_REGISTRYINDEX, k->fn_ref);
        free(k);
        jr_anchor_release(&c->anchor);
    }
}

/* ---- connect ---- */

static void deadline_closed(uv_handle_t *h) { free(h); }

static void stop_deadline(client_ud *c)
{
    if (!c->deadline) return;
    uv_close((uv_handle_t *)c->deadline, deadline_closed);
    c->deadline = NULL;
}

/* A failed first attempt's code, from core's failure kind. */
static const char *connect_code(const jr_amqp *a)
{
    switch (jr_amqp_last_failure(a)) {
    case JR_AMQP_EREFUSED: return "refused";
    case JR_AMQP_ETIMEOUT: return "timeout"; /* librabbitmq's own bound: connect_timeout_ms */
    case JR_AMQP_ENOMEM: return "nomem";
    default: return "unreachable";
    }
}

static void finish_connect(client_ud *c, int up, const char *why, const char *code)
{
    c->connecting = 0;
    stop_deadline(c);
    lua_State *co = jr_waiter_thread(&c->waiter);
    if (!co || !up) close_client(c); /* failed, or nobody waits any more (cancelled) */
    if (co) {
        int n = 1;
        if (up) {
            lua_rawgeti(co, LUA_REGISTRYINDEX, c->anchor.ref);
        } else {
            lua_pushnil(co);
            lua_pushfstring(co, "cannot connect to RabbitMQ at %s: %s", c->where, why);
            lua_pushstring(co, code);
            n = 3;
        }
        jr_waiter_resume(&c->waiter, n);
    }
    jr_anchor_release(&c->anchor); /* after the resume: the task has it on its stack by then */
}

static void on_state(int up, const char *why, void *ud)
{
    client_ud *c = ud;
    if (c->connecting) {
        finish_connect(c, up, why ? why : "", up ? NULL : connect_code(c->a));
        return;
    }
    if (up) jr_logf(JR_LOG_INFO, NULL, "RabbitMQ at %s: connected again", c->where);
    else jr_logf(JR_LOG_WARN, NULL, "RabbitMQ at %s: connection lost (%s), reconnecting", c->where, why ? why : "");
}

static void on_deadline(uv_timer_t *t)
{
    client_ud *c = t->data;
    if (!c->connecting) return;
    const char *last = c->a ? jr_amqp_last_error(c->a) : "";
    char why[400];
    snprintf(why, sizeof why, "not up within the connect timeout%s%s", *last ? ": " : "", last);
    finish_connect(c, 0, why, "timeout");
}

static void read_options(lua_State *L, jr_amqp_options *o)
{
    static const char *const known[] = {"heartbeat_s", "connect_timeout_ms", "reconnect_initial_ms",
                                        "reconnect_max_ms", "max_pending_bytes", "max_pending_ms", NULL};
    const char *what = "amqp.connect";
    jr_check_options(L, 2, what, known);
    if (lua_isnoneornil(L, 2)) return;
    const double u32 = 4294967295.0;
    o->heartbeat_s = jr_opt_uint(L, 2, what, "heartbeat_s", 65535, o->heartbeat_s);
    o->connect_timeout_ms = jr_opt_uint(L, 2, what, "connect_timeout_ms", u32, o->connect_timeout_ms);
    o->reconnect_initial_ms = jr_opt_uint(L, 2, what, "reconnect_initial_ms", u32, o->reconnect_initial_ms);
    o->reconnect_max_ms = jr_opt_uint(L, 2, what, "reconnect_max_ms", u32, o->reconnect_max_ms);
    o->max_pending_bytes = jr_opt_uint(L, 2, what, "max_pending_bytes", u32, (unsigned)o->max_pending_bytes);
    o->max_pending_ms = jr_opt_uint(L, 2, what, "max_pending_ms", u32, o->max_pending_ms);
}

/* amqp.connect(url [, opts]) -> client | nil, msg, code */
static int l_connect(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TSTRING);
    const char *url = lua_tostring(L, 1);
    jr_amqp_options o;
    jr_amqp_options_defaults(&o);
    read_options(L, &o);
    if (!jr_task_current()) return luaL_error(L, "amqp.connect() must be called inside a task");
    char err[256];
    jr_amqp_url u;
    if (jr_amqp_url_parse(url, &u, err, sizeof err) != 0) return jr_push_fail(L, err, "invalid");
    client_ud *c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    jr_anchor_init(&c->anchor);
    snprintf(c->where, sizeof c->where, "amqp://%s@%s:%d/%s", u.user, u.host, u.port,
             strcmp(u.vhost, "/") == 0 ? "" : u.vhost);
    jr_amqp_url_free(&u);
    lua_pushlightuserdata(L, &k_client_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    jr_amqp_callbacks cb = {on_state, c};
    int status;
    c->a = jr_amqp_new(jr_vm_global->loop, url, &o, &cb, &status, err, sizeof err);
    if (!c->a) return jr_push_fail(L, err, status == JR_AMQP_ENOMEM ? "nomem" : "invalid");
    c->deadline = malloc(sizeof *c->deadline);
    if (!c->deadline) {
        close_client(c);
        return jr_push_fail(L, "out of memory", "nomem");
    }
    uv_timer_init(jr_vm_global->loop, c->deadline);
    c->deadline->data = c;
    uv_timer_start(c->deadline, on_deadline, o.connect_timeout_ms, 0);
    c->connecting = 1;
    jr_anchor_hold(L, &c->anchor, -1);
    return jr_waiter_park_cancellable(L, &c->waiter, "amqp.connect()");
}

/* ---- operations answered by a callback ---- */

static client_ud *check_client(lua_State *L)
{
    return jr_checkudata(L, 1, &k_client_mt, "AMQP client");
}

static int push_closed(lua_State *L)
{
    return jr_push_fail(L, "the AMQP client is closed", "closed");
}

/* nil, msg, code on co for a failed status: 3. */
static int push_status_fail(lua_State *co, int status, const char *why)
{
    lua_pushnil(co);
    lua_pushstring(co, why && *why ? why : jr_amqp_code_name(status));
    lua_pushstring(co, jr_amqp_code_name(status));
    return 3;
}

/* The parked task gets its n values (pushed on co already), the op ends. */
static void finish_op(op *o, int n)
{
    client_ud *c = o->c;
    if (jr_waiter_thread(&o->w)) jr_waiter_resume(&o->w, n);
    free(o);
    jr_anchor_release(&c->anchor);
}

static void on_count(jr_amqp *a, int status, const char *why, uint32_t messages, uint32_t consumers, void *ud)
{
    (void)a;
    op *o = ud;
    lua_State *co = jr_waiter_thread(&o->w);
    int n = 0;
    if (co && status != JR_AMQP_OK) {
        n = push_status_fail(co, status, why);
    } else if (co && o->answer == ANS_INFO) {
        lua_createtable(co, 0, 2);
        lua_pushnumber(co, messages);
        lua_setfield(co, -2, "messages");
        lua_pushnumber(co, consumers);
        lua_setfield(co, -2, "consumers");
        n = 1;
    } else if (co) {
        lua_pushnumber(co, messages);
        n = 1;
    }
    finish_op(o, n);
}

static void on_done(jr_amqp *a, int status, const char *why, void *ud)
{
    (void)a;
    op *o = ud;
    lua_State *co = jr_waiter_thread(&o->w);
    int n = 0;
    if (co && status == JR_AMQP_OK) lua_pushboolean(co, 1), n = 1;
    else if (co) n = push_status_fail(co, status, why);
    finish_op(o, n);
}

/* An op for a call about to park: NULL (and the failure pushed, nret set)
 * when it cannot start. */
static op *new_op(lua_State *L, client_ud *c, const char *what)
{
    if (!jr_task_current()) luaL_error(L, "%s must be called inside a task", what);
    op *o = calloc(1, sizeof *o);
    if (!o) luaL_error(L, "out of memory (AMQP)");
    o->c = c;
    return o;
}

/* Park on o after the call into core answered rc. */
static int park_or_fail(lua_State *L, client_ud *c, op *o, int rc, const char *what)
{
    if (rc == 0) {
        jr_anchor_hold(L, &c->anchor, 1);
        return jr_waiter_park_cancellable(L, &o->w, what);
    }
    free(o);
    switch (rc) {
    case JR_AMQP_EINVALID:
        return luaL_error(L, "%s: invalid name, type or argument (names are 1..255 bytes)", what);
    case JR_AMQP_EBUSY:
        return jr_push_fail(L, "too many messages wait unsent (max_pending_bytes): the broker is unreachable", "busy");
    case JR_AMQP_ENOMEM: return jr_push_fail(L, "out of memory", "nomem");
    case JR_AMQP_EDISCONNECTED:
        return jr_push_fail(L, "the AMQP client is not connected (it is reconnecting): ask again later", "disconnected");
    case JR_AMQP_ENOTFOUND: return jr_push_fail(L, "no such consumer (cancelled already?)", "not_found");
    default: return push_closed(L);
    }
}

static const char *opt_string(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    const char *s = NULL;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "option %s must be a string", name);
        s = lua_tostring(L, -1); /* alive: a field of the options table */
    }
    lua_pop(L, 1);
    return s;
}

/* ac:declare_exchange(name, type [, opts]) */
static int c_declare_exchange(lua_State *L)
{
    client_ud *c = check_client(L);
    const char *name = luaL_checkstring(L, 2);
    const char *type = luaL_checkstring(L, 3);
    static const char *const none[] = {NULL};
    jr_check_options(L, 4, "declare_exchange", none);
    if (!c->a) return push_closed(L);
    op *o = new_op(L, c, "ac:declare_exchange()");
    return park_or_fail(L, c, o, jr_amqp_declare_exchange(c->a, name, type, on_done, o), "ac:declare_exchange()");
}

/* ac:declare_queue(name [, opts]) */
static int c_declare_queue(lua_State *L)
{
    client_ud *c = check_client(L);
    const char *name = luaL_checkstring(L, 2);
    static const char *const known[] = {"dead_letter_exchange", "dead_letter_routing_key", "message_ttl", "queue_type",
                                        NULL};
    jr_check_options(L, 3, "declare_queue", known);
    jr_amqp_queue_args args = {0};
    if (lua_istable(L, 3)) {
        args.dead_letter_exchange = opt_string(L, 3, "dead_letter_exchange");
        args.dead_letter_routing_key = opt_string(L, 3, "dead_letter_routing_key");
        args.queue_type = opt_string(L, 3, "queue_type");
        lua_getfield(L, 3, "message_ttl");
        if (!lua_isnil(L, -1)) {
            double v = lua_tonumber(L, -1);
            if (!lua_isnumber(L, -1) || !(v >= 1 && v <= 4294967295.0) || v != (double)(uint32_t)v)
                return luaL_error(L, "declare_queue: message_ttl must be a whole number of ms in 1..4294967295");
            args.message_ttl_ms = (uint32_t)v;
        }
        lua_pop(L, 1);
    }
    if (!c->a) return push_closed(L);
    op *o = new_op(L, c, "ac:declare_queue()");
    return park_or_fail(L, c, o, jr_amqp_declare_queue(c->a, name, &args, on_done, o), "ac:declare_queue()");
}

/* ac:bind(queue, exchange, key) */
static int c_bind(lua_State *L)
{
    client_ud *c = check_client(L);
    const char *queue = luaL_checkstring(L, 2);
    const char *exchange = luaL_checkstring(L, 3);
    const char *key = luaL_checkstring(L, 4);
    if (!c->a) return push_closed(L);
    op *o = new_op(L, c, "ac:bind()");
    return park_or_fail(L, c, o, jr_amqp_bind(c->a, queue, exchange, key, on_done, o), "ac:bind()");
}

#define MAX_HEADERS 64

/* ac:publish(exchange, key, body [, { message_id, content_type, headers }]) */
static int c_publish(lua_State *L)
{
    client_ud *c = check_client(L);
    const char *exchange = luaL_checkstring(L, 2);
    const char *key = luaL_checkstring(L, 3);
    size_t len;
    const char *body = luaL_checklstring(L, 4, &len);
    static const char *const known[] = {"message_id", "content_type", "headers", NULL};
    jr_check_options(L, 5, "publish", known);
    jr_amqp_props props = {0};
    jr_amqp_header h[MAX_HEADERS];
    if (lua_istable(L, 5)) {
        props.message_id = opt_string(L, 5, "message_id");
        props.content_type = opt_string(L, 5, "content_type");
        lua_getfield(L, 5, "headers");
        if (!lua_isnil(L, -1)) {
            if (!lua_istable(L, -1)) return luaL_error(L, "publish: option headers must be a table");
            int t = lua_gettop(L);
            lua_newtable(L); /* the values as text, kept alive until core copied them */
            for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
                if (props.nheaders == MAX_HEADERS) return luaL_error(L, "publish: at most %d headers", MAX_HEADERS);
                if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "publish: header names must be strings");
                int vt = lua_type(L, -1);
                if (vt == LUA_TBOOLEAN) lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
                else if (vt == LUA_TSTRING || vt == LUA_TNUMBER) lua_pushstring(L, lua_tostring(L, -1));
                else return luaL_error(L, "publish: header %s must be a string, number or boolean", lua_tostring(L, -2));
                jr_amqp_header *e = &h[props.nheaders++];
                e->key = lua_tostring(L, -3); /* a key of the headers table */
                e->value = lua_tolstring(L, -1, &e->vlen);
                lua_rawseti(L, t + 1, (int)props.nheaders);
            }
            props.headers = h;
        }
    }
    if (!c->a) return push_closed(L);
    op *o = new_op(L, c, "ac:publish()");
    return park_or_fail(L, c, o, jr_amqp_publish(c->a, exchange, key, body, len, &props, on_done, o), "ac:publish()");
}

/* ---- consuming ---- */

static void set_str(lua_State *L, const char *name, const char *s)
{
    if (!s) return;
    lua_pushstring(L, s);
    lua_setfield(L, -2, name);
}

/* The delivery object (consume's and get's) on L's stack; c is anchored
 * (c->anchor) by the caller's hold. A plain table with the delivery
 * metatable (its methods): its fields read at table speed, and no userdata
 * and environment table per message. What settling needs is under light
 * userdata keys (no field name): the client (kept alive by it), the tag
 * in two 32-bit halves (exact as numbers), settled once it is. */
static void set_key(lua_State *L, void *key)
{
    lua_pushlightuserdata(L, key);
    lua_insert(L, -2);
    lua_rawset(L, -3);
}

static void push_delivery(lua_State *L, client_ud *c, const jr_amqp_delivery *d)
{
    lua_createtable(L, 0, 11);
    lua_pushlstring(L, d->body, d->len);
    lua_setfield(L, -2, "body");
    lua_createtable(L, 0, (int)d->nheaders + 2); /* (+2: what the bus adds, content-type and x-retry-count) */
    for (size_t i = 0; i < d->nheaders; i++) {
        lua_pushlstring(L, d->headers[i].value, d->headers[i].vlen);
        lua_setfield(L, -2, d->headers[i].key);
    }
    lua_setfield(L, -2, "headers");
    set_str(L, "message_id", d->message_id);
    set_str(L, "content_type", d->content_type);
    set_str(L, "routing_key", d->routing_key);
    set_str(L, "exchange", d->exchange);
    set_str(L, "queue", d->queue);
    lua_pushboolean(L, d->redelivered);
    lua_setfield(L, -2, "redelivered");
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->anchor.ref);
    set_key(L, &k_client_key);
    lua_pushnumber(L, (lua_Number)(d->tag >> 32));
    set_key(L, &k_tag_hi);
    lua_pushnumber(L, (lua_Number)(d->tag & 0xffffffffu));
    set_key(L, &k_tag_lo);
    lua_pushlightuserdata(L, &k_delivery_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
}

static void on_delivery(jr_amqp *a, const jr_amqp_delivery *d, void *ud)
{
    (void)a;
    consumer *k = ud;
    lua_State *L = jr_vm_global->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, k->fn_ref);
    push_delivery(L, k->c, d);
    /* direct: only from the loop (L is the main thread: it cannot run
     * while it has a task resumed) */
    if (!k->direct || jr_task_current()) {
        jr_task_start(L, 1); /* (k may be freed from here on: fn may close the client) */
        return;
    }
    if (lua_pcall(L, 1, 0, 0) != 0) {
        jr_logf(JR_LOG_ERROR, NULL, "AMQP consumer function failed: %s",
                lua_isstring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
        lua_pop(L, 1);
    }
}

/* ac:consume(queue, prefetch, fn) -> consumer id */
static int c_consume(lua_State *L)
{
    client_ud *c = check_client(L);
    const char *queue = luaL_checkstring(L, 2);
    lua_Integer prefetch = luaL_checkinteger(L, 3);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    static const char *const known[] = {"direct", NULL};
    jr_check_options(L, 5, "consume", known);
    int direct = 0;
    if (lua_istable(L, 5)) {
        lua_getfield(L, 5, "direct");
        direct = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    if (prefetch < 1 || prefetch > 65535) return luaL_error(L, "ac:consume(): prefetch must be in 1..65535");
    if (!c->a) return push_closed(L);
    consumer *k = calloc(1, sizeof *k);
    if (!k) return luaL_error(L, "out of memory (AMQP)");
    k->c = c;
    int id = jr_amqp_consume(c->a, queue, (unsigned)prefetch, on_delivery, k);
    if (id < 0) {
        free(k);
        if (id == JR_AMQP_EINVALID) return luaL_error(L, "ac:consume(): invalid queue name (1..255 bytes)");
        if (id == JR_AMQP_ENOMEM) return jr_push_fail(L, "out of memory", "nomem");
        return push_closed(L);
    }
    lua_pushvalue(L, 4);
    k->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    k->id = id;
    k->direct = direct;
    jr_anchor_hold(L, &c->anchor, 1);
    k->next = c->consumers;
    c->consumers = k;
    lua_pushinteger(L, id);
    return 1;
}

/* Core is done with the consumer (cancel-ok, a drop, or ECLOSED from
 * close_client): no delivery can come, its function is released. */
static void on_cancelled(jr_amqp *a, int status, const char *why, void *ud)
{
    op *o = ud;
    consumer *k = o->k;
    client_ud *c = o->c;
    for (consumer **pp = &c->consumers; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    luaL_unref(jr_vm_global->L, LUA_REGISTRYINDEX, k->fn_ref);
    free(k);
    jr_anchor_release(&c->anchor); /* the consumer's hold; the op's is released by on_done */
    on_done(a, status, why, o);
}

/* ac:cancel(consumer_id) -> true | nil, msg, code */
static int c_cancel(lua_State *L)
{
    client_ud *c = check_client(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    if (!c->a) return push_closed(L);
    consumer *k = c->consumers;
    while (k && k->id != id) k = k->next;
    if (!k) return jr_push_fail(L, "no such consumer (cancelled already?)", "not_found");
    op *o = new_op(L, c, "ac:cancel()");
    o->k = k;
    return park_or_fail(L, c, o, jr_amqp_cancel(c->a, (int)id, on_cancelled, o), "ac:cancel()");
}

static void on_get(jr_amqp *a, int status, const char *why, const jr_amqp_delivery *d, void *ud)
{
    op *o = ud;
    lua_State *co = jr_waiter_thread(&o->w);
    int n = 0;
    if (co && status != JR_AMQP_OK) n = push_status_fail(co, status, why);
    else if (co && d) push_delivery(co, o->c, d), n = 1;
    else if (co) lua_pushboolean(co, 0), n = 1;
    else if (d) jr_amqp_nack(a, d->tag, 1); /* nobody waits any more (cancelled): back to the queue */
    finish_op(o, n);
}

enum { Q_INFO, Q_EXISTS, Q_PURGE, Q_GET };

/* The queries: (client, name) -> parked until the broker answered. */
static int query(lua_State *L, int kind, const char *what)
{
    client_ud *c = check_client(L);
    const char *name = luaL_checkstring(L, 2);
    if (!c->a) return push_closed(L);
    op *o = new_op(L, c, what);
    int rc;
    switch (kind) {
    case Q_INFO: o->answer = ANS_INFO, rc = jr_amqp_queue_info(c->a, name, on_count, o); break;
    case Q_PURGE: o->answer = ANS_COUNT, rc = jr_amqp_purge(c->a, name, on_count, o); break;
    case Q_EXISTS: rc = jr_amqp_exchange_exists(c->a, name, on_done, o); break;
    default: rc = jr_amqp_get(c->a, name, on_get, o); break;
    }
    return park_or_fail(L, c, o, rc, what);
}

/* ac:queue_info(name) -> { messages = ready, consumers = n } | nil, msg, code */
static int c_queue_info(lua_State *L) { return query(L, Q_INFO, "ac:queue_info()"); }
/* ac:exchange_exists(name) -> true | nil, msg, code */
static int c_exchange_exists(lua_State *L) { return query(L, Q_EXISTS, "ac:exchange_exists()"); }
/* ac:purge(name) -> count purged | nil, msg, code */
static int c_purge(lua_State *L) { return query(L, Q_PURGE, "ac:purge()"); }
/* ac:get(queue) -> delivery | false (empty) | nil, msg, code */
static int c_get(lua_State *L) { return query(L, Q_GET, "ac:get()"); }

static lua_Number get_key(lua_State *L, void *key)
{
    lua_pushlightuserdata(L, key);
    lua_rawget(L, 1);
    lua_Number v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The delivery at 1 (a method's upvalue 1 is the metatable): its client
 * (NULL once closed) and tag, and whether it is settled; raises if it is
 * not a delivery. */
static jr_amqp *delivery_of(lua_State *L, uint64_t *tag, int *is_settled)
{
    if (!lua_istable(L, 1) || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
        luaL_typerror(L, 1, "AMQP delivery");
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &k_settled);
    lua_rawget(L, 1);
    *is_settled = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &k_client_key);
    lua_rawget(L, 1);
    client_ud *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    *tag = ((uint64_t)get_key(L, &k_tag_hi) << 32) | (uint64_t)get_key(L, &k_tag_lo);
    return c ? c->a : NULL;
}

/* Like delivery_of, for a settle: raises if it is settled already. */
static jr_amqp *check_delivery(lua_State *L, const char *what, uint64_t *tag)
{
    int done;
    jr_amqp *a = delivery_of(L, tag, &done);
    if (done) luaL_error(L, "delivery:%s(): the delivery is settled already", what);
    return a;
}

static int settled(lua_State *L, int rc)
{
    lua_pushlightuserdata(L, &k_settled);
    lua_pushboolean(L, 1);
    lua_rawset(L, 1);
    switch (rc) {
    case 0: lua_pushboolean(L, 1); return 1;
    case JR_AMQP_EDISCONNECTED:
        return jr_push_fail(L, "the connection it came on is gone: the broker delivers it again", "disconnected");
    case JR_AMQP_EINVALID: return luaL_error(L, "delivery: unknown delivery tag");
    default: return push_closed(L);
    }
}

static int d_ack(lua_State *L)
{
    uint64_t tag;
    jr_amqp *a = check_delivery(L, "ack", &tag);
    return settled(L, a ? jr_amqp_ack(a, tag) : JR_AMQP_ECLOSED);
}

static int d_nack(lua_State *L)
{
    uint64_t tag;
    jr_amqp *a = check_delivery(L, "nack", &tag);
    int requeue = lua_toboolean(L, 2);
    return settled(L, a ? jr_amqp_nack(a, tag, requeue) : JR_AMQP_ECLOSED);
}

/* delivery:live(): false once the connection it came on is gone (the
 * broker delivers it again: running it now would be a duplicate). */
static int d_live(lua_State *L)
{
    uint64_t tag;
    int done;
    jr_amqp *a = delivery_of(L, &tag, &done);
    lua_pushboolean(L, !done && a && jr_amqp_tag_live(a, tag));
    return 1;
}

static int d_reject(lua_State *L)
{
    uint64_t tag;
    jr_amqp *a = check_delivery(L, "reject", &tag);
    return settled(L, a ? jr_amqp_reject(a, tag, 0) : JR_AMQP_ECLOSED);
}

/* ---- the rest ---- */

/* ac:is_up(): the connection is up (no table built: the outbox relay asks
 * after every commit) */
static int c_is_up(lua_State *L)
{
    client_ud *c = check_client(L);
    lua_pushboolean(L, c->a && jr_amqp_is_up(c->a));
    return 1;
}

static int c_stats(lua_State *L)
{
    client_ud *c = check_client(L);
    jr_amqp_stats s = {0};
    if (c->a) jr_amqp_get_stats(c->a, &s);
    lua_createtable(L, 0, 8);
    lua_pushboolean(L, c->a && jr_amqp_is_up(c->a));
    lua_setfield(L, -2, "up");
#define F(name) lua_pushnumber(L, (lua_Number)s.name), lua_setfield(L, -2, #name)
    F(published);
    F(nacked);
    F(unconfirmed);
    F(reconnects);
    F(deliveries);
    F(pending);
    F(inflight);
#undef F
    return 1;
}

static int c_close(lua_State *L)
{
    close_client(check_client(L));
    lua_pushboolean(L, 1);
    return 1;
}

static int c_gc(lua_State *L)
{
    /* unanchored: nothing parked on it, no consumer */
    close_client(lua_touserdata(L, 1));
    return 0;
}

int jr_open_amqp(lua_State *L)
{
    static const luaL_Reg client_methods[] = {
        {"declare_exchange", c_declare_exchange}, {"declare_queue", c_declare_queue}, {"bind", c_bind},
        {"publish", c_publish}, {"consume", c_consume}, {"cancel", c_cancel}, {"queue_info", c_queue_info},
        {"exchange_exists", c_exchange_exists}, {"purge", c_purge}, {"get", c_get}, {"stats", c_stats}, {"is_up", c_is_up},
        {"close", c_close}, {NULL, NULL}};
    jr_newmetatable(L, &k_client_mt, "AMQP client", client_methods, c_gc);
    static const luaL_Reg delivery_methods[] = {{"ack", d_ack}, {"nack", d_nack}, {"reject", d_reject}, {"live", d_live}, {NULL, NULL}};
    jr_newmetatable(L, &k_delivery_mt, "AMQP delivery", delivery_methods, NULL);
    static const luaL_Reg fns[] = {{"connect", l_connect}, {NULL, NULL}};
    lua_createtable(L, 0, 1);
    luaL_register(L, NULL, fns);
    return 1;
}
