/* l_db.c - jararaca.core.db: SQLite connections (core/db_*.c) as seen from
 * Lua. lua/jararaca/db.lua and lua/jararaca/db/ are the public face (roles,
 * transactions, group commit, db.null, db.blob); these functions are their
 * building blocks and are called only from there, which is why their misuse
 * errors point two levels up (at the user's call).
 *
 *   db.configure(array_mt, int64_factory)    once, by db.lua
 *   db.blob_mt                               metatable of db.blob(s) values
 *   c, err, code = db.open(opts)             parks; opts as jr_db_options
 *   db.close(c, wait)                        -> true (parks until closed when wait, in a task)
 *   job = db.job()                           a job slot: one operation at a time
 *   db.run(c, job, kind, sql, params, pre, read)
 *       kind: db.EXECUTE | QUERY | FIRST | SCRIPT; pre: db.PRE_* bits;
 *       read: try the loop thread first (jr_db_run_read)
 *       -> { changes =, last_insert_id = } | rows, columns | row | nil | true
 *        | nil, err, code   (parks unless it ran on the loop)
 *        | false, err: misuse in params (a table, a function...): the Lua
 *          side raises it at its caller (raised here, it would leave the
 *          transaction marked busy)
 *        | db.AGAIN: nothing ran; the task used its slice of the loop, yield and ask again
 *   db.finish(c, job, member_end, txn_end, read)
 *       -> m_ok, m_err, m_code, t_ok, t_err, t_code (each triple true | nil, err, code)
 *   db.state(job) -> autocommit, began, savepoint, needs_writer   (after run/finish)
 *   db.counters(job) -> sorts, vm_steps, fullscan_steps   (of the last statement)
 *   db.interrupt(c)                          stop c's statements in flight ("interrupted")
 *   db.stats(c)                              -> counters | nil while a job is in flight
 *   db.data_version(c)                       -> version, changes | nil (connection busy)
 *
 * Results are built on the main Lua state (never on the parked coroutine,
 * where calling the int64 factory would not be allowed) and moved over. */
#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "l_db_values.h"
#include "log.h"
#include "scheduler.h"
#include "vm.h"


static char k_conn_mt, k_job_mt, k_again;

typedef struct l_conn {
    struct l_conn *prev, *next; /* g_conns: open, not yet closed */
    jr_db *db;        /* NULL once closed (or never started) */
    jr_db_job open_job;
    jr_waiter waiter; /* the task in db.open */
    jr_waiter close_waiter;
    int anchor;       /* registry ref to the userdata while opening */
    int spin_us;      /* its thread spins (the writer): so does the loop, see spin_start */
    int closing, closed;
    int ud_alive;
} l_conn;

typedef struct {
    l_conn *c;
} conn_ud;

/* A job slot. While its job is in flight the userdata is anchored in the
 * registry (`anchor`): the connection's thread writes into it, whatever
 * happens to the Lua side meanwhile. */
typedef struct {
    jr_db_job job;
    jr_waiter waiter;
    int busy;
    int anchor;
    int spinning; /* counted in g_spin_jobs */
} l_job;

/* error(msg, 2) as seen from the Lua wrappers: the position is the caller
 * of the wrapper. */
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

static l_conn *check_conn(lua_State *L, int idx)
{
    conn_ud *u = jr_checkudata(L, idx, &k_conn_mt, "db connection");
    if (!u->c) luaL_error(L, "db connection already finalized");
    return u->c;
}

static l_job *check_job(lua_State *L, int idx) { return jr_checkudata(L, idx, &k_job_mt, "db job"); }

#define push_fail jr_push_fail
#define push_any jr_ldb_push_results

/* ---- the open connections, and delivery between tasks ---- */

static l_conn *g_conns;

static void link_conn(l_conn *c)
{
    c->prev = NULL;
    c->next = g_conns;
    if (g_conns) g_conns->prev = c;
    g_conns = c;
}

static void unlink_conn(l_conn *c)
{
    if (c->prev) c->prev->next = c->next;
    else if (g_conns == c) g_conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* After each task (jr_sched_set_after_task): finished jobs of every
 * connection go back to their tasks now (see jr_db_deliver). A connection
 * leaves the list only in on_db_closed, which runs in libuv's close phase,
 * never during this walk; ones opened meanwhile go in at the head. */
static void deliver_all(void)
{
    static int busy;
    if (busy) return;
    busy = 1;
    for (l_conn *c = g_conns, *next; c; c = next) {
        next = c->next;
        if (c->db && !c->closing) jr_db_deliver(c->db);
    }
    busy = 0;
}

/* While a job of a connection that spins (the writer) is in flight, the
 * loop does not sleep in epoll for up to that connection's spin time: it
 * turns (an idle handle makes the poll non-blocking, I/O still comes in)
 * and looks for the answer each turn. The two threads ping-pong on every
 * write transaction (statement, then the next one's): a wake-up from epoll
 * costs tens of microseconds on these VMs, on every step (measured: POST
 * /tasks ~9.4-10.1k req/s without, ~9.6-12.9k with, same runs). */
static uv_idle_t g_spin;
static int g_spin_init;
static uint64_t g_spin_until;
static unsigned g_spin_jobs; /* jobs of spinning connections in flight */

static void on_spin(uv_idle_t *h)
{
    deliver_all();
    if (g_spin_jobs == 0 || uv_hrtime() >= g_spin_until) uv_idle_stop(h);
}

static void spin_start(int spin_us)
{
    if (spin_us <= 0) return;
    if (!g_spin_init) {
        uv_idle_init(jr_vm_global->loop, &g_spin);
        uv_unref((uv_handle_t *)&g_spin);
        g_spin_init = 1;
    }
    g_spin_until = uv_hrtime() + (uint64_t)spin_us * 1000u;
    if (!uv_is_active((uv_handle_t *)&g_spin)) uv_idle_start(&g_spin, on_spin);
}

/* ---- closing ---- */

static void free_conn(l_conn *c)
{
    jr_db_job_free(&c->open_job);
    free(c);
}

static void on_db_closed(void *data)
{
    l_conn *c = data;
    unlink_conn(c);
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

static int job_gc(lua_State *L)
{
    l_job *j = lua_touserdata(L, 1);
    /* Never in flight here: the anchor keeps a busy job alive. */
    jr_db_job_free(&j->job);
    return 0;
}

/* The callback of every user job: hand the results to the waiting task. */
static void on_done(jr_db_job *job)
{
    l_job *j = job->data;
    lua_State *L = jr_vm_global->L;
    j->busy = 0;
    if (j->spinning) {
        j->spinning = 0;
        g_spin_jobs--;
    }
    int anchor = j->anchor;
    j->anchor = LUA_NOREF;
    lua_State *co = jr_waiter_thread(&j->waiter);
    if (co) {
        int top = lua_gettop(L);
        int n = push_any(L, job);
        if (!lua_checkstack(co, n + 1)) {
            lua_settop(L, top);
            n = push_fail(L, "out of stack space for the results", "error");
        }
        lua_xmove(L, co, n);
        jr_waiter_resume(&j->waiter, n);
    }
    /* Last: the resumed task may have dropped the job (anchor keeps it). */
    luaL_unref(L, LUA_REGISTRYINDEX, anchor);
}

/* ---- open ---- */

static void on_open(jr_db_job *j)
{
    l_conn *c = j->data;
    lua_State *L = jr_vm_global->L;
    lua_State *co = jr_waiter_thread(&c->waiter);
    int ok = j->rc == 0;
    int n;
    if (ok) {
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

/* db.open(opts): the options come validated from db/options.lua. */
static int l_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!jr_task_current()) return raise2(L, "db.open() must be called inside a task");
    jr_db_options o;
    memset(&o, 0, sizeof o);
    o.path = opt_str(L, 1, "path");
    if (!o.path) return luaL_argerror(L, 1, "path expected");
    lua_getfield(L, 1, "readonly");
    o.readonly = lua_toboolean(L, -1);
    lua_pop(L, 1);
    o.busy_timeout_ms = opt_int(L, 1, "busy_timeout_ms", 0);
    o.journal_mode = opt_str(L, 1, "journal_mode");
    o.synchronous = opt_str(L, 1, "synchronous");
    lua_getfield(L, 1, "foreign_keys");
    o.foreign_keys = lua_isboolean(L, -1) ? lua_toboolean(L, -1) : -1;
    lua_pop(L, 1);
    o.statement_cache = opt_int(L, 1, "statement_cache", 0);
    o.read_deadline_us = opt_int(L, 1, "read_deadline_us", 0);
    o.spin_us = opt_int(L, 1, "spin_us", 0);
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
    jr_db_job_init(&c->open_job);
    c->anchor = LUA_NOREF;
    c->ud_alive = 1;
    c->spin_us = o.spin_us;
    u->c = c;
    c->open_job.data = c;
    c->db = jr_db_open(jr_vm_global->loop, &o, &c->open_job, on_open);
    if (c->db) link_conn(c);
    if (!c->db) {
        c->closed = 1;
        lua_pushfstring(L, "cannot open database %s: cannot start its thread", o.path);
        return push_fail(L, lua_tostring(L, -1), "error");
    }
    /* Nothing else references the userdata until on_open hands it over. */
    lua_pushvalue(L, -1);
    c->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
    return jr_waiter_park(L, &c->waiter, "db.open()");
}

/* ---- operations ---- */

static l_job *usable_job(lua_State *L, int idx, const char *what)
{
    l_job *j = check_job(L, idx);
    if (!jr_task_current()) raise2(L, "%s must be called inside a task", what);
    if (j->busy) raise2(L, "%s: another operation is in progress on this transaction", what);
    return j;
}

/* Statements that run on the loop thread return without yielding, so a
 * task running many in a row (a loop of reads) would keep the loop to
 * itself: after JR_DB_SLICE_NS of them in one turn of the loop, the next
 * read returns db.AGAIN without running, and the Lua side yields to the
 * tasks that are ready (sleep(0)) before it asks again. */
#define JR_DB_SLICE_NS 2000000u
static jr_task *g_slice_task;
static uint64_t g_slice_turn, g_slice_ns;

/* The connection is closed: the results of the job that could not run, in
 * its kind's shape (an END job answers for the member and the transaction). */
static int push_closed(lua_State *L, const jr_db_job *job)
{
    int n = push_fail(L, "the connection is closed", "closed");
    if (job->kind == JR_DB_END) n += push_fail(L, "the connection is closed", "closed");
    return n;
}

/* Hand the job to the connection (read: try the loop thread first); push
 * the results now, or park until on_done does. */
static int dispatch(lua_State *L, l_conn *c, l_job *j, int read, const char *what)
{
    jr_db_job *job = &j->job;
    job->cb = on_done;
    job->data = j;
    if (!c->db || c->closing) return push_closed(L, job);
    if (read && job->kind != JR_DB_END) {
        jr_task *task = jr_task_current();
        uint64_t turn = uv_now(jr_vm_global->loop);
        if (task != g_slice_task || turn != g_slice_turn) {
            g_slice_task = task;
            g_slice_turn = turn;
            g_slice_ns = 0;
        }
        if (g_slice_ns >= JR_DB_SLICE_NS) {
            g_slice_ns = 0;
            lua_pushlightuserdata(L, &k_again);
            return 1;
        }
    }
    uint64_t t0 = read ? uv_hrtime() : 0;
    int r = read ? jr_db_run_read(c->db, job) : jr_db_submit(c->db, job) == 0 ? 0 : -1;
    if (r < 0) return push_closed(L, job);
    if (r == 1) {
        g_slice_ns += uv_hrtime() - t0;
        return push_any(L, job);
    }
    j->busy = 1;
    if (c->spin_us > 0) {
        j->spinning = 1;
        g_spin_jobs++;
        spin_start(c->spin_us);
    }
    lua_pushvalue(L, 2); /* the job userdata: anchored while in flight */
    j->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
    return jr_waiter_park(L, &j->waiter, what);
}

/* db.run(c, job, kind, sql, params, pre, read) */
static int l_run(lua_State *L)
{
    l_conn *c = check_conn(L, 1);
    l_job *j = usable_job(L, 2, "a statement");
    int kind = (int)luaL_checkinteger(L, 3);
    size_t len;
    const char *sql = luaL_checklstring(L, 4, &len);
    int pre = (int)luaL_optinteger(L, 6, 0);
    int read = lua_toboolean(L, 7);
    if (kind < JR_DB_EXECUTE || kind > JR_DB_SCRIPT) return luaL_argerror(L, 3, "bad kind");
    jr_db_job *job = &j->job;
    jr_db_job_reset(job);
    job->kind = (jr_db_kind)kind;
    job->pre = pre;
    if (jr_db_job_set_sql(job, sql, (long)len) != 0) return luaL_error(L, "out of memory");
    if (kind != JR_DB_SCRIPT && !lua_isnoneornil(L, 5)) {
        if (!lua_istable(L, 5)) return luaL_typerror(L, 5, "table of parameters");
        char msg[160];
        const char *code;
        int rc = jr_ldb_params(L, 5, job, msg, sizeof msg, &code);
        if (rc == -1) return push_fail(L, msg, code);
        if (rc != 0) {
            lua_pushboolean(L, 0);
            lua_pushstring(L, msg);
            return 2;
        }
    }
    return dispatch(L, c, j, read, "a statement");
}

/* db.finish(c, job, member_end, txn_end, read) */
static int l_finish(lua_State *L)
{
    l_conn *c = check_conn(L, 1);
    l_job *j = usable_job(L, 2, "commit/rollback");
    jr_db_job *job = &j->job;
    jr_db_job_reset(job);
    job->kind = JR_DB_END;
    job->end_member = (jr_db_member_end)luaL_checkinteger(L, 3);
    job->end_txn = (jr_db_txn_end)luaL_checkinteger(L, 4);
    int read = lua_toboolean(L, 5);
    int n = dispatch(L, c, j, read, "commit/rollback");
    return n;
}

/* db.state(job) -> autocommit, began, savepoint, needs_writer */
static int l_state(lua_State *L)
{
    l_job *j = check_job(L, 1);
    lua_pushboolean(L, j->job.autocommit);
    lua_pushboolean(L, j->job.began);
    lua_pushboolean(L, j->job.savepoint);
    lua_pushboolean(L, j->job.needs_writer);
    return 4;
}

/* db.counters(job) -> sorts, vm_steps, fullscan_steps of the last statement */
static int l_counters(lua_State *L)
{
    l_job *j = check_job(L, 1);
    lua_pushnumber(L, (lua_Number)j->job.sorts);
    lua_pushnumber(L, (lua_Number)j->job.vm_steps);
    lua_pushnumber(L, (lua_Number)j->job.fullscan_steps);
    return 3;
}

static int l_job_new(lua_State *L)
{
    l_job *j = lua_newuserdata(L, sizeof *j);
    memset(j, 0, sizeof *j);
    jr_db_job_init(&j->job);
    j->anchor = LUA_NOREF;
    lua_pushlightuserdata(L, &k_job_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    return 1;
}

static int l_close(lua_State *L)
{
    l_conn *c = check_conn(L, 1);
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
    return jr_waiter_park(L, &c->close_waiter, "db close");
}

static int l_interrupt(lua_State *L)
{
    l_conn *c = check_conn(L, 1);
    if (c->db && !c->closing) jr_db_interrupt(c->db);
    return 0;
}

static int l_stats(lua_State *L)
{
    l_conn *c = check_conn(L, 1);
    if (!c->db || jr_db_inflight(c->db) != 0) return 0;
    jr_db_stats s;
    jr_db_get_stats(c->db, &s);
    lua_createtable(L, 0, 10);
#define FIELD(name)                          \
    lua_pushnumber(L, (lua_Number)s.name); \
    lua_setfield(L, -2, #name)
    FIELD(jobs);
    FIELD(cache_hits);
    FIELD(cache_misses);
    FIELD(cache_evictions);
    FIELD(cache_size);
    FIELD(busy_waits);
    FIELD(inline_runs);
    FIELD(inline_stopped);
    FIELD(inline_overruns);
    FIELD(checkpoints);
#undef FIELD
    return 1;
}

static int l_data_version(lua_State *L)
{
    l_conn *c = check_conn(L, 1);
    uint32_t v;
    int64_t changes;
    if (!c->db || c->closing || jr_db_data_version(c->db, &v, &changes) != 0) return 0;
    lua_pushnumber(L, (lua_Number)v);
    lua_pushnumber(L, (lua_Number)changes);
    return 2;
}

int jr_open_db(lua_State *L)
{
    jr_sched_set_after_task(deliver_all);
    static const luaL_Reg none[] = {{NULL, NULL}};
    jr_newmetatable(L, &k_conn_mt, "db connection", none, conn_gc);
    jr_newmetatable(L, &k_job_mt, "db job", none, job_gc);

    static const luaL_Reg fns[] = {
        {"open", l_open},           {"close", l_close},   {"run", l_run},
        {"finish", l_finish},       {"state", l_state},   {"interrupt", l_interrupt},
        {"counters", l_counters},
        {"stats", l_stats},         {"data_version", l_data_version},
        {NULL, NULL}};
    lua_createtable(L, 0, 24);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_pushcfunction(L, l_job_new);
    lua_setfield(L, -2, "job");
    jr_ldb_values_open(L); /* configure, blob_mt */
    lua_pushlightuserdata(L, &k_again);
    lua_setfield(L, -2, "AGAIN");
    static const struct {
        const char *name;
        int value;
    } consts[] = {
        {"EXECUTE", JR_DB_EXECUTE},
        {"QUERY", JR_DB_QUERY},
        {"FIRST", JR_DB_FIRST},
        {"SCRIPT", JR_DB_SCRIPT},
        {"PRE_READONLY", JR_DB_PRE_READONLY},
        {"PRE_BEGIN", JR_DB_PRE_BEGIN},
        {"PRE_BEGIN_IMMEDIATE", JR_DB_PRE_BEGIN_IMMEDIATE},
        {"PRE_SAVEPOINT", JR_DB_PRE_SAVEPOINT},
        {"PRE_IN_TXN", JR_DB_PRE_IN_TXN},
        {"MEMBER_NONE", JR_DB_MEMBER_NONE},
        {"MEMBER_RELEASE", JR_DB_MEMBER_RELEASE},
        {"MEMBER_ROLLBACK", JR_DB_MEMBER_ROLLBACK},
        {"TXN_KEEP", JR_DB_TXN_KEEP},
        {"TXN_COMMIT", JR_DB_TXN_COMMIT},
        {"TXN_ROLLBACK", JR_DB_TXN_ROLLBACK},
    };
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++) {
        lua_pushinteger(L, consts[i].value);
        lua_setfield(L, -2, consts[i].name);
    }
    return 1;
}
