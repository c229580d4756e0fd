/* test_cron.c - core/cron.c and core/tz.c: croniter's vectors
 * (spec/c/fixtures/cron_vectors.tsv, from gen_cron_vectors.py), parse
 * errors, "never", the DST rules of docs/cron.md in three zones, and the
 * zone reader against glibc's localtime for every zone on the machine. */
#include "test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cron.h"
#include "tz.h"

static int64_t utc(int y, int m, int d, int h, int mi, int s)
{
    return jr_days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s;
}

static jr_cron P(const char *expr)
{
    jr_cron c;
    char err[256];
    if (jr_cron_parse(&c, expr, err, sizeof err) != 0) {
        fprintf(stderr, "  parse(%s) failed: %s\n", expr, err);
        t_cur_failed = 1;
        memset(&c, 0, sizeof c);
    }
    return c;
}

static jr_tz *Z(const char *name)
{
    jr_tz *z = NULL;
    char err[256];
    if (jr_tz_load(name, &z, err, sizeof err) != JR_TZ_OK) {
        fprintf(stderr, "  zone %s: %s\n", name, err);
        t_cur_failed = 1;
    }
    return z;
}

/* next fire of expr after `after` in zone (NULL: UTC); -1 when never */
static int64_t N(const char *expr, int64_t after, const jr_tz *z)
{
    jr_cron c = P(expr);
    int64_t t;
    return jr_cron_next(&c, after, z, &t) == JR_CRON_OK ? t : -1;
}

/* ---- croniter's vectors ------------------------------------------------- */

static char *fixture_path(const char *file)
{
    /* CMake compiles by absolute path, so __FILE__ locates the fixtures
     * without a build-time define. */
    static char path[4096];
    const char *slash = strrchr(__FILE__, '/');
    snprintf(path, sizeof path, "%.*s/fixtures/%s", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".", file);
    return path;
}

#define MAX_ZONES 16

TEST(croniter_vectors)
{
    FILE *f = fopen(fixture_path("cron_vectors.tsv"), "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[512];
    int checked = 0, wrong = 0, zoned = 0;
    struct {
        char name[64];
        jr_tz *z;
    } zones[MAX_ZONES];
    int nz = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *expr = strtok(line, "\t"), *zone = strtok(NULL, "\t"), *a = strtok(NULL, "\t"),
             *b = strtok(NULL, "\t\n");
        CHECK(expr && zone && a && b);
        if (!(expr && zone && a && b)) break;
        int64_t after = strtoll(a, NULL, 10), want = strtoll(b, NULL, 10), got = 0;
        jr_tz *z = NULL;
        if (strcmp(zone, "UTC") != 0) {
            int k = 0;
            while (k < nz && strcmp(zones[k].name, zone) != 0) k++;
            if (k == nz) {
                CHECK(nz < MAX_ZONES);
                if (nz == MAX_ZONES) break;
                snprintf(zones[nz].name, sizeof zones[nz].name, "%s", zone);
                zones[nz++].z = Z(zone);
            }
            z = zones[k].z;
            zoned++;
        }
        jr_cron c;
        char err[256];
        int rc = jr_cron_parse(&c, expr, err, sizeof err);
        if (rc == 0) rc = jr_cron_next(&c, after, z, &got);
        if (rc != 0 || got != want) {
            if (wrong++ < 20)
                fprintf(stderr, "  \"%s\" %s after %lld: want %lld, got %lld (rc %d%s%s)\n", expr, zone,
                        (long long)after, (long long)want, (long long)got, rc, rc ? ", " : "",
                        rc == -1 && err[0] ? err : "");
        }
        checked++;
    }
    fclose(f);
    for (int k = 0; k < nz; k++) jr_tz_free(zones[k].z);
    printf("# %d croniter vectors checked (%d in named zones), %d wrong\n", checked, zoned, wrong);
    CHECK_EQ_INT(wrong, 0);
    CHECK(checked >= 5000);
    CHECK(zoned >= 500);
}

/* ---- parsing ------------------------------------------------------------ */

static void check_error(const char *expr, const char *want)
{
    jr_cron c;
    char err[256] = "";
    int rc = jr_cron_parse(&c, expr, err, sizeof err);
    CHECK_EQ_INT(rc, -1);
    CHECK_EQ_STR(err, want);
}

TEST(parse_errors)
{
    check_error("", "\"\": position 1: empty expression (expected 5 or 6 fields)");
    check_error("   ", "\"   \": position 1: empty expression (expected 5 or 6 fields)");
    check_error("* * * *", "\"* * * *\": position 8: too few fields: 4 (expected 5: minute hour "
                           "day-of-month month day-of-week, or 6 with seconds last)");
    check_error("* * * * * * *", "\"* * * * * * *\": position 13: too many fields (expected 5: "
                                 "minute hour day-of-month month day-of-week, or 6 with seconds last)");
    check_error("60 * * * *", "\"60 * * * *\": position 1: minute 60 is out of range (0-59)");
    check_error("* 24 * * *", "\"* 24 * * *\": position 3: hour 24 is out of range (0-23)");
    check_error("* * 0 * *", "\"* * 0 * *\": position 5: day-of-month 0 is out of range (1-31)");
    check_error("* * 32 * *", "\"* * 32 * *\": position 5: day-of-month 32 is out of range (1-31)");
    check_error("* * * 13 *", "\"* * * 13 *\": position 7: month 13 is out of range (1-12)");
    check_error("* * * 0 *", "\"* * * 0 *\": position 7: month 0 is out of range (1-12)");
    check_error("* * * * 8", "\"* * * * 8\": position 9: day-of-week 8 is out of range (0-7)");
    check_error("* * * * * 60", "\"* * * * * 60\": position 11: second 60 is out of range (0-59)");
    check_error("1-70 * * * *", "\"1-70 * * * *\": position 3: minute 70 is out of range (0-59)");
    check_error("99999999999 * * * *",
                "\"99999999999 * * * *\": position 1: minute 100000 is out of range (0-59)");
    check_error("*/0 * * * *", "\"*/0 * * * *\": position 3: step 0 is not allowed (the step must be at least 1)");
    check_error("1-5/0 * * * *", "\"1-5/0 * * * *\": position 5: step 0 is not allowed (the step must be at least 1)");
    check_error("*/ * * * *", "\"*/ * * * *\": position 3: expected a step (a positive number) after '/'");
    check_error("*/x * * * *", "\"*/x * * * *\": position 3: expected a step (a positive number) after '/'");
    check_error("1,,2 * * * *", "\"1,,2 * * * *\": position 3: empty item in the minute field (expected a number or '*')");
    check_error("1, * * * *", "\"1, * * * *\": position 3: empty item in the minute field (expected a number or '*')");
    check_error("* * * , *", "\"* * * , *\": position 7: empty item in the month field (expected a number, a name or '*')");
    check_error("5-1 * * * *", "\"5-1 * * * *\": position 1: range 5-1 is reversed (start after end)");
    check_error("* * * dec-jan *", "\"* * * dec-jan *\": position 7: range 12-1 is reversed (start after end)");
    check_error("1- * * * *", "\"1- * * * *\": position 3: expected the end of the range in the minute field");
    check_error("* * * foo *", "\"* * * foo *\": position 7: unknown month name 'foo' (expected jan..dec)");
    check_error("* * * * monday", "\"* * * * monday\": position 9: unknown day-of-week name 'monday' (expected sun..sat)");
    check_error("mon * * * *", "\"mon * * * *\": position 1: expected a number or '*' in the minute field");
    check_error("0 0 L * *", "\"0 0 L * *\": position 5: expected a number or '*' in the day-of-month field");
    check_error("0 0 ? * *", "\"0 0 ? * *\": position 5: expected a number or '*' in the day-of-month field");
    check_error("0 0 * * 5#2", "\"0 0 * * 5#2\": position 10: unexpected '#' in the day-of-week field (expected ',', '-', '/' or a space)");
    check_error("H * * * *", "\"H * * * *\": position 1: expected a number or '*' in the minute field");
    check_error("-1 * * * *", "\"-1 * * * *\": position 1: expected a number or '*' in the minute field");
    check_error("** * * * *", "\"** * * * *\": position 2: unexpected '*' in the minute field (expected ',', '-', '/' or a space)");
    check_error("*-5 * * * *", "\"*-5 * * * *\": position 2: unexpected '-' in the minute field (expected ',', '-', '/' or a space)");
    check_error("@often", "\"@often\": position 1: unknown alias '@often' (expected @yearly, @annually, @monthly, "
                          "@weekly, @daily, @midnight or @hourly)");
    check_error("@daily *", "\"@daily *\": position 1: unknown alias '@daily *' (expected @yearly, @annually, "
                            "@monthly, @weekly, @daily, @midnight or @hourly)");
    /* a message never overflows the caller's buffer */
    jr_cron c;
    char small[16];
    CHECK_EQ_INT(jr_cron_parse(&c, "60 * * * *", small, sizeof small), -1);
    CHECK_EQ_INT(strlen(small), 15);
}

static int same(const char *a, const char *b)
{
    jr_cron x = P(a), y = P(b);
    return x.sec == y.sec && x.min == y.min && x.hour == y.hour && x.dom == y.dom && x.mon == y.mon &&
           x.dow == y.dow && x.has_seconds == y.has_seconds && x.day_or == y.day_or;
}

TEST(parse_forms)
{
    jr_cron c = P("*/15 9-17 1,15 jan-mar mon-fri");
    CHECK_EQ_INT(c.min, (1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45));
    CHECK_EQ_INT(c.hour, 0x3fe00);
    CHECK_EQ_INT(c.dom, (1u << 1) | (1u << 15));
    CHECK_EQ_INT(c.mon, 0xe);
    CHECK_EQ_INT(c.dow, 0x3e);
    CHECK_EQ_INT(c.sec, 1);
    CHECK(!c.has_seconds);
    CHECK(c.day_or);
    CHECK(!c.every_hour);
    c = P("* * * * * */3");
    CHECK(c.has_seconds);
    CHECK_EQ_INT(c.sec, 0x1249249249249249ULL & ((1ULL << 60) - 1));
    CHECK(c.every_hour);
    CHECK(!c.day_or);
    CHECK(same("0 0 * * 7", "0 0 * * 0"));
    CHECK(same("0 0 * * sun", "0 0 * * 0"));
    CHECK(same("0 0 * * SuN", "0 0 * * 0"));
    CHECK(same("0 0 * * fri-sun", "0 0 * * 0,5,6"));
    CHECK(same("0 0 * * 5-0", "0 0 * * 0,5,6"));
    CHECK(same("0 0 * * 1/3", "0 0 * * 0,1,4")); /* croniter: A/S = A-7/S */
    CHECK(same("0 0 1 Jan,JUL *", "0 0 1 1,7 *"));
    CHECK(same("5/20 * * * *", "5,25,45 * * * *"));
    CHECK(same("*/100 * * * *", "0 * * * *"));
    CHECK(same("@yearly", "0 0 1 1 *"));
    CHECK(same("@ANNUALLY", "0 0 1 1 *"));
    CHECK(same("@monthly", "0 0 1 * *"));
    CHECK(same("@weekly", "0 0 * * 0"));
    CHECK(same("@daily", "0 0 * * *"));
    CHECK(same("@midnight", "0 0 * * *"));
    CHECK(same("@hourly", "0 * * * *"));
    CHECK(same("  \t0   0 * *  *\n", "0 0 * * *"));
    /* a field allowing all values is unrestricted for the OR rule */
    CHECK(!P("0 0 1-31 * 1").day_or);
    CHECK(!P("0 0 1 * 0-7").day_or);
    CHECK(!P("0 0 1 * */1").day_or);
    CHECK(P("0 0 */2 * 1").day_or);
    CHECK(P("0 0-23 * * *").every_hour);
}

/* ---- next, UTC ---------------------------------------------------------- */

TEST(next_utc)
{
    int64_t t0 = utc(2023, 11, 14, 22, 13, 20); /* a Tuesday */
    CHECK_EQ_INT(N("* * * * *", t0, NULL), utc(2023, 11, 14, 22, 14, 0));
    CHECK_EQ_INT(N("* * * * * *", t0, NULL), t0 + 1);
    CHECK_EQ_INT(N("* * * * * */3", t0, NULL), t0 + 1); /* :21 */
    CHECK_EQ_INT(N("* * * * * */3", t0 + 1, NULL), t0 + 4);
    CHECK_EQ_INT(N("0 0 13 * fri", t0, NULL), utc(2023, 11, 17, 0, 0, 0)); /* OR: a Friday first */
    CHECK_EQ_INT(N("0 0 13 * fri", utc(2023, 12, 8, 0, 0, 0), NULL), utc(2023, 12, 13, 0, 0, 0));
    CHECK_EQ_INT(N("59 23 31 12 *", t0, NULL), utc(2023, 12, 31, 23, 59, 0));
    CHECK_EQ_INT(N("0 0 1 1 *", utc(2023, 12, 31, 23, 59, 59), NULL), utc(2024, 1, 1, 0, 0, 0));
    /* Feb 29: 2100 is not a leap year, so 2096 -> 2104 */
    CHECK_EQ_INT(N("0 0 29 2 *", utc(2096, 3, 1, 0, 0, 0), NULL), utc(2104, 2, 29, 0, 0, 0));
    CHECK_EQ_INT(N("0 0 31 * *", utc(2024, 1, 31, 0, 0, 0), NULL), utc(2024, 3, 31, 0, 0, 0));
    /* before 1970 */
    CHECK_EQ_INT(N("30 12 * * *", utc(1969, 12, 31, 13, 0, 0), NULL), utc(1970, 1, 1, 12, 30, 0));
    CHECK_EQ_INT(N("0 0 1 1 *", utc(1, 1, 1, 0, 0, 0), NULL), utc(2, 1, 1, 0, 0, 0));
}

TEST(never_and_range)
{
    jr_cron c = P("0 0 30 2 *");
    int64_t t = 0;
    CHECK_EQ_INT(jr_cron_next(&c, utc(2024, 1, 1, 0, 0, 0), NULL, &t), JR_CRON_NEVER);
    jr_tz *ny = Z("America/New_York");
    CHECK_EQ_INT(jr_cron_next(&c, utc(2024, 1, 1, 0, 0, 0), ny, &t), JR_CRON_NEVER);
    c = P("0 0 31 4,6,9,11 *");
    CHECK_EQ_INT(jr_cron_next(&c, 0, NULL, &t), JR_CRON_NEVER);
    /* near the end of the calendar */
    c = P("* * * * *");
    CHECK_EQ_INT(jr_cron_next(&c, utc(9999, 12, 31, 23, 58, 0), NULL, &t), JR_CRON_OK);
    CHECK_EQ_INT(t, utc(9999, 12, 31, 23, 59, 0));
    CHECK_EQ_INT(jr_cron_next(&c, utc(9999, 12, 31, 23, 59, 0), NULL, &t), JR_CRON_NEVER);
    CHECK_EQ_INT(jr_cron_next(&c, utc(10000, 1, 1, 0, 0, 0), NULL, &t), JR_CRON_RANGE);
    CHECK_EQ_INT(jr_cron_next(&c, INT64_MAX, NULL, &t), JR_CRON_RANGE);
    CHECK_EQ_INT(jr_cron_next(&c, INT64_MIN, ny, &t), JR_CRON_RANGE);
    jr_tz_free(ny);
}

/* ---- DST (docs/cron.md) ------------------------------------------------- */

/* in zone, expr's next fire after `after` (UTC y, m, d, h, mi, s) is `want` */
typedef struct {
    const char *zone, *expr;
    int after[6], want[6];
} dst_case;

static int64_t utc6(const int v[6]) { return utc(v[0], v[1], v[2], v[3], v[4], v[5]); }

TEST(dst_transitions)
{
    static const dst_case cases[] = {
        /* America/New_York */
        /* 2024-03-10 02:00 EST -> 03:00 EDT at 07:00Z: 02:xx does not exist */
        {"America/New_York", "30 2 * * *", {2024, 3, 9, 12, 0, 0}, {2024, 3, 11, 6, 30, 0}},
        {"America/New_York", "0 * * * *", {2024, 3, 10, 6, 30, 0}, {2024, 3, 10, 7, 0, 0}}, /* 03:00 EDT */
        {"America/New_York", "*/30 * * * *", {2024, 3, 10, 6, 45, 0}, {2024, 3, 10, 7, 0, 0}},
        {"America/New_York", "59 1 * * *", {2024, 3, 10, 5, 0, 0}, {2024, 3, 10, 6, 59, 0}},
        {"America/New_York", "0 3 * * *", {2024, 3, 10, 6, 59, 0}, {2024, 3, 10, 7, 0, 0}},
        /* 2024-11-03 02:00 EDT -> 01:00 EST at 06:00Z: 01:xx happens twice */
        {"America/New_York", "30 1 * * *", {2024, 11, 3, 4, 0, 0}, {2024, 11, 3, 5, 30, 0}}, /* EDT */
        {"America/New_York", "30 1 * * *", {2024, 11, 3, 5, 30, 0}, {2024, 11, 4, 6, 30, 0}}, /* once */
        {"America/New_York", "*/20 1 * * *", {2024, 11, 3, 5, 40, 0}, {2024, 11, 4, 6, 0, 0}},
        /* after inside the repeat: its first occurrence is past */
        {"America/New_York", "45 1 * * *", {2024, 11, 3, 6, 30, 0}, {2024, 11, 4, 6, 45, 0}},
        /* every hour: both passes, a real-time rhythm */
        {"America/New_York", "0 * * * *", {2024, 11, 3, 4, 30, 0}, {2024, 11, 3, 5, 0, 0}},
        {"America/New_York", "0 * * * *", {2024, 11, 3, 5, 0, 0}, {2024, 11, 3, 6, 0, 0}},
        {"America/New_York", "0 * * * *", {2024, 11, 3, 6, 0, 0}, {2024, 11, 3, 7, 0, 0}},
        {"America/New_York", "*/20 * * * *", {2024, 11, 3, 5, 50, 0}, {2024, 11, 3, 6, 0, 0}},
        {"America/New_York", "45 * * * *", {2024, 11, 3, 6, 30, 0}, {2024, 11, 3, 6, 45, 0}},
        {"America/New_York", "* * * * * */3", {2024, 11, 3, 5, 59, 59}, {2024, 11, 3, 6, 0, 0}},
        /* past the table (2037): the footer's rule, 2050-03-13 and 2050-11-06 */
        {"America/New_York", "30 2 * * *", {2050, 3, 12, 12, 0, 0}, {2050, 3, 14, 6, 30, 0}},
        {"America/New_York", "30 1 * * *", {2050, 11, 6, 5, 30, 0}, {2050, 11, 7, 6, 30, 0}},
        {"America/New_York", "30 * * * *", {2050, 11, 6, 5, 30, 0}, {2050, 11, 6, 6, 30, 0}},
        /* Europe/Berlin */
        /* 2024-03-31 02:00 CET -> 03:00 CEST at 01:00Z */
        {"Europe/Berlin", "30 2 * * *", {2024, 3, 30, 12, 0, 0}, {2024, 4, 1, 0, 30, 0}},
        {"Europe/Berlin", "0 * * * *", {2024, 3, 31, 0, 30, 0}, {2024, 3, 31, 1, 0, 0}},
        {"Europe/Berlin", "0 0 * * *", {2024, 3, 30, 12, 0, 0}, {2024, 3, 30, 23, 0, 0}},
        {"Europe/Berlin", "0 0 * * *", {2024, 3, 30, 23, 0, 0}, {2024, 3, 31, 22, 0, 0}},
        /* 2024-10-27 03:00 CEST -> 02:00 CET at 01:00Z: 02:xx twice */
        {"Europe/Berlin", "30 2 * * *", {2024, 10, 26, 12, 0, 0}, {2024, 10, 27, 0, 30, 0}},
        {"Europe/Berlin", "30 2 * * *", {2024, 10, 27, 0, 30, 0}, {2024, 10, 28, 1, 30, 0}},
        {"Europe/Berlin", "30 * * * *", {2024, 10, 27, 0, 30, 0}, {2024, 10, 27, 1, 30, 0}},
        {"Europe/Berlin", "0 3 * * *", {2024, 10, 27, 0, 30, 0}, {2024, 10, 27, 2, 0, 0}},
        /* America/Sao_Paulo */
        /* 2018-11-04 00:00 -03 -> 01:00 -02 at 03:00Z: midnight does not exist */
        {"America/Sao_Paulo", "0 0 * * *", {2018, 11, 3, 12, 0, 0}, {2018, 11, 5, 2, 0, 0}},
        {"America/Sao_Paulo", "30 0 * * *", {2018, 11, 3, 12, 0, 0}, {2018, 11, 5, 2, 30, 0}},
        {"America/Sao_Paulo", "0 * * * *", {2018, 11, 4, 2, 30, 0}, {2018, 11, 4, 3, 0, 0}}, /* 01:00 -02 */
        {"America/Sao_Paulo", "0 1 * * *", {2018, 11, 4, 2, 30, 0}, {2018, 11, 4, 3, 0, 0}},
        /* 2019-02-17 00:00 -02 -> 23:00 -03 (the 16th again) at 02:00Z */
        {"America/Sao_Paulo", "30 23 * * *", {2019, 2, 16, 12, 0, 0}, {2019, 2, 17, 1, 30, 0}},
        {"America/Sao_Paulo", "30 23 * * *", {2019, 2, 17, 1, 30, 0}, {2019, 2, 18, 2, 30, 0}},
        {"America/Sao_Paulo", "30 * * * *", {2019, 2, 17, 1, 30, 0}, {2019, 2, 17, 2, 30, 0}},
        /* the 17th's midnight only comes after the repeated hour */
        {"America/Sao_Paulo", "0 0 * * *", {2019, 2, 16, 12, 0, 0}, {2019, 2, 17, 3, 0, 0}},
        /* no DST since 2019: the footer is a fixed -03 */
        {"America/Sao_Paulo", "0 0 * * *", {2030, 11, 3, 12, 0, 0}, {2030, 11, 4, 3, 0, 0}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        jr_tz *z = Z(cases[k].zone);
        int64_t got = N(cases[k].expr, utc6(cases[k].after), z), want = utc6(cases[k].want);
        if (got != want) {
            fprintf(stderr, "  %s \"%s\" after %lld: want %lld, got %lld\n", cases[k].zone,
                    cases[k].expr, (long long)utc6(cases[k].after), (long long)want, (long long)got);
            t_cur_failed = 1;
        }
        jr_tz_free(z);
    }
}

/* ---- zones against glibc ------------------------------------------------ */

static long glibc_off(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm)) return -999999;
    return tm.tm_gmtoff;
}

static int g_zones, g_bad_zones, g_points;

/* Our offsets and spans against glibc's localtime (the test process may
 * set TZ; the library never does). */
static void compare_zone(const char *name)
{
    jr_tz *z = NULL;
    char err[256];
    int rc = jr_tz_load(name, &z, err, sizeof err);
    if (rc != JR_TZ_OK) {
        if (g_bad_zones++ < 10) fprintf(stderr, "  %s: %s\n", name, err);
        t_cur_failed = 1;
        return;
    }
    char tzenv[600];
    snprintf(tzenv, sizeof tzenv, ":%s", name);
    setenv("TZ", tzenv, 1);
    tzset();
    int bad = 0;
    for (int k = 0; k < 120 && bad < 3; k++) {
        /* 1850 .. 2200, denser in 1970 .. 2100 */
        int64_t lo = k % 3 ? 0 : -3786825600LL, hi = k % 3 ? 4102444800LL : 7258118400LL;
        int64_t t = lo + (int64_t)(((uint64_t)t_rand() << 32 | t_rand()) % (uint64_t)(hi - lo));
        jr_tz_span sp;
        jr_tz_span_at(z, t, &sp);
        long g = glibc_off(t);
        int ok = sp.off == g && sp.start <= t && t < sp.end;
        if (ok && sp.start > JR_TZ_MIN_TIME)
            ok = glibc_off(sp.start) == sp.off && glibc_off(sp.start - 1) == sp.prev_off;
        if (ok && sp.end < JR_TZ_MAX_TIME) ok = glibc_off(sp.end - 1) == sp.off;
        g_points++;
        if (!ok) {
            bad++;
            fprintf(stderr, "  %s at %lld: glibc %ld, span [%lld, %lld) off %d prev %d\n", name,
                    (long long)t, g, (long long)sp.start, (long long)sp.end, sp.off, sp.prev_off);
            t_cur_failed = 1;
        }
    }
    g_zones++;
    jr_tz_free(z);
}

static int is_tzif(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    int ok = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
    if (f) fclose(f);
    return ok;
}

static void walk(const char *root, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[512], full[1536];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        /* right/: leap-second variants (refused, see tz.h); posix/: copies */
        if (strcmp(sub, "right") == 0 || strcmp(sub, "posix") == 0) continue;
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0) continue;
        if (S_ISDIR(st.st_mode))
            walk(root, sub);
        else if (is_tzif(full))
            compare_zone(sub);
    }
    closedir(d);
}

TEST(every_system_zone_matches_glibc)
{
    walk("/usr/share/zoneinfo", "");
    unsetenv("TZ");
    tzset();
    printf("# %d zones, %d instants compared with glibc\n", g_zones, g_points);
    CHECK(g_zones > 300);
    CHECK_EQ_INT(g_bad_zones, 0);
}

TEST(zone_names)
{
    jr_tz *z = NULL;
    char err[256];
    CHECK_EQ_INT(jr_tz_load("America/Nowhere", &z, err, sizeof err), JR_TZ_NOT_FOUND);
    CHECK_EQ_STR(err, "unknown time zone 'America/Nowhere' (no /usr/share/zoneinfo/America/Nowhere)");
    const char *refused[] = {"../../etc/passwd", "/etc/localtime", "Europe/../UTC", "Europe//Berlin",
                             "Europe/", "a b", "", "./UTC"};
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        CHECK_EQ_INT(jr_tz_load(refused[k], &z, err, sizeof err), JR_TZ_NOT_FOUND);
        CHECK(strstr(err, "(not a zone name)") != NULL);
    }
    /* a directory or a file that is not TZif */
    CHECK_EQ_INT(jr_tz_load("Europe", &z, err, sizeof err), JR_TZ_INVALID);
    CHECK_EQ_INT(jr_tz_load("zone.tab", &z, err, sizeof err), JR_TZ_INVALID);
    CHECK_EQ_STR(err, "time zone 'zone.tab': invalid TZif data (no TZif header)");
    /* UTC is built in: it works with no tzdata at all */
    setenv("TZDIR", "/nonexistent", 1);
    CHECK_EQ_INT(jr_tz_load("UTC", &z, err, sizeof err), JR_TZ_OK);
    CHECK_EQ_STR(jr_tz_name(z), "UTC");
    CHECK_EQ_INT(jr_tz_offset(z, 1700000000), 0);
    jr_tz_free(z);
    CHECK_EQ_INT(jr_tz_load("Europe/Berlin", &z, err, sizeof err), JR_TZ_NOT_FOUND);
    unsetenv("TZDIR");
}

/* A hand-made v2 TZif: no transitions, only a footer, so every instant
 * goes through the POSIX-TZ rule. */
static size_t make_tzif(unsigned char *buf, const char *footer, int32_t utoff)
{
    size_t n = 0;
    for (int part = 0; part < 2; part++) {
        memcpy(buf + n, "TZif2", 5);
        memset(buf + n + 5, 0, 15);
        n += 20;
        uint32_t counts[6] = {0, 0, 0, 0, 1, 4}; /* isut isstd leap time type char */
        for (int k = 0; k < 6; k++) {
            buf[n++] = (unsigned char)(counts[k] >> 24);
            buf[n++] = (unsigned char)(counts[k] >> 16);
            buf[n++] = (unsigned char)(counts[k] >> 8);
            buf[n++] = (unsigned char)counts[k];
        }
        uint32_t u = (uint32_t)utoff;
        buf[n++] = (unsigned char)(u >> 24);
        buf[n++] = (unsigned char)(u >> 16);
        buf[n++] = (unsigned char)(u >> 8);
        buf[n++] = (unsigned char)u;
        buf[n++] = 0; /* isdst */
        buf[n++] = 0; /* desigidx */
        memcpy(buf + n, "XXX", 4);
        n += 4;
    }
    n += (size_t)sprintf((char *)buf + n, "\n%s\n", footer);
    return n;
}

TEST(footer_rules)
{
    unsigned char buf[512];
    char err[256];
    jr_tz *z = NULL, *ny = Z("America/New_York");
    size_t n = make_tzif(buf, "EST5EDT,M3.2.0,M11.1.0", -18000);
    CHECK_EQ_INT(jr_tz_from_tzif("rule-ny", buf, n, &z, err, sizeof err), JR_TZ_OK);
    if (z && ny) {
        for (int64_t t = utc(2007, 1, 1, 0, 0, 0); t < utc(2037, 1, 1, 0, 0, 0); t += 3600 * 7)
            if (jr_tz_offset(z, t) != jr_tz_offset(ny, t)) {
                fprintf(stderr, "  rule-ny differs at %lld\n", (long long)t);
                t_cur_failed = 1;
                break;
            }
        CHECK_EQ_INT(N("30 2 * * *", utc(2024, 3, 9, 12, 0, 0), z), utc(2024, 3, 11, 6, 30, 0));
    }
    jr_tz_free(z);
    jr_tz_free(ny);
    /* southern hemisphere, Jn and n dates, negative and > 24 h times, <+-nn> names */
    const char *ok[] = {"AEST-10AEDT,M10.1.0,M4.1.0/3", "<-03>3<-02>,M10.3.0/0,M2.3.0/0",
                        "XXX3YYY,J60/-1,300/26", "<+0545>-5:45", "IST-2IDT,M3.4.4/26,M10.5.0",
                        "EST5EDT", "<-01>1<+00>,M3.5.0/0,M10.5.0/1", ""};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        n = make_tzif(buf, ok[k], 0);
        z = NULL;
        int rc = jr_tz_from_tzif("x", buf, n, &z, err, sizeof err);
        CHECK_EQ_INT(rc, JR_TZ_OK);
        if (rc == JR_TZ_OK) {
            jr_tz_span sp;
            jr_tz_span_at(z, utc(2040, 6, 1, 0, 0, 0), &sp);
            CHECK(sp.start <= utc(2040, 6, 1, 0, 0, 0) && utc(2040, 6, 1, 0, 0, 0) < sp.end);
        }
        jr_tz_free(z);
    }
    n = make_tzif(buf, "<+0545>-5:45", 0);
    CHECK_EQ_INT(jr_tz_from_tzif("x", buf, n, &z, err, sizeof err), JR_TZ_OK);
    CHECK_EQ_INT(jr_tz_offset(z, 0), 5 * 3600 + 45 * 60);
    jr_tz_free(z);
    const char *badf[] = {"EST", "E5", "EST5EDT,M13.1.0,M11.1.0", "EST5EDT,M3.2.0", "EST5EDT,J0,J10",
                          "EST99", "EST5EDT,M3.2.0,M11.1.0x", "<EST5"};
    for (size_t k = 0; k < sizeof badf / sizeof badf[0]; k++) {
        n = make_tzif(buf, badf[k], 0);
        CHECK_EQ_INT(jr_tz_from_tzif("x", buf, n, &z, err, sizeof err), JR_TZ_INVALID);
    }
    /* truncated files of every length fail cleanly */
    n = make_tzif(buf, "EST5EDT,M3.2.0,M11.1.0", -18000);
    for (size_t k = 0; k < n - 2; k++) {
        z = NULL;
        int rc = jr_tz_from_tzif("x", buf, k, &z, err, sizeof err);
        CHECK(rc == JR_TZ_INVALID || (rc == JR_TZ_OK && k >= n - 24));
        jr_tz_free(z);
    }
}

int main(void)
{
    RUN(croniter_vectors);
    RUN(parse_errors);
    RUN(parse_forms);
    RUN(next_utc);
    RUN(never_and_range);
    RUN(dst_transitions);
    RUN(every_system_zone_matches_glibc);
    RUN(zone_names);
    RUN(footer_rules);
    return test_summary();
}
