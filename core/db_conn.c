/* db_conn.c - a SQLite connection on a thread of its own (see db.h).
 *
 * Threads and ownership:
 *   loop thread   fills jobs, submits them, receives them back (on_async),
 *                 closes connections; while the connection is idle (no job
 *                 in flight) it may use the handle, the cache and the stats
 *                 itself: a reader's statement under the deadline, or the
 *                 end of a read transaction (jr_db_run_read).
 *   thread        owns the handle, the statement cache and the stats while it
 *                 runs a job; never calls the loop's code except through
 *                 uv_async_send.
 * The queues (q: submitted, d: done) and `running` are guarded by db->mu;
 * handing a job over through that mutex is also what makes the thread's
 * writes (results, cache, stats) visible to the loop thread and back.
 *
 * SQLite is built threadsafe=1 (serialized); its default mutexes stay on
 * although a connection is used by one thread at a time: an uncontended
 * mutex costs nanoseconds, and it keeps sqlite3_interrupt safe. */
#include "db.h"
#include "db_cache.h"
#include "db_int.h"
#include "log.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* How often SQLite polls the progress handler (virtual machine
 * instructions): the granularity of the loop thread's deadline and of
 * jr_db_interrupt. One poll is a clock read (~25 ns) per ~1-5 us of work. */
#define JR_DB_PROGRESS_OPS 100

/* SQLite's own auto-checkpoint threshold (frames), which our WAL hook
 * replaces so that the checkpoint runs after the commit is reported. */
#define JR_DB_CHECKPOINT_FRAMES 1000

/* The one savepoint name of a group member (see db.h, JR_DB_PRE_SAVEPOINT). */
#define JR_DB_SAVEPOINT "jr_tx"

enum { ST_BEGIN, ST_BEGIN_IMMEDIATE, ST_COMMIT, ST_ROLLBACK, ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO, ST_COUNT };

static const char *const control_sql[ST_COUNT] = {
    "BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK",
    "SAVEPOINT " JR_DB_SAVEPOINT, "RELEASE " JR_DB_SAVEPOINT, "ROLLBACK TO " JR_DB_SAVEPOINT,
};

struct jr_db {
    uv_loop_t *loop;

    /* options (copied; read by the thread) */
    char *path;
    int readonly;
    int busy_timeout_ms;
    char *journal_mode, *synchronous;
    int foreign_keys;
    size_t cache_cap;
    char **pragmas;
    size_t npragmas;
    int spin_us;
    int read_deadline_us;

    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    uv_async_t async;

    /* guarded by mu */
    jr_db_job *q_head, *q_tail; /* submitted, not started */
    jr_db_job *d_head, *d_tail; /* done, not yet called back */
    jr_db_job *running;
    int sqlite_open;            /* h may be interrupted */
    uint64_t next_seq;          /* the last submission number given */
    /* Jobs numbered up to this are interrupted. Read by the thread's
     * progress and busy handlers without the mutex, hence atomic. */
    _Atomic uint64_t interrupt_upto;
    _Atomic int nq; /* jobs queued: polled without the mutex while spinning */
    _Atomic int ndone; /* jobs done, not yet handed back: polled by jr_db_deliver */
    /* The thread uses the handle after handing its last job back (a
     * checkpoint): the loop thread must not, even though nothing is in flight. */
    _Atomic int bg_busy;

    /* loop thread only */
    size_t inflight;
    int closing, refd, free_only;
    int delivering; /* deliver() is calling callbacks: a nested one would reorder them */
    jr_db_job close_job;
    void (*close_cb)(void *);
    void *close_data;

    /* the thread's (or the loop's while idle) */
    sqlite3 *h;
    sqlite3_stmt *control[ST_COUNT];
    jr_db_cache cache;
    uint64_t running_seq;
    uint64_t busy_start;
    uint64_t deadline;   /* jr_db_run_read: the progress handler stops the statement then */
    int stopped;         /* ... and did */
    int on_loop;         /* the loop thread is using the handle: never wait for a lock */
    int own_statement;   /* running our own control statements: the authorizer lets them pass */
    int denied_control;  /* the authorizer refused a user's transaction control statement */
    int checkpoint_due;  /* the WAL passed JR_DB_CHECKPOINT_FRAMES at a commit */
    jr_db_stats stats;
};

static int is_interrupted(jr_db *db)
{
    return atomic_load_explicit(&db->interrupt_upto, memory_order_relaxed) >= db->running_seq;
}

static void fail_db(jr_db *db, jr_db_job *j, int rc)
{
    jr_db_job_fail(j, rc, "%s", sqlite3_errmsg(db->h));
}

/* ------------------------------------------------------------------ */
/* SQLite callbacks                                                     */

/* sqlite3_interrupt() alone can be lost: SQLite clears its flag when a
 * statement starts on an idle connection, so one landing between our
 * dequeue and the first step would vanish. The handler cannot miss it. On
 * the loop thread it also enforces the deadline. */
static int progress_handler(void *arg)
{
    jr_db *db = arg;
    if (db->deadline && uv_hrtime() >= db->deadline) {
        db->stopped = 1;
        return 1;
    }
    return is_interrupted(db);
}

/* Transactions belong to the layer above: a group commit keeps several
 * sessions in one transaction, and a user's COMMIT or ROLLBACK would end
 * theirs too. So statements of users may not begin or end a transaction,
 * nor touch the members' savepoint (their own savepoints nest inside it).
 * This is the authorizer's documented use: access control at prepare
 * time (a cached statement is authorized once). */
static int authorizer(void *arg, int action, const char *a, const char *b, const char *c, const char *d)
{
    (void)c, (void)d;
    jr_db *db = arg;
    if (db->own_statement) return SQLITE_OK;
    if (action == SQLITE_TRANSACTION || (action == SQLITE_SAVEPOINT && b && strcasecmp(b, JR_DB_SAVEPOINT) == 0)) {
        (void)a;
        db->denied_control = 1;
        return SQLITE_DENY;
    }
    return SQLITE_OK;
}

/* Another process holds the lock: wait up to busy_timeout, polling (there
 * is no notification across processes), sooner at first. Never on the loop
 * thread: there the statement goes to the connection's thread instead. */
static int busy_handler(void *arg, int count)
{
    static const unsigned poll_us[] = {0, 50, 100, 200, 500, 1000};
    jr_db *db = arg;
    if (db->on_loop) return 0;
    uint64_t now = uv_hrtime();
    if (count == 0) db->busy_start = now;
    uint64_t deadline = db->busy_start + (uint64_t)db->busy_timeout_ms * 1000000u;
    if (now >= deadline || is_interrupted(db)) return 0;
    unsigned n = sizeof poll_us / sizeof poll_us[0];
    uint64_t wait = (uint64_t)poll_us[(unsigned)count < n ? (unsigned)count : n - 1] * 1000u;
    if (wait > deadline - now) wait = deadline - now;
    db->stats.busy_waits++;
    if (wait) {
        struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        nanosleep(&ts, NULL);
    }
    return 1;
}

/* Our replacement of SQLite's auto-checkpoint (the same threshold): the
 * checkpoint, with its fsyncs, runs after the committing job has been
 * handed back (see worker_main), so the commit's waiters need not wait for
 * it. */
static int wal_hook(void *arg, sqlite3 *h, const char *dbname, int frames)
{
    (void)h, (void)dbname;
    jr_db *db = arg;
    if (frames >= JR_DB_CHECKPOINT_FRAMES) db->checkpoint_due = 1;
    return SQLITE_OK;
}

/* ------------------------------------------------------------------ */
/* Steps                                                                */

/* One of our control statements; 0 or -1 (the job failed with its error). */
static int control(jr_db *db, jr_db_job *j, int which)
{
    sqlite3_stmt *st = db->control[which];
    db->own_statement = 1;
    int rc = sqlite3_step(st);
    db->own_statement = 0;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    if (j) fail_db(db, j, rc);
    return -1;
}

static void control_quiet(jr_db *db, int which) { (void)control(db, NULL, which); }

static void count_work(jr_db_job *j, sqlite3_stmt *st)
{
    j->sorts = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_SORT, 1);
    j->vm_steps = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
    j->fullscan_steps = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
}

static void step_rows(jr_db *db, jr_db_job *j, sqlite3_stmt *st);

/* The statement of an EXECUTE / QUERY / FIRST job, prepared st. */
static void step_statement(jr_db *db, jr_db_job *j, sqlite3_stmt *st)
{
    if (jr_db_job_bind(j, st) != 0) return;
    /* counters of this run only (a cached statement keeps them across runs) */
    sqlite3_stmt_status(st, SQLITE_STMTSTATUS_SORT, 1);
    sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
    sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
    step_rows(db, j, st);
    count_work(j, st);
}

static void step_rows(jr_db *db, jr_db_job *j, sqlite3_stmt *st)
{
    int rc;
    if (j->kind == JR_DB_EXECUTE) {
        sqlite3_int64 total = sqlite3_total_changes64(db->h);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
        if (rc != SQLITE_DONE) {
            fail_db(db, j, rc);
            return;
        }
        /* sqlite3_changes() keeps the count of the last INSERT/UPDATE/
         * DELETE even across other statements (a CREATE TABLE would report
         * it again): only trust it when this statement changed something. */
        j->changes = sqlite3_total_changes64(db->h) != total ? sqlite3_changes64(db->h) : 0;
        j->last_insert_id = sqlite3_last_insert_rowid(db->h);
        return;
    }
    /* Columns after the first step: a statement whose schema changed is
     * re-prepared by that step, and `SELECT *` may then have new columns. */
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fail_db(db, j, rc);
        return;
    }
    if (jr_db_job_collect_columns(j, st) != 0) {
        jr_db_job_fail(j, SQLITE_NOMEM, "out of memory");
        return;
    }
    while (rc == SQLITE_ROW) {
        if (jr_db_job_collect_row(j, st) != 0) {
            jr_db_job_fail(j, SQLITE_NOMEM, "out of memory");
            return;
        }
        if (j->kind == JR_DB_FIRST) return;
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) fail_db(db, j, rc);
}

static void explain_denied(jr_db *db, jr_db_job *j)
{
    if (!db->denied_control || j->rc == 0) return;
    jr_db_job_fail(j, SQLITE_MISUSE,
                   "transaction control statements (BEGIN, COMMIT, ROLLBACK, the savepoint " JR_DB_SAVEPOINT
                   ") are not allowed here: jararaca begins and ends the transaction");
}

/* PRE_BEGIN* and PRE_SAVEPOINT; 0 or -1 (job failed). */
static int pre_steps(jr_db *db, jr_db_job *j)
{
    if ((j->pre & (JR_DB_PRE_BEGIN | JR_DB_PRE_BEGIN_IMMEDIATE)) && sqlite3_get_autocommit(db->h)) {
        if (control(db, j, (j->pre & JR_DB_PRE_BEGIN_IMMEDIATE) ? ST_BEGIN_IMMEDIATE : ST_BEGIN) != 0) return -1;
        j->began = 1;
    }
    if (j->pre & JR_DB_PRE_SAVEPOINT) {
        if (control(db, j, ST_SAVEPOINT) != 0) {
            if (j->began) control_quiet(db, ST_ROLLBACK);
            j->began = 0;
            return -1;
        }
        j->savepoint = 1;
    }
    return 0;
}

static int refuse_outside_txn(jr_db *db, jr_db_job *j)
{
    if (!(j->pre & JR_DB_PRE_IN_TXN) || !sqlite3_get_autocommit(db->h)) return 0;
    jr_db_job_fail(j, JR_DB_ABORTED,
                   "the transaction was rolled back by SQLite after an earlier error; nothing more can run in it");
    return 1;
}

/* EXECUTE / QUERY / FIRST / SCRIPT on the thread. */
static void run_statement(jr_db *db, jr_db_job *j)
{
    if (!j->has_sql) {
        jr_db_job_fail(j, SQLITE_MISUSE, "no SQL given");
        return;
    }
    if (refuse_outside_txn(db, j)) return;
    db->denied_control = 0;
    if (j->kind == JR_DB_SCRIPT) {
        if (pre_steps(db, j) != 0) return;
        int rc = sqlite3_exec(db->h, j->req.data + j->sql_off, NULL, NULL, NULL);
        if (rc != SQLITE_OK) fail_db(db, j, rc);
        explain_denied(db, j);
        return;
    }
    sqlite3_stmt *st;
    jr_db_cached *ent;
    if (jr_db_cache_get(&db->cache, db->h, j, &st, &ent, &db->stats) != 0) {
        explain_denied(db, j);
        return;
    }
    if (!st) return; /* blanks or comments: nothing to run, like sqlite3_exec */
    if ((j->pre & JR_DB_PRE_READONLY) && !sqlite3_stmt_readonly(st)) {
        j->needs_writer = 1;
    } else if (pre_steps(db, j) == 0) {
        /* A reader's statement is timed here too: one that is quick again
         * may run on the loop thread next time (see jr_db_run_read). */
        uint64_t t0 = ent && db->read_deadline_us > 0 ? uv_hrtime() : 0;
        step_statement(db, j, st);
        if (t0) ent->slow = uv_hrtime() - t0 > (uint64_t)db->read_deadline_us * 1000u;
        explain_denied(db, j);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (!ent) sqlite3_finalize(st);
}

/* END: the member's step, then the transaction's (see db.h). */
static void run_end(jr_db *db, jr_db_job *j)
{
    switch (j->end_member) {
    case JR_DB_MEMBER_RELEASE: {
        if (sqlite3_get_autocommit(db->h)) {
            jr_db_job_fail(j, JR_DB_ABORTED,
                           "the transaction was rolled back by SQLite after an error; nothing was committed");
            break;
        }
        int cur = 0, hi = 0;
        if (sqlite3_db_status(db->h, SQLITE_DBSTATUS_DEFERRED_FKS, &cur, &hi, 0) == SQLITE_OK && cur > 0) {
            control(db, j, ST_ROLLBACK_TO);
            control_quiet(db, ST_RELEASE);
            jr_db_job_fail(j, SQLITE_CONSTRAINT, "FOREIGN KEY constraint failed (deferred constraint unresolved at commit)");
            break;
        }
        if (control(db, j, ST_RELEASE) != 0) {
            control_quiet(db, ST_ROLLBACK_TO);
            control_quiet(db, ST_RELEASE);
        }
        break;
    }
    case JR_DB_MEMBER_ROLLBACK:
        if (!sqlite3_get_autocommit(db->h) && control(db, j, ST_ROLLBACK_TO) == 0) control(db, j, ST_RELEASE);
        break;
    default: break;
    }
    if (j->end_txn == JR_DB_TXN_KEEP) return;
    if (sqlite3_get_autocommit(db->h)) {
        if (j->end_txn == JR_DB_TXN_COMMIT) {
            j->txn_rc = JR_DB_ABORTED;
            snprintf(j->txn_err, sizeof j->txn_err,
                     "the transaction was rolled back by SQLite after an error; nothing was committed");
        }
        return;
    }
    int which = j->end_txn == JR_DB_TXN_COMMIT ? ST_COMMIT : ST_ROLLBACK;
    db->own_statement = 1;
    int rc = sqlite3_step(db->control[which]);
    db->own_statement = 0;
    sqlite3_reset(db->control[which]);
    if (rc == SQLITE_DONE) return;
    j->txn_rc = rc & 0xff;
    snprintf(j->txn_err, sizeof j->txn_err, "%s", sqlite3_errmsg(db->h));
    /* A COMMIT that failed may leave the transaction open (a lock it could
     * not get): nothing of it may commit later. */
    if (!sqlite3_get_autocommit(db->h)) control_quiet(db, ST_ROLLBACK);
}

/* ------------------------------------------------------------------ */
/* Open and close (the thread)                                          */

static int valid_word(const char *s)
{
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '+' || *s == '.'))
            return 0;
    return 1;
}

static void close_sqlite(jr_db *db)
{
    jr_db_cache_clear(&db->cache);
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(db->control[i]);
        db->control[i] = NULL;
    }
    if (!db->h) return;
    uv_mutex_lock(&db->mu);
    db->sqlite_open = 0;
    uv_mutex_unlock(&db->mu);
    /* Everything of ours is finalized, so this closes for good; _v2 is the
     * fallback that cannot leave the handle open. */
    if (sqlite3_close(db->h) != SQLITE_OK) sqlite3_close_v2(db->h);
    db->h = NULL;
}

/* Run "PRAGMA name=value" (rows ignored). */
static int run_pragma(jr_db *db, jr_db_job *j, const char *name, const char *value)
{
    char sql[160];
    snprintf(sql, sizeof sql, "PRAGMA %s=%s", name, value);
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        jr_db_job_fail(j, rc, "cannot open database %s: %s", db->path, sqlite3_errmsg(db->h));
        return -1;
    }
    return 0;
}

static void do_open(jr_db *db, jr_db_job *j)
{
    /* Validated in Lua (db/options.lua); these only guard the SQL text we
     * build from them. */
    for (size_t i = 0; i < db->npragmas; i++) {
        char *eq = strchr(db->pragmas[i], '=');
        if (!eq) {
            jr_db_job_fail(j, SQLITE_MISUSE, "cannot open database %s: invalid pragma '%s'", db->path, db->pragmas[i]);
            return;
        }
        *eq = 0;
        int ok = valid_word(db->pragmas[i]) && valid_word(eq + 1);
        *eq = '=';
        if (!ok) {
            jr_db_job_fail(j, SQLITE_MISUSE, "cannot open database %s: invalid pragma '%s'", db->path, db->pragmas[i]);
            return;
        }
    }
    if ((db->journal_mode && !valid_word(db->journal_mode)) || (db->synchronous && !valid_word(db->synchronous))) {
        jr_db_job_fail(j, SQLITE_MISUSE, "cannot open database %s: invalid journal_mode or synchronous", db->path);
        return;
    }
    /* The loop thread and the connection's thread take turns on the handle
     * (handed over through db->mu), and the thread checks it even after
     * handing a job back (a checkpoint): SQLite's own mutexes must be there. */
    if (sqlite3_threadsafe() != 1) {
        jr_db_job_fail(j, SQLITE_MISUSE, "cannot open database %s: SQLite is not built serialized (threadsafe=1)",
                       db->path);
        return;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI | SQLITE_OPEN_FULLMUTEX;
    int rc = sqlite3_open_v2(db->path, &db->h, flags, NULL);
    if (rc != SQLITE_OK) {
        jr_db_job_fail(j, rc, "cannot open database %s: %s", db->path,
                       db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        close_sqlite(db);
        return;
    }
    uv_mutex_lock(&db->mu);
    db->sqlite_open = 1;
    uv_mutex_unlock(&db->mu);
    sqlite3_busy_handler(db->h, busy_handler, db);
    sqlite3_progress_handler(db->h, JR_DB_PROGRESS_OPS, progress_handler, db);
    if (!db->readonly) {
        if (db->journal_mode && run_pragma(db, j, "journal_mode", db->journal_mode) != 0) goto fail;
        if (db->synchronous && run_pragma(db, j, "synchronous", db->synchronous) != 0) goto fail;
        if (db->foreign_keys >= 0 && run_pragma(db, j, "foreign_keys", db->foreign_keys ? "ON" : "OFF") != 0)
            goto fail;
    }
    for (size_t i = 0; i < db->npragmas; i++) {
        char *eq = strchr(db->pragmas[i], '=');
        *eq = 0; /* ours: split in place */
        int r = run_pragma(db, j, db->pragmas[i], eq + 1);
        *eq = '=';
        if (r != 0) goto fail;
    }
    if (db->readonly && run_pragma(db, j, "query_only", "ON") != 0) goto fail;
    /* Installed whatever the mode: a statement may switch the file to WAL
     * later. */
    sqlite3_wal_hook(db->h, wal_hook, db);
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(db->h, control_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->control[i], NULL);
        if (rc != SQLITE_OK) {
            jr_db_job_fail(j, rc, "cannot open database %s: %s", db->path, sqlite3_errmsg(db->h));
            goto fail;
        }
    }
    /* After our own statements: from here on only users' are checked. */
    sqlite3_set_authorizer(db->h, authorizer, db);
    if (jr_db_cache_init(&db->cache, db->cache_cap) != 0) {
        jr_db_job_fail(j, SQLITE_NOMEM, "cannot open database %s: out of memory", db->path);
        goto fail;
    }
    return;
fail:
    close_sqlite(db);
}

/* ------------------------------------------------------------------ */
/* The thread                                                           */

static void note_txn(jr_db *db, jr_db_job *j)
{
    if (db->h) {
        j->autocommit = sqlite3_get_autocommit(db->h);
        j->txn_state = sqlite3_txn_state(db->h, NULL);
    } else {
        j->autocommit = 1;
        j->txn_state = JR_DB_TXN_NONE;
    }
    db->stats.cache_size = db->cache.n;
}

static void run_job(jr_db *db, jr_db_job *j, int interrupted)
{
    int began = j->began; /* a statement stopped on the loop began there (jr_db_run_read) */
    jr_db_job_clear_results(j);
    j->began = began;
    db->stats.jobs++;
    if (j->kind == JR_DB_CLOSE) {
        close_sqlite(db);
        return;
    }
    if (j->kind == JR_DB_OPEN) {
        do_open(db, j);
    } else if (!db->h) {
        jr_db_job_fail(j, SQLITE_MISUSE, "the database is not open");
    } else if (interrupted) {
        jr_db_job_fail(j, SQLITE_INTERRUPT, "interrupted");
    } else if (j->kind == JR_DB_END) {
        run_end(db, j);
    } else if (j->kind >= JR_DB_EXECUTE && j->kind <= JR_DB_SCRIPT) {
        run_statement(db, j);
    } else {
        jr_db_job_fail(j, SQLITE_MISUSE, "unknown job kind %d", (int)j->kind);
    }
    note_txn(db, j);
}

static void push_done(jr_db *db, jr_db_job *j)
{
    j->next = NULL;
    if (db->d_tail) db->d_tail->next = j;
    else db->d_head = j;
    db->d_tail = j;
    atomic_fetch_add_explicit(&db->ndone, 1, memory_order_release);
}

static void worker_main(void *arg)
{
    jr_db *db = arg;
    uv_mutex_lock(&db->mu);
    for (;;) {
        /* While a write transaction is open its next statement is due
         * within microseconds (a task's next statement, or the next member
         * of a group), and a sleeping thread takes tens of them to wake:
         * look for it for spin_us first, yielding the CPU meanwhile so the
         * loop thread gets it whenever it wants it. Only the writer spins. */
        if (!db->q_head && db->spin_us > 0 && db->h && sqlite3_txn_state(db->h, NULL) == SQLITE_TXN_WRITE) {
            uv_mutex_unlock(&db->mu);
            uint64_t until = uv_hrtime() + (uint64_t)db->spin_us * 1000u;
            while (atomic_load_explicit(&db->nq, memory_order_acquire) == 0 && uv_hrtime() < until) sched_yield();
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

        int last = j->kind == JR_DB_CLOSE;
        uv_mutex_lock(&db->mu);
        db->running = NULL;
        push_done(db, j);
        uv_mutex_unlock(&db->mu);
        /* For the CLOSE job the loop may already be joining us, but the
         * handle stays open until the join returns, so this send is safe. */
        if (last) {
            uv_async_send(&db->async);
            return;
        }
        /* Marked before the job is announced: the loop thread, seeing the
         * job back, must also see the handle busy until the checkpoint is
         * done. */
        if (db->checkpoint_due && db->h && sqlite3_get_autocommit(db->h))
            atomic_store_explicit(&db->bg_busy, 1, memory_order_release);
        uv_async_send(&db->async);
        /* A checkpoint owed by a commit, after the commit was handed back
         * and outside any transaction of ours. PASSIVE: it copies what no
         * reader still needs and never waits for anyone. */
        if (db->checkpoint_due && db->h && sqlite3_get_autocommit(db->h)) {
            db->checkpoint_due = 0;
            atomic_store_explicit(&db->bg_busy, 1, memory_order_release);
            sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
            db->stats.checkpoints++;
            atomic_store_explicit(&db->bg_busy, 0, memory_order_release);
        }
        uv_mutex_lock(&db->mu);
    }
}

/* ------------------------------------------------------------------ */
/* The loop side                                                        */

static void free_db(jr_db *db)
{
    free(db->path);
    free(db->journal_mode);
    free(db->synchronous);
    for (size_t i = 0; i < db->npragmas; i++) free(db->pragmas[i]);
    free(db->pragmas);
    jr_db_job_free(&db->close_job);
    free(db);
}

static void on_closed(uv_handle_t *h)
{
    jr_db *db = h->data;
    void (*cb)(void *) = db->close_cb;
    void *data = db->close_data;
    int notify = !db->free_only;
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

/* Hand the finished jobs back to their callbacks, in order. Not nested: a
 * callback that runs tasks which deliver again would call later jobs back
 * before the rest of this list. */
static void deliver(jr_db *db)
{
    if (db->delivering) return;
    db->delivering = 1;
    uv_mutex_lock(&db->mu);
    jr_db_job *list = db->d_head;
    db->d_head = db->d_tail = NULL;
    atomic_store_explicit(&db->ndone, 0, memory_order_relaxed);
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
    db->delivering = 0;
    /* Jobs that finished while the callbacks ran, whose uv_async_send may
     * have found us delivering: announce them again, for the next turn. */
    if (atomic_load_explicit(&db->ndone, memory_order_acquire) > 0) uv_async_send(&db->async);
    maybe_unref(db);
}

static void on_async(uv_async_t *a) { deliver(a->data); }

int jr_db_deliver(jr_db *db)
{
    if (db->closing || db->delivering || atomic_load_explicit(&db->ndone, memory_order_acquire) == 0) return 0;
    deliver(db);
    return 1;
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

jr_db *jr_db_open(uv_loop_t *loop, const jr_db_options *o, jr_db_job *open_job, jr_db_cb cb)
{
    jr_db *db = calloc(1, sizeof *db);
    if (!db) return NULL;
    int fail = 0;
    db->loop = loop;
    db->path = dup_str(o->path ? o->path : ":memory:", &fail);
    db->readonly = o->readonly;
    db->busy_timeout_ms = o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 0;
    db->journal_mode = dup_str(o->journal_mode, &fail);
    db->synchronous = dup_str(o->synchronous, &fail);
    db->foreign_keys = o->foreign_keys;
    db->cache_cap = o->statement_cache > 0 ? (size_t)o->statement_cache : 0;
    db->spin_us = o->spin_us > 0 ? o->spin_us : 0;
    db->read_deadline_us = o->read_deadline_us > 0 ? o->read_deadline_us : 0;
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
    if (uv_mutex_init(&db->mu) != 0) {
        free_db(db);
        return NULL;
    }
    if (uv_cond_init(&db->cv) != 0) {
        uv_mutex_destroy(&db->mu);
        free_db(db);
        return NULL;
    }
    if (uv_async_init(loop, &db->async, on_async) != 0) {
        uv_cond_destroy(&db->cv);
        uv_mutex_destroy(&db->mu);
        free_db(db);
        return NULL;
    }
    db->async.data = db;
    db->refd = 1;
    jr_db_job_init(&db->close_job);
    db->close_job.kind = JR_DB_CLOSE;

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
        uv_close((uv_handle_t *)&db->async, on_closed);
        return NULL;
    }
    return db;
}

int jr_db_submit(jr_db *db, jr_db_job *job)
{
    if (db->closing) return -1;
    enqueue(db, job);
    return 0;
}

size_t jr_db_inflight(const jr_db *db)
{
    /* a checkpoint after the last job counts as one in flight */
    return db->inflight + (size_t)atomic_load_explicit(&((jr_db *)db)->bg_busy, memory_order_acquire);
}

/* The end of a read transaction, here: it releases a shared lock (in WAL
 * mode, a read mark in shared memory) and reads or writes no page. */
static int end_read_here(jr_db *db, jr_db_job *j)
{
    if (j->end_member != JR_DB_MEMBER_NONE || j->end_txn == JR_DB_TXN_KEEP) return 0;
    if (sqlite3_txn_state(db->h, NULL) == SQLITE_TXN_WRITE) return 0;
    jr_db_job_clear_results(j);
    if (!sqlite3_get_autocommit(db->h)) {
        db->on_loop = 1;
        int which = j->end_txn == JR_DB_TXN_COMMIT ? ST_COMMIT : ST_ROLLBACK;
        db->own_statement = 1;
        int rc = sqlite3_step(db->control[which]);
        db->own_statement = 0;
        sqlite3_reset(db->control[which]);
        db->on_loop = 0;
        if (rc != SQLITE_DONE) {
            j->txn_rc = rc & 0xff;
            snprintf(j->txn_err, sizeof j->txn_err, "%s", sqlite3_errmsg(db->h));
            /* Never back to the pool inside a transaction (a stale snapshot
             * would be its next user's, and would pin the WAL). */
            if (!sqlite3_get_autocommit(db->h)) {
                db->on_loop = 1;
                control_quiet(db, ST_ROLLBACK);
                db->on_loop = 0;
            }
        }
    }
    note_txn(db, j);
    j->ran_inline = 1;
    db->stats.inline_runs++;
    return 1;
}

int jr_db_run_read(jr_db *db, jr_db_job *j)
{
    if (db->closing) return -1;
    /* Idle (inflight 0, no checkpoint running): the thread handed back its
     * last job through db->mu and waits for the next, so this thread may
     * use the handle. */
    if (db->inflight != 0 || !db->h || atomic_load_explicit(&db->bg_busy, memory_order_acquire)) goto submit;
    if (j->kind == JR_DB_END) {
        if (end_read_here(db, j)) return 1;
        goto submit;
    }
    if (db->read_deadline_us <= 0 || db->cache_cap == 0 || !j->has_sql ||
        (j->kind != JR_DB_QUERY && j->kind != JR_DB_FIRST && j->kind != JR_DB_EXECUTE))
        goto submit;
    if (refuse_outside_txn(db, j)) goto ran;
    jr_db_job_clear_results(j);
    db->running_seq = UINT64_MAX; /* no earlier interrupt applies here */
    db->denied_control = 0;
    sqlite3_stmt *st;
    jr_db_cached *ent;
    db->on_loop = 1;
    int prc = jr_db_cache_get(&db->cache, db->h, j, &st, &ent, &db->stats);
    db->on_loop = 0;
    if (prc != 0) {
        /* A lock met while reading the schema: the thread waits for it. */
        if (j->rc == SQLITE_BUSY || j->rc == SQLITE_LOCKED) {
            jr_db_job_clear_results(j);
            goto submit;
        }
        explain_denied(db, j);
        goto ran;
    }
    if (!st) goto ran;
    if (!ent) { /* not cacheable: nowhere to remember how long it ran */
        sqlite3_finalize(st);
        goto submit;
    }
    if (ent->slow) goto submit;
    if (!sqlite3_stmt_readonly(st)) {
        if (j->pre & JR_DB_PRE_READONLY) {
            j->needs_writer = 1;
            goto ran;
        }
        goto submit; /* never a write on the loop thread */
    }
    db->on_loop = 1;
    if (pre_steps(db, j) != 0) {
        db->on_loop = 0;
        goto ran;
    }
    uint64_t t0 = uv_hrtime();
    db->stopped = 0;
    db->deadline = t0 + (uint64_t)db->read_deadline_us * 1000u;
    step_statement(db, j, st);
    db->deadline = 0;
    db->on_loop = 0;
    uint64_t spent = uv_hrtime() - t0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    /* Stopped at the deadline, or met a lock (which the thread waits for):
     * the thread runs it again, in the transaction begun here if any (a
     * read-only statement that stops leaves its transaction open). */
    if ((j->rc == SQLITE_INTERRUPT && db->stopped) || j->rc == SQLITE_BUSY) {
        int began = j->began;
        if (db->stopped) {
            ent->slow = 1;
            db->stats.inline_stopped++;
        }
        jr_db_job_clear_results(j);
        j->began = began;
        goto submit;
    }
    explain_denied(db, j);
    /* Past the deadline and not stopped: inside one instruction, where
     * SQLite does not poll the progress handler (count(*) walking a whole
     * table), or the thread lost its CPU meanwhile. Done now; its next run
     * is on the connection's thread, and a quick one there brings it back. */
    ent->slow = spent > (uint64_t)db->read_deadline_us * 1000u;
    if (ent->slow) db->stats.inline_overruns++;
ran:
    note_txn(db, j);
    j->ran_inline = 1;
    db->stats.inline_runs++;
    return 1;
submit:
    enqueue(db, j);
    return 0;
}

void jr_db_interrupt(jr_db *db)
{
    uv_mutex_lock(&db->mu);
    atomic_store(&db->interrupt_upto, db->next_seq);
    /* Also the direct way, which stops long single instructions (a sort). */
    if (db->running && db->sqlite_open) sqlite3_interrupt(db->h);
    uv_mutex_unlock(&db->mu);
}

void jr_db_get_stats(const jr_db *db, jr_db_stats *out) { *out = db->stats; }

int jr_db_data_version(jr_db *db, uint32_t *version, int64_t *changes)
{
    if (db->closing || db->inflight != 0 || !db->h || atomic_load_explicit(&db->bg_busy, memory_order_acquire))
        return -1;
    int v = 0;
    if (sqlite3_file_control(db->h, "main", SQLITE_FCNTL_DATA_VERSION, &v) != SQLITE_OK) return -1;
    *version = (uint32_t)v;
    *changes = sqlite3_total_changes64(db->h);
    return 0;
}

void jr_db_close(jr_db *db, void (*cb)(void *data), void *data)
{
    if (db->closing) return;
    db->closing = 1;
    db->close_cb = cb;
    db->close_data = data;
    enqueue(db, &db->close_job);
}
