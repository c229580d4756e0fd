/* test_router.c - unit tests for core/router.c. */
#include "router.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Helpers: add must succeed / must fail with a message containing `want`. */
static int add_ok(jr_router *r, const char *method, const char *tmpl, int id)
{
    char err[256];
    int rc = jr_router_add(r, method, tmpl, id, err, sizeof err);
    if (rc != 0) fprintf(stderr, "  add %s %s failed: %s\n", method, tmpl, err);
    return rc == 0;
}

static int add_fails(jr_router *r, const char *method, const char *tmpl, const char *want)
{
    char err[256];
    err[0] = '\0';
    int rc = jr_router_add(r, method, tmpl, 1, err, sizeof err);
    if (rc != -1) {
        fprintf(stderr, "  add %s \"%s\" unexpectedly succeeded\n", method, tmpl);
        return 0;
    }
    if (!strstr(err, want)) {
        fprintf(stderr, "  add %s \"%s\": error \"%s\" lacks \"%s\"\n", method, tmpl, err, want);
        return 0;
    }
    return 1;
}

static jr_route_match M; /* big-ish; keep it off the test stack frames */

static const jr_route_match *match(const jr_router *r, const char *method, const char *path)
{
    memset(&M, 0xAB, sizeof M); /* catch fields the router forgets to set */
    jr_router_match(r, method, strlen(method), path, strlen(path), &M);
    return &M;
}

/* Route id matched, or -404 / -405. */
static int id_of(const jr_router *r, const char *method, const char *path)
{
    const jr_route_match *m = match(r, method, path);
    if (m->status == JR_ROUTE_FOUND) return m->route_id;
    return m->status == JR_ROUTE_NOT_FOUND ? -404 : -405;
}

#define CHECK_PARAM(m, i, nm, cv, val)                       \
    do {                                                     \
        CHECK((m)->nparams > (size_t)(i));                   \
        if ((m)->nparams > (size_t)(i)) {                    \
            CHECK_EQ_STR((m)->params[i].name, nm);           \
            CHECK_EQ_INT((m)->params[i].conv, cv);           \
            CHECK_EQ_MEM((m)->params[i].value, (m)->params[i].len, val); \
        }                                                    \
    } while (0)

/* ---- converters --------------------------------------------------------- */

TEST(conv_int)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/n/{v:int}", 1));
    const jr_route_match *m = match(r, "GET", "/n/42");
    CHECK_EQ_INT(m->status, JR_ROUTE_FOUND);
    CHECK_EQ_INT(m->route_id, 1);
    CHECK_EQ_INT(m->nparams, 1);
    CHECK_PARAM(m, 0, "v", JR_CONV_INT, "42");
    CHECK_EQ_INT(id_of(r, "GET", "/n/0"), 1);
    CHECK_EQ_INT(id_of(r, "GET", "/n/-7"), 1);
    CHECK_EQ_INT(id_of(r, "GET", "/n/007"), 1);
    CHECK_EQ_INT(id_of(r, "GET", "/n/123456789012345678"), 1);   /* 18 digits */
    CHECK_EQ_INT(id_of(r, "GET", "/n/-123456789012345678"), 1);  /* '-' + 18 digits */
    CHECK_EQ_INT(id_of(r, "GET", "/n/1234567890123456789"), -404); /* 19 digits */
    CHECK_EQ_INT(id_of(r, "GET", "/n/+5"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/n/-"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/n/--5"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/n/12a"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/n/a12"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/n/1.5"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/n/ 1"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/n/"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/n"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/n/5/"), -404);
    jr_router_free(r);
}

TEST(conv_uuid)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/u/{id:uuid}", 2));
    const jr_route_match *m = match(r, "GET", "/u/123e4567-e89b-12d3-a456-426614174000");
    CHECK_EQ_INT(m->status, JR_ROUTE_FOUND);
    CHECK_PARAM(m, 0, "id", JR_CONV_UUID, "123e4567-e89b-12d3-a456-426614174000");
    CHECK_EQ_INT(id_of(r, "GET", "/u/123E4567-E89B-12D3-A456-426614174000"), 2);  /* any case */
    CHECK_EQ_INT(id_of(r, "GET", "/u/123e4567-e89b-12d3-a456-42661417400"), -404); /* 35 */
    CHECK_EQ_INT(id_of(r, "GET", "/u/123e4567-e89b-12d3-a456-4266141740000"), -404); /* 37 */
    CHECK_EQ_INT(id_of(r, "GET", "/u/123e4567-e89b-12d3-a456-42661417400g"), -404); /* non-hex */
    CHECK_EQ_INT(id_of(r, "GET", "/u/123e4567xe89b-12d3-a456-426614174000"), -404); /* dash */
    CHECK_EQ_INT(id_of(r, "GET", "/u/123e4567e89b-12d3-a456-4266141740000"), -404); /* shifted */
    CHECK_EQ_INT(id_of(r, "GET", "/u/123e4567e89b12d3a456426614174000"), -404); /* no dashes */
    CHECK_EQ_INT(id_of(r, "GET", "/u/"), -404);
    jr_router_free(r);
}

TEST(conv_str)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/s/{name}", 3));
    CHECK(add_ok(r, "GET", "/t/{name:str}/x", 4));
    const jr_route_match *m = match(r, "GET", "/s/hello world");
    CHECK_EQ_INT(m->status, JR_ROUTE_FOUND);
    CHECK_PARAM(m, 0, "name", JR_CONV_STR, "hello world");
    CHECK_EQ_INT(id_of(r, "GET", "/s/42"), 3);
    CHECK_EQ_INT(id_of(r, "GET", "/s/"), -404);   /* empty segment */
    CHECK_EQ_INT(id_of(r, "GET", "/s"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/s/a/b"), -404); /* one segment only */
    CHECK_EQ_INT(id_of(r, "GET", "/t/a/x"), 4);
    CHECK_EQ_INT(id_of(r, "GET", "/t//x"), -404);
    /* Decoded paths may carry any bytes, including NUL. */
    static const char bin[] = "/s/a\0b\xff";
    jr_router_match(r, "GET", 3, bin, sizeof bin - 1, &M);
    CHECK_EQ_INT(M.status, JR_ROUTE_FOUND);
    CHECK_EQ_INT(M.params[0].len, 4);
    CHECK(M.params[0].value == bin + 3);
    jr_router_free(r);
}

TEST(conv_path)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/files/{rest:path}", 5));
    CHECK(add_ok(r, "GET", "/a/b/{p:path}", 6));
    CHECK(add_ok(r, "GET", "/{all:path}", 7));
    const jr_route_match *m = match(r, "GET", "/files/a/b/c.txt");
    CHECK_EQ_INT(m->status, JR_ROUTE_FOUND);
    CHECK_EQ_INT(m->route_id, 5);
    CHECK_PARAM(m, 0, "rest", JR_CONV_PATH, "a/b/c.txt");
    m = match(r, "GET", "/files/");
    CHECK_EQ_INT(m->route_id, 5);
    CHECK_PARAM(m, 0, "rest", JR_CONV_PATH, "");
    m = match(r, "GET", "/files/x/");
    CHECK_PARAM(m, 0, "rest", JR_CONV_PATH, "x/");
    m = match(r, "GET", "/files//x");
    CHECK_PARAM(m, 0, "rest", JR_CONV_PATH, "/x");
    m = match(r, "GET", "/a/b/c/d");
    CHECK_EQ_INT(m->route_id, 6);
    CHECK_PARAM(m, 0, "p", JR_CONV_PATH, "c/d");
    /* "/files" has no '/' after the static part: only the catch-all takes it. */
    m = match(r, "GET", "/files");
    CHECK_EQ_INT(m->route_id, 7);
    CHECK_PARAM(m, 0, "all", JR_CONV_PATH, "files");
    m = match(r, "GET", "/");
    CHECK_EQ_INT(m->route_id, 7);
    CHECK_PARAM(m, 0, "all", JR_CONV_PATH, "");
    m = match(r, "GET", "/a/x");
    CHECK_EQ_INT(m->route_id, 7);
    CHECK_PARAM(m, 0, "all", JR_CONV_PATH, "a/x");
    jr_router_free(r);
}

TEST(conv_path_with_params_before)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/u/{uid:int}/{f:path}", 8));
    const jr_route_match *m = match(r, "GET", "/u/12/docs/x.pdf");
    CHECK_EQ_INT(m->route_id, 8);
    CHECK_EQ_INT(m->nparams, 2);
    CHECK_PARAM(m, 0, "uid", JR_CONV_INT, "12");
    CHECK_PARAM(m, 1, "f", JR_CONV_PATH, "docs/x.pdf");
    CHECK_EQ_INT(id_of(r, "GET", "/u/ab/docs"), -404);
    jr_router_free(r);
}

/* ---- priority and backtracking ------------------------------------------ */

TEST(static_beats_param)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/users/{name}", 1));
    CHECK(add_ok(r, "GET", "/users/me", 2));
    CHECK(add_ok(r, "GET", "/users/{id:int}", 3));
    CHECK(add_ok(r, "GET", "/users/42", 4));
    CHECK_EQ_INT(id_of(r, "GET", "/users/me"), 2);
    CHECK_EQ_INT(id_of(r, "GET", "/users/you"), 1);
    CHECK_EQ_INT(id_of(r, "GET", "/users/42"), 4);
    CHECK_EQ_INT(id_of(r, "GET", "/users/43"), 3);
    const jr_route_match *m = match(r, "GET", "/users/me");
    CHECK_EQ_INT(m->nparams, 0);
    jr_router_free(r);
}

TEST(int_uuid_beat_str)
{
    jr_router *r = jr_router_new();
    /* Registration order must not matter: str first. */
    CHECK(add_ok(r, "GET", "/x/{s}", 1));
    CHECK(add_ok(r, "GET", "/x/{i:int}", 2));
    CHECK(add_ok(r, "GET", "/x/{u:uuid}", 3));
    CHECK(add_ok(r, "GET", "/x/{p:path}", 4));
    CHECK_EQ_INT(id_of(r, "GET", "/x/5"), 2);
    CHECK_EQ_INT(id_of(r, "GET", "/x/-5"), 2);
    CHECK_EQ_INT(id_of(r, "GET", "/x/123e4567-e89b-12d3-a456-426614174000"), 3);
    CHECK_EQ_INT(id_of(r, "GET", "/x/five"), 1);
    CHECK_EQ_INT(id_of(r, "GET", "/x/"), 4);
    CHECK_EQ_INT(id_of(r, "GET", "/x/a/b"), 4);
    const jr_route_match *m = match(r, "GET", "/x/5");
    CHECK_PARAM(m, 0, "i", JR_CONV_INT, "5");
    jr_router_free(r);
}

TEST(backtracking)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/a/{x}/c", 1));
    CHECK(add_ok(r, "GET", "/a/b/{y}", 2));
    const jr_route_match *m = match(r, "GET", "/a/b/c");
    CHECK_EQ_INT(m->route_id, 2); /* static 'b' is tried first and succeeds */
    CHECK_PARAM(m, 0, "y", JR_CONV_STR, "c");
    m = match(r, "GET", "/a/b/d");
    CHECK_EQ_INT(m->route_id, 2);
    CHECK_PARAM(m, 0, "y", JR_CONV_STR, "d");
    m = match(r, "GET", "/a/z/c");
    CHECK_EQ_INT(m->route_id, 1);
    CHECK_PARAM(m, 0, "x", JR_CONV_STR, "z");
    CHECK_EQ_INT(id_of(r, "GET", "/a/z/d"), -404);

    /* A dead static branch must be abandoned for the parameter branch. */
    jr_router *r2 = jr_router_new();
    CHECK(add_ok(r2, "GET", "/a/b/c", 1));
    CHECK(add_ok(r2, "GET", "/a/{x}/d", 2));
    CHECK(add_ok(r2, "GET", "/a/{n:int}/e", 3));
    m = match(r2, "GET", "/a/b/d");
    CHECK_EQ_INT(m->route_id, 2);
    CHECK_EQ_INT(m->nparams, 1);
    CHECK_PARAM(m, 0, "x", JR_CONV_STR, "b");
    CHECK_EQ_INT(id_of(r2, "GET", "/a/7/d"), 2); /* int branch dead -> str */
    m = match(r2, "GET", "/a/7/e");
    CHECK_EQ_INT(m->route_id, 3);
    CHECK_PARAM(m, 0, "n", JR_CONV_INT, "7");
    jr_router_free(r2);
    jr_router_free(r);
}

TEST(params_stack_after_backtrack)
{
    /* Values captured on an abandoned branch must not leak into the result. */
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/{a:int}/{b:int}/zzz", 1));
    CHECK(add_ok(r, "GET", "/{s}/{t}/{u}", 2));
    const jr_route_match *m = match(r, "GET", "/1/2/3");
    CHECK_EQ_INT(m->route_id, 2);
    CHECK_EQ_INT(m->nparams, 3);
    CHECK_PARAM(m, 0, "s", JR_CONV_STR, "1");
    CHECK_PARAM(m, 1, "t", JR_CONV_STR, "2");
    CHECK_PARAM(m, 2, "u", JR_CONV_STR, "3");
    jr_router_free(r);
}

TEST(trailing_slash_and_root)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/", 1));
    CHECK(add_ok(r, "GET", "/a", 2));
    CHECK(add_ok(r, "GET", "/b/", 3));
    CHECK(add_ok(r, "GET", "/c/{x}/", 4));
    CHECK_EQ_INT(id_of(r, "GET", "/"), 1);
    CHECK_EQ_INT(id_of(r, "GET", "/a"), 2);
    CHECK_EQ_INT(id_of(r, "GET", "/a/"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/b/"), 3);
    CHECK_EQ_INT(id_of(r, "GET", "/b"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/c/q/"), 4);
    CHECK_EQ_INT(id_of(r, "GET", "/c/q"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "//"), -404);
    CHECK_EQ_INT(match(r, "GET", "/")->nparams, 0);
    jr_router_free(r);
}

TEST(not_found)
{
    jr_router *r = jr_router_new();
    CHECK_EQ_INT(id_of(r, "GET", "/"), -404); /* empty router */
    CHECK(add_ok(r, "GET", "/a/b", 1));
    const jr_route_match *m = match(r, "GET", "/a/c");
    CHECK_EQ_INT(m->status, JR_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(m->route_id, -1);
    CHECK_EQ_INT(m->nparams, 0);
    CHECK_EQ_STR(m->allow, "");
    CHECK_EQ_INT(id_of(r, "GET", "/a"), -404);  /* interior node, no route */
    CHECK_EQ_INT(id_of(r, "GET", "/a/b/c"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "a/b"), -404);  /* no leading '/' */
    CHECK_EQ_INT(id_of(r, "GET", ""), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/A/B"), -404); /* case-sensitive */
    /* path need not be NUL-terminated: only plen bytes count. */
    jr_router_match(r, "GET", 3, "/a/bXYZ", 6, &M);
    CHECK_EQ_INT(M.status, JR_ROUTE_NOT_FOUND);
    jr_router_match(r, "GET", 3, "/a/b/", 4, &M);
    CHECK_EQ_INT(M.status, JR_ROUTE_FOUND);
    jr_router_free(r);
}

/* ---- methods -------------------------------------------------------------- */

TEST(method_not_allowed)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "POST", "/items", 1));
    CHECK(add_ok(r, "GET", "/items", 2));
    CHECK(add_ok(r, "DELETE", "/items", 3));
    CHECK(add_ok(r, "PUT", "/only-put", 4));
    CHECK(add_ok(r, "HEAD", "/both", 5));
    CHECK(add_ok(r, "GET", "/both", 6));
    const jr_route_match *m = match(r, "PATCH", "/items");
    CHECK_EQ_INT(m->status, JR_ROUTE_METHOD_NOT_ALLOWED);
    CHECK_EQ_INT(m->route_id, -1);
    CHECK_EQ_STR(m->allow, "DELETE, GET, HEAD, POST");
    m = match(r, "GET", "/only-put");
    CHECK_EQ_INT(m->status, JR_ROUTE_METHOD_NOT_ALLOWED);
    CHECK_EQ_STR(m->allow, "PUT");
    m = match(r, "HEAD", "/only-put"); /* no GET to fall back to */
    CHECK_EQ_INT(m->status, JR_ROUTE_METHOD_NOT_ALLOWED);
    CHECK_EQ_STR(m->allow, "PUT");
    m = match(r, "POST", "/both"); /* explicit HEAD is not listed twice */
    CHECK_EQ_STR(m->allow, "GET, HEAD");
    m = match(r, "get", "/items"); /* methods are case-sensitive */
    CHECK_EQ_INT(m->status, JR_ROUTE_METHOD_NOT_ALLOWED);
    jr_router_free(r);
}

TEST(head_uses_get)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/g", 1));
    CHECK(add_ok(r, "GET", "/h", 2));
    CHECK(add_ok(r, "HEAD", "/h", 3));
    CHECK(add_ok(r, "GET", "/p/{id:int}", 4));
    CHECK_EQ_INT(id_of(r, "HEAD", "/g"), 1);
    CHECK_EQ_INT(id_of(r, "HEAD", "/h"), 3);
    CHECK_EQ_INT(id_of(r, "GET", "/h"), 2);
    const jr_route_match *m = match(r, "HEAD", "/p/9");
    CHECK_EQ_INT(m->route_id, 4);
    CHECK_PARAM(m, 0, "id", JR_CONV_INT, "9");
    /* The fallback is HEAD -> GET only, never the other way. */
    jr_router *r2 = jr_router_new();
    CHECK(add_ok(r2, "HEAD", "/x", 1));
    CHECK_EQ_INT(id_of(r2, "GET", "/x"), -405);
    CHECK_EQ_STR(M.allow, "HEAD");
    jr_router_free(r2);
    jr_router_free(r);
}

TEST(method_fallback_across_terminals)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/items/{id:int}", 1));
    CHECK(add_ok(r, "POST", "/items/{name}", 2));
    CHECK(add_ok(r, "PUT", "/items/{rest:path}", 3));
    const jr_route_match *m = match(r, "POST", "/items/5");
    CHECK_EQ_INT(m->status, JR_ROUTE_FOUND);
    CHECK_EQ_INT(m->route_id, 2);
    CHECK_PARAM(m, 0, "name", JR_CONV_STR, "5");
    m = match(r, "GET", "/items/5");
    CHECK_EQ_INT(m->route_id, 1);
    CHECK_PARAM(m, 0, "id", JR_CONV_INT, "5");
    CHECK_EQ_INT(id_of(r, "HEAD", "/items/5"), 1);
    CHECK_EQ_INT(id_of(r, "PUT", "/items/5"), 3);
    CHECK_EQ_INT(id_of(r, "GET", "/items/abc"), -405);
    /* The Allow list comes from the first terminal in priority order. */
    m = match(r, "DELETE", "/items/5");
    CHECK_EQ_INT(m->status, JR_ROUTE_METHOD_NOT_ALLOWED);
    CHECK_EQ_STR(m->allow, "GET, HEAD");
    m = match(r, "DELETE", "/items/abc");
    CHECK_EQ_STR(m->allow, "POST");
    m = match(r, "DELETE", "/items/a/b");
    CHECK_EQ_STR(m->allow, "PUT");
    /* Static over parameter, and across different depths of backtracking. */
    jr_router *r2 = jr_router_new();
    CHECK(add_ok(r2, "GET", "/a/b/c", 1));
    CHECK(add_ok(r2, "POST", "/a/{x}/c", 2));
    CHECK_EQ_INT(id_of(r2, "POST", "/a/b/c"), 2);
    CHECK_EQ_INT(id_of(r2, "PATCH", "/a/b/c"), -405);
    CHECK_EQ_STR(M.allow, "GET, HEAD");
    jr_router_free(r2);
    jr_router_free(r);
}

TEST(arbitrary_methods)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "PROPFIND", "/dav", 1));
    CHECK(add_ok(r, "M-SEARCH", "/dav", 2));
    CHECK(add_ok(r, "ABCDEFGHIJKLMNOP", "/dav", 3)); /* 16 chars */
    CHECK_EQ_INT(id_of(r, "PROPFIND", "/dav"), 1);
    CHECK_EQ_INT(id_of(r, "M-SEARCH", "/dav"), 2);
    CHECK_EQ_INT(id_of(r, "ABCDEFGHIJKLMNOP", "/dav"), 3);
    CHECK_EQ_INT(id_of(r, "ABCDEFGHIJKLMNOPQ", "/dav"), -405);
    CHECK_EQ_INT(id_of(r, "PROP", "/dav"), -405);
    CHECK_EQ_STR(M.allow, "ABCDEFGHIJKLMNOP, M-SEARCH, PROPFIND");
    CHECK(add_fails(r, "ABCDEFGHIJKLMNOPQ", "/dav", "bad method")); /* 17 chars */
    CHECK(add_fails(r, "get", "/dav", "bad method"));
    CHECK(add_fails(r, "", "/dav", "bad method"));
    CHECK(add_fails(r, "GE T", "/dav", "bad method"));
    /* Method given by length: need not be NUL-terminated. */
    jr_router_match(r, "PROPFINDxyz", 8, "/dav", 4, &M);
    CHECK_EQ_INT(M.route_id, 1);
    jr_router_free(r);
}

TEST(allow_list_truncated_to_fit)
{
    /* Many long methods: the list is cut at a method boundary, never mid-name. */
    jr_router *r = jr_router_new();
    char meth[17];
    for (int i = 0; i < 20; i++) {
        snprintf(meth, sizeof meth, "METHOD%02dXXXXXXXX", i);
        CHECK(add_ok(r, meth, "/x", i));
    }
    const jr_route_match *m = match(r, "GET", "/x");
    CHECK_EQ_INT(m->status, JR_ROUTE_METHOD_NOT_ALLOWED);
    size_t len = strlen(m->allow);
    CHECK(len > 0 && len < sizeof m->allow);
    CHECK(strncmp(m->allow, "METHOD00XXXXXXXX, METHOD01XXXXXXXX", 34) == 0);
    CHECK(len >= 16 && strncmp(m->allow + len - 16, "METHOD", 6) == 0);
    jr_router_free(r);
}

/* ---- parameter names ------------------------------------------------------ */

TEST(per_route_param_names)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/items/{id}", 1));
    CHECK(add_ok(r, "DELETE", "/items/{item_id}", 2));
    CHECK(add_ok(r, "PUT", "/items/{key}/tags/{tag}", 3));
    CHECK(add_ok(r, "GET", "/items/{k}/tags/{t}", 4));
    const jr_route_match *m = match(r, "GET", "/items/7");
    CHECK_EQ_INT(m->route_id, 1);
    CHECK_PARAM(m, 0, "id", JR_CONV_STR, "7");
    m = match(r, "DELETE", "/items/7");
    CHECK_EQ_INT(m->route_id, 2);
    CHECK_PARAM(m, 0, "item_id", JR_CONV_STR, "7");
    m = match(r, "PUT", "/items/7/tags/red");
    CHECK_EQ_INT(m->route_id, 3);
    CHECK_PARAM(m, 0, "key", JR_CONV_STR, "7");
    CHECK_PARAM(m, 1, "tag", JR_CONV_STR, "red");
    m = match(r, "GET", "/items/7/tags/red");
    CHECK_EQ_INT(m->route_id, 4);
    CHECK_PARAM(m, 0, "k", JR_CONV_STR, "7");
    CHECK_PARAM(m, 1, "t", JR_CONV_STR, "red");
    jr_router_free(r);
}

TEST(duplicate_detection)
{
    jr_router *r = jr_router_new();
    CHECK(add_ok(r, "GET", "/items/{id}", 1));
    CHECK(add_ok(r, "GET", "/items/{id:int}", 2)); /* different converter: other shape */
    CHECK(add_ok(r, "POST", "/items/{item_id}", 3));
    char err[256];
    CHECK_EQ_INT(jr_router_add(r, "GET", "/items/{item_id}", 9, err, sizeof err), -1);
    CHECK_EQ_STR(err, "GET /items/{item_id} conflicts with GET /items/{id}");
    CHECK_EQ_INT(jr_router_add(r, "GET", "/items/{n:int}", 9, err, sizeof err), -1);
    CHECK_EQ_STR(err, "GET /items/{n:int} conflicts with GET /items/{id:int}");
    CHECK_EQ_INT(jr_router_add(r, "GET", "/items/{x:str}", 9, err, sizeof err), -1);
    CHECK_EQ_STR(err, "GET /items/{x:str} conflicts with GET /items/{id}");
    CHECK(add_ok(r, "GET", "/a", 4));
    CHECK_EQ_INT(jr_router_add(r, "GET", "/a", 9, err, sizeof err), -1);
    CHECK_EQ_STR(err, "GET /a conflicts with GET /a");
    CHECK(add_ok(r, "HEAD", "/a", 5)); /* HEAD next to GET is not a duplicate */
    /* The failed adds changed nothing. */
    CHECK_EQ_INT(id_of(r, "GET", "/items/x"), 1);
    CHECK_EQ_INT(id_of(r, "GET", "/items/5"), 2);
    CHECK_EQ_INT(match(r, "GET", "/items/x")->params[0].name[0], 'i');
    CHECK_EQ_STR(match(r, "GET", "/items/x")->params[0].name, "id");
    /* err may be NULL. */
    CHECK_EQ_INT(jr_router_add(r, "GET", "/a", 9, NULL, 0), -1);
    /* Small err buffers are truncated, still NUL-terminated. */
    char small[8];
    CHECK_EQ_INT(jr_router_add(r, "GET", "/a", 9, small, sizeof small), -1);
    CHECK_EQ_STR(small, "GET /a ");
    jr_router_free(r);
}

/* ---- bad templates ------------------------------------------------------------ */

TEST(bad_templates)
{
    jr_router *r = jr_router_new();
    CHECK(add_fails(r, "GET", "", "empty"));
    CHECK(add_fails(r, "GET", "a/b", "must start with '/'"));
    CHECK(add_fails(r, "GET", "{x}", "must start with '/'"));
    CHECK(add_fails(r, "GET", "/a/{x", "unbalanced braces"));
    CHECK(add_fails(r, "GET", "/a/x}", "unbalanced braces"));
    CHECK(add_fails(r, "GET", "/a/}x{", "unbalanced braces"));
    CHECK(add_fails(r, "GET", "/a/{{x}}", "unbalanced braces"));
    CHECK(add_fails(r, "GET", "/a/{x/y}", "unbalanced braces")); /* braces span a '/' */
    CHECK(add_fails(r, "GET", "/a/{x:foo}", "unknown converter \"foo\""));
    CHECK(add_fails(r, "GET", "/a/{x:}", "unknown converter"));
    CHECK(add_fails(r, "GET", "/a/{x:INT}", "unknown converter"));
    CHECK(add_fails(r, "GET", "/a/{x:int:int}", "unknown converter"));
    CHECK(add_fails(r, "GET", "/a/{}", "bad parameter name"));
    CHECK(add_fails(r, "GET", "/a/{:int}", "bad parameter name"));
    CHECK(add_fails(r, "GET", "/a/{1x}", "bad parameter name"));
    CHECK(add_fails(r, "GET", "/a/{x-y}", "bad parameter name"));
    CHECK(add_fails(r, "GET", "/a/{x y}", "bad parameter name"));
    CHECK(add_fails(r, "GET", "/a/{x}/{x}", "duplicate parameter name \"x\""));
    CHECK(add_fails(r, "GET", "/a/{x}/{x:int}", "duplicate parameter name"));
    CHECK(add_fails(r, "GET", "/a/{p:path}/b", "'path' parameter must be the last segment"));
    CHECK(add_fails(r, "GET", "/a/{p:path}/", "'path' parameter must be the last segment"));
    CHECK(add_fails(r, "GET", "/{p:path}/{q:path}", "'path' parameter must be the last"));
    CHECK(add_fails(r, "GET", "/a/x{y}", "a parameter must fill its whole segment"));
    CHECK(add_fails(r, "GET", "/a/{y}x", "a parameter must fill its whole segment"));
    CHECK(add_fails(r, "GET", "/a/{x}{y}", "a parameter must fill its whole segment"));
    char err[128];
    CHECK_EQ_INT(jr_router_add(r, "GET", "/ok", -1, err, sizeof err), -1);
    CHECK(strstr(err, "route id") != NULL);
    CHECK_EQ_INT(jr_router_add(r, NULL, "/ok", 1, err, sizeof err), -1);
    CHECK_EQ_INT(jr_router_add(r, "GET", NULL, 1, err, sizeof err), -1);
    /* Error messages quote the template. */
    CHECK_EQ_INT(jr_router_add(r, "GET", "/a/{x:foo}", 1, err, sizeof err), -1);
    CHECK_EQ_STR(err, "bad route template \"/a/{x:foo}\": unknown converter \"foo\"");
    /* Rejected templates left nothing behind that could match. */
    CHECK_EQ_INT(id_of(r, "GET", "/a/x"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/a/x/y"), -404);
    /* Valid oddities. */
    CHECK(add_ok(r, "GET", "/a//b", 1)); /* empty static segment */
    CHECK_EQ_INT(id_of(r, "GET", "/a//b"), 1);
    CHECK(add_ok(r, "GET", "/v1.0/x:y/_", 2)); /* ':' and '.' outside braces are text */
    CHECK_EQ_INT(id_of(r, "GET", "/v1.0/x:y/_"), 2);
    CHECK(add_ok(r, "GET", "/z/{_Name_9}", 3));
    CHECK_EQ_STR(match(r, "GET", "/z/q")->params[0].name, "_Name_9");
    jr_router_free(r);
}

TEST(param_limit)
{
    jr_router *r = jr_router_new();
    char tmpl[512], path[256];
    size_t tl = 0, pl = 0;
    for (int i = 0; i < JR_ROUTER_MAX_PARAMS; i++) {
        tl += (size_t)snprintf(tmpl + tl, sizeof tmpl - tl, "/{p%d:int}", i);
        pl += (size_t)snprintf(path + pl, sizeof path - pl, "/%d", i * 10);
    }
    CHECK(add_ok(r, "GET", tmpl, 16));
    const jr_route_match *m = match(r, "GET", path);
    CHECK_EQ_INT(m->status, JR_ROUTE_FOUND);
    CHECK_EQ_INT(m->nparams, JR_ROUTER_MAX_PARAMS);
    CHECK_PARAM(m, 0, "p0", JR_CONV_INT, "0");
    CHECK_PARAM(m, 15, "p15", JR_CONV_INT, "150");
    /* 17 parameters: rejected, even as the final path parameter. */
    char t17[600];
    snprintf(t17, sizeof t17, "%s/{p16}", tmpl);
    CHECK(add_fails(r, "GET", t17, "too many parameters (max 16)"));
    snprintf(t17, sizeof t17, "%s/{rest:path}", tmpl);
    CHECK(add_fails(r, "GET", t17, "too many parameters"));
    /* Static segments do not count. */
    snprintf(t17, sizeof t17, "/s%s/static/more", tmpl);
    CHECK(add_ok(r, "GET", t17, 17));
    jr_router_free(r);
}

/* ---- scale ------------------------------------------------------------------ */

TEST(many_routes)
{
    enum { N = 1000 };
    static const char *methods[] = {"GET", "POST", "PUT", "DELETE"};
    jr_router *r = jr_router_new();
    char tmpl[128], path[128];
    for (int i = 0; i < N; i++) {
        /* A mix of shapes: static leaves, int/str params, path tails. */
        switch (i % 4) {
        case 0: snprintf(tmpl, sizeof tmpl, "/svc%d/items", i / 4); break;
        case 1: snprintf(tmpl, sizeof tmpl, "/svc%d/items/{id:int}", i / 4); break;
        case 2: snprintf(tmpl, sizeof tmpl, "/svc%d/items/{name}/v%d", i / 4, i); break;
        default: snprintf(tmpl, sizeof tmpl, "/svc%d/files/{f:path}", i / 4); break;
        }
        CHECK(add_ok(r, methods[i % 4], tmpl, i));
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0: snprintf(path, sizeof path, "/svc%d/items", i / 4); break;
        case 1: snprintf(path, sizeof path, "/svc%d/items/%d", i / 4, i * 3); break;
        case 2: snprintf(path, sizeof path, "/svc%d/items/n%d/v%d", i / 4, i, i); break;
        default: snprintf(path, sizeof path, "/svc%d/files/a/b%d", i / 4, i); break;
        }
        const char *meth = methods[i % 4];
        jr_router_match(r, meth, strlen(meth), path, strlen(path), &M);
        if (M.status != JR_ROUTE_FOUND || M.route_id != i) {
            if (bad++ < 5) fprintf(stderr, "  %s %s -> status %d id %d (want %d)\n", meth, path,
                                   M.status, M.route_id, i);
        }
        /* The same path with a method nobody registered there is a 405. */
        jr_router_match(r, "PATCH", 5, path, strlen(path), &M);
        if (M.status != JR_ROUTE_METHOD_NOT_ALLOWED) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(id_of(r, "GET", "/svc250/items"), -404);
    CHECK_EQ_INT(id_of(r, "GET", "/svc1/items/x/v1"), -404);
    jr_router_free(r);
}

TEST(match_repeated)
{
    /* Many matches against many routes: no state leaks between matches. */
    jr_router *r = jr_router_new();
    char tmpl[64];
    for (int i = 0; i < 200; i++) {
        snprintf(tmpl, sizeof tmpl, "/api%d/users/{id:int}", i);
        CHECK(add_ok(r, "GET", tmpl, i));
        snprintf(tmpl, sizeof tmpl, "/api%d/users/{name}", i);
        CHECK(add_ok(r, "POST", tmpl, 1000 + i));
    }
    const char *path = "/api123/users/98765";
    size_t plen = strlen(path);
    int hits = 0;
    for (int i = 0; i < 20000; i++) {
        jr_router_match(r, "GET", 3, path, plen, &M);
        hits += M.route_id == 123 && M.nparams == 1;
    }
    CHECK_EQ_INT(hits, 20000);
    jr_router_free(r);
}

TEST(free_null) { jr_router_free(NULL); }

int main(void)
{
    RUN(conv_int);
    RUN(conv_uuid);
    RUN(conv_str);
    RUN(conv_path);
    RUN(conv_path_with_params_before);
    RUN(static_beats_param);
    RUN(int_uuid_beat_str);
    RUN(backtracking);
    RUN(params_stack_after_backtrack);
    RUN(trailing_slash_and_root);
    RUN(not_found);
    RUN(method_not_allowed);
    RUN(head_uses_get);
    RUN(method_fallback_across_terminals);
    RUN(arbitrary_methods);
    RUN(allow_list_truncated_to_fit);
    RUN(per_route_param_names);
    RUN(duplicate_detection);
    RUN(bad_templates);
    RUN(param_limit);
    RUN(many_routes);
    RUN(match_repeated);
    RUN(free_null);
    return test_summary();
}
