/* rooms.h - the room manager: which members (WebSocket connections, later)
 * are in which rooms, and the fan-out walks that send to them.
 *
 *   jr_rooms *r = jr_rooms_new();
 *   jr_rooms_add(r, conn);                       (on accept)
 *   jr_rooms_join(r, conn, "tasks", 5);          (adds conn if unknown)
 *   jr_rooms_each_in(r, "tasks", 5, send_frame, frame);
 *   jr_rooms_remove(r, conn);                    (on close: leaves every room)
 *   jr_rooms_free(r);
 *
 * Members are the caller's opaque pointers, compared by address; the manager
 * never dereferences them. Room names are arbitrary bytes with a length (any
 * length, NUL and invalid UTF-8 allowed), because they come from user code
 * and from other instances through the backplane. A room exists while it has
 * members: the last leave frees it, so rooms named by clients cannot pile up.
 *
 * Cost: add/join/leave O(1) average, remove O(rooms of the member), a walk
 * O(members visited) plus one hash lookup per room named; a room name is
 * hashed once per call. Tables double as they fill and never shrink. Every membership is one node
 * on two intrusive lists (its room's and its member's) and in a hash table
 * keyed by (member, room), so neither side's list is ever searched.
 *
 * Failure: the functions that allocate return -1 when memory runs out and
 * then have changed nothing (a join that would have added its member does
 * not leave it added). A hash table that cannot grow keeps working at a
 * higher load instead of failing.
 *
 * Not thread-safe: one manager per loop (per worker process).
 */
#ifndef JR_ROOMS_H
#define JR_ROOMS_H

#include <stddef.h>

typedef struct jr_rooms jr_rooms;

/* Called once per member visited by a walk; ud is the walk's ud. */
typedef void (*jr_rooms_cb)(void *member, void *ud);

/* NULL when out of memory. */
jr_rooms *jr_rooms_new(void);
/* Frees the manager and its bookkeeping (not the members). Not from inside a
 * walk's callback. NULL is fine. */
void jr_rooms_free(jr_rooms *r);

/* Make m a member (in no room yet): 1 added, 0 already a member, -1 out of
 * memory. Adding is what jr_rooms_each (a broadcast) reaches. */
int jr_rooms_add(jr_rooms *r, void *m);
/* Remove m from every room and from the manager. Unknown m is a no-op, so a
 * close path may call it without knowing whether the accept path got far. */
void jr_rooms_remove(jr_rooms *r, void *m);

/* Put m in room (adding m first if unknown): 1 joined, 0 already in it,
 * -1 out of memory. room may be NULL when len is 0. */
int jr_rooms_join(jr_rooms *r, void *m, const char *room, size_t len);
/* Take m out of room: 1 left, 0 was not in it (or unknown m / no such room).
 * m stays a member of the manager even when in no room. */
int jr_rooms_leave(jr_rooms *r, void *m, const char *room, size_t len);

/* Counts. */
size_t jr_rooms_members(const jr_rooms *r);                   /* members added */
size_t jr_rooms_count(const jr_rooms *r);                     /* non-empty rooms */
size_t jr_rooms_size(const jr_rooms *r, const char *room, size_t len); /* members in room */
size_t jr_rooms_rooms_of(const jr_rooms *r, const void *m);   /* rooms m is in */
/* 1 when m is a member / is in room, else 0. */
int jr_rooms_has(const jr_rooms *r, const void *m);
int jr_rooms_is_in(const jr_rooms *r, const void *m, const char *room, size_t len);

/* Walks (fan-out). Each calls cb(member, ud) once per member and returns how
 * many calls it made. The order is unspecified.
 *
 * The callback may change the manager (a slow reader is closed in the middle
 * of a broadcast): it may remove any member, including the current one, and
 * join or leave any room. What a walk then sees, exactly:
 *   - a member (or membership) removed before the walk reaches it is not
 *     visited;
 *   - a member added, or a membership joined, after the walk began is not
 *     visited, even when the same pointer was removed and added again;
 *   - nobody is visited twice by one walk.
 * Walks nest (a callback may start jr_rooms_each or jr_rooms_each_in), with
 * one exception below. jr_rooms_free is not allowed inside a callback. */

/* Every member added (a broadcast), whether in rooms or not. */
size_t jr_rooms_each(jr_rooms *r, jr_rooms_cb cb, void *ud);
/* The members of one room. An unknown room visits nobody. */
size_t jr_rooms_each_in(jr_rooms *r, const char *room, size_t len, jr_rooms_cb cb, void *ud);
/* The members of any of n rooms, each member once even when it is in several
 * of them (a send to rooms {"a","b"} reaches a member of both once). Rooms
 * are looked up when the walk reaches them, so a member that joins a later
 * room during the walk is still not visited (it joined after the walk
 * began), and a member that leaves an earlier room is still visited in a
 * later one it is in.
 * Dedup marks live in the members, one set per manager: an each_in_any
 * started from inside another each_in_any's callback on the same manager
 * would corrupt the outer walk's marks, so it visits nobody and returns 0
 * (with n == 1 it needs no marks and runs as jr_rooms_each_in).
 * (Fan-out callbacks queue a frame; they do not fan out again.) */
size_t jr_rooms_each_in_any(jr_rooms *r, const char *const *rooms, const size_t *lens,
                            size_t n, jr_rooms_cb cb, void *ud);

#endif
