/* trace_ctx.h - W3C trace context for a root span kept in C: parsing an
 * inbound `traceparent`, formatting the one echoed back, and random ids.
 *
 * The HTTP binding keeps a request's root span in C while no Lua code asks
 * for it (bindings/l_http.c, h:trace_begin): the span then costs no Lua
 * table or string. The rules are lua/jararaca/tracing/w3c.lua's, exactly
 * (spec/integration/trace_root_spec.lua checks the two agree):
 *   traceparent = version "-" trace-id "-" parent-id "-" flags, lower-case
 *   hex only (an upper-case A-F anywhere refuses it); version 00 has nothing
 *   after the flags, a higher version may have "-..." (read by its first four
 *   fields), version ff is invalid, all-zero ids are invalid.
 *   https://www.w3.org/TR/trace-context/
 * Ids come from xoshiro256** seeded from getrandom (jr_trace_seed after a
 * fork: pre-forked workers must not draw the same ids): unique and
 * unpredictable enough not to collide, not secret. */
#ifndef JR_TRACE_CTX_H
#define JR_TRACE_CTX_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    unsigned char trace_id[16], span_id[8], parent_id[8];
    unsigned char sampled, has_parent;
    uint64_t start_us; /* wall clock, microseconds since the epoch */
} jr_trace_ctx;

/* Parse s (n bytes): 0 and the ids and sampled flag, or -1 when invalid. */
int jr_traceparent_parse(const char *s, size_t n, unsigned char trace_id[16], unsigned char parent_id[8],
                         int *sampled);

/* n bytes as 2n lower-case hex digits into out (no NUL). */
void jr_trace_hex(char *out, const unsigned char *b, size_t n);

#define JR_TRACEPARENT_LEN 55
/* "00-<trace>-<span>-0<sampled>" into out (JR_TRACEPARENT_LEN bytes, no NUL). */
void jr_traceparent_format(char *out, const unsigned char trace_id[16], const unsigned char span_id[8], int sampled);

/* Seed the id generator from the kernel (0, or -1 when getrandom failed:
 * then from the clock and pid, still distinct per process). */
int jr_trace_seed(void);
/* n random bytes, not all zero (an all-zero id is invalid). */
void jr_trace_random_id(unsigned char *out, size_t n);
/* Whether a new trace is sampled at probability p. */
int jr_trace_sample(double p);
/* The wall clock in microseconds since the epoch (the Lua spans' clock). */
uint64_t jr_trace_now_us(void);

#endif
