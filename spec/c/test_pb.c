/* test_pb.c - core/pb.c: varints, tags, fixed64/double, and nested
 * messages whose length needs one, two or three varint bytes (the body
 * moved up by jr_pb_end), checked byte for byte. */
#include "pb.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static int bytes_eq(const jr_buf *b, const unsigned char *want, size_t n)
{
    return !b->failed && b->len == n && memcmp(b->data, want, n) == 0;
}

TEST(varints)
{
    jr_buf b = JR_BUF_INIT;
    jr_pb_varint(&b, 0);
    jr_pb_varint(&b, 1);
    jr_pb_varint(&b, 127);
    jr_pb_varint(&b, 128);
    jr_pb_varint(&b, 300);
    static const unsigned char want[] = {0x00, 0x01, 0x7f, 0x80, 0x01, 0xac, 0x02};
    CHECK(bytes_eq(&b, want, sizeof want));
    jr_buf_reset(&b);
    jr_pb_varint(&b, UINT64_MAX); /* ten bytes, the last 0x01 */
    CHECK_EQ_INT(b.len, 10);
    CHECK_EQ_INT((unsigned char)b.data[9], 0x01);
    CHECK_EQ_INT(jr_pb_varint_len(UINT64_MAX), 10);
    CHECK_EQ_INT(jr_pb_varint_len(127), 1);
    CHECK_EQ_INT(jr_pb_varint_len(128), 2);
    jr_buf_free(&b);
}

TEST(scalar_fields)
{
    jr_buf b = JR_BUF_INIT;
    jr_pb_uint(&b, 6, 2);                 /* kind = SERVER: 0x30 0x02 */
    jr_pb_int64(&b, 3, -1);               /* int64 -1: ten bytes of varint */
    jr_pb_fixed64(&b, 7, 0x0102030405060708ull);
    jr_pb_double(&b, 4, 1.5);
    jr_pb_string(&b, 5, "hi", 2);
    static const unsigned char want[] = {
        0x30, 0x02,
        0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        0x39, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
        0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f,
        0x2a, 0x02, 'h', 'i',
    };
    CHECK(bytes_eq(&b, want, sizeof want));
    jr_buf_free(&b);
}

/* A nested message of n body bytes: tag, varint(n), the body intact. */
static void nested(size_t n, int lenbytes)
{
    jr_buf b = JR_BUF_INIT;
    jr_pb_uint(&b, 1, 7); /* something before */
    size_t m = jr_pb_begin(&b, 15);
    for (size_t i = 0; i < n; i++) jr_buf_append_char(&b, (char)(i % 251));
    jr_pb_end(&b, m);
    jr_pb_uint(&b, 2, 9); /* and after */
    CHECK(!b.failed);
    CHECK_EQ_INT(b.len, 2 + 1 + lenbytes + n + 2);
    const unsigned char *p = (const unsigned char *)b.data;
    CHECK_EQ_INT(p[2], (15 << 3) | 2);
    uint64_t len = 0;
    for (int i = 0; i < lenbytes; i++) len |= (uint64_t)(p[3 + i] & 0x7f) << (7 * i);
    CHECK_EQ_INT(len, n);
    CHECK_EQ_INT(p[3 + lenbytes - 1] & 0x80, 0);
    int intact = 1;
    for (size_t i = 0; i < n; i++) intact &= p[3 + lenbytes + i] == (unsigned char)(i % 251);
    CHECK(intact);
    CHECK_EQ_INT(p[b.len - 2], 0x10);
    CHECK_EQ_INT(p[b.len - 1], 9);
    jr_buf_free(&b);
}

TEST(nested_lengths)
{
    nested(0, 1);
    nested(127, 1);
    nested(128, 2);
    nested(16383, 2);
    nested(16384, 3);
}

TEST(nested_in_nested)
{
    jr_buf b = JR_BUF_INIT;
    size_t outer = jr_pb_begin(&b, 1);
    size_t inner = jr_pb_begin(&b, 2);
    for (int i = 0; i < 200; i++) jr_buf_append_char(&b, 'x');
    jr_pb_end(&b, inner); /* 2 length bytes */
    jr_pb_end(&b, outer); /* body 1 + 2 + 200 = 203: 2 length bytes */
    const unsigned char *p = (const unsigned char *)b.data;
    CHECK_EQ_INT(b.len, 1 + 2 + 1 + 2 + 200);
    CHECK_EQ_INT(p[0], 0x0a);
    CHECK_EQ_INT(p[1], 0x80 | (203 & 0x7f));
    CHECK_EQ_INT(p[2], 203 >> 7);
    CHECK_EQ_INT(p[3], 0x12);
    CHECK_EQ_INT(p[4], 0x80 | (200 & 0x7f));
    CHECK_EQ_INT(p[5], 200 >> 7);
    CHECK_EQ_INT(p[6], 'x');
    jr_buf_free(&b);
}

int main(void)
{
    RUN(varints);
    RUN(scalar_fields);
    RUN(nested_lengths);
    RUN(nested_in_nested);
    return test_summary();
}
