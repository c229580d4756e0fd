/* http_client.h - an HTTP/1.1 client on our libuv loop: keep-alive pools per
 * origin, responses parsed by llhttp, HTTPS through OpenSSL (memory BIOs over
 * the uv stream). The transport of the RPC client (bindings/l_http_client.c).
 *
 *   jr_hc *c = jr_hc_new(loop, &opts, err, sizeof err);
 *   jr_hc_request_spec s = {"GET", url, hdr_names, hdr_lens, hdr_values, val_lens, nhdr, body, body_len, 10000};
 *   jr_hc_req *r; int rc = jr_hc_request(c, &s, on_done, ud, &r, err, sizeof err);
 *   on_done(r, status, res, msg, ud)   exactly once, never from inside jr_hc_request
 *   jr_hc_abort(r)                     the caller no longer waits: no callback,
 *                                      the request's connection is closed
 *   jr_hc_free(c)                      pending requests end with JR_HC_ECLOSED
 *
 * Pool: per origin (scheme, host, port) at most max_per_origin connections
 * (connecting or in use); further requests wait FIFO (their timeout runs
 * meanwhile). A finished connection serves the next waiting request, else it
 * goes idle: reused LIFO (the warmest first), closed after idle_timeout, at
 * most max_idle_per_origin kept. No pipelining: one request per connection
 * at a time.
 *
 * Retry rule: a request that fails on a REUSED connection because the peer
 * closed or reset it (the server dropped an idle keep-alive connection as we
 * reused it) is sent again once, on a fresh connection, when nothing of the
 * response had arrived and either the method is idempotent (GET, HEAD, PUT,
 * DELETE, OPTIONS, TRACE) or the failure came while writing the request
 * (the server cannot have acted on a request it did not get whole). Never a
 * second retry, never after response bytes, never on a first-use connection.
 */
#ifndef JR_HTTP_CLIENT_H
#define JR_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct jr_hc jr_hc;
typedef struct jr_hc_req jr_hc_req;

/* Status of a finished request (codes of the Lua binding in comments). */
enum {
    JR_HC_OK = 0,
    JR_HC_ETIMEOUT,   /* "timeout": the whole request, queueing included */
    JR_HC_EREFUSED,   /* "refused": the TCP connect failed */
    JR_HC_ERESOLVE,   /* "resolve": DNS */
    JR_HC_ECLOSED,    /* "closed": peer closed/reset mid-request, or the client was freed */
    JR_HC_ETLS,       /* "tls": handshake or certificate verification */
    JR_HC_ETOOLARGE,  /* "too_large": the response exceeds max_response */
    JR_HC_EINVALID,   /* "invalid": a malformed response (or a bad request spec: jr_hc_request) */
    JR_HC_ENOMEM      /* "nomem" */
};
const char *jr_hc_code_name(int status);

typedef struct {
    unsigned max_per_origin;      /* default 32 */
    unsigned max_idle_per_origin; /* default 32 */
    uint64_t idle_timeout_ms;     /* default 30000 */
    uint64_t connect_timeout_ms;  /* TCP connect + TLS handshake; default 5000 */
    size_t max_response;          /* head + body bytes; default 64 MiB */
    const char *ca_file;          /* PEM of extra trusted CAs (a private CA); NULL: system CAs only */
    int verify;                   /* default 1; 0 skips certificate checks (warned once) */
} jr_hc_options;
void jr_hc_options_defaults(jr_hc_options *o);

typedef struct {
    const char *method;           /* "GET"... (a token) */
    const char *url;              /* http://host[:port]/path?query or https:// */
    const char *const *names;     /* request headers, nhdr of each */
    const size_t *name_lens;
    const char *const *values;
    const size_t *value_lens;
    size_t nhdr;
    const char *body;             /* may be NULL */
    size_t body_len;
    uint64_t timeout_ms;          /* 0: none */
} jr_hc_request_spec;

typedef struct {
    int status;
    size_t nhdr;                  /* header i: name (lowercased) and value, NUL-terminated */
    const char *const *names;
    const size_t *name_lens;
    const char *const *values;
    const size_t *value_lens;
    const char *body;
    size_t body_len;
} jr_hc_response;

/* res is valid during the callback only (NULL unless status is JR_HC_OK);
 * msg a readable sentence (NULL on success). The client may be freed from
 * inside the callback; the request is gone when it returns. */
typedef void (*jr_hc_cb)(jr_hc_req *r, int status, const jr_hc_response *res, const char *msg, void *ud);

jr_hc *jr_hc_new(uv_loop_t *loop, const jr_hc_options *o, char *err, size_t errlen);
/* JR_HC_OK and *out set (on_done comes later), or an error code and err
 * filled: JR_HC_EINVALID (a bad URL, method or header), JR_HC_ECLOSED (the
 * client is being freed), JR_HC_ENOMEM. */
int jr_hc_request(jr_hc *c, const jr_hc_request_spec *s, jr_hc_cb on_done, void *ud, jr_hc_req **out, char *err,
                  size_t errlen);
void jr_hc_abort(jr_hc_req *r);

typedef struct {
    size_t connections; /* open or opening */
    size_t idle;
    size_t in_use;
    size_t queued;
    uint64_t requests;  /* requests finished (any status) */
    uint64_t reused;    /* requests sent on a connection that had served one before */
} jr_hc_stats;
void jr_hc_get_stats(const jr_hc *c, jr_hc_stats *st);

/* Close every connection; pending requests end with JR_HC_ECLOSED (their
 * callbacks run before this returns). Memory goes when the handles closed. */
void jr_hc_free(jr_hc *c);

#endif
