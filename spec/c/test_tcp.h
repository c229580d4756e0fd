/* test_tcp.h - raw TCP client plumbing shared by the C tests that talk to
 * real sockets (test_http.c, test_ws.c). */
#ifndef JR_TEST_TCP_H
#define JR_TEST_TCP_H

#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* One read buffer for every client: libuv calls alloc_cb and read_cb back
 * to back, and read callbacks copy what they keep. */
static void tcp_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    static char b[65536];
    (void)h;
    (void)sz;
    buf->base = b;
    buf->len = sizeof b;
}

typedef struct {
    uv_write_t w;
    char data[];
} tcp_wreq;

static void tcp_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* Write a copy of data (the caller's buffer may go at once). */
static void tcp_write_copy(uv_stream_t *s, const void *data, size_t n)
{
    tcp_wreq *w = malloc(sizeof *w + n);
    if (!w) abort();
    memcpy(w->data, data, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->w, s, &b, 1, tcp_written) != 0) free(w);
}

/* An HTTP server of ours on 127.0.0.1, on a free port (test_http.c has
 * its own, with per-test configs). NULL with a message on stderr. */
#include "http.h"
#include <stdio.h>
static inline jr_http_server *tcp_http_listen(uv_loop_t *loop, jr_http_on_request on_request, void *ud)
{
    jr_http_config cfg;
    jr_http_config_defaults(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    char err[256] = "";
    jr_http_server *srv = jr_http_server_start(loop, &cfg, on_request, ud, err, sizeof err, NULL);
    if (!srv) fprintf(stderr, "  http start failed: %s\n", err);
    return srv;
}

#endif
