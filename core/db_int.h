/* db_int.h - what the files of the SQLite room share among themselves
 * (db_job.c, db_cache.c, db_exec.c, db_conn.c); not part of the public API
 * (db.h). */
#ifndef JR_DB_INT_H
#define JR_DB_INT_H

#include <sqlite3.h>
#include <stdatomic.h>

#include "db.h"
#include "db_cache.h"

/* Zero the results of a job (before it runs, or runs again). */
void jr_db_job_clear_results(jr_db_job *j);
/* Fail the job with rc (SQLite's code, or JR_DB_ABORTED) and a message. */
void jr_db_job_fail(jr_db_job *j, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Bind the job's parameters to st: 0, or -1 with the job failed. */
int jr_db_job_bind(jr_db_job *j, sqlite3_stmt *st);
/* Append st's column names / current row to the results: 0 or -1 (no memory). */
int jr_db_job_collect_columns(jr_db_job *j, sqlite3_stmt *st);
int jr_db_job_collect_row(jr_db_job *j, sqlite3_stmt *st);

/* SQLite's own auto-checkpoint threshold (frames), which our WAL hook
 * replaces so that the checkpoint runs after the commit is reported. */
#define JR_DB_CHECKPOINT_FRAMES 1000

enum { ST_BEGIN, ST_BEGIN_IMMEDIATE, ST_COMMIT, ST_ROLLBACK, ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO, ST_COUNT };

/* A connection. db_conn.c owns the threads and queues and decides who may
 * use the handle when; db_exec.c is what runs on the handle. */
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

static inline int jr_db_is_interrupted(jr_db *db)
{
    return atomic_load_explicit(&db->interrupt_upto, memory_order_relaxed) >= db->running_seq;
}

/* db_exec.c: run a job on the handle (the connection's thread). */
void jr_db_exec_job(jr_db *db, jr_db_job *j, int interrupted);
/* db_exec.c: a reader's statement or read end on the loop thread, the
 * connection being idle (see jr_db_run_read). 1: it ran here; 0: submit it. */
int jr_db_exec_read(jr_db *db, jr_db_job *j);

#endif
