/* router.h - path-template router: method + path -> route id + params.
 *
 * Templates are '/'-separated segments; a segment is either static text or
 * one parameter "{name}" / "{name:conv}" filling the whole segment, with
 * conv one of:
 *   str   (default) one non-empty segment
 *   int   optional '-' then 1..18 digits (no leading '+', fits int64)
 *   uuid  8-4-4-4-12 hex digits, any case
 *   path  the rest of the path, possibly empty or containing '/'; only last
 * Matching is by segments over a trie: at each level a static child wins over
 * a parameter child, int/uuid parameters are tried before str, path last; the
 * matcher backtracks, so "/a/{x}/c" and "/a/b/{y}" both match what they
 * should. A trailing slash is significant ("/a" and "/a/" are different). The
 * path given to jr_router_match is already percent-decoded.
 *
 * Result: JR_ROUTE_FOUND with the route id and the parameter values (slices
 * of the path), or JR_ROUTE_NOT_FOUND (404), or JR_ROUTE_METHOD_NOT_ALLOWED
 * (405) with the Allow list (methods registered on the matched path,
 * comma-separated, sorted, with HEAD implied by GET).
 * A HEAD request matches a GET route when no HEAD route exists.
 */
#ifndef JR_ROUTER_H
#define JR_ROUTER_H

#include <stddef.h>

#define JR_ROUTER_MAX_PARAMS 16

typedef struct jr_router jr_router;

typedef enum { JR_CONV_STR = 0, JR_CONV_INT, JR_CONV_UUID, JR_CONV_PATH } jr_router_conv;

typedef struct {
    const char *name;  /* NUL-terminated, owned by the router */
    jr_router_conv conv;
    const char *value; /* slice of the matched path */
    size_t len;
} jr_router_param;

typedef enum {
    JR_ROUTE_FOUND = 0,
    JR_ROUTE_NOT_FOUND = 1,
    JR_ROUTE_METHOD_NOT_ALLOWED = 2
} jr_route_status;

typedef struct {
    jr_route_status status;
    int route_id;
    size_t nparams;
    jr_router_param params[JR_ROUTER_MAX_PARAMS];
    char allow[128]; /* "GET, HEAD, POST" for 405 */
} jr_route_match;

jr_router *jr_router_new(void);
void jr_router_free(jr_router *r);

/* Register route_id (>= 0) for method (upper-case token, e.g. "GET") and
 * template. Returns 0, or -1 with a message in err: bad template (empty,
 * not starting with '/', unbalanced braces, unknown converter, bad name,
 * 'path' not last, too many params, a parameter mixed with text in one
 * segment), or a duplicate (same method and same template shape:
 * "GET /items/{id} conflicts with GET /items/{item_id}"). */
int jr_router_add(jr_router *r, const char *method, const char *tmpl, int route_id,
                  char *err, size_t errlen);

/* Match; m is filled in. path need not be NUL-terminated. */
void jr_router_match(const jr_router *r, const char *method, size_t mlen, const char *path,
                     size_t plen, jr_route_match *m);

#endif
