/* ws.h - WebSocket connections on our libuv loop, framed by libwebsockets.
 *
 * Our HTTP server (http.h) parses the upgrade request, so routing, path
 * params and interceptors see it like any other request. Whoever accepts it
 * calls jr_ws_adopt(): the socket moves to libwebsockets, which answers the
 * 101 and does all framing (masking, fragmentation, ping/pong, the close
 * handshake, UTF-8 validation of text, RFC 6455 close codes for protocol
 * errors). libwebsockets runs on the same uv loop as everything else.
 *
 * Callbacks run on the loop thread. A jr_ws_conn is valid from jr_ws_adopt
 * until on_close returns (on_close runs exactly once per adopted connection,
 * also when the connection dies before its handshake finished; on_open only
 * after a completed handshake).
 *
 * No Lua here: bindings/ turns these callbacks into coroutine resumptions.
 */
#ifndef JR_WS_H
#define JR_WS_H

#include <stddef.h>
#include <uv.h>

#include "http.h"

typedef struct jr_ws_ctx jr_ws_ctx;
typedef struct jr_ws_conn jr_ws_conn;

typedef struct {
    size_t max_message_size; /* reassembled message, bytes; default 1 MiB; beyond -> close 1009 */
    size_t max_send_queue;   /* bytes queued and unsent per connection; default 1 MiB;
                                a send beyond it closes the connection with 1008 */
    unsigned close_timeout_s;  /* a closing peer that does not read or answer is dropped
                                  after this many seconds (lws counts whole seconds); default 5 */
} jr_ws_config;

void jr_ws_config_defaults(jr_ws_config *cfg);

typedef struct {
    void (*on_open)(jr_ws_conn *conn, void *ud);
    /* One whole message (fragments reassembled). data is valid during the call. */
    void (*on_message)(jr_ws_conn *conn, const char *data, size_t len, int is_text, void *ud);
    /* code: the peer's close code, or the one we closed with (jr_ws_close,
     * 1008 for a full send queue, 1009 for an oversized message, 1001 when
     * the context is freed), 1005 for a peer close frame without a code,
     * 1006 when the connection ended without a close frame (reset, or a
     * protocol error libwebsockets closed on by itself). */
    void (*on_close)(jr_ws_conn *conn, int code, void *ud);
    void *ud;
} jr_ws_callbacks;

#define JR_WS_OK 0
#define JR_WS_EINVALID (-1) /* bad argument, or not a valid WebSocket upgrade request */
#define JR_WS_ETOOBIG (-2)  /* adopt: too many bytes pipelined behind the handshake */
#define JR_WS_ECLOSED (-3)  /* connection closed or closing */
#define JR_WS_ENOMEM (-4)
#define JR_WS_EFULL (-5)    /* send: queue limit passed; the connection is being closed with 1008 */
#define JR_WS_ESYS (-6)     /* adopt: dup() failed (e.g. out of descriptors) */
#define JR_WS_EADOPT (-7)   /* adopt: libwebsockets refused the socket; it is closed */

/* Create the context on loop. Returns NULL and writes a message into err. */
jr_ws_ctx *jr_ws_ctx_new(uv_loop_t *loop, const jr_ws_config *cfg, const jr_ws_callbacks *cb,
                         char *err, size_t errlen);

/* Take over req's connection (an unanswered upgrade request of our HTTP
 * server). The request is checked first (GET, Upgrade: websocket,
 * Sec-WebSocket-Version 13, a 16-byte base64 key): JR_WS_EINVALID, and
 * JR_WS_ETOOBIG/JR_WS_ENOMEM/JR_WS_ESYS/JR_WS_ECLOSED, leave req unanswered
 * so the caller answers it (400 / 426 / 503). On JR_WS_OK the connection
 * belongs to the context (req is answered; *out, when not NULL, is the new
 * connection). JR_WS_EADOPT: req is answered and the socket closed, no
 * callbacks follow. user is returned by jr_ws_conn_user().
 * lws answers the handshake from inside this call, so on_open, and
 * on_message for frames the client pipelined behind its request, may run
 * before jr_ws_adopt returns (set up whatever they need first). */
int jr_ws_adopt(jr_ws_ctx *ctx, jr_http_req *req, void *user, jr_ws_conn **out);

void *jr_ws_conn_user(const jr_ws_conn *conn);

/* Queue one message (copied). JR_WS_ECLOSED once closing; JR_WS_EFULL when
 * the unsent bytes would pass max_send_queue: the queue is dropped and the
 * connection closed with 1008, so a client that stops reading costs at most
 * that much memory. */
int jr_ws_send(jr_ws_conn *conn, const void *data, size_t len, int is_text);

/* Shared frames (the contract of WS_PLAN.md): one message encoded once and
 * queued on many connections (a room broadcast). INTERIM: this lws-backed
 * version copies the payload per send; the framer's rewrite of ws.c queues
 * the one encoded frame itself. Both keep these names and semantics. */
typedef struct jr_ws_frame jr_ws_frame;
/* NULL when out of memory. */
jr_ws_frame *jr_ws_frame_new(const void *data, size_t len, int is_text);
void jr_ws_frame_release(jr_ws_frame *f);
/* Like jr_ws_send, for a shared frame; f stays the caller's to release. */
int jr_ws_send_frame(jr_ws_conn *conn, jr_ws_frame *f);

/* Start the close handshake with code (1000..4999 except the reserved
 * 1004-1006, 1015) and an optional reason (at most 123 bytes). Messages still
 * queued are dropped. on_close follows. */
int jr_ws_close(jr_ws_conn *conn, int code, const char *reason);

/* Open connections (adopted, on_close not yet run). */
size_t jr_ws_ctx_connections(const jr_ws_ctx *ctx);

/* Close every connection (on_close with 1001) and destroy the context. The
 * memory and libuv handles go while the loop runs on: keep running it (the
 * context's handles are the last to keep it alive). */
void jr_ws_ctx_free(jr_ws_ctx *ctx);

#endif
