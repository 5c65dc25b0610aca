/*
 * chat.h — what the chat room's files share: the protocol's limits and
 * helpers (protocol.c), the room (room.c) with its two doors (tcp_room.c,
 * web_room.c), the UDP room (udp_room.c) and the server's event log.
 *
 * The protocol is lines of text, one command each; docs/chatroom.md is its
 * reference. Client to server: JOIN name, MSG text, NAMES, PING, QUIT.
 * Server to client: OK, ERR, JOINED, LEFT, MSG, NAMES, ADMIN, BYE.
 */
#ifndef CHATROOM_CHAT_H
#define CHATROOM_CHAT_H

#include <sockserv/sockserv.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest name, in bytes. */
#define CHAT_NAME_MAX 32
/* Longest line a client may send, '\n' included (a UDP datagram: the
 * whole datagram). */
#define CHAT_LINE_MAX 1024
/* Room for any line the server sends: "MSG " name ' ' text '\n'. */
#define CHAT_OUT_MAX (CHAT_LINE_MAX + CHAT_NAME_MAX + 16)

/* ---- protocol.c ---------------------------------------------------------- */

/* A name is 1 to CHAT_NAME_MAX bytes without spaces or control characters
 * (UTF-8 is fine). */
bool chat_valid_name(const char *name);

/* Remove a trailing "\n" or "\r\n" in place; returns the new length. */
size_t chat_chomp(char *line, size_t len);

/* Replace control characters (and DEL) with '?', so that no client can
 * send escape sequences to the others' terminals. */
void chat_sanitize(char *text);

/* Split "WORD rest": returns the word's length and points *rest at what
 * follows the first space ("" when there is none). */
size_t chat_command(const char *line, const char **rest);

/* True when the word at the start of line (length len) is command. */
bool chat_is(const char *line, size_t len, const char *command);

/* One line on the server's stdout, whole even when threads print at the
 * same time: "sockserv-chat: alice joined (127.0.0.1:40000)". */
void chat_log(const char *fmt, ...) SS_PRINTF(1, 2);

/* ---- room.c: the room both doors lead into ------------------------------ */

typedef struct chat_room chat_room;

/* One line in an outbox, '\n' included. */
typedef struct chat_line {
    struct chat_line *next;
    size_t len;
    char text[];
} chat_line;

/* A member, in its request's state; its door runs it. */
typedef struct chat_member {
    struct chat_member *next; /* the room's list */
    char name[CHAT_NAME_MAX + 1];
    int wake_fd; /* eventfd: the outbox got lines, or the member was dropped */
    /* Under the room's lock: */
    chat_line *head, **tail; /* the outbox, oldest first */
    size_t bytes;            /* what it holds, bookkeeping included */
    bool overflowed;         /* a line did not fit: drop the member */
    bool dropped;            /* taken off the list as too slow */
    /* Flood control, the member's own request only: */
    double allowance;   /* lines it may send now */
    int64_t checked_at; /* ss_now_ns() when allowance was last topped up */
} chat_member;

/* outbox: bytes a member may have waiting (beyond its connection's
 * buffers) before it is dropped as too slow; at least CHAT_OUTBOX_MIN. */
#define CHAT_OUTBOX_MIN 4096
/* flood_limit: lines per second a member may send (as a burst, too);
 * beyond, its input is read more slowly. 0 = no limit. */
int chat_room_new(chat_room **out, size_t outbox, double flood_limit);
void chat_room_free(chat_room *room);
/* "ADMIN text" to every member (any thread). */
void chat_room_admin(chat_room *room, const char *text);

/* A member's outbox and eventfd: 0 or -errno. Destroy frees what the
 * outbox still holds; call it once the member left (or never joined). */
int chat_member_init(chat_member *m);
void chat_member_destroy(chat_member *m);

typedef enum chat_outcome { CHAT_GO_ON, CHAT_JOINED, CHAT_LEAVE } chat_outcome;
/* A line (without '\n') before joining: JOIN or QUIT. reply gets the
 * answer to send ('\n'-terminated; "" for none): "OK name" with
 * CHAT_JOINED, "BYE" with CHAT_LEAVE, an ERR with CHAT_GO_ON. peer is
 * for the log. */
chat_outcome chat_room_join_command(chat_room *room, chat_member *m, char *line,
                                    char *reply, size_t size, const char *peer);
/* A joined member's line: MSG, NAMES, PING, QUIT. Returns why the member
 * leaves ("quit"), or NULL; reply as above. */
const char *chat_room_command(chat_room *room, chat_member *m, char *line,
                              char *reply, size_t size);
/* Take the lines waiting in m's outbox (free them with chat_lines_free);
 * *dropped: the room dropped m as too slow. */
chat_line *chat_room_take(chat_room *room, chat_member *m, bool *dropped);
void chat_lines_free(chat_line *lines);
/* Off the list, "LEFT name why" to the others (not for "shutdown"). */
void chat_room_leave(chat_room *room, chat_member *m, const char *why);
/* Flood control: true when m may send a line now (and counts it). */
bool chat_flood_allows(const chat_room *room, chat_member *m);
/* Seconds until m may send its next line; 0 when it may now. */
double chat_flood_wait(const chat_room *room, chat_member *m);

/* ---- tcp_room.c: the TCP door, a request per member -------------------- */

/* The handler: config.user must be the chat_room. */
extern const ss_handler_class chat_tcp_handler;

/* ---- web_room.c: the WebSocket door, an HTTP handler ------------------- */

/* The web server's context (its config.user). */
typedef struct chat_web {
    chat_room *room;
    const char *const *origins; /* --web-origin: also allowed */
    size_t n_origins;
} chat_web;

/* Fill *out with the door's handler class: the page at /, a member per
 * WebSocket at /ws. */
void chat_web_handler(ss_handler_class *out);

/* ---- udp_room.c: members by address, one request per datagram ----------- */

typedef struct udp_room udp_room;

/* silence: seconds without a datagram after which a member is dropped. */
int udp_room_new(udp_room **out, double silence);
void udp_room_free(udp_room *room);
/* The server whose socket the room sends on; set before serving. */
void udp_room_attach(udp_room *room, ss_server *srv);
/* "ADMIN text" to every member (any thread). */
void udp_room_admin(udp_room *room, const char *text);
/* Drop the members silent for too long (the server's service_actions). */
void udp_room_sweep(udp_room *room);
/* "BYE shutdown" to every member and forget them (after serving). */
void udp_room_close(udp_room *room);
/* The handler: config.user must be the udp_room. */
extern const ss_handler_class chat_udp_handler;

#endif /* CHATROOM_CHAT_H */
