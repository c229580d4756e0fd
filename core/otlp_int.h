/* otlp_int.h - between the exporter (otlp.c: queues, batches, retries)
 * and its HTTP/1.1 client (otlp_http.c: one blocking POST on the exporter
 * thread, plain or TLS). Not for use outside core/otlp*.c. */
#ifndef JR_OTLP_INT_H
#define JR_OTLP_INT_H

#include <netdb.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *host; /* without the brackets of an IPv6 literal */
    char *port;
    char *path;      /* "/v1/traces" (with any query) */
    char *authority; /* the Host header: host[:port] as written */
    int tls;
} jr_otlp_url;

int jr_otlp_url_parse(const char *url, jr_otlp_url *u, char *err, size_t errlen);
void jr_otlp_url_free(jr_otlp_url *u);

typedef struct jr_otlp_lookup jr_otlp_lookup;

/* One keep-alive connection (fd -1: none open). */
typedef struct {
    int fd;
    SSL *ssl;
    unsigned requests;      /* answered on this connection */
    jr_otlp_lookup *lookup; /* a host lookup still running after its attempt gave up:
                               the next attempt waits for it rather than start another */
} jr_otlp_conn;

typedef struct {
    int status;        /* HTTP status; 0 = no answer (connection error, timeout) */
    int retry_after_ms; /* Retry-After (seconds or an HTTP-date), capped at 1 h; -1 = none */
    int fatal;         /* a failure retrying cannot fix (certificate did not verify) */
    int aborted;       /* the wake fd fired: the exporter is stopping */
    int connected;     /* a new connection was opened */
    char err[200];     /* what went wrong (status != 2xx) */
    /* A 2xx's Export*ServiceResponse.partial_success (0 / "": none). */
    int64_t rejected;  /* rejected_spans / _data_points / _log_records */
    char partial_msg[200]; /* its error_message (printable bytes only) */
} jr_otlp_result;

/* Sends req (a whole HTTP/1.1 request) on c, opening it first if needed,
 * and reads the answer, all within timeout_ms. A reused connection that
 * the peer had closed is reopened once. wake_fd readable = give up now. */
void jr_otlp_post(jr_otlp_conn *c, SSL_CTX *ctx, const jr_otlp_url *u, const char *req, size_t reqlen,
                  int timeout_ms, int wake_fd, jr_otlp_result *r);
void jr_otlp_conn_close(jr_otlp_conn *c);

/* The resolver the lookups call: getaddrinfo. A test seam (it stands in
 * for a DNS server that does not answer); set it before jr_otlp_new. */
extern int (*jr_otlp_getaddrinfo)(const char *host, const char *port, const struct addrinfo *hints,
                                  struct addrinfo **res);

/* Monotonic milliseconds. */
uint64_t jr_otlp_now_ms(void);

#endif
