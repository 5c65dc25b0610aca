/*
 * web_room.c — the chat room's WebSocket door: an HTTP handler that
 * serves the page (web_page.html, built into the binary) at / and turns
 * /ws into a member of the same room as the TCP door's (room.c).
 *
 * A browser member speaks the TCP protocol, one line per WebSocket text
 * message, without the '\n': "JOIN alice", "MSG hi", "NAMES", "QUIT" in;
 * "OK alice", "MSG bob hi", "JOINED bob"… out. So the room needs nothing
 * new, and everyone — terminal or browser — gets the same lines in the
 * same order.
 *
 * A member is a request, as at the TCP door: the HTTP handler's callback
 * accepts the upgrade (ss_ws_accept) and keeps the connection until the
 * member leaves, under ss_threading or ss_coroutines. Its loop is the TCP
 * door's: ss_ws_wait() waits for the browser's next message or the
 * member's outbox eventfd, whichever comes first, and only this request
 * writes to its WebSocket. The library answers pings, pings an idle
 * browser every 30 s and drops one that stopped answering (60 s), and
 * gives up a send that waited 10 s for a browser that stopped reading.
 *
 * Text frames must be UTF-8, and a browser closes the connection on one
 * that is not; TCP members may send any byte. So each line leaves through
 * utf8_scrub(), which turns a byte that is not part of valid UTF-8 into
 * '?' — the TCP door's chat_sanitize() does the same for control bytes.
 *
 * Origin. Any web page a user visits could open a WebSocket to this
 * server from the user's browser; the browser says which page in Origin.
 * A member is accepted only from the page this server serves (Origin's
 * host and port equal to the Host the browser asked), from an origin
 * given with --web-origin, or without Origin at all (not a browser);
 * anything else gets 403.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sockserv/http.h>
#include <sockserv/websocket.h>

#include "chat.h"

/* Seconds a new WebSocket has for each message before it has joined. */
#define JOIN_TIMEOUT 30.0
/* Seconds one send to a browser may wait for it to read. */
#define MEMBER_SEND_TIMEOUT 10.0

/* cmake/embed-file.cmake made these from web_page.html. */
extern const unsigned char chat_web_page[];
extern const size_t chat_web_page_size;

/* The connection's state (the handler's state_size): the member, and a
 * message received but held back by flood control. */
typedef struct web_session {
    chat_member m;
    char pending[CHAT_LINE_MAX + 1];
    bool has_pending;
} web_session;

/* ---- sending ------------------------------------------------------------- */

/* Replace in place each byte that is not part of well-formed UTF-8 (RFC
 * 3629: no overlongs, no surrogates, at most U+10FFFF) with '?'. */
static void utf8_scrub(char *text, size_t len)
{
    unsigned char *s = (unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need = c < 0x80                 ? 0
                      : c >= 0xc2 && c <= 0xdf ? 1
                      : c >= 0xe0 && c <= 0xef ? 2
                      : c >= 0xf0 && c <= 0xf4 ? 3
                                               : 4; /* 4: invalid lead */
        bool ok = need < 4 && i + need < len;       /* all of it in the text */
        if (ok && need > 0) {
            unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
            else if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
            ok = s[i + 1] >= lo && s[i + 1] <= hi;
            for (size_t k = 2; ok && k <= need; k++)
                ok = s[i + k] >= 0x80 && s[i + k] <= 0xbf;
        }
        if (!ok) {
            s[i++] = '?';
            continue;
        }
        i += need + 1;
    }
}

/* One protocol line as one text message, its '\n' left out. Returns 0 or
 * ss_ws_send()'s error. */
static int send_line(ss_ws *ws, char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len == 0)
        return 0;
    utf8_scrub(line, len);
    int rc = ss_ws_send(ws, SS_WS_TEXT, line, len);
    return rc < 0 ? rc : 0;
}

static int send_text(ss_ws *ws, const char *text)
{
    char line[CHAT_OUT_MAX];
    snprintf(line, sizeof line, "%s", text);
    return send_line(ws, line, strlen(line));
}

/* Send what other members queued for this one. Returns 0 or the send's
 * error; *dropped tells whether the room dropped this member. */
static int deliver(ss_ws *ws, chat_room *room, web_session *s, bool *dropped)
{
    chat_line *lines = chat_room_take(room, &s->m, dropped);
    int rc = 0;
    for (chat_line *q = lines; q && rc == 0; q = q->next)
        rc = send_line(ws, q->text, q->len);
    chat_lines_free(lines);
    return rc;
}

/* ---- receiving ------------------------------------------------------------
 */

/* Why a member leaves, from what the wait or the receive returned. */
static const char *why_from(ss_ws *ws, int rc)
{
    if (rc == -ECANCELED)
        return "shutdown";
    if (rc == SS_WS_CLOSED) {
        switch (ss_ws_close_code(ws)) {
        case SS_WS_NORMAL:
        case SS_WS_GOING_AWAY: /* the browser closed its tab, or reloaded */
            return "quit";
        case SS_WS_PROTOCOL_ERROR:
        case SS_WS_INVALID_DATA:
        case SS_WS_TOO_BIG:
            return "error";
        default:
            return "gone";
        }
    }
    if (rc == -EMSGSIZE)
        return "error"; /* longer than a line: closed 1009 */
    return "gone";      /* -ETIMEDOUT: stopped answering pings; or lost */
}

/* Wait (at most timeout seconds; 0: no limit) for the browser's next
 * message or the member's outbox, and receive the message into line.
 * Returns SS_READY_FD, SS_READY_INPUT (line holds a text message,
 * chomped), 0 for a message to ignore, or a negative error. */
static int next_message(ss_ws *ws, web_session *s, char *line, double timeout)
{
    int rc = ss_ws_wait(ws, s->m.wake_fd, POLLIN, timeout);
    if (rc < 0 || !(rc & SS_READY_INPUT))
        return rc;
    ss_ws_type type;
    int n = ss_ws_receive(ws, line, CHAT_LINE_MAX, &type);
    if (n < 0)
        return n;
    if (type != SS_WS_TEXT) {
        send_text(ws, "ERR text messages only");
        return 0;
    }
    line[n] = '\0';
    chat_chomp(line, (size_t)n);
    return SS_READY_INPUT;
}

/* Messages until a JOIN with a free name. Returns NULL once joined, or
 * why the connection ends first. */
static const char *join(ss_ws *ws, chat_room *room, web_session *s,
                        const char *peer)
{
    char line[CHAT_LINE_MAX + 1], answer[CHAT_OUT_MAX];
    for (;;) {
        int rc = next_message(ws, s, line, JOIN_TIMEOUT);
        if (rc == -ETIMEDOUT) {
            ss_ws_close(ws, SS_WS_POLICY, "join first");
            return "timeout";
        }
        if (rc < 0)
            return why_from(ws, rc);
        if (rc != SS_READY_INPUT)
            continue;
        chat_outcome outcome = chat_room_join_command(room, &s->m, line, answer,
                                                      sizeof answer, peer);
        rc = send_line(ws, answer, strlen(answer));
        if (outcome == CHAT_JOINED)
            return NULL; /* even if the OK failed: the loop will see */
        if (outcome == CHAT_LEAVE) {
            ss_ws_close(ws, SS_WS_NORMAL, "bye");
            return "quit";
        }
        if (rc < 0)
            return "gone";
    }
}

/* The held-back message, if flood control lets it through now. Returns
 * why the member leaves, or NULL. */
static const char *process_pending(ss_ws *ws, chat_room *room, web_session *s)
{
    if (!s->has_pending || !chat_flood_allows(room, &s->m))
        return NULL;
    s->has_pending = false;
    char answer[CHAT_OUT_MAX];
    const char *why =
        chat_room_command(room, &s->m, s->pending, answer, sizeof answer);
    send_line(ws, answer, strlen(answer));
    if (why)
        ss_ws_close(ws, SS_WS_NORMAL, "bye");
    return why;
}

/* A member's life after joining. Returns why it leaves: quit, gone,
 * slow, error or shutdown. */
static const char *converse(ss_http *h, ss_ws *ws, chat_room *room,
                            web_session *s)
{
    ss_request *req = ss_http_request_of(h); /* the WebSocket's by now */
    for (;;) {
        const char *why = process_pending(ws, room, s);
        if (why)
            return why;
        bool dropped;
        int rc = deliver(ws, room, s, &dropped);
        if (dropped) {
            send_text(ws, "ERR too slow");
            ss_ws_close(ws, SS_WS_POLICY, "too slow");
            return "slow";
        }
        if (rc < 0)
            return rc == -ECANCELED ? "shutdown" : "gone";
        if (s->has_pending) {
            /* Talking too fast: until the allowance has grown back, only
             * the outbox; the browser's messages wait (TCP holds them).
             * (A hold of 0 would mean no limit to ss_wait_fd: the
             * allowance is back already.) */
            double hold = chat_flood_wait(room, &s->m);
            rc = hold > 0 ? ss_wait_fd(req, s->m.wake_fd, POLLIN, hold) : 0;
            if (rc == -ECANCELED)
                return "shutdown";
            continue;
        }
        /* Whichever comes first, the browser's message or lines from the
         * others. No time limit: the library's pings keep it honest. */
        rc = next_message(ws, s, s->pending, 0);
        if (rc < 0)
            return why_from(ws, rc);
        if (rc == SS_READY_INPUT) {
            s->has_pending = true;
            /* Under coroutines, let the members this message is for send
             * it before we go on; with threads it returns at once. */
            ss_yield(req);
        }
    }
}

/* ---- the origin check ------------------------------------------------------
 */

/* "http://host:port" or "https://host:port" naming the Host asked for. */
static bool same_host(const char *origin, const char *host)
{
    const char *rest = NULL;
    if (strncasecmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncasecmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    return rest && host && strcasecmp(rest, host) == 0;
}

static bool origin_allowed(ss_http *h, const char *origin, void *user)
{
    const chat_web *web = user;
    if (origin == NULL)
        return true; /* not a browser: it could connect to the port anyway */
    for (size_t i = 0; i < web->n_origins; i++)
        if (strcasecmp(origin, web->origins[i]) == 0)
            return true;
    if (same_host(origin, ss_http_header_value(h, "Host")))
        return true;
    char peer[128];
    ss_http_client_address_string(h, peer, sizeof peer);
    chat_log("web: refused a WebSocket from %s: Origin %.200s is not this "
             "server (see --web-origin)",
             peer, origin);
    return false;
}

/* ---- the HTTP handler ------------------------------------------------------
 */

static int member(ss_http *h)
{
    chat_web *web = ss_http_server_user(h);
    web_session *s = ss_http_state(h);
    ss_ws_config cfg = {
        .max_message_size = CHAT_LINE_MAX,
        .send_timeout = MEMBER_SEND_TIMEOUT,
        .check_origin = origin_allowed,
        .user = web,
    };
    ss_ws *ws;
    if (ss_ws_accept(h, &cfg, &ws) < 0)
        return 0; /* answered already (400, 403 or 426) */
    char peer[160] = "web ";
    ss_http_client_address_string(h, peer + 4, sizeof peer - 4);
    if (chat_member_init(&s->m) < 0) {
        send_text(ws, "ERR server busy");
        ss_ws_close(ws, SS_WS_GOING_AWAY, "server busy");
    } else {
        s->has_pending = false;
        const char *why = join(ws, web->room, s, peer);
        if (!why) {
            why = converse(h, ws, web->room, s);
            chat_room_leave(web->room, &s->m, why);
        }
        if (strcmp(why, "shutdown") == 0) {
            send_text(ws, "BYE shutdown");
            ss_ws_close(ws, SS_WS_GOING_AWAY, "shutdown");
        }
    }
    chat_member_destroy(&s->m);
    ss_ws_free(ws);
    return 0;
}

static int page(ss_http *h)
{
    ss_http_send_response(h, 200, NULL);
    ss_http_send_header(h, "Content-Type", "text/html; charset=utf-8");
    ss_http_send_headerf(h, "Content-Length", "%zu", chat_web_page_size);
    ss_http_send_header(h, "Cache-Control", "no-cache");
    ss_http_send_header(h, "X-Content-Type-Options", "nosniff");
    /* Its own inline script and style, its own WebSocket, nothing else. */
    ss_http_send_header(h, "Content-Security-Policy",
                        "default-src 'none'; script-src 'unsafe-inline'; "
                        "style-src 'unsafe-inline'; connect-src 'self'; "
                        "base-uri 'none'; form-action 'none'");
    ss_http_end_headers(h);
    int n = ss_http_write(h, chat_web_page, chat_web_page_size);
    return n < 0 ? n : 0;
}

static int do_GET(ss_http *h)
{
    const char *path = ss_http_path(h);
    if (!path)
        return ss_http_send_error(h, 400, NULL);
    if (strcmp(path, "/ws") == 0) {
        if (ss_ws_is_upgrade(h))
            return member(h);
        return ss_http_send_error(
            h, 400, "This is the chat room's WebSocket: open / instead.");
    }
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
        return page(h);
    return ss_http_send_error(h, 404, NULL);
}

static void log_request(void *user, const char *line)
{
    (void)user;
    chat_log("web: %s", line);
}

static const ss_http_method methods[] = {
    {"GET", do_GET},
    {"HEAD", do_GET}, /* the library swallows the body */
    {NULL, NULL},
};

static const ss_http_config http = {
    .methods = methods,
    .log_request = log_request,
};

void chat_web_handler(ss_handler_class *out)
{
    *out = ss_http_handler;
    out->class_data = &http;
    out->state_size = sizeof(web_session);
}
