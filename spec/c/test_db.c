/* test_db.c - unit tests for the SQLite room (core/db_*.c), driven through a
 * real uv loop: each job is submitted and the loop run until its callback
 * fired. */
#include "db.h"

#include <sqlite3.h>
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static uv_loop_t loop;
static char dir[64];

static void on_job(jr_db_job *j) { (*(int *)j->data)++; }

static void wait_flag(int *flag, int want)
{
    while (*flag < want) uv_run(&loop, UV_RUN_ONCE);
}

static const char *path_in_dir(const char *name)
{
    static char buf[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static jr_db_options default_opts(const char *path)
{
    jr_db_options o;
    memset(&o, 0, sizeof o);
    o.path = path;
    o.busy_timeout_ms = 5000;
    o.journal_mode = "WAL";
    o.synchronous = "NORMAL";
    o.foreign_keys = 1;
    o.statement_cache = 16;
    return o;
}

/* Open and wait; returns db (open_rc gets the job's rc). */
static jr_db *open_with(const jr_db_options *o, int *open_rc, char *err, size_t errlen)
{
    jr_db_job job;
    jr_db_job_init(&job);
    int done = 0;
    job.data = &done;
    jr_db *db = jr_db_open(&loop, o, &job, on_job);
    if (!db) {
        *open_rc = -1;
        return NULL;
    }
    wait_flag(&done, 1);
    *open_rc = job.rc;
    if (err) snprintf(err, errlen, "%s", job.err);
    jr_db_job_free(&job);
    return db;
}

static jr_db *open_db(const char *path)
{
    jr_db_options o = default_opts(path);
    int rc;
    char err[256];
    jr_db *db = open_with(&o, &rc, err, sizeof err);
    CHECK(db != NULL);
    if (rc != 0) fprintf(stderr, "  open %s: %s\n", path, err);
    CHECK_EQ_INT(rc, 0);
    return db;
}

static void on_closed(void *data) { (*(int *)data)++; }

static void close_db(jr_db *db)
{
    int closed = 0;
    jr_db_close(db, on_closed, &closed);
    wait_flag(&closed, 1);
}

/* Run kind/sql on db with job's parameters as already added; waits. */
static int run(jr_db *db, jr_db_job *j, jr_db_kind kind)
{
    int done = 0;
    j->kind = kind;
    j->cb = on_job;
    j->data = &done;
    if (jr_db_submit(db, j) != 0) return -1;
    wait_flag(&done, 1);
    return j->rc;
}

static int run_sql(jr_db *db, jr_db_job *j, jr_db_kind kind, const char *sql)
{
    jr_db_job_reset(j);
    CHECK(jr_db_job_set_sql(j, sql, -1) == 0);
    return run(db, j, kind);
}

/* The first cell of a one-row result, as text (integers printed). */
static const char *first_text(jr_db *db, const char *sql)
{
    static char out[320];
    jr_db_job j;
    jr_db_job_init(&j);
    out[0] = 0;
    if (run_sql(db, &j, JR_DB_FIRST, sql) != 0) {
        snprintf(out, sizeof out, "ERR %s", j.err);
    } else if (j.nrows == 1 && j.ncols >= 1) {
        const jr_db_value *v = jr_db_cell(&j, 0, 0);
        if (v->type == JR_DB_INTEGER) snprintf(out, sizeof out, "%lld", (long long)v->u.i);
        else if (v->type == JR_DB_TEXT) snprintf(out, sizeof out, "%.*s", (int)v->u.s.len, jr_db_bytes(&j, v));
        else if (v->type == JR_DB_NULL) snprintf(out, sizeof out, "NULL");
        else if (v->type == JR_DB_REAL) snprintf(out, sizeof out, "%.17g", v->u.d);
        else snprintf(out, sizeof out, "BLOB(%zu)", v->u.s.len);
    } else {
        snprintf(out, sizeof out, "NOROW");
    }
    jr_db_job_free(&j);
    return out;
}

TEST(open_applies_pragmas)
{
    jr_db *db = open_db(path_in_dir("pragmas.db"));
    CHECK_EQ_STR(first_text(db, "PRAGMA journal_mode"), "wal");
    CHECK_EQ_STR(first_text(db, "PRAGMA synchronous"), "1"); /* NORMAL */
    CHECK_EQ_STR(first_text(db, "PRAGMA foreign_keys"), "1");
    close_db(db);

    /* Other values, and extra pragmas. */
    jr_db_options o = default_opts(path_in_dir("pragmas2.db"));
    o.journal_mode = "DELETE";
    o.synchronous = "FULL";
    o.foreign_keys = 0;
    const char *extra[] = {"cache_size=-4000", "user_version=7"};
    o.pragmas = extra;
    o.npragmas = 2;
    int rc;
    db = open_with(&o, &rc, NULL, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(first_text(db, "PRAGMA journal_mode"), "delete");
    CHECK_EQ_STR(first_text(db, "PRAGMA synchronous"), "2");
    CHECK_EQ_STR(first_text(db, "PRAGMA foreign_keys"), "0");
    CHECK_EQ_STR(first_text(db, "PRAGMA cache_size"), "-4000");
    CHECK_EQ_STR(first_text(db, "PRAGMA user_version"), "7");
    /* Our busy handler replaces SQLite's, which is why PRAGMA busy_timeout
     * reads 0; the timeout itself is checked in busy_timeout_* below. */
    CHECK_EQ_STR(first_text(db, "PRAGMA busy_timeout"), "0");
    close_db(db);
}

TEST(open_failures)
{
    char err[256];
    int rc;
    jr_db_options o = default_opts("/nonexistent-dir/x.db");
    jr_db *db = open_with(&o, &rc, err, sizeof err);
    CHECK(db != NULL);
    CHECK(rc != 0);
    CHECK_EQ_STR(err, "cannot open database /nonexistent-dir/x.db: unable to open database file");
    CHECK_EQ_STR(jr_db_code(rc), "error");
    /* Jobs on a connection that failed to open fail, they do not crash. */
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK(run_sql(db, &j, JR_DB_QUERY, "SELECT 1") != 0);
    CHECK_EQ_STR(j.err, "the database is not open");
    close_db(db);

    /* Not a database. */
    const char *bad = path_in_dir("notadb.db");
    FILE *f = fopen(bad, "w");
    CHECK(f != NULL);
    for (int i = 0; i < 200; i++) fputs("this is not a database file at all. ", f);
    fclose(f);
    o = default_opts(bad);
    db = open_with(&o, &rc, err, sizeof err);
    CHECK(rc != 0);
    CHECK_EQ_STR(jr_db_code(rc), "corrupt");
    CHECK(strstr(err, "file is not a database") != NULL);
    close_db(db);

    /* Invalid option values never reach SQL. */
    o = default_opts(path_in_dir("opts.db"));
    o.journal_mode = "WAL; DROP TABLE x";
    db = open_with(&o, &rc, err, sizeof err);
    CHECK_EQ_STR(jr_db_code(rc), "misuse");
    CHECK(strstr(err, "invalid journal_mode") != NULL);
    close_db(db);
    o = default_opts(path_in_dir("opts.db"));
    const char *evil[] = {"user_version=1; DROP TABLE x"};
    o.pragmas = evil;
    o.npragmas = 1;
    db = open_with(&o, &rc, err, sizeof err);
    CHECK_EQ_STR(jr_db_code(rc), "misuse");
    close_db(db);
    jr_db_job_free(&j);
}

TEST(statement_cache_hits_and_eviction)
{
    jr_db_options o = default_opts(":memory:");
    o.statement_cache = 2;
    int rc;
    jr_db *db = open_with(&o, &rc, NULL, 0);
    CHECK_EQ_INT(rc, 0);
    jr_db_job j;
    jr_db_job_init(&j);
    jr_db_stats s;
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "SELECT 1"), 0);   /* miss */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "SELECT 2"), 0);   /* miss */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "SELECT 1"), 0);   /* hit; 2 is now LRU */
    jr_db_get_stats(db, &s);
    CHECK_EQ_INT(s.cache_hits, 1);
    CHECK_EQ_INT(s.cache_misses, 2);
    CHECK_EQ_INT(s.cache_evictions, 0);
    CHECK_EQ_INT(s.cache_size, 2);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "SELECT 3"), 0);   /* miss, evicts SELECT 2 */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "SELECT 1"), 0);   /* still cached */
    jr_db_get_stats(db, &s);
    CHECK_EQ_INT(s.cache_hits, 2);
    CHECK_EQ_INT(s.cache_misses, 3);
    CHECK_EQ_INT(s.cache_evictions, 1);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "SELECT 2"), 0);   /* miss again: it was evicted */
    jr_db_get_stats(db, &s);
    CHECK_EQ_INT(s.cache_misses, 4);
    CHECK_EQ_INT(s.cache_evictions, 2);
    CHECK_EQ_INT(s.cache_size, 2);
    /* A cached statement still sees the right parameters each time. */
    for (int i = 0; i < 5; i++) {
        jr_db_job_reset(&j);
        jr_db_job_set_sql(&j, "SELECT ? * 2", -1);
        jr_db_param_int(&j, NULL, 0, i);
        CHECK_EQ_INT(run(db, &j, JR_DB_FIRST), 0);
        CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, i * 2);
    }
    /* The cache follows schema changes (SQLite re-prepares). */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE t(a)"), 0);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_QUERY, "SELECT * FROM t"), 0);
    CHECK_EQ_INT(j.ncols, 1);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "ALTER TABLE t ADD COLUMN b"), 0);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_QUERY, "SELECT * FROM t"), 0);
    CHECK_EQ_INT(j.ncols, 2);
    jr_db_job_free(&j);
    close_db(db);

    /* statement_cache = 0: nothing kept, everything still works. */
    o.statement_cache = 0;
    db = open_with(&o, &rc, NULL, 0);
    CHECK_EQ_STR(first_text(db, "SELECT 'x'"), "x");
    CHECK_EQ_STR(first_text(db, "SELECT 'x'"), "x");
    jr_db_get_stats(db, &s);
    CHECK_EQ_INT(s.cache_size, 0);
    CHECK_EQ_INT(s.cache_hits, 0);
    close_db(db);
}

TEST(params_of_every_type)
{
    jr_db *db = open_db(":memory:");
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE t(i, r, s, b, n)"), 0);
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t VALUES (?, ?, ?, ?, ?)", -1);
    jr_db_param_int(&j, NULL, 0, 42);
    jr_db_param_real(&j, NULL, 0, 2.5);
    jr_db_param_text(&j, NULL, 0, "héllo", strlen("héllo"));
    jr_db_param_blob(&j, NULL, 0, "a\0b\0", 4);
    jr_db_param_null(&j, NULL, 0);
    CHECK_EQ_INT(run(db, &j, JR_DB_EXECUTE), 0);
    CHECK_EQ_INT(j.changes, 1);
    CHECK_EQ_INT(j.last_insert_id, 1);

    /* Named, with each prefix; keys given with or without it. */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t VALUES (:i, @r, $s, :b, :n)", -1);
    jr_db_param_int(&j, "i", 1, -7);
    jr_db_param_real(&j, "r", 1, -0.125);
    jr_db_param_text(&j, "$s", 2, "", 0);
    jr_db_param_blob(&j, ":b", 2, "", 0);
    jr_db_param_null(&j, "n", 1);
    jr_db_param_int(&j, "unused", 6, 1); /* extra names are ignored */
    CHECK_EQ_INT(run(db, &j, JR_DB_EXECUTE), 0);
    CHECK_EQ_INT(j.last_insert_id, 2);

    CHECK_EQ_INT(run_sql(db, &j, JR_DB_QUERY,
                         "SELECT i, r, s, b, n, typeof(i), typeof(r), typeof(s), typeof(b), typeof(n) FROM t ORDER BY rowid"),
                 0);
    CHECK_EQ_INT(j.nrows, 2);
    CHECK_EQ_INT(j.ncols, 10);
    size_t nl;
    const char *name = jr_db_col_name(&j, 0, &nl);
    CHECK_EQ_MEM(name, nl, "i");
    name = jr_db_col_name(&j, 5, &nl);
    CHECK_EQ_MEM(name, nl, "typeof(i)");
    const jr_db_value *v = jr_db_cell(&j, 0, 0);
    CHECK_EQ_INT(v->type, JR_DB_INTEGER);
    CHECK_EQ_INT(v->u.i, 42);
    v = jr_db_cell(&j, 0, 1);
    CHECK_EQ_INT(v->type, JR_DB_REAL);
    CHECK(v->u.d == 2.5);
    v = jr_db_cell(&j, 0, 2);
    CHECK_EQ_INT(v->type, JR_DB_TEXT);
    CHECK_EQ_MEM(jr_db_bytes(&j, v), v->u.s.len, "héllo");
    v = jr_db_cell(&j, 0, 3);
    CHECK_EQ_INT(v->type, JR_DB_BLOB);
    CHECK_EQ_INT(v->u.s.len, 4);
    CHECK(memcmp(jr_db_bytes(&j, v), "a\0b\0", 4) == 0);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 4)->type, JR_DB_NULL);
    const char *types[] = {"integer", "real", "text", "blob", "null"};
    for (int c = 0; c < 5; c++) {
        v = jr_db_cell(&j, 0, 5 + (size_t)c);
        CHECK_EQ_MEM(jr_db_bytes(&j, v), v->u.s.len, types[c]);
        v = jr_db_cell(&j, 1, 5 + (size_t)c);
        CHECK_EQ_MEM(jr_db_bytes(&j, v), v->u.s.len, types[c]);
    }
    CHECK_EQ_INT(jr_db_cell(&j, 1, 0)->u.i, -7);
    CHECK(jr_db_cell(&j, 1, 1)->u.d == -0.125);
    CHECK_EQ_INT(jr_db_cell(&j, 1, 2)->u.s.len, 0);
    CHECK_EQ_INT(jr_db_cell(&j, 1, 3)->type, JR_DB_BLOB); /* empty blob, not NULL */
    CHECK_EQ_INT(jr_db_cell(&j, 1, 3)->u.s.len, 0);

    /* ?NNN: numbered positional parameters. */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "SELECT ?2 || ?1", -1);
    jr_db_param_text(&j, NULL, 0, "a", 1);
    jr_db_param_text(&j, NULL, 0, "b", 1);
    CHECK_EQ_INT(run(db, &j, JR_DB_FIRST), 0);
    v = jr_db_cell(&j, 0, 0);
    CHECK_EQ_MEM(jr_db_bytes(&j, v), v->u.s.len, "ba");

    /* A named parameter used twice is bound once. */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "SELECT :x + :x", -1);
    jr_db_param_int(&j, "x", 1, 21);
    CHECK_EQ_INT(run(db, &j, JR_DB_FIRST), 0);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 42);
    jr_db_job_free(&j);
    close_db(db);
}

TEST(int64_edges_and_null)
{
    jr_db *db = open_db(":memory:");
    jr_db_job j;
    jr_db_job_init(&j);
    const int64_t vals[] = {(int64_t)9007199254740993LL /* 2^53+1 */, INT64_MIN, INT64_MAX, 0, -1,
                            (int64_t)9007199254740992LL};
    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
        jr_db_job_reset(&j);
        jr_db_job_set_sql(&j, "SELECT ?, typeof(?1), CAST(?1 AS TEXT)", -1);
        jr_db_param_int(&j, NULL, 0, vals[k]);
        CHECK_EQ_INT(run(db, &j, JR_DB_FIRST), 0);
        const jr_db_value *v = jr_db_cell(&j, 0, 0);
        CHECK_EQ_INT(v->type, JR_DB_INTEGER);
        CHECK(v->u.i == vals[k]);
        v = jr_db_cell(&j, 0, 1);
        CHECK_EQ_MEM(jr_db_bytes(&j, v), v->u.s.len, "integer");
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)vals[k]);
        v = jr_db_cell(&j, 0, 2);
        CHECK_EQ_MEM(jr_db_bytes(&j, v), v->u.s.len, want);
    }
    CHECK_EQ_STR(first_text(db, "SELECT 9223372036854775807"), "9223372036854775807");
    CHECK_EQ_STR(first_text(db, "SELECT -9223372036854775808"), "-9223372036854775808");
    CHECK_EQ_STR(first_text(db, "SELECT NULL"), "NULL");
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "SELECT ? IS NULL", -1);
    jr_db_param_null(&j, NULL, 0);
    CHECK_EQ_INT(run(db, &j, JR_DB_FIRST), 0);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 1);
    jr_db_job_free(&j);
    close_db(db);
}

TEST(result_shapes)
{
    jr_db *db = open_db(":memory:");
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"), 0);
    CHECK_EQ_INT(j.changes, 0);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE,
                         "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) "
                         "INSERT INTO t(v) SELECT 'row ' || x FROM c"),
                 0);
    CHECK_EQ_INT(j.changes, 10000);
    CHECK_EQ_INT(j.last_insert_id, 10000);
    /* DDL after DML does not report the DML's count again. */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE u(x)"), 0);
    CHECK_EQ_INT(j.changes, 0);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "UPDATE t SET v = v WHERE id <= 3"), 0);
    CHECK_EQ_INT(j.changes, 3);

    CHECK_EQ_INT(run_sql(db, &j, JR_DB_QUERY, "SELECT id, v FROM t ORDER BY id"), 0);
    CHECK_EQ_INT(j.nrows, 10000);
    const jr_db_value *v = jr_db_cell(&j, 9999, 1);
    CHECK_EQ_MEM(jr_db_bytes(&j, v), v->u.s.len, "row 10000");
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "SELECT id FROM t ORDER BY id DESC"), 0);
    CHECK_EQ_INT(j.nrows, 1);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 10000);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_QUERY, "SELECT id, v FROM t WHERE id < 0"), 0);
    CHECK_EQ_INT(j.nrows, 0);
    CHECK_EQ_INT(j.ncols, 2); /* columns known even without rows */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "SELECT id FROM t WHERE id < 0"), 0);
    CHECK_EQ_INT(j.nrows, 0);
    /* RETURNING through query. */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_QUERY, "INSERT INTO t(v) VALUES ('r') RETURNING id, v"), 0);
    CHECK_EQ_INT(j.nrows, 1);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 10001);
    /* Blank or comment-only SQL runs nothing and succeeds. */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_QUERY, "  -- nothing\n"), 0);
    CHECK_EQ_INT(j.nrows, 0);
    /* A trailing semicolon or comment is fine. */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "SELECT 5; -- done"), 0);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 5);
    /* Scripts. */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_SCRIPT,
                         "CREATE TABLE s(a); INSERT INTO s VALUES (1); INSERT INTO s VALUES (2);"),
                 0);
    CHECK_EQ_STR(first_text(db, "SELECT sum(a) FROM s"), "3");
    jr_db_job_free(&j);
    close_db(db);
}

TEST(errors_with_codes)
{
    jr_db *db = open_db(":memory:");
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK(run_sql(db, &j, JR_DB_QUERY, "SELEC 1") != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "error");
    CHECK_EQ_STR(j.err, "near \"SELEC\": syntax error");
    CHECK(run_sql(db, &j, JR_DB_QUERY, "SELECT * FROM missing") != 0);
    CHECK_EQ_STR(j.err, "no such table: missing");

    CHECK_EQ_INT(run_sql(db, &j, JR_DB_SCRIPT,
                         "CREATE TABLE p(id INTEGER PRIMARY KEY);"
                         "CREATE TABLE c(id INTEGER PRIMARY KEY, p INTEGER NOT NULL REFERENCES p(id), u UNIQUE);"
                         "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1, 'x');"),
                 0);
    CHECK(run_sql(db, &j, JR_DB_EXECUTE, "INSERT INTO c VALUES (2, 1, 'x')") != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "constraint");
    CHECK_EQ_STR(j.err, "UNIQUE constraint failed: c.u");
    CHECK(run_sql(db, &j, JR_DB_EXECUTE, "INSERT INTO c VALUES (3, 99, 'y')") != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "constraint");
    CHECK_EQ_STR(j.err, "FOREIGN KEY constraint failed");
    CHECK(run_sql(db, &j, JR_DB_EXECUTE, "INSERT INTO c(id, u) VALUES (4, 'z')") != 0);
    CHECK_EQ_STR(j.err, "NOT NULL constraint failed: c.p");

    /* Parameter mismatches. */
    CHECK(run_sql(db, &j, JR_DB_FIRST, "SELECT ?, ?") != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "range");
    CHECK_EQ_STR(j.err, "the statement takes 2 parameters, 0 given");
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "SELECT :a, :b", -1);
    jr_db_param_int(&j, "a", 1, 1);
    CHECK(run(db, &j, JR_DB_FIRST) != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "range");
    CHECK_EQ_STR(j.err, "missing named parameter :b");
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "SELECT ?", -1);
    jr_db_param_int(&j, "a", 1, 1);
    CHECK(run(db, &j, JR_DB_FIRST) != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "range");
    /* Two statements where one is expected. */
    CHECK(run_sql(db, &j, JR_DB_EXECUTE, "INSERT INTO p VALUES (5); INSERT INTO p VALUES (6)") != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "misuse");
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM p"), "1"); /* neither ran */
    /* A script stops at its first error; what ran before stays. */
    CHECK(run_sql(db, &j, JR_DB_SCRIPT, "INSERT INTO p VALUES (7); INSERT INTO p VALUES (7); INSERT INTO p VALUES (8)") != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "constraint");
    CHECK_EQ_STR(first_text(db, "SELECT group_concat(id) FROM p"), "1,7");
    /* The statement that failed is still usable from the cache. */
    CHECK_EQ_STR(first_text(db, "SELEC 1"), "ERR near \"SELEC\": syntax error");
    CHECK_EQ_STR(first_text(db, "SELECT * FROM missing"), "ERR no such table: missing");
    jr_db_job_free(&j);
    close_db(db);
}

TEST(reader_connections)
{
    const char *p = path_in_dir("reader.db");
    jr_db *w = open_db(p);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(w, &j, JR_DB_EXECUTE, "CREATE TABLE t(x)"), 0);
    CHECK_EQ_INT(run_sql(w, &j, JR_DB_EXECUTE, "INSERT INTO t VALUES (1)"), 0);
    jr_db_options o = default_opts(p);
    o.readonly = 1;
    o.synchronous = "FULL"; /* a reader leaves journal, sync and fk alone */
    int rc;
    jr_db *r = open_with(&o, &rc, NULL, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(first_text(r, "PRAGMA query_only"), "1");
    CHECK_EQ_STR(first_text(r, "PRAGMA synchronous"), "2"); /* SQLite's default, untouched */
    CHECK_EQ_STR(first_text(r, "SELECT count(*) FROM t"), "1");

    /* PRE_READONLY: a statement that writes is refused before anything
     * runs, BEGIN included (sqlite3_stmt_readonly), and not as an error. */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t VALUES (2)", -1);
    j.pre = JR_DB_PRE_READONLY | JR_DB_PRE_BEGIN;
    CHECK_EQ_INT(run(r, &j, JR_DB_EXECUTE), 0);
    CHECK_EQ_INT(j.needs_writer, 1);
    CHECK_EQ_INT(j.began, 0);
    CHECK_EQ_INT(j.autocommit, 1);
    /* Without it, query_only stops the write. */
    CHECK(run_sql(r, &j, JR_DB_EXECUTE, "INSERT INTO t VALUES (2)") != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "readonly");
    CHECK_EQ_STR(first_text(w, "SELECT count(*) FROM t"), "1");
    jr_db_job_free(&j);
    close_db(r);
    close_db(w);
}

TEST(transaction_steps)
{
    jr_db *db = open_db(path_in_dir("tx.db"));
    jr_db_job j;
    jr_db_job_init(&j);
    jr_db_stats s0, s1;
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)"), 0);
    CHECK_EQ_INT(j.autocommit, 1);

    /* BEGIN rides with the first statement: one job. */
    jr_db_get_stats(db, &s0);
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t(v) VALUES ('a')", -1);
    j.pre = JR_DB_PRE_BEGIN;
    CHECK_EQ_INT(run(db, &j, JR_DB_EXECUTE), 0);
    CHECK_EQ_INT(j.began, 1);
    CHECK_EQ_INT(j.autocommit, 0);
    CHECK_EQ_INT(j.txn_state, JR_DB_TXN_WRITE);
    jr_db_get_stats(db, &s1);
    CHECK_EQ_INT(s1.jobs - s0.jobs, 1);
    /* A BEGIN step inside a transaction does nothing. */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t(v) VALUES ('a2')", -1);
    j.pre = JR_DB_PRE_BEGIN | JR_DB_PRE_IN_TXN;
    CHECK_EQ_INT(run(db, &j, JR_DB_EXECUTE), 0);
    CHECK_EQ_INT(j.began, 0);
    jr_db_job_reset(&j);
    j.end_txn = JR_DB_TXN_ROLLBACK;
    CHECK_EQ_INT(run(db, &j, JR_DB_END), 0);
    CHECK_EQ_INT(j.txn_rc, 0);
    CHECK_EQ_INT(j.autocommit, 1);
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "0");

    /* Commit keeps it. */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t(v) VALUES ('b')", -1);
    j.pre = JR_DB_PRE_BEGIN_IMMEDIATE;
    CHECK_EQ_INT(run(db, &j, JR_DB_EXECUTE), 0);
    jr_db_job_reset(&j);
    j.end_txn = JR_DB_TXN_COMMIT;
    CHECK_EQ_INT(run(db, &j, JR_DB_END), 0);
    CHECK_EQ_INT(j.txn_rc, 0);
    CHECK_EQ_INT(j.autocommit, 1);
    CHECK_EQ_STR(first_text(db, "SELECT v FROM t"), "b");

    /* Committing with no transaction open: "aborted" (nothing committed). */
    jr_db_job_reset(&j);
    j.end_txn = JR_DB_TXN_COMMIT;
    CHECK_EQ_INT(run(db, &j, JR_DB_END), 0);
    CHECK_EQ_STR(jr_db_code(j.txn_rc), "aborted");
    /* A statement that must run in a transaction refuses to run outside one. */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t(v) VALUES ('c')", -1);
    j.pre = JR_DB_PRE_IN_TXN;
    CHECK(run(db, &j, JR_DB_EXECUTE) != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "aborted");
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "1");

    /* Closing with an open write transaction rolls it back. */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "DELETE FROM t", -1);
    j.pre = JR_DB_PRE_BEGIN;
    CHECK_EQ_INT(run(db, &j, JR_DB_EXECUTE), 0);
    jr_db_job_free(&j);
    close_db(db);
    db = open_db(path_in_dir("tx.db"));
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "1");
    close_db(db);
}

/* Group members on one connection: statement with its steps, then END. */
static int member_stmt(jr_db *db, jr_db_job *j, const char *sql, int pre)
{
    jr_db_job_reset(j);
    jr_db_job_set_sql(j, sql, -1);
    j->pre = pre;
    return run(db, j, JR_DB_EXECUTE);
}

static int member_end(jr_db *db, jr_db_job *j, jr_db_member_end m, jr_db_txn_end t)
{
    jr_db_job_reset(j);
    j->end_member = m;
    j->end_txn = t;
    return run(db, j, JR_DB_END);
}

#define FIRST_MEMBER (JR_DB_PRE_BEGIN_IMMEDIATE | JR_DB_PRE_SAVEPOINT)
#define NEXT_MEMBER (JR_DB_PRE_BEGIN_IMMEDIATE | JR_DB_PRE_SAVEPOINT)
#define IN_MEMBER JR_DB_PRE_IN_TXN

TEST(group_members_end_on_their_own)
{
    jr_db *db = open_db(path_in_dir("group.db"));
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_SCRIPT,
                         "CREATE TABLE p(id INTEGER PRIMARY KEY);"
                         "CREATE TABLE t(x INTEGER, p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);"
                         "INSERT INTO p VALUES (1);"),
                 0);
    /* m1 commits its row, with a savepoint of its own inside. */
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (1, 1)", FIRST_MEMBER), 0);
    CHECK_EQ_INT(j.began, 1);
    CHECK_EQ_INT(member_stmt(db, &j, "SAVEPOINT mine", IN_MEMBER), 0);
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (11, 1)", IN_MEMBER), 0);
    CHECK_EQ_INT(member_stmt(db, &j, "ROLLBACK TO mine", IN_MEMBER), 0);
    CHECK_EQ_INT(member_stmt(db, &j, "RELEASE mine", IN_MEMBER), 0);
    CHECK_EQ_INT(member_end(db, &j, JR_DB_MEMBER_RELEASE, JR_DB_TXN_KEEP), 0);
    CHECK_EQ_INT(j.autocommit, 0); /* the group's transaction goes on */
    /* m2 fails: only its own rows go. */
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (2, 1)", NEXT_MEMBER), 0);
    CHECK_EQ_INT(j.began, 0);
    CHECK_EQ_INT(member_end(db, &j, JR_DB_MEMBER_ROLLBACK, JR_DB_TXN_KEEP), 0);
    /* m3 leaves a deferred foreign key unresolved: its release fails, as
     * its own COMMIT would, and only it is rolled back. */
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (3, 99)", NEXT_MEMBER), 0);
    CHECK_EQ_INT(member_end(db, &j, JR_DB_MEMBER_RELEASE, JR_DB_TXN_KEEP), 19);
    CHECK_EQ_STR(jr_db_code(j.rc), "constraint");
    /* m4 commits the group. */
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (4, 1)", NEXT_MEMBER), 0);
    CHECK_EQ_INT(member_end(db, &j, JR_DB_MEMBER_RELEASE, JR_DB_TXN_COMMIT), 0);
    CHECK_EQ_INT(j.txn_rc, 0);
    CHECK_EQ_INT(j.autocommit, 1);
    CHECK_EQ_STR(first_text(db, "SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)"), "1,4");
    /* A group whose members all failed rolls back. */
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (5, 1)", FIRST_MEMBER), 0);
    CHECK_EQ_INT(member_end(db, &j, JR_DB_MEMBER_ROLLBACK, JR_DB_TXN_ROLLBACK), 0);
    CHECK_EQ_INT(j.autocommit, 1);
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "2");
    jr_db_job_free(&j);
    close_db(db);
}

TEST(group_lost_when_sqlite_rolls_back)
{
    jr_db *db = open_db(path_in_dir("lost.db"));
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE t(x UNIQUE)"), 0);
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (1)", FIRST_MEMBER), 0);
    CHECK_EQ_INT(member_end(db, &j, JR_DB_MEMBER_RELEASE, JR_DB_TXN_KEEP), 0);
    /* OR ROLLBACK: a conflict rolls back the whole transaction, the first
     * member's row included, and the result says so (autocommit). */
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (2)", NEXT_MEMBER), 0);
    CHECK(member_stmt(db, &j, "INSERT OR ROLLBACK INTO t VALUES (1)", IN_MEMBER) != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "constraint");
    CHECK_EQ_INT(j.autocommit, 1);
    /* The member's next statement refuses to run on its own... */
    CHECK(member_stmt(db, &j, "INSERT INTO t VALUES (3)", IN_MEMBER) != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "aborted");
    /* ... and the group's commit says nothing was committed. */
    CHECK(member_end(db, &j, JR_DB_MEMBER_RELEASE, JR_DB_TXN_COMMIT) != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "aborted");
    CHECK_EQ_STR(jr_db_code(j.txn_rc), "aborted");
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "0");
    jr_db_job_free(&j);
    close_db(db);
}

/* A full disk, as a COMMIT meets it: the file size limit (EFBIG) makes the
 * WAL append fail. */
TEST(group_commit_failure_fails_the_group)
{
    const char *p = path_in_dir("full.db");
    jr_db *db = open_db(p);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE t(v)"), 0);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_FIRST, "PRAGMA wal_checkpoint(TRUNCATE)"), 0);
    struct stat sb;
    CHECK(stat(p, &sb) == 0);
    struct rlimit saved, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    /* Members write ~12 pages; the WAL may hold 2 frames (and the main
     * file stays below the limit: no checkpoint runs). */
    lim = saved;
    lim.rlim_cur = (rlim_t)(sb.st_size > 2 * 4120 + 32 ? sb.st_size : 2 * 4120 + 32);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (randomblob(20000))", FIRST_MEMBER), 0);
    CHECK_EQ_INT(member_end(db, &j, JR_DB_MEMBER_RELEASE, JR_DB_TXN_KEEP), 0);
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (randomblob(20000))", NEXT_MEMBER), 0);
    CHECK_EQ_INT(member_end(db, &j, JR_DB_MEMBER_RELEASE, JR_DB_TXN_COMMIT), 0);
    CHECK(j.txn_rc != 0); /* the member's own step was fine; the COMMIT was not */
    CHECK_EQ_INT(j.autocommit, 1);
    CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0);
    signal(SIGXFSZ, old);
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "0");
    /* The connection goes on working. */
    CHECK_EQ_INT(member_stmt(db, &j, "INSERT INTO t VALUES (1)", FIRST_MEMBER), 0);
    CHECK_EQ_INT(member_end(db, &j, JR_DB_MEMBER_RELEASE, JR_DB_TXN_COMMIT), 0);
    CHECK_EQ_INT(j.txn_rc, 0);
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "1");
    jr_db_job_free(&j);
    close_db(db);
}

TEST(transaction_control_is_refused)
{
    jr_db *db = open_db(path_in_dir("control.db"));
    jr_db_job j;
    jr_db_job_init(&j);
    static const char *const refused[] = {"BEGIN", "BEGIN IMMEDIATE", "COMMIT", "END", "ROLLBACK",
                                          "SAVEPOINT jr_tx", "RELEASE jr_tx", "ROLLBACK TO jr_tx"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        CHECK(run_sql(db, &j, JR_DB_EXECUTE, refused[i]) != 0);
        CHECK_EQ_STR(jr_db_code(j.rc), "misuse");
        CHECK(strstr(j.err, "transaction control statements") != NULL);
        CHECK_EQ_INT(j.autocommit, 1);
    }
    CHECK(run_sql(db, &j, JR_DB_SCRIPT, "CREATE TABLE t(x); COMMIT;") != 0);
    CHECK_EQ_STR(jr_db_code(j.rc), "misuse");
    /* Savepoints of other names are the user's. */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_SCRIPT, "SAVEPOINT a; CREATE TABLE u(x); RELEASE a;"), 0);
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM u"), "0");
    jr_db_job_free(&j);
    close_db(db);
}

/* ---- jr_db_run_read: a reader's statements on the loop thread ---- */

static jr_db *open_reader(const char *path, int deadline_us)
{
    jr_db_options o = default_opts(path);
    o.readonly = 1;
    o.read_deadline_us = deadline_us;
    int rc;
    char err[256];
    jr_db *db = open_with(&o, &rc, err, sizeof err);
    CHECK(db != NULL);
    if (rc != 0) fprintf(stderr, "  open reader %s: %s\n", path, err);
    CHECK_EQ_INT(rc, 0);
    return db;
}

/* jr_db_run_read the job (already set up) and wait for it if it went to
 * the thread. Returns 1 when it ran on the loop, 0 via the thread. */
static int run_read(jr_db *db, jr_db_job *j, jr_db_kind kind)
{
    int done = 0;
    j->kind = kind;
    j->cb = on_job;
    j->data = &done;
    int r = jr_db_run_read(db, j);
    CHECK(r >= 0);
    if (r == 0) wait_flag(&done, 1);
    else CHECK_EQ_INT(done, 0); /* no callback for a run on the loop */
    return r;
}

static void read_stmt(jr_db_job *j, const char *sql, int pre)
{
    jr_db_job_reset(j);
    jr_db_job_set_sql(j, sql, -1);
    j->pre = pre;
}

/* A deadline no quick statement misses even on a loaded machine under
 * ASan: the tests that are not about the deadline must not depend on it. */
#define QUICK_US 500000

TEST(reads_run_on_the_loop)
{
    const char *p = path_in_dir("inline.db");
    jr_db *w = open_db(p);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(w, &j, JR_DB_SCRIPT, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1, 'one');"), 0);
    jr_db *r = open_reader(p, QUICK_US);
    jr_db_stats s0, s1;
    jr_db_get_stats(r, &s0);
    read_stmt(&j, "SELECT v FROM t WHERE id = 1", JR_DB_PRE_READONLY | JR_DB_PRE_BEGIN);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_FIRST), 1);
    CHECK_EQ_INT(j.rc, 0);
    CHECK_EQ_INT(j.began, 1);
    CHECK_EQ_INT(j.ran_inline, 1);
    CHECK_EQ_INT(j.txn_state, JR_DB_TXN_READ);
    CHECK_EQ_MEM(jr_db_bytes(&j, jr_db_cell(&j, 0, 0)), jr_db_cell(&j, 0, 0)->u.s.len, "one");
    /* The snapshot holds: a commit by the writer is not seen until the end. */
    CHECK_EQ_INT(run_sql(w, &j, JR_DB_EXECUTE, "UPDATE t SET v = 'uno'"), 0);
    read_stmt(&j, "SELECT v FROM t WHERE id = 1", JR_DB_PRE_READONLY | JR_DB_PRE_BEGIN | JR_DB_PRE_IN_TXN);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_FIRST), 1);
    CHECK_EQ_INT(j.began, 0);
    CHECK_EQ_MEM(jr_db_bytes(&j, jr_db_cell(&j, 0, 0)), jr_db_cell(&j, 0, 0)->u.s.len, "one");
    /* The end of a read transaction runs on the loop too. */
    jr_db_job_reset(&j);
    j.end_txn = JR_DB_TXN_COMMIT;
    CHECK_EQ_INT(run_read(r, &j, JR_DB_END), 1);
    CHECK_EQ_INT(j.txn_rc, 0);
    CHECK_EQ_INT(j.autocommit, 1);
    read_stmt(&j, "SELECT v FROM t WHERE id = 1", JR_DB_PRE_READONLY);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_FIRST), 1);
    CHECK_EQ_MEM(jr_db_bytes(&j, jr_db_cell(&j, 0, 0)), jr_db_cell(&j, 0, 0)->u.s.len, "uno");
    /* A write is refused on the loop as on the thread. */
    read_stmt(&j, "DELETE FROM t", JR_DB_PRE_READONLY | JR_DB_PRE_BEGIN);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_EXECUTE), 1);
    CHECK_EQ_INT(j.needs_writer, 1);
    CHECK_EQ_INT(j.autocommit, 1);
    /* Errors come back from the loop as from the thread. */
    read_stmt(&j, "SELECT nope FROM t", JR_DB_PRE_READONLY);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_FIRST), 1);
    CHECK_EQ_STR(j.err, "no such column: nope");
    jr_db_get_stats(r, &s1);
    CHECK_EQ_INT(s1.jobs, s0.jobs); /* nothing went to the thread */
    CHECK_EQ_INT(s1.inline_runs - s0.inline_runs, 6);
    /* While the thread has work, the loop does not touch the handle. */
    int done = 0;
    jr_db_job busy;
    jr_db_job_init(&busy);
    jr_db_job_set_sql(&busy, "SELECT count(*) FROM t", -1);
    busy.kind = JR_DB_FIRST;
    busy.cb = on_job;
    busy.data = &done;
    CHECK(jr_db_submit(r, &busy) == 0);
    read_stmt(&j, "SELECT 1", JR_DB_PRE_READONLY);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_FIRST), 0);
    wait_flag(&done, 1);
    /* deadline 0: always the thread */
    jr_db *r0 = open_reader(p, 0);
    read_stmt(&j, "SELECT 1", JR_DB_PRE_READONLY);
    CHECK_EQ_INT(run_read(r0, &j, JR_DB_FIRST), 0);
    CHECK_EQ_INT(j.rc, 0);
    jr_db_job_free(&busy);
    jr_db_job_free(&j);
    close_db(r0);
    close_db(r);
    close_db(w);
}

TEST(reads_stopped_at_the_deadline_go_to_the_thread)
{
    const char *p = path_in_dir("deadline.db");
    jr_db *w = open_db(p);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(w, &j, JR_DB_SCRIPT, "CREATE TABLE t(x); INSERT INTO t VALUES (1);"), 0);
    jr_db *r = open_reader(p, 1000);
    /* (joined with t: a statement that reads the database, so that it
     * holds a read transaction when it is stopped) */
#define CTE_1M                                                                                        \
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) SELECT count(*) " \
    "FROM c JOIN t"
    read_stmt(&j, CTE_1M, JR_DB_PRE_READONLY | JR_DB_PRE_BEGIN);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_FIRST), 0);
    CHECK_EQ_INT(j.rc, 0);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 1000000);
    CHECK_EQ_INT(j.began, 1); /* begun on the loop, finished on the thread */
    CHECK_EQ_INT(j.txn_state, JR_DB_TXN_READ);
    jr_db_stats s;
    jr_db_get_stats(r, &s);
    CHECK_EQ_INT(s.inline_stopped, 1);
    CHECK_EQ_INT(s.jobs, 2); /* open + the rerun */
    /* From now on it goes to the thread at once. */
    read_stmt(&j, CTE_1M, JR_DB_PRE_READONLY | JR_DB_PRE_IN_TXN);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_FIRST), 0);
    jr_db_get_stats(r, &s);
    CHECK_EQ_INT(s.inline_stopped, 1);
    jr_db_job_reset(&j);
    j.end_txn = JR_DB_TXN_COMMIT;
    CHECK_EQ_INT(run_read(r, &j, JR_DB_END), 1);
    jr_db_job_free(&j);
    close_db(r);
    close_db(w);
}

TEST(reads_past_the_deadline_in_one_instruction)
{
    const char *p = path_in_dir("count.db");
    jr_db *w = open_db(p);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(w, &j, JR_DB_EXECUTE,
                         "CREATE TABLE t AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                         "WHERE x < 200000) SELECT x FROM c"),
                 0);
    /* count(*) of a whole table is one instruction: the progress handler
     * is not polled, the deadline of 1 us passes inside it. */
    jr_db *r = open_reader(p, 1);
    read_stmt(&j, "SELECT count(*) FROM t", JR_DB_PRE_READONLY);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_FIRST), 1);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 200000);
    jr_db_stats s;
    jr_db_get_stats(r, &s);
    CHECK_EQ_INT(s.inline_overruns, 1);
    read_stmt(&j, "SELECT count(*) FROM t", JR_DB_PRE_READONLY);
    CHECK_EQ_INT(run_read(r, &j, JR_DB_FIRST), 0);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 200000);
    jr_db_job_free(&j);
    close_db(r);
    close_db(w);
}

static void raw_timer_closed(uv_handle_t *h) { (void)h; }

static void timer_commit_raw(uv_timer_t *t)
{
    CHECK_EQ_INT(sqlite3_exec(t->data, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
}

/* Rollback-journal mode: another process's EXCLUSIVE lock keeps readers
 * out. A reader that meets it on the loop (already while preparing: its
 * schema is not loaded yet) never waits there; the connection's thread
 * does, in its busy handler, and gets in once the lock is gone. */
TEST(reads_meeting_a_lock_go_to_the_thread)
{
    const char *p = path_in_dir("journal.db");
    sqlite3 *other;
    CHECK_EQ_INT(sqlite3_open(p, &other), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(other, "PRAGMA journal_mode=DELETE; CREATE TABLE t(x); INSERT INTO t VALUES (1);"
                                     "BEGIN EXCLUSIVE; INSERT INTO t VALUES (2);",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    jr_db *r = open_reader(p, QUICK_US);
    jr_db_job j;
    jr_db_job_init(&j);
    int done = 0;
    read_stmt(&j, "SELECT count(*) FROM t", JR_DB_PRE_READONLY | JR_DB_PRE_BEGIN);
    j.kind = JR_DB_FIRST;
    j.cb = on_job;
    j.data = &done;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = other;
    uv_timer_start(&t, timer_commit_raw, 50, 0);
    int here = jr_db_run_read(r, &j);
    CHECK_EQ_INT(here, 0); /* sent to the thread, which waits */
    if (here == 0) wait_flag(&done, 1);
    else while (uv_is_active((uv_handle_t *)&t)) uv_run(&loop, UV_RUN_ONCE); /* (the commit, still) */
    uv_close((uv_handle_t *)&t, raw_timer_closed);
    CHECK_EQ_INT(j.rc, 0);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 2);
    jr_db_stats st;
    jr_db_get_stats(r, &st);
    CHECK(st.busy_waits >= 1);
    jr_db_job_reset(&j);
    j.end_txn = JR_DB_TXN_COMMIT;
    CHECK_EQ_INT(run_read(r, &j, JR_DB_END), 1);
    jr_db_job_free(&j);
    close_db(r);
    sqlite3_close(other);
}

TEST(data_version_follows_the_content)
{
    const char *p = path_in_dir("version.db");
    jr_db *w = open_db(p);
    jr_db *r = open_reader(p, QUICK_US);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(w, &j, JR_DB_EXECUTE, "CREATE TABLE t(x)"), 0);
    uint32_t v1, v2, v3;
    int64_t c1, c2, c3;
    read_stmt(&j, "SELECT count(*) FROM t", JR_DB_PRE_READONLY | JR_DB_PRE_BEGIN);
    run_read(r, &j, JR_DB_FIRST);
    CHECK(jr_db_data_version(r, &v1, &c1) == 0);
    /* a commit elsewhere: the open snapshot keeps its version */
    CHECK_EQ_INT(run_sql(w, &j, JR_DB_EXECUTE, "INSERT INTO t VALUES (1)"), 0);
    CHECK(jr_db_data_version(r, &v2, &c2) == 0);
    CHECK(v1 == v2 && c1 == c2);
    jr_db_job_reset(&j);
    j.end_txn = JR_DB_TXN_COMMIT;
    run_read(r, &j, JR_DB_END);
    read_stmt(&j, "SELECT count(*) FROM t", JR_DB_PRE_READONLY | JR_DB_PRE_BEGIN);
    run_read(r, &j, JR_DB_FIRST);
    CHECK(jr_db_data_version(r, &v3, &c3) == 0);
    CHECK(v3 != v1);
    /* the writer's own uncommitted write changes its pair */
    CHECK(jr_db_data_version(w, &v1, &c1) == 0);
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t VALUES (2)", -1);
    j.pre = JR_DB_PRE_BEGIN_IMMEDIATE;
    CHECK_EQ_INT(run(w, &j, JR_DB_EXECUTE), 0);
    CHECK(jr_db_data_version(w, &v2, &c2) == 0);
    CHECK(v1 != v2 || c1 != c2);
    member_end(w, &j, JR_DB_MEMBER_NONE, JR_DB_TXN_ROLLBACK);
    jr_db_job_reset(&j);
    j.end_txn = JR_DB_TXN_COMMIT;
    run_read(r, &j, JR_DB_END);
    jr_db_job_free(&j);
    close_db(r);
    close_db(w);
}

TEST(checkpoints_follow_commits)
{
    const char *p = path_in_dir("ckpt.db");
    jr_db *w = open_db(p);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(w, &j, JR_DB_EXECUTE, "CREATE TABLE t(v)"), 0);
    /* ~3000 pages in 300 commits: a checkpoint after ~every 1000 frames,
     * and the WAL starts over instead of growing. */
    for (int i = 0; i < 300; i++) {
        CHECK_EQ_INT(member_stmt(w, &j, "INSERT INTO t VALUES (randomblob(40000))", FIRST_MEMBER), 0);
        CHECK_EQ_INT(member_end(w, &j, JR_DB_MEMBER_RELEASE, JR_DB_TXN_COMMIT), 0);
        CHECK_EQ_INT(j.txn_rc, 0);
    }
    jr_db_stats s;
    jr_db_get_stats(w, &s);
    CHECK(s.checkpoints >= 2);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", p);
    struct stat sb;
    CHECK(stat(wal, &sb) == 0);
    CHECK(sb.st_size < 16 * 1024 * 1024); /* 300 commits of 40 KB would be ~12 MB each way */
    jr_db_job_free(&j);
    close_db(w);
}
/* ---- concurrency: interrupts and locks ---- */

typedef struct {
    jr_db *db;
    uv_timer_t t;
    jr_db_job *job; /* for timer_commit */
    int fired;
} timer_ctx;

static void timer_interrupt(uv_timer_t *t)
{
    timer_ctx *c = t->data;
    c->fired = 1;
    jr_db_interrupt(c->db);
}

static void timer_closed(uv_handle_t *h) { (void)h; }

#define SLOW_SQL \
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) SELECT count(*) FROM c"

TEST(interrupt_running_and_queued)
{
    jr_db *db = open_db(":memory:");
    jr_db_job slow, queued, after;
    jr_db_job_init(&slow);
    jr_db_job_init(&queued);
    jr_db_job_init(&after);
    int done = 0;
    slow.kind = queued.kind = JR_DB_QUERY;
    slow.cb = queued.cb = on_job;
    slow.data = queued.data = &done;
    jr_db_job_set_sql(&slow, SLOW_SQL, -1);
    jr_db_job_set_sql(&queued, "SELECT 1", -1);
    CHECK(jr_db_submit(db, &slow) == 0);
    CHECK(jr_db_submit(db, &queued) == 0);
    timer_ctx c = {.db = db};
    uv_timer_init(&loop, &c.t);
    c.t.data = &c;
    uv_timer_start(&c.t, timer_interrupt, 50, 0);
    wait_flag(&done, 2);
    CHECK(c.fired);
    CHECK_EQ_STR(jr_db_code(slow.rc), "interrupted");
    CHECK_EQ_STR(jr_db_code(queued.rc), "interrupted");
    /* Jobs submitted after the interrupt run normally. */
    CHECK_EQ_INT(run_sql(db, &after, JR_DB_FIRST, "SELECT 1"), 0);
    /* An interrupt when nothing is in flight affects nothing later. */
    jr_db_interrupt(db);
    CHECK_EQ_INT(run_sql(db, &after, JR_DB_FIRST, "SELECT 2"), 0);
    uv_close((uv_handle_t *)&c.t, timer_closed);
    jr_db_job_free(&slow);
    jr_db_job_free(&queued);
    jr_db_job_free(&after);
    close_db(db);
}

/* Completion order across connections. */
static int g_order[4], g_norder;
static jr_db *g_interrupt_on_first;

static void on_ordered(jr_db_job *j)
{
    g_order[g_norder++] = *(int *)j->data;
    /* Once the quick one is back, do not wait out the slow one. */
    if (g_norder == 1 && g_interrupt_on_first) jr_db_interrupt(g_interrupt_on_first);
}

TEST(slow_statement_blocks_only_its_connection)
{
    const char *p = path_in_dir("par.db");
    jr_db *a = open_db(p), *b = open_db(p);
    jr_db_job slow, quick;
    jr_db_job_init(&slow);
    jr_db_job_init(&quick);
    static int id_slow = 1, id_quick = 2;
    g_norder = 0;
    g_interrupt_on_first = a;
    slow.kind = quick.kind = JR_DB_FIRST;
    slow.cb = quick.cb = on_ordered;
    slow.data = &id_slow;
    quick.data = &id_quick;
    jr_db_job_set_sql(&slow, SLOW_SQL, -1);
    jr_db_job_set_sql(&quick, "SELECT 42", -1);
    CHECK(jr_db_submit(a, &slow) == 0);
    CHECK(jr_db_submit(b, &quick) == 0);
    while (g_norder < 2) uv_run(&loop, UV_RUN_ONCE);
    g_interrupt_on_first = NULL;
    CHECK_EQ_INT(g_order[0], 2); /* the quick one came back first */
    CHECK_EQ_INT(g_order[1], 1);
    CHECK_EQ_INT(quick.rc, 0);
    CHECK_EQ_INT(jr_db_cell(&quick, 0, 0)->u.i, 42);
    CHECK_EQ_STR(jr_db_code(slow.rc), "interrupted");
    jr_db_job_free(&slow);
    jr_db_job_free(&quick);
    close_db(a);
    close_db(b);
}

static void timer_commit(uv_timer_t *t)
{
    timer_ctx *c = t->data;
    c->fired = 1;
    jr_db_job_reset(c->job);
    c->job->kind = JR_DB_END;
    c->job->end_txn = JR_DB_TXN_COMMIT;
    c->job->cb = on_job;
    CHECK(jr_db_submit(c->db, c->job) == 0);
}

/* Two writers of one file (as two processes have): the second waits for
 * the first's lock up to busy_timeout. */
TEST(busy_timeout_across_connections)
{
    const char *p = path_in_dir("busy.db");
    jr_db *a = open_db(p);
    jr_db_job ja, jb;
    jr_db_job_init(&ja);
    jr_db_job_init(&jb);
    CHECK_EQ_INT(run_sql(a, &ja, JR_DB_EXECUTE, "CREATE TABLE t(x)"), 0);

    jr_db_options o = default_opts(p);
    o.busy_timeout_ms = 100;
    int rc;
    jr_db *b = open_with(&o, &rc, NULL, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(member_stmt(a, &ja, "INSERT INTO t VALUES (1)", JR_DB_PRE_BEGIN_IMMEDIATE), 0);
    uint64_t t0 = uv_hrtime();
    CHECK(member_stmt(b, &jb, "INSERT INTO t VALUES (2)", JR_DB_PRE_BEGIN_IMMEDIATE) != 0);
    uint64_t waited_ms = (uv_hrtime() - t0) / 1000000u;
    CHECK_EQ_STR(jr_db_code(jb.rc), "busy");
    CHECK_EQ_STR(jb.err, "database is locked");
    CHECK(waited_ms >= 90); /* it did wait for its timeout */
    CHECK_EQ_INT(jb.autocommit, 1);
    /* WAL: readers are not blocked by the writer, and do not see it. */
    CHECK_EQ_STR(first_text(b, "SELECT count(*) FROM t"), "0");
    close_db(b);

    /* With a longer timeout it gets in when a commits. */
    o.busy_timeout_ms = 5000;
    b = open_with(&o, &rc, NULL, 0);
    int commit_done = 0, insert_done = 0;
    jr_db_job_reset(&ja);
    ja.data = &commit_done;
    timer_ctx tc = {.db = a, .job = &ja};
    uv_timer_init(&loop, &tc.t);
    tc.t.data = &tc;
    uv_timer_start(&tc.t, timer_commit, 30, 0);
    jr_db_job_reset(&jb);
    jr_db_job_set_sql(&jb, "INSERT INTO t VALUES (3)", -1);
    jb.pre = JR_DB_PRE_BEGIN_IMMEDIATE;
    jb.kind = JR_DB_EXECUTE;
    jb.cb = on_job;
    jb.data = &insert_done;
    CHECK(jr_db_submit(b, &jb) == 0);
    wait_flag(&insert_done, 1);
    wait_flag(&commit_done, 1);
    CHECK(tc.fired);
    CHECK_EQ_INT(jb.rc, 0);
    CHECK_EQ_INT(ja.txn_rc, 0);
    jr_db_stats s;
    jr_db_get_stats(b, &s);
    CHECK(s.busy_waits >= 1);
    CHECK_EQ_INT(member_end(b, &jb, JR_DB_MEMBER_NONE, JR_DB_TXN_COMMIT), 0);
    CHECK_EQ_STR(first_text(a, "SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)"), "1,3");
    uv_close((uv_handle_t *)&tc.t, timer_closed);
    jr_db_job_free(&ja);
    jr_db_job_free(&jb);
    close_db(a);
    close_db(b);
}

TEST(close_runs_queued_jobs_first)
{
    jr_db *db = open_db(":memory:");
    jr_db_job j1, j2;
    jr_db_job_init(&j1);
    jr_db_job_init(&j2);
    int done = 0, closed = 0;
    jr_db_job_set_sql(&j1, "CREATE TABLE t(x)", -1);
    jr_db_job_set_sql(&j2, "SELECT count(*) FROM t", -1);
    j1.kind = JR_DB_EXECUTE;
    j2.kind = JR_DB_FIRST;
    j1.cb = j2.cb = on_job;
    j1.data = j2.data = &done;
    CHECK(jr_db_submit(db, &j1) == 0);
    CHECK(jr_db_submit(db, &j2) == 0);
    jr_db_close(db, on_closed, &closed);
    jr_db_close(db, on_closed, &closed); /* twice: no-op */
    wait_flag(&closed, 1);
    CHECK_EQ_INT(done, 2);
    CHECK_EQ_INT(j1.rc, 0);
    CHECK_EQ_INT(j2.rc, 0);
    CHECK_EQ_INT(jr_db_cell(&j2, 0, 0)->u.i, 0);
    jr_db_job_free(&j1);
    jr_db_job_free(&j2);
}

TEST(codes)
{
    CHECK(jr_db_code(0) == NULL);
    CHECK_EQ_STR(jr_db_code(5), "busy");
    CHECK_EQ_STR(jr_db_code(6), "locked");
    CHECK_EQ_STR(jr_db_code(19), "constraint");
    CHECK_EQ_STR(jr_db_code(19 | (1 << 8)), "constraint"); /* extended codes map too */
    CHECK_EQ_STR(jr_db_code(8), "readonly");
    CHECK_EQ_STR(jr_db_code(11), "corrupt");
    CHECK_EQ_STR(jr_db_code(13), "full");
    CHECK_EQ_STR(jr_db_code(21), "misuse");
    CHECK_EQ_STR(jr_db_code(25), "range");
    CHECK_EQ_STR(jr_db_code(9), "interrupted");
    CHECK_EQ_STR(jr_db_code(1), "error");
    CHECK_EQ_STR(jr_db_code(14), "error"); /* cantopen */
    CHECK_EQ_STR(jr_db_code(JR_DB_ABORTED), "aborted");
}

static void rm_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/jr-test-db-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    uv_loop_init(&loop);
    RUN(codes);
    RUN(open_applies_pragmas);
    RUN(open_failures);
    RUN(statement_cache_hits_and_eviction);
    RUN(params_of_every_type);
    RUN(int64_edges_and_null);
    RUN(result_shapes);
    RUN(errors_with_codes);
    RUN(reader_connections);
    RUN(transaction_steps);
    RUN(group_members_end_on_their_own);
    RUN(group_lost_when_sqlite_rolls_back);
    RUN(group_commit_failure_fails_the_group);
    RUN(transaction_control_is_refused);
    RUN(reads_run_on_the_loop);
    RUN(reads_stopped_at_the_deadline_go_to_the_thread);
    RUN(reads_past_the_deadline_in_one_instruction);
    RUN(reads_meeting_a_lock_go_to_the_thread);
    RUN(data_version_follows_the_content);
    RUN(checkpoints_follow_commits);
    RUN(interrupt_running_and_queued);
    RUN(slow_statement_blocks_only_its_connection);
    RUN(busy_timeout_across_connections);
    RUN(close_runs_queued_jobs_first);
    uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks */
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "loop still has handles\n");
        t_failed++;
    }
    rm_dir();
    return test_summary();
}
