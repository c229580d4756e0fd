/* json.c - see json.h. */
#include "json.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- buffer ---- */

void jr_json_buf_init(jr_json_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

void jr_json_buf_free(jr_json_buf *b)
{
    free(b->data);
    jr_json_buf_init(b);
}

int jr_json_buf_grow(jr_json_buf *b, size_t n)
{
    if (b->failed) return -1;
    if (n > SIZE_MAX / 2 - b->len) goto fail;
    size_t need = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) goto fail;
    b->data = d;
    b->cap = cap;
    return 0;
fail:
    b->failed = 1;
    return -1;
}

/* ---- numbers and locales ---- */

/* printf/strtod follow LC_NUMERIC; a host that calls setlocale() must not
 * turn 0.5 into "0,5". Formatting and reading run under the C locale. */
static locale_t c_locale(void)
{
    static locale_t loc;
    if (!loc) loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    return loc;
}

static double strtod_c(const char *s)
{
    locale_t loc = c_locale();
    return loc ? strtod_l(s, NULL, loc) : strtod(s, NULL);
}

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

void jr_json_write_int64(jr_json_buf *b, int64_t v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    /* Negate as unsigned so INT64_MIN does not overflow. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        unsigned i = (unsigned)(u % 100) * 2;
        u /= 100;
        *--p = digit_pairs[i + 1];
        *--p = digit_pairs[i];
    }
    if (u >= 10) {
        unsigned i = (unsigned)u * 2;
        *--p = digit_pairs[i + 1];
        *--p = digit_pairs[i];
    } else {
        *--p = (char)('0' + u);
    }
    if (v < 0) *--p = '-';
    jr_json_put(b, p, (size_t)(tmp + sizeof tmp - p));
}

int jr_json_write_number(jr_json_buf *b, double v)
{
    if (!isfinite(v)) return -1;
    if (v >= -9007199254740992.0 && v <= 9007199254740992.0) {
        int64_t i = (int64_t)v;
        if ((double)i == v) {
            jr_json_write_int64(b, i);
            return 0;
        }
    }
    /* The fewest digits that read back exactly: 15 always suffice for
     * numbers people type (0.1, 3.14), 17 always suffice for any double. */
    char tmp[40];
    locale_t loc = c_locale(), old = loc ? uselocale(loc) : (locale_t)0;
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v) break;
    }
    if (loc) uselocale(old);
    jr_json_put(b, tmp, (size_t)n);
    return 0;
}

/* ---- strings ---- */

/* For each byte: 0 = copy as is, else the letter after the backslash
 * ('u' means \u00XX). */
static const unsigned char esc_letter[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    ['"'] = '"', ['\\'] = '\\',
};

static const char hex_digits[] = "0123456789abcdef";

/* Does any of the 8 bytes in x need escaping (< 0x20, '"' or '\\')?
 * Exact for the "any" question (the per-byte flags may be off after a
 * borrow, which we do not use). */
static inline int needs_escape8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t ctl = (x - ones * 0x20) & ~x & highs;
    uint64_t q = x ^ (ones * '"');
    uint64_t bs = x ^ (ones * '\\');
    q = (q - ones) & ~q & highs;
    bs = (bs - ones) & ~bs & highs;
    return (ctl | q | bs) != 0;
}

/* Escape in[0..n) to out (room for 6 bytes per input byte); returns the
 * new end of out. */
static char *escape_run(char *out, const unsigned char *in, size_t n)
{
    const unsigned char *end = in + n;
    while (in < end) {
        /* 8 bytes at a time while none needs escaping */
        while (end - in >= 8) {
            uint64_t x;
            memcpy(&x, in, 8);
            if (needs_escape8(x)) break;
            memcpy(out, in, 8);
            in += 8;
            out += 8;
        }
        if (in >= end) break;
        unsigned char c = *in++;
        unsigned char e = esc_letter[c];
        if (!e) {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        *out++ = (char)e;
        if (e == 'u') {
            *out++ = '0';
            *out++ = '0';
            *out++ = hex_digits[c >> 4];
            *out++ = hex_digits[c & 15];
        }
    }
    return out;
}

/* Reserving 6 output bytes per input byte bounds the work per chunk without
 * reserving 6x a huge string at once. */
#define ESC_CHUNK 4096

void jr_json_write_string(jr_json_buf *b, const char *s, size_t len)
{
    const unsigned char *in = (const unsigned char *)s;
    if (len <= ESC_CHUNK) { /* the common case: one reservation */
        if (jr_json_reserve(b, len * 6 + 2) != 0) return;
        char *out = b->data + b->len;
        *out++ = '"';
        out = escape_run(out, in, len);
        *out++ = '"';
        b->len = (size_t)(out - b->data);
        return;
    }
    jr_json_putc(b, '"');
    while (len > 0) {
        size_t chunk = len < ESC_CHUNK ? len : ESC_CHUNK;
        if (jr_json_reserve(b, chunk * 6) != 0) return;
        b->len = (size_t)(escape_run(b->data + b->len, in, chunk) - b->data);
        in += chunk;
        len -= chunk;
    }
    jr_json_putc(b, '"');
}

/* ---- parser ---- */

enum {
    S_VALUE,      /* a value must come */
    S_FIRST_ELEM, /* just after '[': a value or ']' */
    S_FIRST_KEY,  /* just after '{': a key or '}' */
    S_KEY,        /* after ',' in an object */
    S_AFTER,      /* after a value: ',' or the closer, or the end */
    S_DONE,
    S_FAILED
};

void jr_json_parser_init(jr_json_parser *p, const char *text, size_t len, jr_json_buf *scratch)
{
    p->start = p->p = text;
    p->end = text + len;
    p->scratch = scratch;
    p->state = S_VALUE;
    p->depth = 0;
    p->str = NULL;
    p->len = 0;
    p->num = 0;
    p->i64 = 0;
    p->err_pos = 0;
    p->int_range = 0;
    p->err[0] = '\0';
}

static jr_json_event fail(jr_json_parser *p, const char *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    p->err_pos = (size_t)(at - p->start) + 1;
    p->state = S_FAILED;
    return JR_JSON_ERROR;
}

static jr_json_event unexpected(jr_json_parser *p, const char *at)
{
    if (at >= p->end) return fail(p, at, "unexpected end of input");
    unsigned char c = (unsigned char)*at;
    if (c >= 0x20 && c < 0x7f) return fail(p, at, "unexpected character '%c'", c);
    return fail(p, at, "unexpected byte 0x%02X", c);
}

static inline const char *skip_ws(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++;
    return s;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    return v;
}

static void put_utf8(jr_json_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    jr_json_put(b, u, n);
}

/* The string opening at s (on its '"'): sets str/len and returns the byte
 * after the closing quote, or NULL after fail(). */
static const char *parse_string(jr_json_parser *p, const char *s)
{
    const char *begin = ++s, *end = p->end;
    /* Fast path: no escapes, the payload is a slice of the input. */
    for (;;) {
        while (end - s >= 8) {
            uint64_t x;
            memcpy(&x, s, 8);
            if (needs_escape8(x)) break;
            s += 8;
        }
        if (s >= end) goto eof;
        unsigned char c = (unsigned char)*s;
        if (c == '"') {
            p->str = begin;
            p->len = (size_t)(s - begin);
            return s + 1;
        }
        if (c == '\\') break;
        if (c < 0x20) goto control;
        s++;
    }

    jr_json_buf *b = p->scratch;
    jr_json_buf_reset(b);
    jr_json_put(b, begin, (size_t)(s - begin));
    for (;;) {
        const char *run = s;
        while (s < end && *s != '"' && *s != '\\' && (unsigned char)*s >= 0x20) s++;
        jr_json_put(b, run, (size_t)(s - run));
        if (s >= end) goto eof;
        unsigned char c = (unsigned char)*s;
        if (c == '"') break;
        if (c < 0x20) goto control;
        /* a backslash */
        if (end - s < 2) {
            fail(p, end, "unexpected end of input");
            return NULL;
        }
        char e = s[1], out;
        switch (e) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u': {
            int cp = end - s >= 6 ? hex4(s + 2) : -1;
            if (cp < 0) {
                fail(p, s, "invalid \\u escape");
                return NULL;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, s, "invalid \\u escape: lone low surrogate");
                return NULL;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = end - s >= 12 && s[6] == '\\' && s[7] == 'u' ? hex4(s + 8) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(p, s, "invalid \\u escape: high surrogate without a low one");
                    return NULL;
                }
                put_utf8(b, 0x10000 + (((unsigned)cp - 0xD800) << 10) + ((unsigned)lo - 0xDC00));
                s += 12;
            } else {
                put_utf8(b, (unsigned)cp);
                s += 6;
            }
            continue;
        }
        default:
            if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7f)
                fail(p, s, "invalid escape '\\%c'", e);
            else
                fail(p, s, "invalid escape (byte 0x%02X after '\\')", (unsigned char)e);
            return NULL;
        }
        jr_json_putc(b, out);
        s += 2;
    }
    if (b->failed) {
        fail(p, s, "out of memory");
        return NULL;
    }
    p->str = b->data ? b->data : "";
    p->len = b->len;
    return s + 1;

eof:
    fail(p, end, "unexpected end of input");
    return NULL;
control:
    fail(p, s, "control character 0x%02X in string", (unsigned char)*s);
    return NULL;
}

/* Powers of ten that doubles hold exactly. */
static const double exact_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#define TWO_53 9007199254740992ull
#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)

static jr_json_event parse_number(jr_json_parser *p, const char *s)
{
    const char *begin = s, *end = p->end;
    int neg = 0, is_int = 1, truncated = 0, ndig = 0;
    long exp10 = 0;
    uint64_t m = 0;

    if (*s == '-') {
        neg = 1;
        s++;
    }
    if (s >= end || !IS_DIGIT(*s)) return unexpected(p, s);
    if (*s == '0') {
        s++;
        if (s < end && IS_DIGIT(*s)) return fail(p, s, "leading zero in a number");
    } else {
        /* 19 digits always fit a uint64_t; further ones only scale. */
        for (; s < end && IS_DIGIT(*s); s++) {
            if (ndig < 19) {
                m = m * 10 + (uint64_t)(*s - '0');
                ndig++;
            } else {
                truncated = 1;
                exp10++;
            }
        }
    }
    if (s < end && *s == '.') {
        is_int = 0;
        s++;
        if (s >= end || !IS_DIGIT(*s)) return unexpected(p, s);
        for (; s < end && IS_DIGIT(*s); s++) {
            if (ndig < 19) {
                m = m * 10 + (uint64_t)(*s - '0');
                if (m) ndig++; /* leading zeros of 0.000123 are not significant */
                exp10--;
            } else {
                truncated = 1;
            }
        }
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        is_int = 0;
        s++;
        int eneg = 0;
        if (s < end && (*s == '+' || *s == '-')) eneg = *s++ == '-';
        if (s >= end || !IS_DIGIT(*s)) return unexpected(p, s);
        long e = 0;
        for (; s < end && IS_DIGIT(*s); s++)
            if (e < 100000) e = e * 10 + (*s - '0'); /* saturate: the result is 0 or inf anyway */
        exp10 += eneg ? -e : e;
    }
    p->p = s;
    p->state = S_AFTER;

    if (is_int) {
        if (!truncated && m <= TWO_53) {
            p->num = neg ? -(double)m : (double)m;
            return JR_JSON_NUMBER;
        }
        if (!truncated && m <= (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
            p->i64 = neg ? (int64_t)(0 - m) : (int64_t)m;
            p->str = begin;
            p->len = (size_t)(s - begin);
            return JR_JSON_INT64;
        }
        p->int_range = 1;
        return fail(p, begin, "integer out of range");
    }

#if FLT_EVAL_METHOD == 0
    /* Clinger's fast path: both operands exact, so one correctly rounded
     * IEEE operation gives the correctly rounded result. */
    if (!truncated && m <= TWO_53 && exp10 >= -22 && exp10 <= 22) {
        double d = (double)m;
        d = exp10 < 0 ? d / exact_pow10[-exp10] : d * exact_pow10[exp10];
        p->num = neg ? -d : d;
        return JR_JSON_NUMBER;
    }
#endif
    /* strtod needs a NUL-terminated copy (the input is a slice), and the copy
     * holds only what we validated, so it cannot read "0x1p3" or "inf". */
    size_t n = (size_t)(s - begin);
    char small[64], *tmp = n < sizeof small ? small : malloc(n + 1);
    if (!tmp) return fail(p, begin, "out of memory");
    memcpy(tmp, begin, n);
    tmp[n] = '\0';
    p->num = strtod_c(tmp);
    if (tmp != small) free(tmp);
    return JR_JSON_NUMBER;
}

static jr_json_event literal(jr_json_parser *p, const char *s, const char *word, size_t n,
                             jr_json_event ev)
{
    for (size_t i = 0; i < n; i++)
        if (s + i >= p->end || s[i] != word[i]) return unexpected(p, s + i);
    p->p = s + n;
    p->state = S_AFTER;
    return ev;
}

static jr_json_event parse_value(jr_json_parser *p, const char *s)
{
    if (s >= p->end) return unexpected(p, s);
    switch (*s) {
    case '"':
        s = parse_string(p, s);
        if (!s) return JR_JSON_ERROR;
        p->p = s;
        p->state = S_AFTER;
        return JR_JSON_STRING;
    case '{':
    case '[':
        if (p->depth >= JR_JSON_MAX_DEPTH)
            return fail(p, s, "nesting deeper than %d", JR_JSON_MAX_DEPTH);
        p->stack[p->depth++] = (unsigned char)*s;
        p->p = s + 1;
        if (*s == '[') {
            p->state = S_FIRST_ELEM;
            return JR_JSON_ARRAY;
        }
        p->state = S_FIRST_KEY;
        return JR_JSON_OBJECT;
    case 't': return literal(p, s, "true", 4, JR_JSON_TRUE);
    case 'f': return literal(p, s, "false", 5, JR_JSON_FALSE);
    case 'n': return literal(p, s, "null", 4, JR_JSON_NULL);
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return parse_number(p, s);
    default:
        return unexpected(p, s);
    }
}

jr_json_event jr_json_next(jr_json_parser *p)
{
    const char *s = p->p, *end = p->end;
again:
    s = skip_ws(s, end);
    switch (p->state) {
    case S_VALUE:
        return parse_value(p, s);
    case S_FIRST_ELEM:
        if (s < end && *s == ']') {
            p->p = s + 1;
            p->depth--;
            p->state = S_AFTER;
            return JR_JSON_ARRAY_END;
        }
        return parse_value(p, s);
    case S_FIRST_KEY:
        if (s < end && *s == '}') {
            p->p = s + 1;
            p->depth--;
            p->state = S_AFTER;
            return JR_JSON_OBJECT_END;
        }
        /* fall through */
    case S_KEY:
        if (s >= end || *s != '"') return unexpected(p, s);
        s = parse_string(p, s);
        if (!s) return JR_JSON_ERROR;
        s = skip_ws(s, end);
        if (s >= end || *s != ':') return unexpected(p, s);
        p->p = s + 1;
        p->state = S_VALUE;
        return JR_JSON_KEY;
    case S_AFTER: {
        if (p->depth == 0) {
            if (s < end) return unexpected(p, s);
            p->p = s;
            p->state = S_DONE;
            return JR_JSON_END;
        }
        int in_array = p->stack[p->depth - 1] == '[';
        if (s < end && *s == ',') {
            s++;
            p->state = in_array ? S_VALUE : S_KEY;
            goto again;
        }
        if (s < end && *s == (in_array ? ']' : '}')) {
            p->p = s + 1;
            p->depth--;
            return in_array ? JR_JSON_ARRAY_END : JR_JSON_OBJECT_END;
        }
        return unexpected(p, s);
    }
    case S_DONE:
        return JR_JSON_END;
    default:
        return JR_JSON_ERROR;
    }
}
