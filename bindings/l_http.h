/* l_http.h - the HTTP binding as seen by other bindings: the WebSocket
 * binding (l_ws.c), which takes over the connection of a request a Lua
 * handler is running, and the OTLP encoder (l_otlp_encode.c), which reads a
 * request's span attributes from it. */
#ifndef JR_L_HTTP_H
#define JR_L_HTTP_H

#include <lua.h>

#include "http.h"
#include "trace_ctx.h"

/* The request of the request handle at idx (jararaca.core.http), or NULL
 * when its task has ended; raises when idx is not a request handle. */
jr_http_req *jr_l_http_req(lua_State *L, int idx);

/* The same for any value: NULL when it is not a request handle or its task
 * has ended; never raises (the OTLP encoder reads a span's handle). */
jr_http_req *jr_l_http_req_opt(lua_State *L, int idx);

/* The root span kept in C of the request handle at idx (h:trace_begin, not
 * taken by Lua since) and its request in *req; NULL otherwise. */
const jr_trace_ctx *jr_l_http_kept_trace(lua_State *L, int idx, jr_http_req **req);

#endif
