/* pb.c - the protocol-buffers writer of pb.h. */
#include "pb.h"

#include <string.h>

int jr_pb_varint_len(uint64_t v)
{
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void jr_pb_varint_slow(jr_buf *b, uint64_t v)
{
    if (jr_buf_reserve(b, 10) != 0) return;
    unsigned char *p = (unsigned char *)b->data + b->len;
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    b->len += n;
}

void jr_pb_raw_fixed64(jr_buf *b, uint64_t v)
{
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(v >> (8 * i));
    jr_buf_append(b, le, 8);
}

void jr_pb_raw_double(jr_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u); /* IEEE 754 binary64, as protobuf's double */
    jr_pb_raw_fixed64(b, u);
}

void jr_pb_uint(jr_buf *b, uint32_t field, uint64_t v)
{
    jr_pb_tag(b, field, JR_PB_VARINT);
    jr_pb_varint(b, v);
}

void jr_pb_int64(jr_buf *b, uint32_t field, int64_t v)
{
    /* protobuf int64: negative numbers as their 64-bit two's complement
     * (ten bytes), not zigzag (that is sint64). */
    jr_pb_uint(b, field, (uint64_t)v);
}

void jr_pb_fixed64(jr_buf *b, uint32_t field, uint64_t v)
{
    jr_pb_tag(b, field, JR_PB_I64);
    jr_pb_raw_fixed64(b, v);
}

void jr_pb_double(jr_buf *b, uint32_t field, double v)
{
    jr_pb_tag(b, field, JR_PB_I64);
    jr_pb_raw_double(b, v);
}

void jr_pb_bytes(jr_buf *b, uint32_t field, const void *d, size_t n)
{
    jr_pb_tag(b, field, JR_PB_LEN);
    jr_pb_varint(b, n);
    jr_buf_append(b, d, n);
}

size_t jr_pb_begin(jr_buf *b, uint32_t field)
{
    jr_pb_tag(b, field, JR_PB_LEN);
    jr_buf_append_char(b, 0); /* one length byte, patched by jr_pb_end */
    return b->len;
}

void jr_pb_end(jr_buf *b, size_t mark)
{
    if (b->failed || mark > b->len || mark == 0) return;
    size_t body = b->len - mark;
    int n = jr_pb_varint_len(body);
    if (n > 1) {
        /* the length needs n bytes, one is reserved: move the body up */
        if (jr_buf_reserve(b, (size_t)n - 1) != 0) return;
        memmove(b->data + mark + n - 1, b->data + mark, body);
        b->len += (size_t)n - 1;
    }
    unsigned char *p = (unsigned char *)b->data + mark - 1;
    uint64_t v = body;
    for (int i = 0; i < n - 1; i++) {
        p[i] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n - 1] = (unsigned char)v;
}

/* A varint at r->p: 0, or -1 (truncated, or more than ten bytes). */
static int read_varint(jr_pb_reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return -1;
        unsigned char b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

int jr_pb_next(jr_pb_reader *r, jr_pb_field *f)
{
    if (r->p >= r->end) return 0;
    uint64_t tag;
    if (read_varint(r, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return -1;
    memset(f, 0, sizeof *f);
    f->num = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    size_t left;
    switch (f->wire) {
    case JR_PB_VARINT: return read_varint(r, &f->v) == 0 ? 1 : -1;
    case JR_PB_I64:
    case JR_PB_I32: {
        size_t w = f->wire == JR_PB_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < w) return -1;
        for (size_t i = 0; i < w; i++) f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += w;
        return 1;
    }
    case JR_PB_LEN:
        if (read_varint(r, &f->v) != 0) return -1;
        left = (size_t)(r->end - r->p);
        if (f->v > left) return -1; /* compared as uint64: no size_t overflow */
        f->data = r->p;
        f->len = (size_t)f->v;
        r->p += f->len;
        return 1;
    default: return -1;
    }
}
