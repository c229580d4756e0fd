/* watchdog.h - the worker's half of the watchdog (the master's half is in
 * core/prefork.c; docs/workers.md tells the whole story).
 *
 * Once armed, a worker under a watchdog beats from a libuv timer (nothing
 * per request or per loop turn), and answers the master's
 * JR_PREFORK_WATCHDOG_SIGNAL by closing its listening sockets, logging the
 * Lua traceback of the code that holds the loop, and exiting. */
#ifndef JR_WATCHDOG_H
#define JR_WATCHDOG_H

#include <lua.h>

/* Arm the watchdog in a worker that is about to report ready; a no-op (0)
 * when the master runs no watchdog or it is armed already. describe_idx: a
 * stack index holding a function() -> text, request_id that names what the
 * running coroutine serves (called from the stuck coroutine), or 0. Returns
 * 1 when armed; raises when the signal handler or timer cannot be set up. */
int jr_watchdog_arm(lua_State *L, int describe_idx);

#endif
