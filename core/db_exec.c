/* db_exec.c - what runs on a connection's SQLite handle: the steps of a
 * job (BEGIN, SAVEPOINT, the statement, RELEASE / ROLLBACK TO, COMMIT /
 * ROLLBACK), opening and closing, the SQLite callbacks (progress handler,
 * authorizer, busy handler, WAL hook), and a reader's statement run on the
 * loop thread under the deadline. Which thread runs them, and when, is
 * db_conn.c's business (see db.h). */
#include "db.h"
#include "db_cache.h"
#include "db_int.h"
#include "log.h"

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

/* The one savepoint name of a group member (see db.h, JR_DB_PRE_SAVEPOINT). */
#define JR_DB_SAVEPOINT "jr_tx"

static const char *const control_sql[ST_COUNT] = {
    "BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK",
    "SAVEPOINT " JR_DB_SAVEPOINT, "RELEASE " JR_DB_SAVEPOINT, "ROLLBACK TO " JR_DB_SAVEPOINT,
};

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
    return jr_db_is_interrupted(db);
}

/* Transactions belong to the layer above: a group commit keeps several
 * sessions in one transaction, and a user's COMMIT or ROLLBACK would end
 * theirs too. So statements of users may not begin or end a transaction,
 * nor touch the members' savepoint (their own savepoints nest inside it).
 * This is the authorizer's documented use: access control at prepare
 * time (a cached statement is authorized once). */
static int authorizer(void *arg, int action, const char *a, const char *b, const char *c, const char *d)
{
    (void)a, (void)c, (void)d;
    jr_db *db = arg;
    if (db->own_statement) return SQLITE_OK;
    if (action == SQLITE_TRANSACTION || (action == SQLITE_SAVEPOINT && b && strcasecmp(b, JR_DB_SAVEPOINT) == 0)) {
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
    if (now >= deadline || jr_db_is_interrupted(db)) return 0;
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

/* Step one of our control statements (the authorizer lets it pass); SQLite's rc. */
static int step_control(jr_db *db, int which)
{
    sqlite3_stmt *st = db->control[which];
    db->own_statement = 1;
    int rc = sqlite3_step(st);
    db->own_statement = 0;
    sqlite3_reset(st);
    return rc;
}

/* One of our control statements; 0 or -1 (the job failed with its error). */
static int control(jr_db *db, jr_db_job *j, int which)
{
    int rc = step_control(db, which);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    if (j) fail_db(db, j, rc);
    return -1;
}

/* The transaction step of an END job (COMMIT or ROLLBACK): its result goes
 * to txn_rc / txn_err, and a failed one never leaves the transaction open
 * (a COMMIT that could not get a lock: nothing of it may commit later). */
static void end_txn(jr_db *db, jr_db_job *j)
{
    int rc = step_control(db, j->end_txn == JR_DB_TXN_COMMIT ? ST_COMMIT : ST_ROLLBACK);
    if (rc == SQLITE_DONE) return;
    j->txn_rc = rc & 0xff;
    snprintf(j->txn_err, sizeof j->txn_err, "%s", sqlite3_errmsg(db->h));
    if (!sqlite3_get_autocommit(db->h)) (void)step_control(db, ST_ROLLBACK);
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
    step_rows(db, j, st);
    count_work(j, st); /* read and reset: the next run counts from 0 */
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
    end_txn(db, j);
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

void jr_db_exec_job(jr_db *db, jr_db_job *j, int interrupted)
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

/* ------------------------------------------------------------------ */
/* A reader on the loop thread (jr_db_run_read)                         */

/* The end of a read transaction, here: it releases a shared lock (in WAL
 * mode, a read mark in shared memory) and reads or writes no page. */
static int end_read_here(jr_db *db, jr_db_job *j)
{
    if (j->end_member != JR_DB_MEMBER_NONE || j->end_txn == JR_DB_TXN_KEEP) return 0;
    if (sqlite3_txn_state(db->h, NULL) == SQLITE_TXN_WRITE) return 0;
    jr_db_job_clear_results(j);
    /* (a failed end rolls back: never back to the pool inside a
     * transaction, whose stale snapshot would pin the WAL) */
    if (!sqlite3_get_autocommit(db->h)) {
        db->on_loop = 1;
        end_txn(db, j);
        db->on_loop = 0;
    }
    note_txn(db, j);
    j->ran_inline = 1;
    db->stats.inline_runs++;
    return 1;
}

int jr_db_exec_read(jr_db *db, jr_db_job *j)
{
    if (j->kind == JR_DB_END) return end_read_here(db, j);
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
    return 0;
}
