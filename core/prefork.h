/* prefork.h - the pre-forking master (the nginx model).
 *
 * jr_prefork_run(n) forks n workers and returns in each of them with its
 * index; the calling process becomes the master and never returns: it
 * relays SIGTERM/SIGINT/SIGQUIT to the workers, restarts a worker that dies
 * after it was ready (with a back-off if it keeps crashing), and exits once
 * all workers are gone (0 when they all exited 0). A worker that dies before
 * it reported ready is a startup failure: the master stops the others and
 * exits 1, so a broken app never restart-loops. Workers report ready with
 * jr_prefork_worker_ready() and get SIGTERM if the master dies. */
#ifndef JR_PREFORK_H
#define JR_PREFORK_H

typedef struct {
    unsigned stop_timeout_ms; /* after relaying SIGTERM, SIGKILL leftovers after this (default 30000) */
} jr_prefork_opts;

/* Returns the worker index (0..n-1) in a worker; -1 with errno on a fork
 * failure before any worker started. Never returns in the master. */
int jr_prefork_run(int n, const jr_prefork_opts *opts);

/* In a worker: tell the master this worker is serving. Harmless elsewhere. */
void jr_prefork_worker_ready(void);

/* 1 in a worker forked by jr_prefork_run. */
int jr_prefork_is_worker(void);

#endif
