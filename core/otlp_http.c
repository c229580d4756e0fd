/* otlp_http.c - the OTLP exporter's HTTP/1.1 client: one POST at a time on
 * the exporter thread, blocking with poll() and a deadline (the thread has
 * nothing else to do; the event loop is never involved), over a kept-alive
 * plain or TLS (OpenSSL) connection. The answer is parsed with llhttp. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "otlp_int.h"
#include "pb.h"
#include "retry_after.h"

uint64_t jr_otlp_now_ms(void) { return uv_hrtime() / 1000000u; }

void jr_otlp_url_free(jr_otlp_url *u)
{
    free(u->host);
    free(u->port);
    free(u->path);
    free(u->authority);
    memset(u, 0, sizeof *u);
}

int jr_otlp_url_parse(const char *url, jr_otlp_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        u->tls = 1;
    } else {
        snprintf(err, errlen, "\"%s\": the URL must start with http:// or https://", url);
        return -1;
    }
    /* Control characters and spaces would end up in the request line or
     * the Host header: refuse them rather than send a broken request. */
    for (const char *q = url; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f) {
            snprintf(err, errlen, "\"%s\": the URL contains a space or a control character", url);
            return -1;
        }
    size_t alen = strcspn(p, "/?#");
    const char *auth = p, *rest = p + alen;
    if (alen == 0) {
        snprintf(err, errlen, "\"%s\": the URL has no host", url);
        return -1;
    }
    if (memchr(auth, '@', alen)) {
        snprintf(err, errlen, "\"%s\": user:password@ in the URL is not supported (use headers)", url);
        return -1;
    }
    const char *host = auth, *port = NULL;
    size_t hlen, plen = 0;
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close) {
            snprintf(err, errlen, "\"%s\": unclosed [ in the host", url);
            return -1;
        }
        host = auth + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < auth + alen) {
            if (close[1] != ':') {
                snprintf(err, errlen, "\"%s\": junk after the ] of the host", url);
                return -1;
            }
            port = close + 2;
            plen = (size_t)(auth + alen - port);
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        hlen = colon ? (size_t)(colon - auth) : alen;
        if (colon) {
            port = colon + 1;
            plen = (size_t)(auth + alen - port);
        }
    }
    if (hlen == 0) {
        snprintf(err, errlen, "\"%s\": the URL has no host", url);
        return -1;
    }
    if (port) {
        long n = 0;
        for (size_t i = 0; i < plen; i++) {
            if (!isdigit((unsigned char)port[i]) || (n = n * 10 + (port[i] - '0')) > 65535) {
                n = -1;
                break;
            }
        }
        if (plen == 0 || n <= 0) {
            snprintf(err, errlen, "\"%s\": the port must be a number from 1 to 65535", url);
            return -1;
        }
    }
    if (*rest == '#') {
        snprintf(err, errlen, "\"%s\": a #fragment has no place in an endpoint URL", url);
        return -1;
    }
    size_t rlen = strcspn(rest, "#");
    if (rest[rlen] == '#') {
        snprintf(err, errlen, "\"%s\": a #fragment has no place in an endpoint URL", url);
        return -1;
    }
    u->host = strndup(host, hlen);
    u->port = port ? strndup(port, plen) : strdup(u->tls ? "443" : "80");
    u->authority = strndup(auth, alen);
    if (*rest == '/') {
        u->path = strndup(rest, rlen);
    } else { /* "http://h:1?x" -> "/?x" */
        u->path = malloc(rlen + 2);
        if (u->path) {
            u->path[0] = '/';
            memcpy(u->path + 1, rest, rlen);
            u->path[rlen + 1] = '\0';
        }
    }
    if (!u->host || !u->port || !u->authority || !u->path) {
        jr_otlp_url_free(u);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- host lookups, bounded ----
 * getaddrinfo takes no timeout (a DNS server that does not answer holds it
 * for the resolver's own timeouts times attempts), so it runs on a detached
 * thread of its own and the exporter waits for it with poll(): the
 * attempt's deadline and the wake fd (stop) bound the wait. A lookup given
 * up on is kept on the connection for the next attempt (one lookup at a
 * time, however many attempts time out); abandoned at close, it finishes
 * on its own and the last of its two owners frees it. (getaddrinfo_a would
 * do the waiting too, but it is glibc-only; a thread is portable.) */

static int wait_fd(int fd, short events, int wake_fd, uint64_t deadline);
static int set_failure(jr_otlp_result *r, int w, const char *what, const jr_otlp_url *u);

int (*jr_otlp_getaddrinfo)(const char *, const char *, const struct addrinfo *, struct addrinfo **) = getaddrinfo;

struct jr_otlp_lookup {
    pthread_mutex_t mu;
    int refs;    /* the connection and the lookup thread */
    int done_fd[2]; /* readable once the lookup finished */
    char *host, *port;
    int gai;     /* getaddrinfo's result */
    struct addrinfo *res;
};

static void lookup_release(jr_otlp_lookup *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (!last) return;
    if (l->res) freeaddrinfo(l->res);
    close(l->done_fd[0]);
    close(l->done_fd[1]);
    free(l->host);
    free(l->port);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static void *lookup_main(void *arg)
{
    jr_otlp_lookup *l = arg;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = jr_otlp_getaddrinfo(l->host, l->port, &hints, &res);
    pthread_mutex_lock(&l->mu);
    l->gai = gai;
    l->res = gai == 0 ? res : NULL;
    pthread_mutex_unlock(&l->mu);
    char one = 1;
    ssize_t k = write(l->done_fd[1], &one, 1); /* a pipe with room: does not block */
    (void)k;
    lookup_release(l);
    return NULL;
}

/* A lookup of u's host on its own thread, or NULL (err filled). */
static jr_otlp_lookup *lookup_start(const jr_otlp_url *u, char *err, size_t errlen)
{
    jr_otlp_lookup *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->done_fd[0] = l->done_fd[1] = -1;
    l->host = strdup(u->host);
    l->port = strdup(u->port);
    int rc = ENOMEM;
    if (!l->host || !l->port || pthread_mutex_init(&l->mu, NULL) != 0) goto fail;
    if (pipe2(l->done_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = errno;
        pthread_mutex_destroy(&l->mu);
        goto fail;
    }
    l->refs = 2;
    pthread_attr_t attr;
    sigset_t all, old;
    sigfillset(&all);
    rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        /* signals are for the loop's thread, never this one */
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t t;
        rc = pthread_create(&t, &attr, lookup_main, l);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (rc == 0) return l;
    l->refs = 1;
    lookup_release(l);
    snprintf(err, errlen, "cannot start a host lookup: %s", strerror(rc));
    return NULL;
fail:
    if (l->done_fd[0] >= 0) close(l->done_fd[0]), close(l->done_fd[1]);
    free(l->host);
    free(l->port);
    free(l);
    snprintf(err, errlen, "cannot start a host lookup: %s", strerror(rc));
    return NULL;
}

/* Resolves u's host by the deadline: 0 and *res (the caller frees it), or
 * -1 with r->err (timed out, stopped, or the lookup's own failure). */
static int resolve(jr_otlp_conn *c, const jr_otlp_url *u, uint64_t deadline, int wake_fd, jr_otlp_result *r,
                   struct addrinfo **res)
{
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    /* an IP address needs no lookup: no thread (AI_NUMERICHOST never asks DNS) */
    if (getaddrinfo(u->host, u->port, &hints, res) == 0) return 0;
    if (!c->lookup) {
        c->lookup = lookup_start(u, r->err, sizeof r->err);
        if (!c->lookup) return -1;
    }
    jr_otlp_lookup *l = c->lookup;
    int w = wait_fd(l->done_fd[0], POLLIN, wake_fd, deadline);
    if (w != 1) {
        set_failure(r, w, "resolving", u); /* the lookup stays for the next attempt */
        return -1;
    }
    c->lookup = NULL;
    pthread_mutex_lock(&l->mu);
    int gai = l->gai;
    *res = l->res;
    l->res = NULL;
    pthread_mutex_unlock(&l->mu);
    lookup_release(l);
    if (gai != 0) {
        snprintf(r->err, sizeof r->err, "cannot resolve %s: %s", u->host, gai_strerror(gai));
        return -1;
    }
    return 0;
}

void jr_otlp_conn_close(jr_otlp_conn *c)
{
    if (c->lookup) {
        lookup_release(c->lookup); /* still running: it frees itself when done */
        c->lookup = NULL;
    }
    if (c->ssl) {
        /* No close_notify round trip: the peer may be gone, and waiting
         * on it would hold the exporter thread. */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->requests = 0;
}

/* Waits for events on fd (or the wake fd) until the deadline.
 * 1 ready, 0 timed out, -2 woken (stop), -1 poll error. */
static int wait_fd(int fd, short events, int wake_fd, uint64_t deadline)
{
    for (;;) {
        uint64_t now = jr_otlp_now_ms();
        if (now >= deadline) return 0;
        struct pollfd p[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
        int n = poll(p, wake_fd >= 0 ? 2 : 1, (int)(deadline - now));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) continue; /* re-check the clock */
        if (wake_fd >= 0 && (p[1].revents & POLLIN)) return -2;
        if (p[0].revents) return 1;
    }
}

/* Fills r->err for a failed wait (w) or call (errno). Keeps errno: the
 * caller tells a closed keep-alive connection by it. */
static int set_failure(jr_otlp_result *r, int w, const char *what, const jr_otlp_url *u)
{
    int saved = w == 0 ? ETIMEDOUT : w == -2 ? ECANCELED : errno;
    if (w == -2) {
        r->aborted = 1;
        snprintf(r->err, sizeof r->err, "the exporter was stopped");
    } else if (w == 0) {
        snprintf(r->err, sizeof r->err, "%s %s:%s timed out", what, u->host, u->port);
    } else {
        snprintf(r->err, sizeof r->err, "%s %s:%s failed: %s", what, u->host, u->port, strerror(saved));
    }
    errno = saved;
    return -1;
}

static int tcp_connect(jr_otlp_conn *c, const jr_otlp_url *u, uint64_t deadline, int wake_fd, jr_otlp_result *r)
{
    struct addrinfo *res = NULL;
    if (resolve(c, u, deadline, wake_fd, r, &res) != 0) return -1;
    int saved = 0, w = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            w = 1;
        } else if (errno == EINPROGRESS) {
            w = wait_fd(fd, POLLOUT, wake_fd, deadline);
            if (w == 1) {
                int e = 0;
                socklen_t el = sizeof e;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) e = errno;
                if (e) {
                    errno = e;
                    w = -1;
                }
            }
        } else {
            w = -1;
        }
        saved = errno;
        if (w == 1) {
            int one = 1; /* the request goes out in one or two writes: no Nagle delay */
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c->fd = fd;
            freeaddrinfo(res);
            return 0;
        }
        close(fd);
        if (w == 0 || w == -2) break; /* out of time (or stopping): no next address */
    }
    freeaddrinfo(res);
    errno = saved;
    return set_failure(r, w, "connecting to", u);
}

static int tls_handshake(jr_otlp_conn *c, SSL_CTX *ctx, const jr_otlp_url *u, uint64_t deadline, int wake_fd,
                         jr_otlp_result *r)
{
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        snprintf(r->err, sizeof r->err, "TLS setup failed (out of memory?)");
        return -1;
    }
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, u->host, ip) == 1 || inet_pton(AF_INET6, u->host, ip) == 1;
    /* An IP address is checked against the certificate's IP SANs and sent
     * without SNI (RFC 6066 forbids literal addresses there); a name is
     * both the SNI and the name checked. */
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host)
                   : SSL_set_tlsext_host_name(c->ssl, u->host) == 1 && SSL_set1_host(c->ssl, u->host) == 1;
    if (!ok) {
        snprintf(r->err, sizeof r->err, "TLS setup failed for host %s", u->host);
        return -1;
    }
    ERR_clear_error();
    for (;;) {
        int rc = SSL_connect(c->ssl);
        if (rc == 1) return 0;
        int e = SSL_get_error(c->ssl, rc);
        int w;
        if (e == SSL_ERROR_WANT_READ) w = wait_fd(c->fd, POLLIN, wake_fd, deadline);
        else if (e == SSL_ERROR_WANT_WRITE) w = wait_fd(c->fd, POLLOUT, wake_fd, deadline);
        else break;
        if (w != 1) return set_failure(r, w, "TLS handshake with", u);
    }
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        r->fatal = 1;
        snprintf(r->err, sizeof r->err, "TLS certificate of %s:%s did not verify: %s", u->host, u->port,
                 X509_verify_cert_error_string(v));
    } else {
        char buf[160];
        unsigned long ec = ERR_get_error();
        if (ec) ERR_error_string_n(ec, buf, sizeof buf);
        else snprintf(buf, sizeof buf, "connection closed");
        snprintf(r->err, sizeof r->err, "TLS handshake with %s:%s failed: %s", u->host, u->port, buf);
    }
    ERR_clear_error();
    return -1;
}

/* Writes all of d. 0, or -1 with r->err set (errno EPIPE/ECONNRESET
 * distinguish a closed keep-alive connection). */
static int send_all(jr_otlp_conn *c, const char *d, size_t n, const jr_otlp_url *u, uint64_t deadline, int wake_fd,
                    jr_otlp_result *r)
{
    while (n > 0) {
        ssize_t k;
        short want = POLLOUT;
        if (c->ssl) {
            size_t wrote = 0;
            int rc = SSL_write_ex(c->ssl, d, n, &wrote);
            if (rc == 1) {
                k = (ssize_t)wrote;
            } else {
                int e = SSL_get_error(c->ssl, rc);
                if (e == SSL_ERROR_WANT_READ) want = POLLIN;
                else if (e != SSL_ERROR_WANT_WRITE) {
                    ERR_clear_error();
                    if (errno == 0) errno = ECONNRESET;
                    return set_failure(r, -1, "sending to", u);
                }
                k = -1;
                errno = EAGAIN;
            }
        } else {
            k = send(c->fd, d, n, MSG_NOSIGNAL);
        }
        if (k > 0) {
            d += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return set_failure(r, -1, "sending to", u);
        int w = wait_fd(c->fd, want, wake_fd, deadline);
        if (w != 1) return set_failure(r, w, "sending to", u);
    }
    return 0;
}

typedef struct {
    jr_otlp_result *r;
    char field[16];
    size_t flen; /* > sizeof field: a long name we do not care about */
    char value[40]; /* the longest value read: an IMF-fixdate (29) */
    size_t vlen;
    int vcut; /* the value was longer than value: not one we read */
    char body[120];
    size_t blen;
    char raw[2048]; /* the body as it came: a 2xx's partial_success is read from it */
    size_t rawlen;
    int rawcut;     /* the body was longer than raw: not read */
    int protobuf;   /* Content-Type: application/x-protobuf (what a partial_success comes in) */
    int done;
} answer;

static int on_hfield(llhttp_t *p, const char *at, size_t len)
{
    answer *a = p->data;
    for (size_t i = 0; i < len; i++, a->flen++)
        if (a->flen < sizeof a->field) a->field[a->flen] = (char)tolower((unsigned char)at[i]);
    return 0;
}

static int on_hvalue(llhttp_t *p, const char *at, size_t len)
{
    answer *a = p->data;
    for (size_t i = 0; i < len; i++) {
        if (a->vlen == sizeof a->value) {
            a->vcut = 1;
            break;
        }
        a->value[a->vlen++] = at[i];
    }
    return 0;
}

static int on_hvalue_complete(llhttp_t *p)
{
    answer *a = p->data;
    if (a->flen == 11 && memcmp(a->field, "retry-after", 11) == 0) {
        double sec;
        if (!a->vcut && jr_retry_after_parse(a->value, a->vlen, (int64_t)time(NULL), &sec) == 0)
            a->r->retry_after_ms = sec > 3600 ? 3600000 : (int)(sec * 1000 + 0.5);
    }
    if (a->flen == 12 && memcmp(a->field, "content-type", 12) == 0)
        a->protobuf = a->vlen >= 22 && strncasecmp(a->value, "application/x-protobuf", 22) == 0;
    a->flen = a->vlen = 0;
    a->vcut = 0;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    answer *a = p->data;
    if (len > sizeof a->raw - a->rawlen) a->rawcut = 1;
    else memcpy(a->raw + a->rawlen, at, len), a->rawlen += len;
    for (size_t i = 0; i < len && a->blen < sizeof a->body - 1; i++) {
        unsigned char ch = (unsigned char)at[i];
        /* The body may be a protobuf Status: keep its readable runs only. */
        a->body[a->blen++] = ch >= ' ' && ch < 0x7f ? (char)ch : ' ';
    }
    return 0;
}

static int on_complete(llhttp_t *p)
{
    answer *a = p->data;
    if (p->status_code < 200) { /* an interim 1xx: the answer follows */
        a->blen = a->rawlen = 0;
        a->rawcut = a->protobuf = 0;
        return 0;
    }
    a->done = 1;
    return HPE_PAUSED; /* bytes after the answer are not ours */
}

/* A 2xx body: Export{Trace,Metrics,Logs}ServiceResponse { partial_success(1)
 * { rejected_<items>(1): int64, error_message(2): string } } (the same
 * numbers for the three signals in opentelemetry-proto's
 * collector/<signal>/v1/<signal>_service.proto). A body that is not
 * application/x-protobuf (a proxy's text, nothing) or does not decode is a
 * full success. */
static void read_partial_success(const answer *a, jr_otlp_result *r)
{
    if (a->rawcut || a->rawlen == 0 || !a->protobuf) return;
    jr_pb_reader top = {(const unsigned char *)a->raw, (const unsigned char *)a->raw + a->rawlen};
    jr_pb_field f, g;
    int k;
    int64_t rejected = 0;
    const unsigned char *msg = NULL;
    size_t msglen = 0;
    while ((k = jr_pb_next(&top, &f)) == 1) {
        if (f.num != 1 || f.wire != JR_PB_LEN) continue;
        jr_pb_reader ps = {f.data, f.data + f.len};
        while ((k = jr_pb_next(&ps, &g)) == 1) {
            if (g.num == 1 && g.wire == JR_PB_VARINT) rejected = (int64_t)g.v;
            else if (g.num == 2 && g.wire == JR_PB_LEN) msg = g.data, msglen = g.len;
        }
        if (k < 0) return;
    }
    if (k < 0) return;
    r->rejected = rejected > 0 ? rejected : 0;
    size_t n = 0;
    for (size_t i = 0; i < msglen && n < sizeof r->partial_msg - 1; i++)
        r->partial_msg[n++] = msg[i] >= ' ' && msg[i] < 0x7f ? (char)msg[i] : ' ';
    r->partial_msg[n] = '\0';
}

/* Reads the answer. 0 with r->status set, or -1 with r->err. got_bytes
 * tells a peer that closed an idle connection (0 bytes) apart. */
static int read_answer(jr_otlp_conn *c, const jr_otlp_url *u, uint64_t deadline, int wake_fd, jr_otlp_result *r,
                       size_t *got_bytes)
{
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_header_field = on_hfield;
    s.on_header_value = on_hvalue;
    s.on_header_value_complete = on_hvalue_complete;
    s.on_body = on_body;
    s.on_message_complete = on_complete;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &s);
    answer a = {0};
    a.r = r;
    p.data = &a;
    char buf[8192];
    *got_bytes = 0;
    for (;;) {
        ssize_t k;
        short want = POLLIN;
        if (c->ssl) {
            size_t got = 0;
            int rc = SSL_read_ex(c->ssl, buf, sizeof buf, &got);
            if (rc == 1) {
                k = (ssize_t)got;
            } else {
                int e = SSL_get_error(c->ssl, rc);
                ERR_clear_error();
                if (e == SSL_ERROR_ZERO_RETURN) k = 0;
                else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    if (e == SSL_ERROR_WANT_WRITE) want = POLLOUT;
                    errno = EAGAIN;
                    k = -1;
                } else {
                    /* An unclean close (no close_notify) reads as EOF, as it does in plain HTTP. */
                    k = 0;
                }
            }
        } else {
            k = recv(c->fd, buf, sizeof buf, 0);
        }
        if (k > 0) {
            *got_bytes += (size_t)k;
            llhttp_errno_t e = llhttp_execute(&p, buf, (size_t)k);
            if (a.done || e == HPE_PAUSED) break;
            if (e != HPE_OK) {
                snprintf(r->err, sizeof r->err, "bad HTTP answer from %s:%s: %s", u->host, u->port,
                         llhttp_errno_name(e));
                return -1;
            }
            continue;
        }
        if (k == 0) {
            /* EOF: completes an answer whose body runs to the close. */
            /* (on_complete's pause is what llhttp_finish returns then: a.done says it) */
            if (*got_bytes > 0) (void)llhttp_finish(&p);
            if (a.done) break;
            snprintf(r->err, sizeof r->err, "%s:%s closed the connection before answering", u->host, u->port);
            errno = ECONNRESET;
            return -1;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return set_failure(r, -1, "reading from", u);
        int w = wait_fd(c->fd, want, wake_fd, deadline);
        if (w != 1) return set_failure(r, w, "waiting for the answer of", u);
    }
    r->status = p.status_code;
    if (r->status < 200 || r->status > 299) {
        /* trim the body text */
        while (a.blen > 0 && a.body[a.blen - 1] == ' ') a.blen--;
        a.body[a.blen] = '\0';
        snprintf(r->err, sizeof r->err, "HTTP %d from %s%s%s", r->status, u->authority, a.blen ? ": " : "",
                 a.body);
    } else {
        read_partial_success(&a, r);
    }
    if (!llhttp_should_keep_alive(&p)) jr_otlp_conn_close(c);
    else c->requests++;
    return 0;
}

void jr_otlp_post(jr_otlp_conn *c, SSL_CTX *ctx, const jr_otlp_url *u, const char *req, size_t reqlen,
                  int timeout_ms, int wake_fd, jr_otlp_result *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
    uint64_t deadline = jr_otlp_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = c->fd >= 0;
        if (!reused) {
            if (tcp_connect(c, u, deadline, wake_fd, r) != 0) return;
            r->connected = 1;
            if (u->tls && tls_handshake(c, ctx, u, deadline, wake_fd, r) != 0) {
                jr_otlp_conn_close(c);
                return;
            }
        }
        size_t got = 0;
        if (send_all(c, req, reqlen, u, deadline, wake_fd, r) == 0 &&
            read_answer(c, u, deadline, wake_fd, r, &got) == 0)
            return;
        int stale = reused && got == 0 && !r->aborted && (errno == ECONNRESET || errno == EPIPE);
        jr_otlp_conn_close(c);
        /* The peer closed the idle keep-alive connection before our
         * request reached it: nothing was processed, send it again on a
         * new connection (not a retry in the backoff sense). */
        if (!stale) return;
        r->err[0] = '\0';
    }
}
