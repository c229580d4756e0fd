/* test_retry_after.c - core/retry_after.c: delta-seconds, IMF-fixdate
 * (future, past, leap years, a leap second), and what is refused. */
#include "retry_after.h"

#include <string.h>

#include "test.h"

static int ra(const char *v, int64_t now, double *s) { return jr_retry_after_parse(v, strlen(v), now, s); }

TEST(delta_seconds)
{
    double s = -1;
    CHECK_EQ_INT(ra("120", 0, &s), 0);
    CHECK(s == 120);
    CHECK_EQ_INT(ra("  0\t", 0, &s), 0); /* surrounding whitespace is not part of the value */
    CHECK(s == 0);
    CHECK_EQ_INT(ra("0.25", 0, &s), 0); /* the documented leniency */
    CHECK(s == 0.25);
    CHECK_EQ_INT(ra("99999999999", 0, &s), 0); /* no int overflow: callers cap */
    CHECK(s == 99999999999.0);
}

TEST(imf_fixdate)
{
    int64_t t = 0;
    CHECK_EQ_INT(jr_http_date_parse("Thu, 01 Jan 1970 00:00:00 GMT", 29, &t), 0);
    CHECK_EQ_INT(t, 0);
    CHECK_EQ_INT(jr_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t), 0); /* RFC 9110's example */
    CHECK_EQ_INT(t, 784111777);
    CHECK_EQ_INT(jr_http_date_parse("Thu, 29 Feb 2024 23:59:60 GMT", 29, &t), 0); /* leap day, leap second */
    CHECK_EQ_INT(t, 1709251200);

    double s = -1;
    CHECK_EQ_INT(ra("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 90, &s), 0); /* 90 s ahead */
    CHECK(s == 90);
    CHECK_EQ_INT(ra(" Sun, 06 Nov 1994 08:49:37 GMT ", 784111777 + 5, &s), 0); /* past: retry now */
    CHECK(s == 0);
}

TEST(refused)
{
    double s = -7;
    static const char *const bad[] = {
        "",
        "   ",
        "-1",
        "1.",
        "1.2.3",
        "12s",
        "soon",
        "Sun, 06 Nov 1994 08:49:37 UTC",  /* GMT only */
        "Sun, 06 Nov 94 08:49:37 GMT",    /* two-digit year */
        "Sunday, 06-Nov-94 08:49:37 GMT", /* RFC 850: obsolete, not read */
        "Sun Nov  6 08:49:37 1994",       /* asctime: obsolete, not read */
        "Sun, 31 Nov 1994 08:49:37 GMT",  /* no 31 November */
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Abc, 06 Nov 1994 08:49:37 GMT",
        "Sun, 0a Nov 1994 08:49:37 GMT",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (ra(bad[i], 0, &s) != -1) fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
        CHECK_EQ_INT(ra(bad[i], 0, &s), -1);
    }
    CHECK(s == -7); /* untouched on failure */
}

int main(void)
{
    RUN(delta_seconds);
    RUN(imf_fixdate);
    RUN(refused);
    return test_summary();
}
