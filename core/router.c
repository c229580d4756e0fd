/* router.c - see router.h.
 *
 * Layout: a trie with one node per template segment. A node has
 *   - static children, kept sorted by (length, bytes) so lookup is a binary
 *     search even when a prefix has hundreds of static siblings;
 *   - at most one parameter child per converter (str, int, uuid, path); the
 *     parameter *name* is not part of the node, because two routes may name
 *     the same position differently ("GET /items/{id}", "DELETE
 *     /items/{item_id}"), so names live in the route entries;
 *   - a small method table (the routes that end here) plus a precomputed
 *     Allow string for 405 answers.
 * A 'path' child is always a leaf: it swallows the rest of the path.
 *
 * Matching is a depth-first walk in priority order (static, int, uuid, str,
 * path) that backtracks out of dead ends. The first node where the path ends
 * and the method is served wins; if no such node exists but some node matched
 * the whole path, the first of those (in priority order) supplies the Allow
 * list of the 405. Nothing is allocated while matching: parameter values are
 * slices of the caller's path collected on a fixed-size stack.
 */
#include "router.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METHOD_MAX 16

typedef struct rnode rnode;

typedef struct {
    char *seg; /* segment bytes (not NUL-terminated in comparisons) */
    size_t len;
    rnode *child;
} static_edge;

typedef struct {
    char method[METHOD_MAX + 1];
    size_t mlen;
    int id;
    size_t nparams;
    char *names[JR_ROUTER_MAX_PARAMS]; /* per route, see the header comment */
    char *tmpl;                        /* original template, for conflict messages */
} route;

struct rnode {
    static_edge *statics;
    size_t nstatic, capstatic;
    rnode *param[4]; /* indexed by jr_router_conv */
    route *routes;
    size_t nroutes;
    char *allow; /* "GET, HEAD, POST" for the routes above; NULL if none */
};

struct jr_router {
    rnode root;
};

/* The order parameter children are tried in: the strict converters first so
 * "/items/5" prefers {id:int} over {name}, the catch-all last. */
static const jr_router_conv conv_order[4] = {JR_CONV_INT, JR_CONV_UUID, JR_CONV_STR,
                                             JR_CONV_PATH};

/* ---- node lifetime ---------------------------------------------------- */

static void node_free_contents(rnode *n)
{
    for (size_t i = 0; i < n->nstatic; i++) {
        node_free_contents(n->statics[i].child);
        free(n->statics[i].child);
        free(n->statics[i].seg);
    }
    free(n->statics);
    for (int k = 0; k < 4; k++) {
        if (n->param[k]) {
            node_free_contents(n->param[k]);
            free(n->param[k]);
        }
    }
    for (size_t i = 0; i < n->nroutes; i++) {
        for (size_t p = 0; p < n->routes[i].nparams; p++) free(n->routes[i].names[p]);
        free(n->routes[i].tmpl);
    }
    free(n->routes);
    free(n->allow);
}

jr_router *jr_router_new(void) { return calloc(1, sizeof(jr_router)); }

void jr_router_free(jr_router *r)
{
    if (!r) return;
    node_free_contents(&r->root);
    free(r);
}

/* ---- helpers ---------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *dup_mem(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* Static edges are ordered by length first: it is a cheap total order and the
 * length comparison settles most probes without touching the bytes. */
static int seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

/* Binary search; returns the index of the match or, via *ins, where to insert. */
static rnode *static_find(const rnode *n, const char *seg, size_t len, size_t *ins)
{
    size_t lo = 0, hi = n->nstatic;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = seg_cmp(seg, len, n->statics[mid].seg, n->statics[mid].len);
        if (c == 0) return n->statics[mid].child;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    if (ins) *ins = lo;
    return NULL;
}

static int is_ident_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_ident_char(unsigned char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }

/* RFC 9110 tchar without lower-case letters: methods are case-sensitive and
 * registered upper-case, so a lower-case one is almost certainly a typo. */
static int is_method_char(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int conv_int_ok(const char *s, size_t len)
{
    size_t i = 0;
    if (len > 0 && s[0] == '-') i = 1;
    size_t digits = len - i;
    /* 18 digits always fit int64, so callers can convert without checking. */
    if (digits < 1 || digits > 18) return 0;
    for (; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int conv_uuid_ok(const char *s, size_t len)
{
    if (len != 36) return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (!is_hex((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* ---- template parsing --------------------------------------------------- */

typedef struct {
    int is_param;
    jr_router_conv conv;
    const char *text; /* static text, or the parameter name */
    size_t len;
} tmpl_seg;

/* Parse the segment starting at tmpl[*pos] (just after a '/'); advances *pos to
 * the next '/' or the end. Returns 0 or -1 with err set. */
static int parse_segment(const char *tmpl, size_t *pos, tmpl_seg *seg, char *err, size_t errlen)
{
    size_t start = *pos, end = start;
    int braces = 0;
    while (tmpl[end] && tmpl[end] != '/') {
        if (tmpl[end] == '{' || tmpl[end] == '}') braces = 1;
        end++;
    }
    *pos = end;
    const char *s = tmpl + start;
    size_t len = end - start;

    if (!braces) {
        seg->is_param = 0;
        seg->text = s;
        seg->len = len;
        return 0;
    }

    /* Balanced means strictly alternating '{' '}' with no nesting. */
    int depth = 0, pairs = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '{') {
            if (depth) goto unbalanced;
            depth = 1;
        } else if (s[i] == '}') {
            if (!depth) goto unbalanced;
            depth = 0;
            pairs++;
        }
    }
    if (depth) goto unbalanced;
    if (pairs != 1 || s[0] != '{' || s[len - 1] != '}') {
        set_err(err, errlen, "bad route template \"%s\": a parameter must fill its whole segment",
                tmpl);
        return -1;
    }

    const char *inner = s + 1;
    size_t ilen = len - 2;
    const char *colon = memchr(inner, ':', ilen);
    size_t nlen = colon ? (size_t)(colon - inner) : ilen;
    int name_ok = nlen > 0 && is_ident_start((unsigned char)inner[0]);
    for (size_t i = 1; name_ok && i < nlen; i++) name_ok = is_ident_char((unsigned char)inner[i]);
    if (!name_ok) {
        set_err(err, errlen, "bad route template \"%s\": bad parameter name \"%.*s\"", tmpl,
                (int)nlen, inner);
        return -1;
    }

    jr_router_conv conv = JR_CONV_STR;
    if (colon) {
        const char *c = colon + 1;
        size_t clen = ilen - nlen - 1;
        static const struct { const char *name; jr_router_conv conv; } convs[] = {
            {"str", JR_CONV_STR}, {"int", JR_CONV_INT}, {"uuid", JR_CONV_UUID},
            {"path", JR_CONV_PATH}};
        size_t k;
        for (k = 0; k < 4; k++)
            if (strlen(convs[k].name) == clen && memcmp(convs[k].name, c, clen) == 0) break;
        if (k == 4) {
            set_err(err, errlen, "bad route template \"%s\": unknown converter \"%.*s\"", tmpl,
                    (int)clen, c);
            return -1;
        }
        conv = convs[k].conv;
    }
    seg->is_param = 1;
    seg->conv = conv;
    seg->text = inner;
    seg->len = nlen;
    return 0;

unbalanced:
    set_err(err, errlen, "bad route template \"%s\": unbalanced braces", tmpl);
    return -1;
}

/* Validate the whole template before touching the trie, so a rejected
 * template leaves no half-built branch behind. Fills params[] (names are
 * slices of tmpl). */
static int validate_template(const char *tmpl, tmpl_seg *params, size_t *nparams, char *err,
                             size_t errlen)
{
    if (tmpl[0] == '\0') {
        set_err(err, errlen, "bad route template \"\": empty");
        return -1;
    }
    if (tmpl[0] != '/') {
        set_err(err, errlen, "bad route template \"%s\": must start with '/'", tmpl);
        return -1;
    }
    size_t pos = 0, np = 0;
    while (tmpl[pos] == '/') {
        pos++;
        tmpl_seg seg;
        if (parse_segment(tmpl, &pos, &seg, err, errlen) != 0) return -1;
        if (!seg.is_param) continue;
        if (seg.conv == JR_CONV_PATH && tmpl[pos] != '\0') {
            set_err(err, errlen,
                    "bad route template \"%s\": a 'path' parameter must be the last segment",
                    tmpl);
            return -1;
        }
        if (np == JR_ROUTER_MAX_PARAMS) {
            set_err(err, errlen, "bad route template \"%s\": too many parameters (max %d)", tmpl,
                    JR_ROUTER_MAX_PARAMS);
            return -1;
        }
        for (size_t i = 0; i < np; i++) {
            if (params[i].len == seg.len && memcmp(params[i].text, seg.text, seg.len) == 0) {
                set_err(err, errlen, "bad route template \"%s\": duplicate parameter name \"%.*s\"",
                        tmpl, (int)seg.len, seg.text);
                return -1;
            }
        }
        params[np++] = seg;
    }
    *nparams = np;
    return 0;
}

/* ---- insertion ---------------------------------------------------------- */

static rnode *static_child_get_or_add(rnode *n, const char *seg, size_t len)
{
    size_t ins = 0;
    rnode *c = static_find(n, seg, len, &ins);
    if (c) return c;
    if (n->nstatic == n->capstatic) {
        size_t cap = n->capstatic ? n->capstatic * 2 : 4;
        static_edge *e = realloc(n->statics, cap * sizeof(*e));
        if (!e) return NULL;
        n->statics = e;
        n->capstatic = cap;
    }
    c = calloc(1, sizeof(*c));
    char *copy = dup_mem(seg, len);
    if (!c || !copy) {
        free(c);
        free(copy);
        return NULL;
    }
    memmove(&n->statics[ins + 1], &n->statics[ins], (n->nstatic - ins) * sizeof(static_edge));
    n->statics[ins] = (static_edge){copy, len, c};
    n->nstatic++;
    return c;
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Rebuild the node's Allow string: sorted, HEAD implied by GET. It is built
 * here, once per registration, so a 405 costs a copy at match time. It is
 * truncated at a method boundary to fit jr_route_match.allow. */
static int rebuild_allow(rnode *n)
{
    /* More than 64 one-letter methods could not fit the buffer anyway. */
    enum { MAX_LISTED = 64 };
    const char *names[MAX_LISTED + 1];
    size_t k = 0;
    int has_get = 0, has_head = 0;
    for (size_t i = 0; i < n->nroutes; i++) {
        if (k < MAX_LISTED) names[k++] = n->routes[i].method;
        if (strcmp(n->routes[i].method, "GET") == 0) has_get = 1;
        if (strcmp(n->routes[i].method, "HEAD") == 0) has_head = 1;
    }
    if (has_get && !has_head) names[k++] = "HEAD";
    qsort(names, k, sizeof(names[0]), str_ptr_cmp);

    char buf[sizeof(((jr_route_match *)0)->allow)];
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        size_t ml = strlen(names[i]);
        size_t need = ml + (len ? 2 : 0);
        if (len + need >= sizeof(buf)) break;
        if (len) {
            buf[len++] = ',';
            buf[len++] = ' ';
        }
        memcpy(buf + len, names[i], ml);
        len += ml;
        buf[len] = '\0';
    }
    char *a = dup_mem(buf, len);
    if (!a) return -1;
    free(n->allow);
    n->allow = a;
    return 0;
}

int jr_router_add(jr_router *r, const char *method, const char *tmpl, int route_id, char *err,
                  size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!r || !method || !tmpl) {
        set_err(err, errlen, "missing router, method or template");
        return -1;
    }
    if (route_id < 0) {
        set_err(err, errlen, "bad route id %d (must be >= 0)", route_id);
        return -1;
    }
    size_t mlen = strlen(method);
    int method_ok = mlen >= 1 && mlen <= METHOD_MAX;
    for (size_t i = 0; method_ok && i < mlen; i++) method_ok = is_method_char((unsigned char)method[i]);
    if (!method_ok) {
        set_err(err, errlen, "bad method \"%s\" (upper-case token, at most %d chars)", method,
                METHOD_MAX);
        return -1;
    }

    tmpl_seg params[JR_ROUTER_MAX_PARAMS];
    size_t nparams = 0;
    if (validate_template(tmpl, params, &nparams, err, errlen) != 0) return -1;

    /* Walk/extend the trie. Already validated, so parsing cannot fail. */
    rnode *n = &r->root;
    size_t pos = 0;
    while (tmpl[pos] == '/') {
        pos++;
        tmpl_seg seg;
        parse_segment(tmpl, &pos, &seg, NULL, 0);
        if (seg.is_param) {
            if (!n->param[seg.conv]) {
                n->param[seg.conv] = calloc(1, sizeof(rnode));
                if (!n->param[seg.conv]) goto oom;
            }
            n = n->param[seg.conv];
        } else {
            n = static_child_get_or_add(n, seg.text, seg.len);
            if (!n) goto oom;
        }
    }

    for (size_t i = 0; i < n->nroutes; i++) {
        if (n->routes[i].mlen == mlen && memcmp(n->routes[i].method, method, mlen) == 0) {
            set_err(err, errlen, "%s %s conflicts with %s %s", method, tmpl, n->routes[i].method,
                    n->routes[i].tmpl);
            return -1;
        }
    }

    route rt;
    memset(&rt, 0, sizeof(rt));
    memcpy(rt.method, method, mlen + 1);
    rt.mlen = mlen;
    rt.id = route_id;
    rt.tmpl = dup_mem(tmpl, strlen(tmpl));
    if (!rt.tmpl) goto oom;
    for (size_t i = 0; i < nparams; i++) {
        rt.names[i] = dup_mem(params[i].text, params[i].len);
        if (!rt.names[i]) goto oom_route;
        rt.nparams = i + 1;
    }
    route *grown = realloc(n->routes, (n->nroutes + 1) * sizeof(route));
    if (!grown) goto oom_route;
    n->routes = grown;
    n->routes[n->nroutes++] = rt;
    if (rebuild_allow(n) != 0) {
        /* Keep the route table and Allow string consistent: undo the add. */
        n->nroutes--;
        goto oom_route;
    }
    return 0;

oom_route:
    for (size_t i = 0; i < rt.nparams; i++) free(rt.names[i]);
    free(rt.tmpl);
oom:
    /* Empty nodes left behind are harmless: they have no routes. */
    set_err(err, errlen, "out of memory");
    return -1;
}

/* ---- matching ------------------------------------------------------------ */

typedef struct {
    const char *method;
    size_t mlen;
    int is_head;
    const char *path;
    size_t plen;
    /* Values captured along the current trie branch (a stack). */
    size_t depth;
    jr_router_conv conv[JR_ROUTER_MAX_PARAMS];
    const char *val[JR_ROUTER_MAX_PARAMS];
    size_t vlen[JR_ROUTER_MAX_PARAMS];
    /* First node that matched the whole path, for the 405 Allow list. */
    const rnode *first_terminal;
    jr_route_match *m;
} match_state;

static const route *find_method(const rnode *n, const char *method, size_t mlen)
{
    for (size_t i = 0; i < n->nroutes; i++)
        if (n->routes[i].mlen == mlen && memcmp(n->routes[i].method, method, mlen) == 0)
            return &n->routes[i];
    return NULL;
}

/* The path ended at n: accept if n serves the method. */
static int try_terminal(match_state *st, const rnode *n)
{
    if (n->nroutes == 0) return 0;
    const route *rt = find_method(n, st->method, st->mlen);
    if (!rt && st->is_head) rt = find_method(n, "GET", 3);
    if (!rt) {
        if (!st->first_terminal) st->first_terminal = n;
        return 0;
    }
    jr_route_match *m = st->m;
    m->status = JR_ROUTE_FOUND;
    m->route_id = rt->id;
    /* Every route ending at a node has the same shape, so the captured stack
     * holds exactly rt->nparams entries (depth == rt->nparams). */
    m->nparams = st->depth;
    for (size_t i = 0; i < st->depth; i++) {
        m->params[i].name = rt->names[i];
        m->params[i].conv = st->conv[i];
        m->params[i].value = st->val[i];
        m->params[i].len = st->vlen[i];
    }
    return 1;
}

/* pos is at a '/' that starts the next segment, or at plen (path consumed). */
static int match_node(match_state *st, const rnode *n, size_t pos)
{
    if (pos == st->plen) return try_terminal(st, n);

    const char *path = st->path;
    size_t seg_start = pos + 1;
    const char *slash = memchr(path + seg_start, '/', st->plen - seg_start);
    size_t seg_end = slash ? (size_t)(slash - path) : st->plen;
    const char *seg = path + seg_start;
    size_t seg_len = seg_end - seg_start;

    if (n->nstatic) {
        const rnode *c = static_find(n, seg, seg_len, NULL);
        if (c && match_node(st, c, seg_end)) return 1;
    }

    for (int k = 0; k < 4; k++) {
        jr_router_conv conv = conv_order[k];
        const rnode *c = n->param[conv];
        if (!c) continue;
        const char *v = seg;
        size_t vlen = seg_len;
        if (conv == JR_CONV_INT) {
            if (!conv_int_ok(v, vlen)) continue;
        } else if (conv == JR_CONV_UUID) {
            if (!conv_uuid_ok(v, vlen)) continue;
        } else if (conv == JR_CONV_STR) {
            if (vlen == 0) continue;
        } else {
            vlen = st->plen - seg_start; /* path: everything after the '/' */
        }
        /* Templates never exceed the limit, so neither does any trie branch. */
        size_t d = st->depth;
        st->conv[d] = conv;
        st->val[d] = v;
        st->vlen[d] = vlen;
        st->depth = d + 1;
        int ok = conv == JR_CONV_PATH ? try_terminal(st, c) : match_node(st, c, seg_end);
        st->depth = d;
        if (ok) return 1;
    }
    return 0;
}

void jr_router_match(const jr_router *r, const char *method, size_t mlen, const char *path,
                     size_t plen, jr_route_match *m)
{
    m->status = JR_ROUTE_NOT_FOUND;
    m->route_id = -1;
    m->nparams = 0;
    m->allow[0] = '\0';
    if (!r || !path || plen == 0 || path[0] != '/') return;

    match_state st;
    st.method = method ? method : "";
    st.mlen = method ? mlen : 0;
    st.is_head = st.mlen == 4 && memcmp(st.method, "HEAD", 4) == 0;
    st.path = path;
    st.plen = plen;
    st.depth = 0;
    st.first_terminal = NULL;
    st.m = m;

    if (match_node(&st, &r->root, 0)) return;
    if (st.first_terminal) {
        m->status = JR_ROUTE_METHOD_NOT_ALLOWED;
        /* allow was built to fit the buffer. */
        strcpy(m->allow, st.first_terminal->allow);
    }
}
