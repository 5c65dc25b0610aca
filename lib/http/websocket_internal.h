/*
 * websocket_internal.h — what the WebSocket files share, layered with no
 * cycle: websocket.c (messages, close handshake, waiting) →
 * websocket_frame.c (frames in and out, with the timers) →
 * websocket_utf8.c (the incremental UTF-8 check); websocket_handshake.c
 * (the upgrade) uses websocket_accept_key.c (SHA-1 and base64).
 *
 * The WebSocket reads through the request's own small read buffer
 * (ss_read), so an idle connection holds no buffer of its own: the frame
 * header being read (at most 14 bytes) and a control frame's payload (at
 * most 125) live in the ss_ws itself, message payloads go straight to the
 * caller's buffer and are unmasked there.
 */
#ifndef SOCKSERV_WEBSOCKET_INTERNAL_H
#define SOCKSERV_WEBSOCKET_INTERNAL_H

#include <stdint.h>

#include "sockserv/websocket.h"

/* Opcodes (RFC 6455 §5.2). */
#define WS_OP_CONTINUATION 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xA

/* A control frame's payload: at most 125 bytes (§5.5). */
#define WS_CONTROL_MAX 125
/* A close reason: 125 less the two bytes of the code. */
#define WS_REASON_MAX 123

/* The incremental UTF-8 check: 0 is "between characters". */
#define WS_UTF8_ACCEPT 0
#define WS_UTF8_REJECT 0xff

struct ss_ws {
    ss_http *h;
    ss_request *req;
    /* The configuration with defaults filled in; timers in ns, 0: never. */
    size_t max_message_size;
    int64_t ping_interval_ns, idle_timeout_ns;
    double send_timeout;
    const char *subprotocol;

    /* Bytes of the connection read by the HTTP handler past the upgrade
     * request (a client that did not wait for the 101): read first. */
    char *pre;
    size_t pre_pos, pre_len;

    /* The frame header being read. */
    uint8_t hdr[14];
    size_t hdr_len;
    bool hdr_checked; /* its first two bytes passed check_start */
    /* A data frame whose header has been read: in_frame, frame_left bytes
     * of payload still to come, unmasked with mask from mask_pos. */
    bool in_frame, frame_fin;
    uint64_t frame_left;
    uint8_t mask[4];
    unsigned mask_pos;
    /* A control frame's payload being read. */
    bool in_control;
    int control_op;
    uint8_t control[WS_CONTROL_MAX];
    size_t control_len, control_need;

    /* The message being received. */
    bool in_message;
    ss_ws_type message_type;
    uint64_t message_len; /* announced so far, by the frame headers */
    uint32_t utf8_state;

    /* A fragmented send in progress. */
    bool sending;

    /* Timers: the last byte from the peer, the last ping we sent. */
    int64_t last_rx, last_ping;
    /* While lingering for the peer's close: reads end at this time. */
    int64_t linger_deadline;

    /* Close state. */
    bool close_sent, close_received;
    bool failed; /* we closed for a protocol error: the input is garbage */
    bool gone;   /* the connection is unusable (reset, EOF, send failed) */
    bool lingered;
    int close_code;
    char close_reason[WS_REASON_MAX + 1];
};

/* websocket_accept_key.c: the Sec-WebSocket-Accept value for key (its
 * key_len bytes as sent): base64(SHA-1(key + GUID)), 28 characters and a
 * NUL into out. */
void ss__ws_accept_key(const char *key, size_t key_len, char out[29]);
/* SHA-1 of data (20 bytes into digest). */
void ss__ws_sha1(const void *data, size_t len, uint8_t digest[20]);

/* websocket_utf8.c: feed n bytes to the check; returns the new state,
 * WS_UTF8_REJECT as soon as the bytes cannot begin valid UTF-8 (so a bad
 * message fails fast, before its end arrives). */
uint32_t ss__ws_utf8_feed(uint32_t state, const uint8_t *s, size_t n);
/* Whether s[0..n) is whole valid UTF-8. */
bool ss__ws_utf8_valid(const void *s, size_t n);

/* websocket_frame.c */
/* Read more of the connection into buf (at most n bytes): pre-read bytes
 * first. wait: wait for them, sending keep-alive pings and applying the
 * idle timeout meanwhile; else -EAGAIN when none is there. Returns the
 * count (> 0), SS_WS_CLOSED (end of stream, error), -ECANCELED, or
 * -ETIMEDOUT (idle timeout or linger deadline; idle: closed 1001). */
int ss__ws_in(ss_ws *ws, void *buf, size_t n, bool wait);
/* Advance the reader to the start of a data frame: read headers, take
 * and answer control frames, refuse bad frames (closing with the right
 * code). Returns 1 when ws->in_frame (a data frame's header is read),
 * -EAGAIN (not wait, incomplete), or the errors of ss__ws_in(); a
 * protocol error and the peer's close give SS_WS_CLOSED, a message over
 * max_message_size -EMSGSIZE (closed 1009). */
int ss__ws_next_frame(ss_ws *ws, bool wait);
/* Unmask n bytes of payload in place, continuing ws->mask_pos. */
void ss__ws_unmask(ss_ws *ws, uint8_t *p, size_t n);
/* Send one frame (server frames are unmasked). Returns 0, SS_WS_CLOSED
 * when the connection is gone or a send failed (the peer is dropped), or
 * -ECANCELED. */
int ss__ws_send_frame(ss_ws *ws, int opcode, bool fin, const void *payload,
                      size_t n);
/* Send a close frame (code 0: none) unless one went out; mark the close
 * sent. Returns 0 or the errors of ss__ws_send_frame(). */
int ss__ws_send_close(ss_ws *ws, int code, const char *reason, size_t len);
/* Close for the peer's fault (code 1002, 1007, 1009, or 1001 for idle):
 * the close frame goes out, the input is abandoned. Returns SS_WS_CLOSED. */
int ss__ws_fail(ss_ws *ws, int code, const char *reason);
/* Whether code may be sent or received in a close frame. */
bool ss__ws_close_code_valid(int code);

#endif /* SOCKSERV_WEBSOCKET_INTERNAL_H */
