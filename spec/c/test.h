/* test.h - a tiny TAP-style harness for the C unit tests.
 *   TEST(name) { CHECK(cond); CHECK_EQ_INT(a, b); CHECK_EQ_STR(a, b); }
 *   int main(void) { RUN(name); ...; return test_summary(); }
 * Prints "ok N - name" / "not ok N - name" and a closing
 * "N passed, N failed" line; exits non-zero when anything failed. */
#ifndef JR_TEST_H
#define JR_TEST_H

#include <stdio.h>
#include <string.h>

static int t_passed, t_failed, t_cur_failed, t_num;

#define TEST(name) static void name(void)
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            t_cur_failed = 1;                                                        \
        }                                                                            \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                            \
    do {                                                                              \
        long long _a = (long long)(a), _b = (long long)(b);                           \
        if (_a != _b) {                                                               \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__,    \
                    __LINE__, #a, #b, _a, _b);                                        \
            t_cur_failed = 1;                                                         \
        }                                                                             \
    } while (0)
#define CHECK_EQ_STR(a, b)                                                             \
    do {                                                                               \
        const char *_a = (a), *_b = (b);                                               \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                       \
            fprintf(stderr, "  %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, \
                    __LINE__, #a, #b, _a ? _a : "(null)", _b ? _b : "(null)");        \
            t_cur_failed = 1;                                                          \
        }                                                                              \
    } while (0)
#define CHECK_EQ_MEM(a, alen, b)                                                        \
    do {                                                                                \
        const char *_b = (b);                                                           \
        size_t _bl = strlen(_b);                                                        \
        if ((size_t)(alen) != _bl || memcmp((a), _b, _bl) != 0) {                       \
            fprintf(stderr, "  %s:%d: %s == \"%s\" failed: got \"%.*s\"\n", __FILE__,  \
                    __LINE__, #a, _b, (int)(alen), (const char *)(a));                  \
            t_cur_failed = 1;                                                           \
        }                                                                               \
    } while (0)
#define RUN(name)                                                        \
    do {                                                                 \
        t_cur_failed = 0;                                                \
        name();                                                          \
        t_num++;                                                         \
        if (t_cur_failed) { t_failed++; printf("not ok %d - %s\n", t_num, #name); } \
        else { t_passed++; printf("ok %d - %s\n", t_num, #name); }      \
        fflush(stdout);                                                  \
    } while (0)

/* Reproducible "random" test data: xorshift64, the same sequence each run. */
static inline unsigned t_rand(void)
{
    static unsigned long long x = 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (unsigned)(x >> 32);
}

static inline int test_summary(void)
{
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#endif
