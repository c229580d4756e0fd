/* mesh.c - see mesh.h.
 *
 * libuv 1.44 cannot bind or connect abstract unix names (uv_pipe_bind2 and
 * uv_pipe_connect2 came later), so the sockets are made here and handed to
 * libuv with uv_pipe_open. A non-blocking connect(2) on a unix stream socket
 * completes at once (or fails at once: ECONNREFUSED with no listener, EAGAIN
 * with a full backlog), so there is no asynchronous connect to track.
 *
 * A published message is one refcounted block [4-byte length][data] shared
 * by every peer's queue: one copy per publish, whatever n is. A peer's
 * unsent messages wait in a ring; a batch of them moves to the peer's single
 * uv_write at a time, so the ring holds only droppable messages and "drop
 * the oldest" is a pop at its head. */
#include "mesh.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

#define NS_MAX 90
#define BATCH 64           /* messages per uv_write */
#define READ_CHUNK 65536   /* what a read asks room for when no bigger message is pending */

typedef struct {
    unsigned refs;
    size_t len; /* bytes in data, the 4-byte prefix included */
    char data[];
} msg;

enum { P_IDLE, P_WAIT, P_CONNECTED, P_CLOSING };

typedef struct peer {
    struct jr_mesh *m;
    int index;
    int state;
    uv_pipe_t pipe;    /* valid in P_CONNECTED and P_CLOSING */
    uv_timer_t timer;  /* the reconnect back-off */
    unsigned backoff_ms;
    msg **ring;        /* unsent messages, oldest at head */
    size_t rcap, rhead, rlen, rbytes;
    uv_write_t wreq;
    msg *wmsgs[BATCH]; /* the batch being written */
    size_t nw;
} peer;

/* An accepted connection from another worker: read only. */
typedef struct inconn {
    struct jr_mesh *m;
    uv_pipe_t pipe;
    jr_buf in;
    int closing;
    struct inconn *prev, *next;
} inconn;

struct jr_mesh {
    uv_loop_t *loop;
    jr_mesh_config cfg;
    jr_mesh_callbacks cb;
    char ns[NS_MAX + 1];
    int self, n;
    uv_pipe_t listener;
    peer *peers; /* n entries; peers[self] unused */
    inconn *ins;
    jr_mesh_counters st;
    int closing;
    unsigned pending_closes;
};

void jr_mesh_config_defaults(jr_mesh_config *cfg)
{
    cfg->max_queue_bytes = 16u << 20;
    cfg->max_message = 64u << 20;
    cfg->retry_min_ms = 20;
    cfg->retry_max_ms = 1000;
}

/* ------------------------------------------------------------ helpers */

static socklen_t make_addr(struct sockaddr_un *a, const char *ns, int i)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    /* sun_path[0] = 0: the abstract namespace; the name is the bytes after
     * it, up to the length given (no terminating NUL). */
    int k = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "%s-%d", ns, i);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)k);
}

static void msg_release(msg *g)
{
    if (--g->refs == 0) free(g);
}

static void finish_if_done(jr_mesh *m)
{
    if (!m->closing || m->pending_closes) return;
    free(m->peers);
    free(m);
}

static void close_counted(jr_mesh *m, uv_handle_t *h, uv_close_cb cb)
{
    m->pending_closes++;
    uv_close(h, cb);
}

/* ------------------------------------------------------------ peer queues */

static int ring_push(peer *p, msg *g)
{
    if (p->rlen == p->rcap) {
        size_t ncap = p->rcap ? p->rcap * 2 : 16;
        msg **nr = malloc(ncap * sizeof *nr);
        if (!nr) return -1;
        for (size_t i = 0; i < p->rlen; i++) nr[i] = p->ring[(p->rhead + i) % p->rcap];
        free(p->ring);
        p->ring = nr;
        p->rcap = ncap;
        p->rhead = 0;
    }
    p->ring[(p->rhead + p->rlen) % p->rcap] = g;
    p->rlen++;
    p->rbytes += g->len;
    p->m->st.queued_bytes += g->len;
    return 0;
}

static msg *ring_pop(peer *p)
{
    msg *g = p->ring[p->rhead];
    p->rhead = (p->rhead + 1) % p->rcap;
    p->rlen--;
    p->rbytes -= g->len;
    p->m->st.queued_bytes -= g->len;
    return g;
}

static void ring_clear(peer *p)
{
    while (p->rlen) msg_release(ring_pop(p));
    free(p->ring);
    p->ring = NULL;
    p->rcap = p->rhead = 0;
}

/* ------------------------------------------------------------ outgoing connections */

static void peer_connect(peer *p);
static void peer_kick(peer *p);

static void on_retry(uv_timer_t *t)
{
    peer *p = t->data;
    p->state = P_IDLE;
    if (p->rlen) peer_connect(p);
}

static void peer_wait(peer *p)
{
    jr_mesh *m = p->m;
    p->state = P_WAIT;
    uv_timer_start(&p->timer, on_retry, p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > m->cfg.retry_max_ms ? m->cfg.retry_max_ms : p->backoff_ms * 2;
}

static void peer_closed(uv_handle_t *h)
{
    peer *p = h->data;
    jr_mesh *m = p->m;
    m->pending_closes--;
    if (m->closing) {
        finish_if_done(m);
        return;
    }
    /* The peer went away (or is restarting): try again soon, and only while
     * there is something to say to it. */
    if (p->rlen) peer_wait(p);
    else p->state = P_IDLE;
}

static void peer_fail(peer *p)
{
    if (p->state != P_CONNECTED) return;
    p->state = P_CLOSING;
    p->m->st.peers_connected--;
    close_counted(p->m, (uv_handle_t *)&p->pipe, peer_closed);
}

static void peer_written(uv_write_t *w, int status)
{
    peer *p = w->data;
    jr_mesh *m = p->m;
    for (size_t i = 0; i < p->nw; i++) msg_release(p->wmsgs[i]);
    if (status == 0) m->st.sent += p->nw;
    else m->st.lost += p->nw;
    p->nw = 0;
    if (status != 0) {
        if (status != UV_ECANCELED) peer_fail(p);
        return;
    }
    peer_kick(p);
}

/* Move the next batch from the ring to the socket, if none is in flight. */
static void peer_kick(peer *p)
{
    if (p->state != P_CONNECTED || p->nw || !p->rlen) return;
    uv_buf_t bufs[BATCH];
    while (p->nw < BATCH && p->rlen) {
        msg *g = ring_pop(p);
        bufs[p->nw] = uv_buf_init(g->data, (unsigned)g->len);
        p->wmsgs[p->nw++] = g;
    }
    p->wreq.data = p;
    int rc = uv_write(&p->wreq, (uv_stream_t *)&p->pipe, bufs, (unsigned)p->nw, peer_written);
    if (rc != 0) {
        for (size_t i = 0; i < p->nw; i++) msg_release(p->wmsgs[i]);
        p->m->st.lost += p->nw;
        p->nw = 0;
        peer_fail(p);
    }
}

static void peer_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    static char sink[256];
    buf->base = sink;
    buf->len = sizeof sink;
}

/* Peers never write back: a read only ever reports the end. */
static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) peer_fail(s->data);
}

static void peer_connect(peer *p)
{
    jr_mesh *m = p->m;
    struct sockaddr_un a;
    socklen_t alen = make_addr(&a, m->ns, p->index);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        m->st.connect_failures++;
        peer_wait(p);
        return;
    }
    if (connect(fd, (struct sockaddr *)&a, alen) != 0) {
        close(fd);
        m->st.connect_failures++;
        peer_wait(p);
        return;
    }
    uv_pipe_init(m->loop, &p->pipe, 0);
    p->pipe.data = p;
    p->state = P_CONNECTED;
    m->st.peers_connected++;
    if (uv_pipe_open(&p->pipe, fd) != 0) {
        close(fd); /* uv_pipe_open failed before adopting it */
        peer_fail(p);
        return;
    }
    m->st.connects++;
    p->backoff_ms = m->cfg.retry_min_ms;
    if (uv_read_start((uv_stream_t *)&p->pipe, peer_alloc, peer_read) != 0) {
        peer_fail(p);
        return;
    }
    peer_kick(p);
}

int jr_mesh_publish(jr_mesh *m, const void *data, size_t len)
{
    if (!m || (len && !data)) return JR_MESH_EINVALID;
    if (len > m->cfg.max_message || len > UINT32_MAX) return JR_MESH_ETOOBIG;
    if (m->n < 2) return JR_MESH_OK;
    msg *g = malloc(sizeof *g + 4 + len);
    if (!g) return JR_MESH_ENOMEM;
    g->refs = 1; /* ours, until every peer has its own */
    g->len = 4 + len;
    g->data[0] = (char)(len >> 24);
    g->data[1] = (char)(len >> 16);
    g->data[2] = (char)(len >> 8);
    g->data[3] = (char)len;
    if (len) memcpy(g->data + 4, data, len);
    int rc = JR_MESH_OK;
    for (int i = 0; i < m->n; i++) {
        if (i == m->self) continue;
        peer *p = &m->peers[i];
        if (ring_push(p, g) != 0) {
            rc = JR_MESH_ENOMEM;
            continue;
        }
        g->refs++;
        /* Bounded: the newest stays, the oldest unsent go. */
        while (p->rbytes > m->cfg.max_queue_bytes && p->rlen > 1) {
            msg_release(ring_pop(p));
            m->st.dropped++;
        }
        if (p->state == P_IDLE) peer_connect(p);
        else peer_kick(p);
    }
    msg_release(g);
    if (rc == JR_MESH_OK) m->st.published++;
    return rc;
}

/* ------------------------------------------------------------ incoming connections */

static void in_closed(uv_handle_t *h)
{
    inconn *c = h->data;
    jr_mesh *m = c->m;
    if (c->prev) c->prev->next = c->next;
    else m->ins = c->next;
    if (c->next) c->next->prev = c->prev;
    jr_buf_free(&c->in);
    free(c);
    m->pending_closes--;
    finish_if_done(m);
}

static void in_close(inconn *c)
{
    if (c->closing) return;
    c->closing = 1;
    close_counted(c->m, (uv_handle_t *)&c->pipe, in_closed);
}

static uint32_t get_u32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | (uint32_t)u[3];
}

/* Read straight into the connection's buffer, with room for the whole of a
 * big message once its length is known: no copy, few reads. */
static void in_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    inconn *c = h->data;
    size_t want = READ_CHUNK;
    if (c->in.len >= 4) {
        size_t mlen = get_u32(c->in.data);
        if (mlen <= c->m->cfg.max_message && 4 + mlen > c->in.len && 4 + mlen - c->in.len > want)
            want = 4 + mlen - c->in.len;
    }
    if (jr_buf_reserve(&c->in, want) != 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    inconn *c = s->data;
    jr_mesh *m = c->m;
    if (n < 0) {
        in_close(c);
        return;
    }
    c->in.len += (size_t)n;
    size_t off = 0;
    while (c->in.len - off >= 4) {
        size_t mlen = get_u32(c->in.data + off);
        if (mlen > m->cfg.max_message) {
            jr_logf(JR_LOG_WARN, NULL, "mesh: a peer sent a %zu-byte message (limit %zu), dropping its connection",
                    mlen, m->cfg.max_message);
            m->st.rejected++;
            in_close(c);
            return;
        }
        if (c->in.len - off - 4 < mlen) break;
        m->st.received++;
        m->cb.on_message(c->in.data + off + 4, mlen, m->cb.ud);
        /* The callback may have freed the mesh: memory stays until the
         * close callbacks, but nothing more may be delivered. */
        if (m->closing || c->closing) return;
        off += 4 + mlen;
    }
    if (off) {
        memmove(c->in.data, c->in.data + off, c->in.len - off);
        c->in.len -= off;
    }
    /* A past 1 MiB message must not pin its buffer to an idle connection. */
    if (c->in.len == 0) jr_buf_recycle(&c->in, 4 * READ_CHUNK);
}

static void on_connection(uv_stream_t *server, int status)
{
    jr_mesh *m = server->data;
    if (status != 0) return;
    inconn *c = calloc(1, sizeof *c);
    if (!c) {
        /* Without a handle the connection cannot even be accepted; libuv
         * then pauses the listener until the next accept. Peers keep their
         * messages queued (bounded) meanwhile. */
        jr_logf(JR_LOG_ERROR, NULL, "mesh: out of memory accepting a peer");
        return;
    }
    c->m = m;
    uv_pipe_init(m->loop, &c->pipe, 0);
    c->pipe.data = c;
    c->next = m->ins;
    if (m->ins) m->ins->prev = c;
    m->ins = c;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        in_close(c);
        return;
    }
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || cred.uid != geteuid()) {
        m->st.rejected++;
        in_close(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->pipe, in_alloc, in_read) != 0) in_close(c);
}

/* ------------------------------------------------------------ life cycle */

static void listener_closed(uv_handle_t *h)
{
    jr_mesh *m = h->data;
    m->pending_closes--;
    finish_if_done(m);
}

static void timer_closed(uv_handle_t *h)
{
    peer *p = h->data;
    p->m->pending_closes--;
    finish_if_done(p->m);
}

static int listen_on(jr_mesh *m, char *err, size_t errlen)
{
    struct sockaddr_un a;
    socklen_t alen = make_addr(&a, m->ns, m->self);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "mesh: socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&a, alen) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            snprintf(err, errlen, "mesh: the name @%s-%d is taken (is worker %d of this server still running?)",
                     m->ns, m->self, m->self);
        else snprintf(err, errlen, "mesh: bind @%s-%d: %s", m->ns, m->self, strerror(e));
        return -1;
    }
    uv_pipe_init(m->loop, &m->listener, 0);
    m->listener.data = m;
    int rc = uv_pipe_open(&m->listener, fd);
    if (rc != 0) close(fd); /* not adopted: still ours */
    else rc = uv_listen((uv_stream_t *)&m->listener, 128, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "mesh: listen @%s-%d: %s", m->ns, m->self, uv_strerror(rc));
        return -2; /* the listener handle needs closing */
    }
    return 0;
}

jr_mesh *jr_mesh_new(uv_loop_t *loop, const char *ns, int self, int n, const jr_mesh_config *cfg,
                     const jr_mesh_callbacks *cb, char *err, size_t errlen)
{
    if (!loop || !ns || !cb || !cb->on_message || n < 1 || self < 0 || self >= n) {
        snprintf(err, errlen, "mesh: bad arguments (need a loop, a namespace, on_message and 0 <= self < n)");
        return NULL;
    }
    if (strlen(ns) > NS_MAX || !*ns) {
        snprintf(err, errlen, "mesh: the namespace must have 1 to %d bytes", NS_MAX);
        return NULL;
    }
    jr_mesh *m = calloc(1, sizeof *m);
    peer *peers = calloc((size_t)n, sizeof *peers);
    if (!m || !peers) {
        free(m);
        free(peers);
        snprintf(err, errlen, "mesh: out of memory");
        return NULL;
    }
    m->loop = loop;
    if (cfg) m->cfg = *cfg;
    else jr_mesh_config_defaults(&m->cfg);
    if (!m->cfg.retry_min_ms) m->cfg.retry_min_ms = 1;
    if (m->cfg.retry_max_ms < m->cfg.retry_min_ms) m->cfg.retry_max_ms = m->cfg.retry_min_ms;
    m->cb = *cb;
    strcpy(m->ns, ns);
    m->self = self;
    m->n = n;
    m->peers = peers;

    /* A peer that vanished mid-write must surface as EPIPE, not kill us
     * (the HTTP server does the same unless someone installed a handler). */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);

    int rc = listen_on(m, err, errlen);
    if (rc != 0) {
        if (rc == -2) {
            /* The handle is initialized: it can only go through uv_close. */
            m->closing = 1;
            close_counted(m, (uv_handle_t *)&m->listener, listener_closed);
        } else {
            free(peers);
            free(m);
        }
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        peers[i].m = m;
        peers[i].index = i;
        peers[i].backoff_ms = m->cfg.retry_min_ms;
        if (i == self) continue;
        uv_timer_init(loop, &peers[i].timer);
        peers[i].timer.data = &peers[i];
    }
    return m;
}

void jr_mesh_stats(const jr_mesh *m, jr_mesh_counters *out)
{
    *out = m->st;
}

void jr_mesh_free(jr_mesh *m)
{
    if (!m || m->closing) return;
    m->closing = 1;
    close_counted(m, (uv_handle_t *)&m->listener, listener_closed);
    for (int i = 0; i < m->n; i++) {
        if (i == m->self) continue;
        peer *p = &m->peers[i];
        ring_clear(p);
        close_counted(m, (uv_handle_t *)&p->timer, timer_closed);
        /* A batch in flight is released by its write callback (ECANCELED),
         * which runs before the close callback. */
        if (p->state == P_CONNECTED) {
            p->state = P_CLOSING;
            m->st.peers_connected--;
            close_counted(m, (uv_handle_t *)&p->pipe, peer_closed);
        }
    }
    for (inconn *c = m->ins; c; c = c->next) in_close(c);
}
