/* db_cache.h - a connection's prepared statements, kept by SQL text (LRU).
 * Used by one thread at a time: the connection's thread, or the loop thread
 * while the connection is idle (db_conn.c). Internal to the SQLite room. */
#ifndef JR_DB_CACHE_H
#define JR_DB_CACHE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

typedef struct jr_db_cached {
    sqlite3_stmt *st;
    /* jr_db_run_read: its last run, on the loop thread or the connection's,
     * took longer than the read deadline; its next one is on the thread. */
    int slow;
    /* internal */
    char *sql;
    size_t len;
    uint32_t hash;
    struct jr_db_cached *hnext;      /* bucket chain */
    struct jr_db_cached *prev, *next; /* LRU list, most recently used first */
} jr_db_cached;

typedef struct {
    size_t cap, n, nbuckets;
    jr_db_cached **buckets;
    jr_db_cached *lru_head, *lru_tail;
} jr_db_cache;

/* cap 0: cache nothing (every statement is prepared and finalized).
 * Returns 0, or -1 out of memory. */
int jr_db_cache_init(jr_db_cache *c, size_t cap);
/* Finalize every cached statement and free the cache. */
void jr_db_cache_clear(jr_db_cache *c);

/* The prepared statement for the job's SQL, from the cache or prepared now
 * (and cached). *ent: its cache entry, or NULL when it is not cached (then
 * finalize *st after use). *st NULL with 0 returned: the SQL holds no
 * statement (blanks, comments). On error the job is failed and -1 returned.
 * Counts hits, misses and evictions in stats. */
int jr_db_cache_get(jr_db_cache *c, sqlite3 *h, jr_db_job *j, sqlite3_stmt **st, jr_db_cached **ent,
                    jr_db_stats *stats);

#endif
