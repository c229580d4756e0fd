/* redis_uv.c - hiredis async contexts on a libuv loop.
 *
 * hiredis 0.14's adapters/libuv.h ignores a poll callback whose status is
 * an error. libuv reports a socket error (a refused connect, a connection
 * reset) exactly that way, having stopped the handle, so with that adapter
 * such a connection just hangs: a refused connect waits for our connect
 * timeout and a reset connection for the health probe. Here an error
 * status hands hiredis the events it was waiting for, so its read or write
 * meets the error at once and it reports and frees the context (what
 * hiredis 1.x's adapter does). It also frees its watch when uv_poll_init
 * fails, which 0.14's leaks. */
#include "redis_uv.h"

#include <stdlib.h>

typedef struct {
    redisAsyncContext *ac; /* NULL once hiredis has let go of the context */
    uv_poll_t poll;
    int events;
} watch;

static void on_poll(uv_poll_t *h, int status, int events)
{
    watch *w = h->data;
    int ev = status < 0 ? w->events : events;
    /* the read may free the context: cleanup clears w->ac */
    if (w->ac && (ev & UV_READABLE)) redisAsyncHandleRead(w->ac);
    if (w->ac && (ev & UV_WRITABLE)) redisAsyncHandleWrite(w->ac);
}

static void update(watch *w, int events)
{
    w->events = events;
    if (events) uv_poll_start(&w->poll, events, on_poll);
    else uv_poll_stop(&w->poll);
}

static void add_read(void *p) { update(p, ((watch *)p)->events | UV_READABLE); }
static void del_read(void *p) { update(p, ((watch *)p)->events & ~UV_READABLE); }
static void add_write(void *p) { update(p, ((watch *)p)->events | UV_WRITABLE); }
static void del_write(void *p) { update(p, ((watch *)p)->events & ~UV_WRITABLE); }

static void on_closed(uv_handle_t *h) { free(h->data); }

static void cleanup(void *p)
{
    watch *w = p;
    w->ac = NULL;
    uv_close((uv_handle_t *)&w->poll, on_closed);
}

int jr_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return -1;
    watch *w = calloc(1, sizeof *w);
    if (!w) return -1;
    if (uv_poll_init_socket(loop, &w->poll, ac->c.fd) != 0) {
        free(w);
        return -1;
    }
    w->poll.data = w;
    w->ac = ac;
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
