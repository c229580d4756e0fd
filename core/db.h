/* db.h - SQLite connections that run their statements off the loop thread.
 *
 * A jr_db is one SQLite connection owned by one dedicated worker thread. The
 * loop thread fills a jr_db_job (kind, SQL, parameters), submits it, and
 * gets the job back in its callback, on the loop thread, with the results
 * collected in C memory: no callback ever runs on the worker, and nothing on
 * the worker touches the caller's data structures except the job.
 *
 *     jr_db_job job;  jr_db_job_init(&job);
 *     jr_db *db = jr_db_open(loop, &opts, NULL, &job, on_open);  // job kind OPEN
 *     ... on_open: job.rc == 0 or job.err ...
 *     jr_db_job_reset(&job);
 *     job.kind = JR_DB_QUERY;
 *     jr_db_job_set_sql(&job, "SELECT * FROM t WHERE id = ?", -1);
 *     jr_db_param_int(&job, NULL, 0, 42);
 *     jr_db_submit(db, &job);          // on_done(&job) runs later on the loop
 *     ...
 *     jr_db_close(db, on_closed, data); // after the queued jobs; frees db
 *
 * Why a thread per connection and not uv_queue_work: the libuv pool is
 * process-wide, small (4 threads unless UV_THREADPOOL_SIZE says otherwise,
 * fixed at first use) and shared with file system and DNS work. A statement
 * can hold its thread for a long time (a slow query, or up to busy_timeout
 * waiting for another writer's lock): on the shared pool four of those would
 * stall every fs call and getaddrinfo of the process, and each other's
 * statements. A dedicated thread bounds the damage to its own connection,
 * keeps each connection on one thread (warm caches), and costs one mostly
 * idle thread per connection. The hop is the same either way: a condition
 * variable to the worker, a uv_async_t back to the loop.
 *
 * Jobs of one connection run in submission order, one at a time; their
 * callbacks come in the same order. A connection belongs to a jr_db_group
 * (one per pool): when a connection ends a write transaction it wakes the
 * group's connections that wait for the write lock at once, instead of
 * letting them sleep out SQLite's default 1..100 ms back-off. */
#ifndef JR_DB_H
#define JR_DB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct jr_db jr_db;
typedef struct jr_db_group jr_db_group;
typedef struct jr_db_job jr_db_job;

typedef enum {
    JR_DB_OPEN = 1,  /* open and configure (submitted by jr_db_open) */
    JR_DB_EXECUTE,   /* one statement, rows discarded: changes, last_insert_id */
    JR_DB_QUERY,     /* one statement, every row */
    JR_DB_FIRST,     /* one statement, the first row only */
    JR_DB_SCRIPT,    /* several statements, no parameters, no rows */
    JR_DB_COMMIT,
    JR_DB_ROLLBACK,
    JR_DB_CLOSE,     /* internal: the last job of a connection */
    JR_DB_CHECKPOINT /* internal: a WAL checkpoint owed by inline commits */
} jr_db_kind;

/* A BEGIN run by the worker just before the job's statement, so that
 * starting a transaction costs no hop of its own. */
typedef enum {
    JR_DB_NO_BEGIN = 0,
    JR_DB_BEGIN_DEFERRED,
    JR_DB_BEGIN_IMMEDIATE,
    JR_DB_BEGIN_EXCLUSIVE
} jr_db_begin;

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

typedef struct {
    char *data;
    size_t len, cap;
} jr_db_buf;

typedef void (*jr_db_cb)(jr_db_job *job);

/* Transaction states, as sqlite3_txn_state() reports them. */
enum { JR_DB_TXN_NONE = 0, JR_DB_TXN_READ = 1, JR_DB_TXN_WRITE = 2 };

struct jr_db_job {
    /* ---- request: set on the loop thread before jr_db_submit ---- */
    jr_db_kind kind;
    jr_db_begin begin;
    jr_db_buf req;          /* SQL text (NUL-terminated), parameter names and bytes */
    size_t sql_off, sql_len;
    int has_sql;
    jr_db_param *params;
    size_t nparams, params_cap;
    int named;              /* at least one parameter has a name */
    jr_db_cb cb;            /* called on the loop thread when done */
    void *data;

    /* ---- results: valid in cb ---- */
    int rc;                 /* 0, or SQLite's primary result code */
    char err[256];          /* message when rc != 0 */
    int64_t changes;        /* EXECUTE: rows changed by the statement itself */
    int64_t last_insert_id; /* EXECUTE: sqlite3_last_insert_rowid() */
    size_t ncols, nrows;    /* QUERY / FIRST */
    jr_db_value *cols;      /* ncols column names (TEXT) */
    size_t cols_cap;
    jr_db_value *cells;     /* nrows * ncols values, row-major */
    size_t cells_cap;
    jr_db_buf res;          /* bytes of column names and TEXT/BLOB cells */
    int autocommit;         /* after the job: 1 = no transaction open */
    int txn_state;          /* after the job: JR_DB_TXN_* */
    int ran_inline;         /* finished on the calling thread (jr_db_end_inline) */

    jr_db_job *next;        /* internal: queue link */
    uint64_t seq;           /* internal: submission number */
};

typedef struct {
    const char *path;            /* file name, ":memory:" or a "file:" URI */
    int busy_timeout_ms;         /* how long to wait for another writer's lock */
    const char *journal_mode;    /* NULL: leave it; else DELETE|TRUNCATE|PERSIST|MEMORY|WAL|OFF */
    const char *synchronous;     /* NULL: leave it; else OFF|NORMAL|FULL|EXTRA */
    int foreign_keys;            /* -1: leave it, 0: off, 1: on */
    int statement_cache;         /* prepared statements kept (LRU by SQL text); 0: none */
    const char *const *pragmas;  /* extra "name=value" pragmas, applied after the above */
    size_t npragmas;
    int spin_us;                 /* after a job, how long the worker looks for the next one
                                    before it sleeps (-1: JR_DB_SPIN_US_DEFAULT, 0: never) */
    int inline_us;               /* jr_db_run: how long a query may run on the calling thread
                                    before it is sent to the worker (0: nothing runs there) */
} jr_db_options;

/* Measured on 2 cores: SELECT-by-key round trips from one task go from ~12k
 * to ~40k per second, and 64 concurrent tasks are not slowed. */
#define JR_DB_SPIN_US_DEFAULT 50

/* Counters of one connection. Written by its worker: read them only while
 * no job of the connection is in flight (in a job callback, or when idle). */
typedef struct {
    uint64_t jobs;         /* jobs run by the worker */
    uint64_t inline_ends;  /* COMMIT/ROLLBACK run by jr_db_end_inline */
    uint64_t cache_hits, cache_misses, cache_evictions;
    size_t cache_size;     /* statements in the cache now */
    uint64_t busy_waits;   /* times the busy handler waited */
    uint64_t writer_waits; /* times the worker waited for the group's write token */
    uint64_t inline_runs;  /* statements run by jr_db_run on the calling thread */
    uint64_t inline_fallbacks; /* ... that ran out of time or met a lock and went to the worker */
} jr_db_stats;

/* ---- jobs ---- */

void jr_db_job_init(jr_db_job *job);
/* Forget the request and the results, keep the buffers (no malloc in the
 * steady state); trims buffers that grew past 1 MiB. kind/begin/cb/data
 * are kept too. */
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
 * "interrupted", else "error"; NULL for 0. */
const char *jr_db_code(int rc);

/* ---- groups ---- */

/* One group per pool. Each connection holds a reference; the group is freed
 * with its last connection. */
jr_db_group *jr_db_group_new(void);

/* ---- connections ---- */

/* Start a connection: its thread opens the database and applies the
 * options; open_job (kind set to JR_DB_OPEN here) comes back to its
 * callback with rc == 0 or the error ("cannot open database PATH: ...").
 * group: NULL for a group of its own. Returns NULL when the thread cannot be
 * started (or out of memory), and then open_job is not submitted. Whatever
 * the open's outcome, end the connection with jr_db_close. */
jr_db *jr_db_open(uv_loop_t *loop, const jr_db_options *opts, jr_db_group *group,
                  jr_db_job *open_job, jr_db_cb cb);

/* The connection's group (to open more connections into it). */
jr_db_group *jr_db_get_group(jr_db *db);

/* Queue a job; its cb runs on the loop thread when it is done. A job must
 * not be submitted again before its callback. Returns 0, or -1 when the
 * connection is closing. */
int jr_db_submit(jr_db *db, jr_db_job *job);

/* Run a statement job (EXECUTE, QUERY, FIRST, with its BEGIN) right here
 * on the calling thread when that is safe and quick, else submit it.
 * Returns 1 when it ran here (results in job; no callback), 0 when it was
 * submitted (its callback comes), -1 when the connection is closing.
 *
 * Why: a statement takes microseconds, a round trip to the worker thread
 * costs tens of them on a VM (a futex wake, an eventfd write, a trip
 * through the loop), and a write transaction holds SQLite's one write lock
 * across all of that. Safe and quick means: the connection is idle, the
 * statement is in its cache (its first run is always on the worker, which
 * classifies it, and a run there was quick in CPU time: inline_us for a
 * query, the overrun limit below for a write), and it is either
 *   - a query (SELECT/WITH/VALUES, read-only): here it gets inline_us, and
 *     one that runs longer is interrupted (a read-only statement can be,
 *     and its transaction survives) and runs again on the worker; three
 *     such in a row and it stays on the worker; or
 *   - a point write: INSERT of VALUES, or UPDATE/DELETE whose plan finds
 *     its rows by equality on the rowid, on every column of a WITHOUT
 *     ROWID primary key, or on every column of a UNIQUE index whose
 *     columns are all NOT NULL; whose program runs no trigger, no foreign
 *     key action or child lookup, no virtual table, no loop over a table
 *     (a table copy has no plan line), and writes to the main database
 *     only; with parameters under 64 KiB; on a database whose
 *     commits need no fsync (WAL, synchronous NORMAL or OFF).
 * A write cannot be interrupted without losing its whole transaction, and
 * a query cannot be inside one long instruction (a count(*) of a big
 * table, a huge value): a statement that used more than 4 x inline_us
 * (at least 500 us) of CPU here three times in a row, or ten times that
 * once, is logged and runs on the worker from then on (remembered by SQL
 * hash, across cache evictions). A statement SQLite re-prepares while it
 * runs here (the schema or a setting changed) is stopped before it does
 * anything (an authorizer denies the new program) and runs on the worker,
 * which classifies it again.
 * Locks are never waited for here: a statement that meets another
 * process's lock goes to the worker, whose busy handler waits; one that
 * needs the group's write token while another member holds it (or others
 * wait for it) waits for it parked, in turn (no thread involved; then this
 * returns 0 and the callback comes when it ran), failing with "database is
 * locked" after busy_timeout. Checkpoints owed by commits made here run on
 * an idle member's worker. Like jr_db_submit, one job of a connection at a
 * time: the next only after this one's callback. */
int jr_db_run(jr_db *db, jr_db_job *job);

/* Jobs submitted and not yet called back. */
size_t jr_db_inflight(const jr_db *db);

/* End a transaction that has not written (COMMIT or ROLLBACK in job->kind)
 * right here on the calling thread, when that cannot block: the connection
 * must be idle (no job in flight) and its transaction hold no write lock.
 * Ending a read transaction only releases a shared lock (WAL: a read mark),
 * with no I/O to wait for, so a read-only BEGIN..COMMIT costs one hop in
 * all. Returns 1 when done (results in job; no callback), 0 when the job
 * must be submitted instead. */
int jr_db_end_inline(jr_db *db, jr_db_job *job);

/* Interrupt every job submitted so far and not finished: the statement
 * running now stops, queued ones fail at once, all with SQLITE_INTERRUPT
 * (code "interrupted"); later jobs are not affected. A wait for another
 * writer's lock ends too (with "busy"). Loop thread only. */
void jr_db_interrupt(jr_db *db);

void jr_db_get_stats(const jr_db *db, jr_db_stats *out);

/* Close after the queued jobs: the worker finalizes the statements, closes
 * the database (rolling back an open transaction) and exits. Then cb(data)
 * runs on the loop thread and db is freed. cb may be NULL. Closing twice is
 * a no-op (the first cb wins). */
void jr_db_close(jr_db *db, void (*cb)(void *data), void *data);

#endif
