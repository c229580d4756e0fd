/* tz.h - named time zones from the system tzdata (TZif files, RFC 8536),
 * read without touching the process's TZ/tzset (other code uses time).
 *
 * A zone answers one question: around instant t, which UTC offset holds,
 * over which span of instants, and which offset held just before that span
 * (jr_tz_span_at). The transition table is the file's 64-bit (v2+) data;
 * past its last transition the POSIX-TZ footer's rule ("EST5EDT,M3.2.0,
 * M11.1.0") generates the transitions of each year. */
#ifndef JR_TZ_H
#define JR_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct jr_tz jr_tz;

/* Far enough for any calendar we compute (year 1..9999 is +-3e11), small
 * enough that adding an offset can never overflow. */
#define JR_TZ_MIN_TIME (-(INT64_C(1) << 60))
#define JR_TZ_MAX_TIME (INT64_C(1) << 60)

typedef struct {
    int64_t start;    /* the span is [start, end): first instant of the offset */
    int64_t end;      /* the next transition (JR_TZ_MAX_TIME: none) */
    int32_t off;      /* seconds east of UTC during the span */
    int32_t prev_off; /* the offset before start (== off at JR_TZ_MIN_TIME) */
} jr_tz_span;

enum { JR_TZ_OK = 0, JR_TZ_NOT_FOUND = -1, JR_TZ_INVALID = -2, JR_TZ_NOMEM = -3 };

/* Load zone `name` ("UTC", "Europe/Berlin") from $TZDIR or
 * /usr/share/zoneinfo. "UTC" works without tzdata. Returns JR_TZ_OK with
 * *out set, or an error with a sentence in err: JR_TZ_NOT_FOUND (no such
 * zone, or a name that is not a zone name: absolute, "..", odd characters),
 * JR_TZ_INVALID (the file is not valid TZif), JR_TZ_NOMEM. */
int jr_tz_load(const char *name, jr_tz **out, char *err, size_t errcap);

/* The same from TZif bytes in memory (name is only remembered). */
int jr_tz_from_tzif(const char *name, const unsigned char *data, size_t len, jr_tz **out,
                    char *err, size_t errcap);

void jr_tz_free(jr_tz *z);
const char *jr_tz_name(const jr_tz *z);

/* The span of constant offset containing instant t (epoch seconds). */
void jr_tz_span_at(const jr_tz *z, int64_t t, jr_tz_span *out);
int32_t jr_tz_offset(const jr_tz *z, int64_t t);

/* Proleptic Gregorian calendar arithmetic (Howard Hinnant's algorithms),
 * shared with cron.c. */
int64_t jr_days_from_civil(int64_t y, int m, int d);
void jr_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

#endif
