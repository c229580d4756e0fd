/* redis_uv.h - hiredis async contexts on a libuv loop (our replacement for
 * hiredis 0.14's adapters/libuv.h; see redis_uv.c for why). */
#ifndef JR_REDIS_UV_H
#define JR_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Watch ac's socket on loop: 0, or -1 (out of memory, or libuv refused the
 * fd; ac is untouched then). The watch goes away with the context (hiredis
 * calls its cleanup hook when it frees ac). */
int jr_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
