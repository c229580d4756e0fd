/* ws.h - WebSocket connections (RFC 6455) on our libuv loop.
 *
 * Our HTTP server (http.h) parses the upgrade request, so routing, path
 * params and interceptors see it like any other request. Whoever accepts it
 * calls jr_ws_adopt(): the socket leaves the HTTP server (a dup of it, see
 * jr_http_req_detach), the 101 answer is written, and from then on this
 * module frames the connection itself (wsframe.h parses, the send path
 * writes): ping/pong, the close handshake, RFC 6455 close codes for
 * protocol errors, idle timeout and a bounded send queue are automatic.
 *
 * Callbacks run on the loop thread, always from a loop callback of this
 * module (never from inside a jr_ws_* call, except jr_ws_ctx_free: see
 * there). A jr_ws_conn is valid from jr_ws_adopt until on_close returns;
 * on_close runs exactly once per adopted connection (also when it died
 * before on_open).
 *
 * Memory: reads go into one 64 KiB buffer of the context; a connection
 * keeps only a split frame header or control frame (in its parser), the
 * message being reassembled, and what the kernel has not taken of its
 * sends. One timer of the context sweeps every connection for pings, idle
 * and close timeouts (no timer per connection).
 *
 * Sending: a jr_ws_frame is one server frame (header and payload) encoded
 * once and shareable between connections (a broadcast encodes once). A send
 * first tries to write at once (no allocation when the kernel takes it all),
 * otherwise the rest is queued pointing into the retained frame.
 *
 * No Lua here: bindings/ turns these callbacks into coroutine resumptions.
 */
#ifndef JR_WS_H
#define JR_WS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"

typedef struct jr_ws_ctx jr_ws_ctx;
typedef struct jr_ws_conn jr_ws_conn;
typedef struct jr_ws_frame jr_ws_frame; /* one encoded server frame, refcounted, shareable */

typedef struct {
    size_t max_message_size;   /* reassembled message; default 1 MiB; beyond -> close 1009 */
    size_t max_send_queue;     /* bytes sent but not taken by the kernel, per connection;
                                  default 1 MiB; a send beyond it closes with 1008 */
    unsigned close_timeout_ms; /* after our close frame (or a protocol error) the peer must
                                  answer / end the TCP connection within; default 5000 */
    unsigned ping_interval_ms; /* ping after this long without receiving anything (and again
                                  each interval); 0 = never; default 30000 */
    unsigned idle_timeout_ms;  /* close 1001 after this long without receiving anything (pongs
                                  count); 0 = never; default 60000. Not counted while paused. */
} jr_ws_config;

void jr_ws_config_defaults(jr_ws_config *cfg);

typedef struct {
    /* Runs on the loop iteration after jr_ws_adopt (the 101 is queued, sends
     * are allowed before it). Not called for a connection that died first. */
    void (*on_open)(jr_ws_conn *conn, void *ud);
    /* One whole message (fragments reassembled). data is valid during the call. */
    void (*on_message)(jr_ws_conn *conn, const char *data, size_t len, int is_text, void *ud);
    /* Exactly once per adopted connection. code: the peer's close code (1005
     * when its close frame had none) when the peer closed first; the one we
     * closed with otherwise (jr_ws_close's, 1002/1007/1009 for a protocol
     * error, 1008 for a full send queue, 1001 for the idle timeout or
     * jr_ws_ctx_free); 1006 when the connection ended without a close frame.
     * reason: the peer's close reason, or a sentence saying why we closed
     * (empty for jr_ws_close: the caller knows its reason); valid during the
     * call. */
    void (*on_close)(jr_ws_conn *conn, int code, const char *reason, size_t rlen, void *ud);
    void *ud;
} jr_ws_callbacks;

#define JR_WS_OK 0
#define JR_WS_EINVALID (-1) /* bad argument, or not a valid WebSocket upgrade request */
#define JR_WS_ETOOBIG (-2)  /* adopt: more than 64 KiB pipelined behind the handshake */
#define JR_WS_ECLOSED (-3)  /* connection closed or closing */
#define JR_WS_ENOMEM (-4)
#define JR_WS_EFULL (-5)    /* send: queue limit passed; the connection is being closed with 1008 */
#define JR_WS_ESYS (-6)     /* adopt: dup() failed (e.g. out of descriptors) */

/* Create the context on loop (cfg NULL = defaults). Returns NULL and writes
 * a message into err. */
jr_ws_ctx *jr_ws_ctx_new(uv_loop_t *loop, const jr_ws_config *cfg, const jr_ws_callbacks *cb,
                         char *err, size_t errlen);

/* Take over req's connection (an unanswered upgrade request of our HTTP
 * server). The request is checked first (GET, Upgrade: websocket,
 * Connection: upgrade, Sec-WebSocket-Version 13, a 16-byte base64 key), and
 * cfg (a per-connection override of the context's config; NULL = the
 * context's) and extra (headers added to the 101, e.g.
 * Sec-WebSocket-Protocol; no CR, LF or NUL, like jr_http_respond's).
 * JR_WS_EINVALID, JR_WS_ETOOBIG, JR_WS_ENOMEM, JR_WS_ESYS and JR_WS_ECLOSED
 * leave req unanswered: the caller answers it (400 / 426 / 503).
 * On JR_WS_OK the connection belongs to the context: req is answered, *out
 * (when not NULL) is the new connection, on_open follows on the next loop
 * iteration, then on_message for frames the client pipelined behind its
 * request. No callback runs inside this call. user is returned by
 * jr_ws_conn_user(). */
int jr_ws_adopt(jr_ws_ctx *ctx, jr_http_req *req, const jr_ws_config *cfg,
                const jr_http_header *extra, size_t nextra, void *user, jr_ws_conn **out);

void *jr_ws_conn_user(const jr_ws_conn *conn);
void jr_ws_conn_set_user(jr_ws_conn *conn, void *user);

/* Send one message (data copied, or written at once). JR_WS_ECLOSED once
 * closing; JR_WS_EFULL when what the kernel has not taken would pass
 * max_send_queue: the queue is dropped and the connection closed (on_close
 * 1008, from the loop), so a client that stops reading costs at most that
 * much memory. JR_WS_ENOMEM: nothing sent. */
int jr_ws_send(jr_ws_conn *conn, const void *data, size_t len, int is_text);

/* A frame for sending to any number of connections: one reference for the
 * caller. NULL: out of memory, or len over 4 GiB (jr_ws_send says
 * JR_WS_EINVALID for that). */
jr_ws_frame *jr_ws_frame_new(const void *data, size_t len, int is_text);
void jr_ws_frame_release(jr_ws_frame *f);
/* Send f (no copy: a queued rest retains f until written). Results as jr_ws_send. */
int jr_ws_send_frame(jr_ws_conn *conn, jr_ws_frame *f);

/* Start the close handshake with code (1000-1003, 1007-1014, 3000-4999)
 * and an optional reason (at most 123 bytes of UTF-8); JR_WS_EINVALID for
 * any other code or reason. Messages already queued
 * are sent before the close frame; later sends get JR_WS_ECLOSED. on_close
 * (with code) follows when the peer answers, ends the connection, or after
 * close_timeout_ms. */
int jr_ws_close(jr_ws_conn *conn, int code, const char *reason, size_t rlen);

/* Stop reading (the consumer's inbox is full): no on_message until resumed;
 * the kernel's buffers fill and TCP pushes back on the client. Bytes already
 * read wait in the connection. The idle timeout does not run while paused. */
void jr_ws_pause(jr_ws_conn *conn);
void jr_ws_resume(jr_ws_conn *conn);

/* Bytes sent on conn that the kernel has not taken yet. */
size_t jr_ws_conn_queued(const jr_ws_conn *conn);

/* Open connections (adopted, on_close not yet run). */
size_t jr_ws_ctx_connections(const jr_ws_ctx *ctx);

/* Counters since the context was made (the built-in metrics read them at
 * scrape time: one increment per event here costs less than any count in
 * Lua). ctx NULL: all zero. */
typedef struct {
    uint64_t opened;      /* connections adopted */
    uint64_t received;    /* data messages handed to on_message */
    uint64_t sent;        /* data messages queued (jr_ws_send, jr_ws_send_frame: one per connection) */
    uint64_t slow_closed; /* connections closed 1008 because their send queue was full */
} jr_ws_counters;
void jr_ws_ctx_stats(const jr_ws_ctx *ctx, jr_ws_counters *out);

/* Close every connection with 1001: on_close runs for each INSIDE this call
 * (no callback follows it), their close frames are sent and sockets shut
 * down. The memory and libuv handles go while the loop runs on: keep
 * running it (the context's handles are the last to keep it alive). */
void jr_ws_ctx_free(jr_ws_ctx *ctx);

#endif
