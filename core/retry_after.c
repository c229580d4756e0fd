/* retry_after.c - Retry-After and IMF-fixdate parsing (see retry_after.h). */
#include "retry_after.h"

#include <string.h>

#include "tz.h"

static int digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

int jr_http_date_parse(const char *v, size_t n, int64_t *unix_s)
{
    /* "Sun, 06 Nov 1994 08:49:37 GMT": fixed length, fixed positions */
    static const char days[] = "MonTueWedThuFriSatSun";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (n != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' || v[19] != ':' ||
        v[22] != ':' || v[25] != ' ' || memcmp(v + 26, "GMT", 3) != 0)
        return -1;
    int wday = -1, mon = -1;
    for (int i = 0; i < 7; i++)
        if (memcmp(v, days + 3 * i, 3) == 0) wday = i;
    for (int i = 0; i < 12; i++)
        if (memcmp(v + 8, months + 3 * i, 3) == 0) mon = i + 1;
    int d, y, h, mi, s;
    if (wday < 0 || mon < 0 || digits(v + 5, 2, &d) || digits(v + 12, 4, &y) || digits(v + 17, 2, &h) ||
        digits(v + 20, 2, &mi) || digits(v + 23, 2, &s))
        return -1;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    /* 60 seconds: a leap second is a valid time-of-day (RFC 9110 5.6.7) */
    if (d < 1 || d > mdays[mon - 1] || h > 23 || mi > 59 || s > 60) return -1;
    *unix_s = jr_days_from_civil(y, mon, d) * 86400 + h * 3600 + mi * 60 + s;
    return 0;
}

int jr_retry_after_parse(const char *v, size_t n, int64_t now_unix, double *seconds)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (n == 0) return -1;
    if (v[0] >= '0' && v[0] <= '9') {
        /* whole and fraction as integers, divided once: "0.3" reads as 0.3,
         * not as the sum 0 + 3 * 0.1 */
        double whole = 0, frac = 0, scale = 1;
        int dot = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] == '.' && !dot && i + 1 < n) {
                dot = 1;
            } else if (v[i] >= '0' && v[i] <= '9') {
                if (!dot) whole = whole * 10 + (v[i] - '0');
                else if (scale < 1e15) frac = frac * 10 + (v[i] - '0'), scale *= 10; /* finer is noise */
            } else {
                return -1;
            }
        }
        double s = whole + frac / scale;
        *seconds = s;
        return 0;
    }
    int64_t at;
    if (jr_http_date_parse(v, n, &at) != 0) return -1;
    *seconds = at > now_unix ? (double)(at - now_unix) : 0;
    return 0;
}
