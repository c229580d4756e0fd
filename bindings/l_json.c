/* l_json.c - jararaca.core.json: Lua values <-> JSON text over core/json.c.
 *   json.encode(v)            -> string | nil, message, code
 *   json.decode(s)            -> value  | nil, message, code
 *   json.null                 lightuserdata NULL (the same value as cjson.null)
 *   json.array_mt             marks arrays; decoded arrays carry it
 *   json.set_int64_factory(f) f(text) -> int64_t cdata, for integers beyond 2^53
 * lua/jararaca/json.lua is the public face (array(), object_mt(), int64()).
 *
 * Encoding tables: array_mt -> array of t[1..#t]; a metatable with __order
 * (a list of keys; __order_set, if present, the same keys as a set) -> an
 * object with those keys first; otherwise {} when empty, an array when the
 * keys are exactly 1..n, else an object (string keys, or number keys written
 * as strings). Bad values come back as nil, message, code, never as a
 * raise: code "invalid_utf8" for a string or key that is not UTF-8,
 * "invalid" for any other value JSON cannot hold (NaN, infinities,
 * functions, other key types, nesting past 1000 or a cycle), "nomem". The
 * message names where the value sits (a.b[2]["odd key"], Lua indexes).
 *
 * Decoding failures: "invalid_json" (the text is not JSON, including
 * strings that are not UTF-8 and unpaired \u surrogates), "out_of_range"
 * (a number we cannot represent: an integer beyond int64_t, a magnitude
 * beyond a double), "nomem". A decode argument that is not a string is a
 * misuse and raises.
 *
 * Both directions work in one static buffer that is reset per call, so the
 * steady state allocates only the result. A __gc finalizer run by an
 * allocation inside a call (or a cdata __tostring) may itself call json:
 * such a nested call notices the busy flag and works in a buffer of its own.
 * Only a raise from inside a call (out of memory) leaves the flag set; later
 * calls then stay correct, on a buffer of their own each. */
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "vm.h"

/* LuaJIT's type tag for FFI cdata; lua.h has no name for it. */
#define JR_LUA_TCDATA 10

/* Above this the shared buffers are released after the call, so one huge
 * document does not pin its memory for the life of the process. */
#define KEEP_BUF_MAX (1u << 20)

/* Decoding parks a container's items on the Lua stack and builds the table
 * at its final size once they are all known (no rehash while growing). This
 * caps the parked slots; past it a level builds its table and fills it
 * directly. Parked + one table and key per nesting level stays under
 * LUAI_MAXCSTACK (8000). */
#define DEC_PARK_MAX 4000

static char k_int64_factory;

/* Upvalues of encode. */
#define UV_ARRAY_MT lua_upvalueindex(1)
#define UV_ORDER lua_upvalueindex(2)     /* "__order" */
#define UV_ORDER_SET lua_upvalueindex(3) /* "__order_set" */
#define UV_TOSTRING lua_upvalueindex(4)

static void release(jr_buf *b, jr_buf *shared, int *busy)
{
    if (b != shared) {
        jr_buf_free(b);
        return;
    }
    *busy = 0;
    if (b->cap > KEEP_BUF_MAX) jr_buf_free(b);
}

/* ---- encode ---- */

/* The path to a failing value is built on the way out of the recursion,
 * innermost part first, so it costs nothing until something fails. */
#define ENC_PATH_MAX 200

typedef struct {
    lua_State *L;
    jr_buf *b;
    const char *code;
    char err[160];
    char path[ENC_PATH_MAX + 1]; /* "a.b[2]" with a leading '.' before a name */
    size_t path_len;
} encoder;

static int enc_fail(encoder *e, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, sizeof e->err, fmt, ap);
    va_end(ap);
    e->code = code;
    return -1;
}

/* Put part in front of the path; past ENC_PATH_MAX the innermost parts
 * give way to "..." (the outer ones say where to look). */
static void path_prepend(encoder *e, const char *part, size_t n)
{
    if (n + e->path_len > ENC_PATH_MAX) {
        if (n + 3 > ENC_PATH_MAX) return;
        e->path_len = ENC_PATH_MAX - n - 3;
        memcpy(e->path + e->path_len, "...", 3);
        e->path_len += 3;
    }
    memmove(e->path + n, e->path, e->path_len);
    memcpy(e->path, part, n);
    e->path_len += n;
}

/* The failing value sits under key k (at idx) of its table. Names print as
 * .name, other strings as ["..."] with bytes outside printable ASCII as
 * Lua's \ddd (the key itself may be the bad UTF-8), numbers as [n]. */
static void path_key(encoder *e, int idx)
{
    lua_State *L = e->L;
    char part[64];
    size_t n = 0;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len, i;
        const unsigned char *k = (const unsigned char *)lua_tolstring(L, idx, &len);
        int name = len > 0 && !(k[0] >= '0' && k[0] <= '9');
        for (i = 0; i < len && name; i++)
            name = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
                   (k[i] >= '0' && k[i] <= '9') || k[i] == '_';
        if (name && len < sizeof part - 1) {
            part[0] = '.';
            memcpy(part + 1, k, len);
            n = len + 1;
        } else {
            memcpy(part, "[\"", 2);
            n = 2;
            for (i = 0; i < len && n < sizeof part - 10; i++) {
                if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"' && k[i] != '\\') part[n++] = (char)k[i];
                else n += (size_t)snprintf(part + n, sizeof part - n, "\\%u", k[i]);
            }
            if (i < len) {
                memcpy(part + n, "...", 3);
                n += 3;
            }
            memcpy(part + n, "\"]", 2);
            n += 2;
        }
    } else if (lua_type(L, idx) == LUA_TNUMBER) {
        n = (size_t)snprintf(part, sizeof part, "[%.14g]", lua_tonumber(L, idx));
    } else {
        return; /* the key is what failed; the path names its table */
    }
    path_prepend(e, part, n);
}

static void path_index(encoder *e, size_t i)
{
    char part[32];
    int n = snprintf(part, sizeof part, "[%zu]", i);
    path_prepend(e, part, (size_t)n);
}

/* A string value or key that is not UTF-8: why, and where in it. */
static int enc_bad_string(encoder *e, const char *what, const char *s, size_t n)
{
    size_t pos = 0;
    const char *why = jr_json_utf8_check(s, n, &pos);
    return enc_fail(e, "invalid_utf8", "cannot encode a %s that is not valid UTF-8 (byte %zu, 0x%02X: %s)",
                    what, pos + 1, pos < n ? (unsigned char)s[pos] : 0, why ? why : "?");
}

static int enc_typed(encoder *e, int idx, int type, int depth);

/* Any value; strings, the bulk of most documents, without a call. */
JR_JSON_INLINE int enc_value(encoder *e, int idx, int depth)
{
    int t = lua_type(e->L, idx);
    if (t == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(e->L, idx, &n);
        if (jr_json_write_string(e->b, s, n) != 0) return enc_bad_string(e, "string", s, n);
        return 0;
    }
    return enc_typed(e, idx, t, depth);
}

/* The key at idx and the ':' after it. */
JR_JSON_INLINE int enc_key(encoder *e, int idx)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (jr_json_write_key(e->b, s, n) != 0) {
            path_key(e, idx);
            return enc_bad_string(e, "key", s, n);
        }
        return 0;
    }
    case LUA_TNUMBER:
        /* Never lua_tolstring here: it would turn the key lua_next needs
         * into a string in place. Digits and signs need no escaping. */
        jr_buf_append_char(e->b, '"');
        if (jr_json_write_number(e->b, lua_tonumber(L, idx)) != 0)
            return enc_fail(e, "invalid", "cannot encode a table with an infinite number key");
        jr_buf_append(e->b, "\":", 2);
        return 0;
    default:
        return enc_fail(e, "invalid", "cannot encode a table with a %s key", lua_typename(L, lua_type(L, idx)));
    }
}

/* The key at kidx, ':', and the value above it. */
static int enc_member(encoder *e, int kidx, int depth)
{
    if (enc_key(e, kidx) != 0) return -1;
    if (enc_value(e, kidx + 1, depth) != 0) {
        path_key(e, kidx);
        return -1;
    }
    return 0;
}

static int enc_array(encoder *e, int idx, int depth, size_t n)
{
    lua_State *L = e->L;
    int top = lua_gettop(L) + 1; /* where each element lands */
    jr_buf_append_char(e->b, '[');
    for (size_t i = 1; i <= n; i++) {
        if (i > 1) jr_buf_append_char(e->b, ',');
        lua_rawgeti(L, idx, (int)i);
        if (enc_value(e, top, depth) != 0) {
            path_index(e, i);
            return -1;
        }
        lua_pop(L, 1);
    }
    jr_buf_append_char(e->b, ']');
    return 0;
}

/* With the first key/value of a traversal on the stack: are the keys
 * exactly 1..n? Consumes the traversal. */
static int is_sequence(lua_State *L, int idx, size_t n)
{
    size_t count = 0;
    if (n == 0) {
        lua_pop(L, 2);
        return 0;
    }
    do {
        double k = lua_type(L, -2) == LUA_TNUMBER ? lua_tonumber(L, -2) : 0;
        if (!(k >= 1 && k <= (double)n && (double)(size_t)k == k)) {
            lua_pop(L, 2);
            return 0;
        }
        count++;
        lua_pop(L, 1);
    } while (lua_next(L, idx));
    return count == n;
}

/* An object from a traversal whose first key/value are on the stack. */
static int enc_object(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    int first = 1, top = lua_gettop(L); /* the value; the key below it */
    jr_buf_append_char(e->b, '{');
    do {
        if (!first) jr_buf_append_char(e->b, ',');
        first = 0;
        if (enc_member(e, top - 1, depth) != 0) return -1;
        lua_pop(L, 1);
    } while (lua_next(L, idx));
    jr_buf_append_char(e->b, '}');
    return 0;
}

/* Is the key at kidx one of order[1..n]? (metatables built without
 * json.object_mt have no __order_set) */
static int listed_in(lua_State *L, int order, size_t n, int kidx)
{
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, order, (int)i);
        int eq = lua_rawequal(L, -1, kidx);
        lua_pop(L, 1);
        if (eq) return 1;
    }
    return 0;
}

static int enc_ordered(encoder *e, int idx, int depth, int mt, int order)
{
    lua_State *L = e->L;
    int first = 1;
    size_t n = lua_objlen(L, order);
    jr_buf_append_char(e->b, '{');
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, order, (int)i);
        lua_pushvalue(L, -1);
        lua_rawget(L, idx);
        if (!lua_isnil(L, -1)) {
            if (!first) jr_buf_append_char(e->b, ',');
            first = 0;
            if (enc_member(e, lua_gettop(L) - 1, depth) != 0) return -1;
        }
        lua_pop(L, 2);
    }
    lua_pushvalue(L, UV_ORDER_SET);
    lua_rawget(L, mt);
    int set = lua_gettop(L), has_set = lua_istable(L, set);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int key = lua_gettop(L) - 1, listed;
        if (has_set) {
            lua_pushvalue(L, key);
            lua_rawget(L, set);
            listed = !lua_isnil(L, -1);
            lua_pop(L, 1);
        } else {
            listed = listed_in(L, order, n, key);
        }
        if (!listed) {
            if (!first) jr_buf_append_char(e->b, ',');
            first = 0;
            if (enc_member(e, key, depth) != 0) return -1;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    jr_buf_append_char(e->b, '}');
    return 0;
}

static int enc_table(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > JR_JSON_MAX_DEPTH) return enc_fail(e, "invalid", "nesting deeper than 1000 (or a cycle)");
    /* A C function starts with LUA_MINSTACK (20) free slots: plenty for the
     * first level, which is all most documents need. */
    if (depth > 1 && !lua_checkstack(L, 8)) return enc_fail(e, "invalid", "nesting too deep (Lua stack)");
    if (lua_getmetatable(L, idx)) {
        if (lua_rawequal(L, -1, UV_ARRAY_MT)) {
            lua_pop(L, 1);
            return enc_array(e, idx, depth, lua_objlen(L, idx));
        }
        lua_pushvalue(L, UV_ORDER);
        lua_rawget(L, -2);
        if (lua_istable(L, -1)) {
            int top = lua_gettop(L);
            if (enc_ordered(e, idx, depth, top - 1, top) != 0) return -1;
            lua_pop(L, 2);
            return 0;
        }
        lua_pop(L, 2); /* some other metatable: judge by the contents */
    }
    lua_pushnil(L);
    if (!lua_next(L, idx)) {
        jr_buf_append(e->b, "{}", 2);
        return 0;
    }
    if (lua_type(L, -2) == LUA_TNUMBER) {
        size_t n = lua_objlen(L, idx);
        if (is_sequence(L, idx, n)) return enc_array(e, idx, depth, n);
        lua_pushnil(L);
        lua_next(L, idx); /* start over: the table is not empty */
    }
    return enc_object(e, idx, depth);
}

/* int64_t/uint64_t cdata print as "123LL"/"123ULL"; anything else (or a
 * failing __tostring) is refused. */
static int enc_cdata(encoder *e, int idx)
{
    lua_State *L = e->L;
    lua_pushvalue(L, UV_TOSTRING);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) == 0 && lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (n > 3 && memcmp(s + n - 3, "ULL", 3) == 0) n -= 3;
        else if (n > 2 && memcmp(s + n - 2, "LL", 2) == 0) n -= 2;
        else n = 0;
        size_t i = n && s[0] == '-' ? 1 : 0;
        int ok = i < n;
        for (; i < n; i++) ok &= s[i] >= '0' && s[i] <= '9';
        if (ok) {
            jr_buf_append(e->b, s, n);
            lua_pop(L, 1);
            return 0;
        }
    }
    return enc_fail(e, "invalid", "cannot encode a cdata (only int64_t and uint64_t)");
}

static int enc_typed(encoder *e, int idx, int type, int depth)
{
    lua_State *L = e->L;
    switch (type) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (jr_json_write_string(e->b, s, n) != 0) return enc_bad_string(e, "string", s, n);
        return 0;
    }
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (jr_json_write_number(e->b, d) == 0) return 0;
        return enc_fail(e, "invalid", "cannot encode %s", d != d ? "nan" : d > 0 ? "inf" : "-inf");
    }
    case LUA_TTABLE:
        return enc_table(e, idx, depth + 1);
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) jr_buf_append(e->b, "true", 4);
        else jr_buf_append(e->b, "false", 5);
        return 0;
    case LUA_TNIL:
        jr_buf_append(e->b, "null", 4);
        return 0;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { /* json.null */
            jr_buf_append(e->b, "null", 4);
            return 0;
        }
        return enc_fail(e, "invalid", "cannot encode a userdata");
    case JR_LUA_TCDATA:
        return enc_cdata(e, idx);
    default:
        return enc_fail(e, "invalid", "cannot encode a %s", lua_typename(L, type));
    }
}

static jr_buf g_enc_buf;
static int g_enc_busy;

static int l_encode(lua_State *L)
{
    if (lua_gettop(L) == 0) return luaL_argerror(L, 1, "value expected");
    /* Extra arguments are ignored; everything works above index 1. */
    jr_buf own, *b = &g_enc_buf;
    if (g_enc_busy) {
        jr_buf_init(&own);
        b = &own;
    } else {
        g_enc_busy = 1;
    }
    jr_buf_reset(b);
    encoder e;
    e.L = L;
    e.b = b;
    e.path_len = 0;
    int rc = enc_value(&e, 1, 0);
    if (rc == 0 && b->failed) rc = enc_fail(&e, "nomem", "out of memory");
    if (rc == 0) lua_pushlstring(L, b->data ? b->data : "", b->len);
    release(b, &g_enc_buf, &g_enc_busy);
    if (rc == 0) return 1;
    lua_pushnil(L);
    if (e.path_len == 0) {
        lua_pushstring(L, e.err);
    } else {
        e.path[e.path_len] = '\0';
        const char *path = e.path[0] == '.' ? e.path + 1 : e.path;
        lua_pushfstring(L, "%s at %s", e.err, path);
    }
    lua_pushstring(L, e.code);
    return 3;
}

/* ---- decode ---- */

typedef struct {
    lua_State *L;
    jr_json_parser *p;
    int base;         /* stack top before the document */
    const char *err;  /* an error of ours rather than the parser's */
} decoder;

static int dec_value(decoder *d, jr_json_event ev);

static int dec_room(decoder *d)
{
    if (lua_checkstack(d->L, 4)) return 0;
    d->err = "document too deeply nested for the Lua stack";
    return -1;
}

/* The table for n parked items above base: created with room for size,
 * moved below them, filled (consuming them); returns its index. */
static int build_array(lua_State *L, int base, int n, int size)
{
    lua_createtable(L, size, 0);
    lua_pushvalue(L, UV_ARRAY_MT);
    lua_setmetatable(L, -2);
    lua_insert(L, base + 1);
    for (int i = n; i >= 1; i--) lua_rawseti(L, base + 1, i);
    return base + 1;
}

static int build_object(lua_State *L, int base, int n, int size)
{
    int t = base + 1;
    lua_createtable(L, 0, size);
    lua_insert(L, t);
    /* In document order, so the last of duplicate keys wins. */
    for (int i = 0; i < n; i++) {
        lua_pushvalue(L, t + 1 + 2 * i);
        lua_pushvalue(L, t + 2 + 2 * i);
        lua_rawset(L, t);
    }
    lua_settop(L, t);
    return t;
}

static int dec_array(decoder *d)
{
    lua_State *L = d->L;
    int base = lua_gettop(L), t = 0, n = 0;
    for (;;) {
        jr_json_event ev = jr_json_next(d->p);
        if (ev == JR_JSON_ARRAY_END) break;
        if (ev == JR_JSON_ERROR) return -1;
        if (!t && lua_gettop(L) - d->base >= DEC_PARK_MAX) t = build_array(L, base, n, n * 2);
        if (dec_room(d) != 0 || dec_value(d, ev) != 0) return -1;
        n++;
        if (t) lua_rawseti(L, t, n);
    }
    if (!t) build_array(L, base, n, n);
    return 0;
}

static int dec_object(decoder *d)
{
    lua_State *L = d->L;
    jr_json_parser *p = d->p;
    int base = lua_gettop(L), t = 0, n = 0;
    for (;;) {
        jr_json_event ev = jr_json_next(p);
        if (ev == JR_JSON_OBJECT_END) break;
        if (ev == JR_JSON_ERROR) return -1;
        /* ev is JR_JSON_KEY */
        if (!t && lua_gettop(L) - d->base >= DEC_PARK_MAX) t = build_object(L, base, n, n * 2);
        if (dec_room(d) != 0) return -1;
        lua_pushlstring(L, p->str, p->len);
        ev = jr_json_next(p);
        if (ev == JR_JSON_ERROR || dec_value(d, ev) != 0) return -1;
        n++;
        if (t) lua_rawset(L, t);
    }
    if (!t) build_object(L, base, n, n);
    return 0;
}

static int dec_int64(decoder *d)
{
    lua_State *L = d->L;
    lua_pushlightuserdata(L, &k_int64_factory);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (!lua_isfunction(L, -1)) {
        d->err = "no int64 factory (require \"jararaca.json\" sets it)";
        return -1;
    }
    lua_pushlstring(L, d->p->str, d->p->len);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        d->err = "the int64 factory failed";
        return -1;
    }
    return 0;
}

static int dec_value(decoder *d, jr_json_event ev)
{
    lua_State *L = d->L;
    switch (ev) {
    case JR_JSON_STRING: lua_pushlstring(L, d->p->str, d->p->len); return 0;
    case JR_JSON_NUMBER: lua_pushnumber(L, d->p->num); return 0;
    case JR_JSON_OBJECT: return dec_object(d);
    case JR_JSON_ARRAY: return dec_array(d);
    case JR_JSON_TRUE: lua_pushboolean(L, 1); return 0;
    case JR_JSON_FALSE: lua_pushboolean(L, 0); return 0;
    case JR_JSON_NULL: lua_pushlightuserdata(L, NULL); return 0;
    case JR_JSON_INT64: return dec_int64(d);
    default: return -1; /* JR_JSON_ERROR; the parser emits nothing else here */
    }
}

static jr_buf g_dec_scratch;
static int g_dec_busy;

static int l_decode(lua_State *L)
{
    /* Not luaL_checklstring: it would read the number 42 as the text "42". */
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_argerror(L, 1, lua_pushfstring(L, "string expected, got %s", luaL_typename(L, 1)));
    lua_settop(L, 1);
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    jr_buf own, *scratch = &g_dec_scratch;
    if (g_dec_busy) {
        jr_buf_init(&own);
        scratch = &own;
    } else {
        g_dec_busy = 1;
    }
    jr_json_parser p;
    jr_json_parser_init(&p, s, len, scratch);
    decoder d = {L, &p, 1, NULL};
    int rc = dec_value(&d, jr_json_next(&p));
    if (rc == 0 && jr_json_next(&p) != JR_JSON_END) rc = -1;
    int nomem = scratch->failed;
    release(scratch, &g_dec_scratch, &g_dec_busy);
    if (rc == 0) return 1;
    lua_settop(L, 1);
    lua_pushnil(L);
    /* Positions are 1-based byte offsets into s. */
    if (d.err) {
        lua_pushstring(L, d.err);
        lua_pushliteral(L, "invalid_json");
    } else if (nomem) {
        lua_pushliteral(L, "out of memory");
        lua_pushliteral(L, "nomem");
    } else if (p.out_of_range) {
        lua_pushfstring(L, "%s at position %d", p.err, (int)p.err_pos);
        lua_pushliteral(L, "out_of_range");
    } else {
        lua_pushfstring(L, "invalid JSON at position %d: %s", (int)p.err_pos, p.err);
        lua_pushliteral(L, "invalid_json");
    }
    return 3;
}

static int l_set_int64_factory(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushlightuserdata(L, &k_int64_factory);
    lua_pushvalue(L, 1);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

int jr_open_json(lua_State *L)
{
    lua_createtable(L, 0, 6);

    lua_createtable(L, 0, 1); /* array_mt */
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "array_mt");

    lua_pushvalue(L, -1);
    lua_pushliteral(L, "__order");
    lua_pushliteral(L, "__order_set");
    /* Captured now, before user code could replace the global. */
    lua_getglobal(L, "tostring");
    lua_pushcclosure(L, l_encode, 4);
    lua_setfield(L, -3, "encode");

    lua_pushcclosure(L, l_decode, 1); /* consumes array_mt */
    lua_setfield(L, -2, "decode");

    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pushcfunction(L, l_set_int64_factory);
    lua_setfield(L, -2, "set_int64_factory");
    return 1;
}
