/* amqp_url.h - parse amqp://[user[:password]@]host[:port][/vhost] (amqp_client.c's
 * URL, on its own so the rules are testable without a broker).
 *
 * Strict, like redis_url.h: anything else is an error naming the field at
 * fault (never repeating the password). amqps:// (TLS) and query strings
 * (?heartbeat=...) are refused rather than silently ignored: the options
 * struct of amqp_client.h carries those settings. */
#ifndef JR_AMQP_URL_H
#define JR_AMQP_URL_H

#include <stddef.h>

typedef struct {
    char *host;     /* name or address, without the brackets of an IPv6 */
    int port;       /* 1..65535, default 5672 */
    char *user;     /* default "guest" (percent-decoded) */
    char *password; /* default "guest" (percent-decoded) */
    char *vhost;    /* default "/"; "/x" in the URL is vhost "x", "/%2F" is "/" */
} jr_amqp_url;

/* 0, or JR_AMQP_URL_EINVALID / JR_AMQP_URL_ENOMEM with err filled (out is
 * then empty). Free with jr_amqp_url_free. */
enum { JR_AMQP_URL_EINVALID = -1, JR_AMQP_URL_ENOMEM = -2 };
int jr_amqp_url_parse(const char *url, jr_amqp_url *out, char *err, size_t errlen);
void jr_amqp_url_free(jr_amqp_url *u);

#endif
