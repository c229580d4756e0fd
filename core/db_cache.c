/* db_cache.c - the statement cache of a connection (see db_cache.h). */
#include "db_cache.h"
#include "db_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static uint32_t sql_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int jr_db_cache_init(jr_db_cache *c, size_t cap)
{
    memset(c, 0, sizeof *c);
    c->cap = cap;
    if (cap == 0) return 0;
    size_t nb = 8;
    while (nb < cap * 2) nb *= 2;
    c->buckets = calloc(nb, sizeof *c->buckets);
    if (!c->buckets) return -1;
    c->nbuckets = nb;
    return 0;
}

static void lru_unlink(jr_db_cache *c, jr_db_cached *e)
{
    if (e->prev) e->prev->next = e->next;
    else c->lru_head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(jr_db_cache *c, jr_db_cached *e)
{
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head) c->lru_head->prev = e;
    c->lru_head = e;
    if (!c->lru_tail) c->lru_tail = e;
}

static void cache_remove(jr_db_cache *c, jr_db_cached *e)
{
    jr_db_cached **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    sqlite3_finalize(e->st);
    free(e->sql);
    free(e);
    c->n--;
}

void jr_db_cache_clear(jr_db_cache *c)
{
    while (c->lru_head) cache_remove(c, c->lru_head);
    free(c->buckets);
    c->buckets = NULL;
    c->nbuckets = 0;
}

/* Is there anything but blanks and comments in s? */
static int has_more_sql(sqlite3 *h, const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ';') s++;
    if (!*s) return 0;
    /* Comments or a second statement: let SQLite tell (a NULL statement
     * means only comments). */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, s, -1, &st, NULL) != SQLITE_OK) return 1;
    int more = st != NULL;
    sqlite3_finalize(st);
    return more;
}

int jr_db_cache_get(jr_db_cache *c, sqlite3 *h, jr_db_job *j, sqlite3_stmt **st, jr_db_cached **ent,
                    jr_db_stats *stats)
{
    const char *sql = j->req.data + j->sql_off;
    size_t len = j->sql_len;
    uint32_t hash = 0;
    *st = NULL;
    *ent = NULL;
    if (c->cap > 0) {
        hash = sql_hash(sql, len);
        for (jr_db_cached *e = c->buckets[hash & (c->nbuckets - 1)]; e; e = e->hnext) {
            if (e->hash == hash && e->len == len && memcmp(e->sql, sql, len) == 0) {
                if (c->lru_head != e) {
                    lru_unlink(c, e);
                    lru_push_front(c, e);
                }
                stats->cache_hits++;
                *st = e->st;
                *ent = e;
                return 0;
            }
        }
        stats->cache_misses++;
    }
    if (len >= INT_MAX) {
        jr_db_job_fail(j, SQLITE_TOOBIG, "SQL text too long");
        return -1;
    }
    const char *tail = NULL;
    /* len + 1: the buffer is NUL-terminated, which spares SQLite a copy. */
    int rc = sqlite3_prepare_v3(h, sql, (int)len + 1, c->cap > 0 ? SQLITE_PREPARE_PERSISTENT : 0, st, &tail);
    if (rc != SQLITE_OK) {
        jr_db_job_fail(j, rc, "%s", sqlite3_errmsg(h));
        return -1;
    }
    if (!*st) return 0;
    if (tail && has_more_sql(h, tail)) {
        sqlite3_finalize(*st);
        *st = NULL;
        jr_db_job_fail(j, SQLITE_MISUSE, "more than one statement given: use exec_script for several");
        return -1;
    }
    if (c->cap == 0) return 0;
    jr_db_cached *e = calloc(1, sizeof *e);
    char *copy = malloc(len + 1);
    if (!e || !copy) {
        /* No room to cache it: still run it. */
        free(e);
        free(copy);
        return 0;
    }
    memcpy(copy, sql, len);
    copy[len] = 0;
    if (c->n >= c->cap) {
        cache_remove(c, c->lru_tail);
        stats->cache_evictions++;
    }
    e->sql = copy;
    e->len = len;
    e->hash = hash;
    e->st = *st;
    jr_db_cached **b = &c->buckets[hash & (c->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push_front(c, e);
    c->n++;
    *ent = e;
    return 0;
}
