/* prefork.h - the pre-forking master (the nginx model) and its watchdog.
 *
 * jr_prefork_run(n) forks n workers and returns in each of them with its
 * index; the calling process becomes the master and never returns: it
 * relays SIGTERM/SIGINT/SIGQUIT to the workers, restarts a worker that dies
 * after it was ready (with a back-off if it keeps crashing), and exits once
 * all workers are gone (0 when they all exited 0). A worker that dies before
 * it reported ready is a startup failure: the master stops the others and
 * exits 1, so a broken app never restart-loops. Workers report ready with
 * jr_prefork_worker_ready() and get SIGTERM if the master dies.
 *
 * The watchdog (opts.worker_timeout_ms > 0): a ready worker calls
 * jr_prefork_heartbeat() from its event loop every
 * jr_prefork_heartbeat_interval_ms(); the beats land in memory shared with
 * the master. When a worker's last beat is older than the timeout, the
 * master sends it JR_PREFORK_WATCHDOG_SIGNAL (the worker is expected to log
 * where it is stuck and exit), SIGKILLs it JR_PREFORK_WATCHDOG_GRACE_MS later
 * if it is still there, and starts a replacement. The master only reads the
 * shared memory: a stuck worker costs it nothing. */
#ifndef JR_PREFORK_H
#define JR_PREFORK_H

#include <signal.h>

typedef struct {
    unsigned stop_timeout_ms;   /* after relaying SIGTERM, SIGKILL leftovers after this (default 30000) */
    unsigned worker_timeout_ms; /* watchdog: replace a worker whose loop stalls this long; 0 = off */
} jr_prefork_opts;

/* The signal a stuck worker gets first, and how long it has to exit after it. */
#define JR_PREFORK_WATCHDOG_SIGNAL SIGUSR2
#define JR_PREFORK_WATCHDOG_GRACE_MS 2000

/* Returns the worker index (0..n-1) in a worker; -1 with errno on a fork
 * failure before any worker started. Never returns in the master. */
int jr_prefork_run(int n, const jr_prefork_opts *opts);

/* In a worker: tell the master this worker is serving. Harmless elsewhere.
 * Under a watchdog, beat once before: the master watches a worker from the
 * moment it reads "ready". */
void jr_prefork_worker_ready(void);

/* 1 in a worker forked by jr_prefork_run. */
int jr_prefork_is_worker(void);

/* What a worker needs to find its siblings (the in-machine WebSocket
 * backplane names its sockets after them): its index (0..n-1, 0 outside a
 * worker), the number of workers (1 outside a worker) and the master's pid
 * (0 outside a worker). A restarted worker gets the index of the one it
 * replaces. */
int jr_prefork_worker_index(void);
int jr_prefork_workers(void);
int jr_prefork_master_pid(void);

/* In a worker under a watchdog: the worker timeout, and how often to beat
 * (a quarter of it, at most 1 s); both 0 when there is no watchdog. */
unsigned jr_prefork_worker_timeout_ms(void);
unsigned jr_prefork_heartbeat_interval_ms(void);

/* In a worker under a watchdog: record that the event loop is turning (one
 * clock read and one store to shared memory). A no-op elsewhere. */
void jr_prefork_heartbeat(void);

#endif
