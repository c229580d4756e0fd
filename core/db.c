/* db.c - SQLite connections on dedicated worker threads (see db.h).
 *
 * Threads and ownership:
 *   loop thread   fills jobs, submits them, receives them back (on_async),
 *                 closes connections; while the worker is idle (no job in
 *                 flight) it may use the handle, the cache and the stats
 *                 itself: quick statements (jr_db_run) and cheap ends of
 *                 transactions (jr_db_end_inline).
 *   worker        owns the sqlite3 handle, the statement cache and the
 *                 stats while it runs a job; never calls back into the
 *                 loop's code except through uv_async_send.
 * The queues (q: submitted, d: done) and `running` are guarded by db->mu.
 * Handing a job over through that mutex is also what makes the worker's
 * writes (results, cache, stats) visible to the loop thread and back.
 *
 * SQLite is built threadsafe=1 (serialized); we keep its default mutexes
 * although a connection is only ever used by one thread at a time: an
 * uncontended mutex costs nanoseconds, and it keeps sqlite3_interrupt and
 * any mistake of ours safe. */
#include "db.h"
#include "log.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Buffers larger than this are freed by jr_db_job_reset instead of kept:
 * one huge result must not pin its memory for the life of the connection. */
#define JR_DB_KEEP_MAX (1u << 20)

/* CPU time of the calling thread (not wall time: a preempted vCPU makes
 * any statement late now and then). */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}


/* ------------------------------------------------------------------ */
/* Buffers and jobs                                                     */

static int buf_reserve(jr_db_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t need = b->len + extra;
    if (need < b->len) return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Append n bytes plus a NUL (so text can be handed to C APIs as is);
 * *off gets where they start. */
static int buf_put(jr_db_buf *b, const void *p, size_t n, size_t *off)
{
    if (n + 1 < n || buf_reserve(b, n + 1) != 0) return -1;
    *off = b->len;
    if (n) memcpy(b->data + b->len, p, n);
    b->data[b->len + n] = 0;
    b->len += n + 1;
    return 0;
}

static void buf_free(jr_db_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void jr_db_job_init(jr_db_job *job) { memset(job, 0, sizeof *job); }

void jr_db_job_reset(jr_db_job *job)
{
    job->req.len = 0;
    job->sql_off = job->sql_len = 0;
    job->has_sql = 0;
    job->nparams = 0;
    job->named = 0;
    job->begin = JR_DB_NO_BEGIN;
    job->rc = 0;
    job->err[0] = 0;
    job->changes = job->last_insert_id = 0;
    job->ncols = job->nrows = 0;
    job->res.len = 0;
    job->ran_inline = 0;
    job->next = NULL;
    if (job->req.cap > JR_DB_KEEP_MAX) buf_free(&job->req);
    if (job->res.cap > JR_DB_KEEP_MAX) buf_free(&job->res);
    if (job->cells_cap * sizeof(jr_db_value) > JR_DB_KEEP_MAX) {
        free(job->cells);
        job->cells = NULL;
        job->cells_cap = 0;
    }
    if (job->params_cap * sizeof(jr_db_param) > JR_DB_KEEP_MAX) {
        free(job->params);
        job->params = NULL;
        job->params_cap = 0;
    }
}

void jr_db_job_free(jr_db_job *job)
{
    buf_free(&job->req);
    buf_free(&job->res);
    free(job->params);
    free(job->cols);
    free(job->cells);
    job->params = NULL;
    job->cols = job->cells = NULL;
    job->params_cap = job->cols_cap = job->cells_cap = 0;
}

int jr_db_job_set_sql(jr_db_job *job, const char *sql, long len)
{
    size_t n = len < 0 ? strlen(sql) : (size_t)len;
    if (buf_put(&job->req, sql, n, &job->sql_off) != 0) return -1;
    job->sql_len = n;
    job->has_sql = 1;
    return 0;
}

static jr_db_param *param_add(jr_db_job *job, const char *name, size_t nlen)
{
    if (job->nparams == job->params_cap) {
        size_t cap = job->params_cap ? job->params_cap * 2 : 8;
        jr_db_param *p = realloc(job->params, cap * sizeof *p);
        if (!p) return NULL;
        job->params = p;
        job->params_cap = cap;
    }
    jr_db_param *p = &job->params[job->nparams];
    p->name_off = p->name_len = 0;
    if (name && nlen > 0) {
        if (name[0] == ':' || name[0] == '@' || name[0] == '$') {
            name++;
            nlen--;
        }
        if (nlen > 0) {
            if (buf_put(&job->req, name, nlen, &p->name_off) != 0) return NULL;
            p->name_len = nlen;
            job->named = 1;
        }
    }
    job->nparams++;
    return p;
}

int jr_db_param_null(jr_db_job *job, const char *name, size_t nlen)
{
    jr_db_param *p = param_add(job, name, nlen);
    if (!p) return -1;
    p->v.type = JR_DB_NULL;
    return 0;
}

int jr_db_param_int(jr_db_job *job, const char *name, size_t nlen, int64_t v)
{
    jr_db_param *p = param_add(job, name, nlen);
    if (!p) return -1;
    p->v.type = JR_DB_INTEGER;
    p->v.u.i = v;
    return 0;
}

int jr_db_param_real(jr_db_job *job, const char *name, size_t nlen, double v)
{
    jr_db_param *p = param_add(job, name, nlen);
    if (!p) return -1;
    p->v.type = JR_DB_REAL;
    p->v.u.d = v;
    return 0;
}

static int param_bytes(jr_db_job *job, const char *name, size_t nlen, const void *s, size_t len,
                       jr_db_type type)
{
    jr_db_param *p = param_add(job, name, nlen);
    if (!p) return -1;
    size_t off;
    /* param_add may have grown req already; p stays valid (params is a
     * separate array). */
    if (buf_put(&job->req, s, len, &off) != 0) {
        job->nparams--;
        return -1;
    }
    p->v.type = type;
    p->v.u.s.off = off;
    p->v.u.s.len = len;
    return 0;
}

int jr_db_param_text(jr_db_job *job, const char *name, size_t nlen, const char *s, size_t len)
{
    return param_bytes(job, name, nlen, s, len, JR_DB_TEXT);
}

int jr_db_param_blob(jr_db_job *job, const char *name, size_t nlen, const void *p, size_t len)
{
    return param_bytes(job, name, nlen, p, len, JR_DB_BLOB);
}

const char *jr_db_col_name(const jr_db_job *job, size_t col, size_t *len)
{
    const jr_db_value *v = &job->cols[col];
    if (len) *len = v->u.s.len;
    return job->res.data + v->u.s.off;
}

const jr_db_value *jr_db_cell(const jr_db_job *job, size_t row, size_t col)
{
    return &job->cells[row * job->ncols + col];
}

const char *jr_db_bytes(const jr_db_job *job, const jr_db_value *v)
{
    return job->res.data ? job->res.data + v->u.s.off : "";
}

const char *jr_db_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: return NULL;
    case SQLITE_BUSY: return "busy";
    case SQLITE_LOCKED: return "locked";
    case SQLITE_CONSTRAINT: return "constraint";
    case SQLITE_READONLY: return "readonly";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return "corrupt";
    case SQLITE_FULL: return "full";
    case SQLITE_MISUSE: return "misuse";
    case SQLITE_RANGE: return "range";
    case SQLITE_INTERRUPT: return "interrupted";
    default: return "error";
    }
}

/* ------------------------------------------------------------------ */
/* Groups                                                               */

struct jr_db_group {
    uv_mutex_t mu;
    uv_cond_t cv;
    uint64_t epoch; /* bumped whenever a member may have released a lock */
    int refs;       /* loop thread only */
    /* The in-process write token (see writer_acquire): the member whose
     * transaction holds, or is about to take, SQLite's write lock. */
    struct jr_db *writer;
    uv_cond_t writer_cv;
    int nworker_waiting; /* workers in writer_acquire (under mu) */
    /* Loop side (see jr_db_run): members whose next statement would run on
     * the loop thread but for the token, oldest first; `wake` is sent by
     * whoever releases the token while some wait, `timer` ends waits at
     * busy_timeout. The handles exist once a member opened (`loop` set). */
    uv_loop_t *loop;
    uv_async_t wake;
    uv_timer_t timer;
    int open_handles;
    struct jr_db *wait_head, *wait_tail; /* loop thread only */
    _Atomic int nwaiting;
    /* Loop thread only: the open members, newest first, and whether one of
     * them has a checkpoint queued (see queue_checkpoint). */
    struct jr_db *members;
    int ckpt_queued;
};

jr_db_group *jr_db_group_new(void)
{
    jr_db_group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    if (uv_mutex_init(&g->mu) != 0) {
        free(g);
        return NULL;
    }
    if (uv_cond_init(&g->cv) != 0) {
        uv_mutex_destroy(&g->mu);
        free(g);
        return NULL;
    }
    if (uv_cond_init(&g->writer_cv) != 0) {
        uv_cond_destroy(&g->cv);
        uv_mutex_destroy(&g->mu);
        free(g);
        return NULL;
    }
    return g;
}

static void on_group_wake(uv_async_t *a);

static void group_free(jr_db_group *g)
{
    uv_cond_destroy(&g->writer_cv);
    uv_cond_destroy(&g->cv);
    uv_mutex_destroy(&g->mu);
    free(g);
}

static void on_group_handle_closed(uv_handle_t *h)
{
    jr_db_group *g = h->data;
    if (--g->open_handles == 0) group_free(g);
}

static void group_unref(jr_db_group *g)
{
    if (--g->refs > 0) return;
    if (!g->loop) {
        group_free(g);
        return;
    }
    g->open_handles = 2;
    uv_close((uv_handle_t *)&g->wake, on_group_handle_closed);
    uv_close((uv_handle_t *)&g->timer, on_group_handle_closed);
}

static void group_signal(jr_db_group *g)
{
    uv_mutex_lock(&g->mu);
    g->epoch++;
    uv_cond_broadcast(&g->cv);
    uv_mutex_unlock(&g->mu);
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

typedef struct cache_ent {
    char *sql;
    size_t len;
    uint32_t hash;
    sqlite3_stmt *st;
    struct cache_ent *hnext;      /* bucket chain */
    struct cache_ent *prev, *next; /* LRU list, most recently used first */
    int inline_class;             /* INLINE_*: may jr_db_run run it on the loop thread now? */
    int shape;                    /* INLINE_*: what its shape allows (see classify) */
    int class_reprep;             /* SQLITE_STMTSTATUS_REPREPARE when classified; -1: never */
    int inline_misses;            /* a query stopped on the loop so many times in a row */
    int inline_overruns;          /* ... or ran long there, unstopped (see inline_overrun) */
} cache_ent;

#define JR_DB_DEMOTED 32 /* statements remembered as not for the loop (jr_db.demoted) */

/* cache_ent.inline_class (see jr_db_run in db.h) */
enum { INLINE_NO = 0, INLINE_READ, INLINE_WRITE };

struct jr_db {
    uv_loop_t *loop;
    jr_db_group *group;

    /* options (copied; read by the worker) */
    char *path;
    int busy_timeout_ms;
    char *journal_mode, *synchronous;
    int foreign_keys;
    size_t cache_cap;
    char **pragmas;
    size_t npragmas;

    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    uv_async_t async;

    /* guarded by mu */
    jr_db_job *q_head, *q_tail; /* submitted, not started */
    jr_db_job *d_head, *d_tail; /* done, not yet called back */
    jr_db_job *running;
    int sqlite_open;            /* db->db may be interrupted */
    uint64_t next_seq;          /* the last submission number given */
    /* Jobs numbered up to this are interrupted. Read by the worker's
     * progress and busy handlers without the mutex, hence atomic. */
    _Atomic uint64_t interrupt_upto;
    _Atomic int nq;             /* jobs queued: polled without the mutex while spinning */
    int spin_us;
    /* The last job left a write transaction open. Set by the worker; cleared
     * by jr_db_end_inline too, which ends the spin below at once (the COMMIT
     * it runs means no further job of that transaction is coming). */
    _Atomic int in_write_txn;
    int on_loop;         /* the loop thread is using the handle (jr_db_end_inline, jr_db_run) */
    int ckpt_due;        /* the WAL grew past the threshold during a commit on the loop thread */
    int inline_us;       /* jr_db_run's time limit; 0: never inline */
    /* While jr_db_run runs a statement on the loop thread: its cache entry,
     * when it must stop (or be marked slow), and whether it was stopped. */
    cache_ent *inline_ent;
    uint64_t inline_deadline;
    int inline_stopped;
    int inline_reprepared; /* SQLite began to re-prepare it on the loop (see authorizer) */
    /* Statements moved off the loop for good, by SQL hash: this survives
     * the cache's evictions and re-prepares (a collision only costs a
     * statement its fast path). */
    uint32_t demoted[JR_DB_DEMOTED];
    unsigned ndemoted;
    /* Waiting on the loop side for the group's write token (loop only). */
    struct jr_db *wait_next;
    jr_db_job *wait_job;
    uint64_t wait_deadline;
    int wal_autockpt;    /* the WAL size (frames) that triggers a checkpoint */
    int cheap_commit;    /* set once at open: see cheap_commit() */

    /* loop thread only */
    size_t inflight;
    int closing, refd, free_only;
    jr_db_job close_job;
    jr_db_job ckpt_job;  /* JR_DB_CHECKPOINT, queued by queue_checkpoint */
    struct jr_db *gnext; /* the group's member list */
    void (*close_cb)(void *);
    void *close_data;

    /* the worker's (or the loop's while idle: see jr_db_end_inline) */
    sqlite3 *db;
    sqlite3_stmt *st_begin[4], *st_commit, *st_rollback;
    cache_ent **buckets;
    size_t nbuckets, ncached;
    cache_ent *lru_head, *lru_tail;
    uint64_t busy_start, seen_epoch;
    uint64_t running_seq;
    jr_db_stats stats;
};

static int is_interrupted(jr_db *db)
{
    return atomic_load_explicit(&db->interrupt_upto, memory_order_relaxed) >= db->running_seq;
}

/* sqlite3_interrupt() alone can be lost: SQLite clears its flag when a
 * statement starts on an idle connection, so one landing between our
 * dequeue and the first step would vanish. This handler, polled every
 * JR_DB_PROGRESS_OPS virtual machine instructions, cannot miss it. */
#define JR_DB_PROGRESS_OPS 1000

/* Called by SQLite while it prepares a statement. On the worker anything
 * goes. On the loop only a re-prepare can call it (the schema or a setting
 * changed since the statement was classified), and the new program may do
 * anything (a trigger just created): deny it, and try_inline sends the
 * statement to the worker, which re-prepares and classifies it again. */
static int authorizer(void *arg, int action, const char *a, const char *b, const char *c, const char *d)
{
    (void)action, (void)a, (void)b, (void)c, (void)d;
    jr_db *db = arg;
    if (!db->inline_ent) return SQLITE_OK;
    db->inline_reprepared = 1;
    return SQLITE_DENY;
}

static int progress_handler(void *arg)
{
    jr_db *db = arg;
    if (db->inline_ent && db->inline_ent->inline_class == INLINE_READ && uv_hrtime() >= db->inline_deadline) {
        db->inline_stopped = 1; /* a query: stop it, the worker runs it again */
        return 1;
    }
    return is_interrupted(db);
}

static void job_fail(jr_db_job *j, int rc, const char *fmt, ...)
{
    j->rc = rc & 0xff;
    if (j->rc == 0) j->rc = SQLITE_ERROR;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err, sizeof j->err, fmt, ap);
    va_end(ap);
    j->nrows = 0;
}

static void job_fail_db(jr_db *db, jr_db_job *j, int rc)
{
    job_fail(j, rc, "%s", sqlite3_errmsg(db->db));
}

/* ---- the statement cache (worker only) ---- */

static uint32_t sql_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static void lru_unlink(jr_db *db, cache_ent *e)
{
    if (e->prev) e->prev->next = e->next;
    else db->lru_head = e->next;
    if (e->next) e->next->prev = e->prev;
    else db->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(jr_db *db, cache_ent *e)
{
    e->prev = NULL;
    e->next = db->lru_head;
    if (db->lru_head) db->lru_head->prev = e;
    db->lru_head = e;
    if (!db->lru_tail) db->lru_tail = e;
}

static void cache_remove(jr_db *db, cache_ent *e)
{
    cache_ent **pp = &db->buckets[e->hash & (db->nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(db, e);
    sqlite3_finalize(e->st);
    free(e->sql);
    free(e);
    db->ncached--;
}

static void cache_clear(jr_db *db)
{
    while (db->lru_head) cache_remove(db, db->lru_head);
    free(db->buckets);
    db->buckets = NULL;
    db->nbuckets = 0;
}

/* Is there anything but blanks and comments in s? */
static int has_more_sql(jr_db *db, const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ';') s++;
    if (!*s) return 0;
    /* Comments or a second statement: let SQLite tell (a NULL statement
     * means only comments). */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->db, s, -1, &st, NULL) != SQLITE_OK) return 1;
    int more = st != NULL;
    sqlite3_finalize(st);
    return more;
}

/* The prepared statement for the job's SQL, from the cache or new.
 * *owned = 1: not cached, finalize after use. *st = NULL with rc 0: the
 * SQL holds no statement. On error the job is failed and -1 returned. */
static cache_ent *cache_find(jr_db *db, const char *sql, size_t len, uint32_t h)
{
    for (cache_ent *e = db->buckets[h & (db->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) return e;
    return NULL;
}

static int stmt_get(jr_db *db, jr_db_job *j, sqlite3_stmt **st, int *owned, cache_ent **ent)
{
    const char *sql = j->req.data + j->sql_off;
    size_t len = j->sql_len;
    uint32_t h = 0;
    *st = NULL;
    *owned = 0;
    *ent = NULL;
    if (db->cache_cap > 0) {
        h = sql_hash(sql, len);
        cache_ent *e = cache_find(db, sql, len, h);
        if (e) {
            if (db->lru_head != e) {
                lru_unlink(db, e);
                lru_push_front(db, e);
            }
            db->stats.cache_hits++;
            *st = e->st;
            *ent = e;
            return 0;
        }
        db->stats.cache_misses++;
    }
    if (len >= INT_MAX) {
        job_fail(j, SQLITE_TOOBIG, "SQL text too long");
        return -1;
    }
    const char *tail = NULL;
    /* len + 1: the buffer is NUL-terminated, which spares SQLite a copy. */
    int rc = sqlite3_prepare_v3(db->db, sql, (int)len + 1,
                                db->cache_cap > 0 ? SQLITE_PREPARE_PERSISTENT : 0, st, &tail);
    if (rc != SQLITE_OK) {
        job_fail_db(db, j, rc);
        return -1;
    }
    if (!*st) return 0;
    if (tail && has_more_sql(db, tail)) {
        sqlite3_finalize(*st);
        *st = NULL;
        job_fail(j, SQLITE_MISUSE, "more than one statement given: use exec_script for several");
        return -1;
    }
    if (db->cache_cap == 0) {
        *owned = 1;
        return 0;
    }
    cache_ent *e = calloc(1, sizeof *e);
    char *copy = malloc(len + 1);
    if (!e || !copy) {
        /* No room to cache it: still run it. */
        free(e);
        free(copy);
        *owned = 1;
        return 0;
    }
    memcpy(copy, sql, len);
    copy[len] = 0;
    if (db->ncached >= db->cache_cap) {
        cache_remove(db, db->lru_tail);
        db->stats.cache_evictions++;
    }
    e->sql = copy;
    e->len = len;
    e->hash = h;
    e->st = *st;
    e->inline_class = e->shape = INLINE_NO;
    e->class_reprep = -1;
    *ent = e;
    cache_ent **b = &db->buckets[h & (db->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push_front(db, e);
    db->ncached++;
    return 0;
}

/* ---- running statements (worker) ---- */

/* Step a statement without results (BEGIN, COMMIT, ROLLBACK). */
static int step_simple(jr_db *db, jr_db_job *j, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        sqlite3_reset(st);
        return 0;
    }
    job_fail_db(db, j, rc);
    sqlite3_reset(st);
    return -1;
}

static int bind_value(sqlite3_stmt *st, int i, const jr_db_job *j, const jr_db_value *v)
{
    switch (v->type) {
    case JR_DB_NULL: return sqlite3_bind_null(st, i);
    case JR_DB_INTEGER: return sqlite3_bind_int64(st, i, v->u.i);
    case JR_DB_REAL: return sqlite3_bind_double(st, i, v->u.d);
    case JR_DB_TEXT:
        /* SQLITE_STATIC: the bytes stay in j->req until the job is reset,
         * long after the statement is reset. */
        return sqlite3_bind_text64(st, i, j->req.data + v->u.s.off, v->u.s.len, SQLITE_STATIC,
                                   SQLITE_UTF8);
    case JR_DB_BLOB:
        /* A zero-length blob through bind_blob would be fine too, but a
         * NULL pointer there would mean NULL: say what we mean. */
        if (v->u.s.len == 0) return sqlite3_bind_zeroblob(st, i, 0);
        return sqlite3_bind_blob64(st, i, j->req.data + v->u.s.off, v->u.s.len, SQLITE_STATIC);
    }
    return SQLITE_MISUSE;
}

static int bind_params(jr_db *db, jr_db_job *j, sqlite3_stmt *st)
{
    int n = sqlite3_bind_parameter_count(st);
    if (!j->named || j->nparams == 0) {
        if ((size_t)n != j->nparams) {
            job_fail(j, SQLITE_RANGE, "the statement takes %d parameter%s, %zu given", n,
                     n == 1 ? "" : "s", j->nparams);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            int rc = bind_value(st, i + 1, j, &j->params[i].v);
            if (rc != SQLITE_OK) {
                job_fail(j, rc, "parameter %d: %s", i + 1, sqlite3_errmsg(db->db));
                return -1;
            }
        }
        return 0;
    }
    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        if (!name || name[0] == '?') {
            job_fail(j, SQLITE_RANGE,
                     "parameter %d of the statement is positional: give a list, not named parameters", i);
            return -1;
        }
        size_t nl = strlen(name + 1);
        const jr_db_param *found = NULL;
        for (size_t k = 0; k < j->nparams; k++) {
            const jr_db_param *p = &j->params[k];
            if (p->name_len == nl && memcmp(j->req.data + p->name_off, name + 1, nl) == 0) {
                found = p;
                break;
            }
        }
        if (!found) {
            job_fail(j, SQLITE_RANGE, "missing named parameter %s", name);
            return -1;
        }
        int rc = bind_value(st, i, j, &found->v);
        if (rc != SQLITE_OK) {
            job_fail(j, rc, "parameter %s: %s", name, sqlite3_errmsg(db->db));
            return -1;
        }
    }
    return 0;
}

static int put_bytes(jr_db_job *j, jr_db_value *v, jr_db_type type, const void *p, size_t n)
{
    v->type = type;
    v->u.s.len = n;
    return buf_put(&j->res, p, n, &v->u.s.off);
}

static int collect_columns(jr_db_job *j, sqlite3_stmt *st)
{
    size_t n = (size_t)sqlite3_column_count(st);
    if (n > j->cols_cap) {
        jr_db_value *c = realloc(j->cols, n * sizeof *c);
        if (!c) return -1;
        j->cols = c;
        j->cols_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, (int)i);
        if (!name) return -1; /* only out of memory */
        if (put_bytes(j, &j->cols[i], JR_DB_TEXT, name, strlen(name)) != 0) return -1;
    }
    j->ncols = n;
    return 0;
}

static int collect_row(jr_db_job *j, sqlite3_stmt *st)
{
    size_t nc = j->ncols, need = (j->nrows + 1) * nc;
    if (need > j->cells_cap) {
        size_t cap = j->cells_cap ? j->cells_cap * 2 : 64;
        while (cap < need) cap *= 2;
        jr_db_value *c = realloc(j->cells, cap * sizeof *c);
        if (!c) return -1;
        j->cells = c;
        j->cells_cap = cap;
    }
    jr_db_value *row = &j->cells[j->nrows * nc];
    for (size_t i = 0; i < nc; i++) {
        jr_db_value *v = &row[i];
        int col = (int)i;
        switch (sqlite3_column_type(st, col)) {
        case SQLITE_INTEGER:
            v->type = JR_DB_INTEGER;
            v->u.i = sqlite3_column_int64(st, col);
            break;
        case SQLITE_FLOAT:
            v->type = JR_DB_REAL;
            v->u.d = sqlite3_column_double(st, col);
            break;
        case SQLITE_TEXT: {
            /* text before bytes: the documented safe order */
            const unsigned char *p = sqlite3_column_text(st, col);
            size_t n = (size_t)sqlite3_column_bytes(st, col);
            if (!p && n) return -1;
            if (put_bytes(j, v, JR_DB_TEXT, p, n) != 0) return -1;
            break;
        }
        case SQLITE_BLOB: {
            const void *p = sqlite3_column_blob(st, col);
            size_t n = (size_t)sqlite3_column_bytes(st, col);
            if (!p && n) return -1;
            if (put_bytes(j, v, JR_DB_BLOB, p, n) != 0) return -1;
            break;
        }
        default: v->type = JR_DB_NULL; break;
        }
    }
    j->nrows++;
    return 0;
}

static void writer_acquire(jr_db *db);
static void writer_release(jr_db *db);
static void classify(jr_db *db, cache_ent *e, uint64_t run_cpu_ns);
static void promote(jr_db *db, cache_ent *e, uint64_t run_cpu_ns);
static int cheap_commit(jr_db *db);

/* EXECUTE / QUERY / FIRST. *wrote: the statement may have written. */
static void run_stmt(jr_db *db, jr_db_job *j, int *wrote)
{
    sqlite3_stmt *st;
    int owned;
    cache_ent *e;
    uint64_t t0 = 0;
    int timed = 0; /* CPU time of a run on the worker decides whether it may go inline */
    if (stmt_get(db, j, &st, &owned, &e) != 0) return;
    if (!st) return; /* blanks or comments: nothing to run, like sqlite3_exec */
    if (bind_params(db, j, st) != 0) goto out;
    *wrote = !sqlite3_stmt_readonly(st);
    if (*wrote && sqlite3_txn_state(db->db, NULL) != SQLITE_TXN_WRITE) writer_acquire(db);
    timed = e && !db->on_loop && db->inline_us > 0;
    if (timed) t0 = thread_cpu_ns();
    int rc;
    if (j->kind == JR_DB_EXECUTE) {
        sqlite3_int64 total = sqlite3_total_changes64(db->db);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
        if (rc != SQLITE_DONE) {
            job_fail_db(db, j, rc);
            goto out;
        }
        /* sqlite3_changes() keeps the count of the last INSERT/UPDATE/
         * DELETE even across other statements (a CREATE TABLE would report
         * it again): only trust it when this statement changed something. */
        j->changes = sqlite3_total_changes64(db->db) != total ? sqlite3_changes64(db->db) : 0;
        j->last_insert_id = sqlite3_last_insert_rowid(db->db);
        goto out;
    }
    /* Columns after the first step: a statement whose schema changed is
     * re-prepared by that step, and `SELECT *` may then have new columns. */
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        job_fail_db(db, j, rc);
        goto out;
    }
    if (collect_columns(j, st) != 0) {
        job_fail(j, SQLITE_NOMEM, "out of memory");
        goto out;
    }
    while (rc == SQLITE_ROW) {
        if (collect_row(j, st) != 0) {
            job_fail(j, SQLITE_NOMEM, "out of memory");
            goto out;
        }
        if (j->kind == JR_DB_FIRST) break;
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) job_fail_db(db, j, rc);
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (owned) sqlite3_finalize(st);
    /* On the worker, after a good run: may later runs be inline? (Again
     * when SQLite has re-prepared it for a schema change.) After, not
     * before: in a deferred transaction the classifying reads would take
     * the read snapshot, and a write then finding it stale fails at once
     * with "database is locked" (SQLITE_BUSY_SNAPSHOT). */
    if (timed && j->rc == 0) {
        uint64_t cpu = thread_cpu_ns() - t0;
        if (e->class_reprep != sqlite3_stmt_status(e->st, SQLITE_STMTSTATUS_REPREPARE, 0)) classify(db, e, cpu);
        else if (e->inline_class == INLINE_NO && e->shape != INLINE_NO) promote(db, e, cpu);
    }
}

/* ---- which statements may run on the loop thread (see jr_db_run) ---- */

static const char *skip_blank(const char *s)
{
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f') s++;
        if (s[0] == '-' && s[1] == '-') {
            while (*s && *s != '\n') s++;
        } else if (s[0] == '/' && s[1] == '*') {
            const char *end = strstr(s + 2, "*/");
            if (!end) return s + strlen(s);
            s = end + 2;
        } else {
            return s;
        }
    }
}

/* s starts with the keyword kw (any case), as a whole word */
static int starts_with_word(const char *s, const char *kw)
{
    size_t n = strlen(kw);
    if (strncasecmp(s, kw, n) != 0) return 0;
    char c = s[n];
    return !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The first column of the first row of sql, with optional text
 * parameters ?1 and ?2; -1 on any error (callers read that as "not safe"). */
static long long query_int(jr_db *db, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (a) sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Copy [s, e) into out (size n); 0 when empty or too long. */
static int copy_span(char *out, size_t n, const char *s, const char *e)
{
    if (e <= s || (size_t)(e - s) >= n) return 0;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = 0;
    return 1;
}

/* An EXPLAIN QUERY PLAN line that finds at most one row: a SEARCH by
 * equality on the rowid, or on every column of the primary key or of a
 * UNIQUE index, e.g.
 *   SEARCH t USING INTEGER PRIMARY KEY (rowid=?)
 *   SEARCH tasks USING INDEX sqlite_autoindex_tasks_1 (id=?)
 *   SEARCH tasks USING PRIMARY KEY (id=?)            (WITHOUT ROWID)
 * Anything else (a range, part of a key, a scan) may touch any number.
 * The line names the table, or its alias: an alias is not found among the
 * tables, which makes the answer "no". */
static int search_is_point(jr_db *db, const char *d)
{
    if (strncmp(d, "SEARCH ", 7) != 0) return 0;
    if (ends_with(d, " USING INTEGER PRIMARY KEY (rowid=?)")) return 1;
    const char *using = strstr(d, " USING ");
    char table[256], idx[256];
    if (!using || !copy_span(table, sizeof table, d + 7, using)) return 0;
    const char *name = NULL, *open;
    if (strncmp(using, " USING PRIMARY KEY (", 20) == 0) {
        open = using + 18;
    } else {
        if (strncmp(using, " USING INDEX ", 13) == 0) name = using + 13;
        else if (strncmp(using, " USING COVERING INDEX ", 22) == 0) name = using + 22;
        else return 0;
        open = strstr(name, " (");
        if (!open || !copy_span(idx, sizeof idx, name, open)) return 0;
    }
    if (!ends_with(open, ")")) return 0;
    const char *t = open + 2, *last = d + strlen(d) - 1; /* the closing ')' */
    int terms = 0;
    for (;;) {
        const char *and = strstr(t, " AND ");
        const char *stop = and && and < last ? and : last;
        /* each term is "column=?" */
        if (stop - t < 3 || stop[-1] != '?' || stop[-2] != '=') return 0;
        for (const char *c = t; c < stop - 2; c++)
            if (*c == '=' || *c == '<' || *c == '>' || *c == ' ' || *c == '(' || *c == ')') return 0;
        terms++;
        if (stop == last) break;
        t = stop + 5;
    }
    if (!name) {
        /* the primary key of a WITHOUT ROWID table: its own index */
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db->db, "SELECT name FROM pragma_index_list(?1) WHERE origin = 'pk'", -1, &st,
                               NULL) != SQLITE_OK)
            return 0;
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        int found = sqlite3_step(st) == SQLITE_ROW &&
                    copy_span(idx, sizeof idx, (const char *)sqlite3_column_text(st, 0),
                              (const char *)sqlite3_column_text(st, 0) + sqlite3_column_bytes(st, 0));
        sqlite3_finalize(st);
        if (!found) return 0;
    } else if (query_int(db, "SELECT \"unique\" FROM pragma_index_list(?1) WHERE name = ?2", table, idx) != 1 ||
               /* "col=?" is also how the plan shows "col IS ?", and a UNIQUE
                * column (or a rowid table's PRIMARY KEY) holds any number
                * of NULLs: every column must be NOT NULL */
               query_int(db,
                          "SELECT count(*) FROM pragma_index_info(?2) ii"
                          " LEFT JOIN pragma_table_info(?1) ti ON ti.name = ii.name"
                          " WHERE ii.name IS NULL OR ti.\"notnull\" IS NOT 1",
                          table, idx) != 0) {
        return 0;
    }
    return query_int(db, "SELECT count(*) FROM pragma_index_info(?1)", idx, NULL) == terms;
}

/* "EXPLAIN sql" or "EXPLAIN QUERY PLAN sql", prepared; NULL on error. */
static sqlite3_stmt *prepare_explain(jr_db *db, const char *explain, const char *sql)
{
    char *q = sqlite3_mprintf("%s %s", explain, sql);
    if (!q) return NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->db, q, -1, &st, NULL) != SQLITE_OK) st = NULL;
    sqlite3_free(q);
    return st;
}

/* Does the plan of sql touch a bounded number of rows? Constant rows
 * (INSERT ... VALUES) and point SEARCHes only; want_search: at least one
 * SEARCH (an UPDATE or DELETE without one changes every row). */
static int plan_is_point(jr_db *db, const char *sql, int want_search)
{
    sqlite3_stmt *st = prepare_explain(db, "EXPLAIN QUERY PLAN", sql);
    if (!st) return 0;
    int rc, ok = 1, searches = 0;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 3);
        if (!d) ok = 0;
        else if (strncmp(d, "SCAN ", 5) == 0 && (ends_with(d, " CONSTANT ROW") || ends_with(d, " CONSTANT ROWS")))
            continue;
        else if (search_is_point(db, d)) searches++;
        else ok = 0;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) ok = 0;
    sqlite3_finalize(st);
    return ok && (!want_search || searches > 0);
}

/* Does the program of sql do work its plan does not show? Triggers (TEMP
 * ones too) run as sub-programs, foreign keys as checks and actions on
 * other tables, virtual tables (FTS: 'rebuild', 'optimize') as module
 * calls; a write to an ATTACHed database commits there, where the journal
 * mode and fsyncs are its own; and a loop over a table (INSERT ... SELECT
 * copied by SQLite's transfer optimization has no plan line at all) walks
 * any number of rows. Loops over ephemeral tables (RETURNING, IN lists)
 * are bounded by the statement itself. */
#define JR_DB_MAX_CURSORS 256

static int program_has_hidden_work(jr_db *db, const char *sql)
{
    sqlite3_stmt *st = prepare_explain(db, "EXPLAIN", sql);
    if (!st) return 1;
    int rc, hidden = 0;
    unsigned char on_table[JR_DB_MAX_CURSORS] = {0}, looped[JR_DB_MAX_CURSORS] = {0};
    while (!hidden && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *op = (const char *)sqlite3_column_text(st, 1);
        if (!op) continue;
        int cur = sqlite3_column_int(st, 2); /* p1: the cursor, for the ops below */
        int opens = strcmp(op, "OpenRead") == 0 || strcmp(op, "OpenWrite") == 0;
        int loops = strcmp(op, "Rewind") == 0 || strcmp(op, "Last") == 0 || strcmp(op, "Next") == 0 ||
                    strcmp(op, "Prev") == 0;
        if (opens || loops) {
            if (cur < 0 || cur >= JR_DB_MAX_CURSORS) {
                hidden = 1;
                break;
            }
            if (opens) on_table[cur] = 1;
            else looped[cur] = 1;
        }
        /* (FkCheck alone is in every write while foreign_keys is on: it
         * only reads the counters FkCounter/FkIfZero maintain) */
        if (strcmp(op, "Program") == 0 || strcmp(op, "FkCounter") == 0 || strcmp(op, "FkIfZero") == 0 ||
            (op[0] == 'V' && strcmp(op, "Variable") != 0))
            hidden = 1;
        else if ((strcmp(op, "Transaction") == 0 && sqlite3_column_int(st, 2) != 0) || /* p1: the schema */
                 (strcmp(op, "OpenWrite") == 0 && sqlite3_column_int(st, 4) != 0))     /* p3: the schema */
            hidden = 1; /* not main */
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) hidden = 1;
    sqlite3_finalize(st);
    for (int i = 0; i < JR_DB_MAX_CURSORS && !hidden; i++) hidden = on_table[i] && looped[i];
    return hidden;
}

/* The most CPU a statement may use on the loop thread (see try_inline). */
static uint64_t overrun_limit(const jr_db *db)
{
    uint64_t limit = (uint64_t)db->inline_us * 4000u;
    return limit < 500000u ? 500000u : limit;
}

static int is_demoted(const jr_db *db, uint32_t hash)
{
    unsigned n = db->ndemoted < JR_DB_DEMOTED ? db->ndemoted : JR_DB_DEMOTED;
    for (unsigned i = 0; i < n; i++)
        if (db->demoted[i] == hash) return 1;
    return 0;
}

/* Off the loop for good (see the demoted ring). */
static void demote(jr_db *db, cache_ent *e)
{
    e->inline_class = e->shape = INLINE_NO;
    if (!is_demoted(db, e->hash)) db->demoted[db->ndemoted++ % JR_DB_DEMOTED] = e->hash;
}

/* Let e run on the loop if its shape allows and its last run here, on the
 * worker, was quick (CPU time: waits for locks do not count): a query
 * within inline_us, a write within the overrun limit. Tried again after
 * every run on the worker while it is not, so one slow run (a cold cache,
 * a VM hiccup) does not keep it off for good. */
static void promote(jr_db *db, cache_ent *e, uint64_t run_cpu_ns)
{
    e->inline_class = INLINE_NO;
    if (e->shape == INLINE_NO || is_demoted(db, e->hash)) return;
    uint64_t limit = e->shape == INLINE_READ ? (uint64_t)db->inline_us * 1000u : overrun_limit(db);
    if (run_cpu_ns <= limit) e->inline_class = e->shape;
}

/* Decide e->shape (the rules are in db.h, at jr_db_run), then promote. Runs
 * on the worker, after a good run of the statement (of run_cpu_ns). */
static void classify(jr_db *db, cache_ent *e, uint64_t run_cpu_ns)
{
    sqlite3_stmt *st = e->st;
    e->class_reprep = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_REPREPARE, 0);
    e->shape = INLINE_NO;
    e->inline_misses = e->inline_overruns = 0;
    const char *sql = skip_blank(sqlite3_sql(st));
    if (sqlite3_stmt_readonly(st)) {
        /* BEGIN, COMMIT and PRAGMAs are "read-only" too: queries only */
        if (starts_with_word(sql, "SELECT") || starts_with_word(sql, "WITH") || starts_with_word(sql, "VALUES"))
            e->shape = INLINE_READ;
    } else {
        db->cheap_commit = cheap_commit(db);
        int insert = starts_with_word(sql, "INSERT") || starts_with_word(sql, "REPLACE");
        /* not when its commit would fsync on the loop thread */
        if (db->cheap_commit && (insert || starts_with_word(sql, "UPDATE") || starts_with_word(sql, "DELETE")) &&
            !program_has_hidden_work(db, sqlite3_sql(st)) && plan_is_point(db, sqlite3_sql(st), !insert))
            e->shape = INLINE_WRITE;
    }
    promote(db, e, run_cpu_ns);
}

/* A statement ran long on the loop thread without being stopped: a write
 * (stopping one would roll back its whole transaction), or a query inside
 * one long instruction (a count(*) walking a big table, a huge value),
 * where the progress handler is not called. It finished there; from now
 * on it runs on the worker. */
static void inline_overrun(jr_db *db, cache_ent *e, uint64_t cpu_ns)
{
    demote(db, e);
    jr_logf(JR_LOG_WARN, NULL,
            "db %s: a statement took %llu us of CPU on the event loop; it runs on the connection's "
            "thread from now on: %.200s",
            db->path, (unsigned long long)(cpu_ns / 1000u), e->sql);
}

/* SQLite's own handler (sqlite3_busy_timeout) sleeps 1, 2, 5, ... 100 ms
 * between tries, so under steady write load one connection keeps the lock
 * while the others sleep through whole rounds (measured: max latency
 * 230-840 ms with 64 writers on 4 connections). Here a connection waiting
 * for the write lock sleeps on its group's condition variable, which a
 * member broadcasts when it ends a write transaction, and polls every 1, 2,
 * then 5 ms for holders outside the group (other pools, other processes).
 * Polling faster (0.1 ms) measured slower: on 2 cores the wake-ups of the
 * waiters steal the CPU the lock holder needs (bench/db/pk_bench.lua: the
 * same throughput as SQLite's handler or better, max latency ~20 ms). */
static int busy_handler(void *arg, int count)
{
    jr_db *db = arg;
    jr_db_group *g = db->group;
    if (db->on_loop) return 0; /* jr_db_run: the worker does the waiting */
    uint64_t now = uv_hrtime();
    if (count == 0) {
        db->busy_start = now;
        uv_mutex_lock(&g->mu);
        db->seen_epoch = g->epoch;
        uv_mutex_unlock(&g->mu);
        return 1; /* try again at once: the holder may just have finished */
    }
    uint64_t deadline = db->busy_start + (uint64_t)db->busy_timeout_ms * 1000000u;
    if (now >= deadline || is_interrupted(db)) return 0;
    uint64_t poll = count < 4 ? 1000000u : count < 10 ? 2000000u : 5000000u;
    if (poll > deadline - now) poll = deadline - now;
    db->stats.busy_waits++;
    uv_mutex_lock(&g->mu);
    /* seen_epoch was read before the last try: a release since then must
     * not be slept through. */
    if (g->epoch == db->seen_epoch) uv_cond_timedwait(&g->cv, &g->mu, poll);
    db->seen_epoch = g->epoch;
    uv_mutex_unlock(&g->mu);
    return 1;
}

/* SQLite has one writer per database. Left to the busy handler, the pool's
 * connections that want to write all poll for the lock and the winner is
 * whoever wakes first (measured: 4.3-5k inserts/s with 64 writers on 4
 * connections, most of the CPU spent waking up). So before a statement that
 * writes, a member takes the group's write token, waiting on a condition
 * variable (one wake-up per hand-over), and keeps it until its transaction
 * no longer holds the write lock. The wait is bounded by busy_timeout: a
 * token held by a transaction that waits for this one (an "independent"
 * session under a writing one) must end in SQLITE_BUSY, as before, not hang.
 * Other pools and processes are still handled by the busy handler. */
static int writer_acquire_within(jr_db *db, uint64_t wait_ms)
{
    jr_db_group *g = db->group;
    uv_mutex_lock(&g->mu);
    if (g->writer != db) {
        uint64_t deadline = uv_hrtime() + wait_ms * 1000000u;
        if (g->writer) db->stats.writer_waits++;
        g->nworker_waiting++;
        while (g->writer && g->writer != db) {
            uint64_t now = uv_hrtime();
            if (now >= deadline || uv_cond_timedwait(&g->writer_cv, &g->mu, deadline - now) != 0) break;
        }
        g->nworker_waiting--;
        if (!g->writer) g->writer = db;
    }
    int have = g->writer == db;
    uv_mutex_unlock(&g->mu);
    return have;
}

static void writer_acquire(jr_db *db) { (void)writer_acquire_within(db, (uint64_t)db->busy_timeout_ms); }

/* The token if nobody else has it or waits for it on a worker, without
 * waiting (jr_db_run: the loop must not overtake the workers for good). */
static int writer_try_acquire(jr_db *db)
{
    jr_db_group *g = db->group;
    uv_mutex_lock(&g->mu);
    int ok = g->writer == db || (!g->writer && g->nworker_waiting == 0);
    if (ok) g->writer = db;
    uv_mutex_unlock(&g->mu);
    return ok;
}

static void writer_release(jr_db *db)
{
    jr_db_group *g = db->group;
    uv_mutex_lock(&g->mu);
    int released = g->writer == db;
    if (released) {
        g->writer = NULL;
        uv_cond_signal(&g->writer_cv);
    }
    uv_mutex_unlock(&g->mu);
    /* From any thread: statements waiting on the loop side retry. */
    if (released && atomic_load_explicit(&g->nwaiting, memory_order_acquire) > 0) uv_async_send(&g->wake);
}

static int valid_word(const char *s)
{
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '+' || *s == '.'))
            return 0;
    return 1;
}

static int one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(s, *list) == 0) return 1;
    return 0;
}

/* COMMIT costs no fsync: WAL with synchronous NORMAL or OFF. */
static int cheap_commit(jr_db *db)
{
    /* As in effect, not as asked: SQLite may refuse WAL (a memdb), and the
     * pragmas option or a statement may change synchronous. */
    sqlite3_stmt *st = NULL;
    int wal = 0;
    if (sqlite3_prepare_v2(db->db, "PRAGMA main.journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        wal = mode && strcasecmp(mode, "wal") == 0;
    }
    sqlite3_finalize(st);
    long long sync = query_int(db, "PRAGMA main.synchronous", NULL, NULL);
    return wal && (sync == 0 || sync == 1);
}

static int wal_hook(void *arg, sqlite3 *h, const char *dbname, int frames)
{
    jr_db *db = arg;
    if (frames < db->wal_autockpt) return SQLITE_OK;
    if (db->on_loop) {
        db->ckpt_due = 1;
        return SQLITE_OK;
    }
    sqlite3_wal_checkpoint_v2(h, dbname, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

static void close_sqlite(jr_db *db)
{
    if (db->group) writer_release(db);
    cache_clear(db);
    for (int i = 0; i < 4; i++) {
        sqlite3_finalize(db->st_begin[i]);
        db->st_begin[i] = NULL;
    }
    sqlite3_finalize(db->st_commit);
    sqlite3_finalize(db->st_rollback);
    db->st_commit = db->st_rollback = NULL;
    if (!db->db) return;
    uv_mutex_lock(&db->mu);
    db->sqlite_open = 0;
    uv_mutex_unlock(&db->mu);
    /* Everything of ours is finalized, so this closes for good; _v2 is the
     * fallback that cannot leave the handle open. */
    if (sqlite3_close(db->db) != SQLITE_OK) sqlite3_close_v2(db->db);
    db->db = NULL;
}

/* Run "PRAGMA name=value" (rows ignored). */
static int run_pragma(jr_db *db, jr_db_job *j, const char *name, const char *value)
{
    char sql[160];
    snprintf(sql, sizeof sql, "PRAGMA %s=%s", name, value);
    int rc = sqlite3_exec(db->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        job_fail(j, rc, "cannot open database %s: %s", db->path, sqlite3_errmsg(db->db));
        return -1;
    }
    return 0;
}

static void do_open(jr_db *db, jr_db_job *j)
{
    static const char *const journal_modes[] = {"DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF", NULL};
    static const char *const sync_modes[] = {"OFF", "NORMAL", "FULL", "EXTRA", "0", "1", "2", "3", NULL};
    if (db->journal_mode && !one_of(db->journal_mode, journal_modes)) {
        job_fail(j, SQLITE_MISUSE, "cannot open database %s: invalid journal_mode '%s'", db->path, db->journal_mode);
        return;
    }
    if (db->synchronous && !one_of(db->synchronous, sync_modes)) {
        job_fail(j, SQLITE_MISUSE, "cannot open database %s: invalid synchronous '%s'", db->path, db->synchronous);
        return;
    }
    for (size_t i = 0; i < db->npragmas; i++) {
        const char *eq = strchr(db->pragmas[i], '=');
        char name[64];
        size_t nl = eq ? (size_t)(eq - db->pragmas[i]) : 0;
        if (nl > 0 && nl < sizeof name) {
            memcpy(name, db->pragmas[i], nl);
            name[nl] = 0;
        }
        if (!eq || nl == 0 || nl >= sizeof name || !valid_word(name) || !valid_word(eq + 1)) {
            job_fail(j, SQLITE_MISUSE, "cannot open database %s: invalid pragma '%s' (want name=value)",
                     db->path, db->pragmas[i]);
            return;
        }
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI;
    int rc = sqlite3_open_v2(db->path, &db->db, flags, NULL);
    if (rc != SQLITE_OK) {
        job_fail(j, rc, "cannot open database %s: %s", db->path,
                 db->db ? sqlite3_errmsg(db->db) : sqlite3_errstr(rc));
        close_sqlite(db);
        return;
    }
    uv_mutex_lock(&db->mu);
    db->sqlite_open = 1;
    uv_mutex_unlock(&db->mu);
    if (db->busy_timeout_ms > 0) sqlite3_busy_handler(db->db, busy_handler, db);
    sqlite3_progress_handler(db->db, JR_DB_PROGRESS_OPS, progress_handler, db);
    sqlite3_set_authorizer(db->db, authorizer, db);
    if (db->journal_mode && run_pragma(db, j, "journal_mode", db->journal_mode) != 0) goto fail;
    if (db->synchronous && run_pragma(db, j, "synchronous", db->synchronous) != 0) goto fail;
    if (db->foreign_keys >= 0 && run_pragma(db, j, "foreign_keys", db->foreign_keys ? "ON" : "OFF") != 0)
        goto fail;
    for (size_t i = 0; i < db->npragmas; i++) {
        char *eq = strchr(db->pragmas[i], '=');
        *eq = 0; /* ours: split in place */
        int r = run_pragma(db, j, db->pragmas[i], eq + 1);
        *eq = '=';
        if (r != 0) goto fail;
    }
    /* Read by every commit; checked again whenever a write is classified. */
    db->cheap_commit = cheap_commit(db);
    /* Our own WAL hook replaces SQLite's auto-checkpoint (same 1000
     * frames): a checkpoint fsyncs, so it must never run inside a COMMIT
     * made on the loop thread (see jr_db_end_inline); there it is only
     * noted and an idle member's worker runs it. Installed whatever the
     * mode: a statement may switch the file to WAL later. */
    db->wal_autockpt = 1000;
    sqlite3_wal_hook(db->db, wal_hook, db);
    static const char *const begin_sql[4] = {NULL, "BEGIN", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"};
    for (int i = 1; i < 4; i++) {
        rc = sqlite3_prepare_v3(db->db, begin_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->st_begin[i], NULL);
        if (rc != SQLITE_OK) break;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(db->db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &db->st_commit, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(db->db, "ROLLBACK", -1, SQLITE_PREPARE_PERSISTENT, &db->st_rollback, NULL);
    if (rc != SQLITE_OK) {
        job_fail(j, rc, "cannot open database %s: %s", db->path, sqlite3_errmsg(db->db));
        goto fail;
    }
    if (db->cache_cap > 0) {
        size_t nb = 8;
        while (nb < db->cache_cap * 2) nb *= 2;
        db->buckets = calloc(nb, sizeof *db->buckets);
        if (!db->buckets) {
            job_fail(j, SQLITE_NOMEM, "cannot open database %s: out of memory", db->path);
            goto fail;
        }
        db->nbuckets = nb;
    }
    return;
fail:
    close_sqlite(db);
}

#define JR_DB_CKPT_WAIT_MS 10

/* The checkpoint a commit on the loop thread left due (see wal_hook). It
 * must end with the group's write token held: with nobody in the process
 * writing, it copies the whole WAL and the next writer starts the WAL
 * over; with writers running alongside, a checkpoint never catches up and
 * the WAL grows without end (measured: every commit then found it due).
 * But holding the token through all of it stops every writer for the
 * whole copy and its fsyncs (~6 ms every ~1000 pages here, 12 % of the
 * time under a steady insert load). So: first a checkpoint without it,
 * which does the bulk while the others write, then one with it, for what
 * they appended meanwhile (~1 ms). */
static void checkpoint(jr_db *db)
{
    sqlite3_wal_checkpoint_v2(db->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    /* Not for long: this connection's own next statement may be queued
     * behind us. Skipped, the next commit on the loop asks again. */
    if (writer_acquire_within(db, JR_DB_CKPT_WAIT_MS)) {
        sqlite3_wal_checkpoint_v2(db->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        writer_release(db);
    }
}

static void clear_results(jr_db_job *j)
{
    j->rc = 0;
    j->err[0] = 0;
    j->changes = j->last_insert_id = 0;
    j->ncols = j->nrows = 0;
    j->res.len = 0;
    j->ran_inline = 0;
}

/* After a statement (or transaction end) whose transaction state was
 * `before`: give up the write token unless still writing, and wake the
 * group's connections waiting for a lock we may have held: a write lock,
 * or (rollback-journal mode) a read lock. */
static void after_statement(jr_db *db, int before, int wrote)
{
    int after = sqlite3_txn_state(db->db, NULL);
    if (after != SQLITE_TXN_WRITE) writer_release(db);
    if (after != SQLITE_TXN_WRITE &&
        (before == SQLITE_TXN_WRITE || wrote || (before != SQLITE_TXN_NONE && after == SQLITE_TXN_NONE)))
        group_signal(db->group);
}

static void note_txn(jr_db *db, jr_db_job *j)
{
    if (db->db) {
        j->autocommit = sqlite3_get_autocommit(db->db);
        j->txn_state = sqlite3_txn_state(db->db, NULL);
    } else {
        j->autocommit = 1;
        j->txn_state = JR_DB_TXN_NONE;
    }
    db->stats.cache_size = db->ncached;
}

static void run_job(jr_db *db, jr_db_job *j, int interrupted)
{
    clear_results(j);
    db->stats.jobs++;
    if (j->kind == JR_DB_CLOSE) {
        close_sqlite(db);
        return;
    }
    if (j->kind == JR_DB_CHECKPOINT) {
        /* Not inside a transaction of this connection's (it was idle when
         * chosen, but may have begun one since): the next commit on the
         * loop finds the WAL still long and asks again. */
        if (db->db && sqlite3_get_autocommit(db->db)) checkpoint(db);
        return;
    }
    if (j->kind == JR_DB_OPEN) {
        do_open(db, j);
    } else if (!db->db) {
        job_fail(j, SQLITE_MISUSE, "the database is not open");
    } else if (interrupted) {
        job_fail(j, SQLITE_INTERRUPT, "interrupted");
    } else if ((j->kind == JR_DB_EXECUTE || j->kind == JR_DB_QUERY || j->kind == JR_DB_FIRST ||
                j->kind == JR_DB_SCRIPT) && !j->has_sql) {
        job_fail(j, SQLITE_MISUSE, "no SQL given");
    } else {
        int before = sqlite3_txn_state(db->db, NULL);
        int wrote = 0;
        int ok = 1;
        if (j->begin > JR_DB_NO_BEGIN && j->begin <= JR_DB_BEGIN_EXCLUSIVE) {
            if (j->begin != JR_DB_BEGIN_DEFERRED) writer_acquire(db); /* IMMEDIATE/EXCLUSIVE write-lock at once */
            ok = step_simple(db, j, db->st_begin[j->begin]) == 0;
        }
        if (ok) {
            switch (j->kind) {
            case JR_DB_EXECUTE:
            case JR_DB_QUERY:
            case JR_DB_FIRST: run_stmt(db, j, &wrote); break;
            case JR_DB_SCRIPT: {
                writer_acquire(db);
                int rc = sqlite3_exec(db->db, j->req.data + j->sql_off, NULL, NULL, NULL);
                if (rc != SQLITE_OK) job_fail_db(db, j, rc);
                wrote = 1;
                break;
            }
            case JR_DB_COMMIT: step_simple(db, j, db->st_commit); break;
            case JR_DB_ROLLBACK: step_simple(db, j, db->st_rollback); break;
            default: job_fail(j, SQLITE_MISUSE, "unknown job kind %d", (int)j->kind); break;
            }
        }
        after_statement(db, before, wrote);
    }
    note_txn(db, j);
}

/* Onto the done list, for on_async; db->mu held. */
static void push_done(jr_db *db, jr_db_job *j)
{
    j->next = NULL;
    if (db->d_tail) db->d_tail->next = j;
    else db->d_head = j;
    db->d_tail = j;
}

static void worker_main(void *arg)
{
    jr_db *db = arg;
    uv_mutex_lock(&db->mu);
    for (;;) {
        /* Spin only while this connection holds the write lock: its COMMIT
         * (or next statement) is due within microseconds and everyone else
         * who wants to write waits for it; at most one worker spins (the
         * write token), so 2 cores are not thrashed by 4 spinning workers
         * (measured: spinning after every job cost 3x the context switches
         * under 64 concurrent writers). */
        if (!db->q_head && db->spin_us > 0 && atomic_load_explicit(&db->in_write_txn, memory_order_relaxed)) {
            /* Sleeping on the condition variable and being woken costs
             * ~30 us here, each way: most of a hop. A task's next statement
             * usually follows within microseconds of the last result, so
             * look for it a little while first. sched_yield, not a busy
             * loop: the loop thread and the other workers get the CPU
             * whenever they want it (with 2 cores and 4 workers a pure
             * spin halved throughput under load; this one did not). */
            uv_mutex_unlock(&db->mu);
            uint64_t until = uv_hrtime() + (uint64_t)db->spin_us * 1000u;
            while (atomic_load_explicit(&db->nq, memory_order_acquire) == 0 &&
                   atomic_load_explicit(&db->in_write_txn, memory_order_relaxed) && uv_hrtime() < until)
                sched_yield();
            uv_mutex_lock(&db->mu);
        }
        while (!db->q_head) uv_cond_wait(&db->cv, &db->mu);
        atomic_fetch_sub_explicit(&db->nq, 1, memory_order_relaxed);
        jr_db_job *j = db->q_head;
        db->q_head = j->next;
        if (!db->q_head) db->q_tail = NULL;
        j->next = NULL;
        db->running = j;
        db->running_seq = j->seq;
        uv_mutex_unlock(&db->mu);
        int interrupted = j->kind != JR_DB_CLOSE && j->kind != JR_DB_OPEN && is_interrupted(db);

        run_job(db, j, interrupted);
        atomic_store_explicit(&db->in_write_txn, db->db && sqlite3_txn_state(db->db, NULL) == SQLITE_TXN_WRITE,
                              memory_order_relaxed);

        int last = j->kind == JR_DB_CLOSE;
        uv_mutex_lock(&db->mu);
        db->running = NULL;
        push_done(db, j);
        uv_mutex_unlock(&db->mu);
        /* For the CLOSE job the loop may already be joining us, but the
         * handle stays open until the join returns, so this send is safe. */
        uv_async_send(&db->async);
        if (last) return;
        uv_mutex_lock(&db->mu);
    }
}

/* ---- loop side ---- */

static void free_db(jr_db *db)
{
    free(db->path);
    free(db->journal_mode);
    free(db->synchronous);
    for (size_t i = 0; i < db->npragmas; i++) free(db->pragmas[i]);
    free(db->pragmas);
    jr_db_job_free(&db->close_job);
    jr_db_job_free(&db->ckpt_job);
    free(db);
}

static void on_closed(uv_handle_t *h)
{
    jr_db *db = h->data;
    void (*cb)(void *) = db->close_cb;
    void *data = db->close_data;
    int notify = !db->free_only;
    group_unref(db->group);
    uv_cond_destroy(&db->cv);
    uv_mutex_destroy(&db->mu);
    free_db(db);
    if (notify && cb) cb(data);
}

/* An idle connection must not keep the loop alive on its own. */
static void maybe_unref(jr_db *db)
{
    if (db->inflight == 0 && db->refd && !db->closing) {
        uv_unref((uv_handle_t *)&db->async);
        db->refd = 0;
    }
}

static void on_checkpoint_done(jr_db_job *j) { ((jr_db *)j->data)->group->ckpt_queued = 0; }

static void on_async(uv_async_t *a)
{
    jr_db *db = a->data;
    uv_mutex_lock(&db->mu);
    jr_db_job *list = db->d_head;
    db->d_head = db->d_tail = NULL;
    uv_mutex_unlock(&db->mu);
    while (list) {
        jr_db_job *j = list;
        list = j->next; /* before the callback, which may submit j again */
        j->next = NULL;
        db->inflight--;
        if (j == &db->close_job) {
            /* Always the last job: nothing is accepted after it. */
            uv_thread_join(&db->thread);
            uv_close((uv_handle_t *)&db->async, on_closed);
            return;
        }
        if (j->cb) j->cb(j);
    }
    maybe_unref(db);
}

static void enqueue(jr_db *db, jr_db_job *job)
{
    job->next = NULL;
    uv_mutex_lock(&db->mu);
    job->seq = ++db->next_seq;
    atomic_fetch_add_explicit(&db->nq, 1, memory_order_release);
    if (db->q_tail) db->q_tail->next = job;
    else db->q_head = job;
    db->q_tail = job;
    uv_cond_signal(&db->cv);
    uv_mutex_unlock(&db->mu);
    db->inflight++;
    if (!db->refd) {
        uv_ref((uv_handle_t *)&db->async);
        db->refd = 1;
    }
}

static char *dup_str(const char *s, int *fail)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = 1;
    return d;
}

jr_db *jr_db_open(uv_loop_t *loop, const jr_db_options *o, jr_db_group *group, jr_db_job *open_job,
                  jr_db_cb cb)
{
    jr_db *db = calloc(1, sizeof *db);
    if (!db) return NULL;
    int fail = 0;
    db->loop = loop;
    db->path = dup_str(o->path ? o->path : ":memory:", &fail);
    db->busy_timeout_ms = o->busy_timeout_ms;
    db->journal_mode = dup_str(o->journal_mode, &fail);
    db->synchronous = dup_str(o->synchronous, &fail);
    db->foreign_keys = o->foreign_keys;
    db->cache_cap = o->statement_cache > 0 ? (size_t)o->statement_cache : 0;
    db->spin_us = o->spin_us < 0 ? JR_DB_SPIN_US_DEFAULT : o->spin_us;
    db->inline_us = o->inline_us > 0 ? o->inline_us : 0;
    if (o->npragmas > 0) {
        db->pragmas = calloc(o->npragmas, sizeof *db->pragmas);
        if (!db->pragmas) fail = 1;
        else {
            db->npragmas = o->npragmas;
            for (size_t i = 0; i < o->npragmas; i++) db->pragmas[i] = dup_str(o->pragmas[i], &fail);
        }
    }
    if (fail) {
        free_db(db);
        return NULL;
    }
    jr_db_group *own = NULL;
    if (!group) {
        group = own = jr_db_group_new();
        if (!group) {
            free_db(db);
            return NULL;
        }
    }
    if (!group->loop) {
        /* Idle handles: they must not keep the loop alive on their own. */
        if (uv_async_init(loop, &group->wake, on_group_wake) != 0) goto fail_group;
        uv_timer_init(loop, &group->timer);
        group->wake.data = group->timer.data = group;
        uv_unref((uv_handle_t *)&group->wake);
        uv_unref((uv_handle_t *)&group->timer);
        group->loop = loop;
    }
    if (uv_mutex_init(&db->mu) != 0) goto fail_group;
    if (uv_cond_init(&db->cv) != 0) {
        uv_mutex_destroy(&db->mu);
        goto fail_group;
    }
    if (uv_async_init(loop, &db->async, on_async) != 0) {
        uv_cond_destroy(&db->cv);
        uv_mutex_destroy(&db->mu);
        goto fail_group;
    }
    db->async.data = db;
    db->refd = 1;
    group->refs++;
    db->group = group;
    db->gnext = group->members;
    group->members = db;
    jr_db_job_init(&db->close_job);
    db->close_job.kind = JR_DB_CLOSE;
    jr_db_job_init(&db->ckpt_job);
    db->ckpt_job.kind = JR_DB_CHECKPOINT;
    db->ckpt_job.cb = on_checkpoint_done;
    db->ckpt_job.data = db;

    open_job->kind = JR_DB_OPEN;
    open_job->cb = cb;
    enqueue(db, open_job);
    if (uv_thread_create(&db->thread, worker_main, db) != 0) {
        /* Nothing ran: take the job back and let the close callback free
         * db without telling anyone. */
        db->q_head = db->q_tail = NULL;
        db->inflight = 0;
        db->closing = 1;
        db->free_only = 1;
        group->members = db->gnext; /* added just above */
        uv_close((uv_handle_t *)&db->async, on_closed);
        return NULL;
    }
    return db;

fail_group:
    if (own) {
        own->refs = 1;
        group_unref(own);
    }
    free_db(db);
    return NULL;
}

jr_db_group *jr_db_get_group(jr_db *db) { return db->group; }

int jr_db_submit(jr_db *db, jr_db_job *job)
{
    if (db->closing) return -1;
    enqueue(db, job);
    return 0;
}

size_t jr_db_inflight(const jr_db *db) { return db->inflight; }

/* Commits on the loop thread only note a checkpoint as due (see wal_hook);
 * here one member's worker is sent to run it. Any member can (one file),
 * and the committer is the worst choice: its connection goes back to the
 * pool's idle stack on top, to be taken next, and would then find its
 * worker busy. So: an idle member outside a transaction, the newest one
 * (db.lua's pool hands out the oldest first, and under light load keeps
 * reusing it), else the committer. */
static void queue_checkpoint(jr_db *db)
{
    jr_db_group *g = db->group;
    db->ckpt_due = 0;
    if (g->ckpt_queued) return;
    jr_db *pick = NULL;
    for (jr_db *m = g->members; m && !pick; m = m->gnext)
        if (m != db && !m->closing && m->inflight == 0 && m->db && sqlite3_get_autocommit(m->db)) pick = m;
    if (!pick) pick = db;
    if (pick->closing) return;
    g->ckpt_queued = 1;
    enqueue(pick, &pick->ckpt_job);
}

int jr_db_end_inline(jr_db *db, jr_db_job *job)
{
    /* Idle (inflight 0): the worker has handed back its last job through
     * db->mu and waits for the next, so this thread may use the handle. */
    if (db->closing || db->inflight != 0 || !db->db) return 0;
    if (job->kind != JR_DB_COMMIT && job->kind != JR_DB_ROLLBACK) return 0;
    if (sqlite3_get_autocommit(db->db)) return 0;
    /* A write transaction's end does I/O. With WAL and synchronous NORMAL
     * or OFF a COMMIT appends the transaction's pages to the WAL without
     * fsync (tens of microseconds, less than the thread hop it saves), so it
     * runs here too; other modes fsync and go to the worker. A ROLLBACK of
     * a write transaction always goes to the worker. */
    if (sqlite3_txn_state(db->db, NULL) == SQLITE_TXN_WRITE &&
        !(job->kind == JR_DB_COMMIT && db->cheap_commit))
        return 0;
    clear_results(job);
    db->running_seq = UINT64_MAX; /* no earlier interrupt applies here */
    atomic_store_explicit(&db->in_write_txn, 0, memory_order_relaxed); /* the worker stops spinning */
    db->on_loop = 1;
    step_simple(db, job, job->kind == JR_DB_COMMIT ? db->st_commit : db->st_rollback);
    db->on_loop = 0;
    job->autocommit = sqlite3_get_autocommit(db->db);
    job->txn_state = sqlite3_txn_state(db->db, NULL);
    job->ran_inline = 1;
    db->stats.inline_ends++;
    if (job->txn_state != SQLITE_TXN_WRITE) writer_release(db);
    /* In rollback-journal mode our read lock may have held up a writer. */
    group_signal(db->group);
    if (db->ckpt_due && job->autocommit) queue_checkpoint(db);
    return 1;
}

/* Put the statement job back as it was before an inline attempt that did
 * not finish (SQLITE_BUSY: a lock to wait for; SQLITE_INTERRUPT: a query
 * out of time), so the worker can run it from the start. began: this
 * attempt ran the job's BEGIN; it is undone (nothing was written: a busy
 * write never started, a stopped query writes nothing). Returns 0 when
 * that is not possible (the job keeps its error and is done). */
static int undo_inline(jr_db *db, jr_db_job *j, int before, int began)
{
    if (began) {
        db->on_loop = 1;
        int rc = sqlite3_step(db->st_rollback);
        sqlite3_reset(db->st_rollback);
        db->on_loop = 0;
        if (rc != SQLITE_DONE) return 0;
    }
    if (sqlite3_txn_state(db->db, NULL) != before) return 0;
    if (before != SQLITE_TXN_WRITE) writer_release(db);
    clear_results(j);
    return 1;
}

/* try_inline: INLINE_RAN, INLINE_WAIT (the write token is another
 * member's: wait for it on the loop side), or 0 (submit to the worker). */
enum { INLINE_RAN = 1, INLINE_WAIT = 2 };

/* Parameters this large make even a point write slow (copied into pages). */
#define JR_DB_INLINE_MAX_PARAMS (64u * 1024u)

/* queued: the job is the group's first waiter for the write token (from
 * dispatch_waiters); others wait behind waiters already queued. */
static int try_inline(jr_db *db, jr_db_job *j, int queued)
{
    if (db->inline_us <= 0 || db->inflight != 0 || !db->db || db->cache_cap == 0 || !j->has_sql) return 0;
    if (j->kind != JR_DB_EXECUTE && j->kind != JR_DB_QUERY && j->kind != JR_DB_FIRST) return 0;
    const char *sql = j->req.data + j->sql_off;
    cache_ent *e = cache_find(db, sql, j->sql_len, sql_hash(sql, j->sql_len));
    if (!e || e->inline_class == INLINE_NO ||
        e->class_reprep != sqlite3_stmt_status(e->st, SQLITE_STMTSTATUS_REPREPARE, 0))
        return 0;
    if (e->inline_class == INLINE_WRITE && j->req.len > JR_DB_INLINE_MAX_PARAMS) return 0;
    int before = sqlite3_txn_state(db->db, NULL);
    int locks = e->inline_class == INLINE_WRITE || j->begin == JR_DB_BEGIN_IMMEDIATE ||
                j->begin == JR_DB_BEGIN_EXCLUSIVE;
    /* Another member's write token, or others waiting for it: wait here,
     * in turn (writer_wait). */
    if (locks && before != SQLITE_TXN_WRITE && ((db->group->wait_head && !queued) || !writer_try_acquire(db)))
        return INLINE_WAIT;
    uint64_t cpu0 = thread_cpu_ns();
    clear_results(j);
    db->running_seq = UINT64_MAX; /* no earlier interrupt applies here */
    db->on_loop = 1;
    db->inline_ent = e;
    db->inline_stopped = 0;
    db->inline_reprepared = 0;
    if (e->inline_class == INLINE_READ) db->inline_deadline = uv_hrtime() + (uint64_t)db->inline_us * 1000u;
    int began = 0, wrote = 0;
    if (j->begin > JR_DB_NO_BEGIN && j->begin <= JR_DB_BEGIN_EXCLUSIVE)
        began = step_simple(db, j, db->st_begin[j->begin]) == 0;
    if (j->begin == JR_DB_NO_BEGIN || began) run_stmt(db, j, &wrote);
    int stopped = db->inline_stopped;
    db->inline_ent = NULL;
    db->on_loop = 0;
    int reprepared = db->inline_reprepared;
    if ((j->rc == SQLITE_BUSY || (j->rc == SQLITE_INTERRUPT && stopped) || reprepared) &&
        undo_inline(db, j, before, began)) {
        db->stats.inline_fallbacks++;
        /* a query that keeps running out of time stays on the worker: each
         * try costs the loop inline_us for nothing */
        if (stopped && ++e->inline_misses >= 3) demote(db, e);
        return 0;
    }
    db->stats.inline_runs++;
    e->inline_misses = 0;
    uint64_t cpu = thread_cpu_ns() - cpu0, limit = overrun_limit(db);
    /* Once may be the VM (stolen time is charged to the thread too:
     * measured, point inserts now and then at 0.5-1.3 ms); three times in
     * a row, or far past the limit once, is the statement. */
    if (cpu <= limit) e->inline_overruns = 0;
    else if (++e->inline_overruns >= 3 || cpu > 10 * limit) inline_overrun(db, e, cpu);
    after_statement(db, before, wrote);
    note_txn(db, j);
    j->ran_inline = 1;
    if (db->ckpt_due && j->autocommit) queue_checkpoint(db);
    return INLINE_RAN;
}

/* ---- waiting for the write token on the loop side ----
 * A statement that could run inline but for the token, held by another
 * member of the group, waits here instead of on its worker: sent to the
 * worker it would hold the token across two thread hops once it got it,
 * and every writer after it would find the token taken and go the same
 * way (measured: after the first checkpoint, 70% of inserts did). */

/* Hand a job finished on the loop thread over as the worker's are. */
static void complete_later(jr_db *db, jr_db_job *j)
{
    uv_mutex_lock(&db->mu);
    push_done(db, j);
    uv_mutex_unlock(&db->mu);
    uv_async_send(&db->async);
}

static void dispatch_waiters(jr_db_group *g);

static void on_wait_timer(uv_timer_t *t) { dispatch_waiters(t->data); }
static void on_group_wake(uv_async_t *a) { dispatch_waiters(a->data); }

/* The first waiter's wait ends first: all have the pool's busy_timeout. */
static void arm_wait_timer(jr_db_group *g)
{
    if (!g->wait_head) {
        uv_timer_stop(&g->timer);
        return;
    }
    uint64_t now = uv_hrtime(), at = g->wait_head->wait_deadline;
    uv_timer_start(&g->timer, on_wait_timer, at > now ? (at - now) / 1000000u + 1 : 0, 0);
}

static void writer_wait(jr_db *db, jr_db_job *j)
{
    jr_db_group *g = db->group;
    db->wait_job = j;
    db->wait_deadline = uv_hrtime() + (uint64_t)db->busy_timeout_ms * 1000000u;
    db->wait_next = NULL;
    if (g->wait_tail) g->wait_tail->wait_next = db;
    else g->wait_head = db;
    g->wait_tail = db;
    atomic_fetch_add_explicit(&g->nwaiting, 1, memory_order_acq_rel);
    db->inflight++;
    if (!db->refd) {
        uv_ref((uv_handle_t *)&db->async);
        db->refd = 1;
    }
    if (g->wait_head == db) arm_wait_timer(g);
    /* The holder may have let go between our try and the count above,
     * seeing nobody waiting: look again on the next turn of the loop. */
    uv_async_send(&g->wake);
}

static void unlink_waiter(jr_db_group *g, jr_db *db)
{
    jr_db **pp = &g->wait_head, *prev = NULL;
    while (*pp != db) {
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    *pp = db->wait_next;
    if (g->wait_tail == db) g->wait_tail = prev;
    db->wait_next = NULL;
    db->wait_job = NULL;
    atomic_fetch_sub_explicit(&g->nwaiting, 1, memory_order_acq_rel);
}

static void fail_waiter(jr_db *db, int rc, const char *msg)
{
    jr_db_job *j = db->wait_job;
    unlink_waiter(db->group, db);
    clear_results(j);
    job_fail(j, rc, "%s", msg);
    note_txn(db, j); /* unchanged: nothing ran */
    complete_later(db, j);
}

static void dispatch_waiters(jr_db_group *g)
{
    jr_db *db;
    while ((db = g->wait_head)) {
        jr_db_job *j = db->wait_job;
        db->inflight--; /* try_inline wants the connection idle */
        int r = try_inline(db, j, 1);
        if (r == INLINE_WAIT) {
            db->inflight++;
            break; /* still taken: first come, first served */
        }
        unlink_waiter(g, db);
        if (r == 0) {
            enqueue(db, j);
            continue;
        }
        maybe_unref(db);
        if (j->cb) j->cb(j); /* may run the task on, and queue more waiters */
    }
    /* Past busy_timeout: "database is locked", as SQLite says it. */
    uint64_t now = uv_hrtime();
    for (db = g->wait_head; db;) {
        jr_db *next = db->wait_next;
        if (now >= db->wait_deadline) fail_waiter(db, SQLITE_BUSY, "database is locked");
        db = next;
    }
    arm_wait_timer(g);
}

int jr_db_run(jr_db *db, jr_db_job *job)
{
    if (db->closing) return -1;
    switch (try_inline(db, job, 0)) {
    case INLINE_RAN: return 1;
    case INLINE_WAIT: writer_wait(db, job); return 0;
    default: enqueue(db, job); return 0;
    }
}

void jr_db_interrupt(jr_db *db)
{
    /* waiting for the write token: out of the queue now (its callback
     * still comes from the loop, not from inside this call) */
    if (db->wait_job) fail_waiter(db, SQLITE_INTERRUPT, "interrupted");
    uv_mutex_lock(&db->mu);
    atomic_store(&db->interrupt_upto, db->next_seq);
    /* Also the direct way, which stops long single instructions (a sort). */
    if (db->running && db->sqlite_open) sqlite3_interrupt(db->db);
    uv_mutex_unlock(&db->mu);
}

void jr_db_get_stats(const jr_db *db, jr_db_stats *out) { *out = db->stats; }

void jr_db_close(jr_db *db, void (*cb)(void *data), void *data)
{
    if (db->closing) return;
    db->closing = 1;
    db->close_cb = cb;
    db->close_data = data;
    if (db->wait_job) fail_waiter(db, SQLITE_MISUSE, "the connection was closed");
    for (jr_db **pp = &db->group->members; *pp; pp = &(*pp)->gnext)
        if (*pp == db) {
            *pp = db->gnext;
            break;
        }
    enqueue(db, &db->close_job);
}
