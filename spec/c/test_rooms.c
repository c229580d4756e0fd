/* test_rooms.c - unit and property tests for core/rooms.c.
 *
 * rooms.c is compiled into this test (instead of linked from jr_core) with
 * allocators that can be told to fail, so every out-of-memory path is
 * exercised; the test also reads the internals to check the invariants. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long t_alloc_fail_in = -1; /* allocations left before one fails; -1 never */

static int t_should_fail(void)
{
    if (t_alloc_fail_in < 0) return 0;
    if (t_alloc_fail_in-- == 0) return 1;
    return 0;
}
static void *t_malloc(size_t n) { return t_should_fail() ? NULL : malloc(n); }
static int t_calloc_fails;       /* every calloc fails */
static void *t_calloc(size_t k, size_t n)
{
    return t_should_fail() || t_calloc_fails ? NULL : calloc(k, n);
}

#define JR_ROOMS_MALLOC t_malloc
#define JR_ROOMS_CALLOC t_calloc
#include "rooms.c"

#include "test.h"

#define S(lit) (lit), (sizeof(lit) - 1) /* a literal as (bytes, len), NULs included */

/* ---- invariants, read from the internals ---- */

static int table_has(const table *t, const hnode *e)
{
    for (const hnode *x = table_first(t, e->hash); x; x = x->hnext)
        if (x == e) return 1;
    return 0;
}

static size_t table_count(const table *t)
{
    size_t n = 0;
    if (!t->b) return 0;
    for (size_t i = 0; i <= t->mask; i++)
        for (const hnode *x = t->b[i]; x; x = x->hnext) {
            if ((x->hash & t->mask) != i) return (size_t)-1;
            n++;
        }
    return n;
}

/* Every list is doubly linked right, every count matches, every node is
 * indexed under its key, no room is empty. 1 when all hold. */
static int consistent(const jr_rooms *r)
{
    size_t nm = 0, nl = 0, nroom_links = 0;
    if (r->walks || r->in_any) return 0;
    if (table_count(&r->members) != r->members.n) return 0;
    if (table_count(&r->rooms) != r->rooms.n) return 0;
    if (table_count(&r->links) != r->links.n) return 0;
    const member *prev = NULL;
    for (const member *m = r->all; m; prev = m, m = m->next) {
        nm++;
        if (m->prev != prev || !table_has(&r->members, &m->h) || find_member(r, m->ptr) != m)
            return 0;
        size_t k = 0;
        const link *lp = NULL;
        for (const link *l = m->links; l; lp = l, l = l->mnext) {
            k++;
            if (l->mprev != lp || l->m != m || find_link(r, m, l->rm) != l) return 0;
        }
        if (k != m->nrooms) return 0;
        nl += k;
    }
    if (nm != r->members.n || nl != r->links.n) return 0;
    if (!r->rooms.b) return r->rooms.n == 0;
    for (size_t i = 0; i <= r->rooms.mask; i++)
        for (const hnode *e = r->rooms.b[i]; e; e = e->hnext) {
            const room *rm = (const room *)e;
            if (rm->n == 0 || lookup_room(r, rm->name, rm->len) != rm) return 0;
            size_t k = 0;
            const link *lp = NULL;
            for (const link *l = rm->links; l; lp = l, l = l->rnext) {
                k++;
                if (l->rprev != lp || l->rm != rm) return 0;
            }
            if (k != rm->n) return 0;
            nroom_links += k;
        }
    return nroom_links == r->links.n;
}

/* ---- a recorder callback ---- */

#define MAXV 64
typedef struct {
    void *seen[MAXV];
    size_t n;
} rec;

static void record(void *m, void *ud)
{
    rec *v = ud;
    if (v->n < MAXV) v->seen[v->n] = m;
    v->n++;
}

static size_t times_seen(const rec *v, const void *m)
{
    size_t k = 0;
    for (size_t i = 0; i < v->n && i < MAXV; i++) k += v->seen[i] == m;
    return k;
}

static char M[32]; /* members are addresses: &M[i] */

/* ---- basics ---- */

TEST(new_free_empty)
{
    jr_rooms *r = jr_rooms_new();
    CHECK(r != NULL);
    CHECK_EQ_INT(jr_rooms_members(r), 0);
    CHECK_EQ_INT(jr_rooms_count(r), 0);
    CHECK_EQ_INT(jr_rooms_size(r, S("x")), 0);
    CHECK_EQ_INT(jr_rooms_rooms_of(r, &M[0]), 0);
    CHECK_EQ_INT(jr_rooms_has(r, &M[0]), 0);
    CHECK_EQ_INT(jr_rooms_is_in(r, &M[0], S("x")), 0);
    rec v = {{0}, 0};
    CHECK_EQ_INT(jr_rooms_each(r, record, &v), 0);
    CHECK_EQ_INT(jr_rooms_each_in(r, S("x"), record, &v), 0);
    CHECK_EQ_INT(v.n, 0);
    CHECK(consistent(r));
    jr_rooms_free(r);
    jr_rooms_free(NULL); /* a no-op */
}

TEST(add_is_idempotent_remove_is_safe)
{
    jr_rooms *r = jr_rooms_new();
    CHECK_EQ_INT(jr_rooms_add(r, &M[0]), 1);
    CHECK_EQ_INT(jr_rooms_add(r, &M[0]), 0);
    CHECK_EQ_INT(jr_rooms_add(r, &M[1]), 1);
    CHECK_EQ_INT(jr_rooms_add(r, NULL), 1); /* any pointer value is a key */
    CHECK_EQ_INT(jr_rooms_members(r), 3);
    CHECK_EQ_INT(jr_rooms_has(r, &M[1]), 1);
    CHECK_EQ_INT(jr_rooms_has(r, NULL), 1);
    CHECK_EQ_INT(jr_rooms_rooms_of(r, &M[0]), 0);
    CHECK_EQ_INT(jr_rooms_count(r), 0);
    jr_rooms_remove(r, &M[5]); /* unknown: nothing happens */
    CHECK_EQ_INT(jr_rooms_members(r), 3);
    jr_rooms_remove(r, &M[0]);
    jr_rooms_remove(r, &M[0]); /* twice: still fine */
    CHECK_EQ_INT(jr_rooms_members(r), 2);
    CHECK_EQ_INT(jr_rooms_has(r, &M[0]), 0);
    CHECK_EQ_INT(jr_rooms_add(r, &M[0]), 1); /* and back */
    CHECK(consistent(r));
    jr_rooms_free(r); /* frees members still added */
}

TEST(join_adds_and_is_idempotent)
{
    jr_rooms *r = jr_rooms_new();
    CHECK_EQ_INT(jr_rooms_join(r, &M[0], S("a")), 1); /* unknown member: added */
    CHECK_EQ_INT(jr_rooms_has(r, &M[0]), 1);
    CHECK_EQ_INT(jr_rooms_join(r, &M[0], S("a")), 0);
    CHECK_EQ_INT(jr_rooms_join(r, &M[0], S("b")), 1);
    CHECK_EQ_INT(jr_rooms_join(r, &M[1], S("a")), 1);
    CHECK_EQ_INT(jr_rooms_add(r, &M[1]), 0); /* joining made it a member */
    CHECK_EQ_INT(jr_rooms_members(r), 2);
    CHECK_EQ_INT(jr_rooms_count(r), 2);
    CHECK_EQ_INT(jr_rooms_size(r, S("a")), 2);
    CHECK_EQ_INT(jr_rooms_size(r, S("b")), 1);
    CHECK_EQ_INT(jr_rooms_rooms_of(r, &M[0]), 2);
    CHECK_EQ_INT(jr_rooms_rooms_of(r, &M[1]), 1);
    CHECK_EQ_INT(jr_rooms_is_in(r, &M[1], S("a")), 1);
    CHECK_EQ_INT(jr_rooms_is_in(r, &M[1], S("b")), 0);
    CHECK_EQ_INT(jr_rooms_is_in(r, &M[2], S("a")), 0);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

TEST(leave_frees_empty_rooms_keeps_member)
{
    jr_rooms *r = jr_rooms_new();
    jr_rooms_join(r, &M[0], S("a"));
    jr_rooms_join(r, &M[1], S("a"));
    jr_rooms_join(r, &M[0], S("b"));
    CHECK_EQ_INT(jr_rooms_leave(r, &M[0], S("a")), 1);
    CHECK_EQ_INT(jr_rooms_leave(r, &M[0], S("a")), 0); /* not in it any more */
    CHECK_EQ_INT(jr_rooms_leave(r, &M[0], S("zz")), 0); /* no such room */
    CHECK_EQ_INT(jr_rooms_leave(r, &M[9], S("a")), 0);  /* unknown member */
    CHECK_EQ_INT(jr_rooms_leave(r, &M[1], S("b")), 0);  /* room exists, not in it */
    CHECK_EQ_INT(jr_rooms_size(r, S("a")), 1);
    CHECK_EQ_INT(jr_rooms_count(r), 2);
    CHECK_EQ_INT(jr_rooms_leave(r, &M[1], S("a")), 1);
    CHECK_EQ_INT(jr_rooms_count(r), 1); /* "a" is gone */
    CHECK_EQ_INT(jr_rooms_size(r, S("a")), 0);
    CHECK_EQ_INT(jr_rooms_leave(r, &M[0], S("b")), 1);
    CHECK_EQ_INT(jr_rooms_count(r), 0);
    CHECK_EQ_INT(jr_rooms_members(r), 2); /* members in no room stay */
    CHECK_EQ_INT(jr_rooms_rooms_of(r, &M[0]), 0);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

TEST(room_names_are_bytes)
{
    jr_rooms *r = jr_rooms_new();
    CHECK_EQ_INT(jr_rooms_join(r, &M[0], S("a\0b")), 1);
    CHECK_EQ_INT(jr_rooms_join(r, &M[1], S("a\0c")), 1);
    CHECK_EQ_INT(jr_rooms_join(r, &M[2], S("a")), 1);
    CHECK_EQ_INT(jr_rooms_join(r, &M[3], S("\0")), 1);
    CHECK_EQ_INT(jr_rooms_join(r, &M[4], NULL, 0), 1); /* the empty name is a name */
    CHECK_EQ_INT(jr_rooms_join(r, &M[5], "", 0), 1);   /* the same room */
    CHECK_EQ_INT(jr_rooms_join(r, &M[6], S("\xff\xfe")), 1);
    CHECK_EQ_INT(jr_rooms_count(r), 6);
    CHECK_EQ_INT(jr_rooms_size(r, S("a\0b")), 1);
    CHECK_EQ_INT(jr_rooms_size(r, S("a")), 1);
    CHECK_EQ_INT(jr_rooms_size(r, "", 0), 2);
    CHECK_EQ_INT(jr_rooms_is_in(r, &M[0], S("a\0c")), 0);
    CHECK_EQ_INT(jr_rooms_is_in(r, &M[0], S("a\0b")), 1);
    /* a long name */
    size_t n = 100000;
    char *big = malloc(n);
    CHECK(big != NULL);
    memset(big, 'x', n);
    big[n / 2] = '\0';
    CHECK_EQ_INT(jr_rooms_join(r, &M[7], big, n), 1);
    CHECK_EQ_INT(jr_rooms_size(r, big, n), 1);
    CHECK_EQ_INT(jr_rooms_size(r, big, n - 1), 0);
    big[n - 1] = 'y';
    CHECK_EQ_INT(jr_rooms_size(r, big, n), 0);
    big[n - 1] = 'x';
    CHECK_EQ_INT(jr_rooms_leave(r, &M[7], big, n), 1);
    free(big);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

TEST(remove_leaves_every_room)
{
    jr_rooms *r = jr_rooms_new();
    jr_rooms_join(r, &M[0], S("a"));
    jr_rooms_join(r, &M[0], S("b"));
    jr_rooms_join(r, &M[0], S("c"));
    jr_rooms_join(r, &M[1], S("b"));
    jr_rooms_remove(r, &M[0]);
    CHECK_EQ_INT(jr_rooms_members(r), 1);
    CHECK_EQ_INT(jr_rooms_count(r), 1); /* a and c were only M[0]'s */
    CHECK_EQ_INT(jr_rooms_size(r, S("b")), 1);
    CHECK_EQ_INT(jr_rooms_is_in(r, &M[0], S("b")), 0);
    CHECK_EQ_INT(jr_rooms_rooms_of(r, &M[0]), 0);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* ---- walks ---- */

TEST(each_visits_every_member_once)
{
    jr_rooms *r = jr_rooms_new();
    jr_rooms_add(r, &M[0]);              /* in no room */
    jr_rooms_join(r, &M[1], S("a"));
    jr_rooms_join(r, &M[2], S("a"));
    jr_rooms_join(r, &M[2], S("b"));     /* in two rooms: still once */
    rec v = {{0}, 0};
    CHECK_EQ_INT(jr_rooms_each(r, record, &v), 3);
    CHECK_EQ_INT(v.n, 3);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(times_seen(&v, &M[i]), 1);
    jr_rooms_free(r);
}

TEST(each_in_visits_the_room)
{
    jr_rooms *r = jr_rooms_new();
    jr_rooms_add(r, &M[0]);
    jr_rooms_join(r, &M[1], S("a"));
    jr_rooms_join(r, &M[2], S("a"));
    jr_rooms_join(r, &M[3], S("b"));
    rec v = {{0}, 0};
    CHECK_EQ_INT(jr_rooms_each_in(r, S("a"), record, &v), 2);
    CHECK_EQ_INT(times_seen(&v, &M[1]), 1);
    CHECK_EQ_INT(times_seen(&v, &M[2]), 1);
    CHECK_EQ_INT(v.n, 2);
    v.n = 0;
    CHECK_EQ_INT(jr_rooms_each_in(r, S("nope"), record, &v), 0);
    CHECK_EQ_INT(jr_rooms_each_in(r, S("a\0"), record, &v), 0); /* not "a" */
    CHECK_EQ_INT(v.n, 0);
    jr_rooms_free(r);
}

TEST(each_in_any_visits_each_member_once)
{
    jr_rooms *r = jr_rooms_new();
    jr_rooms_join(r, &M[0], S("a"));
    jr_rooms_join(r, &M[0], S("b"));
    jr_rooms_join(r, &M[1], S("b"));
    jr_rooms_join(r, &M[2], S("c"));
    jr_rooms_join(r, &M[3], S("a"));
    const char *names[] = {"a", "b", "zz", "a"}; /* "a" twice, "zz" unknown */
    size_t lens[] = {1, 1, 2, 1};
    rec v = {{0}, 0};
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names, lens, 4, record, &v), 3);
    CHECK_EQ_INT(v.n, 3);
    CHECK_EQ_INT(times_seen(&v, &M[0]), 1);
    CHECK_EQ_INT(times_seen(&v, &M[1]), 1);
    CHECK_EQ_INT(times_seen(&v, &M[3]), 1);
    CHECK_EQ_INT(times_seen(&v, &M[2]), 0);
    v.n = 0;
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names, lens, 0, record, &v), 0);
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names + 1, lens + 1, 1, record, &v), 2);
    /* a second walk dedups afresh: marks of the first do not leak into it */
    v.n = 0;
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names, lens, 2, record, &v), 3);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* ---- changes made by callbacks ---- */

typedef struct {
    jr_rooms *r;
    rec v;
    int step;
    void *target;
} ctx;

static void remove_self(void *m, void *ud)
{
    ctx *c = ud;
    record(m, &c->v);
    jr_rooms_remove(c->r, m);
}

TEST(callback_removes_current_member)
{
    jr_rooms *r = jr_rooms_new();
    for (int i = 0; i < 10; i++) jr_rooms_join(r, &M[i], S("a"));
    ctx c = {r, {{0}, 0}, 0, NULL};
    CHECK_EQ_INT(jr_rooms_each_in(r, S("a"), remove_self, &c), 10);
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(times_seen(&c.v, &M[i]), 1);
    CHECK_EQ_INT(jr_rooms_members(r), 0);
    CHECK_EQ_INT(jr_rooms_count(r), 0); /* the room went with its last member */
    CHECK(consistent(r));
    /* the same through jr_rooms_each and each_in_any */
    for (int i = 0; i < 10; i++) jr_rooms_join(r, &M[i], i % 2 ? "a" : "b", 1);
    c.v.n = 0;
    CHECK_EQ_INT(jr_rooms_each(r, remove_self, &c), 10);
    CHECK_EQ_INT(jr_rooms_members(r), 0);
    for (int i = 0; i < 10; i++) {
        jr_rooms_join(r, &M[i], S("a"));
        jr_rooms_join(r, &M[i], S("b"));
    }
    const char *names[] = {"a", "b"};
    size_t lens[] = {1, 1};
    c.v.n = 0;
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names, lens, 2, remove_self, &c), 10);
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(times_seen(&c.v, &M[i]), 1);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* On the first call, remove every member but the current one. */
static void remove_others(void *m, void *ud)
{
    ctx *c = ud;
    record(m, &c->v);
    if (c->step++) return;
    for (int i = 0; i < 10; i++)
        if (&M[i] != m) jr_rooms_remove(c->r, &M[i]);
}

TEST(callback_removes_other_members)
{
    jr_rooms *r = jr_rooms_new();
    for (int i = 0; i < 10; i++) jr_rooms_join(r, &M[i], S("a"));
    ctx c = {r, {{0}, 0}, 0, NULL};
    CHECK_EQ_INT(jr_rooms_each_in(r, S("a"), remove_others, &c), 1);
    CHECK_EQ_INT(jr_rooms_members(r), 1);
    CHECK_EQ_INT(jr_rooms_size(r, S("a")), 1);
    CHECK(consistent(r));
    jr_rooms_free(r);

    r = jr_rooms_new();
    for (int i = 0; i < 10; i++) jr_rooms_add(r, &M[i]);
    c = (ctx){r, {{0}, 0}, 0, NULL};
    CHECK_EQ_INT(jr_rooms_each(r, remove_others, &c), 1);
    CHECK_EQ_INT(jr_rooms_members(r), 1);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* Remove one given member (the one the walk visits next, in the tests). */
static void remove_target(void *m, void *ud)
{
    ctx *c = ud;
    record(m, &c->v);
    if (c->step++ == 0) jr_rooms_remove(c->r, c->target);
}

TEST(member_removed_before_its_turn_is_not_visited)
{
    jr_rooms *r = jr_rooms_new();
    for (int i = 0; i < 5; i++) jr_rooms_join(r, &M[i], S("a"));
    /* lists are newest first: the walk goes M4, M3, ...; remove M3 from M4 */
    ctx c = {r, {{0}, 0}, 0, &M[3]};
    CHECK_EQ_INT(jr_rooms_each_in(r, S("a"), remove_target, &c), 4);
    CHECK_EQ_INT(times_seen(&c.v, &M[3]), 0);
    CHECK_EQ_INT(c.v.seen[0] == &M[4], 1);
    c = (ctx){r, {{0}, 0}, 0, &M[2]};
    CHECK_EQ_INT(jr_rooms_each(r, remove_target, &c), 3);
    CHECK_EQ_INT(times_seen(&c.v, &M[2]), 0);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* Leave the room, join members, remove and re-add the next one. */
static void churn(void *m, void *ud)
{
    ctx *c = ud;
    record(m, &c->v);
    if (c->step++) return;
    jr_rooms_leave(c->r, m, S("a"));
    for (int i = 10; i < 20; i++) jr_rooms_join(c->r, &M[i], S("a"));
    jr_rooms_remove(c->r, c->target);
    jr_rooms_join(c->r, c->target, S("a"));
}

TEST(members_added_during_a_walk_are_not_visited)
{
    jr_rooms *r = jr_rooms_new();
    for (int i = 0; i < 5; i++) jr_rooms_join(r, &M[i], S("a"));
    ctx c = {r, {{0}, 0}, 0, &M[3]}; /* M[3] comes right after M[4] */
    CHECK_EQ_INT(jr_rooms_each_in(r, S("a"), churn, &c), 4);
    for (int i = 10; i < 20; i++) CHECK_EQ_INT(times_seen(&c.v, &M[i]), 0);
    CHECK_EQ_INT(times_seen(&c.v, &M[3]), 0); /* removed, then added anew */
    CHECK_EQ_INT(jr_rooms_size(r, S("a")), 4 + 10 + 1 - 1);
    CHECK(consistent(r));

    c = (ctx){r, {{0}, 0}, 0, &M[11]};
    size_t before = jr_rooms_members(r);
    CHECK_EQ_INT(jr_rooms_each(r, churn, &c), before - 1);
    CHECK_EQ_INT(times_seen(&c.v, &M[11]), 0);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* The last member leaves, so the room is freed mid-walk; joining it again
 * makes a new room that the walk must not wander into. */
static void empty_and_refill(void *m, void *ud)
{
    ctx *c = ud;
    record(m, &c->v);
    if (c->step++) return;
    for (int i = 0; i < 5; i++) jr_rooms_leave(c->r, &M[i], S("a"));
    jr_rooms_join(c->r, &M[7], S("a"));
    jr_rooms_join(c->r, &M[8], S("b"));
}

TEST(room_freed_and_recreated_during_walks)
{
    jr_rooms *r = jr_rooms_new();
    for (int i = 0; i < 5; i++) jr_rooms_join(r, &M[i], S("a"));
    ctx c = {r, {{0}, 0}, 0, NULL};
    CHECK_EQ_INT(jr_rooms_each_in(r, S("a"), empty_and_refill, &c), 1);
    CHECK_EQ_INT(jr_rooms_size(r, S("a")), 1);
    CHECK(consistent(r));
    jr_rooms_free(r);

    /* each_in_any: "a" empties and refills, "b" gains a member: neither new
     * membership is visited; M[6] (in b from the start) is */
    r = jr_rooms_new();
    for (int i = 0; i < 5; i++) jr_rooms_join(r, &M[i], S("a"));
    jr_rooms_join(r, &M[6], S("b"));
    const char *names[] = {"a", "b"};
    size_t lens[] = {1, 1};
    c = (ctx){r, {{0}, 0}, 0, NULL};
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names, lens, 2, empty_and_refill, &c), 2);
    CHECK_EQ_INT(times_seen(&c.v, &M[6]), 1);
    CHECK_EQ_INT(times_seen(&c.v, &M[7]), 0);
    CHECK_EQ_INT(times_seen(&c.v, &M[8]), 0);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* The first visit takes M[1] out of "a" before its turn there; M[1] is also
 * in "b", so it is visited there, once. M[2] leaves "a" after its visit and
 * is in "b": not visited again. */
static void leave_earlier_room(void *m, void *ud)
{
    ctx *c = ud;
    record(m, &c->v);
    if (m == &M[3]) jr_rooms_leave(c->r, &M[1], S("a"));
    if (m == &M[2]) jr_rooms_leave(c->r, &M[2], S("a"));
}

TEST(each_in_any_with_leaves)
{
    jr_rooms *r = jr_rooms_new();
    jr_rooms_join(r, &M[1], S("a"));
    jr_rooms_join(r, &M[2], S("a"));
    jr_rooms_join(r, &M[3], S("a")); /* walked first in "a" */
    jr_rooms_join(r, &M[1], S("b"));
    jr_rooms_join(r, &M[2], S("b"));
    const char *names[] = {"a", "b"};
    size_t lens[] = {1, 1};
    ctx c = {r, {{0}, 0}, 0, NULL};
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names, lens, 2, leave_earlier_room, &c), 3);
    for (int i = 1; i <= 3; i++) CHECK_EQ_INT(times_seen(&c.v, &M[i]), 1);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* Nested walks: each_in inside each; each_in_any inside each_in_any. */
static void nested(void *m, void *ud)
{
    ctx *c = ud;
    rec inner = {{0}, 0};
    const char *names[] = {"a", "b"};
    size_t lens[] = {1, 1};
    if (c->step == 0) c->v.n += jr_rooms_each_in(c->r, S("a"), record, &inner);
    else if (c->step == 1) c->v.n += jr_rooms_each_in_any(c->r, names, lens, 2, record, &inner);
    else c->v.n += jr_rooms_each_in_any(c->r, names, lens, 1, record, &inner);
    c->target = m;
}

TEST(nested_walks)
{
    jr_rooms *r = jr_rooms_new();
    jr_rooms_join(r, &M[0], S("a"));
    jr_rooms_join(r, &M[1], S("a"));
    jr_rooms_join(r, &M[1], S("b"));
    ctx c = {r, {{0}, 0}, 0, NULL};
    CHECK_EQ_INT(jr_rooms_each(r, nested, &c), 2);
    CHECK_EQ_INT(c.v.n, 4); /* each visit saw both members of "a" */
    const char *names[] = {"a", "b"};
    size_t lens[] = {1, 1};
    c = (ctx){r, {{0}, 0}, 1, NULL};
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names, lens, 2, nested, &c), 2);
    CHECK_EQ_INT(c.v.n, 0); /* nested each_in_any is refused... */
    c = (ctx){r, {{0}, 0}, 2, NULL};
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names, lens, 2, nested, &c), 2);
    CHECK_EQ_INT(c.v.n, 4); /* ...but with one room it is an each_in */
    c = (ctx){r, {{0}, 0}, 1, NULL};
    CHECK_EQ_INT(jr_rooms_each(r, nested, &c), 2);
    CHECK_EQ_INT(c.v.n, 4); /* and each_in_any inside each is fine */
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* ---- out of memory ---- */

static void count_cb(void *m, void *ud) { (*(size_t *)ud)++; }

/* Snapshot of everything observable about members M[0..7] and rooms a, b. */
typedef struct {
    size_t members, rooms, size_a, size_b, of[8];
    int in_a[8];
} snap;

static snap take(const jr_rooms *r)
{
    snap s;
    memset(&s, 0, sizeof s);
    s.members = jr_rooms_members(r);
    s.rooms = jr_rooms_count(r);
    s.size_a = jr_rooms_size(r, S("a"));
    s.size_b = jr_rooms_size(r, S("b"));
    for (int i = 0; i < 8; i++) {
        s.of[i] = jr_rooms_rooms_of(r, &M[i]) + (size_t)jr_rooms_has(r, &M[i]) * 100;
        s.in_a[i] = jr_rooms_is_in(r, &M[i], S("a"));
    }
    return s;
}

/* Fail the k-th allocation of op for k = 0, 1, ... until op gets through
 * without a failure; every failed op must have returned -1 and changed
 * nothing. Returns op's result when it got through. */
static int fail_each_allocation(jr_rooms *r, int (*op)(jr_rooms *), int *failures)
{
    for (long k = 0;; k++) {
        snap before = take(r);
        t_alloc_fail_in = k;
        int rc = op(r);
        int failed = t_alloc_fail_in < 0; /* the countdown passed 0 */
        t_alloc_fail_in = -1;
        if (!failed) return rc;
        (*failures)++;
        snap after = take(r);
        CHECK_EQ_INT(rc, -1);
        CHECK(memcmp(&before, &after, sizeof before) == 0);
        CHECK(consistent(r));
    }
}

static int op_add(jr_rooms *r) { return jr_rooms_add(r, &M[0]); }
static int op_join_new_member_new_room(jr_rooms *r) { return jr_rooms_join(r, &M[1], S("a")); }
static int op_join_known_member_new_room(jr_rooms *r) { return jr_rooms_join(r, &M[0], S("b")); }
static int op_join_new_member_known_room(jr_rooms *r) { return jr_rooms_join(r, &M[2], S("a")); }
static int op_join_known_both(jr_rooms *r) { return jr_rooms_join(r, &M[2], S("b")); }

TEST(out_of_memory_changes_nothing)
{
    t_alloc_fail_in = 0;
    CHECK(jr_rooms_new() == NULL);
    t_alloc_fail_in = -1;
    jr_rooms *r = jr_rooms_new();
    int failures = 0;
    CHECK_EQ_INT(fail_each_allocation(r, op_add, &failures), 1);
    CHECK_EQ_INT(fail_each_allocation(r, op_join_new_member_new_room, &failures), 1);
    CHECK_EQ_INT(fail_each_allocation(r, op_join_known_member_new_room, &failures), 1);
    CHECK_EQ_INT(fail_each_allocation(r, op_join_new_member_known_room, &failures), 1);
    CHECK_EQ_INT(fail_each_allocation(r, op_join_known_both, &failures), 1);
    /* first tables, member, room, link: each failure point was reached */
    CHECK(failures >= 10);
    CHECK_EQ_INT(jr_rooms_size(r, S("a")), 2);
    CHECK_EQ_INT(jr_rooms_size(r, S("b")), 2);

    /* a table that cannot grow keeps working: every growth fails (only
     * the bucket arrays come from calloc) */
    t_calloc_fails = 1;
    int ok = 1;
    for (int i = 0; i < 200; i++) ok &= jr_rooms_join(r, (char *)&M[0] + 1000 + i, S("a")) == 1;
    t_calloc_fails = 0;
    CHECK(ok);
    CHECK_EQ_INT(r->members.mask + 1, FIRST_BUCKETS);
    CHECK_EQ_INT(r->links.mask + 1, FIRST_BUCKETS);
    size_t n = 0;
    CHECK_EQ_INT(jr_rooms_each_in(r, S("a"), count_cb, &n), 202);
    CHECK_EQ_INT(jr_rooms_size(r, S("a")), 202);
    CHECK(consistent(r));
    jr_rooms_free(r);
}

/* ---- scale (a correctness check; nothing is timed) ---- */

TEST(many_members_one_room)
{
    enum { N = 50000 };
    char *base = malloc(N);
    CHECK(base != NULL);
    jr_rooms *r = jr_rooms_new();
    int ok = 1;
    for (size_t i = 0; i < N; i++) ok &= jr_rooms_join(r, base + i, S("tasks")) == 1;
    for (size_t i = 0; i < N; i += 2) ok &= jr_rooms_join(r, base + i, S("even")) == 1;
    CHECK(ok);
    CHECK_EQ_INT(jr_rooms_size(r, S("tasks")), N);
    CHECK(r->members.mask + 1 >= N); /* the tables grew: chains stay short */
    size_t n = 0;
    CHECK_EQ_INT(jr_rooms_each_in(r, S("tasks"), count_cb, &n), N);
    CHECK_EQ_INT(n, N);
    const char *names[] = {"tasks", "even"};
    size_t lens[] = {5, 4};
    CHECK_EQ_INT(jr_rooms_each_in_any(r, names, lens, 2, count_cb, &n), N);
    CHECK(consistent(r));
    for (size_t i = 0; i < N; i++) jr_rooms_remove(r, base + i);
    CHECK_EQ_INT(jr_rooms_members(r), 0);
    CHECK_EQ_INT(jr_rooms_count(r), 0);
    CHECK(consistent(r));
    jr_rooms_free(r);
    free(base);
}

/* ---- randomized, against a naive model ---- */

#define PM 1000 /* members */
#define PR 50   /* rooms */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)((rng >> 11) % n);
}

typedef struct {
    int added[PM];
    unsigned char in[PM][PR];
} model;

static char PMEM[PM];
static char pnames[PR][8];
static size_t plens[PR];

static int model_idx(const void *m) { return (int)((const char *)m - PMEM); }

/* The walk checker: membership (i, room) counts for a walk while it is
 * "original" (held when the walk began) and not broken since (left, or its
 * member removed). A visit must be of a member holding an unbroken original
 * membership in one of the walk's rooms, at most once; at the end, every
 * member still holding one must have been visited. The callback also
 * mutates at random, updating the model. */
typedef struct {
    jr_rooms *r;
    model *md;
    const int *wrooms; /* room indexes of the walk; NULL: every member */
    int nw;
    unsigned char orig[PM][PR + 1]; /* [PR]: "added" for the all-members walk */
    unsigned char visited[PM];
    int bad;
    int mutate;
} pwalk;

static int holds(const pwalk *w, int i)
{
    if (!w->wrooms) return w->orig[i][PR];
    for (int k = 0; k < w->nw; k++)
        if (w->orig[i][w->wrooms[k]]) return 1;
    return 0;
}

static void m_remove(pwalk *w, int i)
{
    jr_rooms_remove(w->r, &PMEM[i]);
    w->md->added[i] = 0;
    memset(w->md->in[i], 0, PR);
    memset(w->orig[i], 0, PR + 1);
}

static void pcb(void *m, void *ud)
{
    pwalk *w = ud;
    int i = model_idx(m);
    if (i < 0 || i >= PM || !holds(w, i) || w->visited[i]) w->bad++;
    if (i >= 0 && i < PM) w->visited[i] = 1;
    if (!w->mutate) return;
    switch (rnd(100)) { /* a change on one visit in 25 */
    case 0: m_remove(w, i); break;                          /* close the current one */
    case 1: m_remove(w, (int)rnd(PM)); break;               /* or another one */
    case 2: {                                               /* leave */
        int j = (int)rnd(PM), k = (int)rnd(PR);
        jr_rooms_leave(w->r, &PMEM[j], pnames[k], plens[k]);
        w->md->in[j][k] = 0;
        w->orig[j][k] = 0;
        break;
    }
    case 3: {                                               /* join: new membership */
        int j = (int)rnd(PM), k = (int)rnd(PR);
        if (jr_rooms_join(w->r, &PMEM[j], pnames[k], plens[k]) < 0) w->bad++;
        w->md->added[j] = 1;
        w->md->in[j][k] = 1;
        break;
    }
    default: break;
    }
}

static void pwalk_start(pwalk *w, jr_rooms *r, model *md, const int *wrooms, int nw, int mutate)
{
    memset(w, 0, sizeof *w);
    w->r = r;
    w->md = md;
    w->wrooms = wrooms;
    w->nw = nw;
    w->mutate = mutate;
    for (int i = 0; i < PM; i++) {
        memcpy(w->orig[i], md->in[i], PR);
        w->orig[i][PR] = (unsigned char)md->added[i];
    }
}

static void pwalk_end(pwalk *w, size_t calls)
{
    size_t nvisited = 0;
    for (int i = 0; i < PM; i++) {
        nvisited += w->visited[i];
        if (holds(w, i) && !w->visited[i]) w->bad++;
    }
    if (nvisited != calls) w->bad++;
}

static int model_agrees(jr_rooms *r, const model *md)
{
    size_t nm = 0, nr = 0;
    for (int k = 0; k < PR; k++) {
        size_t n = 0;
        for (int i = 0; i < PM; i++) n += md->in[i][k];
        if (jr_rooms_size(r, pnames[k], plens[k]) != n) return 0;
        nr += n > 0;
    }
    for (int i = 0; i < PM; i++) {
        size_t n = 0;
        for (int k = 0; k < PR; k++) n += md->in[i][k];
        if (jr_rooms_rooms_of(r, &PMEM[i]) != n) return 0;
        if (jr_rooms_has(r, &PMEM[i]) != md->added[i]) return 0;
        nm += (size_t)md->added[i];
    }
    return jr_rooms_members(r) == nm && jr_rooms_count(r) == nr;
}

TEST(randomized_against_model)
{
    static model md;
    static pwalk w;
    memset(&md, 0, sizeof md);
    /* names: "r<k>", some with NUL bytes, one empty, two differing only
     * after a NUL */
    for (int k = 0; k < PR; k++) {
        plens[k] = (size_t)snprintf(pnames[k], sizeof pnames[k], "r%d", k);
        if (k % 5 == 0) pnames[k][0] = '\0';
        if (k % 7 == 0) pnames[k][plens[k]++] = '\0';
    }
    plens[49] = 0;
    jr_rooms *r = jr_rooms_new();
    long ops = 200000, mismatches = 0, walk_bad = 0, walks = 0;
    for (long op = 0; op < ops; op++) {
        int i = (int)rnd(PM), k = (int)rnd(PR);
        void *m = &PMEM[i];
        uint32_t what = rnd(100);
        if (what < 45) {
            int want = md.in[i][k] ? 0 : 1;
            if (jr_rooms_join(r, m, pnames[k], plens[k]) != want) mismatches++;
            md.added[i] = 1;
            md.in[i][k] = 1;
        } else if (what < 60) {
            if (jr_rooms_leave(r, m, pnames[k], plens[k]) != md.in[i][k]) mismatches++;
            md.in[i][k] = 0;
        } else if (what < 68) {
            if (jr_rooms_add(r, m) != !md.added[i]) mismatches++;
            md.added[i] = 1;
        } else if (what < 72) {
            jr_rooms_remove(r, m);
            md.added[i] = 0;
            memset(md.in[i], 0, PR);
        } else if (what < 82) {
            if (jr_rooms_is_in(r, m, pnames[k], plens[k]) != md.in[i][k]) mismatches++;
        } else {
            /* a walk, sometimes with a mutating callback */
            int wr[4], nw = 1 + (int)rnd(4);
            const char *names[4];
            size_t lens[4];
            for (int j = 0; j < nw; j++) {
                wr[j] = (int)rnd(PR);
                names[j] = pnames[wr[j]];
                lens[j] = plens[wr[j]];
            }
            int kind = (int)rnd(3), mutate = rnd(2) == 0;
            pwalk_start(&w, r, &md, kind == 0 ? NULL : wr, kind == 1 ? 1 : nw, mutate);
            size_t calls = kind == 0   ? jr_rooms_each(r, pcb, &w)
                           : kind == 1 ? jr_rooms_each_in(r, names[0], lens[0], pcb, &w)
                                       : jr_rooms_each_in_any(r, names, lens, (size_t)nw, pcb, &w);
            pwalk_end(&w, calls);
            walk_bad += w.bad;
            walks++;
        }
        if (op % 20000 == 0) {
            if (!model_agrees(r, &md)) mismatches++;
            if (!consistent(r)) mismatches++;
        }
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK_EQ_INT(walk_bad, 0);
    CHECK(walks > 20000);
    CHECK(model_agrees(r, &md));
    CHECK(consistent(r));
    jr_rooms_free(r);
}

int main(void)
{
    RUN(new_free_empty);
    RUN(add_is_idempotent_remove_is_safe);
    RUN(join_adds_and_is_idempotent);
    RUN(leave_frees_empty_rooms_keeps_member);
    RUN(room_names_are_bytes);
    RUN(remove_leaves_every_room);
    RUN(each_visits_every_member_once);
    RUN(each_in_visits_the_room);
    RUN(each_in_any_visits_each_member_once);
    RUN(callback_removes_current_member);
    RUN(callback_removes_other_members);
    RUN(member_removed_before_its_turn_is_not_visited);
    RUN(members_added_during_a_walk_are_not_visited);
    RUN(room_freed_and_recreated_during_walks);
    RUN(each_in_any_with_leaves);
    RUN(nested_walks);
    RUN(out_of_memory_changes_nothing);
    RUN(many_members_one_room);
    RUN(randomized_against_model);
    return test_summary();
}
