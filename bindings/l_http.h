/* l_http.h - the HTTP binding as seen by the WebSocket binding (l_ws.c),
 * which takes over the connection of a request a Lua handler is running. */
#ifndef JR_L_HTTP_H
#define JR_L_HTTP_H

#include <lua.h>

#include "http.h"

/* The request of the request handle at idx (jararaca.core.http), or NULL
 * when its task has ended; raises when idx is not a request handle. */
jr_http_req *jr_l_http_req(lua_State *L, int idx);

#endif
