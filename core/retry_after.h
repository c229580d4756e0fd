/* retry_after.h - the Retry-After header (RFC 9110 10.2.3), read the same
 * way by the OTLP exporter (core/otlp_http.c) and by the HTTP client's users
 * (jararaca.core.http_client.retry_after, used by jararaca.rpc.call).
 *
 *   double s;
 *   if (jr_retry_after_parse(v, len, (int64_t)time(NULL), &s) == 0) wait(s);
 *
 * Accepted, with optional surrounding spaces/tabs:
 *   - delta-seconds: "120" (1*DIGIT). Leniency: a decimal fraction ("0.5")
 *     is accepted too, as the RPC client always did;
 *   - an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"; the wait is the
 *     date minus now, 0 when the date is past.
 * The obsolete RFC 850 and asctime() date forms are not accepted (RFC 9110
 * 5.6.7 asks senders to use IMF-fixdate): they read as no Retry-After, and
 * the caller's own backoff applies. */
#ifndef JR_RETRY_AFTER_H
#define JR_RETRY_AFTER_H

#include <stddef.h>
#include <stdint.h>

/* 0 and *seconds (>= 0), or -1 when v is neither form. now_unix: the
 * current wall-clock time in seconds since the epoch (a date is absolute). */
int jr_retry_after_parse(const char *v, size_t n, int64_t now_unix, double *seconds);

/* An IMF-fixdate to seconds since the epoch. 0, or -1 when malformed. */
int jr_http_date_parse(const char *v, size_t n, int64_t *unix_s);

#endif
