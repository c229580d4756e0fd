/* rooms.c - the room manager (see rooms.h).
 *
 * Three intrusive chained hash tables: members by pointer, rooms by name,
 * memberships ("links") by (member, room). A link sits on its room's list
 * (what a fan-out walks) and on its member's list (what remove walks).
 *
 * Walks survive changes made by their callbacks through two devices:
 *   - every active walk is on r->walks with the node it will visit next;
 *     unlinking a node moves any cursor pointing at it to its successor, so a
 *     cursor never points at freed memory and removed nodes are not visited;
 *   - new nodes are pushed at the heads of the lists, behind any cursor,
 *     so a walk of one list never reaches them; and every link carries the
 *     value of a creation clock, so that each_in_any, which looks its rooms
 *     up one after the other, skips links made after it began.
 */
#include "rooms.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The tests rebuild this file with failing allocators. */
#ifndef JR_ROOMS_MALLOC
#define JR_ROOMS_MALLOC malloc
#endif
#ifndef JR_ROOMS_CALLOC
#define JR_ROOMS_CALLOC calloc
#endif

#define FIRST_BUCKETS 16

/* ---- one intrusive chained hash table, shared by the three indexes ---- */

/* First field of every indexed node, so a node and its hnode convert. */
typedef struct hnode {
    struct hnode *hnext;
    uint64_t hash;
} hnode;

typedef struct {
    hnode **b;   /* NULL until the first insert */
    size_t mask; /* buckets - 1 */
    size_t n;
} table;

static int table_rehash(table *t, size_t nb)
{
    hnode **b = JR_ROOMS_CALLOC(nb, sizeof *b);
    if (!b) return -1;
    if (t->b) {
        for (size_t i = 0; i <= t->mask; i++) {
            hnode *e = t->b[i];
            while (e) {
                hnode *next = e->hnext;
                e->hnext = b[e->hash & (nb - 1)];
                b[e->hash & (nb - 1)] = e;
                e = next;
            }
        }
        free(t->b);
    }
    t->b = b;
    t->mask = nb - 1;
    return 0;
}

/* Make room for one more node before anything is changed, so the insert
 * itself cannot fail. Only the very first bucket array is required: a table
 * that cannot double stays correct with longer chains. */
static int table_reserve(table *t)
{
    if (!t->b) return table_rehash(t, FIRST_BUCKETS);
    if (t->n >= t->mask + 1 && t->mask < SIZE_MAX / 4 / sizeof(hnode *))
        (void)table_rehash(t, (t->mask + 1) * 2);
    return 0;
}

static void table_insert(table *t, hnode *e)
{
    hnode **head = &t->b[e->hash & t->mask];
    e->hnext = *head;
    *head = e;
    t->n++;
}

static void table_remove(table *t, hnode *e)
{
    hnode **pp = &t->b[e->hash & t->mask];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    t->n--;
}

static hnode *table_first(const table *t, uint64_t h)
{
    return t->b ? t->b[h & t->mask] : NULL;
}

/* splitmix64's finalizer: pointers differ in few low bits (alignment) and
 * the tables index by the low bits. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_ptr(const void *p) { return mix64((uint64_t)(uintptr_t)p); }

static uint64_t hash_name(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL ^ seed; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return mix64(h ^ n);
}

/* ---- the nodes ---- */

typedef struct link link;

typedef struct member {
    hnode h;                     /* key: ptr */
    void *ptr;
    struct member *prev, *next;  /* every member, for jr_rooms_each */
    link *links;                 /* its memberships */
    size_t nrooms;
    uint64_t mark;               /* stamp of the last each_in_any that visited it */
} member;

typedef struct room {
    hnode h;                     /* key: name */
    link *links;                 /* its memberships */
    size_t n;
    size_t len;
    char name[];
} room;

struct link {
    hnode h;                     /* key: (m, rm) */
    member *m;
    room *rm;
    link *rprev, *rnext;         /* on rm->links */
    link *mprev, *mnext;         /* on m->links */
    uint64_t born;
};

/* An active walk: the node it visits next (one of the two is used). */
typedef struct walk {
    struct walk *up;
    link *next_link;
    member *next_member;
} walk;

struct jr_rooms {
    table members, rooms, links;
    member *all;                 /* list of every member, newest first */
    walk *walks;                 /* innermost first */
    uint64_t clock;              /* links made so far */
    uint64_t stamp;              /* each_in_any walks so far */
    int in_any;                  /* an each_in_any is running */
    uint64_t seed;
};

static uint64_t hash_link(const member *m, const room *rm)
{
    return mix64(hash_ptr(m) ^ (uint64_t)(uintptr_t)rm);
}

static member *find_member(const jr_rooms *r, const void *p)
{
    uint64_t h = hash_ptr(p);
    for (hnode *e = table_first(&r->members, h); e; e = e->hnext) {
        member *m = (member *)e;
        if (m->ptr == p) return m;
    }
    return NULL;
}

static room *find_room(const jr_rooms *r, const char *name, size_t len, uint64_t h)
{
    for (hnode *e = table_first(&r->rooms, h); e; e = e->hnext) {
        room *rm = (room *)e;
        if (e->hash == h && rm->len == len && (len == 0 || memcmp(rm->name, name, len) == 0))
            return rm;
    }
    return NULL;
}

static room *lookup_room(const jr_rooms *r, const char *name, size_t len)
{
    return find_room(r, name, len, hash_name(r->seed, name, len));
}

static link *find_link(const jr_rooms *r, const member *m, const room *rm)
{
    uint64_t h = hash_link(m, rm);
    for (hnode *e = table_first(&r->links, h); e; e = e->hnext) {
        link *l = (link *)e;
        if (l->m == m && l->rm == rm) return l;
    }
    return NULL;
}

/* ---- manager ---- */

jr_rooms *jr_rooms_new(void)
{
    jr_rooms *r = JR_ROOMS_CALLOC(1, sizeof *r);
    if (!r) return NULL;
    /* Room names may come from clients: a per-manager seed (from the heap
     * address, so ASLR varies it) keeps one precomputed set of colliding
     * names from working everywhere. FNV-1a is not a keyed hash, though: if
     * rooms are ever named by untrusted peers at scale, switch to SipHash
     * with a random key. */
    r->seed = hash_ptr(r);
    return r;
}

void jr_rooms_free(jr_rooms *r)
{
    if (!r) return;
    while (r->all) jr_rooms_remove(r, r->all->ptr);
    free(r->members.b);
    free(r->rooms.b);
    free(r->links.b);
    free(r);
}

static void member_insert(jr_rooms *r, member *m, void *p)
{
    memset(m, 0, sizeof *m);
    m->h.hash = hash_ptr(p);
    m->ptr = p;
    m->next = r->all;
    if (r->all) r->all->prev = m;
    r->all = m;
    table_insert(&r->members, &m->h);
}

int jr_rooms_add(jr_rooms *r, void *p)
{
    if (find_member(r, p)) return 0;
    if (table_reserve(&r->members) != 0) return -1;
    member *m = JR_ROOMS_MALLOC(sizeof *m);
    if (!m) return -1;
    member_insert(r, m, p);
    return 1;
}

/* Unlink and free one membership, and its room when it was the last. */
static void link_drop(jr_rooms *r, link *l)
{
    for (walk *w = r->walks; w; w = w->up)
        if (w->next_link == l) w->next_link = l->rnext;
    room *rm = l->rm;
    member *m = l->m;
    if (l->rprev) l->rprev->rnext = l->rnext;
    else rm->links = l->rnext;
    if (l->rnext) l->rnext->rprev = l->rprev;
    if (l->mprev) l->mprev->mnext = l->mnext;
    else m->links = l->mnext;
    if (l->mnext) l->mnext->mprev = l->mprev;
    table_remove(&r->links, &l->h);
    m->nrooms--;
    free(l);
    if (--rm->n == 0) {
        table_remove(&r->rooms, &rm->h);
        free(rm);
    }
}

void jr_rooms_remove(jr_rooms *r, void *p)
{
    member *m = find_member(r, p);
    if (!m) return;
    while (m->links) link_drop(r, m->links);
    for (walk *w = r->walks; w; w = w->up)
        if (w->next_member == m) w->next_member = m->next;
    if (m->prev) m->prev->next = m->next;
    else r->all = m->next;
    if (m->next) m->next->prev = m->prev;
    table_remove(&r->members, &m->h);
    free(m);
}

int jr_rooms_join(jr_rooms *r, void *p, const char *name, size_t len)
{
    uint64_t h = hash_name(r->seed, name, len);
    member *m = find_member(r, p);
    room *rm = find_room(r, name, len, h);
    if (m && rm && find_link(r, m, rm)) return 0;

    /* Allocate everything first: a failure then has nothing to undo. */
    if (table_reserve(&r->links) != 0) return -1;
    if (!m && table_reserve(&r->members) != 0) return -1;
    if (!rm && table_reserve(&r->rooms) != 0) return -1;
    if (!rm && len > SIZE_MAX - sizeof(room)) return -1;
    member *new_m = m ? NULL : JR_ROOMS_MALLOC(sizeof *new_m);
    room *new_rm = rm ? NULL : JR_ROOMS_MALLOC(sizeof(room) + len);
    link *l = JR_ROOMS_MALLOC(sizeof *l);
    if (!l || (!m && !new_m) || (!rm && !new_rm)) {
        free(new_m);
        free(new_rm);
        free(l);
        return -1;
    }

    if (!m) {
        m = new_m;
        member_insert(r, m, p);
    }
    if (!rm) {
        rm = new_rm;
        rm->h.hash = h;
        rm->links = NULL;
        rm->n = 0;
        rm->len = len;
        if (len) memcpy(rm->name, name, len);
        table_insert(&r->rooms, &rm->h);
    }
    l->h.hash = hash_link(m, rm);
    l->m = m;
    l->rm = rm;
    l->born = ++r->clock;
    l->rprev = NULL;
    l->rnext = rm->links;
    if (rm->links) rm->links->rprev = l;
    rm->links = l;
    l->mprev = NULL;
    l->mnext = m->links;
    if (m->links) m->links->mprev = l;
    m->links = l;
    rm->n++;
    m->nrooms++;
    table_insert(&r->links, &l->h);
    return 1;
}

int jr_rooms_leave(jr_rooms *r, void *p, const char *name, size_t len)
{
    member *m = find_member(r, p);
    if (!m || !m->links) return 0;
    room *rm = lookup_room(r, name, len);
    link *l = rm ? find_link(r, m, rm) : NULL;
    if (!l) return 0;
    link_drop(r, l);
    return 1;
}

/* ---- counts ---- */

size_t jr_rooms_members(const jr_rooms *r) { return r->members.n; }

size_t jr_rooms_count(const jr_rooms *r) { return r->rooms.n; }

size_t jr_rooms_size(const jr_rooms *r, const char *name, size_t len)
{
    const room *rm = lookup_room(r, name, len);
    return rm ? rm->n : 0;
}

size_t jr_rooms_rooms_of(const jr_rooms *r, const void *p)
{
    const member *m = find_member(r, p);
    return m ? m->nrooms : 0;
}

int jr_rooms_has(const jr_rooms *r, const void *p) { return find_member(r, p) != NULL; }

int jr_rooms_is_in(const jr_rooms *r, const void *p, const char *name, size_t len)
{
    const member *m = find_member(r, p);
    if (!m || !m->links) return 0;
    const room *rm = lookup_room(r, name, len);
    return rm && find_link(r, m, rm);
}

/* ---- walks ---- */

static void walk_push(jr_rooms *r, walk *w)
{
    w->up = r->walks;
    w->next_link = NULL;
    w->next_member = NULL;
    r->walks = w;
}

/* Walks end in LIFO order (they nest on the C stack). */
static void walk_pop(jr_rooms *r, walk *w) { r->walks = w->up; }

size_t jr_rooms_each(jr_rooms *r, jr_rooms_cb cb, void *ud)
{
    walk w;
    size_t calls = 0;
    walk_push(r, &w);
    w.next_member = r->all;
    /* Members added by cb go to the head of r->all, behind the cursor, so
     * this walk never reaches them: no clock needed. */
    while (w.next_member) {
        member *m = w.next_member;
        w.next_member = m->next; /* before cb: cb may free m */
        calls++;
        cb(m->ptr, ud);
    }
    walk_pop(r, &w);
    return calls;
}

/* Visit the links of rm born by start. With stamp != 0, skip members
 * already marked with it and mark the rest. */
static size_t walk_room(jr_rooms *r, room *rm, uint64_t start, uint64_t stamp, jr_rooms_cb cb,
                        void *ud)
{
    walk w;
    size_t calls = 0;
    walk_push(r, &w);
    w.next_link = rm->links;
    while (w.next_link) {
        link *l = w.next_link;
        w.next_link = l->rnext; /* before cb: cb may free l, and rm with it */
        member *m = l->m;
        if (l->born > start) continue;
        if (stamp) {
            if (m->mark == stamp) continue;
            m->mark = stamp;
        }
        calls++;
        cb(m->ptr, ud);
    }
    walk_pop(r, &w);
    return calls;
}

size_t jr_rooms_each_in(jr_rooms *r, const char *name, size_t len, jr_rooms_cb cb, void *ud)
{
    room *rm = lookup_room(r, name, len);
    return rm ? walk_room(r, rm, r->clock, 0, cb, ud) : 0;
}

size_t jr_rooms_each_in_any(jr_rooms *r, const char *const *names, const size_t *lens, size_t n,
                            jr_rooms_cb cb, void *ud)
{
    /* One room needs no dedup marks, so it nests like each_in. */
    if (n == 1) return jr_rooms_each_in(r, names[0], lens[0], cb, ud);
    if (r->in_any) return 0;
    uint64_t start = r->clock;
    uint64_t stamp = ++r->stamp;
    size_t calls = 0;
    r->in_any = 1;
    for (size_t i = 0; i < n; i++) {
        room *rm = lookup_room(r, names[i], lens[i]);
        if (rm) calls += walk_room(r, rm, start, stamp, cb, ud);
    }
    r->in_any = 0;
    return calls;
}
