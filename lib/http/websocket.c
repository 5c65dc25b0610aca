/*
 * websocket.c — WebSocket messages (RFC 6455 §5.4, §6, §7): receiving whole
 * or in parts, sending whole or in fragments, pings, the close handshake,
 * and ss_ws_wait, the "peer or my own descriptor" wait of a WebSocket that
 * other connections send messages to.
 *
 * The frame layer (websocket_frame.c) hands this one data frames with
 * their header read and checked; the payload is read here straight into
 * the caller's buffer, unmasked there, and — for text — fed to the
 * incremental UTF-8 check, so a bad byte fails the connection (1007) as
 * soon as it is read, whichever fragment it is in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "websocket_internal.h"

/* How long ss_ws_close() waits for the peer's close frame. */
#define LINGER_SECONDS 1.0
/* After a protocol error: the drain ends after this long without input. */
#define QUIET_NS INT64_C(100000000)

static bool over(const ss_ws *ws)
{
    return ws->close_sent || ws->close_received || ws->gone;
}

/* The payload of the current data frame into buf: at most size bytes.
 * Returns the count (0 when the frame is done), or an error. */
static int read_payload(ss_ws *ws, uint8_t *buf, size_t size)
{
    if (ws->frame_left == 0)
        return 0;
    size_t n = size < ws->frame_left ? size : (size_t)ws->frame_left;
    int got = ss__ws_in(ws, buf, n, true);
    if (got < 0)
        return got;
    ss__ws_unmask(ws, buf, (size_t)got);
    ws->frame_left -= (uint64_t)got;
    if (ws->message_type == SS_WS_TEXT) {
        ws->utf8_state = ss__ws_utf8_feed(ws->utf8_state, buf, (size_t)got);
        if (ws->utf8_state == WS_UTF8_REJECT)
            return ss__ws_fail(ws, SS_WS_INVALID_DATA, "invalid UTF-8");
    }
    return got;
}

/* The current frame is read whole: true when it ended the message. */
static int end_frame(ss_ws *ws, bool *final)
{
    ws->in_frame = false;
    *final = ws->frame_fin;
    if (!ws->frame_fin)
        return 0;
    ws->in_message = false;
    if (ws->message_type == SS_WS_TEXT && ws->utf8_state != WS_UTF8_ACCEPT)
        return ss__ws_fail(ws, SS_WS_INVALID_DATA,
                           "text ends inside a UTF-8 character");
    return 0;
}

/* receive_part without the "is it over" check, for the close linger too.
 * limit: what the message may total (-EMSGSIZE beyond, closed 1009). */
static int receive_part(ss_ws *ws, void *buf, size_t size, uint64_t limit,
                        ss_ws_type *type, bool *final)
{
    bool fin = false;
    for (;;) {
        int rc = ss__ws_next_frame(ws, true);
        if (rc < 0)
            return rc;
        if (ws->message_len > limit) {
            (void)ss__ws_fail(ws, SS_WS_TOO_BIG, "message too big");
            return -EMSGSIZE;
        }
        if (type)
            *type = ws->message_type;
        /* What the frame announced is coming: fill buf as far as it goes. */
        size_t want = size < ws->frame_left ? size : (size_t)ws->frame_left;
        int got = 0;
        while ((size_t)got < want) {
            int n = read_payload(ws, (uint8_t *)buf + got, want - (size_t)got);
            if (n < 0)
                return n;
            got += n;
        }
        if (ws->frame_left == 0) {
            rc = end_frame(ws, &fin);
            if (rc < 0)
                return rc;
        }
        /* An empty frame that does not end the message says nothing. */
        if (got > 0 || fin || size == 0) {
            if (final)
                *final = fin;
            return got;
        }
    }
}

int ss_ws_receive_part(ss_ws *ws, void *buf, size_t size, ss_ws_type *type,
                       bool *final)
{
    if (!ws || (!buf && size))
        return -EINVAL;
    if (over(ws))
        return SS_WS_CLOSED;
    if (size > (size_t)SS_IO_MAX)
        size = (size_t)SS_IO_MAX;
    bool fin = false;
    int rc = receive_part(ws, buf, size, UINT64_MAX, type, &fin);
    if (final)
        *final = fin;
    return rc;
}

int ss_ws_receive(ss_ws *ws, void *buf, size_t size, ss_ws_type *type)
{
    if (!ws || (!buf && size))
        return -EINVAL;
    if (over(ws))
        return SS_WS_CLOSED;
    if (size > (size_t)SS_IO_MAX)
        size = (size_t)SS_IO_MAX;
    /* A message already started by ss_ws_receive_part() counts whole. */
    uint64_t start = ws->in_message ? ws->message_len - ws->frame_left : 0;
    size_t done = 0;
    for (;;) {
        bool fin = false;
        int got = receive_part(ws, (char *)buf + done, size - done,
                               (uint64_t)size + start, type, &fin);
        if (got < 0)
            return got;
        done += (size_t)got;
        if (fin)
            return (int)done;
    }
}

/* ---- sending ------------------------------------------------------- */

static int send_data(ss_ws *ws, int opcode, bool fin, const void *buf,
                     size_t n)
{
    if (n > (size_t)SS_IO_MAX || (!buf && n))
        return -EINVAL;
    if (over(ws))
        return SS_WS_CLOSED;
    int rc = ss__ws_send_frame(ws, opcode, fin, buf, n);
    return rc < 0 ? rc : (int)n;
}

static bool type_valid(ss_ws_type type)
{
    return type == SS_WS_TEXT || type == SS_WS_BINARY;
}

int ss_ws_send(ss_ws *ws, ss_ws_type type, const void *buf, size_t n)
{
    if (!ws || !type_valid(type))
        return -EINVAL;
    if (ws->sending)
        return -EBUSY;
    return send_data(ws, type == SS_WS_TEXT ? WS_OP_TEXT : WS_OP_BINARY, true,
                     buf, n);
}

int ss_ws_send_text(ss_ws *ws, const char *s)
{
    if (!s)
        return -EINVAL;
    return ss_ws_send(ws, SS_WS_TEXT, s, strlen(s));
}

int ss_ws_send_part(ss_ws *ws, ss_ws_type type, const void *buf, size_t n,
                    bool final)
{
    if (!ws)
        return -EINVAL;
    int opcode = WS_OP_CONTINUATION;
    if (!ws->sending) {
        if (!type_valid(type))
            return -EINVAL;
        opcode = type == SS_WS_TEXT ? WS_OP_TEXT : WS_OP_BINARY;
    }
    int rc = send_data(ws, opcode, final, buf, n);
    if (rc >= 0)
        ws->sending = !final;
    return rc;
}

int ss_ws_ping(ss_ws *ws, const void *payload, size_t n)
{
    if (!ws || n > WS_CONTROL_MAX || (!payload && n))
        return -EINVAL;
    if (over(ws))
        return SS_WS_CLOSED;
    return ss__ws_send_frame(ws, WS_OP_PING, true, payload, n);
}

/* ---- closing ------------------------------------------------------- */

/* After our close frame: wait briefly for the peer's, so that closing the
 * socket with its frames unread does not turn into a reset that could
 * destroy our close frame before the peer reads it (RFC 6455 §7.1.1:
 * the server closes the TCP connection first, once the handshake is
 * done). Data frames meanwhile are read and dropped. */
static void linger(ss_ws *ws)
{
    if (ws->lingered || ws->close_received || ws->gone)
        return;
    ws->lingered = true;
    ws->linger_deadline = ss_now_ns() + (int64_t)(LINGER_SECONDS * 1e9);
    uint8_t sink[4096];
    if (ws->failed) {
        /* The input is no longer frames we can trust: read what comes
         * until the end or a short quiet spell — the peer's answer to our
         * close comes within a round trip, and a peer that waits for us to
         * close the connection first (as RFC 6455 asks) must not wait for
         * the whole linger. */
        int64_t end = ws->linger_deadline;
        for (;;) {
            int64_t quiet = ss_now_ns() + QUIET_NS;
            ws->linger_deadline = quiet < end ? quiet : end;
            if (ss__ws_in(ws, sink, sizeof sink, true) <= 0)
                break;
        }
    } else {
        for (;;) {
            bool fin;
            int rc = receive_part(ws, sink, sizeof sink, UINT64_MAX, NULL, &fin);
            if (rc < 0)
                break;
        }
    }
    ws->linger_deadline = 0;
}

int ss_ws_close(ss_ws *ws, int code, const char *reason)
{
    if (!ws)
        return -EINVAL;
    size_t len = reason ? strlen(reason) : 0;
    if (code != 0 && !ss__ws_close_code_valid(code))
        return -EINVAL;
    if (len > WS_REASON_MAX || (len && code == 0) ||
        !ss__ws_utf8_valid(reason, len))
        return -EINVAL;
    if (ws->close_sent || ws->close_received) {
        linger(ws);
        return 0;
    }
    if (ws->gone)
        return SS_WS_CLOSED;
    ws->close_code = code;
    if (len)
        memcpy(ws->close_reason, reason, len);
    ws->close_reason[len] = '\0';
    int rc = ss__ws_send_close(ws, code, reason, len);
    if (rc < 0)
        return rc;
    linger(ws);
    return 0;
}

int ss_ws_close_code(const ss_ws *ws)
{
    return ws ? ws->close_code : 0;
}

const char *ss_ws_close_reason(const ss_ws *ws)
{
    return ws ? ws->close_reason : "";
}

/* ---- waiting ------------------------------------------------------- */

int ss_ws_wait(ss_ws *ws, int fd, short events, double timeout)
{
    if (!ws)
        return -EINVAL;
    if (over(ws))
        return SS_WS_CLOSED;
    int64_t deadline =
        timeout > 0 ? ss_now_ns() + (int64_t)(timeout * 1e9) : SS_NO_DEADLINE;
    for (;;) {
        /* Control frames and headers that have arrived are taken now; a
         * data frame ready to read is input. */
        int rc = ss__ws_next_frame(ws, false);
        if (rc == 1)
            return SS_READY_INPUT;
        if (rc != -EAGAIN)
            return rc;
        int64_t now = ss_now_ns();
        if (deadline != SS_NO_DEADLINE && now >= deadline)
            return -ETIMEDOUT;
        /* The next timer or the caller's deadline, whichever is first. */
        int64_t due = deadline;
        int64_t from = ws->last_rx > ws->last_ping ? ws->last_rx : ws->last_ping;
        if (ws->ping_interval_ns && !ws->close_sent) {
            int64_t ping = from + ws->ping_interval_ns;
            if (due == SS_NO_DEADLINE || ping < due)
                due = ping;
        }
        if (ws->idle_timeout_ns) {
            int64_t idle = ws->last_rx + ws->idle_timeout_ns;
            if (due == SS_NO_DEADLINE || idle < due)
                due = idle;
        }
        double wait_s = 0;
        if (due != SS_NO_DEADLINE) {
            wait_s = (double)(due - now) / 1e9;
            if (wait_s < 1e-3)
                wait_s = 1e-3;
        }
        int ready;
        if (fd >= 0) {
            ready = ss_wait_input_or_fd(ws->req, fd, events, wait_s);
        } else {
            /* Only the peer: a read that waits is the wait. One byte at a
             * time into the header (or control payload) being read. */
            int64_t saved = ws->linger_deadline;
            ws->linger_deadline = due == SS_NO_DEADLINE ? 0 : due;
            uint8_t *dst = ws->in_control ? ws->control + ws->control_len
                                          : ws->hdr + ws->hdr_len;
            int got = ss__ws_in(ws, dst, 1, true);
            ws->linger_deadline = saved;
            if (got > 0) {
                if (ws->in_control)
                    ws->control_len++;
                else
                    ws->hdr_len++;
                continue;
            }
            ready = got;
        }
        if (ready == -ETIMEDOUT) {
            /* The caller's deadline, or a timer: ping, idle timeout. */
            now = ss_now_ns();
            if (deadline != SS_NO_DEADLINE && now >= deadline)
                return -ETIMEDOUT;
            if (ws->idle_timeout_ns && now >= ws->last_rx + ws->idle_timeout_ns) {
                (void)ss__ws_fail(ws, SS_WS_GOING_AWAY, "idle timeout");
                return -ETIMEDOUT;
            }
            if (ws->ping_interval_ns && !ws->close_sent &&
                now >= from + ws->ping_interval_ns) {
                ws->last_ping = now;
                rc = ss__ws_send_frame(ws, WS_OP_PING, true, NULL, 0);
                if (rc < 0)
                    return rc;
            }
            continue;
        }
        if (ready < 0)
            return ready;
        if (ready & SS_READY_FD)
            return SS_READY_FD;
        /* Input: take it at the top. */
    }
}

void ss_ws_free(ss_ws *ws)
{
    if (!ws)
        return;
    if (!ws->gone) {
        if (!ws->close_sent && !ws->close_received)
            (void)ss_ws_close(ws, SS_WS_NORMAL, NULL);
        else
            linger(ws);
    }
    free(ws->pre);
    free(ws);
}
