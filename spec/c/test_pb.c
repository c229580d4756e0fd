/* test_pb.c - core/pb.c: varints, tags, fixed64/double, and nested
 * messages whose length needs one, two or three varint bytes (the body
 * moved up by jr_pb_end), checked byte for byte; the reader, on what the
 * writer wrote and on malformed input. */
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

/* What the writer wrote, the reader reads back field by field. */
TEST(reader_round_trip)
{
    jr_buf b = JR_BUF_INIT;
    jr_pb_uint(&b, 1, 300);
    jr_pb_int64(&b, 2, -1);
    jr_pb_fixed64(&b, 3, 0x0102030405060708ull);
    jr_pb_tag(&b, 4, JR_PB_I32);
    jr_buf_append(&b, "\x01\x02\x03\x04", 4);
    size_t m = jr_pb_begin(&b, 536870911); /* the largest field number */
    jr_pb_string(&b, 2, "why", 3);
    jr_pb_end(&b, m);
    jr_pb_reader r = {(const unsigned char *)b.data, (const unsigned char *)b.data + b.len};
    jr_pb_field f;
    CHECK_EQ_INT(jr_pb_next(&r, &f), 1);
    CHECK(f.num == 1 && f.wire == JR_PB_VARINT && f.v == 300);
    CHECK_EQ_INT(jr_pb_next(&r, &f), 1);
    CHECK(f.num == 2 && f.wire == JR_PB_VARINT && (int64_t)f.v == -1);
    CHECK_EQ_INT(jr_pb_next(&r, &f), 1);
    CHECK(f.num == 3 && f.wire == JR_PB_I64 && f.v == 0x0102030405060708ull);
    CHECK_EQ_INT(jr_pb_next(&r, &f), 1);
    CHECK(f.num == 4 && f.wire == JR_PB_I32 && f.v == 0x04030201u);
    CHECK_EQ_INT(jr_pb_next(&r, &f), 1);
    CHECK(f.num == 536870911 && f.wire == JR_PB_LEN && f.len == 5);
    jr_pb_reader in = {f.data, f.data + f.len};
    CHECK_EQ_INT(jr_pb_next(&in, &f), 1);
    CHECK(f.num == 2 && f.len == 3 && memcmp(f.data, "why", 3) == 0);
    CHECK_EQ_INT(jr_pb_next(&in, &f), 0);
    CHECK_EQ_INT(jr_pb_next(&r, &f), 0);
    jr_buf_free(&b);
}

static int read_all(const char *d, size_t n)
{
    jr_pb_reader r = {(const unsigned char *)d, (const unsigned char *)d + n};
    jr_pb_field f;
    int k;
    while ((k = jr_pb_next(&r, &f)) == 1) {
    }
    return k;
}

/* Bytes off the network: every way to run past the end is refused. */
TEST(reader_refuses_malformed)
{
    CHECK_EQ_INT(read_all("", 0), 0);
    CHECK_EQ_INT(read_all("\x08", 1), -1);                          /* a tag, no value */
    CHECK_EQ_INT(read_all("\x08\x80", 2), -1);                      /* a varint cut short */
    CHECK_EQ_INT(read_all("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12), -1); /* 11 bytes */
    CHECK_EQ_INT(read_all("\x0a\x05" "abc", 5), -1);                   /* a length past the end */
    CHECK_EQ_INT(read_all("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10), -1); /* a huge length */
    CHECK_EQ_INT(read_all("\x09\x01\x02", 3), -1);                 /* a fixed64 cut short */
    CHECK_EQ_INT(read_all("\x0d\x01", 2), -1);                      /* a fixed32 cut short */
    CHECK_EQ_INT(read_all("\x0b", 1), -1);                           /* a group */
    CHECK_EQ_INT(read_all("\x00\x01", 2), -1);                      /* field 0 */
    CHECK_EQ_INT(read_all("\x0a\x00", 2), 0);                       /* an empty message is fine */
}

int main(void)
{
    RUN(varints);
    RUN(scalar_fields);
    RUN(nested_lengths);
    RUN(nested_in_nested);
    RUN(reader_round_trip);
    RUN(reader_refuses_malformed);
    return test_summary();
}
