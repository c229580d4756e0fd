/* l_db.c - jararaca.core.db: SQLite connections (core/db.c) as seen from Lua.
 * lua/jararaca/db.lua is the public face (pools, leases, db.null, db.blob);
 * these functions are its building blocks and are called only from there,
 * which is why their misuse errors point two levels up (at the user's call).
 *
 *   db.configure(array_mt, int64_factory)   once, by db.lua
 *   db.blob_mt                              metatable of db.blob(s) values
 *   c, err, code = db.open(opts [, peer])   parks; peer: join its lock group
 *   db.execute(c, sql, params) -> { changes =, last_insert_id = } | nil, err, code
 *   db.query(c, sql, params)   -> rows, columns | nil, err, code
 *   db.first(c, sql, params)   -> row | nil | nil, err, code
 *   db.exec_script(c, sql)     -> true | nil, err, code
 *   db.begin(c [, mode])       -> true (sent with the next statement)
 *   db.commit(c) / db.rollback(c) -> true | nil, err, code
 *   db.in_transaction(c)       -> boolean
 *   db.reset(c)                before reuse: drop a pending BEGIN, roll back
 *                              an open transaction (in the background)
 *   db.close(c, wait)          -> true (parks until closed when wait and in a task)
 *   db.interrupt(c)            stop c's statements in flight ("interrupted")
 *   db.stats(c)                -> counters | nil while a job is in flight
 *
 * Results are built on the main Lua state (never on the parked coroutine,
 * where calling the int64 factory would not be allowed) and moved over. */
#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db.h"
#include "log.h"
#include "scheduler.h"
#include "vm.h"

/* LuaJIT's type tag for FFI cdata; lua.h has no name for it. */
#define JR_LUA_TCDATA 10
#define JR_MAX_SAFE_INT 9007199254740992.0 /* 2^53 */

static char k_conn_mt, k_blob_mt, k_array_mt, k_int64_factory, k_tostring;

typedef struct l_conn {
    jr_db *db;        /* NULL once closed (or never started) */
    jr_db_job job;    /* the user's operations */
    jr_db_job bg;     /* the ROLLBACK of db.reset, nobody waits for it */
    jr_waiter waiter; /* the task in the current operation (or in open) */
    jr_waiter close_waiter;
    int anchor;       /* registry ref to the userdata while opening */
    int busy;         /* a user job is in flight */
    int bg_busy;
    int pending_begin; /* a jr_db_begin to send with the next statement */
    int in_txn;       /* a transaction is open, as of the last job */
    int txn_write;    /* ... and it holds the write lock */
    int closing, closed;
    int ud_alive;
} l_conn;

typedef struct {
    l_conn *c;
} conn_ud;

/* error(msg, 2) as seen from db.lua's wrappers: the position is the
 * caller of the wrapper. */
static int raise2(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    luaL_where(L, 2);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

static l_conn *check_conn(lua_State *L)
{
    conn_ud *u = jr_checkudata(L, 1, &k_conn_mt, "db connection");
    if (!u->c) luaL_error(L, "db connection already finalized");
    return u->c;
}

static void free_conn(l_conn *c)
{
    jr_db_job_free(&c->job);
    jr_db_job_free(&c->bg);
    free(c);
}

static int push_fail(lua_State *L, const char *err, const char *code)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushstring(L, code);
    return 3;
}

/* ---- closing ---- */

static void on_db_closed(void *data)
{
    l_conn *c = data;
    c->closed = 1;
    c->db = NULL;
    if (!c->ud_alive) {
        free_conn(c);
        return;
    }
    lua_State *co = jr_waiter_thread(&c->close_waiter);
    if (co) {
        lua_pushboolean(co, 1);
        /* Last touch of c: the resumed task may drop the userdata, and its
         * __gc free c. */
        jr_waiter_resume(&c->close_waiter, 1);
    }
}

static void start_close(l_conn *c)
{
    if (c->closing || c->closed) return;
    c->closing = 1;
    if (c->db) jr_db_close(c->db, on_db_closed, c);
    else c->closed = 1;
}

static int conn_gc(lua_State *L)
{
    conn_ud *u = lua_touserdata(L, 1);
    l_conn *c = u->c;
    if (!c) return 0;
    u->c = NULL;
    c->ud_alive = 0;
    if (c->closed || !c->db) free_conn(c);
    else start_close(c); /* frees c in on_db_closed */
    return 0;
}

/* ---- results ---- */

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

/* Push the results of a finished job on L; returns how many. */
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

static void note_state(l_conn *c, const jr_db_job *j)
{
    c->in_txn = !j->autocommit;
    c->txn_write = j->txn_state == JR_DB_TXN_WRITE;
}

/* The callback of every user job: hand the results to the waiting task. */
static void on_done(jr_db_job *j)
{
    l_conn *c = j->data;
    c->busy = 0;
    note_state(c, j);
    lua_State *co = jr_waiter_thread(&c->waiter);
    if (!co) return; /* a parked task cannot vanish; nothing to hand over */
    lua_State *L = jr_vm_global->L;
    int top = lua_gettop(L);
    int n = push_results(L, j);
    if (!lua_checkstack(co, n + 1)) {
        lua_settop(L, top);
        n = push_fail(L, "out of stack space for the results", "error");
    }
    lua_xmove(L, co, n);
    jr_waiter_resume(&c->waiter, n); /* last touch of c */
}

static void on_bg_done(jr_db_job *j)
{
    l_conn *c = j->data;
    c->bg_busy = 0;
    if (j->rc != 0) jr_logf(JR_LOG_ERROR, NULL, "db: rollback on release failed: %s", j->err);
    /* A user job queued behind it reports the state again, later. */
    if (!c->busy) note_state(c, j);
}

/* ---- open ---- */

static void on_open(jr_db_job *j)
{
    l_conn *c = j->data;
    c->busy = 0;
    lua_State *L = jr_vm_global->L;
    lua_State *co = jr_waiter_thread(&c->waiter);
    int ok = j->rc == 0;
    int n;
    if (ok) {
        c->in_txn = 0;
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->anchor);
        n = 1;
    } else {
        n = push_fail(L, j->err, jr_db_code(j->rc));
    }
    luaL_unref(L, LUA_REGISTRYINDEX, c->anchor);
    c->anchor = LUA_NOREF;
    if (!ok || !co) start_close(c);
    if (!co) {
        lua_pop(L, n);
        return;
    }
    lua_xmove(L, co, n);
    jr_waiter_resume(&c->waiter, n);
}

static int opt_int(lua_State *L, int t, const char *k, int def)
{
    lua_getfield(L, t, k);
    int v = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

static const char *opt_str(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* still referenced by the options table */
    return v;
}

/* db.open(opts [, peer]) */
static int l_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    jr_db_group *group = NULL;
    if (!lua_isnoneornil(L, 2)) {
        conn_ud *p = jr_checkudata(L, 2, &k_conn_mt, "db connection");
        if (!p->c || !p->c->db || p->c->closing) return luaL_argerror(L, 2, "closed connection");
        group = jr_db_get_group(p->c->db);
    }
    if (!jr_task_current()) return raise2(L, "db.open() must be called inside a task");
    jr_db_options o;
    memset(&o, 0, sizeof o);
    o.path = opt_str(L, 1, "path");
    if (!o.path) return luaL_argerror(L, 1, "path expected");
    o.busy_timeout_ms = opt_int(L, 1, "busy_timeout_ms", 5000);
    o.journal_mode = opt_str(L, 1, "journal_mode");
    o.synchronous = opt_str(L, 1, "synchronous");
    lua_getfield(L, 1, "foreign_keys");
    o.foreign_keys = lua_isboolean(L, -1) ? lua_toboolean(L, -1) : -1;
    lua_pop(L, 1);
    o.statement_cache = opt_int(L, 1, "statement_cache", 64);
    o.inline_us = opt_int(L, 1, "inline_us", 0);
    o.spin_us = opt_int(L, 1, "spin_us", -1);
    const char *pragmas[64];
    lua_getfield(L, 1, "pragmas");
    if (lua_istable(L, -1)) {
        size_t n = lua_objlen(L, -1);
        if (n > sizeof pragmas / sizeof pragmas[0]) return luaL_error(L, "db.open: too many pragmas");
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, -1, (int)i + 1);
            if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "db.open: pragmas must be strings");
            pragmas[i] = lua_tostring(L, -1); /* anchored by the list */
            lua_pop(L, 1);
        }
        o.pragmas = pragmas;
        o.npragmas = n;
    }
    lua_pop(L, 1);

    /* The userdata first: if Lua runs out of memory, nothing leaks. */
    conn_ud *u = lua_newuserdata(L, sizeof *u);
    u->c = NULL;
    lua_pushlightuserdata(L, &k_conn_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    l_conn *c = calloc(1, sizeof *c);
    if (!c) return luaL_error(L, "out of memory");
    jr_db_job_init(&c->job);
    jr_db_job_init(&c->bg);
    c->anchor = LUA_NOREF;
    c->ud_alive = 1;
    u->c = c;
    c->job.data = c;
    c->db = jr_db_open(jr_vm_global->loop, &o, group, &c->job, on_open);
    if (!c->db) {
        c->closed = 1;
        lua_pushnil(L);
        lua_pushfstring(L, "cannot open database %s: cannot start its thread", o.path);
        lua_pushliteral(L, "error");
        return 3;
    }
    /* Nothing else references the userdata until on_open hands it over. */
    lua_pushvalue(L, -1);
    c->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
    c->busy = 1;
    return jr_waiter_park(L, &c->waiter, "db.open()");
}

/* ---- parameters ---- */

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
        return bad_param(e, label, "a cdata (only int64_t and uint64_t)", "misuse");
    }
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    int is_u = n > 3 && memcmp(s + n - 3, "ULL", 3) == 0;
    int is_i = !is_u && n > 2 && memcmp(s + n - 2, "LL", 2) == 0;
    char digits[32];
    size_t dn = is_u ? n - 3 : is_i ? n - 2 : 0;
    if (dn == 0 || dn >= sizeof digits) {
        lua_pop(L, 1);
        return bad_param(e, label, "a cdata (only int64_t and uint64_t)", "misuse");
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
        if (lua_touserdata(L, idx) != NULL) return bad_param(e, label, "a lightuserdata", "misuse");
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
        if (!blob) return bad_param(e, label, "a table", "misuse");
        lua_rawgeti(L, idx, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return bad_param(e, label, "a blob without a string", "misuse");
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
        e->code = "misuse";
        return -1;
    }
    if (rc != 0) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        e->code = "error";
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
            e->code = "misuse";
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

/* ---- operations ---- */

#define JR_DB_INLINE_SLICE_NS 2000000u
static jr_task *g_slice_task; /* the task whose inline time g_slice_ns counts */
static uint64_t g_slice_ns;

static l_conn *usable(lua_State *L, const char *what)
{
    l_conn *c = check_conn(L);
    if (!jr_task_current()) raise2(L, "%s must be called inside a task", what);
    if (c->busy) raise2(L, "%s: another operation is in progress on this connection", what);
    return c;
}

/* The job is with the connection now: its callback (on_done) resumes us. */
static int park(lua_State *L, l_conn *c, const char *what)
{
    c->busy = 1;
    return jr_waiter_park(L, &c->waiter, what);
}

static int submit_and_park(lua_State *L, l_conn *c, const char *what)
{
    jr_db_job *j = &c->job;
    j->cb = on_done;
    j->data = c;
    if (!c->db || c->closing || jr_db_submit(c->db, j) != 0)
        return push_fail(L, "the connection is closed", "closed");
    return park(L, c, what);
}

static int run_statement(lua_State *L, jr_db_kind kind, const char *what)
{
    l_conn *c = usable(L, what);
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    jr_db_job *j = &c->job;
    jr_db_job_reset(j);
    j->kind = kind;
    if (jr_db_job_set_sql(j, sql, (long)len) != 0) return luaL_error(L, "out of memory");
    if (kind != JR_DB_SCRIPT && !lua_isnoneornil(L, 3)) {
        if (!lua_istable(L, 3)) {
            lua_pushnil(L);
            lua_pushfstring(L, "bad parameters: a list or a table of names expected, got a %s",
                            luaL_typename(L, 3));
            lua_pushliteral(L, "misuse");
            return 3;
        }
        param_err e;
        if (marshal_params(L, 3, j, &e) != 0) return push_fail(L, e.msg, e.code);
    }
    j->begin = c->pending_begin;
    c->pending_begin = JR_DB_NO_BEGIN;
    if (kind == JR_DB_SCRIPT) return submit_and_park(L, c, what);
    /* A quick statement runs right here (see jr_db_run), else it parks. One
     * that runs here returns without yielding, so a task running many (an
     * import: 100k inserts in one transaction) would hold the loop: after
     * JR_DB_INLINE_SLICE_NS of them without a pause, its next statement
     * goes through the connection's thread, which parks the task and lets
     * the others run. */
    jr_task *task = jr_task_current();
    if (task != g_slice_task) {
        g_slice_task = task;
        g_slice_ns = 0;
    }
    if (g_slice_ns >= JR_DB_INLINE_SLICE_NS) {
        g_slice_ns = 0;
        return submit_and_park(L, c, what);
    }
    j->cb = on_done;
    j->data = c;
    uint64_t t0 = uv_hrtime();
    int rc = c->db && !c->closing ? jr_db_run(c->db, j) : -1;
    if (rc < 0) return push_fail(L, "the connection is closed", "closed");
    if (rc == 0) return park(L, c, what);
    g_slice_ns += uv_hrtime() - t0;
    note_state(c, j);
    return push_results(L, j);
}

static int l_execute(lua_State *L) { return run_statement(L, JR_DB_EXECUTE, "conn:execute()"); }
static int l_query(lua_State *L) { return run_statement(L, JR_DB_QUERY, "conn:query()"); }
static int l_first(lua_State *L) { return run_statement(L, JR_DB_FIRST, "conn:first()"); }
static int l_exec_script(lua_State *L) { return run_statement(L, JR_DB_SCRIPT, "conn:exec_script()"); }

static int l_begin(lua_State *L)
{
    l_conn *c = check_conn(L);
    const char *mode = luaL_optstring(L, 2, "deferred");
    int b;
    if (strcasecmp(mode, "deferred") == 0) b = JR_DB_BEGIN_DEFERRED;
    else if (strcasecmp(mode, "immediate") == 0) b = JR_DB_BEGIN_IMMEDIATE;
    else if (strcasecmp(mode, "exclusive") == 0) b = JR_DB_BEGIN_EXCLUSIVE;
    else return raise2(L, "conn:begin(): mode must be \"deferred\", \"immediate\" or \"exclusive\", not \"%s\"", mode);
    if (c->busy) return raise2(L, "conn:begin(): another operation is in progress on this connection");
    if (c->pending_begin || c->in_txn) return raise2(L, "conn:begin(): a transaction is already open");
    c->pending_begin = b;
    lua_pushboolean(L, 1);
    return 1;
}

static int end_txn(lua_State *L, jr_db_kind kind, const char *what)
{
    l_conn *c = usable(L, what);
    if (c->pending_begin) {
        /* BEGIN was never sent: nothing to end, nothing to pay. */
        c->pending_begin = JR_DB_NO_BEGIN;
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!c->in_txn) {
        if (kind == JR_DB_ROLLBACK) {
            lua_pushboolean(L, 1);
            return 1;
        }
        return push_fail(L, "cannot commit - no transaction is active", "error");
    }
    jr_db_job *j = &c->job;
    jr_db_job_reset(j);
    j->kind = kind;
    /* jr_db_end_inline decides: read transactions, and cheap (WAL, no fsync) commits */
    if (c->db && !c->closing && (kind == JR_DB_COMMIT || !c->txn_write) && jr_db_end_inline(c->db, j)) {
        note_state(c, j);
        return push_results(L, j);
    }
    return submit_and_park(L, c, what);
}

static int l_commit(lua_State *L) { return end_txn(L, JR_DB_COMMIT, "conn:commit()"); }
static int l_rollback(lua_State *L) { return end_txn(L, JR_DB_ROLLBACK, "conn:rollback()"); }

static int l_in_transaction(lua_State *L)
{
    l_conn *c = check_conn(L);
    lua_pushboolean(L, c->pending_begin || c->in_txn);
    return 1;
}

static int l_reset(lua_State *L)
{
    l_conn *c = check_conn(L);
    if (c->busy) return raise2(L, "conn:release(): an operation is still in progress on this connection");
    c->pending_begin = JR_DB_NO_BEGIN;
    if (!c->in_txn || !c->db || c->closing) return 0;
    jr_db_job *bg = &c->bg;
    jr_db_job_reset(bg);
    bg->kind = JR_DB_ROLLBACK;
    if (!c->txn_write && jr_db_end_inline(c->db, bg)) {
        note_state(c, bg);
        return 0;
    }
    /* bg cannot be in flight here: in_txn was reported by a user job that
     * completed after any earlier bg job (one queue, in order). */
    if (c->bg_busy) return 0;
    bg->cb = on_bg_done;
    bg->data = c;
    if (jr_db_submit(c->db, bg) == 0) {
        c->bg_busy = 1;
        /* The next user's jobs queue behind the ROLLBACK. */
        c->in_txn = c->txn_write = 0;
    }
    return 0;
}

static int l_close(lua_State *L)
{
    l_conn *c = check_conn(L);
    int wait = lua_toboolean(L, 2);
    if (c->closed) {
        lua_pushboolean(L, 1);
        return 1;
    }
    start_close(c);
    if (c->closed || !wait || !jr_task_current()) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return jr_waiter_park(L, &c->close_waiter, "conn:close()");
}

static int l_interrupt(lua_State *L)
{
    l_conn *c = check_conn(L);
    if (c->db && !c->closing) jr_db_interrupt(c->db);
    return 0;
}

static int l_stats(lua_State *L)
{
    l_conn *c = check_conn(L);
    if (!c->db || jr_db_inflight(c->db) != 0) return 0;
    jr_db_stats s;
    jr_db_get_stats(c->db, &s);
    lua_createtable(L, 0, 10);
#define FIELD(name)                          \
    lua_pushnumber(L, (lua_Number)s.name); \
    lua_setfield(L, -2, #name)
    FIELD(jobs);
    FIELD(inline_ends);
    FIELD(cache_hits);
    FIELD(cache_misses);
    FIELD(cache_evictions);
    FIELD(cache_size);
    FIELD(busy_waits);
    FIELD(writer_waits);
    FIELD(inline_runs);
    FIELD(inline_fallbacks);
#undef FIELD
    return 1;
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

int jr_open_db(lua_State *L)
{
    static const luaL_Reg none[] = {{NULL, NULL}};
    jr_newmetatable(L, &k_conn_mt, "db connection", none, conn_gc);

    lua_pushlightuserdata(L, &k_tostring);
    lua_getglobal(L, "tostring"); /* captured before user code could replace it */
    lua_rawset(L, LUA_REGISTRYINDEX);

    static const luaL_Reg fns[] = {
        {"open", l_open},         {"execute", l_execute},     {"query", l_query},
        {"first", l_first},       {"exec_script", l_exec_script}, {"begin", l_begin},
        {"commit", l_commit},     {"rollback", l_rollback},   {"in_transaction", l_in_transaction},
        {"reset", l_reset},       {"close", l_close},         {"interrupt", l_interrupt},
        {"stats", l_stats},       {NULL, NULL}};
    lua_createtable(L, 0, 16);
    /* The connection metatable as upvalue 1: jr_checkudata's fast path. */
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, &k_conn_mt);
        lua_rawget(L, LUA_REGISTRYINDEX);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
    lua_pushcfunction(L, l_configure);
    lua_setfield(L, -2, "configure");

    lua_createtable(L, 0, 1); /* blob_mt */
    lua_pushliteral(L, "db.blob");
    lua_setfield(L, -2, "__name");
    lua_pushlightuserdata(L, &k_blob_mt);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_setfield(L, -2, "blob_mt");
    return 1;
}
