/* l_otlp.c - jararaca.core.otlp: the OTLP/HTTP exporter (core/otlp.c) for Lua.
 *   local e, msg, code = otlp.new(cfg)   -- e | nil, msg, "invalid"
 *     cfg: what jararaca.otlp.config returns, plus resource (the encoded
 *     Resource, a string), scope_name, scope_version, and optionally
 *     tls_no_verify = true (tests only). A signal is exported when its
 *     table is present (and its enabled is not false): cfg.traces = { url =, headers = { {name, value}, ... },
 *     timeout_ms =, max_queue =, max_batch =, schedule_delay_ms =, export_timeout_ms =,
 *     compression = "none" | "gzip" }
 *   e:push(signal, bytes) -> true | nil, "queue full", "full" | nil, "out of memory", "nomem"
 *                             (raises for a signal that is not enabled)
 *     signal: "traces" | "metrics" | "logs"; bytes: one encoded Span, Metric
 *     or LogRecord. Cheap: a copy into the exporter's queue.
 *   e:push_span(sp) -> the same for a span table (jararaca.tracing's), encoded
 *     straight into the traces queue (no Lua string made), or nil, message,
 *     "invalid" when it cannot be encoded (jararaca.core.otlp_encode's span).
 *   e:push_http_span(h, status, name, attrs, websocket, params) -> the root
 *     span of the HTTP request h when it is kept in C (h:trace_begin), encoded
 *     from the request: true | false (not kept in C) | nil, msg, "full" |
 *     "nomem". attrs: the route's template attributes, encoded
 *     (otlp_encode.span_attributes).
 *   e:send_now() -> true     -- start exporting what is queued, do not wait
 *   e:flush(timeout_s) -> true | nil, msg, "timeout"   (blocks: shutdown and tests only)
 *   e:stats(signal) -> { queued, exported, dropped, failed, rejected, retries,
 *                        batches, connects, last_status, last_error }
 *   e:close([timeout_s])     -- flush up to timeout_s (default 5), stop; idempotent.
 *     Collected without close: stops without flushing (what is queued is lost). */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "l_http.h"
#include "l_otlp_encode.h"
#include "otlp.h"
#include "vm.h"

static char k_otlp_mt;

typedef struct {
    jr_otlp *o;
} otlp_ud;

static const char *const signal_names[] = {"traces", "metrics", "logs", NULL};

/* cfg field key at idx: nil -> 0; a non-negative integer -> it; else raises. */
static int opt_int(lua_State *L, int idx, const char *key, const char *where)
{
    lua_getfield(L, idx, key);
    int v = 0;
    if (!lua_isnil(L, -1)) {
        lua_Number n = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : -1;
        if (n < 0 || n > 2147483647 || n != (lua_Number)(int)n)
            return luaL_error(L, "otlp.new: %s.%s must be a non-negative integer", where, key);
        v = (int)n;
    }
    lua_pop(L, 1);
    return v;
}

/* cfg field key at idx: nil -> NULL, a string without NUL -> it (kept
 * alive by the cfg table for the call), else raises. */
static const char *opt_str(lua_State *L, int idx, const char *key, const char *where, size_t *len)
{
    lua_getfield(L, idx, key);
    const char *s = NULL;
    size_t n = 0;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "otlp.new: %s.%s must be a string", where, key), NULL;
        s = lua_tolstring(L, -1, &n);
        if (!len && strlen(s) != n) return luaL_error(L, "otlp.new: %s.%s contains a NUL byte", where, key), NULL;
    }
    lua_pop(L, 1); /* the table still holds the string */
    if (len) *len = n;
    return s;
}

/* Reads cfg[name] (at stack index 1) into sc; headers go to a userdata
 * array left on the stack (kept until jr_otlp_new has copied them). */
static void read_signal(lua_State *L, const char *name, jr_otlp_signal_config *sc)
{
    lua_getfield(L, 1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "otlp.new: cfg.%s must be a table", name);
    int t = lua_gettop(L);
    lua_getfield(L, t, "enabled");
    int off = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 2);
    if (off) return; /* { enabled = false, ... }: as if absent */
    lua_getfield(L, 1, name);
    char where[16];
    snprintf(where, sizeof where, "cfg.%s", name);
    sc->enabled = 1;
    sc->url = opt_str(L, t, "url", where, NULL);
    if (!sc->url) luaL_error(L, "otlp.new: cfg.%s.url is missing", name);
    sc->timeout_ms = opt_int(L, t, "timeout_ms", where);
    sc->max_queue = opt_int(L, t, "max_queue", where);
    sc->max_batch = opt_int(L, t, "max_batch", where);
    sc->schedule_delay_ms = opt_int(L, t, "schedule_delay_ms", where);
    sc->export_timeout_ms = opt_int(L, t, "export_timeout_ms", where);
    const char *comp = opt_str(L, t, "compression", where, NULL);
    if (comp && strcmp(comp, "gzip") != 0 && strcmp(comp, "none") != 0)
        luaL_error(L, "otlp.new: %s.compression must be \"none\" or \"gzip\"", where);
    sc->gzip = comp && strcmp(comp, "gzip") == 0;
    lua_getfield(L, t, "headers");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1)) luaL_error(L, "otlp.new: cfg.%s.headers must be a list of {name, value}", name);
        int h = lua_gettop(L);
        size_t n = lua_objlen(L, h);
        jr_otlp_header *hs = lua_newuserdata(L, (n ? n : 1) * sizeof *hs);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, h, (int)i + 1);
            if (!lua_istable(L, -1)) luaL_error(L, "otlp.new: cfg.%s.headers[%d] must be {name, value}", name, (int)i + 1);
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "otlp.new: cfg.%s.headers[%d] must be {name, value} strings", name, (int)i + 1);
            hs[i].name = lua_tostring(L, -2);
            hs[i].value = lua_tostring(L, -1);
            lua_pop(L, 3); /* the headers table keeps them alive */
        }
        sc->headers = hs;
        sc->nheaders = n;
        lua_remove(L, h); /* the userdata stays, above the signal table */
    } else {
        lua_pop(L, 1);
    }
    /* leave the signal table (and headers userdata) on the stack */
}

static int l_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    jr_otlp_config cfg;
    memset(&cfg, 0, sizeof cfg);
    for (int i = 0; i < JR_OTLP_NSIGNALS; i++) read_signal(L, signal_names[i], &cfg.signal[i]);
    cfg.resource = opt_str(L, 1, "resource", "cfg", &cfg.resource_len);
    cfg.scope_name = opt_str(L, 1, "scope_name", "cfg", NULL);
    cfg.scope_version = opt_str(L, 1, "scope_version", "cfg", NULL);
    cfg.ca_file = opt_str(L, 1, "ca_file", "cfg", NULL);
    lua_getfield(L, 1, "tls_no_verify");
    cfg.tls_no_verify = lua_toboolean(L, -1);
    lua_pop(L, 1);
    int any = 0;
    for (int i = 0; i < JR_OTLP_NSIGNALS; i++) any |= cfg.signal[i].enabled;
    if (!any) return jr_push_fail(L, "otlp: no signal to export (cfg.traces, cfg.metrics and cfg.logs are all nil)",
                                  "invalid");
    otlp_ud *u = lua_newuserdata(L, sizeof *u);
    u->o = NULL;
    lua_pushlightuserdata(L, &k_otlp_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    char err[512];
    u->o = jr_otlp_new(&cfg, err, sizeof err);
    if (!u->o) return jr_push_fail(L, err, "invalid");
    return 1;
}

static otlp_ud *check_open(lua_State *L)
{
    otlp_ud *u = jr_checkudata(L, 1, &k_otlp_mt, "otlp exporter");
    if (!u->o) luaL_error(L, "otlp exporter is closed");
    return u;
}

/* A push the exporter refused (the item is counted dropped either way). */
static int push_failed(lua_State *L, int rc)
{
    if (rc == JR_OTLP_ENOMEM) return jr_push_fail(L, "out of memory", "nomem");
    return jr_push_fail(L, "queue full", "full");
}

static int l_push(lua_State *L)
{
    otlp_ud *u = check_open(L);
    int sig = luaL_checkoption(L, 2, NULL, signal_names);
    size_t len;
    const char *d = luaL_checklstring(L, 3, &len);
    int rc = jr_otlp_push(u->o, sig, d, len);
    if (rc == JR_OTLP_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    /* the glue knows which signals it configured: pushing to another is a bug */
    if (rc == JR_OTLP_EINVAL) return luaL_error(L, "otlp exporter: %s export is not enabled", signal_names[sig]);
    return push_failed(L, rc);
}

/* Push an encoded span (the encoder's shared buffer) into the traces
 * queue: true | nil, "queue full", "full" | nil, "out of memory", "nomem". */
static int push_encoded(lua_State *L, otlp_ud *u, const char *d, size_t len)
{
    int rc = jr_otlp_push(u->o, JR_OTLP_TRACES, d, len);
    jr_l_otlp_encode_done();
    if (rc == JR_OTLP_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (rc == JR_OTLP_EINVAL) return luaL_error(L, "otlp exporter: traces export is not enabled");
    return push_failed(L, rc);
}

/* e:push_span(sp): the finished span table sp encoded (l_otlp_encode.c)
 * straight into the traces queue: true | nil, msg, "full" | "invalid". */
static int l_push_span(lua_State *L)
{
    otlp_ud *u = check_open(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t len;
    const char *err = NULL;
    const char *d = jr_l_otlp_encode_span(L, 2, &len, &err);
    if (!d) return jr_push_fail(L, err, "invalid");
    return push_encoded(L, u, d, len);
}

/* e:push_http_span(h, status, name, attrs, websocket, params): the root
 * span of request h when it is kept in C (h:trace_begin) and sampled,
 * encoded straight from the request into the traces queue. true | false
 * (not kept in C: nothing done) | nil, msg, "full" | "nomem". */
static int l_push_http_span(lua_State *L)
{
    otlp_ud *u = check_open(L);
    int status = (int)luaL_checkinteger(L, 3);
    luaL_checktype(L, 4, LUA_TSTRING);
    luaL_checktype(L, 5, LUA_TSTRING);
    jr_http_req *req = NULL;
    const jr_trace_ctx *t = jr_l_http_kept_trace(L, 2, &req);
    if (!t) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (!t->sampled) {
        lua_pushboolean(L, 1);
        return 1;
    }
    size_t len;
    const char *d = jr_l_otlp_encode_http_span(L, t, req, 4, 7, status, &len);
    if (!d) return jr_push_fail(L, "out of memory", "nomem");
    return push_encoded(L, u, d, len);
}

static int timeout_ms_arg(lua_State *L, int idx, double dflt)
{
    double s = luaL_optnumber(L, idx, dflt);
    if (!(s >= 0) || s > 86400) luaL_argerror(L, idx, "timeout must be seconds from 0 to 86400");
    return (int)(s * 1000 + 0.5);
}

static int l_send_now(lua_State *L)
{
    otlp_ud *u = check_open(L);
    (void)jr_otlp_flush(u->o, 0); /* asks the thread, returns at once */
    lua_pushboolean(L, 1);
    return 1;
}

static int l_flush(lua_State *L)
{
    otlp_ud *u = check_open(L);
    int ms = timeout_ms_arg(L, 2, 5);
    if (jr_otlp_flush(u->o, ms) == JR_OTLP_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushfstring(L, "otlp flush: items still pending after %f s", (lua_Number)ms / 1000);
    return jr_push_fail(L, lua_tostring(L, -1), "timeout");
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static int l_stats(lua_State *L)
{
    otlp_ud *u = check_open(L);
    int sig = luaL_checkoption(L, 2, NULL, signal_names);
    struct jr_otlp_stats st;
    jr_otlp_stats(u->o, sig, &st);
    lua_createtable(L, 0, 10);
    set_num(L, "queued", (double)st.queued);
    set_num(L, "exported", (double)st.exported);
    set_num(L, "dropped", (double)st.dropped);
    set_num(L, "failed", (double)st.failed);
    set_num(L, "rejected", (double)st.rejected);
    set_num(L, "retries", (double)st.retries);
    set_num(L, "batches", (double)st.batches);
    set_num(L, "connects", (double)st.connects);
    set_num(L, "last_status", st.last_status);
    lua_pushstring(L, st.last_error);
    lua_setfield(L, -2, "last_error");
    return 1;
}

static int l_close(lua_State *L)
{
    otlp_ud *u = jr_checkudata(L, 1, &k_otlp_mt, "otlp exporter");
    int ms = timeout_ms_arg(L, 2, 5);
    if (u->o) {
        jr_otlp *o = u->o;
        u->o = NULL;
        jr_otlp_free(o, ms);
    }
    return 0;
}

static int l_gc(lua_State *L)
{
    otlp_ud *u = lua_touserdata(L, 1);
    if (u && u->o) {
        jr_otlp *o = u->o;
        u->o = NULL;
        jr_otlp_free(o, 0); /* a collector must not block on the network */
    }
    return 0;
}

int jr_open_otlp(lua_State *L)
{
    static const luaL_Reg methods[] = {{"push", l_push}, {"push_span", l_push_span}, {"push_http_span", l_push_http_span},   {"send_now", l_send_now}, {"flush", l_flush},
                                       {"stats", l_stats}, {"close", l_close},       {NULL, NULL}};
    jr_newmetatable(L, &k_otlp_mt, "otlp exporter", methods, l_gc);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "new");
    return 1;
}
