/* wshub.h - the WebSocket fan-out of one instance (one worker process) and
 * its bridge to a backplane (Redis, the in-machine mesh).
 *
 *   jr_wshub *h = jr_wshub_new(&bp);            (bp NULL: this instance only)
 *   jr_wshub_add(h, conn);  jr_wshub_join(h, conn, "tasks", 5);
 *   jr_wshub_send(h, rooms, lens, 1, "hi", 2, 1);  (local clients + the backplane)
 *   backplane on message:  jr_wshub_deliver(h, env, len);
 *   on close:  jr_wshub_remove(h, conn);
 *
 * A broadcast or room send encodes ONE jr_ws_frame and queues it on every
 * local recipient (ws.h's shared frames), then publishes one envelope
 * (wsenv.h) to the backplane; the other instances hand it to
 * jr_wshub_deliver, which fans it out to their clients and never publishes
 * it again. Each hub has a random origin id that it puts in what it
 * publishes, so it drops its own messages when the backplane echoes them
 * (Redis delivers to the publisher too).
 *
 * A send that fails for one recipient (its queue is full: ws.c closes that
 * connection) does not stop the walk; the connection's on_close is where
 * the caller removes it (rooms.h allows that from inside the walk).
 *
 * Text payloads must be valid UTF-8: the caller checks (the hub sends bytes
 * as given). Members are compared by address and never dereferenced except
 * through jr_ws_send_frame.
 *
 * Not thread-safe: one hub per loop (per worker process); create it after
 * fork so every worker has its own origin. */
#ifndef JR_WSHUB_H
#define JR_WSHUB_H

#include <stddef.h>
#include <stdint.h>

#include "rooms.h"
#include "ws.h"

typedef struct jr_wshub jr_wshub;

/* How the hub reaches the other instances. publish gets one encoded
 * envelope (copy it if needed after return) and returns 0, or non-zero when
 * it could not take it (counted, the local fan-out happened anyway). */
typedef struct {
    int (*publish)(void *impl, const void *env, size_t len);
    void *impl;
} jr_wshub_backplane;

typedef struct {
    uint64_t published;        /* envelopes the backplane took */
    uint64_t publish_failures; /* envelopes it refused */
    uint64_t delivered;        /* envelopes from the backplane fanned out here */
    uint64_t own_dropped;      /* envelopes of our own that came back */
    uint64_t bad_envelopes;    /* envelopes that did not decode */
    uint64_t send_failures;    /* recipients whose jr_ws_send_frame failed */
} jr_wshub_counters;

#define JR_WSHUB_EINVALID (-1) /* bad arguments, or an envelope that does not decode */
#define JR_WSHUB_ENOMEM (-2)

/* bp is copied; NULL = no backplane. NULL when out of memory. */
jr_wshub *jr_wshub_new(const jr_wshub_backplane *bp);
/* Frees the hub and its bookkeeping (not the connections). NULL is fine. */
void jr_wshub_free(jr_wshub *h);
/* Attach, replace or (NULL) detach the backplane: the mesh or Redis may
 * only exist after the hub does (the mesh's on_message needs the hub). */
void jr_wshub_set_backplane(jr_wshub *h, const jr_wshub_backplane *bp);

/* Membership, as rooms.h: add 1 added / 0 known / -1 OOM; remove is safe
 * for unknown connections and leaves every room; join 1/0/-1 (adds the
 * connection if unknown); leave 1/0. */
int jr_wshub_add(jr_wshub *h, jr_ws_conn *c);
void jr_wshub_remove(jr_wshub *h, jr_ws_conn *c);
int jr_wshub_join(jr_wshub *h, jr_ws_conn *c, const char *room, size_t len);
int jr_wshub_leave(jr_wshub *h, jr_ws_conn *c, const char *room, size_t len);
/* The membership, for counts (jr_rooms_size, jr_rooms_members, ...). */
const jr_rooms *jr_wshub_rooms(const jr_wshub *h);

/* Publish to the backplane, then send to every member here. Returns how
 * many local connections the frame was queued on (>= 0), JR_WSHUB_EINVALID
 * (bad arguments, or a message too big for an envelope: nothing sent or
 * published) or JR_WSHUB_ENOMEM (nothing sent here; when only the local
 * frame could not be made, the backplane has it). */
long jr_wshub_broadcast(jr_wshub *h, const void *data, size_t len, int is_text);
/* Send to the members of any of n rooms (each once), and publish. n == 0
 * sends nothing and returns 0. Returns as jr_wshub_broadcast. */
long jr_wshub_send(jr_wshub *h, const char *const *rooms, const size_t *lens, size_t n, const void *data,
                   size_t len, int is_text);

/* An envelope from the backplane: drop it when its header names us (our
 * own echo, not decoded further), else decode it and fan it out here (never
 * publish it). Returns the local recipients (0 for our own),
 * JR_WSHUB_EINVALID for a malformed envelope (counted; nothing sent),
 * JR_WSHUB_ENOMEM. */
long jr_wshub_deliver(jr_wshub *h, const void *env, size_t len);

void jr_wshub_stats(const jr_wshub *h, jr_wshub_counters *out);

#endif
