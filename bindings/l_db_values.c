/* l_db_values.c - SQLite values between Lua and the jobs of core/db_*.c:
 * results (rows, cells, int64 beyond 2^53, db.null) pushed on a Lua state,
 * and parameters (numbers, strings, booleans, db.null, db.blob, int64
 * cdata) marshalled from a list or a table of names. Used by l_db.c. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "l_db_values.h"
#include "vm.h"

/* LuaJIT's type tag for FFI cdata; lua.h has no name for it. */
#define JR_LUA_TCDATA 10
#define JR_MAX_SAFE_INT 9007199254740992.0 /* 2^53 */

static char k_blob_mt, k_array_mt, k_int64_factory, k_tostring;

#define push_fail jr_push_fail

/* ---- results: C -> Lua ---- */

static void push_int64(lua_State *L, int64_t v)
{
    if (v >= -(int64_t)JR_MAX_SAFE_INT && v <= (int64_t)JR_MAX_SAFE_INT) {
        lua_pushnumber(L, (lua_Number)v);
        return;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    lua_pushlightuserdata(L, &k_int64_factory);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isfunction(L, -1)) {
        lua_pushstring(L, buf);
        if (lua_pcall(L, 1, 1, 0) == 0) return;
    }
    /* Only without jararaca.db loaded (or out of memory): the exact digits
     * are better than a rounded number. */
    lua_pop(L, 1);
    lua_pushstring(L, buf);
}

static void push_value(lua_State *L, const jr_db_job *j, const jr_db_value *v)
{
    switch (v->type) {
    case JR_DB_INTEGER: push_int64(L, v->u.i); break;
    case JR_DB_REAL: lua_pushnumber(L, v->u.d); break;
    case JR_DB_TEXT:
    case JR_DB_BLOB: lua_pushlstring(L, jr_db_bytes(j, v), v->u.s.len); break;
    default: lua_pushlightuserdata(L, NULL); break; /* db.null == json.null */
    }
}

static void set_array_mt(lua_State *L)
{
    lua_pushlightuserdata(L, &k_array_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_istable(L, -1)) lua_setmetatable(L, -2);
    else lua_pop(L, 1);
}

/* The column names (n strings) are at names+0 .. names+n-1. */
static void push_row(lua_State *L, const jr_db_job *j, size_t r, int names)
{
    lua_createtable(L, 0, (int)j->ncols);
    for (size_t k = 0; k < j->ncols; k++) {
        lua_pushvalue(L, names + (int)k);
        push_value(L, j, jr_db_cell(j, r, k));
        lua_rawset(L, -3);
    }
}

/* Push the results of a finished statement job on L; returns how many. */
static int push_results(lua_State *L, jr_db_job *j)
{
    if (j->rc != 0) return push_fail(L, j->err, jr_db_code(j->rc));
    switch (j->kind) {
    case JR_DB_EXECUTE:
        lua_createtable(L, 0, 2);
        push_int64(L, j->changes);
        lua_setfield(L, -2, "changes");
        push_int64(L, j->last_insert_id);
        lua_setfield(L, -2, "last_insert_id");
        return 1;
    case JR_DB_QUERY:
    case JR_DB_FIRST: {
        /* Never raise here: on the main state this runs unprotected. */
        if (!lua_checkstack(L, (int)j->ncols + 8)) return push_fail(L, "too many result columns", "error");
        if (j->kind == JR_DB_FIRST && j->nrows == 0) {
            lua_pushnil(L);
            return 1;
        }
        int base = lua_gettop(L);
        if (j->kind == JR_DB_QUERY) {
            lua_createtable(L, (int)j->nrows, 0); /* base + 1: rows */
            set_array_mt(L);
            lua_createtable(L, (int)j->ncols, 0); /* base + 2: columns */
            set_array_mt(L);
        }
        int names = lua_gettop(L) + 1;
        for (size_t k = 0; k < j->ncols; k++) {
            size_t len;
            const char *s = jr_db_col_name(j, k, &len);
            lua_pushlstring(L, s, len);
        }
        if (j->kind == JR_DB_FIRST) {
            push_row(L, j, 0, names);
            lua_insert(L, base + 1);
            lua_settop(L, base + 1);
            return 1;
        }
        for (size_t r = 0; r < j->nrows; r++) {
            push_row(L, j, r, names);
            lua_rawseti(L, base + 1, (int)r + 1);
        }
        for (size_t k = 0; k < j->ncols; k++) {
            lua_pushvalue(L, names + (int)k);
            lua_rawseti(L, base + 2, (int)k + 1);
        }
        lua_settop(L, base + 2);
        return 2;
    }
    default:
        lua_pushboolean(L, 1);
        return 1;
    }
}

/* END: the member's triple, then the transaction's. */
static int push_finish(lua_State *L, jr_db_job *j)
{
    int n = j->rc ? push_fail(L, j->err, jr_db_code(j->rc)) : (lua_pushboolean(L, 1), 1);
    if (n == 1) {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    if (j->txn_rc) {
        push_fail(L, j->txn_err, jr_db_code(j->txn_rc));
    } else {
        lua_pushboolean(L, 1);
        lua_pushnil(L);
        lua_pushnil(L);
    }
    return 6;
}

int jr_ldb_push_results(lua_State *L, jr_db_job *j)
{
    return j->kind == JR_DB_END ? push_finish(L, j) : push_results(L, j);
}

/* ---- parameters: Lua -> C ---- */

/* code NULL: misuse (a value of a type SQLite cannot take), raised by the
 * caller; else an expected failure with that code. */
typedef struct {
    char msg[160];
    const char *code;
} param_err;

static int bad_param(param_err *e, const char *label, const char *what, const char *code)
{
    snprintf(e->msg, sizeof e->msg, "bad parameter %s: %s", label, what);
    e->code = code;
    return -1;
}

/* int64_t / uint64_t cdata, read through tostring ("-5LL", "7ULL"). */
static int cdata_param(lua_State *L, int idx, jr_db_job *j, const char *name, size_t nlen,
                       const char *label, param_err *e)
{
    lua_pushlightuserdata(L, &k_tostring);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != 0 || lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        return bad_param(e, label, "a cdata (only int64_t and uint64_t)", NULL);
    }
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    int is_u = n > 3 && memcmp(s + n - 3, "ULL", 3) == 0;
    int is_i = !is_u && n > 2 && memcmp(s + n - 2, "LL", 2) == 0;
    char digits[32];
    size_t dn = is_u ? n - 3 : is_i ? n - 2 : 0;
    if (dn == 0 || dn >= sizeof digits) {
        lua_pop(L, 1);
        return bad_param(e, label, "a cdata (only int64_t and uint64_t)", NULL);
    }
    memcpy(digits, s, dn);
    digits[dn] = 0;
    lua_pop(L, 1);
    int64_t v;
    if (is_u) {
        unsigned long long u = strtoull(digits, NULL, 10);
        if (u > (unsigned long long)INT64_MAX)
            return bad_param(e, label, "uint64 value above 2^63-1 (SQLite integers are signed)", "range");
        v = (int64_t)u;
    } else {
        v = (int64_t)strtoll(digits, NULL, 10);
    }
    return jr_db_param_int(j, name, nlen, v);
}

/* One value at idx; label names it in errors ("2" or "name"). */
static int add_param(lua_State *L, int idx, jr_db_job *j, const char *name, size_t nlen,
                     const char *label, param_err *e)
{
    int rc;
    switch (lua_type(L, idx)) {
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL) return bad_param(e, label, "a lightuserdata", NULL);
        rc = jr_db_param_null(j, name, nlen);
        break;
    case LUA_TBOOLEAN: rc = jr_db_param_int(j, name, nlen, lua_toboolean(L, idx)); break;
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (d == floor(d) && fabs(d) <= JR_MAX_SAFE_INT) rc = jr_db_param_int(j, name, nlen, (int64_t)d);
        else rc = jr_db_param_real(j, name, nlen, d);
        break;
    }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rc = jr_db_param_text(j, name, nlen, s, n);
        break;
    }
    case LUA_TTABLE: {
        int blob = 0;
        if (lua_getmetatable(L, idx)) {
            lua_pushlightuserdata(L, &k_blob_mt);
            lua_rawget(L, LUA_REGISTRYINDEX);
            blob = lua_rawequal(L, -1, -2);
            lua_pop(L, 2);
        }
        if (!blob) return bad_param(e, label, "a table", NULL);
        lua_rawgeti(L, idx, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return bad_param(e, label, "a blob without a string", NULL);
        }
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        rc = jr_db_param_blob(j, name, nlen, s, n);
        lua_pop(L, 1);
        break;
    }
    case JR_LUA_TCDATA: return cdata_param(L, idx, j, name, nlen, label, e) == 0 ? 0 : -1;
    default:
        snprintf(e->msg, sizeof e->msg, "bad parameter %s: a %s", label, luaL_typename(L, idx));
        e->code = NULL;
        return -1;
    }
    if (rc != 0) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        e->code = "nomem"; /* an expected failure, not misuse */
        return -1;
    }
    return 0;
}

/* A list (positional) or a table of names. */
static int marshal_params(lua_State *L, int idx, jr_db_job *j, param_err *e)
{
    size_t n = lua_objlen(L, idx);
    char label[64];
    if (n > 0) {
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (int)i);
            snprintf(label, sizeof label, "%zu", i);
            int rc = add_param(L, lua_gettop(L), j, NULL, 0, label, e);
            lua_pop(L, 1);
            if (rc != 0) return -1;
        }
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(e->msg, sizeof e->msg,
                     "bad parameters: give a list or a table of names (found a %s key)", luaL_typename(L, -2));
            e->code = NULL;
            lua_pop(L, 2);
            return -1;
        }
        size_t nl;
        const char *name = lua_tolstring(L, -2, &nl);
        snprintf(label, sizeof label, "%.60s", name);
        int rc = add_param(L, lua_gettop(L), j, name, nl, label, e);
        lua_pop(L, 1);
        if (rc != 0) {
            lua_pop(L, 1);
            return -1;
        }
    }
    return 0;
}

int jr_ldb_params(lua_State *L, int idx, jr_db_job *j, char *msg, size_t msglen, const char **code)
{
    param_err e;
    if (marshal_params(L, idx, j, &e) == 0) return 0;
    snprintf(msg, msglen, "%s", e.msg);
    *code = e.code;
    return e.code ? -1 : -2;
}

/* db.configure(array_mt, int64_factory) */
static int l_configure(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushlightuserdata(L, &k_array_mt);
    lua_pushvalue(L, 1);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, &k_int64_factory);
    lua_pushvalue(L, 2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

void jr_ldb_values_open(lua_State *L)
{
    lua_pushlightuserdata(L, &k_tostring);
    lua_getglobal(L, "tostring"); /* captured before user code could replace it */
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, l_configure);
    lua_setfield(L, -2, "configure");
    lua_createtable(L, 0, 1); /* blob_mt */
    lua_pushliteral(L, "db.blob");
    lua_setfield(L, -2, "__name");
    lua_pushlightuserdata(L, &k_blob_mt);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_setfield(L, -2, "blob_mt");
}
