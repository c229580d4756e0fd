/* buf.c - see buf.h. */
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>

#define JR_BUF_FIRST_CAP 256

void jr_buf_init(jr_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

void jr_buf_free(jr_buf *b)
{
    free(b->data);
    jr_buf_init(b);
}

int jr_buf_grow(jr_buf *b, size_t n)
{
    /* Sticky: once a piece is missing, later pieces must not make the
     * contents look complete. */
    if (b->failed) return -1;
    if (b->cap - b->len >= n) return 0;
    if (n > SIZE_MAX - b->len) goto fail;
    size_t need = b->len + n;
    size_t cap = b->cap ? b->cap : JR_BUF_FIRST_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { /* doubling would overflow: take exactly what is needed */
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) goto fail;
    b->data = d;
    b->cap = cap;
    return 0;
fail:
    b->failed = 1;
    return -1;
}

void jr_buf_recycle(jr_buf *b, size_t keep_max)
{
    if (b->cap > keep_max) jr_buf_free(b);
    else jr_buf_reset(b);
}

void jr_buf_shrink(jr_buf *b)
{
    if (b->cap == b->len) return;
    if (b->len == 0) {
        jr_buf_free(b);
        return;
    }
    char *d = realloc(b->data, b->len);
    if (!d) return;
    b->data = d;
    b->cap = b->len;
}
