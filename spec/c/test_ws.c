/* test_ws.c - WebSocket connections (core/ws.c) behind our HTTP server.
 *
 * One uv loop holds our HTTP server, the WebSocket context and raw TCP
 * clients that speak RFC 6455 byte by byte (masked frames built here, server
 * frames parsed here), so what is checked is what a real client sees on the
 * wire. Every wait is on an event with an unref'd guard timer, so a broken
 * test fails instead of hanging. */
#include "buf.h"
#include "http.h"
#include "log.h"
#include "test.h"
#include "test_tcp.h"
#include "test_wsframes.h"
#include "ws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "test_loop.h"

/* ------------------------------------------------------------ the server under test */

#define MAXC 64

typedef struct {
    jr_http_server *srv;
    jr_ws_ctx *ws;
    int port;
    int adopt_rc;       /* last jr_ws_adopt result */
    int opened, closed, http_answered;
    int open_in_adopt;  /* on_open ran inside jr_ws_adopt (it must not) */
    int close_codes[MAXC];
    char close_reason[128];
    jr_ws_conn *last;   /* last opened connection */
    jr_ws_conn *conns[MAXC]; /* in the order opened */
    int echo;           /* echo every message back */
    int send_rc;        /* last jr_ws_send result in on_message */
    jr_buf lastmsg;
    int lastmsg_text, nmsgs;
    int pause_at;       /* pause the connection when message #pause_at arrives */
    const jr_ws_config *conn_cfg;          /* per-connection override for jr_ws_adopt */
    const jr_http_header *extra;           /* headers for the 101 */
    size_t nextra;
} fixture;

static fixture F;

static void on_open(jr_ws_conn *c, void *ud)
{
    if (F.opened < MAXC) F.conns[F.opened] = c;
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
    if (F.pause_at && F.nmsgs == F.pause_at) jr_ws_pause(c);
}

static void on_close(jr_ws_conn *c, int code, const char *reason, size_t rlen, void *ud)
{
    snprintf(F.close_reason, sizeof F.close_reason, "%.*s", (int)rlen, reason);
    if (F.closed < MAXC) F.close_codes[F.closed] = code;
    F.closed++;
    if (F.last == c) F.last = NULL;
}

static void on_request(jr_http_req *req, void *ud)
{
    if (jr_http_req_is_upgrade(req)) {
        int before = F.opened;
        F.adopt_rc = jr_ws_adopt(F.ws, req, F.conn_cfg, F.extra, F.nextra, NULL, NULL);
        if (F.opened != before) F.open_in_adopt = 1;
        if (F.adopt_rc == JR_WS_OK) return;
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
    F.srv = tcp_http_listen(L, on_request, NULL);
    if (!F.srv) return 0;
    F.port = jr_http_server_port(F.srv);
    char err[256] = "";
    jr_ws_callbacks cb = {on_open, on_message, on_close, NULL};
    F.ws = jr_ws_ctx_new(L, wcfg, &cb, err, sizeof err);
    if (!F.ws) {
        fprintf(stderr, "  ws start failed: %s\n", err);
        return 0;
    }
    return 1;
}

/* The default config with these timeouts (ms). */
static jr_ws_config timeouts(unsigned ping, unsigned idle, unsigned close_ms)
{
    jr_ws_config cfg;
    jr_ws_config_defaults(&cfg);
    cfg.ping_interval_ms = ping;
    cfg.idle_timeout_ms = idle;
    cfg.close_timeout_ms = close_ms;
    return cfg;
}

/* Free both, then run the loop until every handle is closed: the guard is
 * unref'd, so the loop ends exactly when the context and the server let go. */
static void teardown(void)
{
    CHECK_EQ_INT(F.open_in_adopt, 0);
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
    uv_tcp_init_ex(L, &cl->tcp, AF_INET); /* the socket exists now: its buffer size can be set */
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
    char p[2];
    cl_frame(cl, 1, 8, p, close_payload(p, code, NULL), 1);
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

/* Wait for a close frame with this code. */
static void expect_close_frame(client *cl, int code)
{
    frame f = {0};
    CHECK(wait_frame(cl, &f));
    CHECK_EQ_INT(close_code_of(&f), code);
    jr_buf_free(&f.payload);
}

/* Connect, send the upgrade request (with extra bytes pipelined behind it,
 * in the same write), and wait for the handshake answer. */
static client *ws_connect_rcvbuf(const void *pipelined, size_t plen, int rcvbuf)
{
    client *cl = cl_new(rcvbuf);
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

static client *ws_connect(const void *pipelined, size_t plen)
{
    return ws_connect_rcvbuf(pipelined, plen, 0);
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
    jr_ws_counters k; /* what the built-in metrics read */
    jr_ws_ctx_stats(F.ws, &k);
    CHECK_EQ_INT(k.opened, 1);
    CHECK_EQ_INT(k.received, 1);
    CHECK_EQ_INT(k.sent, 1); /* the echo */
    CHECK_EQ_INT(k.slow_closed, 0);
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

    /* 200000 bytes: 64-bit length, several reads */
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

/* The client closes with a code and a reason: the server echoes the code,
 * on_close gets both; a close frame without a code is echoed empty and
 * reported as 1005. */
TEST(client_close_with_reason_and_without_code)
{
    CHECK(setup(NULL));
    client *cl = ws_connect(NULL, 0);
    char p[64];
    cl_frame(cl, 1, 8, p, close_payload(p, 4000, "done here"), 1);
    EXPECT_FRAME(cl, 8, "\x0f\xa0"); /* 4000, no reason */
    WAIT(F.closed == 1, 3000);
    CHECK_EQ_INT(F.close_codes[0], 4000);
    CHECK_EQ_STR(F.close_reason, "done here");
    WAIT(cl->eof, 3000);
    CHECK(cl->eof);
    cl_free(cl);

    cl = ws_connect(NULL, 0);
    cl_frame(cl, 1, 8, NULL, 0, 1);
    EXPECT_FRAME(cl, 8, "");
    WAIT(F.closed == 2, 3000);
    CHECK_EQ_INT(F.close_codes[1], 1005);
    cl_free(cl);
    teardown();
}

TEST(server_close_with_code_and_reason)
{
    CHECK(setup(NULL));
    client *cl = ws_connect(NULL, 0);
    WAIT(F.last != NULL, 3000);
    CHECK(F.last != NULL);
    char r124[124];
    memset(r124, 'r', sizeof r124);
    CHECK_EQ_INT(jr_ws_close(F.last, 1005, NULL, 0), JR_WS_EINVALID);
    CHECK_EQ_INT(jr_ws_close(F.last, 999, NULL, 0), JR_WS_EINVALID);
    CHECK_EQ_INT(jr_ws_close(F.last, 1000, r124, sizeof r124), JR_WS_EINVALID);
    CHECK_EQ_INT(jr_ws_close(F.last, 2000, NULL, 0), JR_WS_EINVALID);   /* unassigned */
    CHECK_EQ_INT(jr_ws_close(F.last, 1000, "\xff", 1), JR_WS_EINVALID); /* reason not UTF-8 */
    CHECK_EQ_INT(jr_ws_close(F.last, 4001, "bye", 3), JR_WS_OK);
    CHECK_EQ_INT(jr_ws_send(F.last, "x", 1, 1), JR_WS_ECLOSED);
    CHECK_EQ_INT(jr_ws_close(F.last, 4001, "bye", 3), JR_WS_ECLOSED);
    frame f = {0};
    CHECK(wait_frame(cl, &f));
    CHECK_EQ_INT(close_code_of(&f), 4001);
    CHECK(f.payload.len == 5 && memcmp(f.payload.data + 2, "bye", 3) == 0);
    /* data the client sends meanwhile is dropped */
    cl_frame(cl, 1, 1, "late", 4, 1);
    CHECK_EQ_INT(F.closed, 0); /* on_close waits for the peer's answer */
    cl_close_frame(cl, 1000);
    WAIT(F.closed == 1, 3000);
    CHECK_EQ_INT(F.close_codes[0], 4001); /* ours, not the answer's */
    CHECK_EQ_STR(F.close_reason, "");
    CHECK_EQ_INT(F.nmsgs, 0);
    WAIT(cl->eof, 3000);
    CHECK(cl->eof);
    jr_buf_free(&f.payload);
    cl_free(cl);
    teardown();
}

/* A peer that never answers our close frame is dropped after
 * close_timeout_ms; on_close reports our code. */
TEST(server_close_unanswered_times_out)
{
    jr_ws_config cfg = timeouts(30000, 60000, 60);
    CHECK(setup(&cfg));
    client *cl = ws_connect(NULL, 0);
    WAIT(F.last != NULL, 3000);
    CHECK_EQ_INT(jr_ws_close(F.last, 1000, NULL, 0), JR_WS_OK);
    EXPECT_FRAME(cl, 8, "\x03\xe8");
    WAIT(cl->eof, 3000); /* no answer from us: the server ends the TCP connection */
    CHECK(cl->eof);
    CHECK_EQ_INT(F.closed, 1);
    CHECK_EQ_INT(F.close_codes[0], 1000);
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
    /* on_close has the same code, and the server ends the TCP connection
     * (whether or not the client answers, it does here) */
    CHECK(F.closed >= 1 && F.close_codes[F.closed - 1] == code);
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

/* RFC 6455 §5.1: a server MUST close the connection on an unmasked client
 * frame (libwebsockets 4.1.6, which this module replaced, echoed it). */
TEST(unmasked_frame_gets_1002)
{
    CHECK(setup(NULL));
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 1, 1, "naked", 5, 0);
    expect_close_code(b.data, b.len, 1002);
    jr_buf_free(&b);
    CHECK_EQ_INT(F.nmsgs, 1); /* only the "still here" of the second client */
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

    /* 101 headers with CR/LF: refused before anything is sent */
    jr_http_header bad_extra = {"Sec-WebSocket-Protocol", 22, "a\r\nX: y", 8};
    F.extra = &bad_extra;
    F.nextra = 1;
    cl = ws_connect(NULL, 0);
    CHECK_EQ_INT(cl->status, 400);
    CHECK_EQ_INT(F.adopt_rc, JR_WS_EINVALID);
    cl_free(cl);
    F.extra = NULL;
    F.nextra = 0;
    CHECK_EQ_INT(F.opened, 0);
    CHECK_EQ_INT(jr_ws_ctx_connections(F.ws), 0);

    /* junk pipelined behind a good handshake is adopted, then read as
     * frames: 'j' (0x6a) has reserved bits set */
    char junk[4000];
    memset(junk, 'j', sizeof junk);
    cl = ws_connect(junk, sizeof junk);
    CHECK_EQ_INT(cl->status, 101);
    expect_close_frame(cl, 1002);
    WAIT(cl->eof, 3000);
    CHECK(cl->eof);
    cl_free(cl);
    CHECK_EQ_INT(F.close_codes[0], 1002);
    F.opened = 0;

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
/* A server with this max_send_queue and a connected client that does not
 * read (a small receive buffer, reading stopped). */
static client *non_reading_client(size_t max_send_queue)
{
    jr_ws_config cfg;
    jr_ws_config_defaults(&cfg);
    cfg.max_send_queue = max_send_queue;
    CHECK(setup(&cfg));
    F.echo = 0;
    client *cl = ws_connect_rcvbuf(NULL, 0, 4096);
    CHECK_EQ_INT(cl->status, 101);
    WAIT(F.last != NULL, 3000);
    uv_read_stop((uv_stream_t *)&cl->tcp);
    return cl;
}

/* on_close reports the full send queue (it comes from the loop). */
static void expect_closed_queue_full(void)
{
    WAIT(F.closed == 1, 5000);
    CHECK_EQ_INT(F.closed, 1);
    CHECK_EQ_INT(F.close_codes[0], 1008);
    CHECK_EQ_STR(F.close_reason, "send queue full");
}

TEST(slow_reader_is_closed_1008)
{
    jr_ws_config cfg;
    jr_ws_config_defaults(&cfg);
    cfg.max_send_queue = 256 * 1024;
    client *cl = non_reading_client(cfg.max_send_queue);
    jr_ws_conn *c = F.last;
    static char chunk[16384];
    int rc = JR_WS_OK;
    size_t sent = 0, oks = 0;
    size_t most = 0;
    /* run the loop between sends so libuv writes until the kernel buffers
     * are full; what they do not take is queued, up to the limit */
    while (sent < (size_t)64 << 20) {
        rc = jr_ws_send(c, chunk, sizeof chunk, 0);
        sent += sizeof chunk;
        if (rc != JR_WS_OK) break;
        oks++;
        if (jr_ws_conn_queued(c) > most) most = jr_ws_conn_queued(c);
        uv_run(L, UV_RUN_NOWAIT);
    }
    CHECK_EQ_INT(rc, JR_WS_EFULL);
    CHECK(sent < (size_t)64 << 20);
    CHECK(most <= cfg.max_send_queue);
    CHECK(most > cfg.max_send_queue - sizeof chunk); /* it did fill up */
    CHECK_EQ_INT(F.closed, 0);                       /* on_close comes from the loop */
    CHECK_EQ_INT(jr_ws_send(c, "x", 1, 0), JR_WS_ECLOSED);
    expect_closed_queue_full();
    jr_ws_counters k;
    jr_ws_ctx_stats(F.ws, &k);
    CHECK_EQ_INT(k.slow_closed, 1);
    CHECK_EQ_INT(k.sent, oks); /* the refused ones are not counted */
    cl_free(cl);
    teardown();
}

/* A client that sends pings and never reads: its pongs count against
 * max_send_queue like messages do, so it is closed with 1008 instead of
 * making the server queue pongs without bound. */
TEST(ping_flood_without_reading_is_closed_1008)
{
    client *cl = non_reading_client(64 * 1024);
    char payload[125];
    memset(payload, 'p', sizeof payload);
    jr_buf batch;
    jr_buf_init(&batch);
    for (int i = 0; i < 1000; i++) put_frame(&batch, 1, 9, payload, sizeof payload, 1);
    size_t sent = 0;
    /* each batch of 1000 pings is about 128 KB of pongs; the kernel's buffers
     * take a few MB, then the queue fills */
    while (F.closed == 0 && sent < (size_t)64 << 20) {
        cl_sendn(cl, batch.data, batch.len);
        sent += batch.len;
        WAIT(cl->tcp.write_queue_size == 0 || F.closed, 3000);
    }
    jr_buf_free(&batch);
    expect_closed_queue_full();
    cl_free(cl);
    teardown();
}

/* Frames pipelined behind the handshake (in its very write), the last one
 * split: its rest comes in a later write. */
TEST(pipelined_frames_and_a_split_one)
{
    CHECK(setup(NULL));
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 1, 1, "one", 3, 1);
    put_frame(&b, 1, 2, "two", 3, 1);
    size_t at = b.len;
    put_frame(&b, 1, 1, "three", 5, 1);
    client *cl = ws_connect(b.data, at + 4); /* the third's header and half its key */
    CHECK_EQ_INT(cl->status, 101);
    EXPECT_FRAME(cl, 1, "one");
    EXPECT_FRAME(cl, 2, "two");
    CHECK_EQ_INT(F.nmsgs, 2);
    cl_sendn(cl, b.data + at + 4, b.len - at - 4);
    EXPECT_FRAME(cl, 1, "three");
    jr_buf_free(&b);
    cl_free(cl);
    teardown();
}

/* The 101 carries the caller's extra headers; a per-connection config
 * overrides the context's (here a smaller message limit). */
TEST(extra_headers_and_per_connection_config)
{
    CHECK(setup(NULL));
    jr_http_header proto = {"Sec-WebSocket-Protocol", 22, "chat", 4};
    jr_ws_config small;
    jr_ws_config_defaults(&small);
    small.max_message_size = 10;
    F.extra = &proto;
    F.nextra = 1;
    F.conn_cfg = &small;
    client *cl = ws_connect(NULL, 0);
    CHECK_EQ_INT(cl->status, 101);
    CHECK(memmem(cl->in.data, cl->pos, "\r\nSec-WebSocket-Protocol: chat\r\n", 32) != NULL);
    cl_frame(cl, 1, 1, "0123456789", 10, 1);
    EXPECT_FRAME(cl, 1, "0123456789");
    cl_frame(cl, 1, 1, "0123456789a", 11, 1);
    expect_close_frame(cl, 1009);
    cl_free(cl);
    teardown();
}

/* Pings go out after ping_interval without input, and keep going; a client
 * that answers them (pongs count as input) outlives idle_timeout many times
 * over. */
TEST(pings_after_interval_and_pongs_keep_alive)
{
    /* idle_timeout leaves room for a loaded machine (a pong answered up to
     * ~1 s late still counts); 60 pings of 20 ms outlast it */
    jr_ws_config cfg = timeouts(20, 1000, 5000);
    CHECK(setup(&cfg));
    client *cl = ws_connect(NULL, 0);
    int pings = 0;
    frame f = {0};
    while (pings < 60 && wait_frame(cl, &f) && f.opcode == 9) {
        pings++;
        cl_frame(cl, 1, 10, NULL, 0, 1);
    }
    CHECK_EQ_INT(pings, 60); /* 60 x 20 ms: more than idle_timeout, and still open */
    CHECK_EQ_INT(F.closed, 0);
    CHECK_EQ_INT(jr_ws_ctx_connections(F.ws), 1);
    jr_buf_free(&f.payload);
    cl_free(cl);
    teardown();
}

/* A client that sends nothing is closed with 1001 after idle_timeout, and
 * dropped after close_timeout if it does not answer. */
TEST(idle_client_closed_1001)
{
    jr_ws_config cfg = timeouts(0, 40, 40);
    CHECK(setup(&cfg));
    client *cl = ws_connect(NULL, 0);
    frame f = {0};
    CHECK(wait_frame(cl, &f));
    CHECK_EQ_INT(close_code_of(&f), 1001);
    CHECK_EQ_MEM(f.payload.data + 2, f.payload.len - 2, "idle timeout");
    WAIT(cl->eof, 3000);
    CHECK(cl->eof);
    CHECK_EQ_INT(F.closed, 1);
    CHECK_EQ_INT(F.close_codes[0], 1001);
    CHECK_EQ_STR(F.close_reason, "idle timeout");
    jr_buf_free(&f.payload);
    cl_free(cl);
    teardown();
}

/* One encoded frame sent to many connections, released by the caller at
 * once: a small one to every connection, and before it, to three of them, a
 * frame larger than the kernel's socket buffers can take (tcp_wmem's 4 MiB
 * maximum): its rest is queued pointing into the frame, which outlives the
 * caller's reference. ASan checks each frame is freed, once. */
TEST(shared_frame_to_many_connections)
{
    jr_ws_config cfg;
    jr_ws_config_defaults(&cfg);
    cfg.max_send_queue = 16 << 20;
    CHECK(setup(&cfg));
    F.echo = 0;
    enum { N = 20, NBIG = 3 };
    client *cls[N];
    for (int i = 0; i < N; i++) cls[i] = ws_connect_rcvbuf(NULL, 0, 4096);
    WAIT(F.opened == N, 3000);
    CHECK_EQ_INT(F.opened, N);
    size_t big = 8 << 20;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++) data[i] = (char)(i * 13 + i / 4093);
    jr_ws_frame *fb = jr_ws_frame_new(data, big, 0);
    jr_ws_frame *fs = jr_ws_frame_new("hi all", 6, 1);
    CHECK(fb && fs);
    for (int i = 0; i < N; i++) {
        if (i < NBIG) CHECK_EQ_INT(jr_ws_send_frame(F.conns[i], fb), JR_WS_OK);
        CHECK_EQ_INT(jr_ws_send_frame(F.conns[i], fs), JR_WS_OK);
    }
    CHECK(jr_ws_conn_queued(F.conns[0]) > 0); /* the kernel did not take it all */
    jr_ws_frame_release(fb);
    jr_ws_frame_release(fs);
    frame f = {0};
    for (int i = 0; i < N; i++) {
        if (i < NBIG) {
            CHECK(wait_frame(cls[i], &f));
            CHECK(f.opcode == 2 && f.payload.len == big && memcmp(f.payload.data, data, big) == 0);
        }
        EXPECT_FRAME(cls[i], 1, "hi all");
    }
    CHECK_EQ_INT(jr_ws_conn_queued(F.conns[0]), 0);
    jr_buf_free(&f.payload);
    free(data);
    for (int i = 0; i < N; i++) cl_free(cls[i]);
    teardown();
}

/* Paused in on_message: what the same read brought waits, new input stays
 * in the kernel, and after resume everything comes in order (the ping sent
 * while paused is answered only after the two stashed messages). */
TEST(pause_and_resume)
{
    CHECK(setup(NULL));
    F.pause_at = 1;
    client *cl = ws_connect(NULL, 0);
    WAIT(F.last != NULL, 3000);
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 1, 1, "m1", 2, 1);
    put_frame(&b, 1, 1, "m2", 2, 1);
    put_frame(&b, 1, 1, "m3", 2, 1);
    cl_sendn(cl, b.data, b.len);
    EXPECT_FRAME(cl, 1, "m1");
    CHECK_EQ_INT(F.nmsgs, 1);
    cl_frame(cl, 1, 9, "p", 1, 1);
    cl_frame(cl, 1, 1, "m4", 2, 1);
    CHECK_EQ_INT(F.nmsgs, 1);
    jr_ws_resume(F.last);
    CHECK_EQ_INT(F.nmsgs, 1); /* nothing runs inside jr_ws_resume */
    EXPECT_FRAME(cl, 1, "m2");
    EXPECT_FRAME(cl, 1, "m3");
    EXPECT_FRAME(cl, 10, "p");
    EXPECT_FRAME(cl, 1, "m4");
    CHECK_EQ_INT(F.nmsgs, 4);
    jr_buf_free(&b);
    cl_free(cl);
    teardown();
}

/* A client that resets the connection in the middle of a frame: on_close
 * 1006, and the server keeps serving. */
TEST(abrupt_disconnect_gets_1006)
{
    CHECK(setup(NULL));
    client *cl = ws_connect(NULL, 0);
    WAIT(F.opened == 1, 3000);
    jr_buf b = JR_BUF_INIT;
    put_frame(&b, 0, 1, "abcdef", 6, 1);
    cl_sendn(cl, b.data, 5);
    jr_buf_free(&b);
    cl->closing = 1;
    uv_tcp_close_reset(&cl->tcp, cl_closed);
    WAIT(F.closed == 1, 3000);
    CHECK_EQ_INT(F.close_codes[0], 1006);
    CHECK_EQ_STR(F.close_reason, "");
    cl_free(cl);
    client *ok = ws_connect(NULL, 0);
    cl_frame(ok, 1, 1, "still here", 10, 1);
    EXPECT_FRAME(ok, 1, "still here");
    cl_free(ok);
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
 * client sees its socket end, and every uv handle of ws.c is closed (the
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
    test_loop_init();

    RUN(handshake_with_pipelined_frame);
    RUN(echo_text_binary_fragmented_and_large);
    RUN(ping_pong);
    RUN(client_close_handshake_1000);
    RUN(client_close_with_reason_and_without_code);
    RUN(server_close_with_code_and_reason);
    RUN(server_close_unanswered_times_out);
    RUN(unmasked_frame_gets_1002);
    RUN(bad_opcode_gets_1002);
    RUN(fragmented_control_frame_gets_1002);
    RUN(invalid_utf8_gets_1007);
    RUN(oversized_message_gets_1009);
    RUN(bad_handshake_is_answered_by_http);
    RUN(slow_reader_is_closed_1008);
    RUN(ping_flood_without_reading_is_closed_1008);
    RUN(pipelined_frames_and_a_split_one);
    RUN(extra_headers_and_per_connection_config);
    RUN(pings_after_interval_and_pongs_keep_alive);
    RUN(idle_client_closed_1001);
    RUN(shared_frame_to_many_connections);
    RUN(pause_and_resume);
    RUN(abrupt_disconnect_gets_1006);
    RUN(many_connections);
    RUN(free_with_open_connections);

    jr_buf_free(&F.lastmsg);
    if (test_loop_close() != 0) t_failed++;
    return test_summary();
}
