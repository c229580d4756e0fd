/* json.h - JSON writer and pull parser (plain C, no Lua).
 *
 * Writer: values are appended to a growable jr_buf. The caller reuses
 * one buffer across documents (jr_buf_reset keeps the memory), so the
 * steady state allocates nothing. A failed allocation sets buf->failed and
 * turns later writes into no-ops; check it once at the end.
 *
 *   jr_buf b; jr_buf_init(&b);
 *   jr_buf_append_char(&b, '{');
 *   jr_json_write_key(&b, "k", 1);     (writes "k":)
 *   jr_json_write_number(&b, 0.1);     jr_buf_append_char(&b, '}');
 *   if (!b.failed) use(b.data, b.len);  jr_buf_free(&b);
 *
 * Numbers: integral values with |v| <= 2^53 print as integers ("-0" as "0");
 * other finite values with the shortest digits that read back as the same
 * double (Grisu2, checked against 15 and 16 digits), in decimal notation for
 * 1e-4 <= |v| < 1e17 when there is a fraction, else as d.ddde+XX, so a whole
 * double beyond 2^53 never reads back as an integer literal. NaN and
 * infinities are refused.
 * Strings: '"', '\\' and control characters are escaped (\n \r \t \b \f, else
 * \u00XX); '/' and non-ASCII characters are copied as they are. A string
 * that is not valid UTF-8 (see jr_json_utf8_check) is refused: copied as it
 * is it would make the document invalid JSON (RFC 8259 section 8.1).
 *
 * Parser: jr_json_next returns one event at a time, validating the grammar
 * (RFC 8259) as it goes; the caller builds whatever it likes from them.
 *
 *   jr_json_parser p; jr_json_parser_init(&p, text, len, &scratch);
 *   for (;;) switch (jr_json_next(&p)) { case JR_JSON_ERROR: puts(p.err); ... }
 *
 * Events and their payloads (valid until the next call):
 *   JR_JSON_OBJECT / _OBJECT_END / _ARRAY / _ARRAY_END
 *   JR_JSON_KEY, JR_JSON_STRING   str/len, unescaped (\uXXXX and surrogate
 *                                 pairs become UTF-8); points into the input
 *                                 when there was nothing to unescape, else
 *                                 into the scratch buffer
 *   JR_JSON_NUMBER                num: a finite double; integer literals
 *                                 with |v| <= 2^53 are exact, others round
 *   JR_JSON_INT64                 an integer literal beyond 2^53 that fits
 *                                 int64_t: i64, and str/len its text
 *   JR_JSON_TRUE / _FALSE / _NULL
 *   JR_JSON_END                   the document is complete (nothing but
 *                                 whitespace follows)
 *   JR_JSON_ERROR                 err (message) and err_pos (1-based byte
 *                                 offset); out_of_range is set when the
 *                                 text is valid JSON but a number is not
 *                                 representable: an integer literal outside
 *                                 int64_t ("integer out of range") or a
 *                                 number whose magnitude overflows a double
 *                                 ("number out of range"; underflow reads
 *                                 as 0)
 * Strings must be valid UTF-8 (jr_json_utf8_check) and their \u escapes
 * must not leave a surrogate unpaired (RFC 8259 section 8.2 allows either
 * choice; an unpaired one has no UTF-8 form): both are errors at the
 * offending byte. Nesting deeper than JR_JSON_MAX_DEPTH is an error. */
#ifndef JR_JSON_H
#define JR_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

#define JR_JSON_MAX_DEPTH 1000

/* The short-string fast path must really be inlined into the encoder loop. */
#if defined(__GNUC__)
#define JR_JSON_INLINE static inline __attribute__((always_inline))
#else
#define JR_JSON_INLINE static inline
#endif

/* ---- writer ---- */

/* Is s[0..len) valid UTF-8 (RFC 3629: no overlong forms, no encoded
 * surrogates U+D800..U+DFFF, nothing above U+10FFFF, no truncated
 * sequence)? NULL when it is; else why not (static text) and *pos the
 * 0-based offset of the first byte of the offending sequence. */
const char *jr_json_utf8_check(const char *s, size_t len, size_t *pos);

/* Out-of-line writers for any string; the inline ones below call them.
 * -1 (writing nothing) when s is not valid UTF-8. */
int jr_json_write_string_any(jr_buf *b, const char *s, size_t len);
int jr_json_write_key_any(jr_buf *b, const char *s, size_t len);

/* Does any of the 8 bytes in x need a closer look: escaping (< 0x20, '"'
 * or '\\') or a UTF-8 check (>= 0x80)? Pure ASCII text, the bulk of most
 * documents, passes 8 bytes at a time. Exact for the "any" question
 * (per-byte flags may be off after a borrow, which nobody reads). */
JR_JSON_INLINE int jr_json_esc8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t ctl = (x - ones * 0x20) & ~x & highs;
    uint64_t q = x ^ (ones * '"');
    uint64_t bs = x ^ (ones * '\\');
    q = (q - ones) & ~q & highs;
    bs = (bs - ones) & ~bs & highs;
    return (ctl | q | bs | (x & highs)) != 0;
}

/* Copy s (1..16 bytes) to out if none of its bytes needs a closer look
 * (see jr_json_esc8); returns 0 (copying nothing) otherwise. Overlapping word loads and stores instead
 * of a byte loop: most keys and values in API payloads are this short. */
JR_JSON_INLINE int jr_json_copy_clean16(char *out, const char *s, size_t len)
{
    if (len >= 8) {
        uint64_t a, z;
        memcpy(&a, s, 8);
        memcpy(&z, s + len - 8, 8);
        if (jr_json_esc8(a) || jr_json_esc8(z)) return 0;
        memcpy(out, &a, 8);
        memcpy(out + len - 8, &z, 8);
    } else if (len >= 4) {
        uint32_t a, z;
        memcpy(&a, s, 4);
        memcpy(&z, s + len - 4, 4);
        if (jr_json_esc8(a | (uint64_t)z << 32)) return 0; /* halves overlap */
        memcpy(out, &a, 4);
        memcpy(out + len - 4, &z, 4);
    } else if (len >= 2) {
        uint16_t a, z;
        memcpy(&a, s, 2);
        memcpy(&z, s + len - 2, 2);
        /* the unused bytes padded with spaces, which need no escaping */
        if (jr_json_esc8(a | (uint64_t)z << 16 | 0x2020202000000000ull)) return 0;
        memcpy(out, &a, 2);
        memcpy(out + len - 2, &z, 2);
    } else {
        if (jr_json_esc8((unsigned char)s[0] | 0x2020202020202000ull)) return 0;
        out[0] = s[0];
    }
    return 1;
}

/* s (len bytes) as a quoted, escaped JSON string; -1 (writing nothing)
 * when s is not valid UTF-8. */
JR_JSON_INLINE int jr_json_write_string(jr_buf *b, const char *s, size_t len)
{
    if (len - 1 < 16 && jr_buf_reserve(b, 18) == 0 &&
        jr_json_copy_clean16(b->data + b->len + 1, s, len)) {
        b->data[b->len] = '"';
        b->data[b->len + len + 1] = '"';
        b->len += len + 2;
        return 0;
    }
    return jr_json_write_string_any(b, s, len);
}

/* The same followed by ':' (an object key). */
JR_JSON_INLINE int jr_json_write_key(jr_buf *b, const char *s, size_t len)
{
    if (len - 1 < 16 && jr_buf_reserve(b, 19) == 0 &&
        jr_json_copy_clean16(b->data + b->len + 1, s, len)) {
        b->data[b->len] = '"';
        b->data[b->len + len + 1] = '"';
        b->data[b->len + len + 2] = ':';
        b->len += len + 3;
        return 0;
    }
    return jr_json_write_key_any(b, s, len);
}

/* A finite double; returns -1 (writing nothing) for NaN and infinities. */
int jr_json_write_number(jr_buf *b, double v);
void jr_json_write_int64(jr_buf *b, int64_t v);

/* ---- parser ---- */

typedef enum {
    JR_JSON_ERROR = -1,
    JR_JSON_END = 0,
    JR_JSON_OBJECT,
    JR_JSON_OBJECT_END,
    JR_JSON_ARRAY,
    JR_JSON_ARRAY_END,
    JR_JSON_KEY,
    JR_JSON_STRING,
    JR_JSON_NUMBER,
    JR_JSON_INT64,
    JR_JSON_TRUE,
    JR_JSON_FALSE,
    JR_JSON_NULL
} jr_json_event;

typedef struct {
    const char *start, *p, *end;
    jr_buf *scratch; /* unescaped strings land here */
    int state;
    int depth;
    /* payload of the last event */
    const char *str;
    size_t len;
    double num;
    int64_t i64;
    /* JR_JSON_ERROR */
    size_t err_pos;
    int out_of_range;
    char err[96];
    unsigned char stack[JR_JSON_MAX_DEPTH]; /* open containers: '[' or '{' */
} jr_json_parser;

/* Parse text[0..len); text need not be NUL-terminated. scratch is reset and
 * used for strings with escapes; it must outlive the parse. */
void jr_json_parser_init(jr_json_parser *p, const char *text, size_t len, jr_buf *scratch);
jr_json_event jr_json_next(jr_json_parser *p);

#endif
