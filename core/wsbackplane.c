/* wsbackplane.c - see wsbackplane.h. Glue only: the hub publishes an
 * envelope through jr_wshub_backplane.publish, the transport carries it,
 * and whatever arrives goes to jr_wshub_deliver (which drops our own). */
#include "wsbackplane.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mesh.h"
#include "prefork.h"
#include "redis.h"

enum { BP_NONE, BP_LOCAL, BP_REDIS };

struct jr_wsbp {
    int kind;
    jr_wshub *hub;
    jr_mesh *mesh;
    jr_redis *redis;
    char *channel;
    size_t clen;
    uint64_t published, received;
};

static int mesh_publish(void *impl, const void *env, size_t len)
{
    jr_wsbp *bp = impl;
    if (jr_mesh_publish(bp->mesh, env, len) != JR_MESH_OK) return -1;
    bp->published++;
    return 0;
}

static void mesh_on_message(const char *data, size_t len, void *ud)
{
    jr_wsbp *bp = ud;
    bp->received++;
    jr_wshub_deliver(bp->hub, data, len);
}

static int redis_publish(void *impl, const void *env, size_t len)
{
    jr_wsbp *bp = impl;
    if (jr_redis_publish(bp->redis, bp->channel, bp->clen, env, len) != 0) return -1;
    bp->published++;
    return 0;
}

static void redis_on_message(const char *channel, size_t clen, const char *data, size_t len, void *ud)
{
    jr_wsbp *bp = ud;
    if (clen != bp->clen || memcmp(channel, bp->channel, clen) != 0) return;
    bp->received++;
    jr_wshub_deliver(bp->hub, data, len);
}

/* Outages are logged on transitions (redis.c reports only those), so a
 * long outage is one warning, not one per retry. */
static void redis_on_state(int up, const char *why, void *ud)
{
    (void)ud;
    if (up) jr_logf(JR_LOG_INFO, NULL, "websocket backplane: connected to redis");
    else jr_logf(JR_LOG_WARN, NULL, "websocket backplane: redis is unreachable (%s); local clients still get "
                                    "every message, other instances miss what is not delivered within 5 s",
                 why ? why : "unknown");
}

jr_wsbp *jr_wsbp_start(uv_loop_t *loop, jr_wshub *hub, const char *spec, const char *channel, char *err,
                       size_t errlen)
{
    if (!loop || !hub) {
        snprintf(err, errlen, "websocket backplane: no loop or hub");
        return NULL;
    }
    jr_wsbp *bp = calloc(1, sizeof *bp);
    if (!bp) {
        snprintf(err, errlen, "websocket backplane: out of memory");
        return NULL;
    }
    bp->hub = hub;
    if (!spec || !*spec || strcmp(spec, "none") == 0) {
        bp->kind = BP_NONE;
        return bp;
    }
    if (strcmp(spec, "local") == 0) {
        bp->kind = BP_LOCAL;
        if (jr_prefork_workers() < 2) return bp; /* one process: nobody to tell */
        char ns[64];
        /* Unique per server: workers of another server have another master. */
        snprintf(ns, sizeof ns, "jararaca-%d-ws", jr_prefork_master_pid());
        jr_mesh_callbacks cb = {mesh_on_message, bp};
        bp->mesh = jr_mesh_new(loop, ns, jr_prefork_worker_index(), jr_prefork_workers(), NULL, &cb, err, errlen);
        if (!bp->mesh) {
            free(bp);
            return NULL;
        }
        jr_wshub_backplane hbp = {mesh_publish, bp};
        jr_wshub_set_backplane(hub, &hbp);
        return bp;
    }
    /* rediss:// goes to redis.c too, whose error says TLS is not supported */
    if (strncmp(spec, "redis://", 8) == 0 || strncmp(spec, "rediss://", 9) == 0) {
        if (!channel || !*channel) {
            snprintf(err, errlen, "websocket backplane: a redis backplane needs a channel name");
            free(bp);
            return NULL;
        }
        bp->kind = BP_REDIS;
        bp->clen = strlen(channel);
        bp->channel = malloc(bp->clen + 1);
        if (!bp->channel) {
            snprintf(err, errlen, "websocket backplane: out of memory");
            free(bp);
            return NULL;
        }
        memcpy(bp->channel, channel, bp->clen + 1);
        jr_redis_callbacks cb = {redis_on_message, redis_on_state, bp};
        bp->redis = jr_redis_new(loop, spec, NULL, &cb, err, errlen);
        if (!bp->redis || jr_redis_subscribe(bp->redis, bp->channel, bp->clen) != 0) {
            if (bp->redis) snprintf(err, errlen, "websocket backplane: cannot subscribe to the redis channel");
            jr_redis_free(bp->redis);
            free(bp->channel);
            free(bp);
            return NULL;
        }
        jr_wshub_backplane hbp = {redis_publish, bp};
        jr_wshub_set_backplane(hub, &hbp);
        return bp;
    }
    /* Without the user info: a mistyped URL ("Redis://", "redis:/") may
     * hold a password, and this message goes to the logs. */
    const char *at = strrchr(spec, '@'), *sep = strstr(spec, "://");
    if (at)
        snprintf(err, errlen, "websocket backplane: %.*s***@%s is not \"none\", \"local\" or a redis:// URL",
                 sep && sep < at ? (int)(sep + 3 - spec) : 0, spec, at + 1);
    else snprintf(err, errlen, "websocket backplane: %s is not \"none\", \"local\" or a redis:// URL", spec);
    free(bp);
    return NULL;
}

void jr_wsbp_stats(const jr_wsbp *bp, jr_wsbp_counters *out)
{
    memset(out, 0, sizeof *out);
    if (!bp) {
        out->kind = "none";
        return;
    }
    out->kind = bp->kind == BP_REDIS ? "redis" : bp->kind == BP_LOCAL ? "local" : "none";
    out->published = bp->published;
    out->received = bp->received;
    if (bp->mesh) {
        jr_mesh_counters m;
        jr_mesh_stats(bp->mesh, &m);
        out->dropped = m.dropped + m.lost;
        out->up = 1;
    } else if (bp->redis) {
        jr_redis_stats r;
        jr_redis_get_stats(bp->redis, &r);
        out->dropped = r.dropped;
        out->up = jr_redis_is_up(bp->redis);
    } else if (bp->kind == BP_LOCAL) {
        out->up = 1;
    }
}

void jr_wsbp_free(jr_wsbp *bp)
{
    if (!bp) return;
    if (bp->mesh || bp->redis) jr_wshub_set_backplane(bp->hub, NULL);
    jr_mesh_free(bp->mesh);
    jr_redis_free(bp->redis);
    free(bp->channel);
    free(bp);
}
