/* http.h - HTTP/1.1 server on libuv + llhttp.
 *
 * The server owns connections, parsing, limits, timeouts and response
 * framing. It knows nothing about Lua: every complete request is handed to
 * one callback (jr_http_on_request); whoever handles it later answers with
 * jr_http_respond(). Requests on one connection are handled one at a time
 * (pipelined requests wait, parsed from the buffer after the previous
 * response was written), so responses are always in order and a client that
 * pipelines or stops reading cannot make the server buffer without bound:
 * reading from a socket stops while a request is in flight or its response
 * is unwritten.
 *
 * Lifetime: a jr_http_req is reference counted. The connection holds one
 * reference until the request is answered or the connection dies; a handler
 * that keeps the request across loop iterations takes its own with
 * jr_http_req_retain() and drops it with jr_http_req_release(). After the
 * connection died, accessors still work (the data is owned by the request)
 * and jr_http_respond() returns JR_HTTP_ECLOSED.
 */
#ifndef JR_HTTP_H
#define JR_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct jr_http_server jr_http_server;
typedef struct jr_http_req jr_http_req;

typedef struct {
    const char *host;            /* default "0.0.0.0" */
    int port;                    /* default 8000; 0 = ephemeral (see jr_http_server_port) */
    int reuseport;               /* set SO_REUSEPORT (pre-forked workers share the port) */
    int backlog;                 /* listen backlog, default 511 */
    size_t max_header_size;      /* request line + all headers, bytes; default 16384 -> 431 */
    size_t max_headers;          /* number of header fields; default 100 -> 431 */
    size_t max_body_size;        /* body bytes (Content-Length or chunked total); default 1 MiB -> 413 */
    unsigned header_timeout_ms;  /* first byte of a request to its complete headers; default 10000 -> 408 + close */
    unsigned body_timeout_ms;    /* headers complete to body complete; default 30000 -> 408 + close */
    unsigned idle_timeout_ms;    /* keep-alive idle between requests; default 60000 -> close */
    unsigned write_timeout_ms;   /* a response not fully written within this closes the conn; default 30000 */
    unsigned max_connections;    /* open connections; default 10000; beyond it new ones get 503 + close */
    unsigned max_keepalive_requests; /* requests per connection before Connection: close; 0 = unlimited (default) */
    int access_log;              /* log one INFO line per response */
} jr_http_config;

/* Fill cfg with the defaults above. */
void jr_http_config_defaults(jr_http_config *cfg);

/* Called once per complete request (headers + whole body). The connection is
 * parked until jr_http_respond() is called for req (from this callback or
 * any later loop iteration). */
typedef void (*jr_http_on_request)(jr_http_req *req, void *ud);

/* Create a server bound and listening per cfg. Returns NULL and writes a
 * message into err (e.g. "bind 0.0.0.0:8000: address already in use");
 * *uverr (when not NULL) gets the failing call's libuv error code, or 0 when
 * a configuration value is invalid. */
jr_http_server *jr_http_server_start(uv_loop_t *loop, const jr_http_config *cfg,
                                     jr_http_on_request on_request, void *ud,
                                     char *err, size_t errlen, int *uverr);

/* Actual bound port (useful with port 0). */
int jr_http_server_port(const jr_http_server *srv);

/* Live counters for tests and metrics. */
size_t jr_http_server_connections(const jr_http_server *srv);
size_t jr_http_server_inflight(const jr_http_server *srv);

/* Graceful shutdown: stop accepting, close idle keep-alive connections now
 * (those whose client sent nothing more), let requests that already arrived
 * finish (whole or partly received, in handlers, being written; also a
 * pipelined request behind them or one still in the socket): each
 * connection's last response goes out with "Connection: close" and then the
 * connection closes. Whatever is left after grace_ms is force-closed.
 * done(ud) runs once when no connection is left; after it the server may be
 * freed. Calling it twice is harmless (the second call is ignored). */
void jr_http_server_shutdown(jr_http_server *srv, unsigned grace_ms,
                             void (*done)(void *ud), void *ud);

/* Free a server after shutdown's done callback (closes the listener if
 * shutdown was never called; pending handles finish closing on the loop). */
void jr_http_server_free(jr_http_server *srv);

/* ---- request accessors (valid until the last release) ---- */
const char *jr_http_req_method(const jr_http_req *req, size_t *len);  /* "GET" */
const char *jr_http_req_target(const jr_http_req *req, size_t *len);  /* raw request target "/a/b?x=1" */
const char *jr_http_req_path(const jr_http_req *req, size_t *len);    /* percent-decoded path, no query */
const char *jr_http_req_query(const jr_http_req *req, size_t *len);   /* raw query after '?', "" if none */
int jr_http_req_version_minor(const jr_http_req *req);                /* 0 or 1 */
int jr_http_req_keepalive(const jr_http_req *req);
int jr_http_req_is_head(const jr_http_req *req);
int jr_http_req_is_upgrade(const jr_http_req *req);  /* Connection: upgrade (WebSocket, later) */
size_t jr_http_req_header_count(const jr_http_req *req);
/* i-th header as received (name case preserved). */
void jr_http_req_header_at(const jr_http_req *req, size_t i, const char **name, size_t *nlen,
                           const char **value, size_t *vlen);
/* First header with this name, case-insensitive; NULL if absent. */
const char *jr_http_req_header(const jr_http_req *req, const char *name, size_t *vlen);
const char *jr_http_req_body(const jr_http_req *req, size_t *len);
/* Remote address as text ("127.0.0.1" / "::1") and port. */
const char *jr_http_req_remote_addr(const jr_http_req *req);
int jr_http_req_remote_port(const jr_http_req *req);
/* Request id: the client's X-Request-Id when it is 1..64 chars of
 * [A-Za-z0-9._-], else a generated "<pid hex>-<counter hex>". NUL-terminated. */
const char *jr_http_req_id(const jr_http_req *req);
/* Time the request became complete (uv_now of the loop, ms). */
uint64_t jr_http_req_start_ms(const jr_http_req *req);
/* 1 while the connection is open and the request unanswered. */
int jr_http_req_alive(const jr_http_req *req);

void jr_http_req_retain(jr_http_req *req);
void jr_http_req_release(jr_http_req *req);

/* ---- responses ---- */
typedef struct {
    const char *name;
    size_t nlen;
    const char *value;
    size_t vlen;
} jr_http_header;

#define JR_HTTP_OK 0
#define JR_HTTP_ECLOSED (-1)   /* connection gone */
#define JR_HTTP_EANSWERED (-2) /* respond called twice */
#define JR_HTTP_EINVALID (-3)  /* bad status, or CR/LF in a header name/value */
#define JR_HTTP_ETOOBIG (-4)   /* detach: more unparsed bytes than the caller's buffer holds */
#define JR_HTTP_ESYS (-5)      /* detach: dup() failed (errno says why, e.g. EMFILE) */

/* 1 when every header has a non-empty name and neither name nor value
 * holds CR, LF or NUL (what jr_http_respond accepts; also the 101 of a
 * WebSocket upgrade, ws.c). */
int jr_http_headers_valid(const jr_http_header *headers, size_t n);

/* Answer req. The server adds Date, Content-Length and Connection; callers
 * must not pass those (Content-Length/Connection/Date given by the caller are
 * ignored). For HEAD requests and 1xx/204/304 statuses no body is written
 * (HEAD keeps the Content-Length of body). Data is copied; the caller may
 * free it on return. */
int jr_http_respond(jr_http_req *req, int status, const jr_http_header *headers, size_t nheaders,
                    const char *body, size_t body_len);

/* Hand an unanswered Upgrade request's connection to another protocol
 * engine (the WebSocket bridge, core/ws.c). On success *fd is a duplicate of
 * the socket that the caller owns, the bytes the client sent after the
 * request that we read but did not parse (a frame pipelined behind the
 * handshake) are copied into rest (*rest_len of them), the request counts as
 * answered and the server forgets the connection (no response, no linger).
 * Our reads stopped when the request was delivered, so nothing else is lost:
 * the rest is still in the socket. On failure nothing changes and the caller
 * still answers req: JR_HTTP_EINVALID (not an upgrade request),
 * JR_HTTP_EANSWERED, JR_HTTP_ECLOSED, JR_HTTP_ETOOBIG (more than cap bytes
 * are waiting), JR_HTTP_ESYS (dup failed). */
int jr_http_req_detach(jr_http_req *req, int *fd, char *rest, size_t cap, size_t *rest_len);

/* Walk a comma-separated header value (RFC 9110 §5.6.1: empty elements
 * and spaces around them are allowed). Start with *pos = 0; each call sets
 * elem/elen to the next non-empty element without its surrounding spaces and
 * returns 1, or returns 0 at the end. */
int jr_http_list_next(const char *v, size_t n, size_t *pos, const char **elem, size_t *elen);

/* Reason phrase for a status ("OK", "Not Found", ...; "Unknown" otherwise). */
const char *jr_http_status_text(int status);

/* Percent-decode src into dst (dst may equal src; '+' stays '+' unless
 * plus_as_space). Returns decoded length, or -1 for a malformed escape. */
long jr_http_url_decode(char *dst, const char *src, size_t len, int plus_as_space);

/* Format an RFC 7231 date for t into out (at least 30 bytes); returns length. */
size_t jr_http_format_date(char *out, time_t t);

#endif
