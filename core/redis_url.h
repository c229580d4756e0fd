/* redis_url.h - parse redis://[[user]:password@]host[:port][/db] (redis.c's
 * URL, on its own so the strict rules are testable without a server).
 *
 * Strict: anything the grammar does not allow is an error naming what is
 * wrong (never the password), rather than a guess. rediss:// (TLS), query
 * strings and unix sockets are refused: hiredis 0.14 has no TLS, and a
 * setting silently ignored would be worse than a clear refusal. */
#ifndef JR_REDIS_URL_H
#define JR_REDIS_URL_H

#include <stddef.h>

typedef struct {
    char *host;     /* name or address, without the brackets of an IPv6 */
    int port;       /* 1..65535, default 6379 */
    int db;         /* 0.., default 0 */
    char *user;     /* NULL when none (percent-decoded; may hold any byte but NUL) */
    char *password; /* NULL when none (percent-decoded) */
} jr_redis_url;

/* 0, or -1 with err filled (out is then empty). Free with jr_redis_url_free. */
int jr_redis_url_parse(const char *url, jr_redis_url *out, char *err, size_t errlen);
void jr_redis_url_free(jr_redis_url *u);

#endif
