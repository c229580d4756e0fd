/* test_otlp_peer.h - the collector test_otlp.c exports to: a real HTTP/1.1
 * (optionally TLS) server on 127.0.0.1 in a thread of its own, one
 * connection at a time (the exporter holds one per signal), blocking I/O.
 * It records every request and answers from a script:
 *   "200" / "503" / "400 bad span" / "503 retry-after=60"  an answer (the text after
 *                                                           the code is the body)
 *   "503 retry-date=60"  Retry-After as the IMF-fixdate 60 s from now (-60: past)
 *   "partial=3:why"  200 with an application/x-protobuf body: partial_success
 *                    { rejected_<items> = 3, error_message = "why" }
 *   "hang"    read the request, never answer (the peer waits for the close)
 *   "close"   answer 200 keep-alive, then close the connection at once
 *   "eof"     answer 200 with Connection: close and a body that runs to the close
 *   "100"     an interim 100 Continue, then 200
 * Past the end of the script it answers 200. Synchronisation is by
 * condition variable (peer_wait_requests), never by sleeping. */
#ifndef JR_TEST_OTLP_PEER_H
#define JR_TEST_OTLP_PEER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PEER_MAX 64

typedef struct {
    char *head; /* request line + headers */
    char *body;
    size_t body_len;
} peer_request;

typedef struct {
    int lfd, port;
    SSL_CTX *tls; /* NULL: plain HTTP */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    const char *const *script;
    int nscript;
    int stopping;
    int connections, nreq;
    peer_request req[PEER_MAX];
} peer;

typedef struct {
    int fd;
    SSL *ssl;
} peer_conn;

static ssize_t peer_read(peer_conn *c, char *b, size_t n)
{
    if (c->ssl) {
        int k = SSL_read(c->ssl, b, (int)n);
        return k > 0 ? k : 0;
    }
    return recv(c->fd, b, n, 0);
}

static void peer_write(peer_conn *c, const char *b, size_t n)
{
    if (c->ssl) (void)SSL_write(c->ssl, b, (int)n);
    else (void)send(c->fd, b, n, MSG_NOSIGNAL);
}

/* Reads one request into r. 0, or -1 at EOF. */
static int peer_read_request(peer_conn *c, char **acc, size_t *alen, peer_request *r)
{
    for (;;) {
        char *end = *alen ? memmem(*acc, *alen, "\r\n\r\n", 4) : NULL;
        if (end) {
            size_t hlen = (size_t)(end - *acc) + 4, clen = 0;
            char *head = strndup(*acc, hlen);
            char *cl = strcasestr(head, "\r\nContent-Length:");
            if (cl) clen = strtoul(cl + 17, NULL, 10);
            if (*alen >= hlen + clen) {
                r->head = head;
                r->body = malloc(clen + 1);
                memcpy(r->body, *acc + hlen, clen);
                r->body_len = clen;
                memmove(*acc, *acc + hlen + clen, *alen - hlen - clen);
                *alen -= hlen + clen;
                return 0;
            }
            free(head);
        }
        char b[16384];
        ssize_t k = peer_read(c, b, sizeof b);
        if (k <= 0) return -1;
        *acc = realloc(*acc, *alen + (size_t)k);
        memcpy(*acc + *alen, b, (size_t)k);
        *alen += (size_t)k;
    }
}

/* 200 + Export*ServiceResponse { partial_success(1) { rejected(1), error_message(2) } }
 * (message and both fields under 128 bytes: one-byte lengths). */
static void peer_answer_partial(peer_conn *c, const char *how)
{
    int rejected = atoi(how + 8);
    const char *msg = strchr(how, ':');
    msg = msg ? msg + 1 : "";
    unsigned char ps[160], body[170];
    size_t n = 0, ml = strlen(msg);
    ps[n++] = 0x08; /* rejected_<items>: varint */
    ps[n++] = (unsigned char)rejected;
    if (ml) {
        ps[n++] = 0x12; /* error_message */
        ps[n++] = (unsigned char)ml;
        memcpy(ps + n, msg, ml);
        n += ml;
    }
    body[0] = 0x0a; /* partial_success */
    body[1] = (unsigned char)n;
    memcpy(body + 2, ps, n);
    char head[160];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: %zu\r\n\r\n", n + 2);
    peer_write(c, head, (size_t)hl);
    peer_write(c, (const char *)body, n + 2);
}

static void peer_answer(peer_conn *c, const char *how)
{
    if (strncmp(how, "partial=", 8) == 0) {
        peer_answer_partial(c, how);
        return;
    }
    int code = atoi(how);
    const char *body = strchr(how, ' ');
    body = body ? body + 1 : "";
    char extra[64] = "";
    const char *ra = strstr(how, "retry-after=");
    if (ra) {
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", atoi(ra + 12));
        body = "";
    }
    const char *rd = strstr(how, "retry-date=");
    if (rd) {
        time_t at = time(NULL) + atoi(rd + 11);
        struct tm tm;
        gmtime_r(&at, &tm);
        strftime(extra, sizeof extra, "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm); /* C locale */
        body = "";
    }
    char out[512];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d X\r\nContent-Type: text/plain\r\n%sContent-Length: %zu\r\n\r\n%s", code,
                     extra, strlen(body), body);
    peer_write(c, out, (size_t)n);
}

static void *peer_main(void *arg)
{
    peer *p = arg;
    for (;;) {
        int fd = accept(p->lfd, NULL, NULL);
        if (fd < 0) break; /* peer_stop shut the socket down */
        peer_conn c = {fd, NULL};
        pthread_mutex_lock(&p->mu);
        p->connections++;
        pthread_mutex_unlock(&p->mu);
        if (p->tls) {
            c.ssl = SSL_new(p->tls);
            SSL_set_fd(c.ssl, fd);
            if (SSL_accept(c.ssl) != 1) { /* e.g. the client refused our certificate */
                ERR_clear_error();
                SSL_free(c.ssl);
                close(fd);
                continue;
            }
        }
        char *acc = NULL;
        size_t alen = 0;
        int open = 1;
        while (open) {
            peer_request r;
            if (peer_read_request(&c, &acc, &alen, &r) != 0) break;
            pthread_mutex_lock(&p->mu);
            int i = p->nreq;
            if (i < PEER_MAX) p->req[p->nreq++] = r;
            else free(r.head), free(r.body);
            const char *how = i < p->nscript ? p->script[i] : "200";
            pthread_cond_broadcast(&p->cond);
            pthread_mutex_unlock(&p->mu);
            if (strcmp(how, "hang") == 0) {
                char b[256];
                while (peer_read(&c, b, sizeof b) > 0) {
                } /* until the exporter gives up and closes */
                open = 0;
            } else if (strcmp(how, "100") == 0) {
                static const char a[] = "HTTP/1.1 100 Continue\r\n\r\n";
                peer_write(&c, a, sizeof a - 1);
                peer_answer(&c, "200");
            } else if (strcmp(how, "eof") == 0) {
                static const char a[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"partialSuccess\":{}}";
                peer_write(&c, a, sizeof a - 1);
                open = 0;
            } else if (strcmp(how, "close") == 0) {
                peer_answer(&c, "200");
                open = 0;
            } else {
                peer_answer(&c, how);
            }
        }
        free(acc);
        if (c.ssl) SSL_free(c.ssl);
        close(fd);
    }
    return NULL;
}

static int peer_start(peer *p, const char *const *script, int nscript, SSL_CTX *tls)
{
    memset(p, 0, sizeof *p);
    p->script = script;
    p->nscript = nscript;
    p->tls = tls;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->lfd, 16) != 0 ||
        getsockname(p->lfd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    p->port = ntohs(a.sin_port);
    return pthread_create(&p->thread, NULL, peer_main, p) == 0 ? 0 : -1;
}

/* Waits (on the condition variable, up to 20 s as a hang guard) until the
 * peer has received n requests. The count it reached; reading it under the
 * lock also makes the requests recorded so far visible to the caller. */
static int peer_wait_requests(peer *p, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&p->mu);
    while (p->nreq < n && pthread_cond_timedwait(&p->cond, &p->mu, &until) == 0) {
    }
    int got = p->nreq;
    pthread_mutex_unlock(&p->mu);
    return got;
}

/* Connections accepted so far (read under the peer's lock). */
static int peer_connections(peer *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->connections;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void peer_stop(peer *p)
{
    shutdown(p->lfd, SHUT_RDWR); /* wakes the accept() */
    pthread_join(p->thread, NULL);
    close(p->lfd);
    for (int i = 0; i < p->nreq; i++) {
        free(p->req[i].head);
        free(p->req[i].body);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
}

#endif
