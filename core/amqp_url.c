/* amqp_url.c - the amqp:// URL (see amqp_url.h). */
#include "amqp_url.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad_url(jr_amqp_url *u, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad_url(jr_amqp_url *u, char *err, size_t errlen, const char *fmt, ...)
{
    jr_amqp_url_free(u);
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (err && errlen) snprintf(err, errlen, "invalid AMQP URL: %s", what);
    return JR_AMQP_URL_EINVALID;
}

static const char OOM[] = "out of memory";

/* Memory ran out: a status of its own (callers decide on it, not on text). */
static int no_memory(jr_amqp_url *u, char *err, size_t errlen)
{
    jr_amqp_url_free(u);
    if (err && errlen) snprintf(err, errlen, "%s", OOM);
    return JR_AMQP_URL_ENOMEM;
}

/* s[0..n) percent-decoded into a new string; *why says what failed when
 * NULL is returned (a malformed escape, %00, or memory). */
static char *unescape(const char *s, size_t n, const char **why)
{
    char *o = malloc(n + 1);
    size_t w = 0;
    *why = OOM;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        char hex[3] = {0, 0, 0};
        if (s[i] != '%') {
            o[w++] = s[i];
            continue;
        }
        if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2])) goto bad;
        memcpy(hex, s + i + 1, 2);
        long v = strtol(hex, NULL, 16);
        if (v == 0) goto bad; /* a C string cannot carry NUL */
        o[w++] = (char)v;
        i += 2;
    }
    o[w] = '\0';
    return o;
bad:
    free(o);
    *why = "a bad percent-escape";
    return NULL;
}

int jr_amqp_url_parse(const char *url, jr_amqp_url *out, char *err, size_t errlen)
{
    const char *why;
    memset(out, 0, sizeof *out);
    out->port = 5672;
    if (!url || !*url) return bad_url(out, err, errlen, "empty (expected amqp://user:password@host:port/vhost)");
    if (strncmp(url, "amqps://", 8) == 0) return bad_url(out, err, errlen, "amqps:// (TLS) is not supported yet");
    if (strncmp(url, "amqp://", 7) != 0)
        return bad_url(out, err, errlen, "the scheme must be amqp:// (amqp://user:password@host:port/vhost)");
    const char *a = url + 7, *end = a + strcspn(a, "/?#");
    if (strpbrk(end, "?#")) return bad_url(out, err, errlen, "query strings and fragments are not supported");

    /* user info: up to the authority's last '@' */
    const char *h = a;
    for (const char *c = a; c < end; c++)
        if (*c == '@') h = c + 1;
    if (h != a) {
        const char *colon = memchr(a, ':', (size_t)(h - 1 - a));
        const char *ue = colon ? colon : h - 1;
        if (ue == a) return bad_url(out, err, errlen, "empty user name");
        out->user = unescape(a, (size_t)(ue - a), &why);
        if (!out->user) return why == OOM ? no_memory(out, err, errlen) : bad_url(out, err, errlen, "%s in the user name", why);
        if (colon) {
            out->password = unescape(colon + 1, (size_t)(h - 2 - colon), &why);
            if (!out->password) return why == OOM ? no_memory(out, err, errlen) : bad_url(out, err, errlen, "%s in the password", why);
        }
    } else if (strchr(end, '@')) {
        return bad_url(out, err, errlen, "a '/' in the user info must be percent-encoded (%%2F)");
    }

    /* host[:port], or [v6][:port] */
    const char *hs = h, *he, *p;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) return bad_url(out, err, errlen, "'[' without ']' around the IPv6 host");
        hs = h + 1, he = rb, p = rb + 1;
    } else {
        he = memchr(h, ':', (size_t)(end - h));
        if (!he) he = end;
        p = he;
    }
    if (he == hs) return bad_url(out, err, errlen, "no host");
    size_t okn = strspn(hs, *h == '[' ? "0123456789abcdefABCDEF:." : "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
    if (hs + okn < he) return bad_url(out, err, errlen, "the host has a character not allowed in a host name ('%c')", hs[okn]);
    if (p < end) {
        if (*p != ':') return bad_url(out, err, errlen, "unexpected characters after the host");
        char *pe;
        long port = p + 1 < end && p[1] >= '0' && p[1] <= '9' ? strtol(p + 1, &pe, 10) : -1;
        if (port < 1 || port > 65535 || pe != end) return bad_url(out, err, errlen, "the port must be a number from 1 to 65535");
        out->port = (int)port;
    }
    out->host = strndup(hs, (size_t)(he - hs));
    if (!out->host) return no_memory(out, err, errlen);

    /* vhost: the path without its '/'; none or empty is the default "/" */
    if (*end == '/' && end[1]) {
        if (strchr(end + 1, '/')) return bad_url(out, err, errlen, "a '/' in the vhost must be percent-encoded (%%2F)");
        out->vhost = unescape(end + 1, strlen(end + 1), &why);
        if (!out->vhost) return why == OOM ? no_memory(out, err, errlen) : bad_url(out, err, errlen, "%s in the vhost", why);
    }
    if (!out->user && !(out->user = strdup("guest"))) return no_memory(out, err, errlen);
    if (!out->password && !(out->password = strdup("guest"))) return no_memory(out, err, errlen);
    if (!out->vhost && !(out->vhost = strdup("/"))) return no_memory(out, err, errlen);
    return 0;
}

void jr_amqp_url_free(jr_amqp_url *u)
{
    free(u->host);
    free(u->user);
    free(u->vhost);
    if (u->password) {
        /* not left lying in freed memory */
        explicit_bzero(u->password, strlen(u->password));
        free(u->password);
    }
    u->host = u->user = u->password = u->vhost = NULL;
}
