/* wsenv.c - see wsenv.h. */
#include "wsenv.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "wsframe.h"

#define MAGIC0 'J'
#define MAGIC1 'W'
/* magic, version, kind, frame type, origin */
#define HEAD_LEN (2 + 1 + 1 + 1 + JR_WSENV_ORIGIN_LEN)

int jr_wsenv_new_origin(unsigned char origin[JR_WSENV_ORIGIN_LEN])
{
    size_t got = 0;
    while (got < JR_WSENV_ORIGIN_LEN) {
        ssize_t r = getrandom(origin + got, JR_WSENV_ORIGIN_LEN - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int jr_wsenv_encode(jr_buf *b, const unsigned char origin[JR_WSENV_ORIGIN_LEN], int kind, int is_text,
                    const char *const *rooms, const size_t *lens, size_t n, const void *payload, size_t len)
{
    if (kind == JR_WSENV_BROADCAST ? n != 0 : kind != JR_WSENV_ROOMS || n == 0) return JR_WSENV_EINVALID;
    if (n > UINT32_MAX || len > UINT32_MAX || (len && !payload)) return JR_WSENV_EINVALID;
    /* Size it first: one reservation, and argument errors leave b as it was. */
    size_t total = HEAD_LEN + 4 + 4;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > UINT32_MAX || (lens[i] && !rooms[i])) return JR_WSENV_EINVALID;
        if (total + 4 + lens[i] < total) return JR_WSENV_EINVALID;
        total += 4 + lens[i];
    }
    if (total + len < total) return JR_WSENV_EINVALID;
    total += len;
    if (jr_buf_reserve(b, total) != 0) return JR_WSENV_ENOMEM;

    unsigned char *p = (unsigned char *)b->data + b->len;
    *p++ = MAGIC0;
    *p++ = MAGIC1;
    *p++ = JR_WSENV_VERSION;
    *p++ = (unsigned char)kind;
    *p++ = is_text ? 1 : 0;
    memcpy(p, origin, JR_WSENV_ORIGIN_LEN);
    p += JR_WSENV_ORIGIN_LEN;
    put_u32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        put_u32(p, (uint32_t)lens[i]);
        p += 4;
        if (lens[i]) memcpy(p, rooms[i], lens[i]);
        p += lens[i];
    }
    put_u32(p, (uint32_t)len);
    p += 4;
    if (len) memcpy(p, payload, len);
    b->len += total;
    return JR_WSENV_OK;
}

static int fail(const char **why, const char *msg)
{
    if (why) *why = msg;
    return JR_WSENV_EINVALID;
}

const unsigned char *jr_wsenv_origin(const void *data, size_t len)
{
    const unsigned char *p = data;
    if (!p || len < HEAD_LEN || p[0] != MAGIC0 || p[1] != MAGIC1 || p[2] != JR_WSENV_VERSION) return NULL;
    return p + 5;
}

int jr_wsenv_decode(jr_wsenv *e, const void *data, size_t len, const char **why)
{
    memset(e, 0, sizeof *e);
    const unsigned char *p = data, *end = p + len;
    if (len < HEAD_LEN + 4 + 4) return fail(why, "envelope too short");
    if (p[0] != MAGIC0 || p[1] != MAGIC1) return fail(why, "not a WebSocket envelope (bad magic)");
    if (p[2] != JR_WSENV_VERSION) return fail(why, "unsupported envelope version");
    if (p[3] != JR_WSENV_BROADCAST && p[3] != JR_WSENV_ROOMS) return fail(why, "unknown envelope kind");
    if (p[4] > 1) return fail(why, "unknown frame type");
    int kind = p[3], is_text = p[4];
    memcpy(e->origin, p + 5, JR_WSENV_ORIGIN_LEN);
    p += HEAD_LEN;
    uint32_t n = get_u32(p);
    p += 4;
    if (kind == JR_WSENV_BROADCAST && n != 0) return fail(why, "broadcast envelope with rooms");
    if (kind == JR_WSENV_ROOMS && n == 0) return fail(why, "room envelope without rooms");
    /* Each room costs at least its 4-byte length, and the payload length
     * follows: a count the bytes cannot hold is rejected before anything is
     * allocated for it. */
    if (n > (size_t)(end - p - 4) / 4) return fail(why, "room count larger than the envelope");

    /* Validate every length before allocating. */
    const unsigned char *q = p;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t rl = get_u32(q);
        q += 4;
        if (rl > (size_t)(end - q) || (size_t)(end - q) - rl < 4) return fail(why, "room name runs past the end");
        q += rl;
    }
    uint32_t plen = get_u32(q);
    q += 4;
    if (plen > (size_t)(end - q)) return fail(why, "payload runs past the end");
    if (plen != (size_t)(end - q)) return fail(why, "trailing bytes after the payload");
    /* The hub sends the payload as a text frame as it is: invalid UTF-8
     * there would make every client fail the connection (RFC 6455 §8.1).
     * Our publishers check it; anything else on a shared channel may not. */
    if (is_text && !jr_wsf_utf8_valid(q, plen)) return fail(why, "text payload is not UTF-8");

    if (n) {
        /* One block for both arrays: a single free, a single failure point. */
        void *mem = malloc((size_t)n * (sizeof(char *) + sizeof(size_t)));
        if (!mem) {
            if (why) *why = "out of memory";
            return JR_WSENV_ENOMEM;
        }
        e->lens = mem;
        e->rooms = (const char **)(e->lens + n);
        for (uint32_t i = 0; i < n; i++) {
            e->lens[i] = get_u32(p);
            p += 4;
            e->rooms[i] = (const char *)p;
            p += e->lens[i];
        }
    }
    e->kind = kind;
    e->is_text = is_text;
    e->nrooms = n;
    e->payload = (const char *)q;
    e->len = plen;
    return JR_WSENV_OK;
}

void jr_wsenv_clear(jr_wsenv *e)
{
    free(e->lens); /* the rooms array lives in the same block */
    memset(e, 0, sizeof *e);
}
