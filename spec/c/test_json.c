/* test_json.c - unit tests for core/json.c (writer and pull parser). */
#include "json.h"
#include "test.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jr_buf out, scratch;

/* out as a C string (the writers never leave it NULL once they wrote) */
static const char *out_str(void) { return out.data && !out.failed ? out.data : "(out of memory)"; }

/* Parse text and write it back compactly through the writer, or
 * "ERR <pos>: <msg>" ("RANGE <pos>" for out_of_range). INT64 events print as
 * "i64:<value>" so tests see which event came. */
static const char *canon_n(const char *text, size_t len)
{
    jr_json_parser p;
    jr_json_parser_init(&p, text, len, &scratch);
    jr_buf_reset(&out);
    int need_comma[JR_JSON_MAX_DEPTH + 1] = {0};
    int d = 0;
    for (;;) {
        jr_json_event ev = jr_json_next(&p);
        if (ev == JR_JSON_ERROR) {
            char msg[160];
            if (p.out_of_range) snprintf(msg, sizeof msg, "RANGE %zu", p.err_pos);
            else snprintf(msg, sizeof msg, "ERR %zu: %s", p.err_pos, p.err);
            jr_buf_reset(&out);
            jr_buf_append(&out, msg, strlen(msg) + 1);
            return out_str();
        }
        if (ev == JR_JSON_END) break;
        if (ev == JR_JSON_OBJECT_END || ev == JR_JSON_ARRAY_END) {
            jr_buf_append_char(&out, ev == JR_JSON_OBJECT_END ? '}' : ']');
            d--;
            continue;
        }
        if (need_comma[d]) jr_buf_append_char(&out, ',');
        need_comma[d] = ev != JR_JSON_KEY;
        switch (ev) {
        case JR_JSON_OBJECT: jr_buf_append_char(&out, '{'); need_comma[++d] = 0; break;
        case JR_JSON_ARRAY: jr_buf_append_char(&out, '['); need_comma[++d] = 0; break;
        case JR_JSON_KEY: jr_json_write_string(&out, p.str, p.len); jr_buf_append_char(&out, ':'); break;
        case JR_JSON_STRING: jr_json_write_string(&out, p.str, p.len); break;
        case JR_JSON_NUMBER: CHECK(jr_json_write_number(&out, p.num) == 0); break;
        case JR_JSON_INT64:
            jr_buf_append(&out, "i64:", 4);
            jr_json_write_int64(&out, p.i64);
            break;
        case JR_JSON_TRUE: jr_buf_append(&out, "true", 4); break;
        case JR_JSON_FALSE: jr_buf_append(&out, "false", 5); break;
        case JR_JSON_NULL: jr_buf_append(&out, "null", 4); break;
        default: CHECK(0);
        }
    }
    CHECK(d == 0);
    jr_buf_append_char(&out, '\0');
    return out_str();
}

static const char *canon(const char *text) { return canon_n(text, strlen(text)); }

/* Each {text, canonical form or "ERR ..."/"RANGE ..."} pair. */
static void check_canon(const char *const cases[][2], size_t n)
{
    for (size_t i = 0; i < n; i++) CHECK_EQ_STR(canon(cases[i][0]), cases[i][1]);
}

#define CHECK_CANON(cases) check_canon(cases, sizeof cases / sizeof *cases)

/* The double the parser reads from text (NAN when it is not a NUMBER). */
static double parse_num(const char *text)
{
    jr_json_parser p;
    jr_json_parser_init(&p, text, strlen(text), &scratch);
    if (jr_json_next(&p) != JR_JSON_NUMBER) return NAN;
    if (jr_json_next(&p) != JR_JSON_END) return NAN;
    return p.num;
}

static const char *num(double v)
{
    jr_buf_reset(&out);
    if (jr_json_write_number(&out, v) != 0) return "(refused)";
    jr_buf_append_char(&out, '\0');
    return out.data;
}

/* s written as a JSON string, or "(refused)" (the writer must then have
 * left the buffer as it was). */
static const char *str(const char *s, size_t len)
{
    jr_buf_reset(&out);
    jr_buf_append(&out, "#", 1);
    if (jr_json_write_string(&out, s, len) != 0) {
        CHECK_EQ_MEM(out.data, out.len, "#");
        return "(refused)";
    }
    jr_buf_append_char(&out, '\0');
    return out.data + 1;
}

/* ---- writer ---- */

TEST(write_integers)
{
    CHECK_EQ_STR(num(0), "0");
    CHECK_EQ_STR(num(-0.0), "0");
    CHECK_EQ_STR(num(1), "1");
    CHECK_EQ_STR(num(-1), "-1");
    CHECK_EQ_STR(num(42), "42");
    CHECK_EQ_STR(num(1234567890), "1234567890");
    CHECK_EQ_STR(num(9007199254740992.0), "9007199254740992");   /* 2^53 */
    CHECK_EQ_STR(num(-9007199254740992.0), "-9007199254740992"); /* -2^53 */
    CHECK_EQ_STR(num(9007199254740991.0), "9007199254740991");
    CHECK_EQ_STR(num(1e15), "1000000000000000");
}

TEST(write_doubles_round_trip)
{
    CHECK_EQ_STR(num(0.1), "0.1");
    CHECK_EQ_STR(num(-0.5), "-0.5");
    CHECK_EQ_STR(num(1e-7), "1e-07");
    CHECK_EQ_STR(num(1e308), "1e+308");
    CHECK_EQ_STR(num(3.14), "3.14");
    CHECK_EQ_STR(num(1.0 / 3), "0.3333333333333333");
    CHECK_EQ_STR(num(0.1 + 0.2), "0.30000000000000004"); /* needs 17 digits */
    CHECK_EQ_STR(num(5e-324), "5e-324");
    CHECK_EQ_STR(num(2.2250738585072014e-308), "2.2250738585072014e-308");
    CHECK_EQ_STR(num(98.6), "98.6");
    CHECK_EQ_STR(num(0.0001), "0.0001");
    CHECK_EQ_STR(num(0.00012), "0.00012");
    CHECK_EQ_STR(num(123456789012.5), "123456789012.5");
    CHECK_EQ_STR(num(6.02214076e23), "6.02214076e+23");
    CHECK_EQ_STR(num(-1.5e-300), "-1.5e-300");
    CHECK_EQ_STR(num(1.7976931348623157e308), "1.7976931348623157e+308");
    /* beyond 2^53 a whole double prints with an exponent, so it reads back
     * as a double and not as an int64 literal */
    CHECK_EQ_STR(num(9007199254740994.0), "9.007199254740994e+15");
    CHECK_EQ_STR(num(1152921504606846976.0), "1.152921504606847e+18");
    /* every one of these reads back as the same double */
    double vals[] = {0.1, 1e-7, 1e308, 2.2250738585072014e-308, 123456.789, 1.0 / 7, 6.02214076e23,
                     -1e-300, 4.35, 0.3, 2.5e-5, 9007199254740993.0};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        const char *s = num(vals[i]);
        CHECK(strtod(s, NULL) == vals[i]);
        CHECK(parse_num(s) == vals[i]);
    }
}

/* The shortest of %.15g/%.16g/%.17g that reads back: a reference. */
static int ref_digits(double v)
{
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    int n = 0;
    for (const char *p = tmp; *p && *p != 'e'; p++) n += *p >= '0' && *p <= '9';
    return n;
}

static int sig_digits(const char *s)
{
    int n = 0, lead = 1;
    for (const char *p = s; *p && *p != 'e'; p++) {
        if (*p < '0' || *p > '9') continue;
        if (lead && *p == '0') continue;
        lead = 0;
        n++;
    }
    return n;
}

TEST(write_doubles_random)
{
    /* Random bit patterns over the whole range, and random "human" decimals:
     * every output must read back exactly, and in 1e-7..1e22 be no longer
     * than printf's shortest of %.15g/%.16g/%.17g. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int longer = 0, total = 0;
    for (int i = 0; i < 300000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        if (i & 1) {
            memcpy(&v, &x, sizeof v);
            if (!isfinite(v) || v == 0) continue;
        } else {
            v = (double)(int64_t)(x % 100000000) / (double)(1 + (x >> 40) % 100000);
        }
        const char *s = num(v);
        double back = strtod(s, NULL);
        if (back != v) fprintf(stderr, "  %.17g printed as %s\n", v, s);
        CHECK(back == v);
        CHECK(parse_num(s) == v);
        total++;
        /* Beyond 1e-7..1e22 about 1 in 5000 keeps one digit more than
         * needed (see shorten() in json.c): still exact, so not counted. */
        double a = fabs(v);
        if (a >= 1e-7 && a < 1e22 && sig_digits(s) > ref_digits(v) && v != (double)(int64_t)v) {
            if (longer < 5) fprintf(stderr, "  %.17g -> %s (%d digits)\n", v, s, ref_digits(v));
            longer++;
        }
    }
    if (longer) fprintf(stderr, "  %d of %d outputs are longer than needed\n", longer, total);
    CHECK_EQ_INT(longer, 0);
}

TEST(write_decimals_as_typed)
{
    /* k / 10^d prints as the decimal one would type (Grisu2 alone gives
     * 0.09093999999999999 for 0.09094). */
    static const double divs[] = {10, 100, 1000, 1e4, 1e5, 1e6};
    int bad = 0;
    for (int d = 0; d < 6; d++) {
        for (long k = 1; k < 200000; k++) {
            double v = (double)k / divs[d];
            char ref[40];
            snprintf(ref, sizeof ref, "%.15g", v);
            if (strchr(ref, 'e')) continue;
            const char *s = num(v);
            if (strcmp(s, ref) != 0 && bad++ < 5) fprintf(stderr, "  %s printed as %s\n", ref, s);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(write_refuses_nan_and_inf)
{
    jr_buf_reset(&out);
    CHECK(jr_json_write_number(&out, NAN) == -1);
    CHECK(jr_json_write_number(&out, INFINITY) == -1);
    CHECK(jr_json_write_number(&out, -INFINITY) == -1);
    CHECK_EQ_INT(out.len, 0);
}

TEST(write_int64)
{
    jr_buf_reset(&out);
    jr_json_write_int64(&out, INT64_MAX);
    jr_buf_append_char(&out, ' ');
    jr_json_write_int64(&out, INT64_MIN);
    jr_buf_append_char(&out, ' ');
    jr_json_write_int64(&out, 0);
    jr_buf_append_char(&out, ' ');
    jr_json_write_int64(&out, -7);
    CHECK_EQ_MEM(out.data, out.len, "9223372036854775807 -9223372036854775808 0 -7");
}

TEST(write_string_escapes)
{
    CHECK_EQ_STR(str("", 0), "\"\"");
    CHECK_EQ_STR(str("hello", 5), "\"hello\"");
    CHECK_EQ_STR(str("a\"b\\c/d", 7), "\"a\\\"b\\\\c/d\"");
    CHECK_EQ_STR(str("\n\r\t\b\f", 5), "\"\\n\\r\\t\\b\\f\"");
    CHECK_EQ_STR(str("\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\"");
    CHECK_EQ_STR(str("\0x", 2), "\"\\u0000x\"");
    CHECK_EQ_STR(str("\xc3\xa9\xf0\x9f\x98\x80", 6), "\"\xc3\xa9\xf0\x9f\x98\x80\""); /* as is */
    CHECK_EQ_STR(str("\xff\xfe", 2), "(refused)"); /* not UTF-8 */
    /* escapes at every offset of the 8-byte fast path */
    for (int i = 0; i < 20; i++) {
        char in[21], want[64];
        memset(in, 'a', 20);
        in[i] = '"';
        in[20] = 0;
        snprintf(want, sizeof want, "\"%.*s\\\"%s\"", i, in, in + i + 1);
        CHECK_EQ_STR(str(in, 20), want);
    }
}

/* A byte-at-a-time escaper to check the word-at-a-time one against. */
static void ref_escape(char *out, const char *s, size_t len)
{
    *out++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c == '\n') {
            out += sprintf(out, "\\n");
        } else if (c == '\r') {
            out += sprintf(out, "\\r");
        } else if (c == '\t') {
            out += sprintf(out, "\\t");
        } else if (c == '\b') {
            out += sprintf(out, "\\b");
        } else if (c == '\f') {
            out += sprintf(out, "\\f");
        } else if (c < 0x20) {
            out += sprintf(out, "\\u%04x", c);
        } else {
            *out++ = (char)c;
        }
    }
    *out++ = '"';
    *out = 0;
}

TEST(write_string_every_length_and_position)
{
    /* the inline path (1..16 bytes), the word loop and its tail; UTF-8
     * sequences of each length are copied, broken ones refused */
    static const char *const specials[] = {"\"", "\\", "\n", "\x1f", "", "\x7f",
                                           "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    static const char *const broken[] = {"\xc3", "\xff", "\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
    char in[40], want[300];
    for (size_t len = 0; len <= 33; len++) {
        memset(in, 'a', len);
        ref_escape(want, in, len);
        CHECK_EQ_STR(str(in, len), want);
        for (size_t pos = 0; pos < len; pos++) {
            for (size_t k = 0; k < sizeof specials / sizeof *specials; k++) {
                size_t sl = k == 4 ? 1 : strlen(specials[k]); /* k == 4: a NUL */
                if (pos + sl > len) continue;
                memset(in, 'a', len);
                memcpy(in + pos, specials[k], sl);
                if (pos + sl < len) in[len - 1] = '"'; /* and one at the end */
                ref_escape(want, in, len);
                CHECK_EQ_STR(str(in, len), want);
                /* as a key, with the ':' */
                jr_buf_reset(&out);
                CHECK(jr_json_write_key(&out, in, len) == 0);
                strcat(want, ":");
                CHECK_EQ_MEM(out.data, out.len, want);
            }
            for (size_t k = 0; k < sizeof broken / sizeof *broken; k++) {
                size_t bl = strlen(broken[k]);
                if (pos + bl > len) continue;
                memset(in, 'a', len);
                memcpy(in + pos, broken[k], bl);
                CHECK_EQ_STR(str(in, len), "(refused)");
                jr_buf_reset(&out);
                CHECK(jr_json_write_key(&out, in, len) == -1);
                CHECK_EQ_INT(out.len, 0);
            }
        }
    }
}

TEST(write_long_string_crosses_chunks)
{
    size_t n = 10000;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++) s[i] = i % 3 == 0 ? '\n' : 'x';
    jr_buf_reset(&out);
    jr_json_write_string(&out, s, n);
    CHECK(!out.failed);
    CHECK_EQ_INT(out.len, n + (n + 2) / 3 + 2);
    /* and it parses back to the same bytes */
    jr_json_parser p;
    jr_json_parser_init(&p, out.data, out.len, &scratch);
    CHECK(jr_json_next(&p) == JR_JSON_STRING);
    CHECK(p.len == n && memcmp(p.str, s, n) == 0);
    free(s);
}

TEST(write_long_string_utf8_across_chunks)
{
    /* Long strings are escaped in chunks of 4096 bytes: a character cut by
     * a chunk's end must still be checked (and copied) whole. */
    static const char *const chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    size_t n = 9000;
    char *s = malloc(n), *want = malloc(n + 3);
    for (size_t c = 0; c < 3; c++) {
        size_t cl = strlen(chars[c]);
        for (size_t at = 4090; at <= 4097; at++) {
            memset(s, 'x', n);
            memcpy(s + at, chars[c], cl);
            memcpy(s + 2 * at, chars[c], cl); /* near the second cut too */
            want[0] = '"';
            memcpy(want + 1, s, n);
            want[n + 1] = '"';
            want[n + 2] = 0;
            CHECK_EQ_STR(str(s, n), want);
            /* the same character without its last byte is refused */
            s[at + cl - 1] = 'x';
            CHECK_EQ_STR(str(s, n), "(refused)");
        }
    }
    /* a run of continuation bytes across the cut is refused wherever it falls */
    for (size_t at = 4090; at <= 4097; at++) {
        memset(s, 'x', n);
        memset(s + at, 0x80, 5);
        CHECK_EQ_STR(str(s, n), "(refused)");
    }
    /* a bad byte far into a long string leaves the buffer as it was */
    memset(s, 'y', n);
    s[n - 2] = (char)0xFF;
    CHECK_EQ_STR(str(s, n), "(refused)");
    free(s);
    free(want);
}

/* ---- UTF-8 ---- */

/* A code-point decoder written independently of jr_json_utf8_check's table:
 * is s[0..n) UTF-8 (shortest form, no surrogates, at most U+10FFFF)? */
static int ref_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], cp, min;
        size_t len;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

/* jr_json_utf8_check's verdict as "ok" or "<pos>: <why>". */
static const char *u8(const char *s, size_t n)
{
    static char msg[96];
    size_t pos = 99;
    const char *why = jr_json_utf8_check(s, n, &pos);
    if (!why) return "ok";
    snprintf(msg, sizeof msg, "%zu: %s", pos, why);
    return msg;
}

TEST(utf8_check_cases)
{
    /* {input, "ok" or "<offset>: <why>"}; inputs hold no NUL */
    static const char *const cases[][2] = {
        {"", "ok"},
        {"plain ascii, long enough for the word loop", "ok"},
        {"\xc2\x80 \xdf\xbf \xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbf", "ok"},
        {"\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf", "ok"}, /* U+10000, U+10FFFF */
        {"\x80", "0: stray continuation byte"},
        {"abcdefghij\xbf", "10: stray continuation byte"},
        {"\xc3\xa9\xa9", "2: stray continuation byte"},
        {"\xc0\x80", "0: overlong encoding"}, /* NUL in two bytes */
        {"\xc1\xbf", "0: overlong encoding"},
        {"a\xe0\x80\xaf", "1: overlong encoding"}, /* '/' in three */
        {"\xe0\x9f\xbf", "0: overlong encoding"},
        {"\xf0\x8f\xbf\xbf", "0: overlong encoding"},
        {"\xed\xa0\x80", "0: encoded surrogate U+D800..U+DFFF"},
        {"\xed\xbf\xbf", "0: encoded surrogate U+D800..U+DFFF"},
        {"\xf4\x90\x80\x80", "0: code point above U+10FFFF"},
        {"\xf5\x80\x80\x80", "0: invalid byte"},
        {"\xfe", "0: invalid byte"},
        {"12345678\xff", "8: invalid byte"},
        {"\xc3", "0: truncated sequence"},
        {"\xc3" "a", "0: truncated sequence"},
        {"\xe2\x82", "0: truncated sequence"},
        {"\xe2\x82z", "0: truncated sequence"},
        {"\xf0\x9f\x98", "0: truncated sequence"},
        {"\xf0\x9f\x98\xc3\xa9", "0: truncated sequence"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_EQ_STR(u8(cases[i][0], strlen(cases[i][0])), cases[i][1]);
    CHECK(jr_json_utf8_check("\xff", 1, NULL) != NULL); /* pos is optional */
}

/* Every string of 1..3 bytes: the checker agrees with the reference
 * decoder, and so do the writer and the parser on those that need no
 * escaping. */
TEST(utf8_exhaustive_short_strings)
{
    unsigned char s[3];
    char doc[8];
    long disagree = 0;
    for (unsigned v = 0; v < (1u << 24); v++) {
        s[0] = (unsigned char)(v >> 16);
        s[1] = (unsigned char)(v >> 8);
        s[2] = (unsigned char)v;
        int ref = ref_utf8(s, 3);
        disagree += (jr_json_utf8_check((const char *)s, 3, NULL) == NULL) != ref;
        if (v < (1u << 16)) {
            disagree += (jr_json_utf8_check((const char *)s + 1, 2, NULL) == NULL) != ref_utf8(s + 1, 2);
            if (v < 256) disagree += (jr_json_utf8_check((const char *)s + 2, 1, NULL) == NULL) != ref_utf8(s + 2, 1);
        }
        if (s[0] < 0x20 || s[1] < 0x20 || s[2] < 0x20 || memchr(s, '"', 3) || memchr(s, '\\', 3)) continue;
        jr_buf_reset(&out);
        disagree += (jr_json_write_string(&out, (const char *)s, 3) == 0) != ref;
        doc[0] = '"';
        memcpy(doc + 1, s, 3);
        doc[4] = '"';
        jr_json_parser p;
        jr_json_parser_init(&p, doc, 5, &scratch);
        disagree += (jr_json_next(&p) == JR_JSON_STRING) != ref;
    }
    CHECK_EQ_INT(disagree, 0);
}

/* Four-byte leads with every second byte, and continuation bytes at and
 * past their edges after it. */
TEST(utf8_four_byte_sequences)
{
    static const unsigned char tails[] = {0x7F, 0x80, 0xBF, 0xC0};
    long disagree = 0;
    for (unsigned a = 0xF0; a <= 0xFF; a++)
        for (unsigned b = 0; b < 256; b++)
            for (size_t c = 0; c < 4; c++)
                for (size_t d = 0; d < 4; d++) {
                    unsigned char s[4] = {(unsigned char)a, (unsigned char)b, tails[c], tails[d]};
                    disagree += (jr_json_utf8_check((const char *)s, 4, NULL) == NULL) != ref_utf8(s, 4);
                }
    CHECK_EQ_INT(disagree, 0);
}

/* ---- parser: values ---- */

TEST(parse_scalars_and_whitespace)
{
    CHECK_EQ_STR(canon("true"), "true");
    CHECK_EQ_STR(canon("false"), "false");
    CHECK_EQ_STR(canon("null"), "null");
    CHECK_EQ_STR(canon(" \t\r\n 1 \t\r\n "), "1");
    CHECK_EQ_STR(canon("\"x\""), "\"x\"");
    CHECK_EQ_STR(canon("[ 1 , [ ] , { } , { \"a\" : [ null ] } ]"), "[1,[],{},{\"a\":[null]}]");
    CHECK_EQ_STR(canon("{\"a\":1,\"a\":2}"), "{\"a\":1,\"a\":2}"); /* duplicates reach the caller */
}

TEST(parse_integers)
{
    CHECK_EQ_STR(canon("0"), "0");
    CHECK_EQ_STR(canon("-0"), "0");
    CHECK(signbit(parse_num("-0")));
    CHECK_EQ_STR(canon("9007199254740992"), "9007199254740992");   /* 2^53: a number */
    CHECK_EQ_STR(canon("-9007199254740992"), "-9007199254740992"); /* -2^53 */
    CHECK_EQ_STR(canon("9007199254740993"), "i64:9007199254740993");
    CHECK_EQ_STR(canon("-9007199254740993"), "i64:-9007199254740993");
    CHECK_EQ_STR(canon("9223372036854775807"), "i64:9223372036854775807");   /* 2^63-1 */
    CHECK_EQ_STR(canon("-9223372036854775808"), "i64:-9223372036854775808"); /* -2^63 */
    CHECK_EQ_STR(canon("9223372036854775808"), "RANGE 1");
    CHECK_EQ_STR(canon("[1, -9223372036854775809]"), "RANGE 5");
    CHECK_EQ_STR(canon("123456789012345678901234567890"), "RANGE 1");
    /* the INT64 event carries the literal's text */
    jr_json_parser p;
    jr_json_parser_init(&p, "[18014398509481984]", 19, &scratch);
    CHECK(jr_json_next(&p) == JR_JSON_ARRAY);
    CHECK(jr_json_next(&p) == JR_JSON_INT64);
    CHECK_EQ_MEM(p.str, p.len, "18014398509481984");
    CHECK(p.i64 == 18014398509481984LL);
}

TEST(parse_doubles)
{
    CHECK(parse_num("0.1") == 0.1);
    CHECK(parse_num("1e-7") == 1e-7);
    CHECK(parse_num("1E-7") == 1e-7);
    CHECK(parse_num("1e308") == 1e308);
    CHECK(parse_num("1.7976931348623157e308") == 1.7976931348623157e308);
    CHECK(parse_num("2.2250738585072014e-308") == 2.2250738585072014e-308);
    CHECK(parse_num("5e-324") == 5e-324);
    CHECK(parse_num("-2.5E+3") == -2500);
    CHECK(parse_num("1.0") == 1.0);
    CHECK(parse_num("0.30000000000000004") == 0.30000000000000004);
    CHECK(parse_num("0.000000000000000000000000000001") == 1e-30);
    CHECK(parse_num("123456789012345678901234567890.5") == 123456789012345678901234567890.5);
    CHECK(parse_num("9007199254740993.0") == 9007199254740992.0); /* a double: rounds */
    CHECK(parse_num("1e-400") == 0); /* underflow reads as 0 */
    CHECK(parse_num("-1e-400") == 0 && signbit(parse_num("-1e-400")));
    CHECK(parse_num("1e-99999999999") == 0);
    /* a long run of digits takes the strtod path */
    CHECK(parse_num("3.14159265358979323846264338327950288419716939937510582097494459") == 3.141592653589793);
}

TEST(parse_numbers_out_of_range)
{
    /* a magnitude beyond the largest double is no value we can hold */
    static const char *const cases[][2] = {
        {"1e400", "RANGE 1"},
        {"[1, -1e400]", "RANGE 5"},
        {"1e99999999999", "RANGE 1"},
        {"1.8e308", "RANGE 1"},
        {"{\"a\":0.1e310}", "RANGE 6"},
    };
    CHECK_CANON(cases);
    CHECK(parse_num("1.7976931348623157e308") == DBL_MAX); /* the largest is fine */
    /* 400 digits and a fraction: the strtod path */
    char big[420];
    big[0] = '1';
    memset(big + 1, '0', 400);
    memcpy(big + 401, ".5", 3);
    CHECK_EQ_STR(canon(big), "RANGE 1");
    big[401] = 0; /* as an integer literal it is beyond int64_t, as before */
    CHECK_EQ_STR(canon(big), "RANGE 1");
    jr_json_parser p;
    jr_json_parser_init(&p, "[2e400]", 7, &scratch);
    CHECK(jr_json_next(&p) == JR_JSON_ARRAY);
    CHECK(jr_json_next(&p) == JR_JSON_ERROR);
    CHECK(p.out_of_range);
    CHECK_EQ_STR(p.err, "number out of range");
    CHECK_EQ_INT(p.err_pos, 2);
    /* a syntax error is no range error */
    jr_json_parser_init(&p, "[2e]", 4, &scratch);
    jr_json_next(&p);
    CHECK(jr_json_next(&p) == JR_JSON_ERROR);
    CHECK(!p.out_of_range);
}

TEST(parse_bad_numbers)
{
    CHECK_EQ_STR(canon("01"), "ERR 2: leading zero in a number");
    CHECK_EQ_STR(canon("-"), "ERR 2: unexpected end of input");
    CHECK_EQ_STR(canon("-a"), "ERR 2: unexpected character 'a'");
    CHECK_EQ_STR(canon("+1"), "ERR 1: unexpected character '+'");
    CHECK_EQ_STR(canon(".5"), "ERR 1: unexpected character '.'");
    CHECK_EQ_STR(canon("1."), "ERR 3: unexpected end of input");
    CHECK_EQ_STR(canon("1.e5"), "ERR 3: unexpected character 'e'");
    CHECK_EQ_STR(canon("1e"), "ERR 3: unexpected end of input");
    CHECK_EQ_STR(canon("1e+"), "ERR 4: unexpected end of input");
    CHECK_EQ_STR(canon("0x10"), "ERR 2: unexpected character 'x'");
    CHECK_EQ_STR(canon("NaN"), "ERR 1: unexpected character 'N'");
    CHECK_EQ_STR(canon("Infinity"), "ERR 1: unexpected character 'I'");
    CHECK_EQ_STR(canon("-Infinity"), "ERR 2: unexpected character 'I'");
}

TEST(parse_string_escapes)
{
    CHECK_EQ_STR(canon("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""), "\"\\\" \\\\ / \\b \\f \\n \\r \\t\"");
    CHECK_EQ_STR(canon("\"\\u0041\\u00e9\\u20AC\""), "\"A\xc3\xa9\xe2\x82\xac\"");
    CHECK_EQ_STR(canon("\"\\ud83d\\ude00\""), "\"\xf0\x9f\x98\x80\"");      /* surrogate pair */
    CHECK_EQ_STR(canon("\"\\uDBFF\\uDFFF\""), "\"\xf4\x8f\xbf\xbf\"");      /* U+10FFFF */
    CHECK_EQ_STR(canon("\"raw \xc3\xa9 \xe2\x82\xac \xf4\x8f\xbf\xbf\""), "\"raw \xc3\xa9 \xe2\x82\xac \xf4\x8f\xbf\xbf\"");
    CHECK_EQ_STR(canon("{\"\xc3\xa9\\n\xc3\xa9\":\"\\t\xf0\x9f\x98\x80\"}"), "{\"\xc3\xa9\\n\xc3\xa9\":\"\\t\xf0\x9f\x98\x80\"}");
    /* \u0000 is a real NUL in the value */
    jr_json_parser p;
    jr_json_parser_init(&p, "\"a\\u0000b\"", 10, &scratch);
    CHECK(jr_json_next(&p) == JR_JSON_STRING);
    CHECK(p.len == 3 && memcmp(p.str, "a\0b", 3) == 0);
    /* an unescaped string points into the input */
    const char *doc = "[\"plain\"]";
    jr_json_parser_init(&p, doc, strlen(doc), &scratch);
    jr_json_next(&p);
    CHECK(jr_json_next(&p) == JR_JSON_STRING);
    CHECK(p.str == doc + 2 && p.len == 5);
}

TEST(parse_bad_strings)
{
    CHECK_EQ_STR(canon("\"\\x\""), "ERR 2: invalid escape '\\x'");
    CHECK_EQ_STR(canon("\"ab\\'\""), "ERR 4: invalid escape '\\''");
    CHECK_EQ_STR(canon("\"\\u12\""), "ERR 2: invalid \\u escape");
    CHECK_EQ_STR(canon("\"\\u12G4\""), "ERR 2: invalid \\u escape");
    CHECK_EQ_STR(canon("\"\\ud83d\""), "ERR 2: invalid \\u escape: high surrogate without a low one");
    CHECK_EQ_STR(canon("\"\\ud83dx\\ude00\""), "ERR 2: invalid \\u escape: high surrogate without a low one");
    CHECK_EQ_STR(canon("\"\\ud83d\\u0041\""), "ERR 2: invalid \\u escape: high surrogate without a low one");
    CHECK_EQ_STR(canon("\"\\ude00\""), "ERR 2: invalid \\u escape: lone low surrogate");
    CHECK_EQ_STR(canon("\"a\nb\""), "ERR 3: control character 0x0A in string");
    CHECK_EQ_STR(canon("\"a\\n\tb\""), "ERR 5: control character 0x09 in string");
    CHECK_EQ_STR(canon("\"abc"), "ERR 5: unexpected end of input");
    CHECK_EQ_STR(canon("\"abc\\"), "ERR 6: unexpected end of input");
    CHECK_EQ_STR(canon("\"abc\\n"), "ERR 7: unexpected end of input");
    CHECK_EQ_STR(canon("'a'"), "ERR 1: unexpected character '''");
}

TEST(parse_invalid_utf8)
{
    static const char *const cases[][2] = {
        {"\"\xff\"", "ERR 2: invalid UTF-8 in string: invalid byte (0xFF)"},
        {"\"ab\xc0\x80\"", "ERR 4: invalid UTF-8 in string: overlong encoding (0xC0)"},
        {"\"\xe0\x80\xaf\"", "ERR 2: invalid UTF-8 in string: overlong encoding (0xE0)"},
        {"\"\xed\xa0\xbd\xed\xb8\x80\"", /* CESU-8 of U+1F600 */
         "ERR 2: invalid UTF-8 in string: encoded surrogate U+D800..U+DFFF (0xED)"},
        {"\"\xf4\x90\x80\x80\"", "ERR 2: invalid UTF-8 in string: code point above U+10FFFF (0xF4)"},
        {"\"\xe2\x82\"", "ERR 2: invalid UTF-8 in string: truncated sequence (0xE2)"},
        {"\"\xe2\x82", "ERR 2: invalid UTF-8 in string: truncated sequence (0xE2)"},
        {"\"\x80\"", "ERR 2: invalid UTF-8 in string: stray continuation byte (0x80)"},
        /* past the word loop, after an escape (the unescaping path), in a key */
        {"\"0123456789abcdef\xff\"", "ERR 18: invalid UTF-8 in string: invalid byte (0xFF)"},
        {"\"\\n\xc3\xa9\xff\"", "ERR 6: invalid UTF-8 in string: invalid byte (0xFF)"},
        {"{\"k\xfe\":1}", "ERR 4: invalid UTF-8 in string: invalid byte (0xFE)"},
        {"[\"ok\",\"\xc3\xa9\xc3\"]", "ERR 10: invalid UTF-8 in string: truncated sequence (0xC3)"},
        /* outside strings any byte >= 0x80 was always a syntax error */
        {"\xff", "ERR 1: unexpected byte 0xFF"},
        {"[1,\xc3\xa9]", "ERR 4: unexpected byte 0xC3"},
        {"\xef\xbb\xbf{}", "ERR 1: unexpected byte 0xEF"},      /* no BOM */
        {"{\"a\":1}\xc2\xa0", "ERR 8: unexpected byte 0xC2"}, /* no-break space */
        /* escapes may spell any scalar value, and nothing else */
        {"\"\\ud7ff\\ue000\\uffff\"", "\"\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\""},
        {"\"\\udbff\\udfff\"", "\"\xf4\x8f\xbf\xbf\""},
        {"\"\\ud800\"", "ERR 2: invalid \\u escape: high surrogate without a low one"},
        {"\"\\udfff\\ud800\"", "ERR 2: invalid \\u escape: lone low surrogate"},
        {"\"\\ud800\\ud800\"", "ERR 2: invalid \\u escape: high surrogate without a low one"},
    };
    CHECK_CANON(cases);
}

TEST(parse_structure_errors)
{
    CHECK_EQ_STR(canon(""), "ERR 1: unexpected end of input");
    CHECK_EQ_STR(canon("   "), "ERR 4: unexpected end of input");
    CHECK_EQ_STR(canon("[1,]"), "ERR 4: unexpected character ']'");
    CHECK_EQ_STR(canon("[,1]"), "ERR 2: unexpected character ','");
    CHECK_EQ_STR(canon("{\"a\":1,}"), "ERR 8: unexpected character '}'");
    CHECK_EQ_STR(canon("{\"a\" 1}"), "ERR 6: unexpected character '1'");
    CHECK_EQ_STR(canon("{a:1}"), "ERR 2: unexpected character 'a'");
    CHECK_EQ_STR(canon("{1:1}"), "ERR 2: unexpected character '1'");
    CHECK_EQ_STR(canon("[1 2]"), "ERR 4: unexpected character '2'");
    CHECK_EQ_STR(canon("[1}"), "ERR 3: unexpected character '}'");
    CHECK_EQ_STR(canon("{\"a\":1]"), "ERR 7: unexpected character ']'");
    CHECK_EQ_STR(canon("tru"), "ERR 4: unexpected end of input");
    CHECK_EQ_STR(canon("trux"), "ERR 4: unexpected character 'x'");
    CHECK_EQ_STR(canon("nul"), "ERR 4: unexpected end of input");
    CHECK_EQ_STR(canon("\xef\xbb\xbf{}"), "ERR 1: unexpected byte 0xEF"); /* no BOM */
}

TEST(parse_truncated_input)
{
    /* every proper prefix of a valid document is an error, never a crash */
    const char *doc = "{\"a\":[1,-2.5e3,true,false,null,\"x\\u00e9\\ud83d\\ude00\"],\"b\":{\"c\":9007199254740993}}";
    size_t n = strlen(doc);
    CHECK(strncmp(canon(doc), "ERR", 3) != 0);
    for (size_t i = 0; i < n; i++) {
        /* a heap copy of exactly i bytes, so ASan sees any overread */
        char *cut = malloc(i ? i : 1);
        memcpy(cut, doc, i);
        const char *r = canon_n(cut, i);
        if (strncmp(r, "ERR", 3) != 0) {
            /* fputs: GCC's -Wformat-overflow under UBSan takes r for NULL */
            fprintf(stderr, "  prefix %zu parsed: ", i);
            fputs(r, stderr);
            fputc('\n', stderr);
        }
        CHECK(strncmp(r, "ERR", 3) == 0);
        free(cut);
    }
    /* the position of a cut-off document is just past its end */
    CHECK_EQ_STR(canon("[1,2"), "ERR 5: unexpected end of input");
    CHECK_EQ_STR(canon("{\"a\":"), "ERR 6: unexpected end of input");
}

TEST(parse_trailing_garbage)
{
    CHECK_EQ_STR(canon("{} x"), "ERR 4: unexpected character 'x'");
    CHECK_EQ_STR(canon("1 2"), "ERR 3: unexpected character '2'");
    CHECK_EQ_STR(canon("[]]"), "ERR 3: unexpected character ']'");
    CHECK_EQ_STR(canon("truex"), "ERR 5: unexpected character 'x'");
    CHECK_EQ_STR(canon("null\x01"), "ERR 5: unexpected byte 0x01");
    CHECK_EQ_STR(canon_n("1\0", 2), "ERR 2: unexpected byte 0x00");
    CHECK_EQ_STR(canon("1 \n"), "1");
}

TEST(parse_nesting_limit)
{
    size_t n = JR_JSON_MAX_DEPTH;
    char *doc = malloc(2 * n + 3);
    memset(doc, '[', n);
    memset(doc + n, ']', n);
    CHECK(strncmp(canon_n(doc, 2 * n), "ERR", 3) != 0); /* 1000 levels are fine */
    memset(doc, '[', n + 1);
    memset(doc + n + 1, ']', n + 1);
    char want[64];
    snprintf(want, sizeof want, "ERR %zu: nesting deeper than %d", n + 1, JR_JSON_MAX_DEPTH);
    CHECK_EQ_STR(canon_n(doc, 2 * n + 2), want);
    /* objects count too */
    char *obj = malloc(6 * (n + 1) + 2);
    size_t len = 0;
    for (size_t i = 0; i <= n; i++) {
        memcpy(obj + len, "{\"a\":", 5);
        len += 5;
    }
    obj[len++] = '1';
    memset(obj + len, '}', n + 1);
    len += n + 1;
    CHECK(strstr(canon_n(obj, len), "nesting deeper") != NULL);
    free(obj);
    free(doc);
}

TEST(parse_after_error_stays_failed)
{
    jr_json_parser p;
    jr_json_parser_init(&p, "[x]", 3, &scratch);
    CHECK(jr_json_next(&p) == JR_JSON_ARRAY);
    CHECK(jr_json_next(&p) == JR_JSON_ERROR);
    CHECK(jr_json_next(&p) == JR_JSON_ERROR);
}

TEST(round_trip_document)
{
    const char *doc = "{\"id\":42,\"name\":\"caf\xc3\xa9 \\\"q\\\"\",\"tags\":[\"a\",\"b\"],\"ratio\":0.25,"
                      "\"big\":i64:9223372036854775807,\"none\":null,\"ok\":true,\"nested\":{\"x\":[[],{}]}}";
    /* the canonical form of the canonical form is itself (i64: aside) */
    const char *src = "{\"id\":42,\"name\":\"caf\xc3\xa9 \\\"q\\\"\",\"tags\":[\"a\",\"b\"],\"ratio\":0.25,"
                      "\"big\":9223372036854775807,\"none\":null,\"ok\":true,\"nested\":{\"x\":[[],{}]}}";
    CHECK_EQ_STR(canon(src), doc);
}

TEST(buffer_reuse)
{
    jr_buf b;
    jr_buf_init(&b);
    jr_buf_append(&b, "abc", 3);
    size_t cap = b.cap;
    char *data = b.data;
    jr_buf_reset(&b);
    CHECK_EQ_INT(b.len, 0);
    jr_buf_append(&b, "xy", 2);
    CHECK(b.data == data && b.cap == cap); /* reset keeps the memory */
    CHECK_EQ_MEM(b.data, b.len, "xy");
    for (int i = 0; i < 10000; i++) jr_buf_append_char(&b, 'z');
    CHECK_EQ_INT(b.len, 10002);
    CHECK(!b.failed);
    jr_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
}

int main(void)
{
    jr_buf_init(&out);
    jr_buf_init(&scratch);
    RUN(write_integers);
    RUN(write_doubles_round_trip);
    RUN(write_doubles_random);
    RUN(write_decimals_as_typed);
    RUN(write_refuses_nan_and_inf);
    RUN(write_int64);
    RUN(write_string_escapes);
    RUN(write_string_every_length_and_position);
    RUN(write_long_string_crosses_chunks);
    RUN(write_long_string_utf8_across_chunks);
    RUN(utf8_check_cases);
    RUN(utf8_exhaustive_short_strings);
    RUN(utf8_four_byte_sequences);
    RUN(parse_scalars_and_whitespace);
    RUN(parse_integers);
    RUN(parse_doubles);
    RUN(parse_numbers_out_of_range);
    RUN(parse_bad_numbers);
    RUN(parse_string_escapes);
    RUN(parse_bad_strings);
    RUN(parse_invalid_utf8);
    RUN(parse_structure_errors);
    RUN(parse_truncated_input);
    RUN(parse_trailing_garbage);
    RUN(parse_nesting_limit);
    RUN(parse_after_error_stays_failed);
    RUN(round_trip_document);
    RUN(buffer_reuse);
    jr_buf_free(&out);
    jr_buf_free(&scratch);
    return test_summary();
}
