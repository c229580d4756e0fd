/* l_otlp_encode.h - the span encoder of jararaca.core.otlp_encode as the
 * OTLP exporter binding (l_otlp.c, e:push_span) calls it: a finished span
 * goes from its Lua table into the exporter's queue with no Lua string in
 * between. */
#ifndef JR_L_OTLP_ENCODE_H
#define JR_L_OTLP_ENCODE_H

#include <lua.h>
#include <stddef.h>

#include "http.h"
#include "trace_ctx.h"

/* The span table at idx encoded as a trace.v1.Span: the bytes (valid until
 * jr_l_otlp_encode_done or the next encoding) and *len, or NULL and *err
 * (a static message) when it cannot be encoded. Leaves the stack as it was. */
const char *jr_l_otlp_encode_span(lua_State *L, int idx, size_t *len, const char **err);

/* The root span of an HTTP request kept in C, ended now with status (at
 * stack index args: its name, the route's encoded template attributes and
 * whether it is a WebSocket; at params: the path parameters' table or nil;
 * absolute indexes): bytes as above, or NULL when memory ran out. */
const char *jr_l_otlp_encode_http_span(lua_State *L, const jr_trace_ctx *t, jr_http_req *req, int args, int params,
                                       int status, size_t *len);

/* Done with the bytes: the shared buffer is kept for the next span (or
 * released when one grew it past its bound). */
void jr_l_otlp_encode_done(void);

#endif
