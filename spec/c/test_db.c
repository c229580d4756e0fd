/* test_db.c - unit tests for core/db.c, driven through a real uv loop: each
 * job is submitted and the loop run until its callback fired. */
#include "db.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    o.spin_us = -1;
    return o;
}

/* Open and wait; returns db (open_rc gets the job's rc). */
static jr_db *open_with(const jr_db_options *o, jr_db_group *g, int *open_rc, char *err, size_t errlen)
{
    jr_db_job job;
    jr_db_job_init(&job);
    int done = 0;
    job.data = &done;
    jr_db *db = jr_db_open(&loop, o, g, &job, on_job);
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
    jr_db *db = open_with(&o, NULL, &rc, err, sizeof err);
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
    db = open_with(&o, NULL, &rc, NULL, 0);
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
    jr_db *db = open_with(&o, NULL, &rc, err, sizeof err);
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
    db = open_with(&o, NULL, &rc, err, sizeof err);
    CHECK(rc != 0);
    CHECK_EQ_STR(jr_db_code(rc), "corrupt");
    CHECK(strstr(err, "file is not a database") != NULL);
    close_db(db);

    /* Invalid option values never reach SQL. */
    o = default_opts(path_in_dir("opts.db"));
    o.journal_mode = "WAL; DROP TABLE x";
    db = open_with(&o, NULL, &rc, err, sizeof err);
    CHECK_EQ_STR(jr_db_code(rc), "misuse");
    CHECK(strstr(err, "invalid journal_mode") != NULL);
    close_db(db);
    o = default_opts(path_in_dir("opts.db"));
    const char *evil[] = {"user_version=1; DROP TABLE x"};
    o.pragmas = evil;
    o.npragmas = 1;
    db = open_with(&o, NULL, &rc, err, sizeof err);
    CHECK_EQ_STR(jr_db_code(rc), "misuse");
    close_db(db);
    jr_db_job_free(&j);
}

TEST(statement_cache_hits_and_eviction)
{
    jr_db_options o = default_opts(":memory:");
    o.statement_cache = 2;
    int rc;
    jr_db *db = open_with(&o, NULL, &rc, NULL, 0);
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
    db = open_with(&o, NULL, &rc, NULL, 0);
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

TEST(transactions)
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
    j.begin = JR_DB_BEGIN_DEFERRED;
    CHECK_EQ_INT(run(db, &j, JR_DB_EXECUTE), 0);
    CHECK_EQ_INT(j.autocommit, 0);
    CHECK_EQ_INT(j.txn_state, JR_DB_TXN_WRITE);
    jr_db_get_stats(db, &s1);
    CHECK_EQ_INT(s1.jobs - s0.jobs, 1);
    /* A write transaction cannot end inline. */
    jr_db_job_reset(&j);
    j.kind = JR_DB_ROLLBACK;
    CHECK_EQ_INT(jr_db_end_inline(db, &j), 0);
    CHECK_EQ_INT(run(db, &j, JR_DB_ROLLBACK), 0);
    CHECK_EQ_INT(j.autocommit, 1);
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "0");

    /* Commit keeps it. */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "BEGIN IMMEDIATE"), 0);
    CHECK_EQ_INT(j.txn_state, JR_DB_TXN_WRITE);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "INSERT INTO t(v) VALUES ('b')"), 0);
    jr_db_job_reset(&j);
    CHECK_EQ_INT(run(db, &j, JR_DB_COMMIT), 0);
    CHECK_EQ_INT(j.autocommit, 1);
    CHECK_EQ_STR(first_text(db, "SELECT v FROM t"), "b");

    /* A read transaction ends inline, without a job. */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "SELECT v FROM t WHERE id = ?", -1);
    jr_db_param_int(&j, NULL, 0, 1);
    j.begin = JR_DB_BEGIN_DEFERRED;
    CHECK_EQ_INT(run(db, &j, JR_DB_FIRST), 0);
    CHECK_EQ_INT(j.autocommit, 0);
    CHECK_EQ_INT(j.txn_state, JR_DB_TXN_READ);
    jr_db_get_stats(db, &s0);
    jr_db_job_reset(&j);
    j.kind = JR_DB_COMMIT;
    CHECK_EQ_INT(jr_db_end_inline(db, &j), 1);
    CHECK_EQ_INT(j.rc, 0);
    CHECK_EQ_INT(j.ran_inline, 1);
    CHECK_EQ_INT(j.autocommit, 1);
    jr_db_get_stats(db, &s1);
    CHECK_EQ_INT(s1.jobs, s0.jobs);
    CHECK_EQ_INT(s1.inline_ends - s0.inline_ends, 1);
    /* Nothing to end: not inline (the job reports SQLite's own error). */
    jr_db_job_reset(&j);
    j.kind = JR_DB_COMMIT;
    CHECK_EQ_INT(jr_db_end_inline(db, &j), 0);
    CHECK(run(db, &j, JR_DB_COMMIT) != 0);
    CHECK_EQ_STR(j.err, "cannot commit - no transaction is active");

    /* A BEGIN that fails keeps the statement from running. */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "BEGIN"), 0);
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t(v) VALUES ('c')", -1);
    j.begin = JR_DB_BEGIN_DEFERRED;
    CHECK(run(db, &j, JR_DB_EXECUTE) != 0);
    CHECK_EQ_STR(j.err, "cannot start a transaction within a transaction");
    jr_db_job_reset(&j);
    CHECK_EQ_INT(run(db, &j, JR_DB_ROLLBACK), 0);
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "1");

    /* Closing with an open write transaction rolls it back. */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "BEGIN"), 0);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "DELETE FROM t"), 0);
    jr_db_job_free(&j);
    close_db(db);
    db = open_db(path_in_dir("tx.db"));
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "1");
    close_db(db);
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
    c->job->kind = JR_DB_COMMIT;
    c->job->cb = on_job;
    CHECK(jr_db_submit(c->db, c->job) == 0);
}

TEST(busy_timeout_and_group_wakeup)
{
    const char *p = path_in_dir("busy.db");
    jr_db *a = open_db(p);
    jr_db_job ja, jb;
    jr_db_job_init(&ja);
    jr_db_job_init(&jb);
    CHECK_EQ_INT(run_sql(a, &ja, JR_DB_EXECUTE, "CREATE TABLE t(x)"), 0);

    /* A connection of another group with a short timeout gives up: busy. */
    jr_db_options o = default_opts(p);
    o.busy_timeout_ms = 100;
    int rc;
    jr_db *b = open_with(&o, NULL, &rc, NULL, 0);
    CHECK_EQ_INT(rc, 0);
    jr_db_job_reset(&ja);
    jr_db_job_set_sql(&ja, "INSERT INTO t VALUES (1)", -1);
    ja.begin = JR_DB_BEGIN_IMMEDIATE;
    CHECK_EQ_INT(run(a, &ja, JR_DB_EXECUTE), 0);
    uint64_t t0 = uv_hrtime();
    CHECK(run_sql(b, &jb, JR_DB_EXECUTE, "INSERT INTO t VALUES (2)") != 0);
    uint64_t waited_ms = (uv_hrtime() - t0) / 1000000u;
    CHECK_EQ_STR(jr_db_code(jb.rc), "busy");
    CHECK_EQ_STR(jb.err, "database is locked");
    CHECK(waited_ms >= 90); /* it did wait for its timeout */
    /* WAL: readers are not blocked by the writer, and do not see it. */
    CHECK_EQ_STR(first_text(b, "SELECT count(*) FROM t"), "0");

    /* A connection of a's group waits, and gets in when a commits. */
    jr_db_options o2 = default_opts(p);
    jr_db *c = open_with(&o2, jr_db_get_group(a), &rc, NULL, 0);
    CHECK_EQ_INT(rc, 0);
    int commit_done = 0, insert_done = 0;
    jr_db_job_reset(&ja);
    ja.data = &commit_done;
    timer_ctx tc = {.db = a, .job = &ja};
    uv_timer_init(&loop, &tc.t);
    tc.t.data = &tc;
    uv_timer_start(&tc.t, timer_commit, 30, 0);
    jr_db_job_reset(&jb);
    jr_db_job_set_sql(&jb, "INSERT INTO t VALUES (3)", -1);
    jb.kind = JR_DB_EXECUTE;
    jb.cb = on_job;
    jb.data = &insert_done;
    CHECK(jr_db_submit(c, &jb) == 0);
    wait_flag(&insert_done, 1);
    wait_flag(&commit_done, 1);
    CHECK(tc.fired);
    CHECK_EQ_INT(jb.rc, 0);
    CHECK_EQ_INT(ja.rc, 0);
    jr_db_stats s;
    jr_db_get_stats(c, &s);
    /* it waited for the group's write token (not SQLite's busy handler) */
    CHECK(s.writer_waits >= 1);
    CHECK_EQ_STR(first_text(b, "SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)"), "1,3");
    uv_close((uv_handle_t *)&tc.t, timer_closed);
    jr_db_job_free(&ja);
    jr_db_job_free(&jb);
    close_db(a);
    close_db(b);
    close_db(c);
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

/* ---- jr_db_run: quick statements on the calling thread ---- */

/* A limit no quick statement misses even on a loaded machine under ASan:
 * the tests that are not about the limit must not depend on timing. */
#define QUICK_US 20000

static jr_db *open_inline(const char *path, int inline_us, jr_db_group *g, const char *sync)
{
    jr_db_options o = default_opts(path);
    o.inline_us = inline_us;
    if (sync) o.synchronous = sync;
    int rc;
    char err[256];
    jr_db *db = open_with(&o, g, &rc, err, sizeof err);
    CHECK(db != NULL);
    CHECK_EQ_INT(rc, 0);
    return db;
}

/* jr_db_run the job (SQL and parameters already in it) and wait for it if
 * it went to the worker. Returns 1 when it ran here, 0 via the worker. */
static int run_q(jr_db *db, jr_db_job *j, jr_db_kind kind)
{
    int done = 0;
    j->kind = kind;
    j->cb = on_job;
    j->data = &done;
    int r = jr_db_run(db, j);
    CHECK(r >= 0);
    if (r == 0) wait_flag(&done, 1);
    else CHECK_EQ_INT(done, 0); /* no callback for an inline run */
    return r;
}

/* Run sql twice (the first run, on the worker, classifies it); return
 * whether the second ran inline. Each '?' gets the integer 7. */
static int second_run_inline(jr_db *db, const char *sql)
{
    jr_db_job j;
    jr_db_job_init(&j);
    int nparams = 0;
    for (const char *c = sql; *c; c++) nparams += *c == '?';
    jr_db_job_set_sql(&j, sql, -1);
    for (int i = 0; i < nparams; i++) jr_db_param_int(&j, NULL, 0, 7);
    CHECK_EQ_INT(run_q(db, &j, JR_DB_EXECUTE), 0);
    if (j.rc != 0) fprintf(stderr, "  %s: %s\n", sql, j.err);
    CHECK_EQ_INT(j.rc, 0);
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, sql, -1);
    for (int i = 0; i < nparams; i++) jr_db_param_int(&j, NULL, 0, 7);
    int r = run_q(db, &j, JR_DB_EXECUTE);
    CHECK_EQ_INT(j.rc, 0);
    jr_db_job_free(&j);
    return r;
}

/* Reset j for sql with one integer parameter v (and a BEGIN before it). */
static void set_stmt(jr_db_job *j, const char *sql, int64_t v, jr_db_begin begin)
{
    jr_db_job_reset(j);
    jr_db_job_set_sql(j, sql, -1);
    jr_db_param_int(j, NULL, 0, v);
    j->begin = begin;
}

TEST(inline_runs_quick_statements)
{
    jr_db *db = open_inline(path_in_dir("inl.db"), QUICK_US, NULL, NULL);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE t(id TEXT PRIMARY KEY, v INTEGER)"), 0);
    for (int i = 0; i < 3; i++) {
        /* BEGIN + INSERT ... RETURNING: the first on the worker, then here */
        jr_db_job_reset(&j);
        jr_db_job_set_sql(&j, "INSERT INTO t(id, v) VALUES (?, ?) RETURNING v * 2", -1);
        char id[8];
        snprintf(id, sizeof id, "k%d", i);
        jr_db_param_text(&j, NULL, 0, id, strlen(id));
        jr_db_param_int(&j, NULL, 0, 10 + i);
        j.begin = JR_DB_BEGIN_DEFERRED;
        CHECK_EQ_INT(run_q(db, &j, JR_DB_FIRST), i > 0);
        CHECK_EQ_INT(j.rc, 0);
        CHECK_EQ_INT(j.ran_inline, i > 0);
        CHECK_EQ_INT(j.txn_state, JR_DB_TXN_WRITE);
        CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 2 * (10 + i));
        jr_db_job_reset(&j);
        j.kind = JR_DB_COMMIT;
        CHECK_EQ_INT(jr_db_end_inline(db, &j), 1);
        CHECK_EQ_INT(j.autocommit, 1);
    }
    /* a query by key, with its results */
    for (int i = 0; i < 2; i++) {
        jr_db_job_reset(&j);
        jr_db_job_set_sql(&j, "SELECT id, v FROM t WHERE id = ?", -1);
        jr_db_param_text(&j, NULL, 0, "k2", 2);
        CHECK_EQ_INT(run_q(db, &j, JR_DB_QUERY), i > 0);
        CHECK_EQ_INT(j.nrows, 1);
        CHECK_EQ_INT(jr_db_cell(&j, 0, 1)->u.i, 12);
    }
    /* errors come back the same way: a constraint, inline */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, "INSERT INTO t(id, v) VALUES (?, ?) RETURNING v * 2", -1);
    jr_db_param_text(&j, NULL, 0, "k0", 2);
    jr_db_param_int(&j, NULL, 0, 1);
    CHECK_EQ_INT(run_q(db, &j, JR_DB_FIRST), 1);
    CHECK_EQ_STR(jr_db_code(j.rc), "constraint");
    CHECK_EQ_INT(j.autocommit, 1);
    jr_db_stats s;
    jr_db_get_stats(db, &s);
    CHECK_EQ_INT(s.inline_runs, 4);
    CHECK_EQ_INT(s.inline_fallbacks, 0);
    CHECK_EQ_STR(first_text(db, "SELECT group_concat(id) FROM (SELECT id FROM t ORDER BY id)"), "k0,k1,k2");
    jr_db_job_free(&j);
    close_db(db);

    /* inline_us 0: never */
    db = open_inline(path_in_dir("inl.db"), 0, NULL, NULL);
    CHECK_EQ_INT(second_run_inline(db, "SELECT v FROM t WHERE id = 'k1'"), 0);
    close_db(db);
}

TEST(inline_only_bounded_statements)
{
    jr_db *db = open_inline(path_in_dir("cls.db"), QUICK_US, NULL, NULL);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_SCRIPT,
                         "CREATE TABLE t(id INTEGER PRIMARY KEY, u TEXT UNIQUE, n TEXT, a, b);"
                         "CREATE INDEX t_n ON t(n); CREATE UNIQUE INDEX t_ab ON t(a, b);"
                         "INSERT INTO t(u, n, a, b) VALUES ('x', 'n', 1, 1), ('y', 'n', 1, 2);"
                         "CREATE TABLE s(id INTEGER PRIMARY KEY, u TEXT NOT NULL UNIQUE, a INT NOT NULL,"
                         " b INT NOT NULL, n TEXT, UNIQUE (a, b));"
                         "INSERT INTO s(u, a, b) VALUES ('x', 1, 1), ('y', 1, 2);"),
                 0);
    /* point writes and queries */
    CHECK_EQ_INT(second_run_inline(db, "INSERT INTO t(n) VALUES ('p')"), 1);
    CHECK_EQ_INT(second_run_inline(db, "INSERT INTO t(n) VALUES ('p'), ('q')"), 1);
    CHECK_EQ_INT(second_run_inline(db, "UPDATE t SET n = 'z' WHERE id = 1"), 1);
    CHECK_EQ_INT(second_run_inline(db, "UPDATE s SET n = 'z' WHERE u = 'x'"), 1);
    CHECK_EQ_INT(second_run_inline(db, "UPDATE s SET n = 'z' WHERE a = 1 AND b = 2"), 1);
    CHECK_EQ_INT(second_run_inline(db, "DELETE FROM t WHERE id = 99"), 1);
    CHECK_EQ_INT(second_run_inline(db, "SELECT count(*) FROM t"), 1); /* queries: timed instead */
    CHECK_EQ_INT(second_run_inline(db, "  -- a comment\n WITH x AS (SELECT 1) SELECT * FROM x"), 1);
    /* any number of rows: the worker's */
    CHECK_EQ_INT(second_run_inline(db, "UPDATE t SET n = 'z'"), 0);
    CHECK_EQ_INT(second_run_inline(db, "DELETE FROM t WHERE id > 1000"), 0);
    CHECK_EQ_INT(second_run_inline(db, "UPDATE t SET n = 'w' WHERE n = 'nothing'"), 0); /* not unique */
    CHECK_EQ_INT(second_run_inline(db, "UPDATE s SET n = 'w' WHERE a = 5"), 0);         /* part of a key */
    /* a UNIQUE column that may be NULL: "u IS ?" has the plan of "u = ?" */
    CHECK_EQ_INT(second_run_inline(db, "UPDATE t SET n = 'w' WHERE u = 'x'"), 0);
    CHECK_EQ_INT(second_run_inline(db, "UPDATE t SET n = 'w' WHERE u IS NULL"), 0);
    CHECK_EQ_INT(second_run_inline(db, "UPDATE t SET n = 'w' WHERE a = 1 AND b = 2"), 0);
    CHECK_EQ_INT(second_run_inline(db, "INSERT INTO t(n) SELECT n FROM t WHERE 0"), 0);
    /* a table copy has no plan line at all (transfer optimization) but loops */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_SCRIPT,
                         "CREATE TABLE src(id INTEGER PRIMARY KEY, v); CREATE TABLE dst(id INTEGER PRIMARY KEY, v);"
                         "INSERT INTO src(v) VALUES (1), (2)"),
                 0);
    const char *copy = "INSERT INTO dst SELECT * FROM src";
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, copy), 0);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "DELETE FROM dst"), 0);
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, copy, -1);
    CHECK_EQ_INT(run_q(db, &j, JR_DB_EXECUTE), 0);
    CHECK_EQ_INT(j.changes, 2);
    CHECK_EQ_INT(second_run_inline(db, "DELETE FROM t WHERE id = 99 OR u = 'q'"), 0);
    /* WITHOUT ROWID: the primary key is the table's own index */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE w(a TEXT, b INT, v, PRIMARY KEY (a, b)) WITHOUT ROWID"), 0);
    CHECK_EQ_INT(second_run_inline(db, "INSERT OR REPLACE INTO w(a, b, v) VALUES ('k', ?, 1)"), 1);
    CHECK_EQ_INT(second_run_inline(db, "UPDATE w SET v = 2 WHERE a = 'k' AND b = ?"), 1);
    CHECK_EQ_INT(second_run_inline(db, "UPDATE w SET v = 2 WHERE a = 'k'"), 0);           /* part of it */
    CHECK_EQ_INT(second_run_inline(db, "UPDATE w AS x SET v = 3 WHERE x.a = 'k' AND x.b = ?"), 0); /* an alias: unknown */
    /* not statements on rows */
    CHECK_EQ_INT(second_run_inline(db, "PRAGMA user_version"), 0);
    CHECK_EQ_INT(second_run_inline(db, "CREATE TABLE IF NOT EXISTS other(x)"), 0);
    /* a trigger does work the plan does not show: writes go to the worker */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE,
                         "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN UPDATE t SET n = 'trig'; END"),
                 0);
    CHECK_EQ_INT(second_run_inline(db, "INSERT INTO t(n) VALUES ('after trigger')"), 0);
    CHECK_EQ_INT(second_run_inline(db, "SELECT n FROM t WHERE id = 1"), 1);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "DROP TRIGGER t_ins"), 0);
    /* a cached statement re-prepared for the schema change is classified again */
    CHECK_EQ_INT(second_run_inline(db, "INSERT INTO t(n) VALUES ('after trigger')"), 1);
    /* foreign keys: a child's insert looks its parent up by key (bounded),
     * a parent's delete looks for children (any number) */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE child(id INTEGER PRIMARY KEY, t_id REFERENCES t(id))"), 0);
    CHECK_EQ_INT(second_run_inline(db, "INSERT INTO child(t_id) VALUES (1)"), 1);
    CHECK_EQ_INT(second_run_inline(db, "DELETE FROM t WHERE id = 2"), 0);
    /* a TEMP trigger is not in the main schema, but in the program */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TEMP TRIGGER s_upd AFTER UPDATE ON main.s BEGIN SELECT 1; END"), 0);
    CHECK_EQ_INT(second_run_inline(db, "UPDATE s SET n = 'after temp trigger' WHERE id = 1"), 0);
    /* a virtual table's module may do anything (FTS5 'rebuild') */
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE VIRTUAL TABLE f USING fts5(body)"), 0);
    CHECK_EQ_INT(second_run_inline(db, "INSERT INTO f(body) VALUES ('text')"), 0);
    /* an ATTACHed database has its own journal and fsyncs */
    char attach[200];
    snprintf(attach, sizeof attach, "ATTACH '%s' AS aux", path_in_dir("cls-aux.db"));
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, attach), 0);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE aux.x(id INTEGER PRIMARY KEY, v)"), 0);
    CHECK_EQ_INT(second_run_inline(db, "INSERT INTO aux.x(v) VALUES (1)"), 0);
    jr_db_job_free(&j);
    close_db(db);

    /* A commit that fsyncs must not run on the loop: no inline writes. */
    db = open_inline(path_in_dir("full.db"), QUICK_US, NULL, "FULL");
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)"), 0);
    CHECK_EQ_INT(second_run_inline(db, "INSERT INTO t(v) VALUES (1)"), 0);
    CHECK_EQ_INT(second_run_inline(db, "SELECT v FROM t WHERE id = 1"), 1);
    jr_db_job_free(&j);
    close_db(db);
}

TEST(inline_slow_query_goes_to_the_worker)
{
    jr_db *db = open_inline(":memory:", 2000, NULL, NULL);
    const char *sql =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) FROM c";
    jr_db_job j;
    jr_db_job_init(&j);
    /* quick the first time: known to the cache and classified a query */
    jr_db_job_set_sql(&j, sql, -1);
    jr_db_param_int(&j, NULL, 0, 10);
    CHECK_EQ_INT(run_q(db, &j, JR_DB_FIRST), 0);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 10);
    /* then long: stopped here after its 2 ms, run again by the worker */
    set_stmt(&j, sql, 3000000, JR_DB_BEGIN_DEFERRED);
    CHECK_EQ_INT(run_q(db, &j, JR_DB_FIRST), 0);
    CHECK_EQ_INT(j.rc, 0);
    CHECK_EQ_INT(j.ran_inline, 0);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 3000000);
    CHECK_EQ_INT(j.autocommit, 0); /* its BEGIN was undone here and done there */
    jr_db_stats s;
    jr_db_get_stats(db, &s);
    CHECK_EQ_INT(s.inline_fallbacks, 1);
    /* still a query: the next quick one runs here again */
    set_stmt(&j, sql, 5, JR_DB_NO_BEGIN);
    CHECK_EQ_INT(run_q(db, &j, JR_DB_FIRST), 1);
    CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.i, 5);
    jr_db_job_reset(&j);
    CHECK_EQ_INT(run(db, &j, JR_DB_COMMIT), 0);
    jr_db_job_free(&j);
    close_db(db);
}

static void timer_end_inline(uv_timer_t *t)
{
    timer_ctx *c = t->data;
    c->fired = 1;
    jr_db_job_reset(c->job);
    c->job->kind = JR_DB_COMMIT;
    CHECK_EQ_INT(jr_db_end_inline(c->db, c->job), 1);
}

TEST(inline_writer_waits_on_the_loop)
{
    const char *p = path_in_dir("wait.db");
    jr_db *a = open_inline(p, QUICK_US, NULL, NULL);
    jr_db_options o = default_opts(p);
    o.inline_us = QUICK_US;
    o.busy_timeout_ms = 150;
    int rc;
    jr_db *b = open_with(&o, jr_db_get_group(a), &rc, NULL, 0);
    CHECK_EQ_INT(rc, 0);
    jr_db_job ja, jb;
    jr_db_job_init(&ja);
    jr_db_job_init(&jb);
    CHECK_EQ_INT(run_sql(a, &ja, JR_DB_EXECUTE, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)"), 0);
    const char *ins = "INSERT INTO t(v) VALUES (?)";
    CHECK_EQ_INT(second_run_inline(a, ins), 1);
    CHECK_EQ_INT(second_run_inline(b, ins), 1);

    /* a writes (inline) and keeps its transaction open */
    set_stmt(&ja, ins, 100, JR_DB_BEGIN_DEFERRED);
    CHECK_EQ_INT(run_q(a, &ja, JR_DB_EXECUTE), 1);
    /* b's write waits here for the token, not on its thread */
    int done = 0;
    set_stmt(&jb, ins, 200, JR_DB_NO_BEGIN);
    jb.kind = JR_DB_EXECUTE;
    jb.cb = on_job;
    jb.data = &done;
    CHECK_EQ_INT(jr_db_run(b, &jb), 0);
    CHECK_EQ_INT(jr_db_inflight(b), 1);
    /* a commits 30 ms later, on the loop: then b's insert runs, inline */
    timer_ctx tc = {.db = a, .job = &ja};
    uv_timer_init(&loop, &tc.t);
    tc.t.data = &tc;
    uv_timer_start(&tc.t, timer_end_inline, 30, 0);
    wait_flag(&done, 1);
    CHECK(tc.fired);
    CHECK_EQ_INT(jb.rc, 0);
    CHECK_EQ_INT(jb.ran_inline, 1);
    CHECK_EQ_INT(jb.changes, 1);
    jr_db_stats s;
    jr_db_get_stats(b, &s);
    CHECK_EQ_INT(s.writer_waits, 0); /* its thread never waited */

    /* the token held past busy_timeout: "database is locked", like SQLite */
    set_stmt(&ja, ins, 300, JR_DB_BEGIN_DEFERRED);
    CHECK_EQ_INT(run_q(a, &ja, JR_DB_EXECUTE), 1);
    set_stmt(&jb, ins, 400, JR_DB_NO_BEGIN);
    done = 0;
    jb.data = &done;
    CHECK_EQ_INT(jr_db_run(b, &jb), 0);
    wait_flag(&done, 1);
    CHECK_EQ_STR(jr_db_code(jb.rc), "busy");
    CHECK_EQ_STR(jb.err, "database is locked");
    /* and interrupted while waiting: "interrupted" */
    set_stmt(&jb, ins, 500, JR_DB_NO_BEGIN);
    done = 0;
    CHECK_EQ_INT(jr_db_run(b, &jb), 0);
    jr_db_interrupt(b);
    wait_flag(&done, 1);
    CHECK_EQ_STR(jr_db_code(jb.rc), "interrupted");
    jr_db_job_reset(&ja);
    ja.kind = JR_DB_COMMIT;
    CHECK_EQ_INT(jr_db_end_inline(a, &ja), 1);
    CHECK_EQ_STR(first_text(b, "SELECT group_concat(v) FROM (SELECT v FROM t WHERE v >= 100 ORDER BY v)"),
                 "100,200,300");
    uv_close((uv_handle_t *)&tc.t, timer_closed);
    jr_db_job_free(&ja);
    jr_db_job_free(&jb);
    close_db(a);
    close_db(b);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

TEST(inline_commits_still_checkpoint)
{
    const char *p = path_in_dir("ckpt.db");
    jr_db *db = open_inline(p, QUICK_US, NULL, NULL);
    jr_db_job j;
    jr_db_job_init(&j);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)"), 0);
    /* ~4 pages a commit: 12000 frames (47 MB of WAL) without checkpoints */
    char big[12000];
    memset(big, 'x', sizeof big);
    int inline_runs = 0;
    for (int i = 0; i < 3000; i++) {
        jr_db_job_reset(&j);
        jr_db_job_set_sql(&j, "INSERT INTO t(v) VALUES (?)", -1);
        jr_db_param_blob(&j, NULL, 0, big, sizeof big);
        j.begin = JR_DB_BEGIN_DEFERRED;
        inline_runs += run_q(db, &j, JR_DB_EXECUTE);
        CHECK_EQ_INT(j.rc, 0);
        jr_db_job_reset(&j);
        j.kind = JR_DB_COMMIT;
        if (!jr_db_end_inline(db, &j)) CHECK_EQ_INT(run(db, &j, JR_DB_COMMIT), 0);
        /* let the checkpoint jobs run, as the loop does between requests */
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    CHECK(inline_runs > 2900);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", p);
    long n = file_size(wal);
    CHECK(n > 0);
    CHECK(n < 8L * 1024 * 1024); /* 1000 frames and a commit or two past them */
    CHECK_EQ_STR(first_text(db, "SELECT count(*) FROM t"), "3000");
    jr_db_job_free(&j);
    close_db(db);
}

TEST(inline_guards)
{
    jr_db *db = open_inline(path_in_dir("guards.db"), 2000, NULL, NULL);
    jr_db_job j;
    jr_db_job_init(&j);
    jr_db_stats s0, s1;
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_SCRIPT,
                         "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t(id, v) VALUES (1, x'00')"),
                 0);
    /* a query that was slow on the worker (way past 2 ms) is never tried
     * on the loop */
    CHECK_EQ_INT(second_run_inline(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                                       "WHERE x < 1000000) SELECT count(*) FROM c"),
                 0);
    /* one long instruction (reading a 64 MB value, tens of ms) cannot be
     * stopped: past 4 x 2 ms of CPU three times in a row (or 10 x that
     * once), it goes to the worker for good */
    const char *read = "SELECT v FROM t WHERE id = 1";
    CHECK_EQ_INT(second_run_inline(db, read), 1);
    CHECK_EQ_INT(run_sql(db, &j, JR_DB_EXECUTE, "UPDATE t SET v = zeroblob(64000000) WHERE id = 1"), 0);
    jr_db_get_stats(db, &s0);
    int here[4];
    for (int i = 0; i < 4; i++) {
        jr_db_job_reset(&j);
        jr_db_job_set_sql(&j, read, -1);
        here[i] = run_q(db, &j, JR_DB_FIRST);
        CHECK_EQ_INT(jr_db_cell(&j, 0, 0)->u.s.len, 64000000);
    }
    CHECK_EQ_INT(here[0], 1); /* still thought quick */
    CHECK_EQ_INT(here[3], 0); /* moved off the loop at the latest after three */
    for (int i = 1; i < 4; i++) CHECK(here[i] <= here[i - 1]); /* and for good */
    jr_db_get_stats(db, &s1);
    CHECK(s1.inline_runs - s0.inline_runs <= 3);
    /* demoted for good: even after the cache dropped it (capacity 16) */
    for (int i = 0; i < 20; i++) {
        char sql[40];
        snprintf(sql, sizeof sql, "SELECT %d", i);
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        CHECK_EQ_STR(first_text(db, sql), want);
    }
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, read, -1);
    CHECK_EQ_INT(run_q(db, &j, JR_DB_FIRST), 0); /* first run again: the worker's */
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, read, -1);
    CHECK_EQ_INT(run_q(db, &j, JR_DB_FIRST), 0); /* and not promoted */
    /* a write with 100 KB of parameters: the worker's, though a point write */
    const char *ins = "INSERT INTO t(v) VALUES (?)";
    CHECK_EQ_INT(second_run_inline(db, ins), 1);
    static char big[100 * 1024];
    jr_db_job_reset(&j);
    jr_db_job_set_sql(&j, ins, -1);
    jr_db_param_blob(&j, NULL, 0, big, sizeof big);
    CHECK_EQ_INT(run_q(db, &j, JR_DB_EXECUTE), 0);
    CHECK_EQ_INT(j.rc, 0);
    jr_db_job_free(&j);
    close_db(db);
}

TEST(inline_schema_change_goes_to_the_worker)
{
    const char *p = path_in_dir("schema.db");
    jr_db *a = open_inline(p, QUICK_US, NULL, NULL);
    jr_db *other = open_db(p); /* another pool: another process, as far as a knows */
    jr_db_job j;
    jr_db_job_init(&j);
    jr_db_stats s0, s1;
    CHECK_EQ_INT(run_sql(a, &j, JR_DB_SCRIPT, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); CREATE TABLE log(x)"), 0);
    const char *ins = "INSERT INTO t(v) VALUES (?)";
    CHECK_EQ_INT(second_run_inline(a, ins), 1);
    /* a trigger appears: the next run must not run its program on the loop */
    CHECK_EQ_INT(run_sql(other, &j, JR_DB_EXECUTE,
                         "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.v); END"),
                 0);
    jr_db_get_stats(a, &s0);
    set_stmt(&j, ins, 42, JR_DB_BEGIN_DEFERRED);
    CHECK_EQ_INT(run_q(a, &j, JR_DB_EXECUTE), 0);
    CHECK_EQ_INT(j.rc, 0);
    jr_db_get_stats(a, &s1);
    CHECK_EQ_INT(s1.inline_fallbacks - s0.inline_fallbacks, 1);
    CHECK_EQ_INT(s1.jobs - s0.jobs, 1);
    jr_db_job_reset(&j);
    CHECK_EQ_INT(run(a, &j, JR_DB_COMMIT), 0);
    CHECK_EQ_STR(first_text(other, "SELECT group_concat(x) FROM log"), "42");
    /* classified again, with its trigger: the worker's from now on */
    set_stmt(&j, ins, 43, JR_DB_NO_BEGIN);
    CHECK_EQ_INT(run_q(a, &j, JR_DB_EXECUTE), 0);
    jr_db_job_free(&j);
    close_db(a);
    close_db(other);
}

static int g_done_order[4], g_ndone;
static void on_done_ordered(jr_db_job *j) { g_done_order[g_ndone++] = *(int *)j->data; }

TEST(inline_writers_wait_in_turn)
{
    const char *p = path_in_dir("turn.db");
    jr_db *a = open_inline(p, QUICK_US, NULL, NULL);
    jr_db *b = open_inline(p, QUICK_US, jr_db_get_group(a), NULL);
    jr_db *c = open_inline(p, QUICK_US, jr_db_get_group(a), NULL);
    jr_db_job ja, jb, jc;
    jr_db_job_init(&ja);
    jr_db_job_init(&jb);
    jr_db_job_init(&jc);
    CHECK_EQ_INT(run_sql(a, &ja, JR_DB_EXECUTE, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)"), 0);
    const char *ins = "INSERT INTO t(v) VALUES (?)";
    CHECK_EQ_INT(second_run_inline(a, ins), 1);
    CHECK_EQ_INT(second_run_inline(b, ins), 1);
    CHECK_EQ_INT(second_run_inline(c, ins), 1);
    /* a holds the write lock; b waits for it; c comes when a is done, but
     * before b had its turn: c waits behind b */
    set_stmt(&ja, ins, 1, JR_DB_BEGIN_DEFERRED);
    CHECK_EQ_INT(run_q(a, &ja, JR_DB_EXECUTE), 1);
    static int id_b = 2, id_c = 3;
    g_ndone = 0;
    set_stmt(&jb, ins, 2, JR_DB_NO_BEGIN);
    jb.kind = JR_DB_EXECUTE;
    jb.cb = on_done_ordered;
    jb.data = &id_b;
    CHECK_EQ_INT(jr_db_run(b, &jb), 0);
    jr_db_job_reset(&ja);
    ja.kind = JR_DB_COMMIT;
    CHECK_EQ_INT(jr_db_end_inline(a, &ja), 1);
    set_stmt(&jc, ins, 3, JR_DB_NO_BEGIN);
    jc.kind = JR_DB_EXECUTE;
    jc.cb = on_done_ordered;
    jc.data = &id_c;
    int rc_c = jr_db_run(c, &jc);
    CHECK_EQ_INT(rc_c, 0);
    if (rc_c == 1) on_done_ordered(&jc); /* ran at once, ahead of b: wrong, but no hang */
    while (g_ndone < 2) uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(g_done_order[0], 2);
    CHECK_EQ_INT(g_done_order[1], 3);
    CHECK_EQ_INT(jb.rc, 0);
    CHECK_EQ_INT(jc.rc, 0);

    /* interrupting a waiter that is not first: it fails at once */
    set_stmt(&ja, ins, 4, JR_DB_BEGIN_DEFERRED);
    CHECK_EQ_INT(run_q(a, &ja, JR_DB_EXECUTE), 1);
    g_ndone = 0;
    set_stmt(&jb, ins, 5, JR_DB_NO_BEGIN);
    CHECK_EQ_INT(jr_db_run(b, &jb), 0);
    set_stmt(&jc, ins, 6, JR_DB_NO_BEGIN);
    rc_c = jr_db_run(c, &jc);
    CHECK_EQ_INT(rc_c, 0);
    if (rc_c == 1) on_done_ordered(&jc);
    jr_db_interrupt(c);
    while (g_ndone < 1) uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(g_done_order[0], 3);
    CHECK_EQ_STR(jr_db_code(jc.rc), "interrupted");
    jr_db_job_reset(&ja);
    ja.kind = JR_DB_COMMIT;
    CHECK_EQ_INT(jr_db_end_inline(a, &ja), 1);
    while (g_ndone < 2) uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(jb.rc, 0);
    CHECK_EQ_STR(first_text(a, "SELECT group_concat(v) FROM (SELECT v FROM t WHERE v < 7 ORDER BY v)"), "1,2,3,4,5");
    jr_db_job_free(&ja);
    jr_db_job_free(&jb);
    jr_db_job_free(&jc);
    close_db(a);
    close_db(b);
    close_db(c);
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
    RUN(transactions);
    RUN(interrupt_running_and_queued);
    RUN(slow_statement_blocks_only_its_connection);
    RUN(busy_timeout_and_group_wakeup);
    RUN(close_runs_queued_jobs_first);
    RUN(inline_runs_quick_statements);
    RUN(inline_only_bounded_statements);
    RUN(inline_slow_query_goes_to_the_worker);
    RUN(inline_writer_waits_on_the_loop);
    RUN(inline_commits_still_checkpoint);
    RUN(inline_guards);
    RUN(inline_schema_change_goes_to_the_worker);
    RUN(inline_writers_wait_in_turn);
    uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks */
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "loop still has handles\n");
        t_failed++;
    }
    rm_dir();
    return test_summary();
}
