/* mesh.h - the in-machine backplane: every worker process of one
 * `jararaca server --workers N` sends messages to every other one, so a
 * WebSocket broadcast on one worker reaches the clients of all of them
 * without Redis.
 *
 *   jr_mesh_callbacks cb = {on_message, ud};
 *   jr_mesh *m = jr_mesh_new(loop, "jararaca-<master pid>-ws", index, n, NULL, &cb, err, sizeof err);
 *   jr_mesh_publish(m, data, len);            (reaches the other n-1 workers)
 *   jr_mesh_free(m);                          (keep running the loop)
 *
 * Transport: worker i listens on the abstract unix socket (unix(7),
 * sun_path[0] = 0) named "<ns>-<i>". Abstract names need no file to clean
 * up and vanish with their process, so a worker the master restarts binds
 * the same name again. Each worker connects to each peer lazily, on its
 * first message for it, over a one-way stream of messages framed by a
 * 4-byte big-endian length; the peer only ever reads.
 *
 * Delivery is best effort, in order per sender: a message is queued per
 * peer while the peer is being connected to or is slow to read; the queue is
 * bounded (max_queue_bytes, counting each message's 4-byte prefix): beyond
 * it the oldest unsent messages are dropped and counted, so a stuck or dead
 * worker costs the others bounded memory and never blocks them. A peer that
 * is not there (not started yet, restarting) is retried with a doubling
 * back-off while messages wait for it; messages that were being written
 * when its connection broke are lost (counted). Nothing comes back to the
 * publisher: it never receives its own messages.
 *
 * Only processes of the same effective uid may connect (SO_PEERCRED is
 * checked on accept): abstract sockets have no file permissions, and any
 * local user could otherwise inject messages to our clients.
 *
 * Callbacks run on the loop thread. Not thread-safe: one mesh per loop. */
#ifndef JR_MESH_H
#define JR_MESH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct jr_mesh jr_mesh;

typedef struct {
    size_t max_queue_bytes; /* unsent bytes per peer; default 16 MiB; beyond -> drop oldest */
    size_t max_message;     /* largest message, both ways; default 64 MiB */
    unsigned retry_min_ms;  /* first reconnect delay; default 20 */
    unsigned retry_max_ms;  /* the back-off doubles up to this; default 1000 */
} jr_mesh_config;

void jr_mesh_config_defaults(jr_mesh_config *cfg);

typedef struct {
    /* One message from another worker; data is valid during the call. The
     * callback may publish, and may free the mesh (no more calls follow). */
    void (*on_message)(const char *data, size_t len, void *ud);
    void *ud;
} jr_mesh_callbacks;

typedef struct {
    uint64_t published;        /* jr_mesh_publish calls that queued a message */
    uint64_t sent;             /* messages written to a peer (one per peer) */
    uint64_t received;         /* messages handed to on_message */
    uint64_t dropped;          /* unsent messages dropped because a peer's queue was full */
    uint64_t lost;             /* messages being written when a connection broke */
    uint64_t connects;         /* connections made to peers */
    uint64_t connect_failures; /* attempts that found no peer listening */
    uint64_t rejected;         /* incoming connections refused (other uid) or broken (bad framing) */
    size_t queued_bytes;       /* unsent bytes now, all peers */
    int peers_connected;       /* peers with a connection now */
} jr_mesh_counters;

#define JR_MESH_OK 0
#define JR_MESH_EINVALID (-1) /* bad arguments */
#define JR_MESH_ETOOBIG (-2)  /* publish: message larger than max_message */
#define JR_MESH_ENOMEM (-3)

/* Listen as worker self (0..n-1) of n under the namespace ns (at most 90
 * bytes; make it unique per server, e.g. with the master's pid). cfg NULL =
 * defaults. NULL with a message in err when the socket cannot be made (the
 * name is taken: a worker with this index still runs). */
jr_mesh *jr_mesh_new(uv_loop_t *loop, const char *ns, int self, int n, const jr_mesh_config *cfg,
                     const jr_mesh_callbacks *cb, char *err, size_t errlen);

/* Queue data for every other worker (copied once, shared by all peers).
 * JR_MESH_OK, JR_MESH_ETOOBIG, JR_MESH_ENOMEM. With n == 1 it does nothing
 * and returns JR_MESH_OK. */
int jr_mesh_publish(jr_mesh *m, const void *data, size_t len);

void jr_mesh_stats(const jr_mesh *m, jr_mesh_counters *out);

/* Stop listening, drop queued messages and close every connection. The
 * memory goes when the handles are closed: keep running the loop. No
 * callback runs after this. NULL is fine. */
void jr_mesh_free(jr_mesh *m);

#endif
