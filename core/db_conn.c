/* db_conn.c - a SQLite connection on a thread of its own (see db.h): the
 * thread, the job queues, and who may use the handle when. What runs on the
 * handle is in db_exec.c.
 *
 * Threads and ownership:
 *   loop thread   fills jobs, submits them, receives them back (on_async, or
 *                 jr_db_deliver between tasks), closes connections; while the
 *                 connection is idle (no job in flight, no checkpoint) it may
 *                 use the handle, the cache and the stats itself: a reader's
 *                 statement under the deadline, or the end of a read
 *                 transaction (jr_db_run_read).
 *   thread        owns the handle, the statement cache and the stats while it
 *                 runs a job (and a checkpoint after one: bg_busy); never
 *                 calls the loop's code except through uv_async_send.
 * The queues (q: submitted, d: done) and `running` are guarded by db->mu;
 * handing a job over through that mutex is also what makes the thread's
 * writes (results, cache, stats) visible to the loop thread and back.
 *
 * SQLite must be built threadsafe=1 (serialized: checked at open); its
 * mutexes stay on although a connection is used by one thread at a time:
 * an uncontended mutex costs nanoseconds, and it keeps sqlite3_interrupt
 * safe. */
#include "db.h"
#include "db_int.h"
#include "log.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        int interrupted = j->kind != JR_DB_CLOSE && j->kind != JR_DB_OPEN && jr_db_is_interrupted(db);

        jr_db_exec_job(db, j, interrupted);

        int last = j->kind == JR_DB_CLOSE;
        /* A checkpoint owed by a commit runs after the commit is handed
         * back; the handle is marked busy before the job is announced
         * (the loop may see it back through ndone at once), so the loop
         * thread, seeing the job back, also sees the handle taken. */
        int ckpt = !last && db->checkpoint_due && db->h && sqlite3_get_autocommit(db->h);
        if (ckpt) atomic_store_explicit(&db->bg_busy, 1, memory_order_release);
        uv_mutex_lock(&db->mu);
        db->running = NULL;
        push_done(db, j);
        uv_mutex_unlock(&db->mu);
        /* For the CLOSE job the loop may already be joining us, but the
         * handle stays open until the join returns, so this send is safe. */
        uv_async_send(&db->async);
        if (last) return;
        /* PASSIVE: it copies what no reader still needs and never waits
         * for anyone; outside any transaction of ours. */
        if (ckpt) {
            db->checkpoint_due = 0;
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

int jr_db_run_read(jr_db *db, jr_db_job *j)
{
    if (db->closing) return -1;
    /* Idle (inflight 0, no checkpoint running): the thread handed back its
     * last job through db->mu and waits for the next, so this thread may
     * use the handle. */
    if (db->inflight == 0 && db->h && !atomic_load_explicit(&db->bg_busy, memory_order_acquire) &&
        jr_db_exec_read(db, j))
        return 1;
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
