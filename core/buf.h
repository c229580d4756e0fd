/* buf.h - the one growable byte buffer of core/ (HTTP requests and
 * responses, the JSON writer, SQLite jobs).
 *
 *   jr_buf b; jr_buf_init(&b);              (or = JR_BUF_INIT)
 *   jr_buf_append(&b, "abc", 3);  jr_buf_append_char(&b, '\n');
 *   if (!b.failed) use(b.data, b.len);
 *   jr_buf_reset(&b);                        (empty again, memory kept)
 *   jr_buf_free(&b);
 *
 * Growth doubles the capacity (first allocation 256 bytes), so appends are
 * amortized O(1) and a reused buffer reaches a steady state that allocates
 * nothing. The reserve/append fast paths are inline: they sit in the JSON
 * encoder's and the HTTP parser's inner loops.
 *
 * Failure: every growth checks for size overflow and a failed realloc.
 * The failing call returns -1 and sets `failed`, which stays set (and makes
 * every later growth fail) until reset or free, so a writer that appends
 * many pieces may check once at the end; callers that check every call can
 * ignore the flag. The bytes already in the buffer stay valid either way.
 *
 * `data` may move on growth: code that keeps positions inside the buffer
 * while appending keeps offsets, not pointers. */
#ifndef JR_BUF_H
#define JR_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct {
    char *data;   /* NULL until the first growth */
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated */
    int failed;   /* a growth failed since the last reset: contents are incomplete */
} jr_buf;

#define JR_BUF_INIT {NULL, 0, 0, 0}

void jr_buf_init(jr_buf *b);
/* Release the memory; b is empty and usable again. */
void jr_buf_free(jr_buf *b);
/* Out-of-line part of jr_buf_reserve: make room for n more bytes. */
int jr_buf_grow(jr_buf *b, size_t n);
/* Empty b for reuse, dropping its memory if it grew beyond keep_max: a
 * one-off huge payload must not stay pinned to a long-lived or recycled
 * owner. */
void jr_buf_recycle(jr_buf *b, size_t keep_max);
/* Give back the unused capacity (for a buffer that will live long and not
 * grow again). Keeps the buffer as it is when realloc fails. */
void jr_buf_shrink(jr_buf *b);

/* Make room for n more bytes after len. 0, or -1 (and b->failed). */
static inline int jr_buf_reserve(jr_buf *b, size_t n)
{
    return b->cap - b->len >= n ? 0 : jr_buf_grow(b, n);
}

/* Append n bytes (d may be NULL when n is 0). 0, or -1 (nothing appended). */
static inline int jr_buf_append(jr_buf *b, const void *d, size_t n)
{
    /* n == 0 on an unallocated buffer would hand memcpy a NULL. */
    if (n == 0) return 0;
    if (jr_buf_reserve(b, n) != 0) return -1;
    memcpy(b->data + b->len, d, n);
    b->len += n;
    return 0;
}

static inline int jr_buf_append_char(jr_buf *b, char c)
{
    if (jr_buf_reserve(b, 1) != 0) return -1;
    b->data[b->len++] = c;
    return 0;
}

/* Empty b, keeping its memory; clears `failed`. */
static inline void jr_buf_reset(jr_buf *b)
{
    b->len = 0;
    b->failed = 0;
}

#endif
