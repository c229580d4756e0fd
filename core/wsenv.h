/* wsenv.h - the backplane envelope: one WebSocket broadcast or room send as
 * it travels between instances (Redis pub/sub, the in-machine mesh).
 *
 *   jr_buf b = JR_BUF_INIT;
 *   jr_wsenv_encode(&b, origin, JR_WSENV_ROOMS, 1, rooms, lens, n, payload, len);
 *   publish(b.data, b.len);
 *   ...
 *   jr_wsenv e;
 *   if (jr_wsenv_decode(&e, data, len, &why) == 0) { use(&e); jr_wsenv_clear(&e); }
 *
 * Wire format (integers big-endian):
 *   'J' 'W'            magic: anything else on a shared channel is rejected
 *   u8  version        JR_WSENV_VERSION
 *   u8  kind           0 broadcast, 1 rooms
 *   u8  frame type     0 binary, 1 text
 *   16  origin         the sending instance's random id
 *   u32 room count     0 for a broadcast, >= 1 for a room send
 *   per room: u32 length, bytes
 *   u32 payload length, payload bytes
 *   (nothing after)
 * Every piece is length-prefixed, so room names and payloads may hold any
 * bytes (commas, NULs, invalid UTF-8): the original's `,`/NUL separators
 * could not carry those. Every length is checked against what is left, so a
 * truncated, padded or hostile envelope is an error, never a read past the
 * end or a huge allocation. A text envelope whose payload is not UTF-8 is
 * rejected too: it could not go out as a text frame. */
#ifndef JR_WSENV_H
#define JR_WSENV_H

#include <stddef.h>

#include "buf.h"

#define JR_WSENV_VERSION 1
#define JR_WSENV_ORIGIN_LEN 16

#define JR_WSENV_BROADCAST 0
#define JR_WSENV_ROOMS 1

#define JR_WSENV_OK 0
#define JR_WSENV_EINVALID (-1) /* not a well-formed envelope (decode), bad arguments (encode) */
#define JR_WSENV_ENOMEM (-2)

typedef struct {
    int kind;                                  /* JR_WSENV_BROADCAST | JR_WSENV_ROOMS */
    int is_text;                               /* 1 text frame, 0 binary */
    unsigned char origin[JR_WSENV_ORIGIN_LEN]; /* who published it */
    size_t nrooms;                             /* 0 for a broadcast */
    const char **rooms;                        /* point into the decoded bytes */
    size_t *lens;
    const char *payload;                       /* points into the decoded bytes */
    size_t len;
} jr_wsenv;

/* Fill origin with a fresh random id (getrandom). Call it in the process
 * that publishes (after fork), so every worker has its own. 0 or -1. */
int jr_wsenv_new_origin(unsigned char origin[JR_WSENV_ORIGIN_LEN]);

/* Append one envelope to b. kind JR_WSENV_BROADCAST needs n == 0, kind
 * JR_WSENV_ROOMS n >= 1; lengths must fit in 32 bits. JR_WSENV_EINVALID for
 * arguments outside that (b unchanged), JR_WSENV_ENOMEM when b cannot grow
 * (b->failed is set, b->len is back where it was). */
int jr_wsenv_encode(jr_buf *b, const unsigned char origin[JR_WSENV_ORIGIN_LEN], int kind, int is_text,
                    const char *const *rooms, const size_t *lens, size_t n, const void *payload, size_t len);

/* Parse data[0..len). On JR_WSENV_OK, e's rooms and payload point into data
 * (keep data alive while using e) and e->rooms/e->lens are allocated when
 * there are rooms: release them with jr_wsenv_clear. On error e needs no
 * clearing and *why (when why is not NULL) names what was wrong, for logs. */
int jr_wsenv_decode(jr_wsenv *e, const void *data, size_t len, const char **why);

/* The origin of data[0..len) when it starts with a well-formed header
 * (magic, version), else NULL; nothing after the header is looked at. A
 * hub drops its own echoes with it before decoding (no UTF-8 scan of the
 * payload, no room arrays for a message it will not send). */
const unsigned char *jr_wsenv_origin(const void *data, size_t len);

/* Free what decode allocated; e is empty afterwards. */
void jr_wsenv_clear(jr_wsenv *e);

#endif
