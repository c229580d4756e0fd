/* cron.c - cron expression parser and next-fire computation (cron.h).
 *
 * Parsing follows croniter 1.3.5 where it is consistent (fields, steps,
 * names, "A/S" = "A-max/S", a day-of-week range ending in 0/sun ends at 7,
 * a field allowing all its values counts as unrestricted for the OR rule),
 * and refuses what croniter only half supports (L, #, H, ?). */
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- parsing ------------------------------------------------------------ */

enum { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_SEC };

static const struct {
    const char *name;
    int lo, hi;
} fields[] = {
    [F_MIN] = {"minute", 0, 59},      [F_HOUR] = {"hour", 0, 23},
    [F_DOM] = {"day-of-month", 1, 31}, [F_MON] = {"month", 1, 12},
    [F_DOW] = {"day-of-week", 0, 7},   [F_SEC] = {"second", 0, 59},
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const struct {
    const char *alias, *expr;
} aliases[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},     {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

typedef struct {
    const char *expr; /* the text as given, for messages */
    char *err;
    size_t errcap;
} parse_ctx;

static int fail(parse_ctx *p, size_t pos, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (p->errcap) snprintf(p->err, p->errcap, "\"%s\": position %zu: %s", p->expr, pos + 1, what);
    return -1;
}

static int is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

/* A number (saturating at 100000: that is out of every range, and a step
 * that large means "the start only", so no overflow is possible) or,
 * in the month and day-of-week fields, a three-letter name. */
static int parse_value(parse_ctx *p, const char *s, size_t *i, int field, long *out)
{
    size_t start = *i;
    if (isdigit((unsigned char)s[*i])) {
        long v = 0;
        while (isdigit((unsigned char)s[*i])) {
            v = v * 10 + (s[*i] - '0');
            if (v > 100000) v = 100000;
            (*i)++;
        }
        *out = v;
        return 0;
    }
    if (isalpha((unsigned char)s[*i]) && (field == F_MON || field == F_DOW)) {
        while (isalpha((unsigned char)s[*i])) (*i)++;
        size_t n = *i - start;
        const char *const *names = field == F_MON ? month_names : dow_names;
        int count = field == F_MON ? 12 : 7;
        for (int k = 0; n == 3 && k < count; k++) {
            if (tolower((unsigned char)s[start]) == names[k][0] &&
                tolower((unsigned char)s[start + 1]) == names[k][1] &&
                tolower((unsigned char)s[start + 2]) == names[k][2]) {
                *out = field == F_MON ? k + 1 : k;
                return 0;
            }
        }
        return fail(p, start, "unknown %s name '%.*s' (expected %s)",
                    field == F_MON ? "month" : "day-of-week", (int)(n > 20 ? 20 : n), s + start,
                    field == F_MON ? "jan..dec" : "sun..sat");
    }
    if (field == F_MON || field == F_DOW)
        return fail(p, start, "expected a number, a name or '*' in the %s field", fields[field].name);
    return fail(p, start, "expected a number or '*' in the %s field", fields[field].name);
}

static int check_range(parse_ctx *p, size_t pos, int field, long v)
{
    if (v < fields[field].lo || v > fields[field].hi)
        return fail(p, pos, "%s %ld is out of range (%d-%d)", fields[field].name, v,
                    fields[field].lo, fields[field].hi);
    return 0;
}

/* One field s[b..e) into *mask (bit v for each allowed value; day-of-week
 * 7 folded onto 0). */
static int parse_field(parse_ctx *p, const char *s, size_t b, size_t e, int field, uint64_t *mask)
{
    int lo = fields[field].lo, hi = fields[field].hi;
    size_t i = b;
    *mask = 0;
    for (;;) {
        long from, to, step = 1;
        size_t item = i;
        if (i < e && s[i] == '*') {
            i++;
            from = lo;
            to = hi;
        } else {
            if (i >= e || s[i] == ',') {
                return fail(p, i, "empty item in the %s field (expected a number%s or '*')",
                            fields[field].name, field == F_MON || field == F_DOW ? ", a name" : "");
            }
            if (parse_value(p, s, &i, field, &from) != 0) return -1;
            if (check_range(p, item, field, from) != 0) return -1;
            to = from;
            if (i < e && s[i] == '-') {
                size_t at = ++i;
                if (i >= e) return fail(p, i, "expected the end of the range in the %s field", fields[field].name);
                if (parse_value(p, s, &i, field, &to) != 0) return -1;
                if (check_range(p, at, field, to) != 0) return -1;
                /* croniter: "fri-sun" / "5-0" runs to Sunday as 7. */
                if (field == F_DOW && to == 0 && from > 0) to = 7;
                if (from > to)
                    return fail(p, item, "range %ld-%ld is reversed (start after end)", from, to);
            } else if (i < e && s[i] == '/') {
                to = hi; /* croniter: "A/S" = "A-max/S" */
            }
        }
        if (i < e && s[i] == '/') {
            size_t at = ++i;
            if (i >= e || !isdigit((unsigned char)s[i]))
                return fail(p, at, "expected a step (a positive number) after '/'");
            if (parse_value(p, s, &i, field, &step) != 0) return -1;
            if (step < 1) return fail(p, at, "step 0 is not allowed (the step must be at least 1)");
        }
        for (long v = from; v <= to; v += step) *mask |= UINT64_C(1) << (field == F_DOW && v == 7 ? 0 : v);
        if (i >= e) return 0;
        if (s[i] != ',')
            return fail(p, i, "unexpected '%c' in the %s field (expected ',', '-', '/' or a space)", s[i],
                        fields[field].name);
        i++;
    }
}

static uint64_t full_mask(int field)
{
    int lo = fields[field].lo, hi = field == F_DOW ? 6 : fields[field].hi;
    uint64_t m = 0;
    for (int v = lo; v <= hi; v++) m |= UINT64_C(1) << v;
    return m;
}

int jr_cron_parse(jr_cron *c, const char *expr, char *err, size_t errcap)
{
    parse_ctx p = {expr, err, errcap};
    memset(c, 0, sizeof *c);
    const char *s = expr;
    size_t n = strlen(expr), b = 0, e = n;
    while (b < e && is_blank(s[b])) b++;
    while (e > b && is_blank(s[e - 1])) e--;
    if (b == e) return fail(&p, 0, "empty expression (expected 5 or 6 fields)");
    if (s[b] == '@') {
        for (size_t k = 0; k < sizeof aliases / sizeof aliases[0]; k++) {
            size_t al = strlen(aliases[k].alias);
            if (al == e - b && strncasecmp(s + b, aliases[k].alias, al) == 0)
                return jr_cron_parse(c, aliases[k].expr, err, errcap);
        }
        return fail(&p, b, "unknown alias '%.*s' (expected @yearly, @annually, @monthly, @weekly, "
                    "@daily, @midnight or @hourly)", (int)(e - b > 20 ? 20 : e - b), s + b);
    }
    size_t fb[6], fe[6];
    int nf = 0;
    for (size_t i = b; i < e;) {
        if (nf == 6)
            return fail(&p, i, "too many fields (expected 5: minute hour day-of-month month "
                        "day-of-week, or 6 with seconds last)");
        fb[nf] = i;
        while (i < e && !is_blank(s[i])) i++;
        fe[nf++] = i;
        while (i < e && is_blank(s[i])) i++;
    }
    if (nf < 5)
        return fail(&p, n, "too few fields: %d (expected 5: minute hour day-of-month month "
                    "day-of-week, or 6 with seconds last)", nf);
    uint64_t m[6];
    for (int f = 0; f < nf; f++)
        if (parse_field(&p, s, fb[f], fe[f], f, &m[f]) != 0) return -1;
    c->min = m[F_MIN];
    c->hour = (uint32_t)m[F_HOUR];
    c->dom = (uint32_t)m[F_DOM];
    c->mon = (uint16_t)m[F_MON];
    c->dow = (uint8_t)m[F_DOW];
    c->has_seconds = nf == 6;
    c->sec = nf == 6 ? m[F_SEC] : 1;
    /* croniter's test: a field allowing every value counts as '*' ("1-31",
     * "*\/1", "0-7" too), so the OR rule applies only when both restrict. */
    c->day_or = m[F_DOM] != full_mask(F_DOM) && m[F_DOW] != full_mask(F_DOW);
    c->every_hour = m[F_HOUR] == full_mask(F_HOUR);
    return 0;
}

/* ---- calendar ----------------------------------------------------------- */

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int64_t y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

/* ---- next --------------------------------------------------------------- */

#define NONE INT64_MAX

/* The lowest set bit of mask at or above bit `from` (<= top), or -1. */
static int next_bit(uint64_t mask, int from, int top)
{
    if (from > top) return -1;
    uint64_t m = mask >> from;
    if (!m) return -1;
    int b = from + __builtin_ctzll(m);
    return b <= top ? b : -1;
}

static int day_matches(const jr_cron *c, int64_t y, int m, int d)
{
    int dom_ok = (c->dom >> d) & 1;
    /* 1970-01-01 was a Thursday (4). */
    int64_t days = jr_days_from_civil(y, m, d);
    int wd = (int)(((days % 7) + 7 + 4) % 7);
    int dow_ok = (c->dow >> wd) & 1;
    return c->day_or ? (dom_ok || dow_ok) : (dom_ok && dow_ok);
}

/* The smallest wall-clock time L >= from with L < limit that matches, as
 * "local seconds" (a civil date and time counted like epoch seconds), or
 * NONE. Skips by fields: a wrong month jumps to the next allowed month, a
 * wrong day to the next day, a wrong hour to the next allowed hour... */
static int64_t next_civil(const jr_cron *c, int64_t from, int64_t limit)
{
    int64_t days = floor_div(from, 86400), y, ylimit;
    int sod = (int)(from - days * 86400), m, d, dl;
    jr_civil_from_days(days, &y, &m, &d);
    jr_civil_from_days(floor_div(limit, 86400), &ylimit, &dl, &dl);
    int h = sod / 3600, mi = sod / 60 % 60, s = sod % 60;
    for (;;) {
        if (y > ylimit) return NONE;
        if (!((c->mon >> m) & 1)) {
            int nm = next_bit(c->mon, m, 12);
            if (nm < 0) {
                y++;
                m = 1;
            } else {
                m = nm;
            }
            d = 1;
            h = mi = s = 0;
            continue;
        }
        if (d > days_in_month(y, m)) {
            if (++m > 12) {
                m = 1;
                y++;
            }
            d = 1;
            h = mi = s = 0;
            continue;
        }
        if (!day_matches(c, y, m, d)) {
            d++;
            h = mi = s = 0;
            continue;
        }
        int nh = next_bit(c->hour, h, 23);
        if (nh < 0) {
            d++;
            h = mi = s = 0;
            continue;
        }
        if (nh != h) {
            h = nh;
            mi = s = 0;
        }
        int nmi = next_bit(c->min, mi, 59);
        if (nmi < 0) {
            h++;
            mi = s = 0;
            continue;
        }
        if (nmi != mi) {
            mi = nmi;
            s = 0;
        }
        int ns = next_bit(c->sec, s, 59);
        if (ns < 0) {
            mi++;
            s = 0;
            continue;
        }
        int64_t L = jr_days_from_civil(y, m, d) * 86400 + h * 3600 + nmi * 60 + ns;
        return L < limit ? L : NONE;
    }
}

/* Year 1-01-01 and 9999-12-31T23:59:59 as epoch seconds. */
#define MIN_TIME INT64_C(-62135596800)
#define MAX_TIME INT64_C(253402300799)

int jr_cron_next(const jr_cron *c, int64_t after, const jr_tz *tz, int64_t *out)
{
    if (after < MIN_TIME || after > MAX_TIME) return JR_CRON_RANGE;
    int64_t t = after + 1;
    int64_t deadline = t + (int64_t)JR_CRON_HORIZON_YEARS * 366 * 86400;
    if (deadline > MAX_TIME + 1) deadline = MAX_TIME + 1; /* the calendar ends with 9999 */
    if (!tz) {
        int64_t L = next_civil(c, t, deadline);
        if (L == NONE) return JR_CRON_NEVER;
        *out = L;
        return JR_CRON_OK;
    }
    /* Walk the zone's spans of constant offset: within one, wall-clock time
     * runs in step with UTC, so the search is the UTC one shifted. */
    while (t < deadline) {
        jr_tz_span sp;
        jr_tz_span_at(tz, t, &sp);
        int64_t end = sp.end < deadline ? sp.end : deadline;
        int64_t L = next_civil(c, t + sp.off, end + sp.off);
        if (L == NONE) {
            t = end;
            continue;
        }
        if (!c->every_hour && sp.prev_off > sp.off && L < sp.start + sp.prev_off) {
            /* L is a repeat: the clock went back at sp.start and L already
             * happened (and fired) before it. Go on from where the clock
             * passes the old wall-clock time of sp.start again. */
            t = sp.start + (sp.prev_off - sp.off);
            continue;
        }
        *out = L - sp.off;
        return JR_CRON_OK;
    }
    return JR_CRON_NEVER;
}
