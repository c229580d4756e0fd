/* wsframe.c - RFC 6455 frame parser and encoder (contract in wsframe.h). */
#include "wsframe.h"

#include <string.h>

enum { S_HEADER, S_PAYLOAD, S_FAILED };

/* ------------------------------------------------------------ UTF-8 */

/* A state is 0 (accept), REJECT, or the bytes still expected in its low
 * byte with the allowed range of the NEXT byte above it: the ranges are
 * where overlongs (E0, F0), surrogates (ED) and code points past U+10FFFF
 * (F4) are excluded (RFC 3629 §4). */
#define U8(lo, hi, rem) (((uint32_t)(lo) << 16) | ((uint32_t)(hi) << 8) | (uint32_t)(rem))

static uint32_t utf8_step(uint32_t st, unsigned char b)
{
    if (st == 0) {
        if (b < 0x80) return 0;
        if (b < 0xC2) return JR_WSF_UTF8_REJECT; /* continuation, or overlong C0/C1 */
        if (b < 0xE0) return U8(0x80, 0xBF, 1);
        if (b < 0xF0) return U8(b == 0xE0 ? 0xA0 : 0x80, b == 0xED ? 0x9F : 0xBF, 2);
        if (b < 0xF5) return U8(b == 0xF0 ? 0x90 : 0x80, b == 0xF4 ? 0x8F : 0xBF, 3);
        return JR_WSF_UTF8_REJECT;
    }
    unsigned lo = (st >> 16) & 0xff, hi = (st >> 8) & 0xff, rem = st & 0xff;
    if (b < lo || b > hi) return JR_WSF_UTF8_REJECT;
    return rem == 1 ? 0 : U8(0x80, 0xBF, rem - 1);
}

uint32_t jr_wsf_utf8(uint32_t st, const void *data, size_t len)
{
    const unsigned char *s = data;
    size_t i = 0;
    if (st == JR_WSF_UTF8_REJECT) return st;
    while (i < len) {
        if (st == 0) {
            /* ASCII runs, 8 bytes at a time: most text is ASCII */
            while (i + 8 <= len) {
                uint64_t v;
                memcpy(&v, s + i, 8);
                if (v & 0x8080808080808080ull) break;
                i += 8;
            }
            while (i < len && s[i] < 0x80) i++;
            if (i == len) break;
        }
        st = utf8_step(st, s[i++]);
        if (st == JR_WSF_UTF8_REJECT) break;
    }
    return st;
}

int jr_wsf_utf8_valid(const void *data, size_t len)
{
    return jr_wsf_utf8(JR_WSF_UTF8_ACCEPT, data, len) == JR_WSF_UTF8_ACCEPT;
}

/* ------------------------------------------------------------ helpers */

int jr_wsf_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* XOR n bytes with the masking key starting at key index pos, 8 bytes at a
 * time (unaligned 64-bit loads via memcpy compile to plain moves). */
static void unmask(unsigned char *d, size_t n, const unsigned char key[4], unsigned pos)
{
    unsigned char k[8];
    for (unsigned j = 0; j < 8; j++) k[j] = key[(pos + j) & 3];
    uint64_t k64;
    memcpy(&k64, k, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, d + i, 8);
        v ^= k64;
        memcpy(d + i, &v, 8);
    }
    for (; i < n; i++) d[i] ^= k[i & 7];
}

static int fail(jr_wsf_parser *p, jr_wsf_event *ev, int code, const char *why)
{
    p->state = S_FAILED;
    p->err = (unsigned short)code;
    memset(ev, 0, sizeof *ev);
    ev->code = code;
    ev->reason = why;
    ev->rlen = strlen(why);
    return JR_WSF_ERROR;
}

static int is_control(int op) { return op >= 8; }

/* The first two header bytes are known: every rule they decide. */
static const char *check_first(jr_wsf_parser *p)
{
    unsigned char b0 = p->hdr[0], b1 = p->hdr[1];
    int op = b0 & 0x0f, len7 = b1 & 0x7f;
    if (b0 & 0x70) return "reserved bits set";
    if (!(b1 & 0x80)) return "client frame not masked";
    if ((op >= 3 && op <= 7) || op >= 0xB) return "reserved opcode";
    if (is_control(op)) {
        if (!(b0 & 0x80)) return "fragmented control frame";
        if (len7 > 125) return "control frame payload over 125 bytes";
        if (op == JR_WSF_OP_CLOSE && len7 == 1) return "close frame payload of 1 byte";
    } else if (op == JR_WSF_OP_CONT) {
        if (!p->msg_op) return "continuation frame without a message";
    } else if (p->msg_op) {
        return "new data frame inside a fragmented message";
    }
    return NULL;
}

/* The whole header is in p->hdr: length and masking key. 0, or an event. */
static int finish_header(jr_wsf_parser *p, jr_wsf_event *ev)
{
    unsigned char *h = p->hdr;
    uint64_t len = h[1] & 0x7f;
    size_t at = 2;
    if (len == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        at = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
        at = 10;
        if (len >> 63) return fail(p, ev, 1002, "64-bit length with the top bit set");
    }
    memcpy(p->mask, h + at, 4);
    p->opcode = h[0] & 0x0f;
    p->fin = (h[0] & 0x80) != 0;
    p->remaining = len;
    p->mpos = 0;
    p->clen = 0;
    p->hlen = 0;
    p->hneed = 0;
    p->state = S_PAYLOAD;
    if (!is_control(p->opcode)) {
        if (p->opcode != JR_WSF_OP_CONT) {
            p->msg_op = p->opcode;
            p->msg_len = 0;
            p->utf8 = JR_WSF_UTF8_ACCEPT;
        }
        /* the limit is checked before any payload is read or buffered */
        if (len > p->max_message - p->msg_len) return fail(p, ev, 1009, "message too big");
        p->msg_len += len;
    }
    return 0;
}

/* A control frame's payload is complete in p->ctl. */
static int control_event(jr_wsf_parser *p, jr_wsf_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->opcode = p->opcode;
    ev->data = (char *)p->ctl;
    ev->len = p->clen;
    if (p->opcode == JR_WSF_OP_CLOSE) {
        ev->code = 1005;
        if (p->clen >= 2) {
            ev->code = (p->ctl[0] << 8) | p->ctl[1];
            if (!jr_wsf_close_code_valid(ev->code))
                return fail(p, ev, 1002, "invalid close code");
            ev->reason = (const char *)p->ctl + 2;
            ev->rlen = p->clen - 2u;
            if (!jr_wsf_utf8_valid(ev->reason, ev->rlen))
                return fail(p, ev, 1007, "close reason is not UTF-8");
        }
    }
    p->state = S_HEADER;
    return JR_WSF_CONTROL;
}

/* ------------------------------------------------------------ parser */

void jr_wsf_parser_init(jr_wsf_parser *p, size_t max_message)
{
    memset(p, 0, sizeof *p);
    p->max_message = max_message;
}

int jr_wsf_parse(jr_wsf_parser *p, char *in, size_t len, size_t *used, jr_wsf_event *ev)
{
    unsigned char *s = (unsigned char *)in;
    size_t i = 0;
    int r;
    for (;;) {
        if (p->state == S_FAILED) {
            *used = len;
            fail(p, ev, p->err, "protocol error");
            return JR_WSF_ERROR;
        }
        if (p->state == S_HEADER) {
            while (p->hlen < 2 && i < len) p->hdr[p->hlen++] = s[i++];
            if (p->hlen < 2) break;
            if (!p->hneed) {
                const char *why = check_first(p);
                if (why) {
                    *used = i;
                    return fail(p, ev, 1002, why);
                }
                unsigned len7 = p->hdr[1] & 0x7f;
                p->hneed = (unsigned char)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
            }
            size_t take = p->hneed - p->hlen;
            if (take > len - i) take = len - i;
            memcpy(p->hdr + p->hlen, s + i, take);
            p->hlen = (unsigned char)(p->hlen + take);
            i += take;
            if (p->hlen < p->hneed) break;
            if ((r = finish_header(p, ev)) != 0) {
                *used = i;
                return r;
            }
            /* an empty frame completes here: fall through to S_PAYLOAD with 0 left */
        }
        size_t n = len - i;
        if (n > p->remaining) n = (size_t)p->remaining;
        if (is_control(p->opcode)) {
            memcpy(p->ctl + p->clen, s + i, n);
            unmask(p->ctl + p->clen, n, p->mask, p->mpos);
            p->clen = (unsigned char)(p->clen + n);
            p->mpos = (unsigned char)((p->mpos + n) & 3);
            p->remaining -= n;
            i += n;
            if (p->remaining) break;
            *used = i;
            return control_event(p, ev);
        }
        unsigned char *d = s + i;
        unmask(d, n, p->mask, p->mpos);
        p->mpos = (unsigned char)((p->mpos + n) & 3);
        p->remaining -= n;
        i += n;
        int last = p->remaining == 0 && p->fin;
        if (p->msg_op == JR_WSF_OP_TEXT) {
            p->utf8 = jr_wsf_utf8(p->utf8, d, n);
            if (p->utf8 == JR_WSF_UTF8_REJECT || (last && p->utf8 != JR_WSF_UTF8_ACCEPT)) {
                *used = i;
                return fail(p, ev, 1007, "text message is not UTF-8");
            }
        }
        int op = p->msg_op;
        if (p->remaining == 0) {
            p->state = S_HEADER;
            if (p->fin) p->msg_op = 0;
        }
        if (n || last) {
            memset(ev, 0, sizeof *ev);
            ev->opcode = op;
            ev->last = last;
            ev->data = (char *)d;
            ev->len = n;
            *used = i;
            return JR_WSF_DATA;
        }
        if (i == len && p->state == S_PAYLOAD) break;
    }
    *used = i;
    return JR_WSF_NEED;
}

/* ------------------------------------------------------------ encoder */

size_t jr_wsf_header_len(uint64_t len) { return len < 126 ? 2 : len < 65536 ? 4 : 10; }

size_t jr_wsf_header(unsigned char *out, int fin, int opcode, uint64_t len)
{
    out[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}
