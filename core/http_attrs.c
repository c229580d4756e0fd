/* http_attrs.c - see http_attrs.h. */
#include "http_attrs.h"

#include <string.h>
#include <strings.h>

#include "buf.h"

#define HEADER_PREFIX "http.request.header."
#define PREFIX_LEN (sizeof HEADER_PREFIX - 1)

/* (k a string literal: its length known at compile time) */
#define emit_str(fn, ud, k, v, vl) emit((fn), (ud), k, sizeof k - 1, (v), (vl))

static void emit(jr_http_attr_fn fn, void *ud, const char *k, size_t kl, const char *v, size_t vl)
{
    fn(ud, k, kl, v ? v : "", v ? vl : 0);
}

int jr_http_attr_redacted(const char *n, size_t len)
{
    static const char *const names[] = {"authorization", "cookie", "set-cookie", "proxy-authorization",
                                        "x-api-key"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == len && memcmp(names[i], n, len) == 0) return 1;
    return 0;
}

static int same_name(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && strncasecmp(a, b, al) == 0;
}

int jr_http_req_span_attrs(const jr_http_req *req, int websocket, jr_http_attr_fn fn, void *ud)
{
    size_t len;
    const char *target = jr_http_req_target(req, &len);
    emit_str(fn, ud, "http.url", target, len);
    const char *s = jr_http_req_path(req, &len);
    emit_str(fn, ud, "http.path", s, len);
    s = jr_http_req_query(req, &len);
    if (s && len > 0) emit_str(fn, ud, "http.query", s, len);
    if (websocket) {
        s = jr_http_req_target(req, &len);
        emit_str(fn, ud, "ws.url", s, len);
    }

    /* Keys are "http.request.header." + the lower-case name: a stack buffer
     * fits any name under the server's header size limit in practice; a
     * longer one, and the joined value of a repeated field, use the heap. */
    char kbuf[PREFIX_LEN + 256];
    jr_buf heap_key = JR_BUF_INIT, joined = JR_BUF_INIT;
    int rc = 0;
    size_t n = jr_http_req_header_count(req);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *name, *val;
        size_t nl, vl;
        jr_http_req_header_at(req, i, &name, &nl, &val, &vl);
        /* a repeated field is written once, joined, at its first occurrence */
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const char *pn, *pv;
            size_t pnl, pvl;
            jr_http_req_header_at(req, j, &pn, &pnl, &pv, &pvl);
            seen = same_name(pn, pnl, name, nl);
        }
        if (seen) continue;
        char *key = kbuf;
        if (PREFIX_LEN + nl > sizeof kbuf) {
            jr_buf_reset(&heap_key);
            if (jr_buf_reserve(&heap_key, PREFIX_LEN + nl) != 0) {
                rc = -1;
                break;
            }
            key = heap_key.data;
        }
        memcpy(key, HEADER_PREFIX, PREFIX_LEN);
        for (size_t k = 0; k < nl; k++) {
            char c = name[k];
            key[PREFIX_LEN + k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        if (jr_http_attr_redacted(key + PREFIX_LEN, nl)) {
            fn(ud, key, PREFIX_LEN + nl, "[redacted]", 10);
            continue;
        }
        const char *v = val;
        size_t total = vl;
        for (size_t j = i + 1; j < n; j++) {
            const char *on, *ov;
            size_t onl, ovl;
            jr_http_req_header_at(req, j, &on, &onl, &ov, &ovl);
            if (!same_name(on, onl, name, nl)) continue;
            if (v == val) {
                jr_buf_reset(&joined);
                jr_buf_append(&joined, val, vl);
            }
            jr_buf_append(&joined, ", ", 2);
            jr_buf_append(&joined, ov, ovl);
            if (joined.failed) {
                rc = -1;
                break;
            }
            v = joined.data;
            total = joined.len;
        }
        if (rc == 0) fn(ud, key, PREFIX_LEN + nl, v, total);
    }
    jr_buf_free(&heap_key);
    jr_buf_free(&joined);
    if (rc != 0) return rc;
    const char *host = jr_http_req_remote_addr(req);
    if (host && *host) emit_str(fn, ud, "http.request.client.host", host, strlen(host));
    return 0;
}
