/* db_job.c - jobs of the SQLite connections (see db.h): the request (SQL
 * text, parameters), the results (columns, cells, bytes) and the stable
 * names of result codes. Buffers are kept across jobs: a connection's
 * steady state allocates nothing. */
#include "db.h"
#include "db_int.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Buffers larger than this are freed by jr_db_job_reset instead of kept:
 * one huge result must not pin its memory for the life of the connection. */
#define JR_DB_KEEP_MAX (1u << 20)


/* ------------------------------------------------------------------ */
/* Buffers and jobs                                                     */

/* Append n bytes plus a NUL (so text can be handed to C APIs as is);
 * *off gets where they start. */
static int buf_put(jr_buf *b, const void *p, size_t n, size_t *off)
{
    if (n + 1 < n || jr_buf_reserve(b, n + 1) != 0) return -1;
    *off = b->len;
    if (n) memcpy(b->data + b->len, p, n);
    b->data[b->len + n] = 0;
    b->len += n + 1;
    return 0;
}

void jr_db_job_init(jr_db_job *job) { memset(job, 0, sizeof *job); }

void jr_db_job_clear_results(jr_db_job *j)
{
    j->rc = j->txn_rc = 0;
    j->err[0] = j->txn_err[0] = 0;
    j->began = j->savepoint = j->needs_writer = 0;
    j->changes = j->last_insert_id = 0;
    j->sorts = j->vm_steps = j->fullscan_steps = 0;
    j->ncols = j->nrows = 0;
    jr_buf_reset(&j->res);
    j->ran_inline = 0;
}

void jr_db_job_reset(jr_db_job *job)
{
    job->sql_off = job->sql_len = 0;
    job->has_sql = 0;
    job->nparams = 0;
    job->named = 0;
    job->pre = 0;
    job->end_member = JR_DB_MEMBER_NONE;
    job->end_txn = JR_DB_TXN_KEEP;
    jr_db_job_clear_results(job);
    job->next = NULL;
    jr_buf_recycle(&job->req, JR_DB_KEEP_MAX);
    jr_buf_recycle(&job->res, JR_DB_KEEP_MAX);
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
    jr_buf_free(&job->req);
    jr_buf_free(&job->res);
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
    if (rc == JR_DB_ABORTED) return "aborted";
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

void jr_db_job_fail(jr_db_job *j, int rc, const char *fmt, ...)
{
    j->rc = rc == JR_DB_ABORTED ? rc : rc & 0xff;
    if (j->rc == 0) j->rc = SQLITE_ERROR;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err, sizeof j->err, fmt, ap);
    va_end(ap);
    j->nrows = 0;
}

/* ------------------------------------------------------------------ */
/* Parameters into a statement, results out of it (the connection's     */
/* thread, or the loop thread for jr_db_run_read)                        */

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
        /* A NULL pointer through bind_blob would mean NULL: say what we mean. */
        if (v->u.s.len == 0) return sqlite3_bind_zeroblob(st, i, 0);
        return sqlite3_bind_blob64(st, i, j->req.data + v->u.s.off, v->u.s.len, SQLITE_STATIC);
    }
    return SQLITE_MISUSE;
}

int jr_db_job_bind(jr_db_job *j, sqlite3_stmt *st)
{
    sqlite3 *h = sqlite3_db_handle(st);
    int n = sqlite3_bind_parameter_count(st);
    if (!j->named || j->nparams == 0) {
        if ((size_t)n != j->nparams) {
            jr_db_job_fail(j, SQLITE_RANGE, "the statement takes %d parameter%s, %zu given", n,
                           n == 1 ? "" : "s", j->nparams);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            int rc = bind_value(st, i + 1, j, &j->params[i].v);
            if (rc != SQLITE_OK) {
                jr_db_job_fail(j, rc, "parameter %d: %s", i + 1, sqlite3_errmsg(h));
                return -1;
            }
        }
        return 0;
    }
    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        if (!name || name[0] == '?') {
            jr_db_job_fail(j, SQLITE_RANGE,
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
            jr_db_job_fail(j, SQLITE_RANGE, "missing named parameter %s", name);
            return -1;
        }
        int rc = bind_value(st, i, j, &found->v);
        if (rc != SQLITE_OK) {
            jr_db_job_fail(j, rc, "parameter %s: %s", name, sqlite3_errmsg(h));
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

int jr_db_job_collect_columns(jr_db_job *j, sqlite3_stmt *st)
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

int jr_db_job_collect_row(jr_db_job *j, sqlite3_stmt *st)
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
