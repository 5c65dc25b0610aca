/*
 * websocket_frame.c — WebSocket frames in and out (RFC 6455 §5), and the
 * timers that run while a connection waits for its peer.
 *
 * Reading: the header is read into ws->hdr byte by byte as it arrives (a
 * read may stop anywhere, and ss_ws_wait must not block in the middle of
 * one), then checked before anything else happens: reserved bits (no
 * extension is ever negotiated), opcodes, the mask bit, control frames'
 * size and FIN, continuation order, and the announced length against
 * max_message_size — a 64-bit length is refused from the header alone, so
 * a peer cannot make us allocate or wait for what it announces. Control
 * frames are read whole into ws->control and acted on here (pong, close
 * echo); data frames are left for the message layer, which reads their
 * payload straight into the caller's buffer.
 *
 * Waiting: reads go through ss_read with the request's timeout set to the
 * next timer (keep-alive ping, idle timeout), so a coroutine parks, a
 * thread sleeps in poll, and a shutdown ends the wait with -ECANCELED,
 * under every strategy.
 *
 * Writing: a frame's header and a small payload leave in one send; the
 * request's timeout is the send timeout, and a send that fails or times
 * out drops the peer (a frame cut in the middle cannot be continued).
 */
#include <errno.h>
#include <string.h>

#include "http_internal.h"
#include "websocket_internal.h"

/* ---- reading, with the timers -------------------------------------- */

static int64_t next_timer(const ss_ws *ws)
{
    int64_t due = SS_NO_DEADLINE;
    if (ws->linger_deadline)
        return ws->linger_deadline;
    if (ws->idle_timeout_ns)
        due = ws->last_rx + ws->idle_timeout_ns;
    if (ws->ping_interval_ns && !ws->close_sent) {
        int64_t from = ws->last_rx > ws->last_ping ? ws->last_rx : ws->last_ping;
        int64_t ping = from + ws->ping_interval_ns;
        if (due == SS_NO_DEADLINE || ping < due)
            due = ping;
    }
    return due;
}

/* A timer is due: the linger deadline or the idle timeout end the wait
 * (-ETIMEDOUT), a keep-alive ping goes out (0: wait on). */
static int run_timers(ss_ws *ws, int64_t now)
{
    if (ws->linger_deadline)
        return now >= ws->linger_deadline ? -ETIMEDOUT : 0;
    if (ws->idle_timeout_ns && now >= ws->last_rx + ws->idle_timeout_ns) {
        (void)ss__ws_fail(ws, SS_WS_GOING_AWAY, "idle timeout");
        return -ETIMEDOUT;
    }
    int64_t from = ws->last_rx > ws->last_ping ? ws->last_rx : ws->last_ping;
    if (ws->ping_interval_ns && !ws->close_sent &&
        now >= from + ws->ping_interval_ns) {
        ws->last_ping = now;
        int rc = ss__ws_send_frame(ws, WS_OP_PING, true, NULL, 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ss__ws_in(ss_ws *ws, void *buf, size_t n, bool wait)
{
    if (ws->gone)
        return SS_WS_CLOSED;
    if (ws->pre_pos < ws->pre_len) {
        size_t avail = ws->pre_len - ws->pre_pos;
        if (n > avail)
            n = avail;
        memcpy(buf, ws->pre + ws->pre_pos, n);
        ws->pre_pos += n;
        ws->last_rx = ss_now_ns();
        return (int)n;
    }
    if (n > (size_t)SS_IO_MAX)
        n = (size_t)SS_IO_MAX;
    for (;;) {
        int got;
        if (!wait) {
            got = ss_read_nowait(ws->req, buf, n);
            if (got == -EAGAIN)
                return -EAGAIN;
        } else {
            int64_t now = ss_now_ns();
            int rc = run_timers(ws, now);
            if (rc < 0)
                return rc;
            int64_t due = next_timer(ws);
            double timeout = 0; /* no limit */
            if (due != SS_NO_DEADLINE) {
                timeout = (double)(due - now) / 1e9;
                if (timeout < 1e-3)
                    timeout = 1e-3;
            }
            ss_request_set_timeout(ws->req, timeout);
            got = ss_read(ws->req, buf, n);
            if (got == -ETIMEDOUT)
                continue; /* a timer is due: run_timers acts on it */
        }
        if (got > 0) {
            ws->last_rx = ss_now_ns();
            return got;
        }
        if (got == -ECANCELED)
            return got;
        /* End of stream or a connection error: nothing more comes. */
        ws->gone = true;
        return SS_WS_CLOSED;
    }
}

void ss__ws_unmask(ss_ws *ws, uint8_t *p, size_t n)
{
    unsigned m = ws->mask_pos;
    size_t i = 0;
    /* Eight bytes at a time with the mask rotated to where it stands. */
    if (n >= 16) {
        uint8_t rot[8];
        for (int k = 0; k < 8; k++)
            rot[k] = ws->mask[(m + (unsigned)k) & 3];
        uint64_t word_mask;
        memcpy(&word_mask, rot, 8);
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            w ^= word_mask;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++)
        p[i] ^= ws->mask[(m + (unsigned)i) & 3];
    ws->mask_pos = (m + (unsigned)n) & 3;
}

/* ---- the reader's state machine ------------------------------------ */

bool ss__ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* A whole control frame arrived (payload unmasked in ws->control). */
static int take_control(ss_ws *ws)
{
    const uint8_t *p = ws->control;
    size_t n = ws->control_len;
    switch (ws->control_op) {
    case WS_OP_PING:
        /* After our close, nothing more goes out but the close itself. */
        if (ws->close_sent)
            return 0;
        return ss__ws_send_frame(ws, WS_OP_PONG, true, p, n);
    case WS_OP_PONG:
        return 0; /* liveness only: last_rx moved when it was read */
    default:
        break;
    }
    /* Close (§5.5.1, §7.4): no payload, or a valid code and UTF-8 reason. */
    int code = SS_WS_NO_STATUS;
    if (n == 1)
        return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR, "close frame of 1 byte");
    if (n >= 2) {
        code = p[0] << 8 | p[1];
        if (!ss__ws_close_code_valid(code))
            return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR, "invalid close code");
        if (!ss__ws_utf8_valid(p + 2, n - 2))
            return ss__ws_fail(ws, SS_WS_INVALID_DATA,
                               "close reason is not UTF-8");
    }
    ws->close_received = true;
    if (!ws->close_sent) {
        ws->close_code = code;
        memcpy(ws->close_reason, p + (n >= 2 ? 2 : 0), n >= 2 ? n - 2 : 0);
        ws->close_reason[n >= 2 ? n - 2 : 0] = '\0';
        /* Echo the code (§5.5.1); none when the peer sent none. */
        (void)ss__ws_send_close(ws, code == SS_WS_NO_STATUS ? 0 : code,
                                NULL, 0);
    }
    return SS_WS_CLOSED;
}

/* How many header bytes the frame needs, from what has been read. */
static size_t header_need(const ss_ws *ws)
{
    if (ws->hdr_len < 2)
        return 2;
    unsigned len7 = ws->hdr[1] & 0x7f;
    size_t need = 2 + 4; /* client frames carry a mask */
    if (len7 == 126)
        need += 2;
    else if (len7 == 127)
        need += 8;
    return need;
}

/* The first two bytes of a header: everything but the length can be
 * judged from them, so a bad frame fails at once, before the rest of its
 * header (an unmasked frame has no mask to wait for). Returns 0 or the
 * failure. */
static int check_start(ss_ws *ws)
{
    uint8_t b0 = ws->hdr[0], b1 = ws->hdr[1];
    int op = b0 & 0x0f;
    if (b0 & 0x70)
        return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR,
                           "reserved bits set (no extension negotiated)");
    if (!(b1 & 0x80))
        return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR, "unmasked client frame");
    if (op >= 0x8) {
        if (op > WS_OP_PONG)
            return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR, "unknown opcode");
        if (!(b0 & 0x80))
            return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR,
                               "fragmented control frame");
        if ((b1 & 0x7f) > WS_CONTROL_MAX)
            return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR,
                               "control frame over 125 bytes");
        return 0;
    }
    if (op > WS_OP_BINARY)
        return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR, "unknown opcode");
    if (op == WS_OP_CONTINUATION && !ws->in_message)
        return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR,
                           "continuation without a message");
    if (op != WS_OP_CONTINUATION && ws->in_message)
        return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR,
                           "new message inside a fragmented one");
    return 0;
}

/* A whole header is in ws->hdr (check_start passed): set the frame up. */
static int start_frame(ss_ws *ws)
{
    uint8_t b0 = ws->hdr[0], b1 = ws->hdr[1];
    ws->hdr_len = 0;
    ws->hdr_checked = false;
    int op = b0 & 0x0f;
    unsigned len7 = b1 & 0x7f;
    uint64_t len = len7;
    const uint8_t *m = ws->hdr + 2;
    if (len7 == 126) {
        len = (uint64_t)ws->hdr[2] << 8 | ws->hdr[3];
        m += 2;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | ws->hdr[2 + i];
        m += 8;
        if (len >> 63)
            return ss__ws_fail(ws, SS_WS_PROTOCOL_ERROR,
                               "64-bit length with its top bit set");
    }
    memcpy(ws->mask, m, 4);
    ws->mask_pos = 0;
    if (op >= 0x8) {
        ws->in_control = true;
        ws->control_op = op;
        ws->control_len = 0;
        ws->control_need = (size_t)len;
        return 0;
    }
    if (op != WS_OP_CONTINUATION) {
        ws->in_message = true;
        ws->message_type = op == WS_OP_TEXT ? SS_WS_TEXT : SS_WS_BINARY;
        ws->message_len = 0;
        ws->utf8_state = WS_UTF8_ACCEPT;
    }
    /* Checked from the header: nothing is read or allocated for it. */
    if (len > ws->max_message_size - ws->message_len) {
        (void)ss__ws_fail(ws, SS_WS_TOO_BIG, "message too big");
        return -EMSGSIZE;
    }
    ws->message_len += len;
    ws->in_frame = true;
    ws->frame_fin = b0 & 0x80;
    ws->frame_left = len;
    return 1;
}

int ss__ws_next_frame(ss_ws *ws, bool wait)
{
    for (;;) {
        if (ws->in_frame)
            return 1;
        if (ws->close_received || ws->failed || ws->gone)
            return SS_WS_CLOSED;
        if (ws->in_control) {
            while (ws->control_len < ws->control_need) {
                int got = ss__ws_in(ws, ws->control + ws->control_len,
                                    ws->control_need - ws->control_len, wait);
                if (got < 0)
                    return got;
                ws->control_len += (size_t)got;
            }
            ss__ws_unmask(ws, ws->control, ws->control_len);
            ws->in_control = false;
            int rc = take_control(ws);
            if (rc < 0)
                return rc;
            continue;
        }
        for (;;) {
            /* Judge the first two bytes as soon as they are here. */
            if (ws->hdr_len >= 2 && !ws->hdr_checked) {
                int rc = check_start(ws);
                if (rc < 0)
                    return rc;
                ws->hdr_checked = true;
            }
            size_t need = header_need(ws);
            if (ws->hdr_len >= need)
                break;
            /* Byte counts, not more: what follows is payload. */
            int got = ss__ws_in(ws, ws->hdr + ws->hdr_len, need - ws->hdr_len,
                                wait);
            if (got < 0)
                return got;
            ws->hdr_len += (size_t)got;
        }
        int rc = start_frame(ws);
        if (rc < 0)
            return rc;
    }
}

/* ---- writing ------------------------------------------------------- */

/* Header and payload in one send up to this size; above it the copy
 * costs more than a second send. */
#define COALESCE 4096

int ss__ws_send_frame(ss_ws *ws, int opcode, bool fin, const void *payload,
                      size_t n)
{
    if (ws->gone)
        return SS_WS_CLOSED;
    uint8_t buf[10 + COALESCE];
    size_t hlen = 2;
    buf[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        buf[1] = (uint8_t)n;
    } else if (n <= 0xffff) {
        buf[1] = 126;
        buf[2] = (uint8_t)(n >> 8);
        buf[3] = (uint8_t)n;
        hlen = 4;
    } else {
        buf[1] = 127;
        for (int i = 0; i < 8; i++)
            buf[2 + i] = (uint8_t)((uint64_t)n >> (8 * (7 - i)));
        hlen = 10;
    }
    ss_request_set_timeout(ws->req, ws->send_timeout);
    int rc;
    if (n <= COALESCE) {
        if (n)
            memcpy(buf + hlen, payload, n);
        rc = ss_write_all(ws->req, buf, hlen + n);
    } else {
        rc = ss_write_all(ws->req, buf, hlen);
        if (rc >= 0)
            rc = ss_write_all(ws->req, payload, n);
    }
    if (rc >= 0)
        return 0;
    /* Part of a frame may have gone: the stream cannot go on. */
    ws->gone = true;
    return rc == -ECANCELED ? rc : SS_WS_CLOSED;
}

int ss__ws_send_close(ss_ws *ws, int code, const char *reason, size_t len)
{
    if (ws->close_sent)
        return 0;
    ws->close_sent = true;
    uint8_t p[2 + WS_REASON_MAX];
    size_t n = 0;
    if (code) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        if (len > WS_REASON_MAX)
            len = WS_REASON_MAX;
        if (len)
            memcpy(p + 2, reason, len);
        n = 2 + len;
    }
    return ss__ws_send_frame(ws, WS_OP_CLOSE, true, p, n);
}

int ss__ws_fail(ss_ws *ws, int code, const char *reason)
{
    if (!ws->close_sent) {
        ws->close_code = code;
        size_t len = strlen(reason);
        memcpy(ws->close_reason, reason, len + 1);
        (void)ss__ws_send_close(ws, code, reason, len);
    }
    ws->failed = true;
    ws->in_frame = ws->in_control = false;
    return SS_WS_CLOSED;
}
