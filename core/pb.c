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

void jr_pb_varint(jr_buf *b, uint64_t v)
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

void jr_pb_tag(jr_buf *b, uint32_t field, int wire)
{
    jr_pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire);
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
