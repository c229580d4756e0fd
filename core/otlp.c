/* otlp.c - the OTLP exporter: per-signal bounded queues filled by the loop
 * (jr_otlp_push: a malloc, a memcpy and a mutex), drained by one exporter
 * thread that batches, wraps the batch in the signal's Export*Request and
 * POSTs it (otlp_http.c), retrying as otlp.h says. */
#include "otlp.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <zlib.h>

#include "buf.h"
#include "otlp_int.h"
#include "pb.h"

#define BACKOFF_START_MS 200
#define BACKOFF_CAP_MS 5000

typedef struct {
    void *data;
    size_t len;
} item;

typedef struct {
    int enabled;
    jr_otlp_signal_config cfg; /* defaults applied; url/headers not kept */
    jr_otlp_url url;
    char *head; /* request line + fixed headers, up to the Content-Length */
    size_t head_len;
    item *ring; /* max_queue slots */
    size_t first, count;
    item *batch;           /* max_batch slots: the batch being exported */
    uint64_t since_ms;     /* when the oldest waiting item arrived */
    size_t flush_left;     /* items a flush still wants out */
    jr_otlp_conn conn;     /* exporter thread only */
    jr_buf body, req, gz;  /* exporter thread only */
    struct jr_otlp_stats st;     /* under the mutex (queued is computed) */
} sig;

struct jr_otlp {
    uv_mutex_t mu;
    uv_cond_t wake; /* the thread: work, stop, flush */
    uv_cond_t done; /* flushers: a flush finished */
    uv_thread_t thread;
    int stop;
    int wake_pipe[2]; /* readable = stop: cuts a POST in progress short */
    uint64_t flush_req, flush_done;
    SSL_CTX *ssl;
    char *resource;
    size_t resource_len;
    jr_buf scope; /* the encoded InstrumentationScope */
    uint64_t rng;
    int rr; /* where pick() starts looking */
    sig s[JR_OTLP_NSIGNALS];
};

static const char *const signal_names[JR_OTLP_NSIGNALS] = {"traces", "metrics", "logs"};
/* what each signal's partial_success.rejected_<items> counts */
static const char *const item_units[JR_OTLP_NSIGNALS] = {"spans", "data points", "log records"};

/* ---- protobuf: the envelope is all length-delimited fields ---- */

/* field, wire type 2, length (the bytes follow) */
static void put_len_field(jr_buf *b, int field, size_t len)
{
    jr_pb_tag(b, (uint32_t)field, JR_PB_LEN);
    jr_pb_varint(b, len);
}

/* a field's size with its one-byte tag (fields 1, 2) */
static size_t field_size(size_t len) { return 1 + (size_t)jr_pb_varint_len(len) + len; }

/* out = gzip(d[0..n)). 0, or -1 (out of memory or a zlib error). */
static int gzip_into(jr_buf *out, const char *d, size_t n)
{
    jr_buf_recycle(out, 4u << 20);
    if (n > UINT32_MAX / 2) return -1; /* zlib counts in uInt */
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 15 + 16: a gzip wrapper, which Content-Encoding: gzip means (not zlib's) */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    uLong bound = deflateBound(&z, (uLong)n);
    if (jr_buf_reserve(out, bound) != 0) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)d;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH); /* deflateBound room: one call finishes */
    out->len = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

static int encode_request(jr_otlp *o, sig *s, size_t n)
{
    jr_buf *b = &s->body;
    jr_buf_recycle(b, 4u << 20);
    size_t items = 0;
    for (size_t i = 0; i < n; i++) items += field_size(s->batch[i].len);
    size_t scoped = field_size(o->scope.len) + items;                    /* Scope{Spans,Metrics,Logs} */
    size_t resourced = field_size(o->resource_len) + field_size(scoped); /* Resource{...} */
    put_len_field(b, 1, resourced);                                      /* resource_spans/metrics/logs */
    put_len_field(b, 1, o->resource_len);
    jr_buf_append(b, o->resource, o->resource_len);
    put_len_field(b, 2, scoped); /* scope_spans/metrics/logs */
    put_len_field(b, 1, o->scope.len);
    jr_buf_append(b, o->scope.data, o->scope.len);
    for (size_t i = 0; i < n; i++) {
        put_len_field(b, 2, s->batch[i].len); /* spans / metrics / log_records */
        jr_buf_append(b, s->batch[i].data, s->batch[i].len);
    }
    if (s->cfg.gzip) {
        if (b->failed || gzip_into(&s->gz, b->data, b->len) != 0) return -1;
        b = &s->gz;
    }
    jr_buf *r = &s->req;
    jr_buf_recycle(r, 4u << 20);
    char cl[48];
    int k = snprintf(cl, sizeof cl, "Content-Length: %zu\r\n\r\n", b->len);
    jr_buf_append(r, s->head, s->head_len);
    jr_buf_append(r, cl, (size_t)k);
    jr_buf_append(r, b->data, b->len);
    return b->failed || r->failed ? -1 : 0;
}

/* ---- the exporter thread ---- */

static unsigned next_rand(jr_otlp *o)
{
    o->rng ^= o->rng << 13;
    o->rng ^= o->rng >> 7;
    o->rng ^= o->rng << 17;
    return (unsigned)(o->rng >> 32);
}

/* Under the mutex: sleeps up to ms unless stopping. 0, or -1 when stopped. */
static int pause_ms(jr_otlp *o, uint64_t ms)
{
    uint64_t until = jr_otlp_now_ms() + ms;
    while (!o->stop) {
        uint64_t now = jr_otlp_now_ms();
        if (now >= until) return 0;
        (void)uv_cond_timedwait(&o->wake, &o->mu, (until - now) * 1000000u);
    }
    return -1;
}

/* Exports s->batch[0..n) (called without the mutex, returns with it held). */
static void export_batch(jr_otlp *o, sig *s, size_t n)
{
    uint64_t start = jr_otlp_now_ms(), deadline = start + (uint64_t)s->cfg.export_timeout_ms;
    int ok = 0, attempts = 0;
    char why[256] = "";
    int64_t rejected = 0; /* what a 2xx said it rejected (partial success) */
    if (encode_request(o, s, n) != 0) {
        snprintf(why, sizeof why, "out of memory encoding a batch of %zu", n);
        uv_mutex_lock(&o->mu);
        goto out;
    }
    for (;;) {
        uint64_t now = jr_otlp_now_ms();
        uint64_t left = deadline > now ? deadline - now : 0;
        if (left == 0) {
            uv_mutex_lock(&o->mu);
            break;
        }
        int t = s->cfg.timeout_ms < (int)left ? s->cfg.timeout_ms : (int)left;
        jr_otlp_result r;
        jr_otlp_post(&s->conn, o->ssl, &s->url, s->req.data, s->req.len, t, o->wake_pipe[0], &r);
        attempts++;
        uv_mutex_lock(&o->mu);
        if (r.connected) s->st.connects++;
        s->st.last_status = r.status;
        if (r.status >= 200 && r.status <= 299) {
            ok = 1;
            rejected = r.rejected;
            if (rejected > 0)
                snprintf(why, sizeof why, "the collector rejected %lld %s of a batch of %zu: %.150s", (long long)rejected,
                         item_units[s - o->s], n, r.partial_msg[0] ? r.partial_msg : "(no message)");
            break;
        }
        snprintf(why, sizeof why, "%s", r.err);
        /* every failed attempt is shown, retried or not */
        snprintf(s->st.last_error, sizeof s->st.last_error, "%s", why);
        int retryable = !r.aborted && !r.fatal &&
                        (r.status == 0 || r.status == 429 || r.status == 502 || r.status == 503 || r.status == 504);
        if (!retryable) break;
        uint64_t wait;
        if (r.retry_after_ms >= 0) {
            wait = (uint64_t)r.retry_after_ms;
        } else {
            uint64_t b = (uint64_t)BACKOFF_START_MS << (attempts - 1 < 5 ? attempts - 1 : 5);
            if (b > BACKOFF_CAP_MS) b = BACKOFF_CAP_MS;
            /* jitter: half fixed, half random, so many exporters that
             * failed together do not come back together */
            wait = b / 2 + next_rand(o) % (b / 2 + 1);
        }
        if (jr_otlp_now_ms() + wait >= deadline) {
            size_t l = strlen(why);
            snprintf(why + l, sizeof why - l, " (gave up after %d attempts: export timeout)", attempts);
            break;
        }
        s->st.retries++;
        if (pause_ms(o, wait) != 0) {
            snprintf(why, sizeof why, "the exporter was stopped");
            break;
        }
        uv_mutex_unlock(&o->mu);
    }
    if (!ok && why[0] == '\0') snprintf(why, sizeof why, "export timeout after %d attempts", attempts);
out:
    if (ok) {
        /* Spans and log records are our items: the rejected ones move from
         * exported to failed. A metric's collector counts data points, not
         * our Metric items: those are in rejected only. */
        size_t lost = 0;
        if (rejected > 0) {
            s->st.rejected += (uint64_t)rejected;
            if (s - o->s != JR_OTLP_METRICS) lost = (uint64_t)rejected < n ? (size_t)rejected : n;
            snprintf(s->st.last_error, sizeof s->st.last_error, "%s", why);
        }
        s->st.exported += n - lost;
        s->st.failed += lost;
        s->st.batches++;
    } else {
        s->st.failed += n;
        snprintf(s->st.last_error, sizeof s->st.last_error, "%s", why);
    }
    for (size_t i = 0; i < n; i++) free(s->batch[i].data);
}

/* Under the mutex: the signal whose batch should go now, or NULL and
 * *wait_ms (UINT64_MAX: nothing waits). The search starts after the last
 * signal picked, so a busy one (spans under load) cannot starve the others. */
static sig *pick(jr_otlp *o, uint64_t *wait_ms)
{
    uint64_t now = jr_otlp_now_ms();
    *wait_ms = UINT64_MAX;
    for (int k = 0; k < JR_OTLP_NSIGNALS; k++) {
        int i = (o->rr + k) % JR_OTLP_NSIGNALS;
        sig *s = &o->s[i];
        if (!s->enabled || s->count == 0) {
            s->flush_left = 0;
            continue;
        }
        uint64_t due = s->since_ms + (uint64_t)s->cfg.schedule_delay_ms;
        if (s->flush_left > 0 || s->count >= (size_t)s->cfg.max_batch || now >= due) {
            o->rr = i + 1;
            return s;
        }
        if (due - now < *wait_ms) *wait_ms = due - now;
    }
    return NULL;
}

static void thread_main(void *arg)
{
    jr_otlp *o = arg;
    /* A write to a socket the peer closed must come back as EPIPE, not
     * kill the process (OpenSSL writes without MSG_NOSIGNAL). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    uv_mutex_lock(&o->mu);
    while (!o->stop) {
        uint64_t wait;
        sig *s = pick(o, &wait);
        if (!s) {
            if (o->flush_done != o->flush_req) {
                o->flush_done = o->flush_req;
                uv_cond_broadcast(&o->done);
                continue;
            }
            if (wait == UINT64_MAX) uv_cond_wait(&o->wake, &o->mu);
            else (void)uv_cond_timedwait(&o->wake, &o->mu, wait * 1000000u);
            continue;
        }
        size_t cap = s->cfg.max_queue, n = s->count < (size_t)s->cfg.max_batch ? s->count : (size_t)s->cfg.max_batch;
        for (size_t i = 0; i < n; i++) {
            s->batch[i] = s->ring[s->first];
            s->first = (s->first + 1) % cap;
        }
        s->count -= n;
        s->flush_left = s->flush_left > n ? s->flush_left - n : 0;
        s->since_ms = jr_otlp_now_ms();
        uv_mutex_unlock(&o->mu);
        export_batch(o, s, n); /* returns with the mutex held */
    }
    uv_mutex_unlock(&o->mu);
}

/* ---- the API ---- */

static int check_header(const jr_otlp_header *h, char *err, size_t errlen)
{
    if (!h->name || !h->name[0] || !h->value) {
        snprintf(err, errlen, "a header has no name or no value");
        return -1;
    }
    for (const char *p = h->name; *p; p++)
        if (*p <= ' ' || *p == ':' || *p == 0x7f) {
            snprintf(err, errlen, "header name \"%s\" is not a valid HTTP header name", h->name);
            return -1;
        }
    for (const char *p = h->value; *p; p++)
        if (*p == '\r' || *p == '\n') {
            snprintf(err, errlen, "the value of header \"%s\" contains a line break", h->name);
            return -1;
        }
    return 0;
}

static int setup_signal(jr_otlp *o, int i, const jr_otlp_signal_config *c, char *err, size_t errlen)
{
    sig *s = &o->s[i];
    s->conn.fd = -1;
    if (!c->enabled) return 0;
    const char *name = signal_names[i];
    char e[300];
    if (!c->url) {
        snprintf(err, errlen, "otlp %s: no URL", name);
        return -1;
    }
    if (jr_otlp_url_parse(c->url, &s->url, e, sizeof e) != 0) {
        snprintf(err, errlen, "otlp %s: %s", name, e);
        return -1;
    }
    if (c->timeout_ms < 0 || c->max_queue < 0 || c->max_batch < 0 || c->schedule_delay_ms < 0 ||
        c->export_timeout_ms < 0) {
        snprintf(err, errlen, "otlp %s: sizes and times must not be negative", name);
        return -1;
    }
    if (c->max_queue > JR_OTLP_MAX_QUEUE_LIMIT) {
        /* the ring is allocated up front: a typo must not take gigabytes */
        snprintf(err, errlen, "otlp %s: max_queue %d is above the limit of %d", name, c->max_queue,
                 JR_OTLP_MAX_QUEUE_LIMIT);
        return -1;
    }
    s->cfg = *c;
    s->cfg.url = NULL;
    s->cfg.headers = NULL;
    if (!s->cfg.timeout_ms) s->cfg.timeout_ms = JR_OTLP_DEFAULT_TIMEOUT_MS;
    if (!s->cfg.max_queue) s->cfg.max_queue = JR_OTLP_DEFAULT_MAX_QUEUE;
    if (!s->cfg.max_batch) s->cfg.max_batch = JR_OTLP_DEFAULT_MAX_BATCH;
    if (!s->cfg.schedule_delay_ms) s->cfg.schedule_delay_ms = JR_OTLP_DEFAULT_SCHEDULE_DELAY_MS;
    if (!s->cfg.export_timeout_ms) s->cfg.export_timeout_ms = JR_OTLP_DEFAULT_EXPORT_TIMEOUT_MS;
    if (s->cfg.max_batch > s->cfg.max_queue) s->cfg.max_batch = s->cfg.max_queue;
    jr_buf h = JR_BUF_INIT;
    char line[512];
    int k = snprintf(line, sizeof line, "POST %s HTTP/1.1\r\nHost: %s\r\n", s->url.path, s->url.authority);
    if (k < 0 || (size_t)k >= sizeof line) {
        snprintf(err, errlen, "otlp %s: the URL is too long", name);
        return -1;
    }
    jr_buf_append(&h, line, (size_t)k);
    static const char fixed[] = "Content-Type: application/x-protobuf\r\nUser-Agent: jararaca-otlp\r\n";
    jr_buf_append(&h, fixed, sizeof fixed - 1);
    if (c->gzip) jr_buf_append(&h, "Content-Encoding: gzip\r\n", 24);
    for (size_t j = 0; j < c->nheaders; j++) {
        if (check_header(&c->headers[j], e, sizeof e) != 0) {
            jr_buf_free(&h);
            snprintf(err, errlen, "otlp %s: %s", name, e);
            return -1;
        }
        jr_buf_append(&h, c->headers[j].name, strlen(c->headers[j].name));
        jr_buf_append(&h, ": ", 2);
        jr_buf_append(&h, c->headers[j].value, strlen(c->headers[j].value));
        jr_buf_append(&h, "\r\n", 2);
    }
    s->ring = calloc((size_t)s->cfg.max_queue, sizeof *s->ring);
    s->batch = calloc((size_t)s->cfg.max_batch, sizeof *s->batch);
    if (h.failed || !s->ring || !s->batch) {
        jr_buf_free(&h);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->head = h.data;
    s->head_len = h.len;
    s->enabled = 1;
    return 0;
}

static int setup_tls(jr_otlp *o, const jr_otlp_config *cfg, char *err, size_t errlen)
{
    o->ssl = SSL_CTX_new(TLS_client_method());
    if (!o->ssl) {
        snprintf(err, errlen, "otlp: cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(o->ssl, TLS1_2_VERSION);
    SSL_CTX_set_verify(o->ssl, cfg->tls_no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    int ok = cfg->ca_file ? SSL_CTX_load_verify_locations(o->ssl, cfg->ca_file, NULL)
                          : SSL_CTX_set_default_verify_paths(o->ssl);
    if (ok != 1) {
        char e[160];
        ERR_error_string_n(ERR_get_error(), e, sizeof e);
        ERR_clear_error();
        if (cfg->ca_file) snprintf(err, errlen, "otlp: cannot load the CA file %s: %s", cfg->ca_file, e);
        else snprintf(err, errlen, "otlp: cannot load the system CA certificates: %s", e);
        return -1;
    }
    return 0;
}

static void destroy(jr_otlp *o)
{
    for (int i = 0; i < JR_OTLP_NSIGNALS; i++) {
        sig *s = &o->s[i];
        if (s->ring)
            for (size_t j = 0; j < s->count; j++) free(s->ring[(s->first + j) % (size_t)s->cfg.max_queue].data);
        free(s->ring);
        free(s->batch);
        free(s->head);
        jr_otlp_conn_close(&s->conn);
        jr_otlp_url_free(&s->url);
        jr_buf_free(&s->body);
        jr_buf_free(&s->req);
        jr_buf_free(&s->gz);
    }
    if (o->ssl) SSL_CTX_free(o->ssl);
    if (o->wake_pipe[0] >= 0) close(o->wake_pipe[0]);
    if (o->wake_pipe[1] >= 0) close(o->wake_pipe[1]);
    free(o->resource);
    jr_buf_free(&o->scope);
    free(o);
}

jr_otlp *jr_otlp_new(const jr_otlp_config *cfg, char *err, size_t errlen)
{
    jr_otlp *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    o->wake_pipe[0] = o->wake_pipe[1] = -1;
    for (int i = 0; i < JR_OTLP_NSIGNALS; i++) o->s[i].conn.fd = -1;
    int tls = 0;
    for (int i = 0; i < JR_OTLP_NSIGNALS; i++) {
        if (setup_signal(o, i, &cfg->signal[i], err, errlen) != 0) goto fail;
        tls |= o->s[i].enabled && o->s[i].url.tls;
    }
    if (tls && setup_tls(o, cfg, err, errlen) != 0) goto fail;
    if (cfg->resource_len) {
        o->resource = malloc(cfg->resource_len);
        if (!o->resource) goto nomem;
        memcpy(o->resource, cfg->resource, cfg->resource_len);
        o->resource_len = cfg->resource_len;
    }
    const char *sn = cfg->scope_name ? cfg->scope_name : "", *sv = cfg->scope_version ? cfg->scope_version : "";
    if (*sn) { /* proto3: empty strings are left out */
        put_len_field(&o->scope, 1, strlen(sn));
        jr_buf_append(&o->scope, sn, strlen(sn));
    }
    if (*sv) {
        put_len_field(&o->scope, 2, strlen(sv));
        jr_buf_append(&o->scope, sv, strlen(sv));
    }
    if (o->scope.failed) goto nomem;
    o->rng = uv_hrtime() | 1;
    if (pipe2(o->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "otlp: pipe: %s", strerror(errno));
        goto fail;
    }
    if (uv_mutex_init(&o->mu) != 0) goto nomem;
    if (uv_cond_init(&o->wake) != 0) {
        uv_mutex_destroy(&o->mu);
        goto nomem;
    }
    if (uv_cond_init(&o->done) != 0) {
        uv_cond_destroy(&o->wake);
        uv_mutex_destroy(&o->mu);
        goto nomem;
    }
    int rc = uv_thread_create(&o->thread, thread_main, o);
    if (rc != 0) {
        snprintf(err, errlen, "otlp: cannot start the exporter thread: %s", uv_strerror(rc));
        uv_cond_destroy(&o->done);
        uv_cond_destroy(&o->wake);
        uv_mutex_destroy(&o->mu);
        goto fail;
    }
    return o;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    destroy(o);
    return NULL;
}

int jr_otlp_push(jr_otlp *o, int signal, const void *data, size_t len)
{
    if (signal < 0 || signal >= JR_OTLP_NSIGNALS || !o->s[signal].enabled) return JR_OTLP_EINVAL;
    sig *s = &o->s[signal];
    /* Copy outside the lock: the thread may be taking a batch. */
    void *copy = malloc(len ? len : 1);
    if (copy && len) memcpy(copy, data, len);
    uv_mutex_lock(&o->mu);
    if (!copy || s->count >= (size_t)s->cfg.max_queue) {
        s->st.dropped++;
        uv_mutex_unlock(&o->mu);
        free(copy);
        return copy ? JR_OTLP_EFULL : JR_OTLP_ENOMEM;
    }
    s->ring[(s->first + s->count) % (size_t)s->cfg.max_queue] = (item){copy, len};
    s->count++;
    /* The thread sleeps without a deadline while nothing waits (wake it to
     * start the schedule delay), and until the delay otherwise (wake it
     * when a full batch is ready). */
    if (s->count == 1) s->since_ms = jr_otlp_now_ms();
    if (s->count == 1 || s->count == (size_t)s->cfg.max_batch) uv_cond_signal(&o->wake);
    uv_mutex_unlock(&o->mu);
    return JR_OTLP_OK;
}

int jr_otlp_flush(jr_otlp *o, int timeout_ms)
{
    uint64_t until = jr_otlp_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    uv_mutex_lock(&o->mu);
    uint64_t ticket = ++o->flush_req;
    for (int i = 0; i < JR_OTLP_NSIGNALS; i++) o->s[i].flush_left = o->s[i].count;
    uv_cond_signal(&o->wake);
    int rc = JR_OTLP_OK;
    while (o->flush_done < ticket) {
        uint64_t now = jr_otlp_now_ms();
        if (now >= until || o->stop) {
            rc = JR_OTLP_ETIMEDOUT;
            break;
        }
        (void)uv_cond_timedwait(&o->done, &o->mu, (until - now) * 1000000u);
    }
    uv_mutex_unlock(&o->mu);
    return rc;
}

void jr_otlp_stats(jr_otlp *o, int signal, struct jr_otlp_stats *out)
{
    memset(out, 0, sizeof *out);
    if (signal < 0 || signal >= JR_OTLP_NSIGNALS) return;
    uv_mutex_lock(&o->mu);
    *out = o->s[signal].st;
    out->queued = o->s[signal].count;
    uv_mutex_unlock(&o->mu);
}

void jr_otlp_free(jr_otlp *o, int timeout_ms)
{
    if (!o) return;
    (void)jr_otlp_flush(o, timeout_ms);
    uv_mutex_lock(&o->mu);
    o->stop = 1;
    uv_cond_broadcast(&o->wake);
    uv_mutex_unlock(&o->mu);
    char one = 1;
    ssize_t k = write(o->wake_pipe[1], &one, 1); /* cut a POST in progress short */
    (void)k;
    uv_thread_join(&o->thread);
    uv_cond_destroy(&o->done);
    uv_cond_destroy(&o->wake);
    uv_mutex_destroy(&o->mu);
    destroy(o);
}
