/* http_client_tls.c - OpenSSL over memory BIOs for the HTTP client (see
 * http_client_tls.h). */
#include "http_client_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "log.h"

struct jr_hc_tls_ctx {
    SSL_CTX *ctx;
    int verify;
};

struct jr_hc_tls {
    SSL *ssl;
    BIO *rbio; /* peer -> OpenSSL */
    BIO *wbio; /* OpenSSL -> peer */
};

static void ssl_error_text(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

jr_hc_tls_ctx *jr_hc_tls_ctx_new(const char *ca_file, int verify, char *err, size_t errlen)
{
    jr_hc_tls_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    x->verify = verify;
    x->ctx = SSL_CTX_new(TLS_client_method());
    if (!x->ctx) {
        ssl_error_text(err, errlen, "cannot create the TLS context");
        free(x);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION);
    if (verify) {
        SSL_CTX_set_verify(x->ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_set_default_verify_paths(x->ctx) != 1) ERR_clear_error(); /* no system CAs: ca_file may do */
        if (ca_file && SSL_CTX_load_verify_locations(x->ctx, ca_file, NULL) != 1) {
            char what[512];
            snprintf(what, sizeof what, "cannot load the CA file %s", ca_file);
            ssl_error_text(err, errlen, what);
            jr_hc_tls_ctx_free(x);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(x->ctx, SSL_VERIFY_NONE, NULL);
        /* Once per process: a client that skips verification is a choice
         * someone made, but one an operator must be able to see. */
        static int warned;
        if (!warned) {
            warned = 1;
            jr_logf(JR_LOG_WARN, NULL,
                    "HTTP client: TLS certificate verification is off (tls.verify = false): "
                    "connections are open to impersonation");
        }
    }
    return x;
}

void jr_hc_tls_ctx_free(jr_hc_tls_ctx *x)
{
    if (!x) return;
    SSL_CTX_free(x->ctx); /* sessions still open keep their own reference */
    free(x);
}

jr_hc_tls *jr_hc_tls_new(jr_hc_tls_ctx *x, const char *host)
{
    jr_hc_tls *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ssl = SSL_new(x->ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) goto fail;
    /* An empty read BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both from here */
    unsigned char ip[16];
    int literal = uv_inet_pton(AF_INET, host, ip) == 0 || uv_inet_pton(AF_INET6, host, ip) == 0;
    if (!literal && SSL_set_tlsext_host_name(t->ssl, host) != 1) goto fail_ssl;
    if (x->verify) {
        if (literal) {
            X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
            if (X509_VERIFY_PARAM_set1_ip_asc(p, host) != 1) goto fail_ssl;
        } else if (SSL_set1_host(t->ssl, host) != 1) {
            goto fail_ssl;
        }
    }
    SSL_set_connect_state(t->ssl);
    return t;
fail:
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return NULL;
fail_ssl:
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return NULL;
}

void jr_hc_tls_free(jr_hc_tls *t)
{
    if (!t) return;
    SSL_free(t->ssl);
    free(t);
}

int jr_hc_tls_feed(jr_hc_tls *t, const char *data, size_t n)
{
    while (n > 0) {
        int chunk = n > 1 << 30 ? 1 << 30 : (int)n;
        int w = BIO_write(t->rbio, data, chunk);
        if (w <= 0) return -1;
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

int jr_hc_tls_handshake(jr_hc_tls *t, char *err, size_t errlen)
{
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) return 1;
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK) {
        snprintf(err, errlen, "TLS certificate refused: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else {
        ssl_error_text(err, errlen, "TLS handshake failed");
    }
    return -1;
}

int jr_hc_tls_read(jr_hc_tls *t, char *buf, size_t n)
{
    int rc = SSL_read(t->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    if (rc > 0) return rc;
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    ERR_clear_error();
    return -1;
}

int jr_hc_tls_write(jr_hc_tls *t, const char *data, size_t n)
{
    /* Memory BIOs grow: SSL_write takes everything at once. */
    while (n > 0) {
        int chunk = n > 1 << 30 ? 1 << 30 : (int)n;
        int w = SSL_write(t->ssl, data, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return -1;
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

int jr_hc_tls_drain(jr_hc_tls *t, jr_buf *out)
{
    size_t pending = BIO_ctrl_pending(t->wbio);
    if (pending == 0) return 0;
    if (jr_buf_reserve(out, pending) != 0) return -1;
    /* BIO_read counts in int: a request body near 2 GiB encrypts to more */
    while (pending > 0) {
        int r = BIO_read(t->wbio, out->data + out->len, pending > 1 << 30 ? 1 << 30 : (int)pending);
        if (r <= 0) break;
        out->len += (size_t)r;
        pending -= (size_t)r;
    }
    return 0;
}
