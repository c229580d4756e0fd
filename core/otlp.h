/* otlp.h - the OTLP/HTTP exporter: a bounded queue per signal (traces,
 * metrics, logs) drained by ONE exporter thread that POSTs batches as
 * application/x-protobuf, so the event loop never waits on the network.
 *
 *   jr_otlp_config cfg = {0};
 *   cfg.signal[JR_OTLP_TRACES].enabled = 1;
 *   cfg.signal[JR_OTLP_TRACES].url = "http://127.0.0.1:4318/v1/traces";
 *   cfg.resource = res; cfg.resource_len = res_len;    (an encoded Resource)
 *   cfg.scope_name = "jararaca"; cfg.scope_version = "0.1.0";
 *   jr_otlp *o = jr_otlp_new(&cfg, err, sizeof err);  (NULL + err on bad config)
 *   jr_otlp_push(o, JR_OTLP_TRACES, span, span_len);    (an encoded Span)
 *   jr_otlp_flush(o, 5000);                              (tests, shutdown)
 *   jr_otlp_stats(o, JR_OTLP_TRACES, &st);
 *   jr_otlp_free(o, 5000);
 *
 * An item is one encoded element of the signal's repeated field: a Span,
 * a Metric, a LogRecord. The thread wraps a batch as
 *   Export{Trace,Metrics,Logs}ServiceRequest { resource_*(1) { resource(1),
 *     scope_*(2) { scope(1) { name(1), version(2) }, items(2)... } } }
 * (the field numbers are the same for the three signals in
 * opentelemetry-proto).
 *
 * Delivery: 2xx = exported, but for what its body's partial_success
 * (Export*ServiceResponse field 1) says was rejected: rejected spans and log
 * records are counted failed (and in rejected), rejected metric data points
 * in rejected only (our items are Metrics, not points); the error_message
 * goes to last_error. 429, 502, 503, 504, connection errors and
 * timeouts are retried with exponential backoff and jitter (200 ms
 * doubling, capped at 5 s; a Retry-After, in seconds or as an HTTP-date,
 * is honoured: core/retry_after.h) until the
 * batch has used export_timeout_ms; then it is dropped and counted failed.
 * Any other status fails the batch at once. A TLS certificate that does not
 * verify (unknown CA, wrong host name) fails at once too: retrying cannot
 * fix a configuration error; other handshake failures (reset, timeout)
 * count as connection errors and are retried.
 *
 * Connections: one per signal, HTTP/1.1 keep-alive, reused across batches;
 * a reused connection the peer closed while idle is reopened once without
 * counting a retry. Host names are resolved with getaddrinfo on a helper
 * thread the exporter waits for within timeout_ms (and that a stop cuts
 * short): a DNS server that does not answer fails the attempt, it does not
 * hold the exporter or its shutdown (otlp_http.c).
 *
 * Thread safety: push, flush, stats and free may be called from any thread
 * (the loop's, typically). Nothing is logged from the exporter thread
 * (core/log.c is the loop's); the last error is kept in the stats. */
#ifndef JR_OTLP_H
#define JR_OTLP_H

#include <stddef.h>
#include <stdint.h>

enum { JR_OTLP_TRACES = 0, JR_OTLP_METRICS = 1, JR_OTLP_LOGS = 2, JR_OTLP_NSIGNALS = 3 };

#define JR_OTLP_OK 0
#define JR_OTLP_EFULL (-1)     /* push: queue full, the item was dropped (and counted) */
#define JR_OTLP_ETIMEDOUT (-2) /* flush/free: items still pending when the time was up */
#define JR_OTLP_EINVAL (-3)    /* push: unknown signal, or the signal is not enabled */
#define JR_OTLP_ENOMEM (-4)    /* push: could not copy the item (it is counted dropped) */

#define JR_OTLP_DEFAULT_TIMEOUT_MS 10000
#define JR_OTLP_DEFAULT_MAX_QUEUE 2048
#define JR_OTLP_DEFAULT_MAX_BATCH 512
#define JR_OTLP_DEFAULT_SCHEDULE_DELAY_MS 5000
#define JR_OTLP_DEFAULT_EXPORT_TIMEOUT_MS 30000
#define JR_OTLP_MAX_QUEUE_LIMIT 1000000 /* max_queue above this is a config error */

typedef struct {
    const char *name;
    const char *value;
} jr_otlp_header;

/* Zero fields take the defaults above. */
typedef struct {
    int enabled;
    const char *url; /* http:// or https://, full path: http://h:4318/v1/traces */
    const jr_otlp_header *headers;
    size_t nheaders;
    int timeout_ms;        /* one POST: connect, TLS, send, answer */
    int max_queue;         /* items waiting; more are dropped */
    int max_batch;         /* items per POST */
    int schedule_delay_ms; /* longest wait before a partial batch goes */
    int export_timeout_ms; /* a batch's total time, retries included */
    int gzip;              /* 1: bodies sent gzip-compressed (Content-Encoding: gzip) */
} jr_otlp_signal_config;

typedef struct {
    jr_otlp_signal_config signal[JR_OTLP_NSIGNALS];
    const void *resource; /* encoded Resource message (may be empty) */
    size_t resource_len;
    const char *scope_name;    /* InstrumentationScope.name (NULL = "") */
    const char *scope_version; /* InstrumentationScope.version (NULL = "") */
    const char *ca_file;       /* PEM CA bundle for https; NULL = the system's CAs */
    int tls_no_verify;         /* 1 = accept any certificate (tests, never default) */
} jr_otlp_config;

/* A struct tag, not a typedef: the name is also the function's. */
struct jr_otlp_stats {
    uint64_t queued;   /* items waiting now */
    uint64_t exported; /* items the collector accepted */
    uint64_t dropped;  /* items refused because the queue was full */
    uint64_t failed;   /* items given up (non-retryable answer, or out of time, or
                          spans / log records a 2xx's partial_success rejected) */
    uint64_t rejected; /* what 2xx partial_success answers rejected, in the
                          collector's unit: spans, metric data points, log records */
    uint64_t retries;  /* POST attempts that were retried */
    uint64_t batches;  /* batches exported */
    uint64_t connects; /* connections opened */
    int last_status;   /* HTTP status of the last answer (0: none / no answer) */
    char last_error[256]; /* the last failure's text ("" if none) */
};

typedef struct jr_otlp jr_otlp;

jr_otlp *jr_otlp_new(const jr_otlp_config *cfg, char *err, size_t errlen);
int jr_otlp_push(jr_otlp *o, int signal, const void *item, size_t len);
int jr_otlp_flush(jr_otlp *o, int timeout_ms);
void jr_otlp_stats(jr_otlp *o, int signal, struct jr_otlp_stats *out);
/* Flushes up to timeout_ms, then stops the thread (an export in progress
 * is abandoned and its items counted failed), joins it and frees. */
void jr_otlp_free(jr_otlp *o, int timeout_ms);

#endif
