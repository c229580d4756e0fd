/* db.h - SQLite connections, each with a thread of its own.
 *
 * A jr_db is one SQLite connection owned by one dedicated thread. The loop
 * thread fills a jr_db_job (kind, SQL, parameters, the steps around the
 * statement), submits it, and gets it back in its callback, on the loop
 * thread, with the results collected in C memory: no callback ever runs on
 * the thread, and nothing there touches the caller's data except the job.
 *
 *     jr_db_job job;  jr_db_job_init(&job);
 *     jr_db *db = jr_db_open(loop, &opts, &job, on_open);  // job kind OPEN
 *     ... on_open: job.rc == 0 or job.err ...
 *     jr_db_job_reset(&job);
 *     job.kind = JR_DB_QUERY;
 *     jr_db_job_set_sql(&job, "SELECT * FROM t WHERE id = ?", -1);
 *     jr_db_param_int(&job, NULL, 0, 42);
 *     jr_db_submit(db, &job);          // on_done(&job) runs later on the loop
 *     ...
 *     jr_db_close(db, on_closed, data); // after the queued jobs; frees db
 *
 * Roles are a policy of the layer above (lua/jararaca/db/): per database
 * one writer connection, whose write transactions queue in FIFO order and
 * commit in groups (savepoints inside one transaction: the PRE_* and END
 * steps below), and a pool of reader connections opened `readonly`. The
 * one thing this file decides by itself is where a reader's statement
 * runs (jr_db_run_read): on the loop thread under a hard deadline, or on
 * the connection's thread. Every such decision uses SQLite's documented
 * API (sqlite3_stmt_readonly, the progress handler, sqlite3_interrupt,
 * the WAL hook); see docs/sqlite.md, "Where statements run".
 *
 * Why a thread per connection and not uv_queue_work: the libuv pool is
 * process-wide, small (4 threads unless UV_THREADPOOL_SIZE says otherwise)
 * and shared with file system and DNS work. A statement can hold its
 * thread for a long time (a slow query, or up to busy_timeout waiting for
 * another process's write lock): on the shared pool four of those would
 * stall every fs call and getaddrinfo of the process. A dedicated thread
 * bounds the damage to its own connection and keeps each connection on
 * one thread (warm caches).
 *
 * Jobs of one connection run in submission order, one at a time; their
 * callbacks come in the same order. Option values are validated by the Lua
 * layer (lua/jararaca/db/options.lua); here they are only asserted. */
#ifndef JR_DB_H
#define JR_DB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

typedef struct jr_db jr_db;
typedef struct jr_db_job jr_db_job;

typedef enum {
    JR_DB_OPEN = 1, /* open and configure (submitted by jr_db_open) */
    JR_DB_EXECUTE,  /* one statement, rows discarded: changes, last_insert_id */
    JR_DB_QUERY,    /* one statement, every row */
    JR_DB_FIRST,    /* one statement, the first row only */
    JR_DB_SCRIPT,   /* several statements, no parameters, no rows */
    JR_DB_END,      /* no statement: only the end steps (job->end_member, job->end_txn) */
    JR_DB_CLOSE     /* internal: the last job of a connection */
} jr_db_kind;

/* Steps run before the statement, in this order (bits of job->pre). */
enum {
    /* Refuse a statement that would write (sqlite3_stmt_readonly() is
     * false): nothing runs, no BEGIN either, and job->needs_writer is set
     * (rc stays 0). For reader connections. */
    JR_DB_PRE_READONLY = 1,
    /* BEGIN (deferred) when no transaction is open. */
    JR_DB_PRE_BEGIN = 2,
    /* BEGIN IMMEDIATE when no transaction is open (it may wait up to
     * busy_timeout for another process's write lock). */
    JR_DB_PRE_BEGIN_IMMEDIATE = 4,
    /* SAVEPOINT jr_tx: a member of a group commit starts. */
    JR_DB_PRE_SAVEPOINT = 8,
    /* The statement must run inside a transaction; outside one it fails
     * with code "aborted" (SQLite rolled the transaction back after an
     * earlier error, and running on would commit it on its own). */
    JR_DB_PRE_IN_TXN = 16
};

/* How a group member ends (job->end_member, kind END). */
typedef enum {
    JR_DB_MEMBER_NONE = 0,
    /* RELEASE jr_tx, unless deferred foreign key constraints are unresolved
     * (sqlite3_db_status(SQLITE_DBSTATUS_DEFERRED_FKS)): then it is rolled
     * back instead and fails with code "constraint". */
    JR_DB_MEMBER_RELEASE,
    JR_DB_MEMBER_ROLLBACK /* ROLLBACK TO jr_tx; RELEASE jr_tx */
} jr_db_member_end;

/* How the transaction ends, after the member step (job->end_txn, kind END).
 * Its result is in txn_rc / txn_err, apart from the member's. */
typedef enum { JR_DB_TXN_KEEP = 0, JR_DB_TXN_COMMIT, JR_DB_TXN_ROLLBACK } jr_db_txn_end;

typedef enum { JR_DB_NULL = 0, JR_DB_INTEGER, JR_DB_REAL, JR_DB_TEXT, JR_DB_BLOB } jr_db_type;

/* A parameter or a result cell. Text and blob bytes live in the job's
 * buffers (the request buffer for parameters, the result buffer for cells)
 * and are addressed by offset, because those buffers grow by realloc. */
typedef struct {
    jr_db_type type;
    union {
        int64_t i;
        double d;
        struct {
            size_t off, len;
        } s;
    } u;
} jr_db_value;

typedef struct {
    size_t name_off, name_len; /* name_len 0: positional */
    jr_db_value v;
} jr_db_param;

typedef void (*jr_db_cb)(jr_db_job *job);

/* Transaction states, as sqlite3_txn_state() reports them. */
enum { JR_DB_TXN_NONE = 0, JR_DB_TXN_READ = 1, JR_DB_TXN_WRITE = 2 };

/* Our own result code for a job that was stopped before SQLite ran it
 * (JR_DB_PRE_IN_TXN outside a transaction). jr_db_code() names it. */
#define JR_DB_ABORTED 1000

struct jr_db_job {
    /* ---- request: set on the loop thread before jr_db_submit ---- */
    jr_db_kind kind;
    int pre;                /* JR_DB_PRE_* bits */
    jr_db_member_end end_member;
    jr_db_txn_end end_txn;
    jr_buf req;          /* SQL text (NUL-terminated), parameter names and bytes */
    size_t sql_off, sql_len;
    int has_sql;
    jr_db_param *params;
    size_t nparams, params_cap;
    int named;              /* at least one parameter has a name */
    jr_db_cb cb;            /* called on the loop thread when done */
    void *data;

    /* ---- results: valid in cb ---- */
    int rc;                 /* 0, or SQLite's primary result code (or JR_DB_ABORTED) */
    char err[256];          /* message when rc != 0 */
    int txn_rc;             /* END: the COMMIT / ROLLBACK of end_txn */
    char txn_err[256];
    int began;              /* a PRE_BEGIN* step began a transaction */
    int savepoint;          /* the PRE_SAVEPOINT step opened the member's savepoint */
    int needs_writer;       /* PRE_READONLY refused a statement that writes */
    int64_t changes;        /* EXECUTE: rows changed by the statement itself */
    int64_t last_insert_id; /* EXECUTE: sqlite3_last_insert_rowid() */
    size_t ncols, nrows;    /* QUERY / FIRST */
    jr_db_value *cols;      /* ncols column names (TEXT) */
    size_t cols_cap;
    jr_db_value *cells;     /* nrows * ncols values, row-major */
    size_t cells_cap;
    jr_buf res;          /* bytes of column names and TEXT/BLOB cells */
    /* The statement's work, from sqlite3_stmt_status(): sort operations,
     * virtual machine steps, and steps of full table scans. */
    int64_t sorts, vm_steps, fullscan_steps;
    int autocommit;         /* after the job: 1 = no transaction open */
    int txn_state;          /* after the job: JR_DB_TXN_* */
    int ran_inline;         /* finished on the loop thread (jr_db_run_read) */

    jr_db_job *next;        /* internal: queue link */
    uint64_t seq;           /* internal: submission number */
};

typedef struct {
    const char *path;            /* file name, ":memory:" or a "file:" URI */
    int readonly;                /* 1: a reader (PRAGMA query_only); journal/sync/fk untouched */
    int busy_timeout_ms;         /* how long to wait for another process's lock */
    const char *journal_mode;    /* NULL: leave it; else DELETE|TRUNCATE|PERSIST|MEMORY|WAL|OFF */
    const char *synchronous;     /* NULL: leave it; else OFF|NORMAL|FULL|EXTRA */
    int foreign_keys;            /* -1: leave it, 0: off, 1: on */
    int statement_cache;         /* prepared statements kept (LRU by SQL text); 0: none */
    const char *const *pragmas;  /* extra "name=value" pragmas, applied after the above */
    size_t npragmas;
    int spin_us;                 /* after a job that leaves a write transaction open, how long
                                    the thread looks for the next one before it sleeps (0: never) */
    int read_deadline_us;        /* jr_db_run_read: how long a statement may run on the loop
                                    thread (0: never there) */
} jr_db_options;

/* Counters of one connection. Written by its thread: read them only while
 * no job of the connection is in flight (in a job callback, or when idle). */
typedef struct {
    uint64_t jobs;             /* jobs run by the thread */
    uint64_t cache_hits, cache_misses, cache_evictions;
    size_t cache_size;         /* statements in the cache now */
    uint64_t busy_waits;       /* times the busy handler waited for another process */
    uint64_t inline_runs;      /* statements (and read ends) run on the loop thread */
    uint64_t inline_stopped;   /* ... stopped at the deadline and run again on the thread */
    uint64_t inline_overruns;  /* ... that ran past the deadline unstopped (one long instruction, or preempted) */
    uint64_t checkpoints;      /* WAL checkpoints run after a commit */
} jr_db_stats;

/* ---- jobs (db_job.c) ---- */

void jr_db_job_init(jr_db_job *job);
/* Forget the request and the results, keep the buffers (no malloc in the
 * steady state); trims buffers that grew past 1 MiB. cb/data are kept. */
void jr_db_job_reset(jr_db_job *job);
void jr_db_job_free(jr_db_job *job);

/* The statement text; len < 0: strlen. Returns 0 or -1 (out of memory). */
int jr_db_job_set_sql(jr_db_job *job, const char *sql, long len);

/* Add a parameter. name == NULL (or nlen 0): the next positional one; else
 * a named one, without its ':' '@' '$' prefix (a prefix is stripped).
 * Text and blobs are copied. Return 0 or -1 (out of memory). */
int jr_db_param_null(jr_db_job *job, const char *name, size_t nlen);
int jr_db_param_int(jr_db_job *job, const char *name, size_t nlen, int64_t v);
int jr_db_param_real(jr_db_job *job, const char *name, size_t nlen, double v);
int jr_db_param_text(jr_db_job *job, const char *name, size_t nlen, const char *s, size_t len);
int jr_db_param_blob(jr_db_job *job, const char *name, size_t nlen, const void *p, size_t len);

/* Results. */
const char *jr_db_col_name(const jr_db_job *job, size_t col, size_t *len);
const jr_db_value *jr_db_cell(const jr_db_job *job, size_t row, size_t col);
/* The bytes of a TEXT/BLOB result cell (never NULL; "" when empty). */
const char *jr_db_bytes(const jr_db_job *job, const jr_db_value *v);

/* The stable lowercase name of a result code: "busy", "locked",
 * "constraint", "readonly", "corrupt", "full", "misuse", "range",
 * "interrupted", "aborted", else "error"; NULL for 0. */
const char *jr_db_code(int rc);

/* ---- connections (db_conn.c) ---- */

/* Start a connection: its thread opens the database and applies the
 * options; open_job (kind set to JR_DB_OPEN here) comes back to its
 * callback with rc == 0 or the error ("cannot open database PATH: ...").
 * Returns NULL when the thread cannot be started (or out of memory), and
 * then open_job is not submitted. Whatever the open's outcome, end the
 * connection with jr_db_close. */
jr_db *jr_db_open(uv_loop_t *loop, const jr_db_options *opts, jr_db_job *open_job, jr_db_cb cb);

/* Queue a job; its cb runs on the loop thread when it is done. A job must
 * not be submitted again before its callback. Returns 0, or -1 when the
 * connection is closing. */
int jr_db_submit(jr_db *db, jr_db_job *job);

/* A reader's statement (QUERY, FIRST, EXECUTE of a read-only statement,
 * with PRE_READONLY / PRE_BEGIN), or the end of a read transaction (END
 * with end_txn and no member step): run it right here on the loop thread
 * when the connection is idle, else submit it. Returns 1 when it ran here
 * (results in job; no callback), 0 when it was submitted (its callback
 * comes), -1 when the connection is closing.
 *
 * Here a statement gets read_deadline_us: SQLite's progress handler
 * (polled every JR_DB_PROGRESS_OPS virtual machine instructions) stops it
 * at the deadline, which a read-only statement survives with its
 * transaction, and it runs again on the connection's thread. The rule for
 * where it runs: on the loop when its previous run, wherever that was,
 * took no longer than the deadline (remembered per cached statement). So a
 * statement stopped here, or one that ran past the deadline inside a
 * single instruction (SQLite does not poll the handler there: counting a
 * whole table with count(*)), runs on the thread next time, and comes
 * back once a run there is quick again. Ending a read transaction releases
 * a shared lock and reads nothing: it always runs here. */
int jr_db_run_read(jr_db *db, jr_db_job *job);

/* Jobs submitted and not yet called back. */
size_t jr_db_inflight(const jr_db *db);

/* Call back the jobs that finished since the last time, now, instead of on
 * the loop's next turn (their uv_async_send still comes, and then finds
 * nothing). Loop thread only; not while closing. Returns 1 when there were
 * any. Why: a write transaction holds the writer across its statements'
 * round trips, so the next one cannot begin before it ends; delivered once
 * per turn, a loop busy with other requests (32 connections reading:
 * ~2.5 ms a turn) lets one write transaction through per turn. The binding
 * calls this after every task (bindings/l_db.c). */
int jr_db_deliver(jr_db *db);

/* Interrupt every job submitted so far and not finished: the statement
 * running now stops, queued ones fail at once, all with SQLITE_INTERRUPT
 * (code "interrupted"); later jobs are not affected. A wait for another
 * process's lock ends too (with "busy"). Loop thread only. Interrupting a
 * write rolls back its whole transaction (SQLite's rule). */
void jr_db_interrupt(jr_db *db);

void jr_db_get_stats(const jr_db *db, jr_db_stats *out);

/* What identifies the content a connection sees now: SQLite's data version
 * of the main database (SQLITE_FCNTL_DATA_VERSION: it changes whenever a
 * commit changed the content, by this connection or another, as seen at
 * the start of the current read transaction) and the rows this connection
 * changed so far (sqlite3_total_changes64: its own writes inside an open
 * transaction). Equal pairs of one connection mean the same content. The
 * connection must be idle. Returns 0, or -1. */
int jr_db_data_version(jr_db *db, uint32_t *version, int64_t *changes);

/* Close after the queued jobs: the thread finalizes the statements, closes
 * the database (rolling back an open transaction) and exits. Then cb(data)
 * runs on the loop thread and db is freed. cb may be NULL. Closing twice is
 * a no-op (the first cb wins). */
void jr_db_close(jr_db *db, void (*cb)(void *data), void *data);

#endif
