/*
 * udp_room.c — the chat room over UDP, as the lesson builds it: one
 * socket, a member table keyed by the client's address, and a datagram
 * handler that runs once per datagram (Python's DatagramRequestHandler).
 *
 * Each datagram is one command. The handler's reply — what it writes —
 * goes back to the sender after the handler returns, as the library does
 * for every datagram request (even an empty reply: that one is simply an
 * acknowledgement). What the others must hear — a chat line, a join, a
 * leave — is sent by sendto() on the server's own socket,
 * ss_server_fileno(): the address every client talks to, and the only
 * source a client's connected UDP socket accepts datagrams from. Those
 * sends use MSG_DONTWAIT and never wait: a full socket buffer drops that
 * datagram, which UDP may do anyway. That keeps them safe from any thread
 * (the admin thread, service_actions, a coroutine) and under any strategy.
 *
 * UDP has no connection to lose, so silence is the only sign of a client
 * gone: a member must send something (PING will do) at least every
 * silence seconds; the server's service_actions hook sweeps the table and
 * drops whoever was quiet longer, telling them "BYE timeout" and the
 * others "LEFT name timeout".
 *
 * The table is guarded by room->lock, held only to read or change it:
 * recipients are copied out and the datagrams sent after it is released.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "chat.h"

typedef struct udp_member {
    char name[CHAT_NAME_MAX + 1];
    struct sockaddr_storage address;
    socklen_t address_len;
    int64_t last_heard; /* ss_now_ns() of its latest datagram */
} udp_member;

struct udp_room {
    pthread_mutex_t lock;
    udp_member *members; /* an array: joins are rare, lookups short */
    size_t count, capacity;
    double silence;
    ss_server *srv;
};

/* Members copied out of the table, to send to without the lock. */
typedef struct recipients {
    udp_member *list;
    size_t count;
} recipients;

int udp_room_new(udp_room **out, double silence)
{
    udp_room *room = calloc(1, sizeof *room);
    if (!room)
        return -ENOMEM;
    pthread_mutex_init(&room->lock, NULL);
    room->silence = silence;
    *out = room;
    return 0;
}

void udp_room_free(udp_room *room)
{
    if (!room)
        return;
    pthread_mutex_destroy(&room->lock);
    free(room->members);
    free(room);
}

void udp_room_attach(udp_room *room, ss_server *srv)
{
    room->srv = srv;
}

/* ---- the table (under room->lock) ----------------------------------- */

/* Addresses are compared by what identifies a UDP peer: family, address
 * and port (and the IPv6 scope), not byte for byte. */
static bool same_address(const struct sockaddr_storage *a,
                         const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return false;
}

static udp_member *find_address(udp_room *room, const struct sockaddr *addr)
{
    for (size_t i = 0; i < room->count; i++)
        if (same_address(&room->members[i].address, addr))
            return &room->members[i];
    return NULL;
}

static bool name_taken(const udp_room *room, const char *name)
{
    for (size_t i = 0; i < room->count; i++)
        if (strcmp(room->members[i].name, name) == 0)
            return true;
    return false;
}

static void remove_member(udp_room *room, udp_member *m)
{
    *m = room->members[--room->count]; /* order does not matter */
}

/* Copy every member but except (may be NULL). On allocation failure the
 * list is empty: those datagrams are lost, as UDP allows. */
static recipients copy_members(const udp_room *room, const udp_member *except)
{
    recipients r = {malloc((room->count + 1) * sizeof(udp_member)), 0};
    for (size_t i = 0; r.list && i < room->count; i++)
        if (&room->members[i] != except)
            r.list[r.count++] = room->members[i];
    return r;
}

/* ---- sending (never under the lock) ---------------------------------- */

static void send_line(const udp_room *room, const udp_member *to,
                      const char *line)
{
    sendto(ss_server_fileno(room->srv), line, strlen(line),
           MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&to->address,
           to->address_len);
}

static void send_all(const udp_room *room, recipients *r, const char *line)
{
    for (size_t i = 0; i < r->count; i++)
        send_line(room, &r->list[i], line);
    free(r->list);
    r->list = NULL;
}

void udp_room_admin(udp_room *room, const char *text)
{
    char line[CHAT_OUT_MAX];
    snprintf(line, sizeof line, "ADMIN %s\n", text);
    pthread_mutex_lock(&room->lock);
    recipients r = copy_members(room, NULL);
    pthread_mutex_unlock(&room->lock);
    send_all(room, &r, line);
}

void udp_room_sweep(udp_room *room)
{
    int64_t now = ss_now_ns();
    int64_t limit = (int64_t)(room->silence * 1e9);
    pthread_mutex_lock(&room->lock);
    recipients gone = {malloc((room->count + 1) * sizeof(udp_member)), 0};
    for (size_t i = 0; gone.list && i < room->count;) {
        if (now - room->members[i].last_heard > limit) {
            gone.list[gone.count++] = room->members[i];
            remove_member(room, &room->members[i]);
        } else {
            i++;
        }
    }
    recipients rest = copy_members(room, NULL);
    pthread_mutex_unlock(&room->lock);

    for (size_t i = 0; i < gone.count; i++) {
        char line[CHAT_OUT_MAX];
        chat_log("%s dropped: silent for more than %g s", gone.list[i].name,
                 room->silence);
        send_line(room, &gone.list[i], "BYE timeout\n");
        snprintf(line, sizeof line, "LEFT %s timeout\n", gone.list[i].name);
        for (size_t j = 0; j < rest.count; j++)
            send_line(room, &rest.list[j], line);
    }
    free(gone.list);
    free(rest.list);
}

void udp_room_close(udp_room *room)
{
    pthread_mutex_lock(&room->lock);
    recipients all = copy_members(room, NULL);
    room->count = 0;
    pthread_mutex_unlock(&room->lock);
    send_all(room, &all, "BYE shutdown\n");
}

/* ---- the datagram handler -------------------------------------------- */

/* Room for one more member. */
static bool reserve(udp_room *room)
{
    if (room->count < room->capacity)
        return true;
    size_t capacity = room->capacity * 2 + 8;
    udp_member *grown = realloc(room->members, capacity * sizeof *grown);
    if (!grown)
        return false;
    room->members = grown;
    room->capacity = capacity;
    return true;
}

static void join(ss_request *req, udp_room *room, const char *name,
                 const struct sockaddr *from, socklen_t from_len)
{
    if (!chat_valid_name(name)) {
        ss_writef(req, "ERR bad name\n");
        return;
    }
    const char *error = NULL;
    bool joined = false;
    recipients others = {NULL, 0};
    pthread_mutex_lock(&room->lock);
    udp_member *m = find_address(room, from);
    if (m) {
        /* The same JOIN again: its OK was lost, the client retried. */
        if (strcmp(m->name, name) != 0)
            error = "ERR already joined\n";
        else
            m->last_heard = ss_now_ns();
    } else if (name_taken(room, name)) {
        error = "ERR name taken\n";
    } else if (!reserve(room)) {
        error = "ERR server busy\n";
    } else {
        others = copy_members(room, NULL);
        m = &room->members[room->count++];
        snprintf(m->name, sizeof m->name, "%s", name);
        memcpy(&m->address, from, from_len);
        m->address_len = from_len;
        m->last_heard = ss_now_ns();
        joined = true;
    }
    pthread_mutex_unlock(&room->lock);
    if (error) {
        ss_writef(req, "%s", error);
        return;
    }
    if (joined) {
        char peer[128], line[CHAT_OUT_MAX];
        ss_request_client_address_string(req, peer, sizeof peer);
        chat_log("%s joined (%s)", name, peer);
        snprintf(line, sizeof line, "JOINED %s\n", name);
        send_all(room, &others, line);
    }
    /* The reply tells the client how often it must be heard from. */
    ss_writef(req, "OK %s %g\n", name, room->silence);
}

static int udp_handle(ss_request *req)
{
    udp_room *room = ss_request_user(req);
    char line[CHAT_LINE_MAX + 1];
    int n = ss_read(req, line, sizeof line - 1);
    if (n < 0)
        return n;
    if (ss_request_truncated(req)) {
        ss_writef(req, "ERR line too long\n");
        return 0;
    }
    line[n] = '\0';
    chat_chomp(line, (size_t)n);
    const char *arg;
    size_t len = chat_command(line, &arg);
    socklen_t from_len;
    const struct sockaddr *from = ss_request_client_address(req, &from_len);

    if (chat_is(line, len, "JOIN")) {
        join(req, room, arg, from, from_len);
        return 0;
    }
    bool known = true, quit = chat_is(line, len, "QUIT");
    char name[CHAT_NAME_MAX + 1] = "";
    recipients others = {NULL, 0};
    pthread_mutex_lock(&room->lock);
    udp_member *m = find_address(room, from);
    if (!m) {
        known = false;
    } else {
        m->last_heard = ss_now_ns();
        snprintf(name, sizeof name, "%s", m->name);
        if (quit) {
            remove_member(room, m);
            others = copy_members(room, NULL);
        } else if (chat_is(line, len, "MSG")) {
            others = copy_members(room, m);
        }
    }
    pthread_mutex_unlock(&room->lock);

    char out[CHAT_OUT_MAX];
    if (!known) {
        /* Also what a member dropped for silence hears when it speaks. */
        ss_writef(req, "ERR join first\n");
    } else if (quit) {
        chat_log("%s left (quit)", name);
        snprintf(out, sizeof out, "LEFT %s quit\n", name);
        send_all(room, &others, out);
        ss_writef(req, "BYE\n");
    } else if (chat_is(line, len, "MSG")) {
        chat_sanitize(line + (arg - line)); /* the text, in place */
        snprintf(out, sizeof out, "MSG %s %s\n", name, arg);
        send_all(room, &others, out);
    } else if (!chat_is(line, len, "PING")) {
        ss_writef(req, "ERR unknown command\n");
    }
    free(others.list);
    return 0; /* the reply, maybe empty, goes back after this */
}

const ss_handler_class chat_udp_handler = {
    .base = &ss_datagram_handler,
    .handle = udp_handle,
};
