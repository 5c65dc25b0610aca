/*
 * tcp_room.c — the chat room's TCP door: a request per member, for as
 * long as the member stays, under ss_threading (a thread each) or
 * ss_coroutines (a coroutine each). The handler source is the same for
 * both. The room itself — members, names, outboxes, flood control — is
 * room.c, shared with the WebSocket door (web_room.c).
 *
 * The problem. A member's handler waits for its client's next line, yet
 * the lines of every other member must reach that client too. Another
 * member's handler may not write to this member's socket: request
 * functions belong to the handler running the request (and under
 * ss_coroutines each scheduler thread owns its sockets). So each member
 * has an outbox (room.c) and its handler waits for its client's input or
 * its outbox's eventfd, whichever comes first, with
 * ss_wait_input_or_fd(). Only a member's own handler writes to its socket.
 *
 * Slow readers. A member whose outbox overflowed is dropped by the room;
 * its handler, woken through the eventfd, sends what it still has, then
 * "ERR too slow", and closes. Its writes time out after
 * MEMBER_WRITE_TIMEOUT seconds, so a client that stopped reading
 * altogether is disconnected then.
 *
 * Flood control. Past its allowance (room.c) a member's handler stops
 * reading its client for a while — it still sends its outbox — and TCP
 * flow control slows the flooding client down, nobody else.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chat.h"

/* Seconds a new connection has to send each line before it has joined. */
#define JOIN_TIMEOUT 30.0
/* Seconds one write to a member may wait for its client to read. */
#define MEMBER_WRITE_TIMEOUT 10.0

/* The request's state (the handler's state_size): the member, and input
 * received but not yet split into lines. */
typedef struct session {
    chat_member m;
    char input[CHAT_LINE_MAX];
    size_t input_len;
} session;

/* ---- one member's handler ---------------------------------------------- */

/* Replies go into the handler's write buffer (wbufsize) and leave with the
 * next ss_flush(). Errors show up there too. */
static void reply(ss_request *req, const char *text)
{
    ss_write_all(req, text, strlen(text));
}

/* A peer whose host vanished (no FIN, no RST) is found by TCP keep-alive:
 * probes after 60 s of silence, every 10 s, given up after 3 — then the
 * pending read fails and the member is dropped as "gone". */
static void keep_alive(int fd)
{
    int on = 1, idle = 60, interval = 10, probes = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
}

/* Read lines until a JOIN with a free name. Returns true once joined,
 * false when the client leaves (or times out, or the server stops) first. */
static bool join(ss_request *req, chat_room *room, session *s)
{
    char line[CHAT_LINE_MAX + 1], answer[CHAT_OUT_MAX], peer[128];
    ss_request_client_address_string(req, peer, sizeof peer);
    for (;;) {
        if (ss_flush(req) < 0)
            return false;
        int n = ss_readline(req, line, sizeof line);
        if (n == -EMSGSIZE) {
            reply(req, "ERR line too long\n");
            ss_flush(req);
            return false;
        }
        if (n <= 0)
            return false;
        chat_chomp(line, (size_t)n);
        chat_outcome outcome = chat_room_join_command(room, &s->m, line, answer,
                                                      sizeof answer, peer);
        /* OK goes before anything from the outbox: the loop sends those
         * after. */
        reply(req, answer);
        if (outcome == CHAT_LEAVE)
            ss_flush(req);
        if (outcome != CHAT_GO_ON)
            return outcome == CHAT_JOINED;
    }
}

/* Send what other members queued for this one. Returns 0 or the write's
 * error; *dropped tells whether the room dropped this member. */
static int deliver(ss_request *req, chat_room *room, session *s, bool *dropped)
{
    chat_line *lines = chat_room_take(room, &s->m, dropped);
    /* No lock from here on: these writes may wait for the client. */
    int rc = 0;
    for (chat_line *q = lines; q && rc == 0; q = q->next) {
        int w = ss_write_all(req, q->text, q->len);
        if (w < 0)
            rc = w;
    }
    chat_lines_free(lines);
    if (rc == 0)
        rc = ss_flush(req);
    return rc;
}

/* Act on the complete lines received so far, as many as flood control
 * allows; the rest wait in s->input. Returns why the member leaves, or
 * NULL to go on. */
static const char *process_lines(ss_request *req, chat_room *room, session *s)
{
    char *start = s->input, *end = s->input + s->input_len, *newline;
    const char *why = NULL;
    while (!why && (newline = memchr(start, '\n', (size_t)(end - start))) &&
           chat_flood_allows(room, &s->m)) {
        *newline = '\0';
        chat_chomp(start, (size_t)(newline - start));
        char answer[CHAT_OUT_MAX];
        why = chat_room_command(room, &s->m, start, answer, sizeof answer);
        reply(req, answer);
        if (why)
            ss_flush(req);
        start = newline + 1;
    }
    s->input_len = (size_t)(end - start);
    memmove(s->input, start, s->input_len);
    if (!why && s->input_len == sizeof s->input &&
        !memchr(s->input, '\n', s->input_len)) {
        reply(req, "ERR line too long\n");
        ss_flush(req);
        return "error";
    }
    return why;
}

/* The client has input: read what is there, without waiting for a whole
 * line. Returns why the member leaves, or NULL. */
static const char *take_input(ss_request *req, session *s)
{
    ssize_t n =
        ss_read(req, s->input + s->input_len, sizeof s->input - s->input_len);
    if (n == -ECANCELED)
        return "shutdown";
    if (n <= 0)
        return "gone"; /* closed without QUIT, reset, or keep-alive gave up */
    s->input_len += (size_t)n;
    return NULL;
}

/* A member's life after joining. Returns why it leaves: quit, gone,
 * slow, error or shutdown. */
static const char *converse(ss_request *req, chat_room *room, session *s)
{
    ss_request_set_timeout(req, MEMBER_WRITE_TIMEOUT);
    for (;;) {
        const char *why = process_lines(req, room, s);
        if (why)
            return why;
        bool dropped;
        int rc = deliver(req, room, s, &dropped); /* and our replies */
        if (dropped) {
            reply(req, "ERR too slow\n");
            ss_flush(req);
            return "slow";
        }
        if (rc == -ECANCELED)
            return "shutdown";
        if (rc == -ETIMEDOUT)
            return "slow";
        if (rc < 0)
            return "gone";
        if (memchr(s->input, '\n', s->input_len)) {
            /* Lines left: flood control held them back. Until the
             * allowance has grown back, only the outbox; the client's
             * input waits (TCP holds it back). (A hold of 0 would mean no
             * limit to ss_wait_fd: the allowance is back already.) */
            double hold = chat_flood_wait(room, &s->m);
            rc = hold > 0 ? ss_wait_fd(req, s->m.wake_fd, POLLIN, hold) : 0;
            if (rc == -ECANCELED)
                return "shutdown";
            continue;
        }
        /* The heart of it: whichever comes first, the client's input or
         * lines from the others. No time limit: a member may be quiet. */
        rc = ss_wait_input_or_fd(req, s->m.wake_fd, POLLIN, 0);
        if (rc == -ECANCELED)
            return "shutdown";
        if (rc < 0)
            return "error";
        if (rc & SS_READY_INPUT) {
            why = take_input(req, s);
            if (why)
                return why;
            /* Under coroutines, let the members this input is for (on
             * this scheduler) send what they have before we go on: with
             * input already buffered the wait above would not park. With
             * threads it returns at once. */
            ss_yield(req);
        }
        /* SS_READY_FD: the next deliver() sends the lines. */
    }
}

static int chat_handle(ss_request *req)
{
    chat_room *room = ss_request_user(req);
    session *s = ss_request_state(req);
    keep_alive(ss_request_fileno(req));
    int rc = chat_member_init(&s->m);
    if (rc < 0) {
        reply(req, "ERR server busy\n");
    } else if (join(req, room, s)) {
        const char *why = converse(req, room, s);
        chat_room_leave(room, &s->m, why);
        if (strcmp(why, "shutdown") == 0)
            reply(req, "BYE shutdown\n"); /* sent by the library after
                                             handle, within the grace */
    }
    chat_member_destroy(&s->m);
    return rc;
}

const ss_handler_class chat_tcp_handler = {
    .base = &ss_stream_handler,
    .state_size = sizeof(session),
    .handle = chat_handle,
    .timeout = JOIN_TIMEOUT,
    .wbufsize = 4096,
    .disable_nagle_algorithm = true, /* a chat line should leave at once */
};
