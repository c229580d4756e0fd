/* wsbackplane.h - how one instance's WebSocket hub (wshub.h) reaches the
 * others: nothing, the in-machine mesh (mesh.h) between the workers of one
 * `jararaca server --workers N`, or Redis pub/sub (redis.h).
 *
 *   jr_wsbp *bp = jr_wsbp_start(loop, hub, "redis://127.0.0.1:6379/0", "jararaca:ws:tasks", err, sizeof err);
 *   ...
 *   jr_wsbp_free(bp);       (before the hub is freed)
 *
 * spec:
 *   "none" (or NULL, "")   this instance only
 *   "local"                the mesh when this process is one of several
 *                          prefork workers, else nothing (one process has
 *                          nobody to tell)
 *   "redis://..."          Redis: every instance (every worker process)
 *                          subscribes to channel and publishes every hub
 *                          send there; the mesh is not used
 *
 * Delivery is at most once on both: a message published while Redis is
 * down waits in redis.c's bounded queue (1 MiB, 5 s) and goes out when it is
 * back, older ones are dropped and counted; a worker being restarted misses
 * what the mesh sent meanwhile. Local clients always get the message at
 * once, whatever the backplane's state. */
#ifndef JR_WSBACKPLANE_H
#define JR_WSBACKPLANE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wshub.h"

typedef struct jr_wsbp jr_wsbp;

typedef struct {
    const char *kind;          /* "none" | "local" | "redis" */
    int up;                    /* redis: both connections ready; local: 1; none: 0 */
    uint64_t published;        /* envelopes handed to the backplane */
    uint64_t received;         /* envelopes it delivered to the hub */
    uint64_t dropped;          /* redis: queued publishes dropped; local: dropped + lost */
} jr_wsbp_counters;

/* Attach a backplane to hub (jr_wshub_set_backplane). NULL with a message
 * in err for a bad spec or URL, or when the mesh socket cannot be made.
 * channel: the Redis channel (any bytes but NUL; required for redis). */
jr_wsbp *jr_wsbp_start(uv_loop_t *loop, jr_wshub *hub, const char *spec, const char *channel, char *err,
                       size_t errlen);

void jr_wsbp_stats(const jr_wsbp *bp, jr_wsbp_counters *out);

/* Detach from the hub and close the connections (memory goes with their
 * handles: keep running the loop). NULL is fine. */
void jr_wsbp_free(jr_wsbp *bp);

#endif
