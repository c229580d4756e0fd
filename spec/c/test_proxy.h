/* test_proxy.h - a TCP proxy in the test's own process, for faults a real
 * server does not produce: g_blackhole = 1 drops what the server sends (a
 * peer that stops answering but keeps the connection), and dead_port()
 * gives a port where nothing listens. Needs test_loop.h's L and
 * test_tcp.h (test_redis.c, test_amqp.c).
 *
 *   proxy_start(server_port);  connect to 127.0.0.1:g_proxy_port
 *   g_blackhole = 1;           ... g_proxy_conns counts live proxied connections;
 *                              g_proxy_up_port is the latest one's local port towards the server
 *   proxy_cut();               closes the latest connection's sockets now (a drop in the
 *                              middle of whatever the client has not written yet)
 *   uv_close((uv_handle_t *)&g_proxy, NULL);   at the end */
#ifndef JR_TEST_PROXY_H
#define JR_TEST_PROXY_H

#include <stdlib.h>
#include <uv.h>

typedef struct pconn {
    uv_tcp_t down, up;
    uv_connect_t creq;
    int closed; /* handles closed so far (frees at 2) */
    int closing;
} pconn;

static uv_tcp_t g_proxy;
static int g_proxy_port, g_upstream_port;
static int g_blackhole; /* drop what the server sends */
static int g_proxy_conns;
static int g_proxy_up_port;
static pconn *g_proxy_latest; /* the latest connection, while open */

static void pconn_closed(uv_handle_t *h)
{
    pconn *p = h->data;
    if (++p->closed == 2) {
        if (g_proxy_latest == p) g_proxy_latest = NULL;
        free(p);
        g_proxy_conns--;
    }
}

static void pconn_close(pconn *p)
{
    if (p->closing) return;
    p->closing = 1;
    uv_close((uv_handle_t *)&p->down, pconn_closed);
    uv_close((uv_handle_t *)&p->up, pconn_closed);
}

static void on_proxy_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    pconn *p = s->data;
    if (n < 0) {
        pconn_close(p);
        return;
    }
    if (n == 0) return;
    if (s == (uv_stream_t *)&p->up) {
        if (!g_blackhole) tcp_write_copy((uv_stream_t *)&p->down, buf->base, (size_t)n);
    } else {
        tcp_write_copy((uv_stream_t *)&p->up, buf->base, (size_t)n);
    }
}

static void on_upstream(uv_connect_t *req, int status)
{
    pconn *p = req->data;
    if (status != 0 || p->closing) {
        pconn_close(p);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&p->up, (struct sockaddr *)&ss, &len) == 0)
        g_proxy_up_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_read_start((uv_stream_t *)&p->down, tcp_alloc, on_proxy_read);
    uv_read_start((uv_stream_t *)&p->up, tcp_alloc, on_proxy_read);
}

static void on_proxy_conn(uv_stream_t *srv, int status)
{
    if (status != 0) return;
    pconn *p = calloc(1, sizeof *p);
    if (!p) abort();
    g_proxy_conns++;
    g_proxy_latest = p;
    uv_tcp_init(L, &p->down);
    uv_tcp_init(L, &p->up);
    p->down.data = p->up.data = p->creq.data = p;
    if (uv_accept(srv, (uv_stream_t *)&p->down) != 0) {
        pconn_close(p);
        return;
    }
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", g_upstream_port, &a);
    if (uv_tcp_connect(&p->creq, &p->up, (const struct sockaddr *)&a, on_upstream) != 0) pconn_close(p);
}

static void proxy_start(int upstream_port)
{
    g_upstream_port = upstream_port;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(L, &g_proxy);
    uv_tcp_bind(&g_proxy, (const struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&g_proxy, 16, on_proxy_conn);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&g_proxy, (struct sockaddr *)&ss, &len);
    g_proxy_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* uv_close closes a TCP handle's socket at once (its callback comes later). */
static inline void proxy_cut(void)
{
    if (g_proxy_latest) pconn_close(g_proxy_latest);
}

/* A port where nothing listens (bound, then closed). */
static int dead_port(void)
{
    uv_tcp_t t;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(L, &t);
    uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(L, UV_RUN_NOWAIT);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

#endif
