/**
 * @file
 * sockserv/websocket.h — WebSocket (RFC 6455) connections from a route of
 * the HTTP handler, with blocking-style message I/O that runs unchanged
 * under every strategy: a thread, a pool worker, a process, or one of
 * 10,000 coroutines (which park while they wait).
 *
 * Using it, from a method callback of ss_http_handler:
 *
 *     static int do_GET(ss_http *h)
 *     {
 *         ss_ws *ws;
 *         if (ss_ws_accept(h, NULL, &ws) < 0)
 *             return 0;                  // answered (400, 426, 403)
 *         char buf[65536];
 *         ss_ws_type type;
 *         int n;
 *         while ((n = ss_ws_receive(ws, buf, sizeof buf, &type)) >= 0)
 *             if (ss_ws_send(ws, type, buf, (size_t)n) < 0)
 *                 break;
 *         ss_ws_free(ws);                // close 1000 if still open
 *         return 0;
 *     }
 *
 * What the library does for you: the handshake (Sec-WebSocket-Key →
 * Accept, version 13, the Origin hook, subprotocol choice), reassembling
 * fragmented messages, answering pings, keep-alive pings every
 * ping_interval, the idle timeout, dropping a peer too slow to read
 * (send_timeout), the close handshake, and everything RFC 6455 asks of a
 * server against a bad peer: unmasked frames, reserved bits, unknown
 * opcodes, bad control frames (close 1002), invalid UTF-8 in text, checked
 * incrementally across fragments (1007), messages over the limit, checked
 * from the frame header before anything is allocated (1009).
 *
 * Not supported: extensions (permessage-deflate and others are never
 * negotiated, so a frame with a reserved bit set is a protocol error).
 *
 * Thread-safety: an ss_ws belongs to the connection's own context (its
 * thread or coroutine); all calls on it come from there. Another thread
 * reaches a WebSocket by queueing messages and waking it through a
 * descriptor it waits on with ss_ws_wait().
 */
#ifndef SOCKSERV_WEBSOCKET_H
#define SOCKSERV_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>

#include "sockserv/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A WebSocket connection, made by ss_ws_accept(), freed by ss_ws_free(). */
typedef struct ss_ws ss_ws;

/** Returned when the connection is over: the close handshake is done
 * (either side started it), the library closed it for a protocol error of
 * the peer (ss_ws_close_code() says which), or the connection is gone
 * (reset, end of stream, a send that could not complete). */
#define SS_WS_CLOSED (-4092)

/** A message's type. */
typedef enum ss_ws_type {
    SS_WS_TEXT = 1,  /**< UTF-8 text (validated on receive) */
    SS_WS_BINARY = 2 /**< bytes */
} ss_ws_type;

/* Close codes (RFC 6455 §7.4.1). */
#define SS_WS_NORMAL 1000         /**< normal closure */
#define SS_WS_GOING_AWAY 1001     /**< server going down, idle timeout */
#define SS_WS_PROTOCOL_ERROR 1002 /**< the peer broke the protocol */
#define SS_WS_INVALID_DATA 1007   /**< text that is not UTF-8 */
#define SS_WS_POLICY 1008         /**< policy violation */
#define SS_WS_TOO_BIG 1009        /**< message over the limit */
/** Reported by ss_ws_close_code() when the peer's close frame carried no
 * code (never sent on the wire). */
#define SS_WS_NO_STATUS 1005

/** Tunables of ss_ws_accept(). Zero fields take the defaults given. */
typedef struct ss_ws_config {
    /** Largest message received, in bytes. 0: 1 MiB. A larger message —
     * or a frame header announcing one — closes the connection with 1009
     * before anything is allocated or read. */
    size_t max_message_size;
    /** Seconds between the keep-alive pings the library sends while the
     * connection is quiet and the application waits or receives. 0: 30;
     * < 0: never. */
    double ping_interval;
    /** Seconds without a byte from the peer (a pong counts) after which
     * the connection is closed with 1001 and the waiting call returns
     * -ETIMEDOUT. 0: 60; < 0: never. */
    double idle_timeout;
    /** Seconds a send may stay blocked (a peer that stopped reading) before
     * the connection is dropped and the call returns SS_WS_CLOSED. 0: 10. */
    double send_timeout;
    /** The server's subprotocols, NULL-terminated, in order of preference:
     * the first one the client also offers is chosen. NULL: none. */
    const char *const *subprotocols;
    /** Origin check: return false to refuse the upgrade with 403. origin is
     * the Origin header, or NULL when the request has none. NULL: every
     * origin is accepted. */
    bool (*check_origin)(ss_http *h, const char *origin, void *user);
    /** Passed to check_origin. */
    void *user;
} ss_ws_config;

/** Whether the request is a WebSocket upgrade request: GET, an Upgrade
 * header with the token "websocket", and a Connection header with the
 * token "upgrade" (both case-insensitive). A route serving both pages and
 * WebSockets tells them apart with it. */
SS_API bool ss_ws_is_upgrade(ss_http *h);

/** Accept a WebSocket upgrade, from a method callback. Validates the
 * request; on failure answers it itself — 400 for a request that is not an
 * upgrade or has a missing or malformed Sec-WebSocket-Key, 426 with
 * "Sec-WebSocket-Version: 13" for another version, 403 when check_origin
 * refuses — and returns -EPROTO (400, 426) or -EACCES (403): the callback
 * then returns 0, the answer having been sent. Returns -ENOMEM, or the
 * error of a failed send, otherwise. On success it sends "101 Switching
 * Protocols" and *out is the connection: the HTTP connection belongs to the
 * WebSocket from now on and is closed after the callback (never reused for
 * HTTP). cfg may be NULL (the defaults); it is copied. The caller must call
 * ss_ws_free() before its callback returns. */
SS_API int ss_ws_accept(ss_http *h, const ss_ws_config *cfg, ss_ws **out);

/** The chosen subprotocol (one of ss_ws_config.subprotocols), or NULL. */
SS_API const char *ss_ws_subprotocol(const ss_ws *ws);
/** The exchange the WebSocket came from: its headers, path and captures
 * stay readable until the callback returns. */
SS_API ss_http *ss_ws_http(ss_ws *ws);

/** Receive one whole message into buf (size bytes): reassembled from its
 * fragments, pings answered and pongs noted on the way, keep-alive pings
 * sent. Returns its length (0 is a valid empty message) and its type in
 * *type (may be NULL). A message longer than size or than
 * max_message_size closes the connection with 1009 and returns -EMSGSIZE.
 * Returns SS_WS_CLOSED when the connection is over (the peer's close frame
 * is answered by the library; a peer's protocol violation is closed with
 * the right code, which ss_ws_close_code() tells); -ECANCELED when the
 * server is shutting down (nothing is sent: the caller may send a last
 * message, then ss_ws_close() with 1001); -ETIMEDOUT after idle_timeout
 * (the library has closed with 1001). */
SS_API int ss_ws_receive(ss_ws *ws, void *buf, size_t size, ss_ws_type *type);

/** Streaming receive: up to size bytes of the current message, its type
 * in *type; *final is set when they end the message (an empty message, or
 * an empty last fragment, returns 0 with *final true). Only
 * max_message_size limits the whole message. Returns the count (> 0,
 * or 0 with *final) or the errors of ss_ws_receive(). */
SS_API int ss_ws_receive_part(ss_ws *ws, void *buf, size_t size,
                              ss_ws_type *type, bool *final);

/** Send one message of n bytes (at most SS_IO_MAX) in one frame. Text is
 * sent as given (the library does not check the UTF-8 you send). Returns
 * n, SS_WS_CLOSED when the connection is over or the send blocked for
 * send_timeout (the peer is dropped), -EINVAL, -EBUSY while a fragmented
 * send (ss_ws_send_part) is unfinished, or -ECANCELED when the server shut
 * down before the bytes could go. */
SS_API int ss_ws_send(ss_ws *ws, ss_ws_type type, const void *buf, size_t n);
/** ss_ws_send() of strlen(s) bytes as SS_WS_TEXT. */
SS_API int ss_ws_send_text(ss_ws *ws, const char *s);
/** Fragmented send: the first call starts a message of type type (later
 * calls' type is ignored), each call sends one fragment of n bytes (0 is
 * allowed), and final = true ends the message. Pings and pongs may go
 * out between the fragments. Returns n or the errors of ss_ws_send(). */
SS_API int ss_ws_send_part(ss_ws *ws, ss_ws_type type, const void *buf,
                           size_t n, bool final);
/** Send a ping with n <= 125 bytes of payload (-EINVAL beyond). The pong
 * is taken by the receiving calls. Returns 0 or the errors of
 * ss_ws_send(). */
SS_API int ss_ws_ping(ss_ws *ws, const void *payload, size_t n);

/** Start (or finish) the close handshake: send a close frame with code
 * (1000–1003, 1007–1014 or 3000–4999; 0 sends none) and reason (NULL or
 * at most 123 bytes of UTF-8), then wait briefly (about a second) for the
 * peer's close frame, discarding data that arrives meanwhile. Idempotent:
 * once a close was sent, returns 0 at once. Returns 0, -EINVAL for a bad
 * code or reason, or SS_WS_CLOSED when the connection was already gone. */
SS_API int ss_ws_close(ss_ws *ws, int code, const char *reason);
/** The close code: the peer's when it closed first (SS_WS_NO_STATUS when
 * its close frame had none), else ours; 0 while the connection is open,
 * and when it was lost without a close frame. */
SS_API int ss_ws_close_code(const ss_ws *ws);
/** The reason that came with ss_ws_close_code(), "" when none. */
SS_API const char *ss_ws_close_reason(const ss_ws *ws);

/** Like ss_wait_input_or_fd(): wait until a message (or a close) can be
 * received (SS_READY_INPUT), or until fd has events (SS_READY_FD: an
 * eventfd saying "your outbox has messages"), at most timeout seconds
 * (0: no limit) → -ETIMEDOUT. fd may be -1 to wait for the peer only.
 * Meanwhile pings and pongs are answered and taken, keep-alive pings are
 * sent and the idle timeout applies. Returns SS_READY_INPUT and/or
 * SS_READY_FD, or SS_WS_CLOSED, -ECANCELED and the errors of
 * ss_ws_receive(). Works under every strategy (a coroutine parks). */
SS_API int ss_ws_wait(ss_ws *ws, int fd, short events, double timeout);

/** Free the connection: if it is still open, close it with 1000 first
 * (ss_ws_close()). NULL is allowed. */
SS_API void ss_ws_free(ss_ws *ws);

#ifdef __cplusplus
}
#endif

#endif /* SOCKSERV_WEBSOCKET_H */
