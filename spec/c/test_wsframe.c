/* test_wsframe.c - the RFC 6455 parser and encoder (core/wsframe.c).
 *
 * Parser results are compared as a transcript: one line per complete
 * message or control frame, "E<code>" for an error. Feeding the same bytes
 * in any chunking must give the same transcript. */
#include "buf.h"
#include "test.h"
#include "test_wsframes.h"
#include "wsframe.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ transcripts */

typedef struct {
    jr_wsf_parser p;
    jr_buf out;   /* the transcript */
    jr_buf msg;   /* the message being reassembled */
    int err;      /* close code of the first error */
    int events;
} tr;

static void tr_init(tr *t, size_t max)
{
    memset(t, 0, sizeof *t);
    jr_wsf_parser_init(&t->p, max);
}

static void tr_free(tr *t)
{
    jr_buf_free(&t->out);
    jr_buf_free(&t->msg);
}

static void tr_printf(tr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tr_printf(tr *t, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    jr_buf_append(&t->out, line, (size_t)n);
}

/* Feed one chunk (copied: the parser unmasks in place). */
static void feed(tr *t, const char *data, size_t n)
{
    char *in = malloc(n ? n : 1);
    if (n) memcpy(in, data, n);
    size_t off = 0, used;
    jr_wsf_event ev;
    int r;
    while (!t->err && (r = jr_wsf_parse(&t->p, in + off, n - off, &used, &ev)) != JR_WSF_NEED) {
        off += used;
        CHECK(off <= n);
        t->events++;
        if (r == JR_WSF_DATA) {
            CHECK(ev.data >= in && ev.data + ev.len <= in + n); /* zero-copy: points into the input */
            jr_buf_append(&t->msg, ev.data, ev.len);
            if (ev.last) {
                tr_printf(t, "%c:%.*s|", ev.opcode == JR_WSF_OP_TEXT ? 'T' : 'B',
                          (int)(t->msg.len > 40 ? 40 : t->msg.len), t->msg.data ? t->msg.data : "");
                tr_printf(t, "len=%zu|", t->msg.len);
                jr_buf_reset(&t->msg);
            }
        } else if (r == JR_WSF_CONTROL) {
            if (ev.opcode == JR_WSF_OP_CLOSE)
                tr_printf(t, "close:%d:%.*s|", ev.code, (int)ev.rlen, ev.reason ? ev.reason : "");
            else
                tr_printf(t, "%s:%.*s|", ev.opcode == JR_WSF_OP_PING ? "ping" : "pong", (int)ev.len,
                          ev.data);
        } else {
            CHECK_EQ_INT(r, JR_WSF_ERROR);
            CHECK(ev.reason && ev.rlen > 0);
            t->err = ev.code;
            tr_printf(t, "E%d", ev.code);
        }
    }
    if (!t->err) CHECK_EQ_INT(used, n - off); /* NEED: everything consumed */
    free(in);
}

/* Transcript of data fed whole. */
static char *transcript(const jr_buf *b, size_t max, int *err)
{
    tr t;
    tr_init(&t, max);
    feed(&t, b->data, b->len);
    jr_buf_append_char(&t.out, '\0');
    char *s = strdup(t.out.data);
    if (err) *err = t.err;
    tr_free(&t);
    return s;
}

/* The close code the bytes fail with (0 when none). */
static int error_of(const jr_buf *b, size_t max)
{
    int err = 0;
    free(transcript(b, max, &err));
    return err;
}

static void expect_transcript(const jr_buf *b, size_t max, const char *want)
{
    char *s = transcript(b, max, NULL);
    CHECK_EQ_STR(s, want);
    free(s);
}

static int error_of_frame(int fin, int opcode, const void *data, size_t len)
{
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, fin, opcode, data, len, 1);
    int e = error_of(&b, 1 << 20);
    jr_buf_free(&b);
    return e;
}

/* ------------------------------------------------------------ encoder */

TEST(encoder_lengths)
{
    unsigned char h[JR_WSF_MAX_HEADER];
    CHECK_EQ_INT(jr_wsf_header(h, 1, JR_WSF_OP_TEXT, 5), 2);
    CHECK(h[0] == 0x81 && h[1] == 5);
    CHECK_EQ_INT(jr_wsf_header(h, 1, JR_WSF_OP_BINARY, 125), 2);
    CHECK(h[0] == 0x82 && h[1] == 125);
    CHECK_EQ_INT(jr_wsf_header(h, 0, JR_WSF_OP_TEXT, 126), 4);
    CHECK(h[0] == 0x01 && h[1] == 126 && h[2] == 0 && h[3] == 126);
    CHECK_EQ_INT(jr_wsf_header(h, 1, JR_WSF_OP_BINARY, 65535), 4);
    CHECK(h[1] == 126 && h[2] == 0xff && h[3] == 0xff);
    CHECK_EQ_INT(jr_wsf_header(h, 1, JR_WSF_OP_BINARY, 65536), 10);
    static const unsigned char l64[8] = {0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(h[1] == 127 && memcmp(h + 2, l64, 8) == 0);
    CHECK_EQ_INT(jr_wsf_header(h, 1, JR_WSF_OP_PING, (uint64_t)1 << 40), 10);
    static const unsigned char l40[8] = {0, 0, 1, 0, 0, 0, 0, 0};
    CHECK(h[0] == 0x89 && memcmp(h + 2, l40, 8) == 0);
    CHECK_EQ_INT(jr_wsf_header(h, 1, JR_WSF_OP_CLOSE, 0), 2);
    CHECK(h[0] == 0x88 && h[1] == 0);
    CHECK_EQ_INT(jr_wsf_header_len(125), 2);
    CHECK_EQ_INT(jr_wsf_header_len(126), 4);
    CHECK_EQ_INT(jr_wsf_header_len(65536), 10);
}

/* ------------------------------------------------------------ parser: good input */

TEST(rfc_masked_hello)
{
    /* RFC 6455 §5.7: a single-frame masked text message "Hello" */
    static const unsigned char raw[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                        0x7f, 0x9f, 0x4d, 0x51, 0x58};
    jr_buf b = JR_BUF_INIT;
    jr_buf_append(&b, raw, sizeof raw);
    expect_transcript(&b, 100, "T:Hello|len=5|");
    jr_buf_free(&b);
}

TEST(control_frames_interleave_fragments)
{
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 0, JR_WSF_OP_TEXT, "frag", 4, 1);
    put_frame(&b, 1, JR_WSF_OP_PING, "p1", 2, 1);
    put_frame(&b, 0, JR_WSF_OP_CONT, "", 0, 1); /* empty middle fragment */
    put_frame(&b, 1, JR_WSF_OP_PONG, "", 0, 1);
    put_frame(&b, 1, JR_WSF_OP_CONT, "mented", 6, 1);
    put_frame(&b, 1, JR_WSF_OP_BINARY, "", 0, 1); /* empty message */
    put_frame(&b, 1, JR_WSF_OP_CLOSE, NULL, 0, 1);
    expect_transcript(&b, 100, "ping:p1|pong:|T:fragmented|len=10|B:|len=0|close:1005:|");
    jr_buf_free(&b);
}

/* A stream of varied frames gives the same transcript however it is cut:
 * two chunks split at every byte position, and byte by byte. */
TEST(chunk_splits_at_every_position)
{
    jr_buf b = JR_BUF_INIT;
    char big[300], close[64];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
    put_frame(&b, 0, JR_WSF_OP_TEXT, "h\xc3", 2, 1);       /* é split across fragments */
    put_frame(&b, 1, JR_WSF_OP_PING, "are you there", 13, 1);
    put_frame(&b, 1, JR_WSF_OP_CONT, "\xa9llo", 4, 1);
    put_frame(&b, 1, JR_WSF_OP_BINARY, big, sizeof big, 1); /* 16-bit length */
    put_frame(&b, 1, JR_WSF_OP_TEXT, "x", 1, 1);
    put_frame(&b, 1, JR_WSF_OP_CLOSE, close, close_payload(close, 1000, "bye"), 1);
    int err = 0;
    char *whole = transcript(&b, 1000, &err);
    CHECK_EQ_INT(err, 0);
    CHECK_EQ_STR(whole, "ping:are you there|T:h\xc3\xa9llo|len=6|B:abcdefghijklmnopqrstuvwxyzabcdefghijklmn|"
                        "len=300|T:x|len=1|close:1000:bye|");
    for (size_t k = 0; k <= b.len; k++) {
        tr t;
        tr_init(&t, 1000);
        feed(&t, b.data, k);
        feed(&t, b.data + k, b.len - k);
        jr_buf_append_char(&t.out, '\0');
        if (strcmp(t.out.data, whole) != 0) {
            fprintf(stderr, "  split at %zu: %s\n", k, t.out.data);
            CHECK(0);
        }
        tr_free(&t);
    }
    tr t;
    tr_init(&t, 1000);
    for (size_t k = 0; k < b.len; k++) feed(&t, b.data + k, 1);
    jr_buf_append_char(&t.out, '\0');
    CHECK_EQ_STR(t.out.data, whole);
    tr_free(&t);
    free(whole);
    jr_buf_free(&b);
}

/* 64-bit length, and a payload long enough for the 8-byte unmasking loop at
 * every alignment of the key (chunks of 1..17 bytes). */
TEST(long_frame_in_odd_chunks)
{
    size_t n = 70000;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (char)(i * 7 + i / 255);
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 1, JR_WSF_OP_BINARY, data, n, 1);
    CHECK_EQ_INT(b.len, n + 14);
    tr t;
    tr_init(&t, n);
    size_t at = 0, step = 1;
    /* collect the payload ourselves (feed's transcript shows only 40 bytes) */
    while (at < b.len) {
        size_t k = b.len - at < step ? b.len - at : step;
        feed(&t, b.data + at, k);
        at += k;
        step = step % 17 + 1;
    }
    CHECK_EQ_INT(t.err, 0);
    CHECK(strstr(t.out.data, "len=70000|") != NULL);
    tr_free(&t);
    /* and whole, checking every byte */
    jr_wsf_parser p;
    jr_wsf_parser_init(&p, n);
    jr_wsf_event ev;
    size_t used;
    CHECK_EQ_INT(jr_wsf_parse(&p, b.data, b.len, &used, &ev), JR_WSF_DATA);
    CHECK(ev.last && ev.len == n && memcmp(ev.data, data, n) == 0 && used == b.len);
    CHECK_EQ_INT(jr_wsf_parse(&p, b.data + used, 0, &used, &ev), JR_WSF_NEED);
    free(data);
    jr_buf_free(&b);
}

/* ------------------------------------------------------------ parser: 1002 */

TEST(unmasked_frame_1002)
{
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 1, JR_WSF_OP_TEXT, "naked", 5, 0);
    CHECK_EQ_INT(error_of(&b, 100), 1002);
    jr_buf_free(&b);
}

TEST(reserved_bits_and_opcodes_1002)
{
    for (int rsv = 1; rsv < 8; rsv++) {
        jr_buf b = JR_BUF_INIT;
        put_frame(&b, 1, JR_WSF_OP_TEXT, "x", 1, 1);
        b.data[0] |= (char)(rsv << 4);
        CHECK_EQ_INT(error_of(&b, 100), 1002);
        jr_buf_free(&b);
    }
    static const int bad[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(error_of_frame(1, bad[i], "x", 1), 1002);
    /* the error comes from the first two bytes, before the rest arrives */
    jr_wsf_parser p;
    jr_wsf_parser_init(&p, 100);
    char two[2] = {(char)0x83, (char)0x81};
    size_t used;
    jr_wsf_event ev;
    CHECK_EQ_INT(jr_wsf_parse(&p, two, 2, &used, &ev), JR_WSF_ERROR);
    CHECK_EQ_INT(ev.code, 1002);
    /* and the parser stays failed */
    CHECK_EQ_INT(jr_wsf_parse(&p, two, 2, &used, &ev), JR_WSF_ERROR);
    CHECK_EQ_INT(ev.code, 1002);
}

TEST(control_frame_rules_1002)
{
    CHECK_EQ_INT(error_of_frame(0, JR_WSF_OP_PING, "x", 1), 1002);   /* FIN=0 */
    CHECK_EQ_INT(error_of_frame(0, JR_WSF_OP_CLOSE, NULL, 0), 1002);
    char big[126];
    memset(big, 'p', sizeof big);
    CHECK_EQ_INT(error_of_frame(1, JR_WSF_OP_PING, big, 126), 1002); /* over 125 */
    CHECK_EQ_INT(error_of_frame(1, JR_WSF_OP_PONG, big, 125), 0);
}

TEST(fragmentation_rules_1002)
{
    CHECK_EQ_INT(error_of_frame(1, JR_WSF_OP_CONT, "x", 1), 1002); /* nothing open */
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 0, JR_WSF_OP_TEXT, "a", 1, 1);
    put_frame(&b, 1, JR_WSF_OP_BINARY, "b", 1, 1); /* new message inside the first */
    CHECK_EQ_INT(error_of(&b, 100), 1002);
    jr_buf_reset(&b);
    put_frame(&b, 1, JR_WSF_OP_TEXT, "a", 1, 1);
    put_frame(&b, 1, JR_WSF_OP_CONT, "b", 1, 1); /* the first was complete */
    CHECK_EQ_INT(error_of(&b, 100), 1002);
    jr_buf_free(&b);
}

TEST(length_top_bit_1002)
{
    unsigned char raw[14] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    jr_buf b = JR_BUF_INIT;
    jr_buf_append(&b, raw, sizeof raw);
    CHECK_EQ_INT(error_of(&b, (size_t)-1), 1002);
    jr_buf_free(&b);
}

TEST(close_frame_rules)
{
    char p[130];
    CHECK_EQ_INT(error_of_frame(1, JR_WSF_OP_CLOSE, "\x03", 1), 1002); /* 1 byte */
    static const int bad[] = {0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int e = error_of_frame(1, JR_WSF_OP_CLOSE, p, close_payload(p, bad[i], NULL));
        if (e != 1002) fprintf(stderr, "  code %d: %d\n", bad[i], e);
        CHECK_EQ_INT(e, 1002);
    }
    static const int good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK_EQ_INT(error_of_frame(1, JR_WSF_OP_CLOSE, p, close_payload(p, good[i], "ok")), 0);
        CHECK(jr_wsf_close_code_valid(good[i]));
    }
    /* a reason that is not UTF-8: 1007 (documented choice) */
    CHECK_EQ_INT(error_of_frame(1, JR_WSF_OP_CLOSE, p, close_payload(p, 1000, "a\xff")), 1007);
    /* the longest reason: 123 bytes */
    char reason[124];
    memset(reason, 'r', 123);
    reason[123] = '\0';
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 1, JR_WSF_OP_CLOSE, p, close_payload(p, 4000, reason), 1);
    char *s = transcript(&b, 10, NULL);
    CHECK(strncmp(s, "close:4000:rrr", 14) == 0 && strlen(s) == 11 + 123 + 1);
    free(s);
    jr_buf_free(&b);
}

/* ------------------------------------------------------------ parser: 1007 */

TEST(invalid_utf8_1007_early_and_at_the_end)
{
    CHECK_EQ_INT(error_of_frame(1, JR_WSF_OP_TEXT, "ab\xc3\x28", 4), 1007);
    CHECK_EQ_INT(error_of_frame(1, JR_WSF_OP_BINARY, "ab\xc3\x28", 4), 0); /* binary: anything */

    /* a bad byte in the first fragment fails there: the rest never comes */
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 0, JR_WSF_OP_TEXT, "ok\xff", 3, 1);
    tr t;
    tr_init(&t, 100);
    feed(&t, b.data, b.len);
    CHECK_EQ_INT(t.err, 1007);
    tr_free(&t);

    /* ... and inside one frame, before its end arrives */
    jr_buf_reset(&b);
    put_frame(&b, 1, JR_WSF_OP_TEXT, "abc\xed\xa0\x80zzzzzz", 12, 1); /* a surrogate */
    tr_init(&t, 100);
    feed(&t, b.data, 6 + 6);   /* header + "abc" + the surrogate */
    CHECK_EQ_INT(t.err, 1007);
    tr_free(&t);

    /* a message ending inside a sequence fails at its last fragment */
    jr_buf_reset(&b);
    put_frame(&b, 0, JR_WSF_OP_TEXT, "a\xe2\x82", 3, 1); /* first 2 bytes of € */
    tr_init(&t, 100);
    feed(&t, b.data, b.len);
    CHECK_EQ_INT(t.err, 0);
    jr_buf_reset(&b);
    put_frame(&b, 1, JR_WSF_OP_CONT, "", 0, 1);
    feed(&t, b.data, b.len);
    CHECK_EQ_INT(t.err, 1007);
    tr_free(&t);

    /* the same sequence completed by the last fragment is fine */
    jr_buf_reset(&b);
    put_frame(&b, 0, JR_WSF_OP_TEXT, "a\xe2\x82", 3, 1);
    put_frame(&b, 1, JR_WSF_OP_CONT, "\xac", 1, 1);
    expect_transcript(&b, 100, "T:a\xe2\x82\xac|len=4|");
    jr_buf_free(&b);
}

TEST(utf8_validator_vectors)
{
    CHECK(jr_wsf_utf8_valid("", 0));
    CHECK(jr_wsf_utf8_valid("plain ascii, longer than eight bytes", 36));
    CHECK(jr_wsf_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 13));
    CHECK(jr_wsf_utf8_valid("\xed\x9f\xbf\xee\x80\x80", 6)); /* around the surrogates */
    static const char *bad[] = {"\x80", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf",
                                "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80",
                                "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                                "\xff", "\xc3", "\xe2\x82", "abcdefgh\xc3(xyz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (jr_wsf_utf8_valid(bad[i], strlen(bad[i]))) fprintf(stderr, "  accepted bad #%zu\n", i);
        CHECK(!jr_wsf_utf8_valid(bad[i], strlen(bad[i])));
    }
    /* incremental: a sequence split anywhere */
    const char *s = "\xf0\x9f\x98\x80";
    for (size_t k = 0; k <= 4; k++) {
        uint32_t st = jr_wsf_utf8(JR_WSF_UTF8_ACCEPT, s, k);
        CHECK(st != JR_WSF_UTF8_REJECT);
        CHECK_EQ_INT(jr_wsf_utf8(st, s + k, 4 - k), JR_WSF_UTF8_ACCEPT);
    }
}

/* ------------------------------------------------------------ parser: 1009 */

TEST(message_too_big_1009_from_the_header)
{
    /* only the header of a 2000-byte frame: the limit fails it at once */
    jr_buf b = JR_BUF_INIT;
    char data[2000];
    memset(data, 'a', sizeof data);
    put_frame(&b, 1, JR_WSF_OP_BINARY, data, sizeof data, 1);
    tr t;
    tr_init(&t, 1000);
    feed(&t, b.data, 8); /* 2 + 2 length + 4 key */
    CHECK_EQ_INT(t.err, 1009);
    CHECK_EQ_INT(t.events, 1);
    tr_free(&t);

    /* fragments: each under the limit, the sum over it */
    jr_buf_reset(&b);
    put_frame(&b, 0, JR_WSF_OP_TEXT, data, 600, 1);
    put_frame(&b, 1, JR_WSF_OP_CONT, data, 600, 1);
    CHECK_EQ_INT(error_of(&b, 1000), 1009);
    /* exactly the limit is fine; the next message starts from zero */
    jr_buf_reset(&b);
    put_frame(&b, 0, JR_WSF_OP_TEXT, data, 500, 1);
    put_frame(&b, 1, JR_WSF_OP_CONT, data, 500, 1);
    put_frame(&b, 1, JR_WSF_OP_BINARY, data, 1000, 1);
    CHECK_EQ_INT(error_of(&b, 1000), 0);
    /* control frames do not count */
    jr_buf_reset(&b);
    put_frame(&b, 0, JR_WSF_OP_TEXT, data, 1000, 1);
    put_frame(&b, 1, JR_WSF_OP_PING, data, 100, 1);
    put_frame(&b, 1, JR_WSF_OP_CONT, "", 0, 1);
    CHECK_EQ_INT(error_of(&b, 1000), 0);
    jr_buf_free(&b);
}

int main(void)
{
    RUN(encoder_lengths);
    RUN(rfc_masked_hello);
    RUN(control_frames_interleave_fragments);
    RUN(chunk_splits_at_every_position);
    RUN(long_frame_in_odd_chunks);
    RUN(unmasked_frame_1002);
    RUN(reserved_bits_and_opcodes_1002);
    RUN(control_frame_rules_1002);
    RUN(fragmentation_rules_1002);
    RUN(length_top_bit_1002);
    RUN(close_frame_rules);
    RUN(invalid_utf8_1007_early_and_at_the_end);
    RUN(utf8_validator_vectors);
    RUN(message_too_big_1009_from_the_header);
    return test_summary();
}
