/* test_trace_ctx.c - core/trace_ctx.c: the traceparent rules (the same as
 * lua/jararaca/tracing/w3c.lua's; trace_root_spec checks the two agree
 * through a server), the echoed header, and ids that are never zero and
 * differ. */
#include "test.h"
#include "trace_ctx.h"

#include <string.h>

#define T "4bf92f3577b34da6a3ce929d0e0e4736"
#define P "00f067aa0ba902b7"

static int parse(const char *s, int *sampled)
{
    unsigned char t[16], p[8];
    return jr_traceparent_parse(s, strlen(s), t, p, sampled);
}

TEST(valid_headers)
{
    int sampled = -1;
    unsigned char t[16], p[8];
    const char *s = "00-" T "-" P "-01";
    CHECK_EQ_INT(jr_traceparent_parse(s, strlen(s), t, p, &sampled), 0);
    CHECK_EQ_INT(sampled, 1);
    CHECK_EQ_INT(t[0], 0x4b);
    CHECK_EQ_INT(t[15], 0x36);
    CHECK_EQ_INT(p[0], 0x00);
    CHECK_EQ_INT(p[7], 0xb7);
    CHECK_EQ_INT(parse("00-" T "-" P "-00", &sampled), 0);
    CHECK_EQ_INT(sampled, 0);
    CHECK_EQ_INT(parse("00-" T "-" P "-03", &sampled), 0); /* other flag bits: sampled is bit 0 */
    CHECK_EQ_INT(sampled, 1);
    /* a later version: its first four fields, more after a "-" */
    CHECK_EQ_INT(parse("01-" T "-" P "-01", &sampled), 0);
    CHECK_EQ_INT(parse("01-" T "-" P "-01-what-comes-next", &sampled), 0);
}

TEST(invalid_headers)
{
    int sampled;
    const char *bad[] = {
        "",
        "garbage",
        "00-" T "-" P "-01-x",          /* version 00 has nothing after the flags */
        "01-" T "-" P "-01x",           /* a later version: only "-..." may follow */
        "ff-" T "-" P "-01",            /* version ff */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" P "-01", /* upper case */
        "00-" T "-" P "-0A",
        "00-00000000000000000000000000000000-" P "-01", /* all-zero ids */
        "00-" T "-0000000000000000-01",
        "00-" T "f-" P "-01",           /* wrong lengths */
        "00-" T "-" P "f-01",
        "00-" T "-" P "-1",
        "00_" T "-" P "-01",
        "0g-" T "-" P "-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_EQ_INT(parse(bad[i], &sampled), -1);
    unsigned char t[16], p[8];
    CHECK_EQ_INT(jr_traceparent_parse(NULL, 0, t, p, &sampled), -1);
}

TEST(format_round_trip)
{
    unsigned char t[16], s[8], t2[16], p2[8];
    jr_trace_random_id(t, 16);
    jr_trace_random_id(s, 8);
    char out[JR_TRACEPARENT_LEN + 1];
    jr_traceparent_format(out, t, s, 1);
    out[JR_TRACEPARENT_LEN] = 0;
    CHECK_EQ_INT(strncmp(out, "00-", 3), 0);
    CHECK_EQ_INT(strcmp(out + 52, "-01"), 0);
    int sampled;
    CHECK_EQ_INT(jr_traceparent_parse(out, JR_TRACEPARENT_LEN, t2, p2, &sampled), 0);
    CHECK_EQ_INT(sampled, 1);
    CHECK(memcmp(t, t2, 16) == 0);
    CHECK(memcmp(s, p2, 8) == 0);
    jr_traceparent_format(out, t, s, 0);
    CHECK_EQ_INT(strcmp(out + 52, "-00"), 0);
}

TEST(ids_differ_and_sampling)
{
    CHECK_EQ_INT(jr_trace_seed(), 0);
    unsigned char a[16], b[16];
    jr_trace_random_id(a, 16);
    jr_trace_random_id(b, 16);
    CHECK(memcmp(a, b, 16) != 0);
    CHECK_EQ_INT(jr_trace_sample(1.0), 1);
    CHECK_EQ_INT(jr_trace_sample(0.0), 0);
    int n = 0;
    for (int i = 0; i < 10000; i++) n += jr_trace_sample(0.25);
    CHECK(n > 2000 && n < 3000); /* 2500 expected; 10 sigma is 433 */
    CHECK(jr_trace_now_us() > 1700000000000000ull);
}

int main(void)
{
    RUN(valid_headers);
    RUN(invalid_headers);
    RUN(format_round_trip);
    RUN(ids_differ_and_sampling);
    return test_summary();
}
