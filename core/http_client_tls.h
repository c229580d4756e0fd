/* http_client_tls.h - the OpenSSL side of the HTTP client: one SSL_CTX per
 * client, one SSL per connection over a pair of memory BIOs. The connection
 * moves bytes between the BIOs and its uv stream, so OpenSSL never touches a
 * socket and the loop never blocks on it. */
#ifndef JR_HTTP_CLIENT_TLS_H
#define JR_HTTP_CLIENT_TLS_H

#include <stddef.h>

#include "buf.h"

typedef struct jr_hc_tls_ctx jr_hc_tls_ctx;
typedef struct jr_hc_tls jr_hc_tls;

/* System CAs, plus ca_file's when given; verify 0: no certificate checks. */
jr_hc_tls_ctx *jr_hc_tls_ctx_new(const char *ca_file, int verify, char *err, size_t errlen);
void jr_hc_tls_ctx_free(jr_hc_tls_ctx *x);

/* A client session for host: SNI (unless host is an IP literal) and, when
 * verifying, the certificate must name host (SSL_set1_host / set1_ip). */
jr_hc_tls *jr_hc_tls_new(jr_hc_tls_ctx *x, const char *host);
void jr_hc_tls_free(jr_hc_tls *t);

/* Ciphertext that came from the peer. 0, or -1 (out of memory). */
int jr_hc_tls_feed(jr_hc_tls *t, const char *data, size_t n);
/* Advance the handshake: 1 done, 0 wants more bytes from the peer, -1 failed
 * (err says why: the verification result when the certificate was refused). */
int jr_hc_tls_handshake(jr_hc_tls *t, char *err, size_t errlen);
/* Decrypted bytes into buf: > 0 their count, 0 none until more is fed,
 * -1 the peer closed the session (close_notify) or it failed. */
int jr_hc_tls_read(jr_hc_tls *t, char *buf, size_t n);
/* Encrypt plaintext (into the outgoing BIO). 0, or -1. */
int jr_hc_tls_write(jr_hc_tls *t, const char *data, size_t n);
/* Move the ciphertext waiting to go to the peer into out (appended). */
int jr_hc_tls_drain(jr_hc_tls *t, jr_buf *out);

#endif
