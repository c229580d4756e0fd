/* http_attrs.h - the attributes of an HTTP request's server span
 * (docs/tracing.md, "Root spans"), read from the request itself.
 *
 * One place for them: the Lua span builds its attribute table from here
 * when something reads it (bindings/l_http.c, h:span_attributes), and the
 * OTLP encoder writes them straight from the request into the protobuf
 * (bindings/l_otlp_encode.c), so a traced request exported over OTLP makes
 * no Lua table, string or header copy for them, and the two cannot drift
 * apart.
 *
 *   jr_http_req_span_attrs(req, is_websocket, fn, ud);
 *
 * fn(ud, key, klen, value, vlen) is called, in this order, for:
 *   http.url                      the raw request target
 *   http.path                     the percent-decoded path
 *   http.query                    the raw query, when there is one
 *   ws.url                        the target again, for a WebSocket handshake
 *   http.request.header.<name>    each header (name lower-cased, repeated
 *                                 fields joined with ", ", a sensitive one
 *                                 -- authorization, cookie, set-cookie,
 *                                 proxy-authorization, x-api-key -- as
 *                                 "[redacted]")
 *   http.request.client.host      the peer address
 * Keys and values are only valid during the call. Returns 0, or -1 when
 * memory ran out (a long header name or a repeated header to join): the
 * attributes before it were handed out, that one and the rest were not. */
#ifndef JR_HTTP_ATTRS_H
#define JR_HTTP_ATTRS_H

#include <stddef.h>

#include "http.h"

typedef void (*jr_http_attr_fn)(void *ud, const char *key, size_t klen, const char *val, size_t vlen);

int jr_http_req_span_attrs(const jr_http_req *req, int websocket, jr_http_attr_fn fn, void *ud);

/* Whether the lower-case header name is one whose value a span never
 * records (the list above). */
int jr_http_attr_redacted(const char *lname, size_t len);

#endif
