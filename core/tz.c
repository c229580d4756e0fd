/* tz.c - time zones from TZif files (tz.h). */
#include "tz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jr_tz {
    char name[64];
};

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

int jr_tz_load(const char *name, jr_tz **out, char *err, size_t errcap)
{
    if (strcmp(name, "UTC") != 0) {
        snprintf(err, errcap, "unknown time zone '%s'", name);
        return JR_TZ_NOT_FOUND;
    }
    jr_tz *z = calloc(1, sizeof *z);
    if (!z) return JR_TZ_NOMEM;
    snprintf(z->name, sizeof z->name, "%s", name);
    *out = z;
    return JR_TZ_OK;
}

void jr_tz_free(jr_tz *z) { free(z); }
const char *jr_tz_name(const jr_tz *z) { return z->name; }

void jr_tz_span_at(const jr_tz *z, int64_t t, jr_tz_span *out)
{
    (void)z;
    (void)t;
    out->start = JR_TZ_MIN_TIME;
    out->end = JR_TZ_MAX_TIME;
    out->off = out->prev_off = 0;
}

int32_t jr_tz_offset(const jr_tz *z, int64_t t)
{
    jr_tz_span sp;
    jr_tz_span_at(z, t, &sp);
    return sp.off;
}
