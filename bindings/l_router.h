/* l_router.h - the router binding as seen by the HTTP binding, which matches
 * every request in C before any Lua runs (one crossing of the boundary per
 * request: the route id and its params, not method and path strings). */
#ifndef JR_L_ROUTER_H
#define JR_L_ROUTER_H

#include <lua.h>

#include "router.h"

/* The router of the router userdata at idx; raises when idx is not one or
 * it was freed. */
jr_router *jr_router_check(lua_State *L, int idx);

/* Push the params of a found match as a table { name = value } (ints as
 * numbers when exact), or nil when the route has none. */
void jr_router_push_params(lua_State *L, const jr_route_match *m);

#endif
