/* amqp_out.c - the connection's output buffer: frames encoded here (acks,
 * publishes) are written by one send() per loop turn.
 *
 * A consumer acks every message and a publisher sends three frames per
 * message; a send() each (the kernel's loopback or TCP path per call) was
 * most of their CPU. So their frames are encoded into a->out and written,
 * with the others of the same loop iteration, by one send() from the
 * prepare handle (before the loop waits again), or at once when OUT_MAX
 * bytes wait. Each frame stays what it was: the broker sees the bytes one
 * send() per frame would have sent, in the order they were made. Whatever
 * else must follow them on the wire (a nack or reject, a declaration, the
 * connection's close) writes them first. librabbitmq writes whole frames
 * before it returns, so between its calls the stream is at a frame
 * boundary, and a->out only ever holds whole frames. */
#include "amqp_int.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

/* Written at once beyond this: a turn that makes many frames neither holds
 * them all in memory nor delays the first ones behind the rest. */
enum { OUT_MAX = 65536 };
/* A buffer grown past this by a big publish gives its memory back. */
enum { OUT_KEEP = 262144 };

int jr_amqp_out_flush(jr_amqp *a)
{
    size_t len = a->out.len, off = 0;
    uv_prepare_stop(&a->flush);
    if (len == 0 || !a->conn) {
        jr_buf_recycle(&a->out, OUT_KEEP);
        return 0;
    }
    int fd = amqp_get_sockfd(a->conn), err = 0;
    while (off < len && !err) {
        ssize_t n = send(fd, a->out.data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* the socket's buffer is full (the broker not reading, e.g.
             * under its memory alarm): wait, as librabbitmq's own sends do
             * (a partial frame cannot be left for its next write), bounded
             * like a dead peer by two heartbeat intervals */
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int hb = a->hb_ms ? (int)a->hb_ms * 2 : 30000;
            if (poll(&p, 1, hb) <= 0) err = 1;
        } else {
            err = 1;
        }
    }
    jr_buf_recycle(&a->out, OUT_KEEP);
    if (err) {
        /* what was in the buffer is lost with the connection: the drop
         * tells every unconfirmed publish (EDISCONNECTED), and the broker
         * requeues the deliveries whose acks did not reach it */
        jr_amqp_fail_soon(a, AMQP_STATUS_SOCKET_ERROR, "writing");
        return -1;
    }
    a->last_send = uv_now(a->loop);
    return 0;
}

void jr_amqp_on_flush(uv_prepare_t *h) { jr_amqp_out_flush(h->data); }

uint8_t *jr_amqp_out_room(jr_amqp *a, size_t n)
{
    if (jr_buf_reserve(&a->out, n) != 0) {
        a->out.failed = 0; /* the frames already there are whole and valid */
        return NULL;
    }
    return (uint8_t *)a->out.data + a->out.len;
}

int jr_amqp_out_add(jr_amqp *a, size_t n)
{
    if (a->out.len == 0) uv_prepare_start(&a->flush, jr_amqp_on_flush);
    a->out.len += n;
    if (a->out.len >= OUT_MAX) return jr_amqp_out_flush(a);
    return 0;
}

uint8_t *jr_amqp_frame_head(uint8_t *p, int type, uint16_t ch, size_t size)
{
    p[0] = (uint8_t)type;
    jr_amqp_put_be(p + 1, ch, 2);
    jr_amqp_put_be(p + 3, size, 4);
    p[7 + size] = AMQP_FRAME_END;
    return p + 7;
}

int jr_amqp_out_method(jr_amqp *a, uint16_t ch, amqp_method_number_t id, void *m, size_t max)
{
    uint8_t *f = jr_amqp_out_room(a, FRAME_OVERHEAD + 4 + max);
    int rc;
    if (!f) { /* no memory for the batch: this one alone, after the others */
        if (jr_amqp_out_flush(a) != 0) return -1;
        rc = amqp_send_method(a->conn, ch, id, m);
        if (rc == AMQP_STATUS_OK) {
            a->last_send = uv_now(a->loop);
            return 0;
        }
    } else {
        /* librabbitmq's encoder, documented in amqp_framing.h: it returns
         * the encoded length (its own frame writer relies on that) or an
         * error */
        rc = amqp_encode_method(id, m, (amqp_bytes_t){max, f + 7 + 4});
        if (rc >= 0) {
            jr_amqp_put_be(jr_amqp_frame_head(f, AMQP_FRAME_METHOD, ch, 4 + (size_t)rc), id, 4);
            return jr_amqp_out_add(a, FRAME_OVERHEAD + 4 + (size_t)rc);
        }
    }
    jr_amqp_fail_soon(a, rc, "writing");
    return -1;
}
