/* json.c - see json.h. */
#include "json.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- numbers ---- */

/* strtod follows LC_NUMERIC; a host that calls setlocale() must not make
 * "0.5" unreadable. The parser's slow path reads under the C locale. */
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

/* Powers of ten that doubles hold exactly. */
static const double exact_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static const uint64_t pow10_u64[] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
                                     10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
                                     100000000000ull, 1000000000000ull, 10000000000000ull,
                                     100000000000000ull, 1000000000000000ull, 10000000000000000ull,
                                     100000000000000000ull, 1000000000000000000ull,
                                     10000000000000000000ull};

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* The digits of u written backwards to end there (20 at most); returns
 * where they start. */
static char *u64_digits(char *end, uint64_t u)
{
    char *p = end;
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
    return p;
}

/* Doubles: Grisu2 (Florian Loitsch, "Printing Floating-Point Numbers Quickly
 * and Accurately with Integers", PLDI 2010), as in Milo Yip's dtoa for
 * RapidJSON. It works in 64-bit integers only (no printf, no locale) and its
 * digits always read back as the same double; the rare cases where they are
 * not the shortest are caught by shorten() below. */

typedef struct {
    uint64_t f;
    int e;
} diyfp;

/* 10^k for k = -348, -340, ..., 340: normalized significands and binary
 * exponents (generated with exact rational arithmetic). */
static const uint64_t cached_f[] = {
    0xfa8fd5a0081c0288ull, 0xbaaee17fa23ebf76ull, 0x8b16fb203055ac76ull,
    0xcf42894a5dce35eaull, 0x9a6bb0aa55653b2dull, 0xe61acf033d1a45dfull,
    0xab70fe17c79ac6caull, 0xff77b1fcbebcdc4full, 0xbe5691ef416bd60cull,
    0x8dd01fad907ffc3cull, 0xd3515c2831559a83ull, 0x9d71ac8fada6c9b5ull,
    0xea9c227723ee8bcbull, 0xaecc49914078536dull, 0x823c12795db6ce57ull,
    0xc21094364dfb5637ull, 0x9096ea6f3848984full, 0xd77485cb25823ac7ull,
    0xa086cfcd97bf97f4ull, 0xef340a98172aace5ull, 0xb23867fb2a35b28eull,
    0x84c8d4dfd2c63f3bull, 0xc5dd44271ad3cdbaull, 0x936b9fcebb25c996ull,
    0xdbac6c247d62a584ull, 0xa3ab66580d5fdaf6ull, 0xf3e2f893dec3f126ull,
    0xb5b5ada8aaff80b8ull, 0x87625f056c7c4a8bull, 0xc9bcff6034c13053ull,
    0x964e858c91ba2655ull, 0xdff9772470297ebdull, 0xa6dfbd9fb8e5b88full,
    0xf8a95fcf88747d94ull, 0xb94470938fa89bcfull, 0x8a08f0f8bf0f156bull,
    0xcdb02555653131b6ull, 0x993fe2c6d07b7facull, 0xe45c10c42a2b3b06ull,
    0xaa242499697392d3ull, 0xfd87b5f28300ca0eull, 0xbce5086492111aebull,
    0x8cbccc096f5088ccull, 0xd1b71758e219652cull, 0x9c40000000000000ull,
    0xe8d4a51000000000ull, 0xad78ebc5ac620000ull, 0x813f3978f8940984ull,
    0xc097ce7bc90715b3ull, 0x8f7e32ce7bea5c70ull, 0xd5d238a4abe98068ull,
    0x9f4f2726179a2245ull, 0xed63a231d4c4fb27ull, 0xb0de65388cc8ada8ull,
    0x83c7088e1aab65dbull, 0xc45d1df942711d9aull, 0x924d692ca61be758ull,
    0xda01ee641a708deaull, 0xa26da3999aef774aull, 0xf209787bb47d6b85ull,
    0xb454e4a179dd1877ull, 0x865b86925b9bc5c2ull, 0xc83553c5c8965d3dull,
    0x952ab45cfa97a0b3ull, 0xde469fbd99a05fe3ull, 0xa59bc234db398c25ull,
    0xf6c69a72a3989f5cull, 0xb7dcbf5354e9beceull, 0x88fcf317f22241e2ull,
    0xcc20ce9bd35c78a5ull, 0x98165af37b2153dfull, 0xe2a0b5dc971f303aull,
    0xa8d9d1535ce3b396ull, 0xfb9b7cd9a4a7443cull, 0xbb764c4ca7a44410ull,
    0x8bab8eefb6409c1aull, 0xd01fef10a657842cull, 0x9b10a4e5e9913129ull,
    0xe7109bfba19c0c9dull, 0xac2820d9623bf429ull, 0x80444b5e7aa7cf85ull,
    0xbf21e44003acdd2dull, 0x8e679c2f5e44ff8full, 0xd433179d9c8cb841ull,
    0x9e19db92b4e31ba9ull, 0xeb96bf6ebadf77d9ull, 0xaf87023b9bf0ee6bull,
};
static const int16_t cached_e[] = {
    -1220, -1193, -1166, -1140, -1113, -1087, -1060, -1034, -1007, -980,
    -954, -927, -901, -874, -847, -821, -794, -768, -741, -715,
    -688, -661, -635, -608, -582, -555, -529, -502, -475, -449,
    -422, -396, -369, -343, -316, -289, -263, -236, -210, -183,
    -157, -130, -103, -77, -50, -24, 3, 30, 56, 83,
    109, 136, 162, 189, 216, 242, 269, 295, 322, 348,
    375, 402, 428, 455, 481, 508, 534, 561, 588, 614,
    641, 667, 694, 720, 747, 774, 800, 827, 853, 880,
    907, 933, 960, 986, 1013, 1039, 1066,
};

static diyfp diy_mul(diyfp x, diyfp y)
{
    const uint64_t m32 = 0xFFFFFFFFu;
    uint64_t a = x.f >> 32, b = x.f & m32, c = y.f >> 32, d = y.f & m32;
    uint64_t ac = a * c, bc = b * c, ad = a * d, bd = b * d;
    uint64_t mid = (bd >> 32) + (ad & m32) + (bc & m32);
    mid += 1u << 31; /* round the dropped half */
    diyfp r = {ac + (ad >> 32) + (bc >> 32) + (mid >> 32), x.e + y.e + 64};
    return r;
}

static diyfp diy_normalize(diyfp x)
{
    while (!(x.f & (1ull << 63))) {
        x.f <<= 1;
        x.e--;
    }
    return x;
}

/* The cached power c = 10^-K that brings w's exponent into [-60, -32]. */
static diyfp cached_power(int e, int *K)
{
    double dk = (-61 - e) * 0.30102999566398114 + 347;
    int k = (int)dk;
    if (dk - k > 0.0) k++;
    unsigned index = (unsigned)((k >> 3) + 1);
    *K = -(-348 + (int)(index << 3));
    diyfp c = {cached_f[index], cached_e[index]};
    return c;
}

static void grisu_round(char *buf, int len, uint64_t delta, uint64_t rest, uint64_t ten_kappa,
                        uint64_t wp_w)
{
    while (rest < wp_w && delta - rest >= ten_kappa &&
           (rest + ten_kappa < wp_w || wp_w - rest > rest + ten_kappa - wp_w)) {
        buf[len - 1]--;
        rest += ten_kappa;
    }
}

static int digit_gen(diyfp w, diyfp mp, uint64_t delta, char *buf, int *K)
{
    const diyfp one = {1ull << -mp.e, mp.e};
    const uint64_t wp_w = mp.f - w.f;
    uint32_t p1 = (uint32_t)(mp.f >> -one.e);
    uint64_t p2 = mp.f & (one.f - 1);
    int kappa = 1, len = 0;
    while (kappa < 10 && p1 >= pow10_u64[kappa]) kappa++;
    while (kappa > 0) {
        uint32_t div = (uint32_t)pow10_u64[kappa - 1], d = p1 / div;
        p1 %= div;
        if (d || len) buf[len++] = (char)('0' + d);
        kappa--;
        uint64_t rest = ((uint64_t)p1 << -one.e) + p2;
        if (rest <= delta) {
            *K += kappa;
            grisu_round(buf, len, delta, rest, pow10_u64[kappa] << -one.e, wp_w);
            return len;
        }
    }
    for (;;) {
        p2 *= 10;
        delta *= 10;
        char d = (char)(p2 >> -one.e);
        if (d || len) buf[len++] = (char)('0' + d);
        p2 &= one.f - 1;
        kappa--;
        if (p2 < delta) {
            *K += kappa;
            int index = -kappa;
            grisu_round(buf, len, delta, p2, one.f, wp_w * (index < 20 ? pow10_u64[index] : 0));
            return len;
        }
    }
}

/* Digits of v (finite, > 0) into buf; v = digits * 10^K. Returns their
 * count (at most 17). */
static int grisu2(double v, char *buf, int *K)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int be = (int)((bits >> 52) & 0x7FF);
    uint64_t sig = bits & ((1ull << 52) - 1);
    diyfp x;
    if (be) {
        x.f = sig | (1ull << 52);
        x.e = be - 1075;
    } else { /* subnormal */
        x.f = sig;
        x.e = -1074;
    }
    /* The boundaries halfway to the neighbouring doubles; the lower one is
     * closer when x is a power of two. */
    diyfp pl = {(x.f << 1) + 1, x.e - 1};
    while (!(pl.f & (1ull << 53))) {
        pl.f <<= 1;
        pl.e--;
    }
    pl.f <<= 10;
    pl.e -= 10;
    diyfp mi;
    if (x.f == (1ull << 52)) {
        mi.f = (x.f << 2) - 1;
        mi.e = x.e - 2;
    } else {
        mi.f = (x.f << 1) - 1;
        mi.e = x.e - 1;
    }
    mi.f <<= mi.e - pl.e;
    mi.e = pl.e;

    diyfp c = cached_power(pl.e, K);
    diyfp w = diy_mul(diy_normalize(x), c), wp = diy_mul(pl, c), wm = diy_mul(mi, c);
    wm.f++; /* stay strictly inside the interval: imprecision of the products */
    wp.f--;
    return digit_gen(w, wp, wp.f - wm.f, buf, K);
}

/* Can c * 10^e be read back exactly with one IEEE operation (Clinger's fast
 * path: both operands exact)? */
static int exact_scale(uint64_t c, int e)
{
#if FLT_EVAL_METHOD == 0
    return c <= 9007199254740992ull && e >= -22 && e <= 22;
#else
    (void)c;
    (void)e;
    return 0;
#endif
}

/* Does c * 10^e read back as v? */
static int reads_back(uint64_t c, int e, double v)
{
    if (exact_scale(c, e)) {
        double r = (double)c;
        r = e < 0 ? r / exact_pow10[-e] : r * exact_pow10[e];
        return r == v;
    }
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%llue%d", (unsigned long long)c, e);
    return strtod_c(tmp) == v;
}

/* Grisu2 now and then misses a shorter decimal of the same double (0.09094
 * comes out as 0.09093999999999999). For 16 or 17 digits, try them cut to
 * 15, then 16, keeping the first that reads back: as short as printf's
 * %.15g/%.16g/%.17g would be. Where checking needs strtod (exponents beyond
 * +-22, slow), only cuts dropping a run of 0s or 9s are tried: the shape of
 * Grisu's misses. Returns the new count. */
static int shorten(double v, char *digits, int n, int *K)
{
    for (int m = 15; m < n; m++) {
        uint64_t lo = 0;
        for (int i = 0; i < m; i++) lo = lo * 10 + (uint64_t)(digits[i] - '0');
        int run = m + 1 < n && digits[m] == digits[m + 1] && (digits[m] == '0' || digits[m] == '9');
        /* The nearer neighbour first; the other one too, as the digits
         * dropped are themselves rounded (a trailing 5 may be a tie). */
        int up = digits[m] >= '5';
        for (int t = 0; t < 2; t++) {
            uint64_t c = lo + (uint64_t)(up ^ t);
            int e = *K + (n - m);
            while (c && c % 10 == 0) {
                c /= 10;
                e++;
            }
            if (!exact_scale(c, e) && !run) continue;
            if (!reads_back(c, e, v)) continue;
            char tmp[24], *end = tmp + sizeof tmp, *p = u64_digits(end, c);
            n = (int)(end - p);
            memcpy(digits, p, (size_t)n);
            *K = e;
            return n;
        }
    }
    return n;
}

/* A finite double that is not an integer of at most 2^53: decimal notation
 * for 1e-4 <= |v| < 1e17 when it has a fraction, else d.ddde+XX (so a large
 * whole double never reads back as an int64 literal). */
static void write_double(jr_buf *b, double v)
{
    char digits[32], out[48], *p = out;
    int K;
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    int n = grisu2(v, digits, &K);
    if (n >= 16) n = shorten(v, digits, n, &K);
    int kk = n + K; /* v = 0.d1d2..dn * 10^kk */
    if (K < 0 && kk > 0) { /* 12.34 */
        memcpy(p, digits, (size_t)kk);
        p += kk;
        *p++ = '.';
        memcpy(p, digits + kk, (size_t)(n - kk));
        p += n - kk;
    } else if (K < 0 && kk > -4) { /* 0.001234 */
        *p++ = '0';
        *p++ = '.';
        for (int i = kk; i < 0; i++) *p++ = '0';
        memcpy(p, digits, (size_t)n);
        p += n;
    } else { /* 1.234e-07, 1e+308 */
        *p++ = digits[0];
        if (n > 1) {
            *p++ = '.';
            memcpy(p, digits + 1, (size_t)(n - 1));
            p += n - 1;
        }
        int e = kk - 1;
        *p++ = 'e';
        *p++ = e < 0 ? '-' : '+';
        if (e < 0) e = -e;
        if (e >= 100) {
            *p++ = (char)('0' + e / 100);
            e %= 100;
        }
        *p++ = (char)('0' + e / 10);
        *p++ = (char)('0' + e % 10);
    }
    jr_buf_append(b, out, (size_t)(p - out));
}

int jr_json_write_number(jr_buf *b, double v)
{
    if (!isfinite(v)) return -1;
    if (v >= -9007199254740992.0 && v <= 9007199254740992.0) {
        int64_t i = (int64_t)v;
        if ((double)i == v) {
            jr_json_write_int64(b, i);
            return 0;
        }
    }
    write_double(b, v);
    return 0;
}

void jr_json_write_int64(jr_buf *b, int64_t v)
{
    char tmp[24], *end = tmp + sizeof tmp;
    /* Negate as unsigned so INT64_MIN does not overflow. */
    char *p = u64_digits(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    if (v < 0) *--p = '-';
    jr_buf_append(b, p, (size_t)(end - p));
}

/* ---- UTF-8 ---- */

/* Why a sequence is not UTF-8: negative returns of utf8_seq. */
enum { U_CONT = -1, U_OVERLONG = -2, U_SURROGATE = -3, U_TOO_BIG = -4, U_BAD_BYTE = -5, U_TRUNC = -6 };

static const char *const utf8_why[] = {
    "", "stray continuation byte", "overlong encoding", "encoded surrogate U+D800..U+DFFF",
    "code point above U+10FFFF", "invalid byte", "truncated sequence",
};

/* The length (2..4) of the UTF-8 sequence at s, whose first byte is >= 0x80
 * and which must end by end; else a U_* reason. The well-formed table of
 * RFC 3629 section 4: the second byte's range depends on the first, which
 * is what rules out overlong forms, surrogates and values past U+10FFFF. */
static inline int utf8_seq(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    int n;
    if (c >= 0xC2 && c <= 0xDF) /* two bytes: the common non-ASCII case first */
        return end - s >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : U_TRUNC;
    if (c < 0xC0) return U_CONT;
    if (c < 0xC2) return U_OVERLONG; /* C0, C1 only ever encode ASCII */
    if (c < 0xF0) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c < 0xF5) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else {
        return U_BAD_BYTE;
    }
    if (end - s < 2 || (s[1] & 0xC0) != 0x80) return U_TRUNC;
    if (s[1] < lo) return U_OVERLONG;
    if (s[1] > hi) return c == 0xED ? U_SURROGATE : U_TOO_BIG;
    for (int i = 2; i < n; i++)
        if (end - s <= i || (s[i] & 0xC0) != 0x80) return U_TRUNC;
    return n;
}

const char *jr_json_utf8_check(const char *str, size_t len, size_t *pos)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    while (s < end) {
        /* ASCII a word at a time */
        while (end - s >= 8) {
            uint64_t x;
            memcpy(&x, s, 8);
            if (x & 0x8080808080808080ull) break;
            s += 8;
        }
        while (s < end && *s < 0x80) s++;
        if (s >= end) break;
        int n = utf8_seq(s, end);
        if (n < 0) {
            if (pos) *pos = (size_t)(s - (const unsigned char *)str);
            return utf8_why[-n];
        }
        s += n;
    }
    return NULL;
}

/* ---- strings ---- */

#define U16 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U'

/* For each byte: 0 = copy as is, 'U' = the first byte of a UTF-8 sequence
 * to check, else the letter after the backslash ('u' means \u00XX). */
static const unsigned char esc_letter[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    ['"'] = '"', ['\\'] = '\\',
    [0x80] = U16, U16, U16, U16, U16, U16, U16, U16,
};

#undef U16

/* From s (a byte >= 0x80) to the end of a run of non-ASCII text: whole
 * UTF-8 characters, and single plain ASCII bytes between two of them (the
 * space between words), so that text in other scripts does not go back to
 * the word loops, which it fails, at every word. NULL when a sequence is
 * not UTF-8: *bad is where it starts, *why its U_* reason. */
static inline const unsigned char *utf8_run(const unsigned char *s, const unsigned char *end,
                                            const unsigned char **bad, int *why)
{
    for (;;) {
        int n = utf8_seq(s, end);
        if (n < 0) {
            *bad = s;
            *why = n;
            return NULL;
        }
        s += n;
        if (s >= end) return s;
        if (*s < 0x80) {
            if (end - s < 2 || s[1] < 0x80 || esc_letter[*s]) return s;
            s++;
        }
    }
}

static const char hex_digits[] = "0123456789abcdef";

/* Escape in[0..n) to out (room for 6 bytes per input byte); returns the
 * new end of out, or NULL when in is not valid UTF-8. Words of 8 bytes are
 * checked at once, a short tail with overlapping loads. */
static char *escape_run(char *out, const unsigned char *in, size_t n)
{
    const unsigned char *end = in + n;
    for (;;) {
        while (end - in >= 8) {
            uint64_t x;
            memcpy(&x, in, 8);
            if (jr_json_esc8(x)) break;
            memcpy(out, in, 8);
            in += 8;
            out += 8;
        }
        size_t rest = (size_t)(end - in);
        if (rest < 8) {
            if (rest == 0) return out;
            if (jr_json_copy_clean16(out, (const char *)in, rest)) return out + rest;
        }
        /* A byte to escape or check lies within the next 8 (or rest): copy
         * up to it. */
        unsigned char c, e;
        while (!(e = esc_letter[c = *in++])) *out++ = (char)c;
        if (e == 'U') {
            const unsigned char *run = --in, *bad;
            int why;
            in = utf8_run(run, end, &bad, &why);
            if (!in) return NULL;
            memcpy(out, run, (size_t)(in - run));
            out += in - run;
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
}

/* Reserving 6 output bytes per input byte bounds the work per chunk without
 * reserving 6x a huge string at once. */
#define ESC_CHUNK 4096

/* s as a JSON string and then the byte after (':' for a key, 0 for none);
 * -1 (the buffer as it was) when s is not valid UTF-8. */
static inline int write_quoted(jr_buf *b, const char *s, size_t len, char after)
{
    const unsigned char *in = (const unsigned char *)s;
    if (len <= ESC_CHUNK) { /* the common case: one reservation */
        if (jr_buf_reserve(b, len * 6 + 3) != 0) return 0;
        char *out = b->data + b->len;
        *out++ = '"';
        out = escape_run(out, in, len);
        if (!out) return -1;
        *out++ = '"';
        if (after) *out++ = after;
        b->len = (size_t)(out - b->data);
        return 0;
    }
    size_t start = b->len;
    jr_buf_append_char(b, '"');
    while (len > 0) {
        size_t chunk = len < ESC_CHUNK ? len : ESC_CHUNK;
        /* End the chunk before a UTF-8 sequence it would cut, so each is
         * checked whole (one has at most 3 continuation bytes; more in a
         * row are invalid wherever the cut falls). */
        for (int k = 0; k < 3 && chunk < len && (in[chunk] & 0xC0) == 0x80; k++) chunk--;
        if (jr_buf_reserve(b, chunk * 6) != 0) return 0;
        char *out = escape_run(b->data + b->len, in, chunk);
        if (!out) {
            b->len = start;
            return -1;
        }
        b->len = (size_t)(out - b->data);
        in += chunk;
        len -= chunk;
    }
    jr_buf_append_char(b, '"');
    if (after) jr_buf_append_char(b, after);
    return 0;
}

int jr_json_write_string_any(jr_buf *b, const char *s, size_t len) { return write_quoted(b, s, len, 0); }

int jr_json_write_key_any(jr_buf *b, const char *s, size_t len) { return write_quoted(b, s, len, ':'); }

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

void jr_json_parser_init(jr_json_parser *p, const char *text, size_t len, jr_buf *scratch)
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
    p->out_of_range = 0;
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

static void put_utf8(jr_buf *b, unsigned cp)
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
    jr_buf_append(b, u, n);
}

/* Inside a string from s: skips text that needs no unescaping, checking
 * that it is UTF-8, up to the first '"', '\\' or control character (or the
 * end); NULL after fail() on invalid UTF-8. */
static const char *skip_text(jr_json_parser *p, const char *s)
{
    const char *end = p->end;
    for (;;) {
        /* ASCII runs 8 bytes at a time */
        while (end - s >= 8) {
            uint64_t x;
            memcpy(&x, s, 8);
            if (jr_json_esc8(x)) break;
            s += 8;
        }
        /* a byte to look at within the next 8 (or the end) */
        unsigned char c;
        for (;; s++) {
            if (s >= end) return s;
            c = (unsigned char)*s;
            if (c >= 0x80) break;
            if (c < 0x20 || c == '"' || c == '\\') return s;
        }
        const unsigned char *bad;
        int why;
        s = (const char *)utf8_run((const unsigned char *)s, (const unsigned char *)end, &bad, &why);
        if (!s) {
            fail(p, (const char *)bad, "invalid UTF-8 in string: %s (0x%02X)", utf8_why[-why], *bad);
            return NULL;
        }
    }
}

/* The string opening at s (on its '"'): sets str/len and returns the byte
 * after the closing quote, or NULL after fail(). */
static const char *parse_string(jr_json_parser *p, const char *s)
{
    const char *begin = ++s, *end = p->end;
    /* Fast path: no escapes, the payload is a slice of the input. */
    s = skip_text(p, s);
    if (!s) return NULL;
    if (s >= end) goto eof;
    if (*s == '"') {
        p->str = begin;
        p->len = (size_t)(s - begin);
        return s + 1;
    }
    if (*s != '\\') goto control;

    jr_buf *b = p->scratch;
    jr_buf_reset(b);
    jr_buf_append(b, begin, (size_t)(s - begin));
    for (;;) {
        const char *run = s;
        s = skip_text(p, s);
        if (!s) return NULL;
        jr_buf_append(b, run, (size_t)(s - run));
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
        jr_buf_append_char(b, out);
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
            if (e < 100000) e = e * 10 + (*s - '0'); /* saturate: the result is 0 or out of range anyway */
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
        p->out_of_range = 1;
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
    /* Only this path can overflow (the fast one stays below 2^53 * 1e22).
     * An infinity is no JSON value: it could not be written back, and
     * rounding it to DBL_MAX would invent a number. Underflow to 0 (or a
     * subnormal) is a fair reading of a tiny literal. */
    if (isinf(p->num)) {
        p->out_of_range = 1;
        return fail(p, begin, "number out of range");
    }
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
