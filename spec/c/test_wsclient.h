/* test_wsclient.h - a minimal WebSocket client on a uv loop for the C tests
 * that need many real clients (test_wshub.c): it connects, sends the
 * upgrade request, and parses the server's frames out of what it read. It
 * sends nothing after the handshake; waiting is the test's (its WAIT). */
#ifndef JR_TEST_WSCLIENT_H
#define JR_TEST_WSCLIENT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "buf.h"
#include "test_tcp.h"

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    jr_buf in;
    size_t pos;  /* parse position: after the HTTP head, then after each frame taken */
    int status;  /* HTTP status of the handshake answer, 0 until seen */
    int connected, eof, closed;
} wsc;

static void wsc_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    wsc *c = s->data;
    if (n > 0 && jr_buf_append(&c->in, buf->base, (size_t)n) != 0) abort();
    if (n < 0) c->eof = 1;
}

static void wsc_on_connect(uv_connect_t *r, int status)
{
    static const char req[] = "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    wsc *c = r->data;
    c->connected = status == 0 ? 1 : -1;
    if (status != 0) return;
    uv_read_start((uv_stream_t *)&c->tcp, tcp_alloc, wsc_on_read);
    tcp_write_copy((uv_stream_t *)&c->tcp, req, sizeof req - 1);
}

/* Start connecting to 127.0.0.1:port; the upgrade request follows. */
static wsc *wsc_start(uv_loop_t *loop, int port)
{
    wsc *c = calloc(1, sizeof *c);
    if (!c) abort();
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&a, wsc_on_connect);
    return c;
}

/* 1 once the answer's head is in (status set), else 0. */
static int wsc_head(wsc *c)
{
    if (c->status) return 1;
    const char *end = c->in.len ? memmem(c->in.data, c->in.len, "\r\n\r\n", 4) : NULL;
    if (!end) return 0;
    c->status = atoi(c->in.data + 9); /* "HTTP/1.1 101" */
    c->pos = (size_t)(end - c->in.data) + 4;
    return 1;
}

/* Take the next whole server frame: 1 with *op and the payload (pointing
 * into c->in, valid until the next read), 0 when none is complete yet. */
static int wsc_frame(wsc *c, int *op, const char **data, size_t *len)
{
    if (!wsc_head(c)) return 0;
    const unsigned char *p = (const unsigned char *)c->in.data + c->pos;
    size_t have = c->in.len - c->pos, hl = 2;
    if (have < 2) return 0;
    uint64_t n = p[1] & 0x7f;
    if (n >= 126) {
        hl = n == 126 ? 4 : 10;
        if (have < hl) return 0;
        n = 0;
        for (size_t i = 2; i < hl; i++) n = n << 8 | p[i];
    }
    if (have - hl < n) return 0;
    *op = p[0] & 0x0f;
    *data = (const char *)p + hl;
    *len = (size_t)n;
    c->pos += hl + (size_t)n;
    return 1;
}

static void wsc_on_closed(uv_handle_t *h) { ((wsc *)h->data)->closed = 1; }

/* Start closing; free with wsc_free once c->closed. */
static void wsc_close(wsc *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, wsc_on_closed);
}

static void wsc_free(wsc *c)
{
    jr_buf_free(&c->in);
    free(c);
}

#endif
