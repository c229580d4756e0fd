/* l_http_client.c - jararaca.core.http_client: HTTP/1.1 requests from Lua on
 * the client of core/http_client.h (keep-alive pools, HTTPS). A request parks
 * its task; the loop never blocks. The RPC client (RestClient) is built on it.
 *
 *   local http = require "jararaca.core.http_client"
 *   local client = http.new{ max_per_origin = 32, max_idle_per_origin = 32,
 *       idle_timeout = 30, connect_timeout = 5 (seconds), max_response = 64 MiB,
 *       tls = { ca_file = nil, verify = true } }                 -- all optional
 *   client:request{ method = "GET", url = "http://host:port/path?q",
 *       headers = { ["accept"] = "application/json" } or { {name, value}, ... },
 *       body = "..." (string or nil), timeout = 10 (seconds, the whole request
 *       including the wait for a connection; default 30, 0 = none) }
 *     -> { status = 200, headers = { [lowercased name] = value (repeats joined
 *          with ", ") }, body = "..." }
 *     | nil, msg, code: "timeout", "refused" (connect failed), "resolve" (DNS),
 *       "closed" (the peer closed or reset mid-request, or client:close()),
 *       "tls" (handshake or certificate), "too_large" (max_response),
 *       "invalid" (a malformed response), "nomem", "cancelled" (the task was
 *       cancelled: j.timeout, a handler's timeout; the request's connection
 *       is closed, never pooled)
 *     Misuse raises: req not a table, no url, a URL not http(s), a bad
 *     method or header, outside a task.
 *   client:stats() -> { connections, idle, in_use, queued, requests, reused }
 *   http.retry_after(value) -> seconds | nil   a Retry-After header's wait:
 *       delta-seconds or an IMF-fixdate (core/retry_after.h); nil when it is
 *       neither (or value is not a string)
 *   client:close()  idempotent (also on GC); parked requests end with
 *       nil, msg, "closed"
 *
 * Cancellation: a C function cannot run code when its task is resumed by a
 * cancel (LuaJIT has no continuations), so `request` is a small Lua wrapper
 * around the parking C function: on "cancelled" it calls back into C to
 * abort the request the task left behind.
 *
 * Lifetime: the userdata is anchored in the registry while a request is
 * parked on it (core holds pointers to its ops). */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_client.h"
#include "retry_after.h"
#include "scheduler.h"
#include "vm.h"

static char k_client_mt;

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_HEADERS 1000

typedef struct op op;

typedef struct {
    jr_hc *hc;      /* NULL once closed */
    jr_anchor anchor;
    op *ops;        /* requests in flight */
} client_ud;

struct op {
    client_ud *cu;
    jr_hc_req *r;
    jr_waiter w;
    op *prev, *next;
};

static void op_unlink(op *o)
{
    client_ud *cu = o->cu;
    if (o->prev) o->prev->next = o->next;
    else cu->ops = o->next;
    if (o->next) o->next->prev = o->prev;
    o->prev = o->next = NULL;
}

/* Raise at the caller of client:request (level 2: above the Lua wrapper). */
static int misuse(lua_State *L, const char *fmt, const char *arg)
{
    luaL_where(L, 2);
    lua_pushfstring(L, fmt, arg ? arg : "");
    lua_concat(L, 2);
    return lua_error(L);
}

static void push_response(lua_State *co, const jr_hc_response *res)
{
    lua_createtable(co, 0, 3);
    lua_pushinteger(co, res->status);
    lua_setfield(co, -2, "status");
    lua_createtable(co, 0, (int)(res->nhdr > 64 ? 64 : res->nhdr));
    for (size_t i = 0; i < res->nhdr; i++) {
        lua_pushlstring(co, res->names[i], res->name_lens[i]);
        lua_pushvalue(co, -1);
        lua_rawget(co, -3);
        if (lua_isnil(co, -1)) {
            lua_pop(co, 1);
            lua_pushlstring(co, res->values[i], res->value_lens[i]);
        } else {
            /* a repeated header: one value, as RFC 9110 5.3 combines them */
            lua_pushliteral(co, ", ");
            lua_pushlstring(co, res->values[i], res->value_lens[i]);
            lua_concat(co, 3);
        }
        lua_rawset(co, -3);
    }
    lua_setfield(co, -2, "headers");
    lua_pushlstring(co, res->body, res->body_len);
    lua_setfield(co, -2, "body");
}

static void on_done(jr_hc_req *r, int status, const jr_hc_response *res, const char *msg, void *ud)
{
    (void)r;
    op *o = ud;
    client_ud *cu = o->cu;
    op_unlink(o);
    o->r = NULL;
    lua_State *co = jr_waiter_thread(&o->w);
    if (co) {
        int n = 1;
        if (status == JR_HC_OK) {
            push_response(co, res);
        } else {
            lua_pushnil(co);
            lua_pushstring(co, msg ? msg : "request failed");
            lua_pushstring(co, jr_hc_code_name(status));
            n = 3;
        }
        jr_waiter_resume(&o->w, n);
    }
    free(o);
    jr_anchor_release(&cu->anchor); /* after the resume: the task holds the client by then */
}

static client_ud *check_client(lua_State *L)
{
    return jr_checkudata(L, 1, &k_client_mt, "HTTP client");
}

/* A header name or value at idx as a string: numbers are converted and
 * the string kept on the stack at *keep (below the iteration's key), so it
 * outlives the call's use of the pointer. */
static const char *header_str(lua_State *L, int idx, size_t *len, int keep_base, int *nkeep)
{
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING) return lua_tolstring(L, idx, len);
    if (t != LUA_TNUMBER) return NULL;
    lua_pushvalue(L, idx);
    const char *s = lua_tolstring(L, -1, len);
    lua_insert(L, keep_base + *nkeep + 1);
    (*nkeep)++;
    return s;
}

/* client:_send(req): the parking part of client:request. */
static int c_send(lua_State *L)
{
    client_ud *cu = check_client(L);
    if (lua_type(L, 2) != LUA_TTABLE) return misuse(L, "client:request(req): req must be a table%s", NULL);
    lua_settop(L, 2);
    lua_getfield(L, 2, "method"); /* 3 */
    lua_getfield(L, 2, "url");    /* 4 */
    lua_getfield(L, 2, "headers"); /* 5 */
    lua_getfield(L, 2, "body");   /* 6 */
    lua_getfield(L, 2, "timeout"); /* 7 */
    const char *method = "GET";
    if (!lua_isnil(L, 3)) {
        if (lua_type(L, 3) != LUA_TSTRING) return misuse(L, "client:request(req): req.method must be a string%s", NULL);
        method = lua_tostring(L, 3);
    }
    if (lua_type(L, 4) != LUA_TSTRING) return misuse(L, "client:request(req): req.url must be a string%s", NULL);
    const char *url = lua_tostring(L, 4);
    if (!lua_isnil(L, 5) && lua_type(L, 5) != LUA_TTABLE)
        return misuse(L, "client:request(req): req.headers must be a table%s", NULL);
    size_t body_len = 0;
    const char *body = NULL;
    if (!lua_isnil(L, 6)) {
        if (lua_type(L, 6) != LUA_TSTRING) return misuse(L, "client:request(req): req.body must be a string or nil%s", NULL);
        body = lua_tolstring(L, 6, &body_len);
    }
    uint64_t timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!lua_isnil(L, 7)) {
        double t = lua_type(L, 7) == LUA_TNUMBER ? lua_tonumber(L, 7) : -1;
        if (!(t >= 0 && t <= 1e9)) return misuse(L, "client:request(req): req.timeout must be seconds >= 0%s", NULL);
        timeout_ms = (uint64_t)(t * 1000.0 + 0.5);
        if (t > 0 && timeout_ms == 0) timeout_ms = 1;
    }
    if (!cu->hc) return jr_push_fail(L, "the HTTP client is closed", "closed");
    if (!jr_task_current()) return misuse(L, "client:request() must be called inside a task%s", NULL);

    /* headers: a map or a list of {name, value} */
    const char *sn[32], *sv[32];
    size_t snl[32], svl[32];
    const char **names = sn, **values = sv;
    size_t *nl = snl, *vl = svl;
    size_t nhdr = 0, cap = 32;
    int keep_base = lua_gettop(L), nkeep = 0;
    const char *bad = NULL;
    if (!lua_isnil(L, 5)) {
        for (lua_pushnil(L); lua_next(L, 5); lua_pop(L, 1)) {
            if (nhdr == cap) {
                if (cap >= MAX_HEADERS) {
                    bad = "client:request(req): more than 1000 headers%s";
                    break;
                }
                size_t nc = cap * 2;
                const char **nn = malloc(nc * sizeof *nn), **nv = malloc(nc * sizeof *nv);
                size_t *nnl = malloc(nc * sizeof *nnl), *nvl = malloc(nc * sizeof *nvl);
                if (!nn || !nv || !nnl || !nvl) {
                    free(nn), free(nv), free(nnl), free(nvl);
                    bad = "client:request(req): out of memory%s";
                    break;
                }
                memcpy(nn, names, nhdr * sizeof *nn);
                memcpy(nv, values, nhdr * sizeof *nv);
                memcpy(nnl, nl, nhdr * sizeof *nnl);
                memcpy(nvl, vl, nhdr * sizeof *nvl);
                if (names != sn) free(names), free(values), free(nl), free(vl);
                names = nn, values = nv, nl = nnl, vl = nvl;
                cap = nc;
            }
            const char *n = NULL, *v = NULL;
            if (lua_type(L, -2) == LUA_TSTRING) {
                n = lua_tolstring(L, -2, &nl[nhdr]);
                v = header_str(L, -1, &vl[nhdr], keep_base, &nkeep);
            } else if (lua_type(L, -1) == LUA_TTABLE) {
                int pair = lua_gettop(L);
                lua_rawgeti(L, pair, 1);
                lua_rawgeti(L, pair, 2);
                /* the pair table holds the strings; numbers are kept below */
                n = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nl[nhdr]) : NULL;
                v = header_str(L, -1, &vl[nhdr], keep_base, &nkeep);
                lua_pop(L, 2);
            }
            if (!n || !v) {
                bad = "client:request(req): headers must map names to strings, or list {name, value} pairs%s";
                break;
            }
            names[nhdr] = n;
            values[nhdr] = v;
            nhdr++;
        }
    }
    if (bad) {
        if (names != sn) free(names), free(values), free(nl), free(vl);
        return misuse(L, bad, NULL);
    }
    op *o = calloc(1, sizeof *o);
    jr_hc_request_spec s = {method, url, names, nl, values, vl, nhdr, body, body_len, timeout_ms};
    char err[400];
    jr_hc_req *r = NULL;
    int rc = o ? jr_hc_request(cu->hc, &s, on_done, o, &r, err, sizeof err) : JR_HC_ENOMEM;
    if (names != sn) free(names), free(values), free(nl), free(vl);
    if (rc != JR_HC_OK) {
        free(o);
        if (!o) return jr_push_fail(L, "out of memory", "nomem");
        if (rc == JR_HC_EINVALID) return misuse(L, "client:request(req): %s", err);
        return jr_push_fail(L, err, jr_hc_code_name(rc));
    }
    o->cu = cu;
    o->r = r;
    o->next = cu->ops;
    if (cu->ops) cu->ops->prev = o;
    cu->ops = o;
    jr_anchor_hold(L, &cu->anchor, 1);
    return jr_waiter_park_cancellable(L, &o->w, "client:request()");
}

/* client:_abort(): the running task was cancelled while its request was
 * parked: drop that request and close its connection (a response may still
 * come on it). */
static int c_abort(lua_State *L)
{
    client_ud *cu = check_client(L);
    jr_task *t = jr_task_current();
    for (op *o = cu->ops; o; o = o->next) {
        if (o->w.task != t || !t) continue;
        op_unlink(o);
        jr_hc_req *r = o->r;
        free(o);
        if (r) jr_hc_abort(r);
        jr_anchor_release(&cu->anchor);
        break;
    }
    return 0;
}

static int c_stats(lua_State *L)
{
    client_ud *cu = check_client(L);
    jr_hc_stats st;
    memset(&st, 0, sizeof st);
    if (cu->hc) jr_hc_get_stats(cu->hc, &st);
    const struct {
        const char *name;
        double v;
    } f[] = {{"connections", (double)st.connections}, {"idle", (double)st.idle},
             {"in_use", (double)st.in_use},           {"queued", (double)st.queued},
             {"requests", (double)st.requests},       {"reused", (double)st.reused}};
    lua_createtable(L, 0, 6);
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        lua_pushnumber(L, f[i].v);
        lua_setfield(L, -2, f[i].name);
    }
    return 1;
}

static void close_client(client_ud *cu)
{
    if (!cu->hc) return;
    jr_hc *hc = cu->hc;
    cu->hc = NULL;
    jr_hc_free(hc); /* parked requests answer "closed" (their ops release their holds) */
}

static int c_close(lua_State *L)
{
    close_client(check_client(L));
    return 0;
}

static int c_tostring(lua_State *L)
{
    client_ud *cu = lua_touserdata(L, 1);
    lua_pushfstring(L, "HTTP client%s", cu->hc ? "" : " (closed)");
    return 1;
}

static int c_gc(lua_State *L)
{
    close_client(lua_touserdata(L, 1)); /* unanchored: nothing is parked on it */
    return 0;
}

/* Seconds option -> ms; def when absent. */
static uint64_t opt_seconds(lua_State *L, int idx, const char *name, uint64_t def)
{
    lua_getfield(L, idx, name);
    uint64_t v = def;
    if (!lua_isnil(L, -1)) {
        double s = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
        if (!(s >= 0 && s <= 1e9)) luaL_error(L, "http_client.new: option %s must be seconds >= 0", name);
        v = (uint64_t)(s * 1000.0 + 0.5);
    }
    lua_pop(L, 1);
    return v;
}

/* http.new([opts]) -> client */
static int l_new(lua_State *L)
{
    static const char *const known[] = {"max_per_origin", "max_idle_per_origin", "idle_timeout", "connect_timeout",
                                        "max_response", "tls", NULL};
    static const char *const tls_known[] = {"ca_file", "verify", NULL};
    const char *what = "http_client.new";
    jr_check_options(L, 1, what, known);
    jr_hc_options o;
    jr_hc_options_defaults(&o);
    if (!lua_isnoneornil(L, 1)) {
        o.max_per_origin = jr_opt_uint(L, 1, what, "max_per_origin", 100000, o.max_per_origin);
        if (o.max_per_origin == 0) luaL_error(L, "%s: option max_per_origin must be at least 1", what);
        o.max_idle_per_origin = jr_opt_uint(L, 1, what, "max_idle_per_origin", 100000, o.max_idle_per_origin);
        o.max_response = jr_opt_uint(L, 1, what, "max_response", 4294967295.0, (unsigned)o.max_response);
        o.idle_timeout_ms = opt_seconds(L, 1, "idle_timeout", o.idle_timeout_ms);
        o.connect_timeout_ms = opt_seconds(L, 1, "connect_timeout", o.connect_timeout_ms);
        lua_getfield(L, 1, "tls");
        if (!lua_isnil(L, -1)) {
            int t = lua_gettop(L);
            jr_check_options(L, t, "http_client.new: tls", tls_known);
            lua_getfield(L, t, "ca_file");
            if (!lua_isnil(L, -1)) {
                if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: tls.ca_file must be a path", what);
                o.ca_file = lua_tostring(L, -1); /* copied by jr_hc_new; the table holds it till then */
            }
            lua_getfield(L, t, "verify");
            if (!lua_isnil(L, -1)) {
                if (lua_type(L, -1) != LUA_TBOOLEAN) luaL_error(L, "%s: tls.verify must be a boolean", what);
                o.verify = lua_toboolean(L, -1);
            }
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
    if (o.ca_file) {
        FILE *f = fopen(o.ca_file, "r");
        if (!f) luaL_error(L, "%s: cannot read tls.ca_file %s", what, o.ca_file);
        fclose(f);
    }
    client_ud *cu = lua_newuserdata(L, sizeof *cu);
    memset(cu, 0, sizeof *cu);
    jr_anchor_init(&cu->anchor);
    lua_pushlightuserdata(L, &k_client_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    char err[300];
    cu->hc = jr_hc_new(jr_vm_global->loop, &o, err, sizeof err);
    if (!cu->hc) luaL_error(L, "%s: %s", what, err);
    return 1;
}

static int l_retry_after(lua_State *L)
{
    size_t n;
    double sec;
    const char *v = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    if (v && jr_retry_after_parse(v, n, (int64_t)time(NULL), &sec) == 0) lua_pushnumber(L, sec);
    else lua_pushnil(L); /* no header, or one we cannot read: the caller's backoff applies */
    return 1;
}

/* request = wrapper(_send, _abort): see the header comment. */
static const char k_wrapper[] =
    "local send, abort = ...\n"
    "return function(self, req)\n"
    "  local res, msg, code = send(self, req)\n"
    "  if code == 'cancelled' then abort(self) end\n"
    "  return res, msg, code\n"
    "end\n";

int jr_open_http_client(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"stats", c_stats}, {"close", c_close}, {NULL, NULL}};
    jr_newmetatable(L, &k_client_mt, "HTTP client", methods, c_gc);
    lua_pushlightuserdata(L, &k_client_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, c_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_getfield(L, -1, "__index");
    if (luaL_loadbuffer(L, k_wrapper, sizeof k_wrapper - 1, "=http_client.request") != 0) return lua_error(L);
    lua_pushcfunction(L, c_send);
    lua_pushcfunction(L, c_abort);
    lua_call(L, 2, 1);
    lua_setfield(L, -2, "request");
    lua_pop(L, 2);
    static const luaL_Reg fns[] = {{"new", l_new}, {"retry_after", l_retry_after}, {NULL, NULL}};
    lua_createtable(L, 0, 2);
    luaL_register(L, NULL, fns);
    return 1;
}
