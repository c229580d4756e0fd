/* cron.h - cron expressions: parse, and the next fire time in UTC or in a
 * named time zone (tz.h).
 *
 * Syntax (croniter's, docs/cron.md): 5 fields "minute hour day-of-month
 * month day-of-week", or 6 with seconds LAST ("* * * * * *\/3" = every 3 s);
 * each field a ','-list of '*', N, A-B, with an optional step '/S' ('*\/S',
 * 'A-B/S', 'A/S' = A-max/S); month names jan..dec and weekday names
 * sun..sat (any case); day-of-week 0-7 with 7 = Sunday; the aliases
 * @yearly @annually @monthly @weekly @daily @midnight @hourly.
 * When both day fields are restricted (neither allows every value), a day
 * matches if EITHER does (croniter's default and Vixie cron's rule).
 *
 * A parsed expression is a few bitmasks: no allocation, copyable, and
 * jr_cron_next skips by fields (month, day, hour, minute, second), so it
 * costs a handful of steps, not a scan over seconds. */
#ifndef JR_CRON_H
#define JR_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "tz.h"

typedef struct jr_cron {
    uint64_t sec;   /* bit s: second s fires (only bit 0 for 5 fields) */
    uint64_t min;   /* bits 0..59 */
    uint32_t hour;  /* bits 0..23 */
    uint32_t dom;   /* bits 1..31 */
    uint16_t mon;   /* bits 1..12 */
    uint8_t dow;    /* bits 0..6, 0 = Sunday */
    uint8_t has_seconds; /* a 6-field expression */
    uint8_t day_or;      /* both day fields restricted: either matches */
    uint8_t every_hour;  /* the hour field allows all 24 hours (DST rule) */
} jr_cron;

/* Parse expr. Returns 0, or -1 with err set to
 * "\"<expr>\": position N: <what is wrong>" (N is 1-based, in bytes). */
int jr_cron_parse(jr_cron *c, const char *expr, char *err, size_t errcap);

enum {
    JR_CRON_OK = 0,
    JR_CRON_NEVER = -1,     /* no fire within JR_CRON_HORIZON_YEARS */
    JR_CRON_RANGE = -2      /* after is outside years 1..9999 */
};

/* How far next() looks before answering JR_CRON_NEVER. A satisfiable
 * expression fires at least every 8 years (Feb 29 across a century that is
 * not a leap year), so 50 is generous and still cheap. */
#define JR_CRON_HORIZON_YEARS 50

/* The first fire time strictly after `after` (epoch seconds) in *out.
 * tz NULL means UTC. In a zone, a fire time is a UTC instant whose local
 * wall-clock time matches; local times skipped by a forward jump never
 * match; a local time repeated by a backward jump matches at its first
 * occurrence only, unless the hour field allows every hour (then at both,
 * so "every 5 minutes" keeps its rhythm). Returns JR_CRON_OK,
 * JR_CRON_NEVER or JR_CRON_RANGE. */
int jr_cron_next(const jr_cron *c, int64_t after, const jr_tz *tz, int64_t *out);

#endif
