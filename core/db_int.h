/* db_int.h - what the files of the SQLite room share among themselves
 * (db_job.c, db_cache.c, db_conn.c); not part of the public API (db.h). */
#ifndef JR_DB_INT_H
#define JR_DB_INT_H

#include <sqlite3.h>

#include "db.h"

/* Zero the results of a job (before it runs, or runs again). */
void jr_db_job_clear_results(jr_db_job *j);
/* Fail the job with rc (SQLite's code, or JR_DB_ABORTED) and a message. */
void jr_db_job_fail(jr_db_job *j, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Bind the job's parameters to st: 0, or -1 with the job failed. */
int jr_db_job_bind(jr_db_job *j, sqlite3_stmt *st);
/* Append st's column names / current row to the results: 0 or -1 (no memory). */
int jr_db_job_collect_columns(jr_db_job *j, sqlite3_stmt *st);
int jr_db_job_collect_row(jr_db_job *j, sqlite3_stmt *st);

#endif
