/* trace_ctx.c - see trace_ctx.h. */
#include "trace_ctx.h"

#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng[4];
static int seeded;

static int lhex(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* n bytes from 2n lower-case hex digits; -1 on another character. */
static int unhex(const char *s, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = lhex((unsigned char)s[2 * i]), lo = lhex((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

int jr_traceparent_parse(const char *s, size_t n, unsigned char trace_id[16], unsigned char parent_id[8],
                         int *sampled)
{
    if (!s || n < JR_TRACEPARENT_LEN) return -1;
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'F') return -1;
    unsigned char version, flags;
    if (unhex(s, &version, 1) != 0 || s[2] != '-' || unhex(s + 3, trace_id, 16) != 0 || s[35] != '-' ||
        unhex(s + 36, parent_id, 8) != 0 || s[52] != '-' || unhex(s + 53, &flags, 1) != 0)
        return -1;
    if (version == 0xff) return -1;
    if (version == 0 ? n != JR_TRACEPARENT_LEN : (n > JR_TRACEPARENT_LEN && s[55] != '-')) return -1;
    if (all_zero(trace_id, 16) || all_zero(parent_id, 8)) return -1;
    *sampled = flags & 1;
    return 0;
}

void jr_trace_hex(char *out, const unsigned char *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
}

void jr_traceparent_format(char *out, const unsigned char trace_id[16], const unsigned char span_id[8], int sampled)
{
    memcpy(out, "00-", 3);
    jr_trace_hex(out + 3, trace_id, 16);
    out[35] = '-';
    jr_trace_hex(out + 36, span_id, 8);
    memcpy(out + 52, sampled ? "-01" : "-00", 3);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman and Vigna, public domain) */
static uint64_t next64(void)
{
    if (!seeded) jr_trace_seed();
    uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return r;
}

int jr_trace_seed(void)
{
    int rc = 0;
    size_t got = 0;
    unsigned char *p = (unsigned char *)rng;
    while (got < sizeof rng) {
        ssize_t r = getrandom(p + got, sizeof rng - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got < sizeof rng) {
        /* (no kernel randomness: distinct per process and start, at least) */
        rc = -1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rng[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
        rng[1] = (uint64_t)ts.tv_sec ^ 0xD1B54A32D192ED03ull;
        rng[2] = (uint64_t)getpid() * 0xBF58476D1CE4E5B9ull;
        rng[3] = 0x94D049BB133111EBull;
    }
    if ((rng[0] | rng[1] | rng[2] | rng[3]) == 0) rng[0] = 1;
    seeded = 1;
    return rc;
}

void jr_trace_random_id(unsigned char *out, size_t n)
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t v = next64();
            size_t k = n - i < 8 ? n - i : 8;
            memcpy(out + i, &v, k);
        }
    } while (all_zero(out, n));
}

int jr_trace_sample(double p)
{
    if (p >= 1) return 1;
    if (!(p > 0)) return 0;
    return (double)(next64() >> 11) * (1.0 / 9007199254740992.0) < p;
}

uint64_t jr_trace_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}
