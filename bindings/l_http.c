/* l_http.c - jararaca.core.http: the C HTTP server as seen from Lua.
 *
 *   http.set_handler(fn, router) every request is matched against router (a
 *                                jararaca.core.router) here, in C, and
 *                                fn(req, id, params) runs in a new task;
 *                                fn(req, nil, 404) / fn(req, nil, 405, allow)
 *                                when nothing matches
 *   local srv, err = http.listen{ host=, port=, reuseport=, max_header_size=, ... }
 *                   (handler =, router =: this listener's own, instead of
 *                   set_handler's: the metrics' admin port beside the app's)
 *   srv:port()  srv:stats()  srv:shutdown(grace_seconds)  (parks until drained)
 *   srv:close()                  stop at once: listener and every connection
 *   req:respond(status, body, content_type, headers)
 *       -> true | nil, message, "invalid" | "closed" | "answered"
 *   req:method() req:path() req:query([all]) req:header(name) req:headers()
 *   req:body() req:query_string() req:target() req:id() req:remote()
 *   req:alive() req:version_minor() req:is_upgrade()
 *   http.parse_query(qs) -> first-value table, multi-value table
 *
 * Every request gets one answer: when the task running fn ends (returns,
 * raises, is cancelled) and the request is still unanswered on a live
 * connection, the task's end guard answers 500 and logs it. A request
 * handle is valid until then: afterwards its accessors raise "this request
 * is over", respond() returns nil, message, "closed" and alive() false.
 * A listening server is anchored in the registry until it is drained or
 * closed, so the collector never stops a server; __gc only frees a stopped
 * one.
 */
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "http_attrs.h"
#include "l_http.h"
#include "l_router.h"
#include "log.h"
#include "scheduler.h"
#include "trace_ctx.h"
#include "vm.h"

static char k_req_mt, k_srv_mt;
static int g_handler_ref = LUA_NOREF;
static int g_router_ref = LUA_NOREF; /* anchors the router userdata behind g_router */
static jr_router *g_router;

/* A request as Lua sees it: a slot number and the slot's generation, not a
 * pointer. The slot holds the request's reference from its arrival until its
 * task ends (on_task_end), then is recycled with a new generation: the
 * request goes back to the server's pool at once instead of when the
 * collector finalizes a userdata (no finalizer per request, no pile of
 * finished requests and their bodies waiting for a GC cycle), and a handle
 * kept past that point is recognised as stale instead of dangling. */
typedef struct {
    uint32_t slot;
    uint32_t gen;
} req_ud;

/* A request's root span kept in C (h:trace_begin): until Lua asks for it
 * (h:trace_take), the answer echoes its traceparent (req_respond) and the
 * OTLP exporter encodes it from here (e:push_http_span). */
enum { TRACE_NONE = 0, TRACE_KEPT, TRACE_TAKEN };

typedef struct {
    jr_http_req *req; /* NULL when free */
    uint32_t gen;
    uint32_t next_free;
    unsigned char trace_state;
    jr_trace_ctx trace;
} req_slot;

#define NO_SLOT UINT32_MAX
static req_slot *g_slots;
static uint32_t g_nslots, g_free_slot = NO_SLOT;

static uint32_t slot_take(jr_http_req *req)
{
    if (g_free_slot == NO_SLOT) {
        if (g_nslots > (1u << 24)) return NO_SLOT; /* (16M requests in flight: a bound, not a limit) */
        uint32_t n = g_nslots ? g_nslots * 2 : 64;
        req_slot *grown = realloc(g_slots, n * sizeof *grown);
        if (!grown) return NO_SLOT;
        for (uint32_t i = n; i-- > g_nslots;) {
            grown[i].req = NULL;
            grown[i].gen = 0;
            grown[i].trace_state = TRACE_NONE;
            grown[i].next_free = g_free_slot;
            g_free_slot = i;
        }
        g_slots = grown;
        g_nslots = n;
    }
    uint32_t i = g_free_slot;
    g_free_slot = g_slots[i].next_free;
    g_slots[i].req = req;
    return i;
}

static void slot_put(uint32_t i)
{
    g_slots[i].req = NULL;
    g_slots[i].gen++;
    g_slots[i].trace_state = TRACE_NONE; /* (a free slot keeps no span) */
    g_slots[i].next_free = g_free_slot;
    g_free_slot = i;
}

typedef struct {
    jr_http_server *srv;
    int shutting_down;
    int drained;
    int self_ref;     /* registry ref anchoring this userdata while it serves
                         (core holds it as on_drained's argument) */
    jr_waiter waiter; /* the task in srv:shutdown() */
    /* listen{ handler =, router = }: this listener's own (the metrics'
     * admin port beside the app's port); LUA_NOREF: set_handler's */
    int handler_ref, router_ref;
    jr_router *router;
} srv_ud;

/* ---- requests ---- */

/* The request of a handle, or NULL when its task has ended (l_http.h). */
jr_http_req *jr_l_http_req(lua_State *L, int idx)
{
    req_ud *u = jr_checkudata(L, idx, &k_req_mt, "http request");
    req_slot *s = &g_slots[u->slot];
    return s->gen == u->gen ? s->req : NULL;
}

/* The request of the value at idx when it is a live request handle, else
 * NULL (never raises: the OTLP encoder reads a span's handle with it). */
static const void *g_req_mt; /* the request metatable (anchored in the registry: its address is stable) */

jr_http_req *jr_l_http_req_opt(lua_State *L, int idx)
{
    req_ud *u = lua_touserdata(L, idx);
    if (!u || !lua_getmetatable(L, idx)) return NULL;
    int same = lua_topointer(L, -1) == g_req_mt;
    lua_pop(L, 1);
    if (!same || u->slot >= g_nslots) return NULL;
    req_slot *s = &g_slots[u->slot];
    return s->gen == u->gen ? s->req : NULL;
}

static jr_http_req *handle_req(lua_State *L) { return jr_l_http_req(L, 1); }

/* The slot of the live request handle at idx (raises when idx is not a
 * request handle), or NULL when its task has ended. */
static req_slot *live_slot(lua_State *L, int idx)
{
    req_ud *u = jr_checkudata(L, idx, &k_req_mt, "http request");
    req_slot *sl = &g_slots[u->slot];
    return sl->gen == u->gen && sl->req ? sl : NULL;
}

const jr_trace_ctx *jr_l_http_kept_trace(lua_State *L, int idx, jr_http_req **req)
{
    req_ud *u = lua_touserdata(L, idx);
    if (!jr_l_http_req_opt(L, idx)) return NULL;
    req_slot *sl = &g_slots[u->slot];
    if (sl->trace_state != TRACE_KEPT) return NULL;
    *req = sl->req;
    return &sl->trace;
}

static jr_http_req *check_req(lua_State *L)
{
    jr_http_req *req = handle_req(L);
    if (!req)
        luaL_error(L, "this request is over: its task has ended (copy what a spawned task needs "
                      "from the request before the handler returns)");
    return req;
}

static const jr_http_header k_json_ct = {"Content-Type", 12, "application/json", 16};

/* The last resort: the request's task is over. An unanswered request on a
 * live connection would sit there until shutdown (CLOSE-WAIT once the client
 * gives up): answer 500 and say so. Normally dispatch (Lua) has answered. */
static void on_task_end(void *ud)
{
    uint32_t slot = (uint32_t)(uintptr_t)ud;
    jr_http_req *req = g_slots[slot].req;
    slot_put(slot); /* from now on, Lua handles of this request are stale */
    if (jr_http_req_alive(req)) {
        const char *id = jr_http_req_id(req); /* [A-Za-z0-9._-] only: no escaping needed */
        char body[160];
        int n = snprintf(body, sizeof body, "{\"detail\":\"Internal Server Error\",\"request_id\":\"%s\"}", id);
        if (n < 0 || (size_t)n >= sizeof body) n = 0;
        size_t mlen, tlen;
        const char *m = jr_http_req_method(req, &mlen);
        const char *t = jr_http_req_target(req, &tlen);
        jr_logf(JR_LOG_ERROR, id, "%.*s %.*s: the request's task ended without answering it: answered 500",
                (int)mlen, m, (int)(tlen > 200 ? 200 : tlen), t);
        jr_http_respond(req, 500, &k_json_ct, 1, body, (size_t)n);
    }
    jr_http_req_release(req);
}

static void on_request(jr_http_req *req, void *ud)
{
    srv_ud *srv = ud;
    lua_State *L = jr_vm_global->L;
    int handler_ref = srv->handler_ref != LUA_NOREF ? srv->handler_ref : g_handler_ref;
    jr_router *router = srv->handler_ref != LUA_NOREF ? srv->router : g_router;
    if (handler_ref == LUA_NOREF) {
        const char *b = "{\"detail\":\"no handler\"}";
        jr_http_respond(req, 503, &k_json_ct, 1, b, strlen(b));
        return;
    }
    uint32_t slot = slot_take(req);
    if (slot == NO_SLOT) {
        const char *b = "{\"detail\":\"out of memory\"}";
        jr_http_respond(req, 503, &k_json_ct, 1, b, strlen(b));
        return;
    }
    jr_http_req_retain(req); /* the slot's reference, until on_task_end */
    lua_rawgeti(L, LUA_REGISTRYINDEX, handler_ref);
    req_ud *u = lua_newuserdata(L, sizeof *u);
    u->slot = slot;
    u->gen = g_slots[slot].gen;
    lua_pushlightuserdata(L, &k_req_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    /* Route here: Lua gets the route id and its params, never the method
     * and path strings (req:method()/req:path() make them on demand). */
    size_t mlen, plen;
    const char *m = jr_http_req_method(req, &mlen);
    const char *p = jr_http_req_path(req, &plen);
    jr_route_match match;
    jr_router_match(router, m, mlen, p, plen, &match);
    int nargs = 3;
    if (match.status == JR_ROUTE_FOUND) {
        lua_pushinteger(L, match.route_id);
        jr_router_push_params(L, &match);
    } else {
        lua_pushnil(L);
        if (match.status == JR_ROUTE_NOT_FOUND) {
            lua_pushinteger(L, 404);
        } else {
            lua_pushinteger(L, 405);
            lua_pushstring(L, match.allow);
            nargs = 4;
        }
    }
    jr_task_start_guarded(L, nargs, on_task_end, (void *)(uintptr_t)slot);
}

/* set_handler(fn, router) */
static int l_set_handler(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    jr_router *r = jr_router_check(L, 2);
    if (g_handler_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, g_handler_ref);
    if (g_router_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, g_router_ref);
    lua_pushvalue(L, 1);
    g_handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2);
    g_router_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    g_router = r;
    return 0;
}

/* A text field of the request (NULL: empty) as a Lua string. */
static int push_text(lua_State *L, const char *(*get)(const jr_http_req *, size_t *))
{
    size_t len;
    const char *s = get(check_req(L), &len);
    lua_pushlstring(L, s ? s : "", s ? len : 0);
    return 1;
}

static int req_method(lua_State *L) { return push_text(L, jr_http_req_method); }
static int req_path(lua_State *L) { return push_text(L, jr_http_req_path); }
static int req_body(lua_State *L) { return push_text(L, jr_http_req_body); }
static int req_query_string(lua_State *L) { return push_text(L, jr_http_req_query); }
static int req_target(lua_State *L) { return push_text(L, jr_http_req_target); }

/* header(name): its value, repeated fields joined with ", " as headers()
 * joins them (docs/http.md); nil when absent. */
static int req_header(lua_State *L)
{
    jr_http_req *req = check_req(L);
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    size_t n = jr_http_req_header_count(req), found = 0;
    luaL_Buffer b;
    for (size_t i = 0; i < n; i++) {
        const char *hn, *hv;
        size_t hnl, hvl;
        jr_http_req_header_at(req, i, &hn, &hnl, &hv, &hvl);
        if (hnl != nl || strncasecmp(hn, name, nl) != 0) continue;
        if (found == 0) {
            lua_pushlstring(L, hv, hvl);
        } else {
            if (found == 1) {
                luaL_buffinit(L, &b); /* (the first value sits below the buffer's stack slots) */
                luaL_addvalue(&b);
            }
            luaL_addlstring(&b, ", ", 2);
            luaL_addlstring(&b, hv, hvl);
        }
        found++;
    }
    if (found > 1) luaL_pushresult(&b);
    return found ? 1 : 0;
}

/* All headers, names lower-cased; repeated fields joined with ", ". */
static int req_headers(lua_State *L)
{
    jr_http_req *req = check_req(L);
    size_t n = jr_http_req_header_count(req);
    lua_createtable(L, 0, (int)n);
    char lname[256];
    for (size_t i = 0; i < n; i++) {
        const char *name, *val;
        size_t nl, vl;
        jr_http_req_header_at(req, i, &name, &nl, &val, &vl);
        if (nl >= sizeof lname) nl = sizeof lname - 1;
        for (size_t k = 0; k < nl; k++) {
            char c = name[k];
            lname[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        lua_pushlstring(L, lname, nl);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, val, vl);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, val, vl);
            lua_concat(L, 3);
        }
        lua_rawset(L, -3);
    }
    return 1;
}




/* h:trace_begin(sample, trust_inbound, method) -> true when the request's
 * root span is kept in C (see req_slot), false when Lua must make it: the
 * request's method is not `method` (the one its route's span is named
 * after), or it carries a tracestate or baggage (their validation and
 * propagation are Lua's), or a valid traceparent from an untrusted caller
 * (the new trace links the remote one). The rules are jararaca.tracing's
 * start_root with w3c.extract (core/trace_ctx.h). */
static int req_trace_begin(lua_State *L)
{
    req_slot *sl = live_slot(L, 1);
    double p = luaL_checknumber(L, 2);
    int trust = lua_toboolean(L, 3);
    size_t ml, rml;
    const char *method = luaL_checklstring(L, 4, &ml);
    if (!sl) return luaL_error(L, "this request is over: its task has ended");
    jr_http_req *req = sl->req;
    const char *rm = jr_http_req_method(req, &rml);
    if (rml != ml || memcmp(rm, method, ml) != 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    jr_trace_ctx *t = &sl->trace;
    const char *tp = NULL;
    size_t tpl = 0, n = jr_http_req_header_count(req);
    int tps = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name, *val;
        size_t nl, vl;
        jr_http_req_header_at(req, i, &name, &nl, &val, &vl);
        if (nl == 11 && strncasecmp(name, "traceparent", 11) == 0) {
            tp = val;
            tpl = vl;
            tps++;
        } else if ((nl == 10 && strncasecmp(name, "tracestate", 10) == 0) ||
                   (nl == 7 && strncasecmp(name, "baggage", 7) == 0)) {
            lua_pushboolean(L, 0);
            return 1;
        }
    }
    int sampled = 0;
    /* (repeated traceparent fields are joined by Lua's reading, which no
     * longer parses: no remote parent, as here) */
    t->has_parent = tps == 1 && jr_traceparent_parse(tp, tpl, t->trace_id, t->parent_id, &sampled) == 0;
    if (t->has_parent && !trust) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (t->has_parent) {
        t->sampled = (unsigned char)sampled;
    } else {
        jr_trace_random_id(t->trace_id, 16);
        t->sampled = (unsigned char)jr_trace_sample(p);
    }
    jr_trace_random_id(t->span_id, 8);
    t->start_us = jr_trace_now_us();
    sl->trace_state = TRACE_KEPT;
    lua_pushboolean(L, 1);
    return 1;
}

static void push_word(lua_State *L, const unsigned char *b)
{
    uint32_t w = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    lua_pushnumber(L, (lua_Number)(int32_t)w); /* signed, as bit.tobit makes them */
}

/* h:trace_take() -> t1, t2, t3, t4, s1, s2 (the ids as signed 32-bit
 * words, jararaca.tracing.span's), parent_id (hex) | nil, sampled,
 * start_us; nothing when the span is not kept in C (or the request is
 * over). From then on Lua has the span and exports it; the answer still
 * echoes it from here unless Lua did. */
static int req_trace_take(lua_State *L)
{
    req_slot *sl = live_slot(L, 1);
    if (!sl || sl->trace_state != TRACE_KEPT) return 0;
    jr_trace_ctx *t = &sl->trace;
    sl->trace_state = TRACE_TAKEN;
    for (int i = 0; i < 4; i++) push_word(L, t->trace_id + 4 * i);
    push_word(L, t->span_id);
    push_word(L, t->span_id + 4);
    if (t->has_parent) {
        char hex[16];
        jr_trace_hex(hex, t->parent_id, 8);
        lua_pushlstring(L, hex, 16);
    } else {
        lua_pushnil(L);
    }
    lua_pushboolean(L, t->sampled);
    lua_pushnumber(L, (lua_Number)t->start_us);
    return 9;
}

/* h:trace_ids() -> trace_id, span_id (hex), sampled of the root span kept
 * in C; nothing when it is not (or the request is over). What a log line
 * needs, without handing the span to Lua (jararaca.log). */
static int req_trace_ids(lua_State *L)
{
    req_slot *sl = live_slot(L, 1);
    if (!sl || sl->trace_state != TRACE_KEPT) return 0;
    char hex[32];
    jr_trace_hex(hex, sl->trace.trace_id, 16);
    lua_pushlstring(L, hex, 32);
    jr_trace_hex(hex, sl->trace.span_id, 8);
    lua_pushlstring(L, hex, 16);
    lua_pushboolean(L, sl->trace.sampled);
    return 3;
}

/* http.trace_seed(): seed the root spans' ids (after a fork: each worker
 * its own sequence; jararaca.tracing.configure calls it). */
static int l_trace_seed(lua_State *L)
{
    (void)L;
    jr_trace_seed();
    return 0;
}

/* h:span_attributes(t, websocket): the request's server-span attributes
 * (core/http_attrs.h) set into table t; returns t. */
static void set_attr(void *ud, const char *k, size_t kl, const char *v, size_t vl)
{
    lua_State *L = ud;
    lua_pushlstring(L, k, kl);
    lua_pushlstring(L, v, vl);
    lua_rawset(L, 2);
}

static int req_span_attributes(lua_State *L)
{
    jr_http_req *req = check_req(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 3);
    if (jr_http_req_span_attrs(req, lua_toboolean(L, 3), set_attr, L) != 0)
        return luaL_error(L, "span_attributes: out of memory");
    lua_settop(L, 2);
    return 1;
}

static int req_id(lua_State *L)
{
    lua_pushstring(L, jr_http_req_id(check_req(L)));
    return 1;
}

static int req_remote(lua_State *L)
{
    jr_http_req *req = check_req(L);
    lua_pushstring(L, jr_http_req_remote_addr(req));
    lua_pushinteger(L, jr_http_req_remote_port(req));
    return 2;
}

static int req_alive(lua_State *L)
{
    jr_http_req *req = handle_req(L);
    lua_pushboolean(L, req && jr_http_req_alive(req));
    return 1;
}

static int req_version_minor(lua_State *L)
{
    lua_pushinteger(L, jr_http_req_version_minor(check_req(L)));
    return 1;
}

static int req_is_upgrade(lua_State *L)
{
    lua_pushboolean(L, jr_http_req_is_upgrade(check_req(L)));
    return 1;
}

static int req_start_ms(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)jr_http_req_start_ms(check_req(L)));
    return 1;
}

#define MAX_RESP_HEADERS 64

/* RFC 9110 token characters: what a header name may be made of. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_token(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i])) return 0;
    return 1;
}

static int has_ctl(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0') return 1;
    return 0;
}

/* A printable excerpt of a header name for a message: nothing a client or
 * handler sent reaches the log as CR/LF. */
static const char *shown(char *out, size_t cap, const char *s, size_t n)
{
    size_t k = 0, i = 0;
    for (; i < n && k + 4 < cap; i++) out[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (i < n) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = 0;
    return out;
}

/* The answer a handler gave cannot be sent: nil, message, "invalid". */
static int refuse(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushliteral(L, "invalid");
    return 3;
}

/* The header value on top of the stack (a string, or a number sent in its
 * decimal form) -> hs[*nh]. Converted numbers are kept alive in the table at
 * index ANCHOR (made on first need). NULL, or why it cannot be sent. */
#define ANCHOR 6
static const char *take_value(lua_State *L, const char *name, size_t nl, jr_http_header *hs,
                              size_t *nh)
{
    int t = lua_type(L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) return "must be a string or a number";
    if (*nh >= MAX_RESP_HEADERS) return "is one header line too many (at most 64)";
    size_t vl;
    const char *v;
    if (t == LUA_TNUMBER) {
        /* Convert a copy: the caller's table is left as it was. */
        if (lua_isnil(L, ANCHOR)) {
            lua_newtable(L);
            lua_replace(L, ANCHOR);
        }
        lua_pushvalue(L, -1);
        v = lua_tolstring(L, -1, &vl);
        lua_rawseti(L, ANCHOR, (int)lua_objlen(L, ANCHOR) + 1);
    } else {
        v = lua_tolstring(L, -1, &vl); /* alive: an element of the caller's table */
    }
    if (has_ctl(v, vl)) return "contains CR, LF or NUL";
    hs[(*nh)++] = (jr_http_header){name, nl, v, vl};
    return NULL;
}

/* req:respond(status, body, content_type, headers)
 *   -> true | nil, message, "invalid" | "closed" | "answered"
 * Every value is checked here and refused with a message instead of raising
 * (a handler's bad answer must become a 500, not an error in the middle of
 * dispatch): status an integer 200..599, body and content_type strings or
 * nil, headers a table { name = value or { values... } } with token names
 * and string or number values without CR/LF/NUL. */
static int req_respond(lua_State *L)
{
    jr_http_req *req = handle_req(L);
    if (!req) {
        lua_pushnil(L);
        lua_pushliteral(L, "the request is over (its task has ended)");
        lua_pushliteral(L, "closed");
        return 3;
    }
    lua_settop(L, 5);
    lua_pushnil(L); /* ANCHOR */
    char msg[200], nb[48];
    if (lua_type(L, 2) != LUA_TNUMBER) {
        snprintf(msg, sizeof msg, "the status must be an integer in 200..599 (a 1xx is not a final answer), got a %s",
                 luaL_typename(L, 2));
        return refuse(L, msg);
    }
    lua_Number sn = lua_tonumber(L, 2);
    if (!(sn >= 200 && sn <= 599) || sn != (lua_Number)(int)sn) {
        snprintf(msg, sizeof msg, "the status must be an integer in 200..599 (a 1xx is not a final answer), got %.14g", (double)sn);
        return refuse(L, msg);
    }
    int status = (int)sn;
    size_t blen = 0;
    const char *body = NULL;
    if (!lua_isnil(L, 3)) {
        if (lua_type(L, 3) != LUA_TSTRING) {
            snprintf(msg, sizeof msg, "the body must be a string, got a %s", luaL_typename(L, 3));
            return refuse(L, msg);
        }
        body = lua_tolstring(L, 3, &blen);
    }
    jr_http_header hs[MAX_RESP_HEADERS + 1]; /* (+1: the echoed traceparent) */
    size_t nh = 0;
    if (!lua_isnil(L, 4)) {
        size_t ctl;
        const char *ct = lua_type(L, 4) == LUA_TSTRING ? lua_tolstring(L, 4, &ctl) : NULL;
        if (!ct || has_ctl(ct, ctl)) {
            snprintf(msg, sizeof msg, "the content type must be a string without CR, LF or NUL, got a %s",
                     luaL_typename(L, 4));
            return refuse(L, msg);
        }
        hs[nh++] = (jr_http_header){"Content-Type", 12, ct, ctl};
    }
    if (!lua_isnil(L, 5)) {
        if (!lua_istable(L, 5)) {
            snprintf(msg, sizeof msg, "the headers must be a table, got a %s", luaL_typename(L, 5));
            return refuse(L, msg);
        }
        lua_pushnil(L);
        while (lua_next(L, 5) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                snprintf(msg, sizeof msg, "a header name must be a string, got a %s", luaL_typename(L, -2));
                return refuse(L, msg);
            }
            size_t nl;
            const char *name = lua_tolstring(L, -2, &nl);
            if (!is_token(name, nl)) {
                snprintf(msg, sizeof msg, "the header name \"%s\" is not a token (letters, digits, !#$%%&'*+-.^_`|~)",
                         shown(nb, sizeof nb, name, nl));
                return refuse(L, msg);
            }
            const char *why = NULL;
            if (lua_istable(L, -1)) {
                /* Several values: one header line each (Set-Cookie). */
                size_t n = lua_objlen(L, -1);
                for (size_t i = 1; i <= n && !why; i++) {
                    lua_rawgeti(L, -1, (int)i);
                    why = take_value(L, name, nl, hs, &nh);
                    lua_pop(L, 1);
                }
            } else {
                why = take_value(L, name, nl, hs, &nh);
            }
            if (why) {
                snprintf(msg, sizeof msg, "the value of the header \"%s\" %s", shown(nb, sizeof nb, name, nl), why);
                return refuse(L, msg);
            }
            lua_pop(L, 1);
        }
    }
    /* A Content-Type among the headers is the caller's last word: it
     * replaces the content_type argument instead of a second line. */
    if (!lua_isnil(L, 4))
        for (size_t i = 1; i < nh; i++)
            if (hs[i].nlen == 12 && strncasecmp(hs[i].name, "content-type", 12) == 0) {
                memmove(hs, hs + 1, (nh - 1) * sizeof *hs);
                nh--;
                break;
            }
    /* A root span kept in C, or taken over by Lua since (same ids), is
     * echoed as `traceparent`, unless the answer has one: the app's own, or
     * jararaca.tracing's echo of a Lua span. */
    char tp[JR_TRACEPARENT_LEN];
    req_slot *sl = live_slot(L, 1);
    if (sl && sl->trace_state != TRACE_NONE) {
        int own = 0;
        for (size_t i = 0; i < nh && !own; i++)
            own = hs[i].nlen == 11 && strncasecmp(hs[i].name, "traceparent", 11) == 0;
        if (!own) {
            jr_traceparent_format(tp, sl->trace.trace_id, sl->trace.span_id, sl->trace.sampled);
            hs[nh++] = (jr_http_header){"traceparent", 11, tp, JR_TRACEPARENT_LEN};
        }
    }
    int rc = jr_http_respond(req, status, hs, nh, body, blen);
    if (rc == JR_HTTP_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    if (rc == JR_HTTP_EINVALID) {
        lua_pushliteral(L, "the answer was refused by the server (bad status or header)");
        lua_pushliteral(L, "invalid");
    } else if (rc == JR_HTTP_ECLOSED) {
        lua_pushliteral(L, "the connection is closed");
        lua_pushliteral(L, "closed");
    } else {
        lua_pushliteral(L, "the request was already answered");
        lua_pushliteral(L, "answered");
    }
    return 3;
}

/* ---- query strings ---- */

/* Push { name = first value } and, when want_all, { name = { every value } }
 * too (only built when asked for: most handlers read first values only, and
 * this runs on the hot path). Returns how many tables it pushed. */
static int push_query(lua_State *L, const char *qs, size_t len, int want_all)
{
    /* Sized once: the table is not rehashed while it fills. */
    int fields = len > 0;
    for (size_t k = 0; k < len; k++) fields += qs[k] == '&' || qs[k] == ';';
    lua_createtable(L, 0, fields > 64 ? 64 : fields);
    int first = lua_gettop(L);
    if (want_all) lua_newtable(L);
    else lua_pushnil(L);
    int all = first + 1;
    char stackbuf[512];
    /* A long query decodes into a userdata: freed by the collector even if a
     * push below raises (out of memory). */
    char *buf = len < sizeof stackbuf ? stackbuf : lua_newuserdata(L, len + 1);
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && qs[j] != '&' && qs[j] != ';') j++;
        if (j > i) {
            size_t eq = i;
            while (eq < j && qs[eq] != '=') eq++;
            long kl = jr_http_url_decode(buf, qs + i, eq - i, 1);
            if (kl > 0) {
                lua_pushlstring(L, buf, (size_t)kl); /* key */
                long vl = eq < j ? jr_http_url_decode(buf, qs + eq + 1, j - eq - 1, 1) : 0;
                if (vl < 0) vl = 0; /* a malformed escape: keep the key, empty value */
                lua_pushlstring(L, buf, (size_t)vl); /* value */
                /* first[key] = value if absent */
                lua_pushvalue(L, -2);
                lua_rawget(L, first);
                int absent = lua_isnil(L, -1);
                lua_pop(L, 1);
                if (absent) {
                    lua_pushvalue(L, -2);
                    lua_pushvalue(L, -2);
                    lua_rawset(L, first);
                }
                if (!want_all) {
                    lua_pop(L, 2);
                    i = j + 1;
                    continue;
                }
                /* all[key][#+1] = value */
                lua_pushvalue(L, -2);
                lua_rawget(L, all);
                if (lua_isnil(L, -1)) {
                    lua_pop(L, 1);
                    lua_createtable(L, 1, 0);
                    lua_pushvalue(L, -3);
                    lua_pushvalue(L, -2);
                    lua_rawset(L, all);
                }
                lua_pushvalue(L, -2);
                lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
                lua_pop(L, 3);
            }
        }
        i = j + 1;
    }
    lua_settop(L, want_all ? all : first);
    return want_all ? 2 : 1;
}

/* parse_query(qs [, all]) -> { name = first value } [, { name = { all values } }] */
static int l_parse_query(lua_State *L)
{
    size_t len;
    const char *qs = luaL_checklstring(L, 1, &len);
    return push_query(L, qs, len, lua_toboolean(L, 2));
}

/* req:query([all]): parse_query of the request's query string, without
 * making the query string a Lua string first. */
static int req_query(lua_State *L)
{
    size_t len;
    const char *q = jr_http_req_query(check_req(L), &len);
    return push_query(L, q ? q : "", q ? len : 0, lua_toboolean(L, 2));
}

/* url_decode(s [, plus_as_space]) -> string | nil, message, "invalid" */
static int l_url_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char stackbuf[512];
    char *buf = len < sizeof stackbuf ? stackbuf : malloc(len + 1);
    if (!buf) return luaL_error(L, "out of memory");
    long n = jr_http_url_decode(buf, s, len, lua_toboolean(L, 2));
    if (n < 0) {
        if (buf != stackbuf) free(buf);
        return jr_push_fail(L, "malformed percent-encoding (a % not followed by two hex digits)", "invalid");
    }
    lua_pushlstring(L, buf, (size_t)n);
    if (buf != stackbuf) free(buf);
    return 1;
}

static int l_status_text(lua_State *L)
{
    lua_pushstring(L, jr_http_status_text((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* ---- servers ---- */

static srv_ud *check_srv(lua_State *L)
{
    srv_ud *u = jr_checkudata(L, 1, &k_srv_mt, "http server");
    if (!u->srv) luaL_error(L, "http server is closed");
    return u;
}

static size_t opt_size(lua_State *L, const char *f, size_t def)
{
    lua_getfield(L, 1, f);
    size_t v = def;
    if (!lua_isnil(L, -1)) {
        /* 2^31: no limit or port is that large, and every cast below is defined */
        if (!lua_isnumber(L, -1) || !(lua_tonumber(L, -1) >= 0 && lua_tonumber(L, -1) < 2147483648.0))
            luaL_error(L, "http.listen: option %s must be a number in 0..2^31-1", f);
        v = (size_t)lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* Drop a listener's own handler and router. */
static void unref_handler(lua_State *L, srv_ud *u)
{
    if (u->handler_ref == LUA_NOREF) return;
    luaL_unref(L, LUA_REGISTRYINDEX, u->handler_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, u->router_ref);
    u->handler_ref = u->router_ref = LUA_NOREF;
    u->router = NULL;
}

static int l_listen(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    jr_http_config cfg;
    jr_http_config_defaults(&cfg);
    lua_getfield(L, 1, "host");
    if (!lua_isnil(L, -1)) cfg.host = luaL_checkstring(L, -1); /* kept alive by the table */
    lua_pop(L, 1);
    cfg.port = (int)opt_size(L, "port", (size_t)cfg.port);
    lua_getfield(L, 1, "reuseport");
    cfg.reuseport = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "access_log");
    cfg.access_log = lua_toboolean(L, -1);
    lua_pop(L, 1);
    cfg.backlog = (int)opt_size(L, "backlog", (size_t)cfg.backlog);
    cfg.max_header_size = opt_size(L, "max_header_size", cfg.max_header_size);
    cfg.max_headers = opt_size(L, "max_headers", cfg.max_headers);
    cfg.max_body_size = opt_size(L, "max_body_size", cfg.max_body_size);
    cfg.header_timeout_ms = (unsigned)opt_size(L, "header_timeout_ms", cfg.header_timeout_ms);
    cfg.body_timeout_ms = (unsigned)opt_size(L, "body_timeout_ms", cfg.body_timeout_ms);
    cfg.idle_timeout_ms = (unsigned)opt_size(L, "idle_timeout_ms", cfg.idle_timeout_ms);
    cfg.write_timeout_ms = (unsigned)opt_size(L, "write_timeout_ms", cfg.write_timeout_ms);
    cfg.max_connections = (unsigned)opt_size(L, "max_connections", cfg.max_connections);
    cfg.max_keepalive_requests = (unsigned)opt_size(L, "max_keepalive_requests", cfg.max_keepalive_requests);

    srv_ud *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    lua_pushlightuserdata(L, &k_srv_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    char err[256];
    u->self_ref = u->handler_ref = u->router_ref = LUA_NOREF;
    lua_getfield(L, 1, "handler");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TFUNCTION);
        lua_getfield(L, 1, "router");
        u->router = jr_router_check(L, -1);
        u->router_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        u->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_pop(L, 1);
    }
    int uverr = 0;
    u->srv = jr_http_server_start(jr_vm_global->loop, &cfg, on_request, u, err, sizeof err, &uverr);
    if (!u->srv) unref_handler(L, u);
    if (!u->srv) {
        if (uverr == 0) return jr_push_fail(L, err, "invalid");
        lua_pushnil(L);
        lua_pushstring(L, err);
        jr_push_uv_code(L, uverr);
        return 3;
    }
    /* Anchored while it serves: a server nobody references still answers
     * until srv:shutdown() or srv:close() (the collector never stops one),
     * and core holds u (the shutdown waiter) until on_drained. */
    lua_pushvalue(L, -1);
    u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static void unanchor(srv_ud *u)
{
    unref_handler(jr_vm_global->L, u); /* no request arrives after the drain or close */
    if (u->self_ref == LUA_NOREF) return;
    luaL_unref(jr_vm_global->L, LUA_REGISTRYINDEX, u->self_ref);
    u->self_ref = LUA_NOREF;
}

static void wake_shutdown(srv_ud *u)
{
    lua_State *co = jr_waiter_thread(&u->waiter);
    if (co) {
        lua_pushboolean(co, 1);
        jr_waiter_resume(&u->waiter, 1);
    }
}

static int srv_port(lua_State *L)
{
    lua_pushinteger(L, jr_http_server_port(check_srv(L)->srv));
    return 1;
}

static int srv_stats(lua_State *L)
{
    srv_ud *u = check_srv(L);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, (lua_Number)jr_http_server_connections(u->srv));
    lua_setfield(L, -2, "connections");
    lua_pushnumber(L, (lua_Number)jr_http_server_inflight(u->srv));
    lua_setfield(L, -2, "inflight");
    return 1;
}

static void on_drained(void *ud)
{
    srv_ud *u = ud;
    u->drained = 1;
    /* Core is done with u. Unanchor before waking: the woken task may run
     * (and collect) at once; the waiting task's stack keeps u alive until
     * the wake below has read it. */
    unanchor(u);
    wake_shutdown(u);
}

/* srv:shutdown(grace_seconds) -> true once every connection is gone */
static int srv_shutdown(lua_State *L)
{
    srv_ud *u = check_srv(L);
    double grace = luaL_optnumber(L, 2, 30);
    /* a day at most: the milliseconds fit an unsigned, and NaN is refused */
    luaL_argcheck(L, grace >= 0 && grace <= 86400, 2, "grace must be a number of seconds in 0..86400");
    if (u->drained) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!jr_task_current()) return luaL_error(L, "shutdown() must be called inside a task");
    if (!u->shutting_down) {
        u->shutting_down = 1;
        jr_http_server_shutdown(u->srv, (unsigned)(grace * 1000.0), on_drained, u);
    }
    if (u->drained) { /* finished synchronously: nothing to wait for */
        lua_pushboolean(L, 1);
        return 1;
    }
    return jr_waiter_park(L, &u->waiter, "server:shutdown()");
}

/* srv:close() -> true: stop now (listener and every connection, answered
 * or not); a task waiting in srv:shutdown() returns true. */
static int srv_close(lua_State *L)
{
    srv_ud *u = jr_checkudata(L, 1, &k_srv_mt, "http server");
    if (u->srv) {
        jr_http_server *srv = u->srv;
        u->srv = NULL;
        u->drained = 1;
        jr_http_server_free(srv); /* closes handles; the memory goes with the last close callback */
        unanchor(u); /* u is our argument: alive for this call */
        wake_shutdown(u);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Only frees: a server still serving is anchored (see l_listen), so here
 * it has been drained or closed already. */
static int srv_gc(lua_State *L)
{
    srv_ud *u = lua_touserdata(L, 1);
    if (u && u->srv) {
        jr_http_server_free(u->srv);
        u->srv = NULL;
    }
    return 0;
}

int jr_open_http(lua_State *L)
{
    static const luaL_Reg req_methods[] = {
        {"header", req_header},   {"headers", req_headers},       {"body", req_body},
        {"query_string", req_query_string}, {"target", req_target}, {"id", req_id},
        {"remote", req_remote},   {"alive", req_alive},           {"version_minor", req_version_minor},
        {"is_upgrade", req_is_upgrade}, {"start_ms", req_start_ms}, {"respond", req_respond},
        {"method", req_method},   {"path", req_path},             {"query", req_query},
        {"span_attributes", req_span_attributes}, {"trace_begin", req_trace_begin},
        {"trace_take", req_trace_take}, {"trace_ids", req_trace_ids}, {NULL, NULL}};
    static const luaL_Reg srv_methods[] = {
        {"port", srv_port}, {"stats", srv_stats}, {"shutdown", srv_shutdown},
        {"close", srv_close}, {NULL, NULL}};
    jr_newmetatable(L, &k_req_mt, "http request", req_methods, NULL);
    lua_pushlightuserdata(L, &k_req_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    g_req_mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    jr_newmetatable(L, &k_srv_mt, "http server", srv_methods, srv_gc);
    static const luaL_Reg fns[] = {{"set_handler", l_set_handler}, {"listen", l_listen},
                                   {"parse_query", l_parse_query}, {"url_decode", l_url_decode},
                                   {"status_text", l_status_text}, {"trace_seed", l_trace_seed},
                                   {NULL, NULL}};
    lua_createtable(L, 0, 8);
    luaL_register(L, NULL, fns);
    return 1;
}
