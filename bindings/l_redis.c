/* l_redis.c - jararaca.core.redis: Redis commands from Lua, on the client of
 * core/redis.h (the one the WebSocket backplane uses). Every call that waits
 * for Redis parks its task; the loop never blocks.
 *
 *   local redis = require "jararaca.core.redis"
 *   local c, msg, code = redis.connect(url [, opts])   parks until the client is up
 *       url: redis://[[user]:password@]host[:port][/db]
 *       opts: timeout_ms (each command's, default 5000; 0 = none),
 *       connect_timeout_ms, reconnect_initial_ms, reconnect_max_ms,
 *       health_interval_ms (core's options)
 *       -> client | nil, msg, "invalid" (the URL or an option value)
 *          | "refused" (AUTH or SELECT refused) | "unreachable" (resolve,
 *          TCP connect, or the connection dropped during the handshake)
 *          | "timeout" (not up within connect_timeout_ms) | "cancelled"
 *       The first failed attempt answers (the client is then closed): the
 *       caller decides whether to try again. Messages name redis://host:port/db,
 *       never the password.
 *   c:command(name, args...)  strings and numbers (whole numbers are sent
 *       as integers, 1e15 as "1000000000000000"), parks until the reply:
 *       status and string replies -> string; integer -> number; nil -> nil
 *       (a lone nil: no message follows it); array -> a table 1..n whose nil
 *       elements are redis.null (the lightuserdata NULL, == json.null) and
 *       whose error elements are { error = "text" };
 *       an error reply -> nil, its text, "redis"
 *       | nil, msg, "disconnected" (the command connection is down: answered
 *         at once while the client reconnects; or it dropped before the
 *         reply: the command may have run) | "timeout" (no reply within
 *         timeout_ms: it may have run; its late reply is dropped) | "closed"
 *         | "cancelled" (a j.timeout around it; it may have run)
 *       (P)SUBSCRIBE, (P)UNSUBSCRIBE and MONITOR raise: replies come in
 *       order on one connection, and those would hijack it. Blocking
 *       commands (BLPOP...) hold every later command: do not use them.
 *   c:is_up() -> bool;  c:close() -> true (parked commands answer "closed")
 *
 * Lifetime: the userdata is anchored in the registry while a call is parked
 * on it (core holds a pointer to it); an idle one is closed by the collector. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis.h"
#include "redis_url.h"
#include "scheduler.h"
#include "vm.h"

static char k_client_mt;

#define MAX_ARGS 100000  /* far beyond any sane command; bounds the allocation */
#define MAX_DEPTH 32     /* nested arrays (EVAL can return any nesting) */

typedef struct client_ud {
    jr_redis *r;      /* NULL once closed */
    int connecting;   /* redis.connect waits for the first state */
    jr_waiter waiter; /* the task in redis.connect */
    unsigned timeout_ms;
    jr_anchor anchor; /* held while redis.connect or a command is parked */
    char where[300]; /* redis://host:port/db: never the password */
} client_ud;

typedef struct {
    client_ud *c;
    jr_waiter w;
} op;

static void close_client(client_ud *c)
{
    if (!c->r) return;
    jr_redis *r = c->r;
    c->r = NULL;
    jr_redis_free(r); /* parked commands answer "closed" (their ops release their holds) */
}

/* ---- connect ---- */

/* A failed first attempt's code, from core's failure kind (never from
 * the text of its reason). */
static const char *connect_code(int kind)
{
    switch (kind) {
    case JR_REDIS_EREFUSED: return "refused";
    case JR_REDIS_ETIMEOUT: return "timeout";
    case JR_REDIS_ENOMEM: return "nomem";
    default: return "unreachable";
    }
}

static void on_state(int up, const char *why, void *ud)
{
    client_ud *c = ud;
    why = why ? why : "";
    if (!c->connecting) {
        if (up) jr_logf(JR_LOG_INFO, NULL, "Redis at %s: connected again", c->where);
        else jr_logf(JR_LOG_WARN, NULL, "Redis at %s: connection lost (%s), reconnecting", c->where, why);
        return;
    }
    c->connecting = 0;
    int kind = c->r ? jr_redis_last_failure(c->r) : JR_REDIS_EDISCONNECTED;
    lua_State *co = jr_waiter_thread(&c->waiter);
    if (!co || !up) close_client(c); /* failed, or nobody waits any more (cancelled) */
    if (co) {
        int n = 1;
        if (up) {
            lua_rawgeti(co, LUA_REGISTRYINDEX, c->anchor.ref);
        } else {
            lua_pushnil(co);
            lua_pushfstring(co, "cannot connect to Redis at %s: %s", c->where, why);
            lua_pushstring(co, connect_code(kind));
            n = 3;
        }
        jr_waiter_resume(&c->waiter, n);
    }
    jr_anchor_release(&c->anchor); /* after the resume: the task has it on its stack by then */
}

static unsigned read_options(lua_State *L, jr_redis_options *o)
{
    static const char *const known[] = {"timeout_ms", "connect_timeout_ms", "reconnect_initial_ms",
                                        "reconnect_max_ms", "health_interval_ms", NULL};
    const char *what = "redis.connect";
    const double u32 = 4294967295.0;
    jr_check_options(L, 2, what, known);
    if (lua_isnoneornil(L, 2)) return 5000;
    o->connect_timeout_ms = jr_opt_uint(L, 2, what, "connect_timeout_ms", u32, o->connect_timeout_ms);
    o->reconnect_initial_ms = jr_opt_uint(L, 2, what, "reconnect_initial_ms", u32, o->reconnect_initial_ms);
    o->reconnect_max_ms = jr_opt_uint(L, 2, what, "reconnect_max_ms", u32, o->reconnect_max_ms);
    o->health_interval_ms = jr_opt_uint(L, 2, what, "health_interval_ms", u32, o->health_interval_ms);
    return jr_opt_uint(L, 2, what, "timeout_ms", u32, 5000);
}

/* redis.connect(url [, opts]) -> client | nil, msg, code */
static int l_connect(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TSTRING);
    const char *url = lua_tostring(L, 1);
    jr_redis_options o;
    jr_redis_options_defaults(&o);
    unsigned timeout_ms = read_options(L, &o);
    if (!jr_task_current()) return luaL_error(L, "redis.connect() must be called inside a task");
    char err[256];
    jr_redis_url u;
    if (jr_redis_url_parse(url, &u, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid Redis URL: %s", err);
        lua_pushliteral(L, "invalid");
        return 3;
    }
    client_ud *c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    jr_anchor_init(&c->anchor);
    c->timeout_ms = timeout_ms;
    int v6 = strchr(u.host, ':') != NULL;
    snprintf(c->where, sizeof c->where, "redis://%s%s%s:%d/%d", v6 ? "[" : "", u.host, v6 ? "]" : "", u.port, u.db);
    jr_redis_url_free(&u);
    lua_pushlightuserdata(L, &k_client_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    jr_redis_callbacks cb = {NULL, on_state, c};
    c->r = jr_redis_new(jr_vm_global->loop, url, &o, &cb, err, sizeof err);
    if (!c->r) return jr_push_fail(L, err, strcmp(err, "out of memory") == 0 ? "nomem" : "invalid");
    c->connecting = 1;
    jr_anchor_hold(L, &c->anchor, -1);
    return jr_waiter_park_cancellable(L, &c->waiter, "redis.connect()");
}

/* ---- commands ---- */

static client_ud *check_client(lua_State *L)
{
    return jr_checkudata(L, 1, &k_client_mt, "Redis client");
}

static void push_reply(lua_State *co, const jr_redis_reply *rp, int depth)
{
    size_t len;
    const char *s;
    switch (jr_redis_reply_type(rp)) {
    case JR_REDIS_REPLY_STRING:
    case JR_REDIS_REPLY_STATUS:
        s = jr_redis_reply_str(rp, &len);
        lua_pushlstring(co, s, len);
        break;
    case JR_REDIS_REPLY_INTEGER: lua_pushnumber(co, (lua_Number)jr_redis_reply_integer(rp)); break;
    case JR_REDIS_REPLY_ERROR: /* inside an array only (a top-level one is nil, text, "redis") */
        s = jr_redis_reply_str(rp, &len);
        lua_createtable(co, 0, 1);
        lua_pushlstring(co, s, len);
        lua_setfield(co, -2, "error");
        break;
    case JR_REDIS_REPLY_ARRAY: {
        size_t n = jr_redis_reply_count(rp);
        if (depth >= MAX_DEPTH || !lua_checkstack(co, 4)) {
            /* no sane reply nests this deep: say so rather than crash */
            lua_createtable(co, 0, 1);
            lua_pushliteral(co, "reply nested too deeply");
            lua_setfield(co, -2, "error");
            break;
        }
        lua_createtable(co, n > 0x7fffffff ? 0x7fffffff : (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_reply(co, jr_redis_reply_at(rp, i), depth + 1);
            lua_rawseti(co, -2, (int)(i + 1));
        }
        break;
    }
    default: lua_pushlightuserdata(co, NULL); break; /* nil: redis.null inside arrays */
    }
}

static void on_reply(jr_redis *r, int status, const jr_redis_reply *rp, void *ud)
{
    (void)r;
    op *o = ud;
    client_ud *c = o->c;
    lua_State *co = jr_waiter_thread(&o->w);
    if (co) {
        int n = 1;
        if (status != JR_REDIS_OK) {
            lua_pushnil(co);
            if (status == JR_REDIS_ETIMEOUT)
                lua_pushfstring(co, "Redis at %s: no reply within %d ms (the command may have run)", c->where,
                                (int)c->timeout_ms);
            else if (status == JR_REDIS_EDISCONNECTED)
                lua_pushfstring(co, "Redis at %s: the connection was lost before the reply (the command may have run)",
                                c->where);
            else lua_pushfstring(co, "the Redis client of %s is closed", c->where);
            lua_pushstring(co, jr_redis_code_name(status));
            n = 3;
        } else if (jr_redis_reply_type(rp) == JR_REDIS_REPLY_ERROR) {
            size_t len;
            const char *s = jr_redis_reply_str(rp, &len);
            lua_pushnil(co);
            lua_pushlstring(co, s, len);
            lua_pushliteral(co, "redis");
            n = 3;
        } else if (jr_redis_reply_type(rp) == JR_REDIS_REPLY_NIL) {
            lua_pushnil(co);
        } else {
            push_reply(co, rp, 0);
        }
        jr_waiter_resume(&o->w, n);
    }
    free(o);
    jr_anchor_release(&c->anchor);
}

/* c:command(name, args...) -> reply | nil, msg, code */
static int c_command(lua_State *L)
{
    client_ud *c = check_client(L);
    int argc = lua_gettop(L) - 1;
    if (argc < 1) return luaL_error(L, "client:command(name, ...): the command name is missing");
    if (argc > MAX_ARGS) return luaL_error(L, "client:command(): at most %d arguments", MAX_ARGS);
    for (int i = 2; i <= argc + 1; i++) {
        int t = lua_type(L, i);
        if (t == LUA_TNUMBER) {
            /* Lua's %.14g would send 1e+15 for a whole number Redis wants
             * as digits (a tick, a token): whole numbers go as integers */
            double v = lua_tonumber(L, i);
            char buf[32];
            if (v == floor(v) && fabs(v) < 9.2e18) snprintf(buf, sizeof buf, "%lld", (long long)v);
            else snprintf(buf, sizeof buf, "%.17g", v);
            lua_pushstring(L, buf);
            lua_replace(L, i);
        } else if (t != LUA_TSTRING) {
            return luaL_error(L, "client:command(): argument #%d must be a string or a number, got %s", i - 1,
                              luaL_typename(L, i));
        }
    }
    if (!c->r) return jr_push_fail(L, "the Redis client is closed", "closed");
    if (!jr_task_current()) return luaL_error(L, "client:command() must be called inside a task");
    const char **argv = malloc(sizeof *argv * (size_t)argc);
    size_t *lens = malloc(sizeof *lens * (size_t)argc);
    op *o = calloc(1, sizeof *o);
    if (!argv || !lens || !o) {
        free(argv), free(lens), free(o);
        return jr_push_fail(L, "out of memory", "nomem");
    }
    for (int i = 0; i < argc; i++) argv[i] = lua_tolstring(L, i + 2, &lens[i]);
    o->c = c;
    /* hiredis copies the arguments into its output buffer at once */
    int rc = jr_redis_command(c->r, argc, argv, lens, c->timeout_ms, on_reply, o);
    free(argv);
    free(lens);
    if (rc == JR_REDIS_OK) {
        jr_anchor_hold(L, &c->anchor, 1);
        return jr_waiter_park_cancellable(L, &o->w, "client:command()");
    }
    free(o);
    switch (rc) {
    case JR_REDIS_EINVALID:
        return luaL_error(L, "client:command(): %s cannot run here (pub/sub and MONITOR commands are refused)",
                          lua_tostring(L, 2));
    case JR_REDIS_EDISCONNECTED:
        return jr_push_fail(L, "Redis is not connected (the client is reconnecting): try again later", "disconnected");
    case JR_REDIS_ENOMEM: return jr_push_fail(L, "out of memory", "nomem");
    default: return jr_push_fail(L, "the Redis client is closed", "closed");
    }
}

static int c_is_up(lua_State *L)
{
    client_ud *c = check_client(L);
    lua_pushboolean(L, c->r && jr_redis_is_up(c->r));
    return 1;
}

static int c_close(lua_State *L)
{
    close_client(check_client(L));
    lua_pushboolean(L, 1);
    return 1;
}

static int c_tostring(lua_State *L)
{
    client_ud *c = lua_touserdata(L, 1); /* only ever this type's __tostring */
    lua_pushfstring(L, "Redis client (%s%s)", c->where, c->r ? "" : ", closed");
    return 1;
}

static int c_gc(lua_State *L)
{
    close_client(lua_touserdata(L, 1)); /* unanchored: nothing is parked on it */
    return 0;
}

int jr_open_redis(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"command", c_command}, {"is_up", c_is_up}, {"close", c_close}, {NULL, NULL}};
    jr_newmetatable(L, &k_client_mt, "Redis client", methods, c_gc);
    lua_pushlightuserdata(L, &k_client_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, c_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"connect", l_connect}, {NULL, NULL}};
    lua_createtable(L, 0, 2);
    luaL_register(L, NULL, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
