/* pb.h - a small protocol-buffers writer (what OTLP export needs: no
 * schema), and a field reader for the little the exporter reads back (a
 * collector's ExportTraceServiceResponse.partial_success).
 *
 *   jr_buf b = JR_BUF_INIT;
 *   jr_pb_string(&b, 5, "GET /", 5);          name = 5
 *   size_t m = jr_pb_begin(&b, 15);           status = 15 { ... }
 *   jr_pb_uint(&b, 3, 2);                       code = 3
 *   jr_pb_end(&b, m);
 *   if (!b.failed) send(b.data, b.len);
 *
 * Nested messages are written in place: jr_pb_begin writes the tag and one
 * length byte, jr_pb_end patches the length and, when it needs more than one
 * varint byte (a body >= 128 bytes), moves the body up. Most nested
 * messages (KeyValue, Status, a short AnyValue) are under 128 bytes, so one
 * pass without pre-computed sizes is the cheap path; a long body costs one
 * memmove per level.
 *
 * Failure (out of memory) is sticky in b->failed (jr_buf's rule): writers
 * check once at the end. jr_pb_begin returns a mark to hand to jr_pb_end
 * even then; jr_pb_end on a failed buffer does nothing. */
#ifndef JR_PB_H
#define JR_PB_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum { JR_PB_VARINT = 0, JR_PB_I64 = 1, JR_PB_LEN = 2, JR_PB_I32 = 5 };

/* The general case of jr_pb_varint (any value, room to grow). */
void jr_pb_varint_slow(jr_buf *b, uint64_t v);

/* A varint; inline for the common one-byte case (tags, short lengths):
 * an encoded span is mostly those. */
static inline void jr_pb_varint(jr_buf *b, uint64_t v)
{
    if (v < 0x80 && b->len < b->cap) {
        b->data[b->len++] = (char)v;
        return;
    }
    jr_pb_varint_slow(b, v);
}

static inline void jr_pb_tag(jr_buf *b, uint32_t field, int wire)
{
    jr_pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire);
}
/* Little-endian 8 bytes, no tag (a packed repeated fixed64/double's items). */
void jr_pb_raw_fixed64(jr_buf *b, uint64_t v);
void jr_pb_raw_double(jr_buf *b, double v);

/* field = varint v (uint32/uint64/enum/bool; an int64 as its two's
 * complement, as protobuf's int64 is). */
void jr_pb_uint(jr_buf *b, uint32_t field, uint64_t v);
void jr_pb_int64(jr_buf *b, uint32_t field, int64_t v);
void jr_pb_fixed64(jr_buf *b, uint32_t field, uint64_t v);
void jr_pb_double(jr_buf *b, uint32_t field, double v);
void jr_pb_bytes(jr_buf *b, uint32_t field, const void *d, size_t n);
#define jr_pb_string jr_pb_bytes

/* A length-delimited field whose body the caller writes next; returns the
 * mark for jr_pb_end. */
size_t jr_pb_begin(jr_buf *b, uint32_t field);
void jr_pb_end(jr_buf *b, size_t mark);

/* The number of bytes v takes as a varint (1..10). */
int jr_pb_varint_len(uint64_t v);

/* Reading: walks the fields of one message, bounds-checked (the bytes come
 * from the network).
 *   jr_pb_reader r = {data, data + len};  jr_pb_field f;  int k;
 *   while ((k = jr_pb_next(&r, &f)) == 1) if (f.num == 1 && f.wire == JR_PB_LEN) ... f.data, f.len
 *   if (k < 0) malformed
 * f.v holds a VARINT's value, or an I64/I32's little-endian bits. Groups
 * (wire types 3, 4) are refused as malformed: proto3 has none. */
typedef struct {
    const unsigned char *p, *end;
} jr_pb_reader;
typedef struct {
    uint32_t num;
    int wire;
    uint64_t v;
    const unsigned char *data; /* JR_PB_LEN: the bytes */
    size_t len;
} jr_pb_field;
/* 1 a field read, 0 at the end, -1 malformed (truncated, overlong varint,
 * a length past the end, field number 0, a group). */
int jr_pb_next(jr_pb_reader *r, jr_pb_field *f);

#endif
