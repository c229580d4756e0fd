/* test_wsenv.c - the backplane envelope (core/wsenv.c): round trips for any
 * bytes, and strict rejection of every truncation, padding and hostile
 * length (run under ASan, a read past the end would abort). */
#include "test.h"
#include "wsenv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char ORIGIN[JR_WSENV_ORIGIN_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

TEST(broadcast_round_trip)
{
    jr_buf b = JR_BUF_INIT;
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, JR_WSENV_BROADCAST, 1, NULL, NULL, 0, "hello", 5), JR_WSENV_OK);
    jr_wsenv e;
    CHECK_EQ_INT(jr_wsenv_decode(&e, b.data, b.len, NULL), JR_WSENV_OK);
    CHECK_EQ_INT(e.kind, JR_WSENV_BROADCAST);
    CHECK_EQ_INT(e.is_text, 1);
    CHECK(memcmp(e.origin, ORIGIN, sizeof ORIGIN) == 0);
    CHECK_EQ_INT(e.nrooms, 0);
    CHECK_EQ_MEM(e.payload, e.len, "hello");
    jr_wsenv_clear(&e);
    jr_buf_free(&b);
}

/* Room names and payload with the bytes the original's framing broke on. */
TEST(rooms_round_trip_any_bytes)
{
    const char r0[] = {'a', ',', 'b'};
    const char r1[] = {'\0', 'x', '\0'};
    const char *rooms[] = {r0, r1, ""};
    size_t lens[] = {sizeof r0, sizeof r1, 0};
    const char payload[] = {'\0', ',', '\xff', '\xfe', '\0'};
    jr_buf b = JR_BUF_INIT;
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, JR_WSENV_ROOMS, 0, rooms, lens, 3, payload, sizeof payload),
                 JR_WSENV_OK);
    jr_wsenv e;
    CHECK_EQ_INT(jr_wsenv_decode(&e, b.data, b.len, NULL), JR_WSENV_OK);
    CHECK_EQ_INT(e.kind, JR_WSENV_ROOMS);
    CHECK_EQ_INT(e.is_text, 0);
    CHECK_EQ_INT(e.nrooms, 3);
    CHECK(e.lens[0] == sizeof r0 && memcmp(e.rooms[0], r0, sizeof r0) == 0);
    CHECK(e.lens[1] == sizeof r1 && memcmp(e.rooms[1], r1, sizeof r1) == 0);
    CHECK_EQ_INT(e.lens[2], 0);
    CHECK(e.len == sizeof payload && memcmp(e.payload, payload, sizeof payload) == 0);
    jr_wsenv_clear(&e);
    jr_buf_free(&b);
}

TEST(empty_payload_and_appending_to_a_used_buffer)
{
    jr_buf b = JR_BUF_INIT;
    jr_buf_append(&b, "prefix", 6);
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, JR_WSENV_BROADCAST, 0, NULL, NULL, 0, NULL, 0), JR_WSENV_OK);
    jr_wsenv e;
    CHECK_EQ_INT(jr_wsenv_decode(&e, b.data + 6, b.len - 6, NULL), JR_WSENV_OK);
    CHECK_EQ_INT(e.len, 0);
    CHECK_EQ_MEM(b.data, 6, "prefix");
    jr_wsenv_clear(&e);
    jr_buf_free(&b);
}

TEST(encode_rejects_bad_arguments_and_leaves_the_buffer)
{
    jr_buf b = JR_BUF_INIT;
    const char *rooms[] = {"a"};
    size_t lens[] = {1};
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, JR_WSENV_BROADCAST, 1, rooms, lens, 1, "x", 1), JR_WSENV_EINVALID);
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, JR_WSENV_ROOMS, 1, NULL, NULL, 0, "x", 1), JR_WSENV_EINVALID);
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, 7, 1, NULL, NULL, 0, "x", 1), JR_WSENV_EINVALID);
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, JR_WSENV_BROADCAST, 1, NULL, NULL, 0, NULL, 3), JR_WSENV_EINVALID);
    CHECK_EQ_INT(b.len, 0);
    CHECK(!b.failed);
    jr_buf_free(&b);
}

static int decode_fails(const void *data, size_t len, const char *want_why)
{
    jr_wsenv e;
    const char *why = NULL;
    int rc = jr_wsenv_decode(&e, data, len, &why);
    if (rc == JR_WSENV_OK) {
        jr_wsenv_clear(&e);
        return 0;
    }
    if (!why) return 0;
    if (want_why && strstr(why, want_why) == NULL) {
        fprintf(stderr, "  why: %s (wanted %s)\n", why, want_why);
        return 0;
    }
    return rc == JR_WSENV_EINVALID;
}

/* Every proper prefix of a valid envelope, and the envelope with bytes
 * after it, is refused. The copy is exactly as long as what is decoded, so
 * ASan catches any read past it. */
TEST(every_truncation_and_trailing_bytes_are_rejected)
{
    const char *rooms[] = {"tasks", "other room"};
    size_t lens[] = {5, 10};
    jr_buf b = JR_BUF_INIT;
    jr_wsenv_encode(&b, ORIGIN, JR_WSENV_ROOMS, 1, rooms, lens, 2, "payload!", 8);
    for (size_t cut = 0; cut < b.len; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, b.data, cut);
        if (!decode_fails(copy, cut, NULL)) {
            fprintf(stderr, "  prefix of %zu bytes accepted\n", cut);
            t_cur_failed = 1;
        }
        free(copy);
    }
    char *longer = malloc(b.len + 1);
    memcpy(longer, b.data, b.len);
    longer[b.len] = 0;
    CHECK(decode_fails(longer, b.len + 1, "trailing"));
    free(longer);
    jr_buf_free(&b);
}

/* Hand-made headers: bad magic/version/kind/type, and absurd counts. */
TEST(bad_headers_and_absurd_counts_are_rejected)
{
    jr_buf b = JR_BUF_INIT;
    jr_wsenv_encode(&b, ORIGIN, JR_WSENV_ROOMS, 1, (const char *const[]){"r"}, (const size_t[]){1}, 1, "p", 1);
    unsigned char *p = (unsigned char *)b.data;
    size_t count_at = 5 + JR_WSENV_ORIGIN_LEN;
    struct {
        size_t at;
        unsigned char v;
        const char *why;
    } cases[] = {
        {0, 'X', "magic"},
        {2, 99, "version"},
        {3, 2, "kind"},
        {4, 2, "frame type"},
        {3, JR_WSENV_BROADCAST, "broadcast envelope with rooms"},
        {count_at, 0xff, "room count"},     /* ~4 billion rooms */
        {count_at + 3, 2, "room"},          /* 2 rooms, bytes for 1 */
        {count_at + 4, 0x7f, "room name"},  /* a room ~2 GiB long */
        {count_at + 4 + 4 + 1, 0x10, "payload"}, /* payload ~256 MiB long */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char saved = p[cases[i].at];
        p[cases[i].at] = cases[i].v;
        if (!decode_fails(b.data, b.len, cases[i].why)) {
            fprintf(stderr, "  case %zu not rejected\n", i);
            t_cur_failed = 1;
        }
        p[cases[i].at] = saved;
    }
    /* A room send with zero rooms. */
    memset(p + count_at, 0, 4);
    CHECK(decode_fails(b.data, b.len, NULL));
    jr_buf_free(&b);
}

/* Random envelopes round-trip; random truncations and random byte flips
 * never crash (each decode either fails or yields lengths that stay inside
 * the input). */
TEST(random_envelopes_truncations_and_flips)
{
    jr_buf b = JR_BUF_INIT;
    char names[8][40];
    const char *rooms[8];
    size_t lens[8];
    char payload[300];
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = t_rand() % 9;
        for (size_t i = 0; i < n; i++) {
            lens[i] = t_rand() % sizeof names[i];
            for (size_t k = 0; k < lens[i]; k++) names[i][k] = (char)t_rand();
            rooms[i] = names[i];
        }
        size_t plen = t_rand() % sizeof payload;
        int text = (int)(t_rand() & 1);
        /* text: ASCII, so it is UTF-8 (text that is not is refused, below) */
        for (size_t k = 0; k < plen; k++) payload[k] = (char)(text ? t_rand() & 0x7f : t_rand());
        jr_buf_reset(&b);
        int kind = n ? JR_WSENV_ROOMS : JR_WSENV_BROADCAST;
        CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, kind, text, rooms, lens, n, payload, plen), JR_WSENV_OK);

        jr_wsenv e;
        CHECK_EQ_INT(jr_wsenv_decode(&e, b.data, b.len, NULL), JR_WSENV_OK);
        CHECK(e.nrooms == n && e.len == plen && e.is_text == text && e.kind == kind);
        for (size_t i = 0; i < n && i < e.nrooms; i++)
            CHECK(e.lens[i] == lens[i] && memcmp(e.rooms[i], rooms[i], lens[i]) == 0);
        CHECK(memcmp(e.payload, payload, plen) == 0);
        jr_wsenv_clear(&e);

        /* A truncated copy of exact size. */
        size_t cut = t_rand() % b.len;
        char *copy = malloc(b.len);
        memcpy(copy, b.data, cut);
        CHECK(jr_wsenv_decode(&e, copy, cut, NULL) != JR_WSENV_OK);
        /* A few flipped bytes: may decode (a flipped payload byte is still an
         * envelope) but everything must lie inside the input. */
        memcpy(copy, b.data, b.len);
        for (int f = 0; f < 3; f++) copy[t_rand() % b.len] ^= (char)(1u << (t_rand() % 8));
        if (jr_wsenv_decode(&e, copy, b.len, NULL) == JR_WSENV_OK) {
            const char *lo = copy, *hi = copy + b.len;
            CHECK(e.payload >= lo && e.payload + e.len == hi);
            for (size_t i = 0; i < e.nrooms; i++) CHECK(e.rooms[i] >= lo && e.rooms[i] + e.lens[i] <= hi);
            jr_wsenv_clear(&e);
        }
        free(copy);
    }
    jr_buf_free(&b);
}

/* A text envelope is sent as a text frame as it is: one that is not UTF-8
 * (something else publishing on a shared channel) is refused, the same
 * bytes as binary are fine. */
TEST(text_payload_must_be_utf8)
{
    jr_buf b = JR_BUF_INIT;
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, JR_WSENV_BROADCAST, 1, NULL, NULL, 0, "ok \xc3\xa9", 5), JR_WSENV_OK);
    jr_wsenv e;
    CHECK_EQ_INT(jr_wsenv_decode(&e, b.data, b.len, NULL), JR_WSENV_OK);
    jr_wsenv_clear(&e);
    const char *why = NULL;
    jr_buf_reset(&b);
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, JR_WSENV_BROADCAST, 1, NULL, NULL, 0, "bad \xff", 5), JR_WSENV_OK);
    CHECK_EQ_INT(jr_wsenv_decode(&e, b.data, b.len, &why), JR_WSENV_EINVALID);
    CHECK_EQ_STR(why ? why : "", "text payload is not UTF-8");
    jr_buf_reset(&b);
    CHECK_EQ_INT(jr_wsenv_encode(&b, ORIGIN, JR_WSENV_BROADCAST, 0, NULL, NULL, 0, "bad \xff", 5), JR_WSENV_OK);
    CHECK_EQ_INT(jr_wsenv_decode(&e, b.data, b.len, NULL), JR_WSENV_OK);
    jr_wsenv_clear(&e);
    jr_buf_free(&b);
}

/* The origin is read from the header alone: a hub drops its own echo
 * without decoding (or validating) the rest. */
TEST(origin_is_read_from_the_header)
{
    unsigned char me[JR_WSENV_ORIGIN_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    jr_buf b = JR_BUF_INIT;
    CHECK_EQ_INT(jr_wsenv_encode(&b, me, JR_WSENV_BROADCAST, 1, NULL, NULL, 0, "hello", 5), JR_WSENV_OK);
    const unsigned char *o = jr_wsenv_origin(b.data, b.len);
    CHECK(o != NULL);
    CHECK(o && memcmp(o, me, sizeof me) == 0);
    /* a truncated body still names its origin; a short header does not */
    CHECK(jr_wsenv_origin(b.data, b.len - 3) == o);
    CHECK(jr_wsenv_origin(b.data, 5 + JR_WSENV_ORIGIN_LEN - 1) == NULL);
    CHECK(jr_wsenv_origin(NULL, 0) == NULL);
    b.data[0] = 'X'; /* bad magic */
    CHECK(jr_wsenv_origin(b.data, b.len) == NULL);
    b.data[0] = 'J';
    b.data[2] = JR_WSENV_VERSION + 1; /* another version */
    CHECK(jr_wsenv_origin(b.data, b.len) == NULL);
    jr_buf_free(&b);
}

TEST(origins_are_random)
{
    unsigned char a[JR_WSENV_ORIGIN_LEN], b[JR_WSENV_ORIGIN_LEN];
    CHECK_EQ_INT(jr_wsenv_new_origin(a), 0);
    CHECK_EQ_INT(jr_wsenv_new_origin(b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

int main(void)
{
    RUN(broadcast_round_trip);
    RUN(rooms_round_trip_any_bytes);
    RUN(empty_payload_and_appending_to_a_used_buffer);
    RUN(encode_rejects_bad_arguments_and_leaves_the_buffer);
    RUN(every_truncation_and_trailing_bytes_are_rejected);
    RUN(bad_headers_and_absurd_counts_are_rejected);
    RUN(random_envelopes_truncations_and_flips);
    RUN(text_payload_must_be_utf8);
    RUN(origin_is_read_from_the_header);
    RUN(origins_are_random);
    return test_summary();
}
