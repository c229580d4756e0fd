/* wshub.c - see wshub.h. */
#include "wshub.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "wsenv.h"

/* The envelope buffer is reused across sends; a one-off huge message must
 * not stay pinned to it. */
#define ENV_KEEP (64 * 1024)

struct jr_wshub {
    jr_rooms *rooms;
    jr_wshub_backplane bp;
    int has_bp;
    unsigned char origin[JR_WSENV_ORIGIN_LEN];
    jr_buf env;
    jr_wshub_counters st;
};

jr_wshub *jr_wshub_new(const jr_wshub_backplane *bp)
{
    jr_wshub *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->rooms = jr_rooms_new();
    if (!h->rooms || jr_wsenv_new_origin(h->origin) != 0) {
        jr_rooms_free(h->rooms);
        free(h);
        return NULL;
    }
    jr_buf_init(&h->env);
    jr_wshub_set_backplane(h, bp);
    return h;
}

void jr_wshub_free(jr_wshub *h)
{
    if (!h) return;
    jr_rooms_free(h->rooms);
    jr_buf_free(&h->env);
    free(h);
}

void jr_wshub_set_backplane(jr_wshub *h, const jr_wshub_backplane *bp)
{
    h->has_bp = bp && bp->publish;
    if (h->has_bp) h->bp = *bp;
}

int jr_wshub_add(jr_wshub *h, jr_ws_conn *c) { return jr_rooms_add(h->rooms, c); }
void jr_wshub_remove(jr_wshub *h, jr_ws_conn *c) { jr_rooms_remove(h->rooms, c); }
int jr_wshub_join(jr_wshub *h, jr_ws_conn *c, const char *room, size_t len)
{
    return jr_rooms_join(h->rooms, c, room, len);
}
int jr_wshub_leave(jr_wshub *h, jr_ws_conn *c, const char *room, size_t len)
{
    return jr_rooms_leave(h->rooms, c, room, len);
}
const jr_rooms *jr_wshub_rooms(const jr_wshub *h) { return h->rooms; }

void jr_wshub_stats(const jr_wshub *h, jr_wshub_counters *out) { *out = h->st; }

/* ------------------------------------------------------------ local fan-out */

typedef struct {
    jr_wshub *h;
    jr_ws_frame *f;
    long sent;
} walk;

/* One recipient. A failure (full queue: ws.c starts closing the
 * connection; its on_close, which removes it from the rooms, runs later
 * from the loop, never inside this walk) only counts. */
static void send_one(void *member, void *ud)
{
    walk *w = ud;
    if (jr_ws_send_frame(member, w->f) == JR_WS_OK) w->sent++;
    else w->h->st.send_failures++;
}

/* n == 0 with rooms == NULL: every member. */
static long fan_out(jr_wshub *h, const char *const *rooms, const size_t *lens, size_t n, const void *data,
                    size_t len, int is_text)
{
    /* No frame to encode when nobody here would get it (the common case
     * for a room send on an instance whose clients are elsewhere). */
    if (jr_rooms_members(h->rooms) == 0) return 0;
    if (rooms) {
        size_t any = 0;
        for (size_t i = 0; i < n && !any; i++) any = jr_rooms_size(h->rooms, rooms[i], lens[i]);
        if (!any) return 0;
    }
    walk w = {h, jr_ws_frame_new(data, len, is_text), 0};
    if (!w.f) return JR_WSHUB_ENOMEM;
    if (rooms) jr_rooms_each_in_any(h->rooms, rooms, lens, n, send_one, &w);
    else jr_rooms_each(h->rooms, send_one, &w);
    jr_ws_frame_release(w.f);
    return w.sent;
}

/* ------------------------------------------------------------ with the backplane */

static long send_and_publish(jr_wshub *h, int kind, const char *const *rooms, const size_t *lens, size_t n,
                             const void *data, size_t len, int is_text)
{
    if (!h || (len && !data) || (n && (!rooms || !lens))) return JR_WSHUB_EINVALID;
    if (kind == JR_WSENV_ROOMS && n == 0) return 0;
    if (h->has_bp) {
        /* Publish first: the envelope buffer is then free again before any
         * send callback runs (one could start another send), and an envelope
         * that cannot be made (lengths beyond 32 bits, no memory) fails the
         * call before any client got the message. */
        jr_buf_reset(&h->env);
        int rc = jr_wsenv_encode(&h->env, h->origin, kind, is_text, rooms, lens, n, data, len);
        if (rc == JR_WSENV_OK) {
            if (h->bp.publish(h->bp.impl, h->env.data, h->env.len) == 0) h->st.published++;
            else h->st.publish_failures++;
        }
        jr_buf_recycle(&h->env, ENV_KEEP);
        if (rc != JR_WSENV_OK) return rc == JR_WSENV_ENOMEM ? JR_WSHUB_ENOMEM : JR_WSHUB_EINVALID;
    }
    return fan_out(h, kind == JR_WSENV_ROOMS ? rooms : NULL, lens, n, data, len, is_text);
}

long jr_wshub_broadcast(jr_wshub *h, const void *data, size_t len, int is_text)
{
    return send_and_publish(h, JR_WSENV_BROADCAST, NULL, NULL, 0, data, len, is_text);
}

long jr_wshub_send(jr_wshub *h, const char *const *rooms, const size_t *lens, size_t n, const void *data,
                   size_t len, int is_text)
{
    return send_and_publish(h, JR_WSENV_ROOMS, rooms, lens, n, data, len, is_text);
}

long jr_wshub_deliver(jr_wshub *h, const void *env, size_t len)
{
    if (!h || (len && !env)) return JR_WSHUB_EINVALID;
    /* Our own echo (every publish comes back on Redis) is dropped on its
     * header: decoding it would scan the payload and allocate for nothing. */
    const unsigned char *origin = jr_wsenv_origin(env, len);
    if (origin && memcmp(origin, h->origin, sizeof h->origin) == 0) {
        h->st.own_dropped++;
        return 0;
    }
    jr_wsenv e;
    int rc = jr_wsenv_decode(&e, env, len, NULL);
    if (rc != JR_WSENV_OK) {
        if (rc == JR_WSENV_ENOMEM) return JR_WSHUB_ENOMEM;
        h->st.bad_envelopes++;
        return JR_WSHUB_EINVALID;
    }
    h->st.delivered++;
    long sent = fan_out(h, e.kind == JR_WSENV_ROOMS ? e.rooms : NULL, e.lens, e.nrooms, e.payload, e.len,
                        e.is_text);
    jr_wsenv_clear(&e);
    return sent;
}
