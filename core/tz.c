/* tz.c - time zones from TZif files (tz.h, RFC 8536).
 *
 * We read the files ourselves instead of calling localtime_r under a
 * setenv("TZ"): TZ is process-wide state that other code (logging, the
 * HTTP Date header) reads concurrently, and localtime answers "what is the
 * local time at t", not "where does this offset start and end", which is
 * what the cron search needs. */
#include "tz.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rule of a POSIX TZ string's DST part, e.g. "M3.2.0/2". */
typedef struct {
    char kind;    /* 'J' (Jn, 1..365, no Feb 29), 'D' (n, 0..365), 'M' (Mm.w.d) */
    int a, b, c;  /* J/D: day in a; M: month a, week b (5 = last), weekday c */
    int32_t time; /* seconds after local midnight (may be negative or > 24 h) */
} tz_rule;

struct jr_tz {
    int64_t *times; /* transitions, ascending */
    int32_t *offs;  /* the offset from times[i] on */
    size_t n;
    int32_t off0; /* before the first transition: time type 0 */
    /* The footer, for instants from the last transition on. */
    int footer;       /* 0: none (the last offset holds forever) */
    int footer_dst;   /* the footer has a DST rule */
    int32_t std_off, dst_off;
    tz_rule start, end;
    char name[];
};

/* ---- calendar ----------------------------------------------------------- */

int64_t jr_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void jr_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* ---- POSIX TZ string (the TZif footer) ---------------------------------- */

static const char *parse_name(const char *s)
{
    if (*s == '<') {
        const char *e = strchr(s, '>');
        return e && e - s >= 4 ? e + 1 : NULL;
    }
    const char *b = s;
    while (isalpha((unsigned char)*s)) s++;
    return s - b >= 3 ? s : NULL;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh, into seconds (sign as written). */
static const char *parse_hms(const char *s, int maxh, int32_t *out)
{
    int sign = 1;
    if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
    int v[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        if (k > 0) {
            if (*s != ':') break;
            s++;
        }
        if (!isdigit((unsigned char)*s)) return NULL;
        int x = 0, nd = 0;
        while (isdigit((unsigned char)*s) && nd < 3) x = x * 10 + (*s++ - '0'), nd++;
        if (isdigit((unsigned char)*s)) return NULL;
        if ((k == 0 && x > maxh) || (k > 0 && x > 59)) return NULL;
        v[k] = x;
    }
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    return s;
}

static const char *parse_num(const char *s, int lo, int hi, int *out)
{
    if (!isdigit((unsigned char)*s)) return NULL;
    int x = 0;
    while (isdigit((unsigned char)*s)) {
        x = x * 10 + (*s++ - '0');
        if (x > hi) return NULL;
    }
    if (x < lo) return NULL;
    *out = x;
    return s;
}

static const char *parse_rule(const char *s, tz_rule *r)
{
    if (*s == 'J') {
        r->kind = 'J';
        s = parse_num(s + 1, 1, 365, &r->a);
    } else if (*s == 'M') {
        r->kind = 'M';
        s = parse_num(s + 1, 1, 12, &r->a);
        if (!s || *s++ != '.') return NULL;
        s = parse_num(s, 1, 5, &r->b);
        if (!s || *s++ != '.') return NULL;
        s = parse_num(s, 0, 6, &r->c);
    } else {
        r->kind = 'D';
        s = parse_num(s, 0, 365, &r->a);
    }
    if (!s) return NULL;
    r->time = 7200;
    if (*s == '/') s = parse_hms(s + 1, 167, &r->time);
    return s;
}

/* "STDoff[DST[off][,start[/time],end[/time]]]"; 0 or -1. */
static int parse_footer(jr_tz *z, const char *s)
{
    int32_t off;
    if (!(s = parse_name(s)) || !(s = parse_hms(s, 24, &off))) return -1;
    z->footer = 1;
    z->std_off = -off; /* POSIX counts west of Greenwich as positive */
    if (!*s) return 0;
    if (!(s = parse_name(s))) return -1;
    z->footer_dst = 1;
    z->dst_off = z->std_off + 3600;
    if (*s && *s != ',') {
        if (!(s = parse_hms(s, 24, &off))) return -1;
        z->dst_off = -off;
    }
    if (!*s) {
        /* No rule: POSIX leaves it to the implementation; glibc and tzcode
         * use the US rules. */
        z->start = (tz_rule){'M', 3, 2, 0, 7200};
        z->end = (tz_rule){'M', 11, 1, 0, 7200};
        return 0;
    }
    if (*s++ != ',' || !(s = parse_rule(s, &z->start)) || *s++ != ',' || !(s = parse_rule(s, &z->end)))
        return -1;
    return *s ? -1 : 0;
}

/* The instant of rule r in year y, given the offset in force before it. */
static int64_t rule_time(const tz_rule *r, int64_t y, int32_t off_before)
{
    int64_t days;
    if (r->kind == 'J') {
        days = jr_days_from_civil(y, 1, 1) + r->a - 1 + (is_leap(y) && r->a >= 60);
    } else if (r->kind == 'D') {
        days = jr_days_from_civil(y, 1, 1) + r->a;
    } else {
        static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int64_t first = jr_days_from_civil(y, r->a, 1);
        int wd1 = (int)(((first % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
        int day = 1 + (r->c - wd1 + 7) % 7 + (r->b - 1) * 7;
        int last = r->a == 2 && is_leap(y) ? 29 : dim[r->a - 1];
        while (day > last) day -= 7;
        days = first + day - 1;
    }
    return days * 86400 + r->time - off_before;
}

/* ---- TZif --------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p) { return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4)); }

typedef struct {
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_hdr;

static int read_hdr(const unsigned char *p, size_t len, tzif_hdr *h, int *version)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0) return -1;
    *version = p[4] ? p[4] - '0' : 1;
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    return 0;
}

static size_t block_len(const tzif_hdr *h, int tsize)
{
    return (size_t)h->timecnt * (size_t)tsize + h->timecnt + (size_t)h->typecnt * 6 + h->charcnt +
           (size_t)h->leapcnt * (size_t)(tsize + 4) + h->isstdcnt + h->isutcnt;
}

static int bad(char *err, size_t cap, const char *name, const char *why)
{
    snprintf(err, cap, "time zone '%s': invalid TZif data (%s)", name, why);
    return JR_TZ_INVALID;
}

int jr_tz_from_tzif(const char *name, const unsigned char *data, size_t len, jr_tz **out,
                    char *err, size_t errcap)
{
    tzif_hdr h;
    int version;
    if (read_hdr(data, len, &h, &version) != 0) return bad(err, errcap, name, "no TZif header");
    int tsize = 4;
    const unsigned char *p = data + 44, *endp = data + len;
    if (version >= 2) {
        /* Skip the 32-bit block: the 64-bit one after it is complete. */
        size_t skip = block_len(&h, 4);
        if ((size_t)(endp - p) < skip) return bad(err, errcap, name, "truncated");
        p += skip;
        if (read_hdr(p, (size_t)(endp - p), &h, &version) != 0)
            return bad(err, errcap, name, "no second header");
        p += 44;
        tsize = 8;
    }
    if (h.typecnt == 0 || h.typecnt > 256 || h.timecnt > 100000 || h.charcnt == 0)
        return bad(err, errcap, name, "bad counts");
    if (h.leapcnt) return bad(err, errcap, name, "leap-second zones are not supported");
    if ((size_t)(endp - p) < block_len(&h, tsize)) return bad(err, errcap, name, "truncated");
    const unsigned char *tt = p, *idx = p + (size_t)h.timecnt * tsize, *types = idx + h.timecnt;
    const unsigned char *after = p + block_len(&h, tsize);

    size_t nlen = strlen(name);
    jr_tz *z = calloc(1, sizeof *z + nlen + 1);
    if (!z) return JR_TZ_NOMEM;
    memcpy(z->name, name, nlen + 1);
    if (h.timecnt) {
        z->times = malloc(h.timecnt * sizeof *z->times);
        z->offs = malloc(h.timecnt * sizeof *z->offs);
        if (!z->times || !z->offs) {
            jr_tz_free(z);
            return JR_TZ_NOMEM;
        }
    }
    for (uint32_t k = 0; k < h.typecnt; k++) {
        int32_t off = (int32_t)be32(types + 6 * k);
        if (off < -89999 || off > 93599) {
            jr_tz_free(z);
            return bad(err, errcap, name, "offset out of range");
        }
    }
    z->off0 = (int32_t)be32(types);
    for (uint32_t k = 0; k < h.timecnt; k++) {
        int64_t t = tsize == 8 ? be64(tt + 8 * k) : (int64_t)(int32_t)be32(tt + 4 * k);
        if (idx[k] >= h.typecnt || (k > 0 && t <= z->times[k - 1]) || t < JR_TZ_MIN_TIME / 2 ||
            t > JR_TZ_MAX_TIME / 2) {
            jr_tz_free(z);
            return bad(err, errcap, name, "bad transition");
        }
        z->times[k] = t;
        z->offs[k] = (int32_t)be32(types + 6 * idx[k]);
    }
    z->n = h.timecnt;
    if (version >= 2 && after < endp && *after == '\n') {
        const unsigned char *nl = memchr(after + 1, '\n', (size_t)(endp - after - 1));
        char footer[128];
        size_t fl = nl ? (size_t)(nl - after - 1) : 0;
        if (!nl || fl >= sizeof footer) {
            jr_tz_free(z);
            return bad(err, errcap, name, "bad footer");
        }
        memcpy(footer, after + 1, fl);
        footer[fl] = 0;
        if (fl && parse_footer(z, footer) != 0) {
            jr_tz_free(z);
            return bad(err, errcap, name, "bad TZ string in the footer");
        }
    }
    *out = z;
    return JR_TZ_OK;
}

/* A zone name is a relative path of [A-Za-z0-9_+-.] components, none of
 * them "." or "..": nothing outside the zone directory can be named. */
static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 200 || name[0] == '/') return 0;
    for (const char *c = name; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("/_+-.", *c)) return 0;
    for (const char *c = name; *c;) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (c[0] == '.' && (len == 1 || (len == 2 && c[1] == '.')))) return 0;
        c += len + (e ? 1 : 0);
        if (e && !*c) return 0;
    }
    return 1;
}

int jr_tz_load(const char *name, jr_tz **out, char *err, size_t errcap)
{
    if (strcmp(name, "UTC") == 0) {
        /* Built in: UTC must work on a machine without tzdata. */
        jr_tz *z = calloc(1, sizeof *z + 4);
        if (!z) return JR_TZ_NOMEM;
        memcpy(z->name, "UTC", 4);
        *out = z;
        return JR_TZ_OK;
    }
    if (!valid_name(name)) {
        snprintf(err, errcap, "unknown time zone '%.200s' (not a zone name)", name);
        return JR_TZ_NOT_FOUND;
    }
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) dir = "/usr/share/zoneinfo";
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            snprintf(err, errcap, "unknown time zone '%s' (no %s)", name, path);
        else
            snprintf(err, errcap, "time zone '%s': %s: %s", name, path, strerror(errno));
        return JR_TZ_NOT_FOUND;
    }
    /* TZif files are a few KB; 1 MB is far beyond any real one. */
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return JR_TZ_NOMEM;
    }
    size_t len = fread(buf, 1, cap, f);
    int rerr = ferror(f);
    fclose(f);
    int rc;
    if (rerr)
        rc = bad(err, errcap, name, "read error (a directory?)");
    else
        rc = jr_tz_from_tzif(name, buf, len, out, err, errcap);
    free(buf);
    return rc;
}

void jr_tz_free(jr_tz *z)
{
    if (!z) return;
    free(z->times);
    free(z->offs);
    free(z);
}

const char *jr_tz_name(const jr_tz *z) { return z->name; }

/* ---- lookup ------------------------------------------------------------- */

typedef struct {
    int64_t t;
    int32_t off;
} tz_trans;

/* t at or after the last table transition, under a DST footer rule: the
 * rule's transitions of the years around t, after the table's last. */
static void span_by_rule(const jr_tz *z, int64_t t, jr_tz_span *out)
{
    tz_trans tr[8];
    int n = 0;
    int32_t base_off = z->n ? z->offs[z->n - 1] : z->off0;
    int64_t base_t = z->n ? z->times[z->n - 1] : JR_TZ_MIN_TIME;
    int64_t y;
    int m, d;
    jr_civil_from_days((t >= 0 ? t : t - 86399) / 86400, &y, &m, &d);
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        tz_trans a = {rule_time(&z->start, yy, z->std_off), z->dst_off};
        tz_trans b = {rule_time(&z->end, yy, z->dst_off), z->std_off};
        if (a.t > base_t) tr[n++] = a;
        if (b.t > base_t) tr[n++] = b;
    }
    /* insertion sort: six entries */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && tr[j].t < tr[j - 1].t; j--) {
            tz_trans x = tr[j];
            tr[j] = tr[j - 1];
            tr[j - 1] = x;
        }
    int i = -1;
    while (i + 1 < n && tr[i + 1].t <= t) i++;
    if (i < 0) {
        out->start = base_t;
        out->off = base_off;
        out->prev_off = z->n >= 2 ? z->offs[z->n - 2] : z->off0;
    } else {
        out->start = tr[i].t;
        out->off = tr[i].off;
        out->prev_off = i > 0 ? tr[i - 1].off : base_off;
    }
    out->end = i + 1 < n ? tr[i + 1].t : JR_TZ_MAX_TIME;
}

void jr_tz_span_at(const jr_tz *z, int64_t t, jr_tz_span *out)
{
    if (z->n == 0 || t < z->times[z->n - 1] || !z->footer) {
        /* the last transition at or before t (lo - 1 after the search) */
        size_t lo = 0, hi = z->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (z->times[mid] <= t)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == 0) {
            out->start = JR_TZ_MIN_TIME;
            out->off = out->prev_off = z->off0;
        } else {
            out->start = z->times[lo - 1];
            out->off = z->offs[lo - 1];
            out->prev_off = lo >= 2 ? z->offs[lo - 2] : z->off0;
        }
        out->end = lo < z->n ? z->times[lo] : JR_TZ_MAX_TIME;
        if (lo < z->n || !z->footer) return;
        /* no transitions at all, only a footer: fall through */
    }
    if (!z->footer_dst) {
        out->start = z->n ? z->times[z->n - 1] : JR_TZ_MIN_TIME;
        out->off = z->std_off;
        out->prev_off = z->n >= 2 ? z->offs[z->n - 2] : z->off0;
        out->end = JR_TZ_MAX_TIME;
        return;
    }
    span_by_rule(z, t, out);
}

int32_t jr_tz_offset(const jr_tz *z, int64_t t)
{
    jr_tz_span sp;
    jr_tz_span_at(z, t, &sp);
    return sp.off;
}
