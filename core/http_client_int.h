/* http_client_int.h - what http_client.c (client, origins, requests) and
 * http_client_conn.c (one connection: connect, TLS, write, parse) share. */
#ifndef JR_HTTP_CLIENT_INT_H
#define JR_HTTP_CLIENT_INT_H

#include <llhttp.h>

#include "buf.h"
#include "http_client.h"
#include "http_client_tls.h"

typedef struct hc_origin hc_origin;
typedef struct hc_conn hc_conn;

struct jr_hc_req {
    jr_hc *c;
    hc_origin *o;
    hc_conn *conn;          /* the connection serving it, NULL while queued */
    jr_hc_cb cb;
    void *ud;
    jr_buf out;             /* the request bytes (kept for a retry) */
    int idempotent, head, retried, queued;
    int def_status;         /* a failure found inside jr_hc_request, delivered from the loop */
    char def_msg[256];
    uv_timer_t timer;       /* the whole request's deadline; initialized once, pooled */
    jr_hc_req *prev, *next; /* the origin's queue, or the client's free list */
    /* the response */
    int status;
    int in_value;           /* the parser is inside a header value */
    jr_buf hdr;             /* "name\0value\0" pairs, names lowercased */
    size_t nhdr;
    jr_buf body;
    jr_buf ptrs;            /* the pointer arrays of jr_hc_response */
};

enum { HC_RESOLVING, HC_CONNECTING, HC_HANDSHAKE, HC_BUSY, HC_IDLE, HC_CLOSING };

struct hc_conn {
    jr_hc *c;
    hc_origin *o;
    int state;
    jr_hc_req *req;
    uv_tcp_t tcp;
    uv_timer_t timer;       /* connect deadline, then the idle timeout */
    uv_getaddrinfo_t gai;
    uv_connect_t connect;
    int pending;            /* handles and requests to close/finish before free */
    int fail_status;        /* a failure to report from the timer (connect failed at once) */
    int fail_uv;            /* its libuv error */
    unsigned served;        /* requests finished on it: > 0 means a reuse */
    int got_bytes;          /* response bytes arrived for the current request */
    int done;               /* on_message_complete of the current response */
    size_t rx;              /* response bytes so far */
    llhttp_t parser;
    jr_hc_tls *tls;
    jr_buf tlsout;
    hc_conn *prev, *next;           /* the client's list of live connections */
    hc_conn *idle_prev, *idle_next; /* the origin's idle stack */
};

struct hc_origin {
    hc_origin *next;
    int tls;
    int port;
    char *host;             /* without brackets */
    size_t nconn, nidle;
    hc_conn *idle;          /* LIFO: the most recently used first */
    jr_hc_req *qhead, *qtail;
    size_t nqueued;
};

struct jr_hc {
    uv_loop_t *loop;
    jr_hc_options o;
    char *ca_file;
    jr_hc_tls_ctx *tls;     /* made on the first https request */
    hc_origin *origins;
    hc_conn *conns;
    jr_hc_req *free_reqs;
    int closing;
    int in_cb;              /* callbacks running: do not free the struct under them */
    int in_request;         /* inside jr_hc_request: results wait for the loop */
    int handles;            /* connections and request timers not yet closed */
    jr_hc_stats st;
    char rbuf[65536];       /* every read lands here, consumed at once */
    char tbuf[16384];       /* decrypted bytes */
};

/* http_client.c */
/* Deliver r's result (the response when status is JR_HC_OK) and recycle r:
 * callers do nothing with r, its connection or its origin afterwards (the
 * callback may have freed the client). */
void hc_req_done(jr_hc_req *r, int status, const char *msg);
/* Run r on an idle connection (unless fresh), a new one, or queue it. */
void hc_dispatch(jr_hc_req *r, int fresh);
/* A connection finished its request and may stay: the next queued request,
 * else the idle stack (or closed when the stack is full). */
void hc_conn_release(hc_conn *k);
/* A connection of o closed: open one for the queue's head if allowed. */
void hc_serve_queue(hc_origin *o);
void hc_maybe_free(jr_hc *c);
/* "http://host:port" for messages. */
void hc_origin_name(const hc_origin *o, char *buf, size_t n);

/* http_client_conn.c */
/* A connection for o, opened for r (NULL: out of memory). */
hc_conn *hc_conn_open(jr_hc *c, hc_origin *o, jr_hc_req *r);
void hc_conn_send(hc_conn *k, jr_hc_req *r);
/* Stop using k (detach its request first): its handles close, the memory
 * goes in the last close callback. Idempotent. */
void hc_conn_close(hc_conn *k);
void hc_conn_make_idle(hc_conn *k);

#endif
