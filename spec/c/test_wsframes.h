/* test_wsframes.h - building CLIENT frames (masked unless asked not to) for
 * the WebSocket tests (test_wsframe.c, test_ws.c). The header comes from our
 * encoder (its own vectors are checked byte by byte in test_wsframe.c) with
 * the mask bit and a fixed key added. */
#ifndef JR_TEST_WSFRAMES_H
#define JR_TEST_WSFRAMES_H

#include "buf.h"
#include "wsframe.h"

#include <string.h>

static const unsigned char TEST_MASK_KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Append one client frame to b. */
static void put_frame(jr_buf *b, int fin, int opcode, const void *data, size_t len, int mask)
{
    unsigned char h[JR_WSF_MAX_HEADER + 4];
    size_t hl = jr_wsf_header(h, fin, opcode, len);
    if (mask) {
        h[1] |= 0x80;
        memcpy(h + hl, TEST_MASK_KEY, 4);
        hl += 4;
    }
    jr_buf_append(b, h, hl);
    size_t at = b->len;
    jr_buf_append(b, data, len);
    if (mask)
        for (size_t i = 0; i < len; i++) b->data[at + i] ^= (char)TEST_MASK_KEY[i % 4];
}

/* A close frame's payload: the code, then the reason. */
static size_t close_payload(char *out, int code, const char *reason)
{
    size_t rl = reason ? strlen(reason) : 0;
    out[0] = (char)(code >> 8);
    out[1] = (char)code;
    if (rl) memcpy(out + 2, reason, rl);
    return 2 + rl;
}

#endif
