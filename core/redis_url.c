/* redis_url.c - the redis:// URL (see redis_url.h). */
#include "redis_url.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(jr_redis_url *u, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(jr_redis_url *u, char *err, size_t errlen, const char *fmt, ...)
{
    jr_redis_url_free(u);
    if (err && errlen) {
        int n = snprintf(err, errlen, "invalid Redis URL: ");
        if (n > 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string: NULL with *bad set when an
 * escape is malformed or decodes to NUL (a C string cannot carry it), NULL
 * with *bad clear when out of memory. */
static char *decode(const char *s, size_t n, int *bad)
{
    *bad = 0;
    char *o = malloc(n + 1), *w = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') { *w++ = s[i]; continue; }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(o);
            *bad = 1;
            return NULL;
        }
        *w++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *w = '\0';
    return o;
}

/* A decimal number made of s[0..n) only, within [lo, hi]; -1 otherwise. */
static long number(const char *s, size_t n, long lo, long hi)
{
    if (n == 0 || n > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < lo || v > hi ? -1 : v;
}

static int host_char(char c, int ipv6)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return ipv6 ? (c == ':' || c == '.') : (c == '.' || c == '-' || c == '_');
}

static char *dupn(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (o) {
        memcpy(o, s, n);
        o[n] = '\0';
    }
    return o;
}

int jr_redis_url_parse(const char *url, jr_redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || !*url) return fail(out, err, errlen, "empty (expected redis://host[:port][/db])");
    if (strncmp(url, "rediss://", 9) == 0)
        return fail(out, err, errlen, "rediss:// (TLS) is not supported by this build (hiredis 0.14)");
    if (strncmp(url, "redis://", 8) != 0)
        return fail(out, err, errlen, "it must start with redis:// (redis://[[user]:password@]host[:port][/db])");
    const char *a = url + 8;
    size_t alen = strcspn(a, "/?#");
    const char *end = a + alen; /* the authority ends here */

    /* user info: up to the authority's last '@' (an unencoded '@' in the
     * password is unambiguous that way) */
    const char *at = memrchr(a, '@', alen), *h = a;
    if (at) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        if (!colon)
            return fail(out, err, errlen, "the user info needs a ':' before the password (redis://:password@host or redis://user:password@host)");
        int bad;
        if (colon > a) {
            out->user = decode(a, (size_t)(colon - a), &bad);
            if (!out->user) return fail(out, err, errlen, bad ? "bad percent-escape in the user name" : "out of memory");
        }
        if (at == colon + 1) return fail(out, err, errlen, "empty password");
        out->password = decode(colon + 1, (size_t)(at - colon - 1), &bad);
        if (!out->password) return fail(out, err, errlen, bad ? "bad percent-escape in the password" : "out of memory");
        h = at + 1;
    } else if (end[0] && strchr(end, '@')) {
        return fail(out, err, errlen, "a '/', '?' or '#' in the user info must be percent-encoded (%%2F, %%3F, %%23)");
    }

    /* host and port */
    const char *hs, *he, *p;
    int ipv6 = *h == '[';
    if (ipv6) {
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (!close) return fail(out, err, errlen, "'[' without ']' around the IPv6 host");
        hs = h + 1;
        he = close;
        p = close + 1;
    } else {
        const char *colon = memchr(h, ':', (size_t)(end - h));
        hs = h;
        he = colon ? colon : end;
        p = he;
    }
    if (he == hs) return fail(out, err, errlen, "no host");
    for (const char *c = hs; c < he; c++)
        if (!host_char(*c, ipv6))
            return fail(out, err, errlen, "the host has a character not allowed in a host name ('%c')", *c);
    if (p < end) {
        if (*p != ':') return fail(out, err, errlen, "unexpected characters after the host");
        p++;
        if (p == end) return fail(out, err, errlen, "empty port after ':'");
        long port = number(p, (size_t)(end - p), 1, 65535);
        if (port < 0) return fail(out, err, errlen, "the port must be a number from 1 to 65535");
        out->port = (int)port;
    }
    out->host = dupn(hs, (size_t)(he - hs));
    if (!out->host) return fail(out, err, errlen, "out of memory");

    /* database */
    if (*end == '?' || *end == '#')
        return fail(out, err, errlen, "query strings and fragments are not supported");
    if (*end == '/' && end[1]) {
        long db = number(end + 1, strlen(end + 1), 0, INT_MAX);
        if (db < 0) return fail(out, err, errlen, "the database must be a number (redis://host:port/0)");
        out->db = (int)db;
    }
    return 0;
}

void jr_redis_url_free(jr_redis_url *u)
{
    free(u->host);
    free(u->user);
    if (u->password) {
        /* not left lying in freed memory */
        explicit_bzero(u->password, strlen(u->password));
        free(u->password);
    }
    u->host = u->user = u->password = NULL;
}
