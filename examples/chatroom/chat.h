/*
 * chat.h — what the chat room's files share: the protocol's limits and
 * helpers (protocol.c), the two rooms (tcp_room.c, udp_room.c) and the
 * server's event log.
 *
 * The protocol is lines of text, one command each; docs/chatroom.md is its
 * reference. Client to server: JOIN name, MSG text, PING, QUIT. Server to
 * client: OK, ERR, JOINED, LEFT, MSG, ADMIN, BYE.
 */
#ifndef CHATROOM_CHAT_H
#define CHATROOM_CHAT_H

#include <sockserv/sockserv.h>

#include <stdbool.h>
#include <stddef.h>

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

/* ---- tcp_room.c: members with outboxes, one request each --------------- */

typedef struct tcp_room tcp_room;

/* outbox: bytes a member may have waiting (beyond its socket's buffers)
 * before it is dropped as too slow; at least CHAT_OUTBOX_MIN. */
#define CHAT_OUTBOX_MIN 4096
/* flood_limit: lines per second a member may send (as a burst, too);
 * beyond, its input is read more slowly. 0 = no limit. */
int tcp_room_new(tcp_room **out, size_t outbox, double flood_limit);
void tcp_room_free(tcp_room *room);
/* "ADMIN text" to every member (any thread). */
void tcp_room_admin(tcp_room *room, const char *text);
/* The handler: config.user must be the tcp_room. */
extern const ss_handler_class chat_tcp_handler;

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
