/* wsframe.h - RFC 6455 framing, pure: no I/O, no allocation.
 *
 * Parser: an incremental reader of CLIENT frames. Feed it whatever the
 * socket delivered, in chunks of any size (a frame may be split at any byte,
 * a chunk may hold many frames); it returns one event at a time:
 *
 *   size_t off = 0, used;
 *   jr_wsf_event ev;
 *   int t;
 *   while ((t = jr_wsf_parse(&p, buf + off, n - off, &used, &ev)) != JR_WSF_NEED) {
 *       off += used;
 *       ... handle ev (t is JR_WSF_DATA, JR_WSF_CONTROL or JR_WSF_ERROR) ...
 *   }
 *
 * Payloads are unmasked IN PLACE in the caller's buffer (it must be
 * writable): a data chunk's ev.data points into it, so a message that
 * arrived whole in one read needs no copy. Only what cannot be handed out
 * yet is kept in the parser: header bytes of a split header (at most 14)
 * and a control frame's payload (at most 125). The reassembly of a
 * fragmented or split data message is the caller's (it gets the chunks in
 * order, ev.last on the one completing the message).
 *
 * Every protocol rule fails with the RFC 6455 close code the connection
 * must be closed with (ev.code, ev.reason a static sentence); after an
 * error the parser stays failed:
 *   1002  unmasked frame; RSV bits (no extension is negotiated); reserved
 *         opcode (3-7, 0xB-0xF); control frame with FIN=0 or a payload over
 *         125; a continuation without a message open, or a new data frame
 *         while a fragmented one is open; a 64-bit length with the top bit
 *         set; a close payload of 1 byte or a close code not valid on the
 *         wire (valid: 1000-1003, 1007-1011, 3000-4999, the set Autobahn
 *         checks; 1012-1014 are IANA-registered for servers to send, so a
 *         client sending them is refused like the rest of 1012-2999)
 *   1007  a text message that is not UTF-8, found at the first bad byte (a
 *         message ending inside a sequence fails at its last fragment);
 *         also a close reason that is not UTF-8 (Autobahn accepts 1002 or
 *         1007 there: 1007 is the code that names the fault)
 *   1009  a data message longer than max_message, found from the frame
 *         header, before its payload is read
 * Non-minimal length encodings are accepted (the RFC says MUST use the
 * minimal one, but rejecting them protects nothing).
 *
 * Encoder: jr_wsf_header() writes a server frame header (FIN, opcode,
 * 7/16/64-bit length, never masked) for the payload to follow.
 */
#ifndef JR_WSFRAME_H
#define JR_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

#define JR_WSF_OP_CONT 0x0
#define JR_WSF_OP_TEXT 0x1
#define JR_WSF_OP_BINARY 0x2
#define JR_WSF_OP_CLOSE 0x8
#define JR_WSF_OP_PING 0x9
#define JR_WSF_OP_PONG 0xA

/* jr_wsf_parse results */
#define JR_WSF_NEED 0    /* the input is used up; feed more */
#define JR_WSF_DATA 1    /* a chunk of a data message's payload */
#define JR_WSF_CONTROL 2 /* one whole control frame (close, ping, pong) */
#define JR_WSF_ERROR 3   /* protocol error: close the connection with ev.code */

/* Longest frame header (2 + 8 length bytes; servers do not mask). */
#define JR_WSF_MAX_HEADER 10

typedef struct {
    int opcode;        /* DATA: the message's (text 1 / binary 2); CONTROL: 8, 9 or 10 */
    int last;          /* DATA: this chunk completes the message */
    char *data;        /* DATA: points into the input; CONTROL: into the parser */
    size_t len;
    int code;          /* ERROR: the close code to send; CONTROL close: the peer's
                          code, 1005 when its close frame had none */
    const char *reason; /* ERROR: why (static); CONTROL close: the peer's reason bytes */
    size_t rlen;
} jr_wsf_event;

typedef struct {
    uint64_t remaining;      /* payload bytes of the current frame still to come */
    uint64_t msg_len;        /* payload bytes of the data message so far (incl. this frame) */
    size_t max_message;      /* 1009 beyond this many bytes in one data message */
    uint32_t utf8;           /* validator state of the text message in progress */
    unsigned short err;      /* the close code once failed */
    unsigned char state;     /* header / payload / failed */
    unsigned char hlen;      /* header bytes gathered */
    unsigned char hneed;     /* header length once the first two bytes are known */
    unsigned char opcode;    /* current frame */
    unsigned char fin;
    unsigned char msg_op;    /* opcode of the data message open, 0 when none */
    unsigned char mpos;      /* masking key index of the next payload byte */
    unsigned char clen;      /* control payload bytes gathered */
    unsigned char hdr[14];
    unsigned char mask[4];
    unsigned char ctl[125];
} jr_wsf_parser;

void jr_wsf_parser_init(jr_wsf_parser *p, size_t max_message);

/* Consume input from in[0..len) until an event or the end; *used says how
 * many bytes were consumed (the caller continues at in + *used). */
int jr_wsf_parse(jr_wsf_parser *p, char *in, size_t len, size_t *used, jr_wsf_event *ev);

/* Write the header of an unmasked frame carrying len payload bytes into out
 * (JR_WSF_MAX_HEADER bytes); returns its length (2, 4 or 10). */
size_t jr_wsf_header(unsigned char *out, int fin, int opcode, uint64_t len);

/* Header length for a len-byte payload. */
size_t jr_wsf_header_len(uint64_t len);

/* UTF-8 validation, incremental: state starts at JR_WSF_UTF8_ACCEPT; feed
 * chunks; JR_WSF_UTF8_REJECT once a byte can never be valid (overlongs,
 * surrogates and code points above U+10FFFF included); a whole text is valid
 * when the final state is JR_WSF_UTF8_ACCEPT. */
#define JR_WSF_UTF8_ACCEPT 0u
#define JR_WSF_UTF8_REJECT 0xffffffffu
uint32_t jr_wsf_utf8(uint32_t state, const void *data, size_t len);
int jr_wsf_utf8_valid(const void *data, size_t len);

/* Close codes a peer may send (the set the parser accepts, see above). */
int jr_wsf_close_code_valid(int code);

#endif
