/* l_otlp_encode.c - jararaca.core.otlp_encode: OTLP protobuf messages from
 * Lua tables, one C call per message (a span is encoded at its end, on the
 * request's path: one call, no Lua-side byte juggling).
 *
 *   enc.span(sp)          -> bytes of a trace.v1.Span | nil, message, "invalid"
 *       sp: lua/jararaca/tracing/span.lua's fields (trace_id/span_id/parent_id
 *       as hex, name, kind, start_us, end_us, attributes, events, links,
 *       status, tracestate)
 *   enc.log_record(r)     -> bytes of a logs.v1.LogRecord
 *       r: { time_us, observed_us, severity_number, severity_text, body,
 *            attributes, trace_id, span_id }
 *   enc.resource(attrs)   -> bytes of a resource.v1.Resource
 *   enc.metric(m)         -> bytes of a metrics.v1.Metric
 *       m: { name, description, unit, type = "sum" | "gauge" | "histogram",
 *            monotonic, start_us, time_us, points = { { attributes, value } |
 *            { attributes, count, sum, bounds = {..}, counts = {..} } } }
 *            (histogram counts per bucket, not cumulative: #bounds + 1)
 *
 * Field numbers are opentelemetry-proto's (checked against the generated
 * code of @opentelemetry/otlp-transformer 0.57.2 that the test receiver
 * decodes with). Attribute values: a string -> string_value, a boolean ->
 * bool_value, a number with no fraction in int64 range -> int_value, any
 * other number -> double_value; other types (and keys that are not strings
 * or numbers) are skipped: span.lua has already turned them into strings.
 * Tables are read raw (no metamethods run). Bad ids (not hex of the right
 * length) are the "invalid" expected failure: an id from a remote caller has
 * been validated already, so this is a bug or a hand-made table, and a
 * request must not fail because its span could not be exported. */
#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "http_attrs.h"
#include "l_http.h"
#include "l_otlp_encode.h"
#include "pb.h"
#include "vm.h"

/* The shared output buffer is released after a call that grew it past this. */
#define KEEP_BUF_MAX (256u * 1024u)

static jr_buf out = JR_BUF_INIT;
static char errmsg[160];

/* Field numbers (opentelemetry-proto). */
enum {
    SPAN_TRACE_ID = 1, SPAN_SPAN_ID = 2, SPAN_TRACE_STATE = 3, SPAN_PARENT = 4, SPAN_NAME = 5,
    SPAN_KIND = 6, SPAN_START = 7, SPAN_END = 8, SPAN_ATTRS = 9, SPAN_EVENTS = 11, SPAN_LINKS = 13,
    SPAN_STATUS = 15,
    EVENT_TIME = 1, EVENT_NAME = 2, EVENT_ATTRS = 3,
    LINK_TRACE_ID = 1, LINK_SPAN_ID = 2, LINK_TRACE_STATE = 3, LINK_ATTRS = 4,
    STATUS_MESSAGE = 2, STATUS_CODE = 3,
    KV_KEY = 1, KV_VALUE = 2,
    ANY_STRING = 1, ANY_BOOL = 2, ANY_INT = 3, ANY_DOUBLE = 4,
    LOG_TIME = 1, LOG_SEVERITY = 2, LOG_SEVERITY_TEXT = 3, LOG_BODY = 5, LOG_ATTRS = 6,
    LOG_FLAGS = 8, LOG_TRACE_ID = 9, LOG_SPAN_ID = 10, LOG_OBSERVED = 11,
    RESOURCE_ATTRS = 1,
    METRIC_NAME = 1, METRIC_DESCRIPTION = 2, METRIC_UNIT = 3, METRIC_GAUGE = 5, METRIC_SUM = 7,
    METRIC_HISTOGRAM = 9,
    SUM_POINTS = 1, SUM_TEMPORALITY = 2, SUM_MONOTONIC = 3,
    NDP_START = 2, NDP_TIME = 3, NDP_DOUBLE = 4, NDP_INT = 6, NDP_ATTRS = 7,
    HDP_START = 2, HDP_TIME = 3, HDP_COUNT = 4, HDP_SUM = 5, HDP_BUCKETS = 6, HDP_BOUNDS = 7,
    HDP_ATTRS = 9,
};
#define TEMPORALITY_CUMULATIVE 2
#define LOG_FLAG_SAMPLED 1

/* -------- helpers reading the table at stack index idx -------- */

/* Field names interned once. A name pushed through the C API is hashed and
 * looked up in the string table each time (about 100 instructions, and a
 * span has some 20 fields, read at every span's end): between keys_on and
 * the caller's settop, push_key takes the names it has met before from a
 * table kept in the registry, found by the address of the C literal. */
#define KEY_SLOTS 256 /* (a power of two, twice the distinct names and more) */
static const char *key_ptr[KEY_SLOTS];
static int key_num[KEY_SLOTS], nkeys, keys_idx, keys_ref = LUA_NOREF;
static const void *keys_registry; /* the lua_State (registry) the cache belongs to */

static void keys_on(lua_State *L)
{
    lua_pushvalue(L, LUA_REGISTRYINDEX);
    const void *reg = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (reg != keys_registry) { /* (another Lua state: start over) */
        memset(key_ptr, 0, sizeof key_ptr);
        nkeys = 0;
        lua_newtable(L);
        keys_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        keys_registry = reg;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, keys_ref);
    if (lua_type(L, -1) != LUA_TTABLE) {
        /* (a new Lua state at a freed one's address: its registry has no
         * such table; names are pushed as they come, and the cache starts
         * over next time) */
        lua_pop(L, 1);
        keys_registry = NULL;
        keys_idx = 0;
        return;
    }
    keys_idx = lua_gettop(L);
}

/* (the caller's settop takes the table, if pushed, off the stack) */
static void keys_off(void) { keys_idx = 0; }

static void push_key(lua_State *L, const char *k)
{
    if (!keys_idx) {
        lua_pushstring(L, k);
        return;
    }
    unsigned h = (unsigned)(((uintptr_t)k >> 3) & (KEY_SLOTS - 1));
    while (key_ptr[h] && key_ptr[h] != k) h = (h + 1) & (KEY_SLOTS - 1);
    if (key_ptr[h]) {
        lua_rawgeti(L, keys_idx, key_num[h]);
        return;
    }
    lua_pushstring(L, k);
    if (nkeys < KEY_SLOTS / 2) { /* (half full at most: probes stay short) */
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys_idx, ++nkeys);
        key_ptr[h] = k;
        key_num[h] = nkeys;
    }
}

/* t[k] raw, pushed. */
static int rawfield(lua_State *L, int idx, const char *k)
{
    int t = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    push_key(L, k);
    lua_rawget(L, t);
    return lua_type(L, -1);
}

static const char *str_field(lua_State *L, int idx, const char *k, size_t *len)
{
    const char *s = NULL;
    if (rawfield(L, idx, k) == LUA_TSTRING) s = lua_tolstring(L, -1, len);
    lua_pop(L, 1); /* the string stays alive: it is referenced by the table */
    return s;
}

/* t[k] as string field `field` when it is a string. */
static void opt_string(lua_State *L, int idx, const char *k, uint32_t field)
{
    size_t len;
    const char *s = str_field(L, idx, k, &len);
    if (s) jr_pb_string(&out, field, s, len);
}

static int num_field(lua_State *L, int idx, const char *k, double *v)
{
    int ok = rawfield(L, idx, k) == LUA_TNUMBER;
    if (ok) *v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return ok;
}

/* Microseconds (a double) -> nanoseconds since the epoch. */
static uint64_t us_to_ns(double us)
{
    if (!(us > 0)) return 0;
    return (uint64_t)us * 1000u;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The hex id t[k] (nbytes bytes) as field `field`. Absent: 0 (nothing
 * written) unless required. Bad: -1 and errmsg. */
/* The id of nbytes (16: the trace id, 8: the span id) from a span's words,
 * big-endian as the hex would read; -1 when the table has no such words. */
static int words_id(lua_State *L, int idx, size_t nbytes, uint32_t field)
{
    static const char *const trace_w[] = {"_t1", "_t2", "_t3", "_t4"}, *const span_w[] = {"_s1", "_s2"};
    const char *const *names = nbytes == 16 ? trace_w : span_w;
    size_t n = nbytes / 4;
    unsigned char id[16];
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (rawfield(L, idx, names[i]) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return -1;
        }
        /* words are bit.tobit values (signed): keep their low 32 bits */
        uint32_t w = (uint32_t)(int64_t)lua_tonumber(L, -1);
        lua_pop(L, 1);
        any |= w != 0;
        id[4 * i] = (unsigned char)(w >> 24);
        id[4 * i + 1] = (unsigned char)(w >> 16);
        id[4 * i + 2] = (unsigned char)(w >> 8);
        id[4 * i + 3] = (unsigned char)w;
    }
    if (!any) return -1; /* an all-zero id is invalid: let the hex path say so */
    jr_pb_bytes(&out, field, id, nbytes);
    return 0;
}

static int id_field(lua_State *L, int idx, const char *k, size_t nbytes, uint32_t field, int required)
{
    size_t len;
    const char *s = str_field(L, idx, k, &len);
    if (s == NULL && required) {
        /* A span keeps its ids as 32-bit words (_t1.._t4, _s1 _s2) and makes
         * the hex only on first read (jararaca.tracing.span): read the words
         * when they are there, so exporting a span makes no id strings. */
        if (words_id(L, idx, nbytes, field) == 0) return 0;
        if (lua_getfield(L, idx, k), lua_type(L, -1) == LUA_TSTRING) s = lua_tolstring(L, -1, &len);
        lua_pop(L, 1);
    }
    if (s == NULL) {
        if (!required) return 0;
        snprintf(errmsg, sizeof errmsg, "%s: expected %zu hex digits, got nothing", k, 2 * nbytes);
        return -1;
    }
    unsigned char id[16];
    int ok = len == 2 * nbytes;
    for (size_t i = 0; ok && i < nbytes; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) ok = 0;
        else id[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!ok) {
        snprintf(errmsg, sizeof errmsg, "%s: expected %zu hex digits, got \"%.40s\"", k, 2 * nbytes, s);
        return -1;
    }
    jr_pb_bytes(&out, field, id, nbytes);
    return 0;
}

/* An AnyValue's body for the Lua value at idx (absolute); 0 when its type is
 * not encodable. */
static int any_value(lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        jr_pb_string(&out, ANY_STRING, s, len);
        return 1;
    }
    case LUA_TBOOLEAN: jr_pb_uint(&out, ANY_BOOL, (uint64_t)lua_toboolean(L, idx)); return 1;
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        /* an integer value in int64 range is an int (2^63 itself is not) */
        if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
            jr_pb_int64(&out, ANY_INT, (int64_t)d);
        else
            jr_pb_double(&out, ANY_DOUBLE, d);
        return 1;
    }
    default: return 0;
    }
}

/* One KeyValue `field`: key (with an optional prefix) = the Lua value at
 * vidx (absolute); nothing when its type is not encodable. */
static void key_value(lua_State *L, uint32_t field, const char *prefix, size_t plen, const char *key, size_t klen,
                      int vidx)
{
    int vt = lua_type(L, vidx);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER && vt != LUA_TBOOLEAN) return;
    size_t kv = jr_pb_begin(&out, field);
    if (plen) {
        jr_pb_tag(&out, KV_KEY, JR_PB_LEN);
        jr_pb_varint(&out, plen + klen);
        jr_buf_append(&out, prefix, plen);
        jr_buf_append(&out, key, klen);
    } else {
        jr_pb_string(&out, KV_KEY, key, klen);
    }
    size_t av = jr_pb_begin(&out, KV_VALUE);
    any_value(L, vidx);
    jr_pb_end(&out, av);
    jr_pb_end(&out, kv);
}

/* Every k = v of the table at idx as repeated KeyValue `field`, keys
 * prefixed with prefix (plen bytes; 0: none). */
static void table_attributes(lua_State *L, int idx, uint32_t field, const char *prefix, size_t plen)
{
    int t = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        int kt = lua_type(L, -2);
        if (kt == LUA_TSTRING || kt == LUA_TNUMBER) {
            size_t klen;
            lua_pushvalue(L, -2); /* (tolstring on the key itself would confuse lua_next) */
            const char *key = lua_tolstring(L, -1, &klen);
            key_value(L, field, prefix, plen, key, klen, t + 2);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

/* Every k = v of the table t[k] (or the table at idx itself when k is NULL)
 * as repeated KeyValue `field`. */
static void attributes(lua_State *L, int idx, const char *k, uint32_t field)
{
    if (k) {
        if (rawfield(L, idx, k) != LUA_TTABLE) {
            lua_pop(L, 1);
            return;
        }
    } else {
        lua_pushvalue(L, idx);
    }
    table_attributes(L, -1, field, NULL, 0);
    lua_pop(L, 1);
}

/* An HTTP server span whose attributes were never read keeps, instead of
 * an attribute table, sp._http = { handle, params, route info, status }
 * (lua/jararaca/tracing/init.lua): its attributes are written from there,
 * the request's own ones straight from the request (core/http_attrs.h). */
static void http_kv(void *ud, const char *k, size_t kl, const char *v, size_t vl)
{
    (void)ud;
    /* KeyValue { key = k, value = AnyValue { string_value = v } }: with
     * short strings every length is one varint byte, written in one go */
    size_t any = 2 + vl, kv = 2 + kl + 2 + any;
    if (kl < 128 && any < 128 && kv < 128 && jr_buf_reserve(&out, kv + 2) == 0) {
        unsigned char *p = (unsigned char *)out.data + out.len;
        *p++ = (unsigned char)(SPAN_ATTRS << 3 | JR_PB_LEN);
        *p++ = (unsigned char)kv;
        *p++ = (unsigned char)(KV_KEY << 3 | JR_PB_LEN);
        *p++ = (unsigned char)kl;
        memcpy(p, k, kl);
        p += kl;
        *p++ = (unsigned char)(KV_VALUE << 3 | JR_PB_LEN);
        *p++ = (unsigned char)any;
        *p++ = (unsigned char)(ANY_STRING << 3 | JR_PB_LEN);
        *p++ = (unsigned char)vl;
        memcpy(p, v, vl);
        out.len += kv + 2;
        return;
    }
    size_t m = jr_pb_begin(&out, SPAN_ATTRS);
    jr_pb_string(&out, KV_KEY, k, kl);
    size_t av = jr_pb_begin(&out, KV_VALUE);
    jr_pb_string(&out, ANY_STRING, v, vl);
    jr_pb_end(&out, av);
    jr_pb_end(&out, m);
}

static void http_attributes(lua_State *L, int hp)
{
    static const char param_prefix[] = "http.request.path_param.";
    int websocket = 0;
    lua_rawgeti(L, hp, 3); /* route info: { template, attrs, websocket } */
    if (lua_type(L, -1) == LUA_TTABLE) {
        size_t n;
        /* attrs: the template already encoded (once per route), else the table */
        const char *enc = str_field(L, -1, "attrs", &n);
        if (enc) jr_buf_append(&out, enc, n);
        else attributes(L, -1, "template", SPAN_ATTRS);
        websocket = rawfield(L, -1, "websocket") == LUA_TBOOLEAN && lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_rawgeti(L, hp, 1);
    jr_http_req *req = jr_l_http_req_opt(L, -1);
    /* (out of memory in there is out.failed's too: the caller sees it) */
    if (req && jr_http_req_span_attrs(req, websocket, http_kv, NULL) != 0) out.failed = 1;
    lua_pop(L, 1);
    lua_rawgeti(L, hp, 2);
    if (lua_type(L, -1) == LUA_TTABLE) table_attributes(L, -1, SPAN_ATTRS, param_prefix, sizeof param_prefix - 1);
    lua_pop(L, 1);
    lua_rawgeti(L, hp, 4);
    if (lua_type(L, -1) == LUA_TNUMBER) {
        static const char st[] = "http.response.status_code";
        key_value(L, SPAN_ATTRS, NULL, 0, st, sizeof st - 1, lua_gettop(L));
    }
    lua_pop(L, 1);
}

static int fail(lua_State *L, const char *what)
{
    char msg[sizeof errmsg + 32];
    snprintf(msg, sizeof msg, "%s: %s", what, errmsg);
    return jr_push_fail(L, msg, "invalid");
}

static int result(lua_State *L)
{
    if (out.failed) {
        jr_buf_recycle(&out, 0);
        return luaL_error(L, "otlp_encode: out of memory");
    }
    lua_pushlstring(L, out.data ? out.data : "", out.len);
    jr_buf_recycle(&out, KEEP_BUF_MAX);
    return 1;
}

static void begin(void) { jr_buf_reset(&out); }

/* -------- Span -------- */

static int kind_number(const char *k)
{
    if (k == NULL) return 1;
    if (strcmp(k, "server") == 0) return 2;
    if (strcmp(k, "client") == 0) return 3;
    if (strcmp(k, "producer") == 0) return 4;
    if (strcmp(k, "consumer") == 0) return 5;
    return 1; /* internal */
}

/* fn(L, item) for every table item of the list t[k] (absent: none); stops
 * at the first fn that fails: -1. */
static int each_item(lua_State *L, int idx, const char *k, int (*fn)(lua_State *L, int item))
{
    int rc = 0;
    if (rawfield(L, idx, k) == LUA_TTABLE) {
        int list = lua_gettop(L);
        int n = (int)lua_objlen(L, list);
        for (int i = 1; i <= n && rc == 0; i++) {
            lua_rawgeti(L, list, i);
            if (lua_type(L, -1) == LUA_TTABLE) rc = fn(L, lua_gettop(L));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return rc;
}

static int span_event(lua_State *L, int ev)
{
    size_t m = jr_pb_begin(&out, SPAN_EVENTS);
    double t;
    if (num_field(L, ev, "time_us", &t)) jr_pb_fixed64(&out, EVENT_TIME, us_to_ns(t));
    opt_string(L, ev, "name", EVENT_NAME);
    attributes(L, ev, "attributes", EVENT_ATTRS);
    jr_pb_end(&out, m);
    return 0;
}

static int span_link(lua_State *L, int lk)
{
    size_t m = jr_pb_begin(&out, SPAN_LINKS);
    if (id_field(L, lk, "trace_id", 16, LINK_TRACE_ID, 1) != 0 ||
        id_field(L, lk, "span_id", 8, LINK_SPAN_ID, 1) != 0)
        return -1;
    opt_string(L, lk, "tracestate", LINK_TRACE_STATE);
    attributes(L, lk, "attributes", LINK_ATTRS);
    jr_pb_end(&out, m);
    return 0;
}

static void status(lua_State *L, int sp)
{
    if (rawfield(L, sp, "status") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    int st = lua_gettop(L);
    const char *code = str_field(L, st, "code", NULL);
    size_t mlen = 0;
    const char *msg = str_field(L, st, "message", &mlen);
    int c = code == NULL ? 0 : strcmp(code, "ok") == 0 ? 1 : strcmp(code, "error") == 0 ? 2 : 0;
    if (c != 0 || msg) {
        size_t m = jr_pb_begin(&out, SPAN_STATUS);
        if (msg) jr_pb_string(&out, STATUS_MESSAGE, msg, mlen);
        if (c) jr_pb_uint(&out, STATUS_CODE, (uint64_t)c);
        jr_pb_end(&out, m);
    }
    lua_pop(L, 1);
}

/* Encode the span table at idx (absolute) into `out`: 0, or -1 (the span's
 * ids) / -2 (a link's), errmsg saying why. */
static int encode_span(lua_State *L, int idx)
{
    begin();
    if (id_field(L, idx, "trace_id", 16, SPAN_TRACE_ID, 1) != 0 ||
        id_field(L, idx, "span_id", 8, SPAN_SPAN_ID, 1) != 0)
        return -1;
    size_t len;
    const char *ts = str_field(L, idx, "tracestate", &len);
    if (ts && len > 0) jr_pb_string(&out, SPAN_TRACE_STATE, ts, len);
    if (id_field(L, idx, "parent_id", 8, SPAN_PARENT, 0) != 0) return -1;
    const char *name = str_field(L, idx, "name", &len);
    jr_pb_string(&out, SPAN_NAME, name ? name : "", name ? len : 0);
    jr_pb_uint(&out, SPAN_KIND, (uint64_t)kind_number(str_field(L, idx, "kind", NULL)));
    double t;
    if (num_field(L, idx, "start_us", &t)) jr_pb_fixed64(&out, SPAN_START, us_to_ns(t));
    if (num_field(L, idx, "end_us", &t)) jr_pb_fixed64(&out, SPAN_END, us_to_ns(t));
    int top = lua_gettop(L);
    if (rawfield(L, idx, "attributes") == LUA_TTABLE) {
        table_attributes(L, -1, SPAN_ATTRS, NULL, 0);
    } else {
        lua_pop(L, 1);
        if (rawfield(L, idx, "_http") == LUA_TTABLE) http_attributes(L, lua_gettop(L));
    }
    lua_settop(L, top);
    each_item(L, idx, "events", span_event);
    if (each_item(L, idx, "links", span_link) != 0) return -2;
    status(L, idx);
    return 0;
}

static int l_span(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    keys_on(L);
    int rc = encode_span(L, 1);
    keys_off();
    lua_settop(L, 1);
    if (rc != 0) return fail(L, rc == -2 ? "span link" : "span");
    return result(L);
}

const char *jr_l_otlp_encode_span(lua_State *L, int idx, size_t *len, const char **err)
{
    int top = lua_gettop(L);
    keys_on(L);
    int rc = encode_span(L, idx < 0 ? top + idx + 1 : idx);
    keys_off();
    lua_settop(L, top);
    if (rc != 0) {
        *err = errmsg;
        return NULL;
    }
    if (out.failed) {
        jr_buf_recycle(&out, 0);
        *err = "out of memory";
        return NULL;
    }
    *len = out.len;
    return out.data ? out.data : "";
}

void jr_l_otlp_encode_done(void) { jr_buf_recycle(&out, KEEP_BUF_MAX); }

/* The root span of an HTTP request kept in C (bindings/l_http.c): ids,
 * start and parent from t, the request's attributes from req, the rest
 * from Lua at stack index args: name, attrs (the route template's
 * attributes as encoded KeyValues, enc.span_attributes), websocket, then at
 * params the path parameters (or nil); and the answer's status. Ends now. */
const char *jr_l_otlp_encode_http_span(lua_State *L, const jr_trace_ctx *t, jr_http_req *req, int args, int params,
                                       int status, size_t *len)
{
    static const char param_prefix[] = "http.request.path_param.", st_key[] = "http.response.status_code";
    int top = lua_gettop(L);
    begin();
    jr_pb_bytes(&out, SPAN_TRACE_ID, t->trace_id, 16);
    jr_pb_bytes(&out, SPAN_SPAN_ID, t->span_id, 8);
    if (t->has_parent) jr_pb_bytes(&out, SPAN_PARENT, t->parent_id, 8);
    size_t n;
    const char *name = lua_tolstring(L, args, &n);
    jr_pb_string(&out, SPAN_NAME, name ? name : "", name ? n : 0);
    jr_pb_uint(&out, SPAN_KIND, 2); /* server */
    jr_pb_fixed64(&out, SPAN_START, t->start_us * 1000u);
    jr_pb_fixed64(&out, SPAN_END, jr_trace_now_us() * 1000u);
    const char *attrs = lua_tolstring(L, args + 1, &n);
    if (attrs) jr_buf_append(&out, attrs, n);
    if (jr_http_req_span_attrs(req, lua_toboolean(L, args + 2), http_kv, NULL) != 0) out.failed = 1;
    if (lua_type(L, params) == LUA_TTABLE)
        table_attributes(L, params, SPAN_ATTRS, param_prefix, sizeof param_prefix - 1);
    lua_settop(L, top);
    size_t kv = jr_pb_begin(&out, SPAN_ATTRS); /* http.response.status_code = status (an int) */
    jr_pb_string(&out, KV_KEY, st_key, sizeof st_key - 1);
    size_t av = jr_pb_begin(&out, KV_VALUE);
    jr_pb_int64(&out, ANY_INT, status);
    jr_pb_end(&out, av);
    jr_pb_end(&out, kv);
    if (status >= 500) { /* Status { code = error } */
        size_t m = jr_pb_begin(&out, SPAN_STATUS);
        jr_pb_uint(&out, STATUS_CODE, 2);
        jr_pb_end(&out, m);
    }
    if (out.failed) {
        jr_buf_recycle(&out, 0);
        return NULL;
    }
    *len = out.len;
    return out.data ? out.data : "";
}

/* enc.span_attributes(t) -> the table's attributes encoded as a Span's
 * repeated KeyValue (what jr_l_otlp_encode_http_span copies in as is). */
static int l_span_attributes(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    begin();
    table_attributes(L, 1, SPAN_ATTRS, NULL, 0);
    return result(L);
}

/* -------- LogRecord -------- */

static int log_record(lua_State *L);

static int l_log_record(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    keys_on(L);
    int rc = log_record(L);
    keys_off();
    lua_settop(L, 1);
    if (rc != 0) return fail(L, "log record");
    return result(L);
}

static int log_record(lua_State *L)
{
    begin();
    double t;
    if (num_field(L, 1, "time_us", &t)) jr_pb_fixed64(&out, LOG_TIME, us_to_ns(t));
    if (num_field(L, 1, "severity_number", &t)) jr_pb_uint(&out, LOG_SEVERITY, (uint64_t)t);
    opt_string(L, 1, "severity_text", LOG_SEVERITY_TEXT);
    if (rawfield(L, 1, "body") != LUA_TNIL) {
        size_t m = jr_pb_begin(&out, LOG_BODY);
        any_value(L, lua_gettop(L));
        jr_pb_end(&out, m);
    }
    lua_pop(L, 1);
    attributes(L, 1, "attributes", LOG_ATTRS);
    if (id_field(L, 1, "trace_id", 16, LOG_TRACE_ID, 0) != 0 ||
        id_field(L, 1, "span_id", 8, LOG_SPAN_ID, 0) != 0)
        return -1;
    if (rawfield(L, 1, "sampled") == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
        jr_pb_tag(&out, LOG_FLAGS, JR_PB_I32);
        static const unsigned char one[4] = {LOG_FLAG_SAMPLED, 0, 0, 0};
        jr_buf_append(&out, one, 4);
    }
    lua_pop(L, 1);
    if (num_field(L, 1, "observed_us", &t)) jr_pb_fixed64(&out, LOG_OBSERVED, us_to_ns(t));
    return 0;
}

/* -------- Resource -------- */

static int l_resource(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    begin();
    attributes(L, 1, NULL, RESOURCE_ATTRS);
    return result(L);
}

/* -------- Metric -------- */

/* The data points' start and time (one metric's points share them). */
static uint64_t point_start, point_time;

static int number_point(lua_State *L, int p)
{
    uint64_t start = point_start, now = point_time;
    size_t m = jr_pb_begin(&out, SUM_POINTS); /* (Gauge's data_points is 1 too) */
    attributes(L, p, "attributes", NDP_ATTRS);
    jr_pb_fixed64(&out, NDP_START, start);
    jr_pb_fixed64(&out, NDP_TIME, now);
    double v = 0;
    num_field(L, p, "value", &v);
    if (v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
        jr_pb_tag(&out, NDP_INT, JR_PB_I64); /* sfixed64 */
        jr_pb_raw_fixed64(&out, (uint64_t)(int64_t)v);
    } else {
        jr_pb_double(&out, NDP_DOUBLE, v);
    }
    jr_pb_end(&out, m);
    return 0;
}

/* t[k], a list of numbers, as a packed repeated fixed64 (counts) or double. */
static void packed(lua_State *L, int p, const char *k, uint32_t field, int as_double)
{
    if (rawfield(L, p, k) == LUA_TTABLE) {
        int t = lua_gettop(L);
        int n = (int)lua_objlen(L, t);
        size_t m = jr_pb_begin(&out, field);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, t, i);
            double v = lua_tonumber(L, -1);
            if (as_double) jr_pb_raw_double(&out, v);
            else jr_pb_raw_fixed64(&out, v > 0 ? (uint64_t)v : 0);
            lua_pop(L, 1);
        }
        jr_pb_end(&out, m);
    }
    lua_pop(L, 1);
}

static int histogram_point(lua_State *L, int p)
{
    uint64_t start = point_start, now = point_time;
    size_t m = jr_pb_begin(&out, SUM_POINTS);
    attributes(L, p, "attributes", HDP_ATTRS);
    jr_pb_fixed64(&out, HDP_START, start);
    jr_pb_fixed64(&out, HDP_TIME, now);
    double v = 0;
    num_field(L, p, "count", &v);
    jr_pb_fixed64(&out, HDP_COUNT, v > 0 ? (uint64_t)v : 0);
    v = 0;
    num_field(L, p, "sum", &v);
    jr_pb_double(&out, HDP_SUM, v);
    packed(L, p, "counts", HDP_BUCKETS, 0);
    packed(L, p, "bounds", HDP_BOUNDS, 1);
    jr_pb_end(&out, m);
    return 0;
}

static int l_metric(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    begin();
    size_t len;
    const char *s = str_field(L, 1, "name", &len);
    if (s == NULL) {
        snprintf(errmsg, sizeof errmsg, "name: expected a string");
        return fail(L, "metric");
    }
    jr_pb_string(&out, METRIC_NAME, s, len);
    opt_string(L, 1, "description", METRIC_DESCRIPTION);
    opt_string(L, 1, "unit", METRIC_UNIT);
    const char *type = str_field(L, 1, "type", NULL);
    int hist = type && strcmp(type, "histogram") == 0;
    int gauge = type && strcmp(type, "gauge") == 0;
    if (!hist && !gauge && !(type && strcmp(type, "sum") == 0)) {
        snprintf(errmsg, sizeof errmsg, "type: expected \"sum\", \"gauge\" or \"histogram\"");
        return fail(L, "metric");
    }
    double t = 0;
    num_field(L, 1, "start_us", &t);
    uint64_t start = us_to_ns(t);
    t = 0;
    num_field(L, 1, "time_us", &t);
    uint64_t now = us_to_ns(t);
    size_t m = jr_pb_begin(&out, hist ? METRIC_HISTOGRAM : gauge ? METRIC_GAUGE : METRIC_SUM);
    point_start = start;
    point_time = now;
    each_item(L, 1, "points", hist ? histogram_point : number_point);
    if (!gauge) jr_pb_uint(&out, SUM_TEMPORALITY, TEMPORALITY_CUMULATIVE);
    if (!hist && !gauge) {
        int mono = rawfield(L, 1, "monotonic") == LUA_TBOOLEAN && lua_toboolean(L, -1);
        lua_pop(L, 1);
        jr_pb_uint(&out, SUM_MONOTONIC, (uint64_t)mono);
    }
    jr_pb_end(&out, m);
    return result(L);
}

int jr_open_otlp_encode(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"span", l_span}, {"span_attributes", l_span_attributes},         {"log_record", l_log_record},
                                     {"resource", l_resource}, {"metric", l_metric},
                                     {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    return 1;
}
