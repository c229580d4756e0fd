/* test_ws.c - the WebSocket bridge (core/ws.c) behind our HTTP server.
 *
 * One uv loop holds our HTTP server, the libwebsockets context and raw TCP
 * clients that speak RFC 6455 byte by byte (masked frames built here, server
 * frames parsed here), so what is checked is what a real client sees on the
 * wire. Every wait is on an event with an unref'd guard timer, so a broken
 * test fails instead of hanging. */
#include "buf.h"
#include "http.h"
#include "log.h"
#include "test.h"
#include "test_tcp.h"
#include "ws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static uv_loop_t loop_storage;
static uv_loop_t *L = &loop_storage;

/* ------------------------------------------------------------ waiting */

static uv_timer_t g_guard;
static int g_timed_out;

static void on_guard(uv_timer_t *t) { g_timed_out = 1; }

#define WAIT(cond, ms)                                                                  \
    do {                                                                                \
        g_timed_out = 0;                                                                \
        uv_timer_start(&g_guard, on_guard, (ms), 0);                                    \
        while (!(cond) && !g_timed_out && uv_loop_alive(L)) uv_run(L, UV_RUN_ONCE);     \
        uv_timer_stop(&g_guard);                                                        \
    } while (0)

/* ------------------------------------------------------------ the server under test */

#define MAXC 64

typedef struct {
    jr_http_server *srv;
    jr_ws_ctx *ws;
    int port;
    int adopt_rc;       /* last jr_ws_adopt result */
    int opened, closed, http_answered;
    int close_codes[MAXC];
    jr_ws_conn *last;   /* last opened connection */
    int echo;           /* echo every message back */
    int send_rc;        /* last jr_ws_send result in on_message */
    jr_buf lastmsg;
    int lastmsg_text, nmsgs;
} fixture;

static fixture F;

static void on_open(jr_ws_conn *c, void *ud)
{
    F.opened++;
    F.last = c;
}

static void on_message(jr_ws_conn *c, const char *data, size_t len, int is_text, void *ud)
{
    F.nmsgs++;
    jr_buf_reset(&F.lastmsg);
    jr_buf_append(&F.lastmsg, data, len);
    F.lastmsg_text = is_text;
    if (F.echo) F.send_rc = jr_ws_send(c, data, len, is_text);
}

static void on_close(jr_ws_conn *c, int code, void *ud)
{
    if (F.closed < MAXC) F.close_codes[F.closed] = code;
    F.closed++;
    if (F.last == c) F.last = NULL;
}

static void on_request(jr_http_req *req, void *ud)
{
    if (jr_http_req_is_upgrade(req)) {
        F.adopt_rc = jr_ws_adopt(F.ws, req, NULL, NULL);
        if (F.adopt_rc == JR_WS_OK || F.adopt_rc == JR_WS_EADOPT) return;
        const char *msg = F.adopt_rc == JR_WS_ETOOBIG ? "too much data" : "bad websocket handshake";
        jr_http_respond(req, 400, NULL, 0, msg, strlen(msg));
    } else {
        jr_http_respond(req, 200, NULL, 0, "plain", 5);
    }
    F.http_answered++;
}

static int setup(const jr_ws_config *wcfg)
{
    jr_buf_free(&F.lastmsg);
    memset(&F, 0, sizeof F);
    F.echo = 1;
    jr_http_config cfg;
    jr_http_config_defaults(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    char err[256] = "";
    F.srv = jr_http_server_start(L, &cfg, on_request, NULL, err, sizeof err, NULL);
    if (!F.srv) {
        fprintf(stderr, "  http start failed: %s\n", err);
        return 0;
    }
    F.port = jr_http_server_port(F.srv);
    jr_ws_callbacks cb = {on_open, on_message, on_close, NULL};
    F.ws = jr_ws_ctx_new(L, wcfg, &cb, err, sizeof err);
    if (!F.ws) {
        fprintf(stderr, "  ws start failed: %s\n", err);
        return 0;
    }
    return 1;
}

/* Free both, then run the loop until every handle is closed: the guard is
 * unref'd, so the loop ends exactly when lws and the server let go. */
static void teardown(void)
{
    if (F.ws) jr_ws_ctx_free(F.ws);
    if (F.srv) jr_http_server_free(F.srv);
    F.ws = NULL;
    F.srv = NULL;
    WAIT(!uv_loop_alive(L), 5000);
    CHECK(!uv_loop_alive(L));
}

/* ------------------------------------------------------------ a raw WebSocket client */

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    jr_buf in;
    size_t pos;          /* parse position in `in` (after the HTTP head once seen) */
    int status;          /* HTTP status of the handshake answer, 0 until seen */
    char accept[64];     /* Sec-WebSocket-Accept */
    int connected, connect_status, eof, closing, closed;
} client;

typedef struct {
    int fin, opcode;
    jr_buf payload;
} frame;

static void cl_closed(uv_handle_t *h) { ((client *)h->data)->closed = 1; }

static void cl_close(client *cl)
{
    if (!cl->closing) {
        cl->closing = 1;
        uv_close((uv_handle_t *)&cl->tcp, cl_closed);
    }
}

static void cl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *cl = s->data;
    if (n > 0) {
        if (jr_buf_append(&cl->in, buf->base, (size_t)n)) abort();
    } else if (n < 0) {
        cl->eof = 1;
        uv_read_stop(s);
    }
}

static void cl_on_connect(uv_connect_t *r, int status)
{
    client *cl = r->data;
    cl->connect_status = status;
    cl->connected = 1;
    if (status == 0) uv_read_start((uv_stream_t *)&cl->tcp, tcp_alloc, cl_read);
}

static client *cl_new(int rcvbuf)
{
    client *cl = calloc(1, sizeof *cl);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", F.port, &a);
    uv_tcp_init(L, &cl->tcp);
    cl->tcp.data = cl;
    cl->creq.data = cl;
    if (rcvbuf) {
        int sz = rcvbuf;
        uv_recv_buffer_size((uv_handle_t *)&cl->tcp, &sz);
    }
    uv_tcp_connect(&cl->creq, &cl->tcp, (const struct sockaddr *)&a, cl_on_connect);
    WAIT(cl->connected, 2000);
    CHECK_EQ_INT(cl->connect_status, 0);
    return cl;
}

static void cl_free(client *cl)
{
    cl_close(cl);
    WAIT(cl->closed, 2000);
    jr_buf_free(&cl->in);
    free(cl);
}

static void cl_sendn(client *cl, const void *s, size_t n)
{
    tcp_write_copy((uv_stream_t *)&cl->tcp, s, n);
}

/* The sample handshake of RFC 6455 §1.3 and its expected accept value. */
static const char UPGRADE[] = "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n"
                              "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                              "Cookie: a=1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n";
static const char ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/* Append one client frame (masked unless mask == 0) to b. */
static void put_frame(jr_buf *b, int fin, int opcode, const void *data, size_t len, int mask)
{
    unsigned char h[14];
    size_t hl = 0;
    h[hl++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    unsigned char mbit = mask ? 0x80 : 0;
    if (len < 126) {
        h[hl++] = (unsigned char)(mbit | len);
    } else if (len < 65536) {
        h[hl++] = mbit | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = mbit | 127;
        for (int i = 7; i >= 0; i--) h[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (mask) {
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    jr_buf_append(b, h, hl);
    size_t at = b->len;
    jr_buf_append(b, data, len);
    if (mask)
        for (size_t i = 0; i < len; i++) b->data[at + i] ^= (char)key[i % 4];
}

static void cl_frame(client *cl, int fin, int opcode, const void *data, size_t len, int mask)
{
    jr_buf b;
    jr_buf_init(&b);
    put_frame(&b, fin, opcode, data, len, mask);
    cl_sendn(cl, b.data, b.len);
    jr_buf_free(&b);
}

static void cl_close_frame(client *cl, int code)
{
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    cl_frame(cl, 1, 8, p, 2, 1);
}

/* Parse the HTTP answer head once it is complete. */
static int head_seen(client *cl)
{
    if (cl->status) return 1;
    if (!cl->in.len) return 0;
    const char *end = memmem(cl->in.data, cl->in.len, "\r\n\r\n", 4);
    if (!end) return 0;
    cl->status = atoi(cl->in.data + 9);
    const char *a = memmem(cl->in.data, (size_t)(end - cl->in.data), "Sec-WebSocket-Accept: ", 22);
    if (a) {
        a += 22;
        size_t n = 0;
        while (a[n] != '\r' && n + 1 < sizeof cl->accept) n++;
        memcpy(cl->accept, a, n);
        cl->accept[n] = '\0';
    }
    cl->pos = (size_t)(end - cl->in.data) + 4;
    return 1;
}

/* Take one complete server frame from cl->in into f (1), or 0 if none yet. */
static int next_frame(client *cl, frame *f)
{
    if (!head_seen(cl)) return 0;
    const unsigned char *p = (const unsigned char *)cl->in.data + cl->pos;
    size_t avail = cl->in.len - cl->pos, hl = 2;
    if (avail < 2) return 0;
    if (p[1] & 0x80) return -1; /* servers must not mask */
    uint64_t len = p[1] & 0x7f;
    if (len == 126) {
        if (avail < 4) return 0;
        len = ((uint64_t)p[2] << 8) | p[3];
        hl = 4;
    } else if (len == 127) {
        if (avail < 10) return 0;
        len = 0;
        for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
        hl = 10;
    }
    if (avail < hl + len) return 0;
    f->fin = (p[0] & 0x80) != 0;
    f->opcode = p[0] & 0x0f;
    jr_buf_reset(&f->payload);
    jr_buf_append(&f->payload, p + hl, (size_t)len);
    cl->pos += hl + (size_t)len;
    return 1;
}

/* Wait for the next frame and check its opcode and payload (a string). */
#define EXPECT_FRAME(cl, op, str)                                       \
    do {                                                                \
        frame _f = {0};                                                 \
        CHECK(wait_frame((cl), &_f));                                   \
        CHECK_EQ_INT(_f.opcode, (op));                                  \
        CHECK_EQ_MEM(_f.payload.data ? _f.payload.data : "", _f.payload.len, (str)); \
        jr_buf_free(&_f.payload);                                       \
    } while (0)

/* Wait for the next frame (fails the test on timeout). */
static int wait_frame(client *cl, frame *f)
{
    int r = 0;
    WAIT((r = next_frame(cl, f)) != 0 || cl->eof, 3000);
    if (r == 0) r = next_frame(cl, f);
    return r == 1;
}

static int close_code_of(const frame *f)
{
    if (f->opcode != 8 || f->payload.len < 2) return -1;
    const unsigned char *p = (const unsigned char *)f->payload.data;
    return (p[0] << 8) | p[1];
}

/* Connect, send the upgrade request (with extra bytes pipelined behind it,
 * in the same write), and wait for the handshake answer. */
static client *ws_connect(const void *pipelined, size_t plen)
{
    client *cl = cl_new(0);
    jr_buf b;
    jr_buf_init(&b);
    jr_buf_append(&b, UPGRADE, sizeof UPGRADE - 1);
    if (plen) jr_buf_append(&b, pipelined, plen);
    cl_sendn(cl, b.data, b.len);
    jr_buf_free(&b);
    WAIT(head_seen(cl) || cl->eof, 3000);
    head_seen(cl);
    return cl;
}

/* ------------------------------------------------------------ tests */

TEST(handshake_with_pipelined_frame)
{
    CHECK(setup(NULL));
    jr_buf b;
    jr_buf_init(&b);
    put_frame(&b, 1, 1, "hello", 5, 1);
    client *cl = ws_connect(b.data, b.len);
    jr_buf_free(&b);
    CHECK_EQ_INT(F.adopt_rc, JR_WS_OK);
    CHECK_EQ_INT(cl->status, 101);
    CHECK_EQ_STR(cl->accept, ACCEPT);
    frame f = {0};
    CHECK(wait_frame(cl, &f));
    CHECK_EQ_INT(f.opcode, 1);
    CHECK(f.fin);
    CHECK_EQ_MEM(f.payload.data, f.payload.len, "hello");
    CHECK_EQ_INT(F.opened, 1);
    CHECK_EQ_INT(F.send_rc, JR_WS_OK);
    CHECK_EQ_INT(jr_ws_ctx_connections(F.ws), 1);
    CHECK_EQ_INT(F.http_answered, 0);
    jr_buf_free(&f.payload);
    cl_free(cl);
    WAIT(F.closed == 1, 3000);
    CHECK_EQ_INT(F.closed, 1);
    CHECK_EQ_INT(F.close_codes[0], 1006); /* TCP gone without a close frame */
    CHECK_EQ_INT(jr_ws_ctx_connections(F.ws), 0);
    teardown();
}

TEST(echo_text_binary_fragmented_and_large)
{
    CHECK(setup(NULL));
    client *cl = ws_connect(NULL, 0);
    CHECK_EQ_INT(cl->status, 101);
    frame f = {0};
    cl_frame(cl, 1, 1, "h\xc3\xa9llo", 6, 1); /* "héllo", valid UTF-8 */
    EXPECT_FRAME(cl, 1, "h\xc3\xa9llo");

    const char bin[] = {0, 1, 2, (char)0xff, (char)0xfe};
    cl_frame(cl, 1, 2, bin, sizeof bin, 1);
    CHECK(wait_frame(cl, &f));
    CHECK_EQ_INT(f.opcode, 2);
    CHECK(f.payload.len == sizeof bin && memcmp(f.payload.data, bin, sizeof bin) == 0);
    CHECK_EQ_INT(F.lastmsg_text, 0);

    /* one message in three frames, a ping in between: one on_message */
    int before = F.nmsgs;
    cl_frame(cl, 0, 1, "frag", 4, 1);
    cl_frame(cl, 1, 9, "p", 1, 1);
    cl_frame(cl, 0, 0, "men", 3, 1);
    cl_frame(cl, 1, 0, "ted", 3, 1);
    EXPECT_FRAME(cl, 10, "p");
    EXPECT_FRAME(cl, 1, "fragmented");
    CHECK_EQ_INT(F.nmsgs, before + 1);

    /* 200000 bytes: 64-bit length, several lws receive chunks */
    size_t big = 200000;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++) data[i] = (char)(i * 7);
    cl_frame(cl, 1, 2, data, big, 1);
    CHECK(wait_frame(cl, &f));
    CHECK_EQ_INT(f.opcode, 2);
    CHECK(f.payload.len == big && memcmp(f.payload.data, data, big) == 0);
    free(data);

    /* empty text message */
    cl_frame(cl, 1, 1, "", 0, 1);
    EXPECT_FRAME(cl, 1, "");
    jr_buf_free(&f.payload);
    cl_free(cl);
    teardown();
}

TEST(ping_pong)
{
    CHECK(setup(NULL));
    client *cl = ws_connect(NULL, 0);
    cl_frame(cl, 1, 9, "are you there", 13, 1);
    EXPECT_FRAME(cl, 10, "are you there");
    CHECK_EQ_INT(F.nmsgs, 0); /* control frames are not messages */
    cl_free(cl);
    teardown();
}

TEST(client_close_handshake_1000)
{
    CHECK(setup(NULL));
    client *cl = ws_connect(NULL, 0);
    frame f = {0};
    cl_close_frame(cl, 1000);
    CHECK(wait_frame(cl, &f));
    CHECK_EQ_INT(close_code_of(&f), 1000);
    WAIT(cl->eof, 3000); /* the server closes the TCP connection after the echo */
    CHECK(cl->eof);
    WAIT(F.closed == 1, 3000);
    CHECK_EQ_INT(F.close_codes[0], 1000);
    jr_buf_free(&f.payload);
    cl_free(cl);
    teardown();
}

TEST(server_close_with_code_and_reason)
{
    CHECK(setup(NULL));
    client *cl = ws_connect(NULL, 0);
    WAIT(F.last != NULL, 3000);
    CHECK(F.last != NULL);
    CHECK_EQ_INT(jr_ws_close(F.last, 1005, NULL), JR_WS_EINVALID);
    CHECK_EQ_INT(jr_ws_close(F.last, 999, NULL), JR_WS_EINVALID);
    CHECK_EQ_INT(jr_ws_close(F.last, 4001, "bye"), JR_WS_OK);
    CHECK_EQ_INT(jr_ws_send(F.last, "x", 1, 1), JR_WS_ECLOSED);
    CHECK_EQ_INT(jr_ws_close(F.last, 4001, "bye"), JR_WS_ECLOSED);
    frame f = {0};
    CHECK(wait_frame(cl, &f));
    CHECK_EQ_INT(close_code_of(&f), 4001);
    CHECK(f.payload.len == 5 && memcmp(f.payload.data + 2, "bye", 3) == 0);
    cl_close_frame(cl, 4001);
    WAIT(F.closed == 1, 3000);
    CHECK_EQ_INT(F.close_codes[0], 4001);
    jr_buf_free(&f.payload);
    cl_free(cl);
    teardown();
}

/* A protocol error gets its RFC 6455 close code, and the server keeps
 * serving another client afterwards. */
static void expect_close_code(const void *frame_bytes, size_t n, int code)
{
    client *cl = ws_connect(NULL, 0);
    CHECK_EQ_INT(cl->status, 101);
    cl_sendn(cl, frame_bytes, n);
    frame f = {0};
    int got = -1;
    while (wait_frame(cl, &f)) {
        if (f.opcode == 8) {
            got = close_code_of(&f);
            break;
        }
    }
    CHECK_EQ_INT(got, code);
    /* lws waits for our answer to its close frame, then ends the TCP connection */
    cl_close_frame(cl, code);
    WAIT(cl->eof, 3000);
    CHECK(cl->eof);
    jr_buf_free(&f.payload);
    cl_free(cl);

    client *ok = ws_connect(NULL, 0);
    cl_frame(ok, 1, 1, "still here", 10, 1);
    EXPECT_FRAME(ok, 1, "still here");
    cl_free(ok);
}

/* KNOWN GAP, measured: RFC 6455 §5.1 says a server MUST close the
 * connection on an unmasked client frame (1002), but libwebsockets 4.1.6's
 * server parser records the mask bit and never checks it (its client parser
 * does check the reverse), and no public API exposes the bit. The frame is
 * accepted as if masked with a zero key. This test pins that behaviour so
 * the day lws (or our own framer) rejects it, the test says so; the issue's
 * requirement (1002) is not met by this bridge. */
TEST(unmasked_frame_is_accepted_by_lws_known_gap)
{
    CHECK(setup(NULL));
    client *cl = ws_connect(NULL, 0);
    CHECK_EQ_INT(cl->status, 101);
    cl_frame(cl, 1, 1, "naked", 5, 0);
    EXPECT_FRAME(cl, 1, "naked"); /* echoed, not closed with 1002 */
    cl_free(cl);
    teardown();
}

TEST(bad_opcode_gets_1002)
{
    CHECK(setup(NULL));
    jr_buf b;
    jr_buf_init(&b);
    put_frame(&b, 1, 3, "x", 1, 1); /* 0x3 is reserved */
    expect_close_code(b.data, b.len, 1002);
    jr_buf_free(&b);
    teardown();
}

TEST(fragmented_control_frame_gets_1002)
{
    CHECK(setup(NULL));
    jr_buf b;
    jr_buf_init(&b);
    put_frame(&b, 0, 9, "x", 1, 1); /* a ping without FIN */
    expect_close_code(b.data, b.len, 1002);
    jr_buf_free(&b);
    teardown();
}

TEST(invalid_utf8_gets_1007)
{
    CHECK(setup(NULL));
    jr_buf b;
    jr_buf_init(&b);
    put_frame(&b, 1, 1, "ab\xc3\x28", 4, 1); /* 0xc3 then a non-continuation byte */
    expect_close_code(b.data, b.len, 1007);
    jr_buf_free(&b);
    CHECK_EQ_INT(F.nmsgs, 1); /* only the "still here" of the second client */
    teardown();
}

TEST(oversized_message_gets_1009)
{
    jr_ws_config cfg;
    jr_ws_config_defaults(&cfg);
    cfg.max_message_size = 1000;
    CHECK(setup(&cfg));
    /* in two fragments, each under the limit: the sum is what counts */
    char data[600];
    memset(data, 'a', sizeof data);
    jr_buf b;
    jr_buf_init(&b);
    put_frame(&b, 0, 2, data, sizeof data, 1);
    put_frame(&b, 1, 0, data, sizeof data, 1);
    expect_close_code(b.data, b.len, 1009);
    jr_buf_free(&b);
    CHECK_EQ_INT(F.close_codes[0], 1009);
    teardown();
}

TEST(bad_handshake_is_answered_by_http)
{
    CHECK(setup(NULL));
    client *cl = cl_new(0);
    static const char bad[] = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    cl_sendn(cl, bad, sizeof bad - 1); /* no Sec-WebSocket-Key */
    WAIT(head_seen(cl) || cl->eof, 3000);
    CHECK_EQ_INT(cl->status, 400);
    CHECK_EQ_INT(F.adopt_rc, JR_WS_EINVALID);
    cl_free(cl);

    cl = cl_new(0);
    static const char v8[] = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    cl_sendn(cl, v8, sizeof v8 - 1);
    WAIT(head_seen(cl) || cl->eof, 3000);
    CHECK_EQ_INT(cl->status, 400);
    cl_free(cl);

    /* too much pipelined behind the handshake for lws's 2048-byte buffer */
    char junk[4000];
    memset(junk, 'j', sizeof junk);
    cl = ws_connect(junk, sizeof junk);
    CHECK_EQ_INT(cl->status, 400);
    CHECK_EQ_INT(F.adopt_rc, JR_WS_ETOOBIG);
    cl_free(cl);

    /* plain HTTP still works */
    cl = cl_new(0);
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    cl_sendn(cl, get, sizeof get - 1);
    WAIT(head_seen(cl) || cl->eof, 3000);
    CHECK_EQ_INT(cl->status, 200);
    cl_free(cl);
    CHECK_EQ_INT(F.opened, 0);
    CHECK_EQ_INT(jr_ws_ctx_connections(F.ws), 0);
    teardown();
}

/* A client that stops reading: the send queue fills, jr_ws_send reports
 * EFULL, and the connection is closed (1008) within close_timeout_s
 * although the peer never reads the close frame. */
TEST(slow_reader_is_closed_1008)
{
    jr_ws_config cfg;
    jr_ws_config_defaults(&cfg);
    cfg.max_send_queue = 256 * 1024;
    cfg.close_timeout_s = 1;
    CHECK(setup(&cfg));
    F.echo = 0;
    client *cl = cl_new(4096);
    cl_sendn(cl, UPGRADE, sizeof UPGRADE - 1);
    WAIT(head_seen(cl) || cl->eof, 3000);
    CHECK_EQ_INT(cl->status, 101);
    WAIT(F.last != NULL, 3000);
    uv_read_stop((uv_stream_t *)&cl->tcp);
    jr_ws_conn *c = F.last;
    static char chunk[16384];
    int rc = JR_WS_OK;
    size_t sent = 0;
    /* run the loop between sends so lws writes until the kernel buffers are full */
    while (rc == JR_WS_OK && sent < (size_t)64 << 20) {
        rc = jr_ws_send(c, chunk, sizeof chunk, 0);
        sent += sizeof chunk;
        uv_run(L, UV_RUN_NOWAIT);
    }
    CHECK_EQ_INT(rc, JR_WS_EFULL);
    CHECK(sent < (size_t)64 << 20);
    WAIT(F.closed == 1, 5000);
    CHECK_EQ_INT(F.closed, 1);
    CHECK_EQ_INT(F.close_codes[0], 1008);
    cl_free(cl);
    teardown();
}

TEST(many_connections)
{
    CHECK(setup(NULL));
    enum { N = 40 };
    client *cls[N];
    for (int i = 0; i < N; i++) {
        jr_buf b;
        jr_buf_init(&b);
        char msg[16];
        int n = snprintf(msg, sizeof msg, "c%d", i);
        put_frame(&b, 1, 1, msg, (size_t)n, 1);
        cls[i] = ws_connect(b.data, b.len);
        jr_buf_free(&b);
    }
    WAIT(F.opened == N, 3000);
    CHECK_EQ_INT(F.opened, N);
    CHECK_EQ_INT(jr_ws_ctx_connections(F.ws), N);
    frame f = {0};
    for (int i = 0; i < N; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "c%d", i);
        CHECK(wait_frame(cls[i], &f));
        CHECK(f.payload.len == (size_t)n && memcmp(f.payload.data, msg, (size_t)n) == 0);
    }
    jr_buf_free(&f.payload);
    for (int i = 0; i < N; i++) cl_free(cls[i]);
    WAIT(F.closed == N, 3000);
    CHECK_EQ_INT(F.closed, N);
    teardown();
}

/* Freeing the context with open connections: each gets on_close(1001), the
 * client sees its socket end, and every uv handle of lws is closed (the
 * teardown's loop ends). */
TEST(free_with_open_connections)
{
    CHECK(setup(NULL));
    client *a = ws_connect(NULL, 0), *b = ws_connect(NULL, 0);
    WAIT(F.opened == 2, 3000);
    jr_ws_ctx_free(F.ws);
    F.ws = NULL;
    CHECK_EQ_INT(F.closed, 2);
    CHECK_EQ_INT(F.close_codes[0], 1001);
    CHECK_EQ_INT(F.close_codes[1], 1001);
    WAIT(a->eof && b->eof, 3000);
    CHECK(a->eof && b->eof);
    cl_free(a);
    cl_free(b);
    teardown();
}

int main(void)
{
    jr_log_set_level(JR_LOG_WARN);
    uv_loop_init(L);
    uv_timer_init(L, &g_guard);
    uv_unref((uv_handle_t *)&g_guard);

    RUN(handshake_with_pipelined_frame);
    RUN(echo_text_binary_fragmented_and_large);
    RUN(ping_pong);
    RUN(client_close_handshake_1000);
    RUN(server_close_with_code_and_reason);
    RUN(unmasked_frame_is_accepted_by_lws_known_gap);
    RUN(bad_opcode_gets_1002);
    RUN(fragmented_control_frame_gets_1002);
    RUN(invalid_utf8_gets_1007);
    RUN(oversized_message_gets_1009);
    RUN(bad_handshake_is_answered_by_http);
    RUN(slow_reader_is_closed_1008);
    RUN(many_connections);
    RUN(free_with_open_connections);

    jr_buf_free(&F.lastmsg);
    uv_close((uv_handle_t *)&g_guard, NULL);
    uv_run(L, UV_RUN_DEFAULT);
    int rc = uv_loop_close(L);
    if (rc != 0) {
        printf("not ok - loop still has handles: %s\n", uv_strerror(rc));
        t_failed++;
    }
    return test_summary();
}
