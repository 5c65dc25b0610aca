/*
 * tcp_room.c — the chat room over TCP: a request per member, for as long
 * as the member stays, under ss_threading (a thread each) or ss_coroutines
 * (a coroutine each). The handler source is the same for both.
 *
 * The problem. A member's handler waits for its client's next line, yet
 * the lines of every other member must reach that client too. Another
 * member's handler may not write to this member's socket: request
 * functions belong to the handler running the request (and under
 * ss_coroutines each scheduler thread owns its sockets). So each member
 * has an outbox — a bounded queue that others put lines into, plus an
 * eventfd that says "not empty any more" — and its handler waits for its
 * client's input or its eventfd, whichever comes first, with
 * ss_wait_input_or_fd(). Only a member's own handler writes to its socket.
 *
 * Shared state. The member list and all outboxes are guarded by one mutex,
 * room->lock. It is held for list and queue operations only, never across
 * a call that can wait or park (ss_read, ss_write, ss_wait_*): that is what
 * makes a plain mutex right under coroutines too. A coroutine never parks
 * while holding it, so no coroutine of its thread can get stuck behind it;
 * with several scheduler threads (or with threads) it does the usual job.
 * Holding one lock over a whole broadcast also gives every member the same
 * order of lines, so each sender's lines arrive in the order sent.
 *
 * Slow readers. An outbox holds at most room->outbox bytes (each line
 * counted with its bookkeeping), on top of what the member's socket
 * buffers hold. A sender that finds one full never waits: that member is
 * dropped on the spot (taken off the list, announced as "LEFT name slow"),
 * and its handler, woken through the eventfd, sends what it still has,
 * then "ERR too slow", and closes. Its writes time out after
 * MEMBER_WRITE_TIMEOUT seconds, so a client that stopped reading
 * altogether is disconnected then.
 *
 * Flood control. Dropping whoever cannot keep up is only fair if nobody
 * may talk faster than the others can listen: a member may send
 * room->flood_limit lines per second on average, in bursts of as many.
 * Past that its handler stops reading its client for a while — it still
 * sends its outbox — and TCP flow control slows the flooding client down,
 * nobody else.
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

/* One line in an outbox. */
typedef struct queued {
    struct queued *next;
    size_t len;
    char text[];
} queued;

typedef struct member {
    struct member *next; /* room->members */
    char name[CHAT_NAME_MAX + 1];
    int wake_fd; /* eventfd: the outbox got lines, or the member was dropped */
    /* Under room->lock: */
    queued *head, **tail; /* the outbox, oldest first */
    size_t bytes;         /* what it holds, bookkeeping included */
    bool overflowed;      /* a line did not fit: drop the member */
    bool dropped;         /* taken off the list as too slow */
} member;

struct tcp_room {
    pthread_mutex_t lock;
    member *members;
    size_t outbox;
    double flood_limit; /* lines per second; 0: no limit */
};

/* The request's state (the handler's state_size): the member, and input
 * received but not yet split into lines. */
typedef struct session {
    member m;
    char input[CHAT_LINE_MAX];
    size_t input_len;
    double allowance;   /* lines it may send now (flood control) */
    int64_t checked_at; /* ss_now_ns() when allowance was last topped up */
} session;

int tcp_room_new(tcp_room **out, size_t outbox, double flood_limit)
{
    tcp_room *room = calloc(1, sizeof *room);
    if (!room)
        return -ENOMEM;
    pthread_mutex_init(&room->lock, NULL);
    room->outbox = outbox;
    room->flood_limit = flood_limit;
    *out = room;
    return 0;
}

void tcp_room_free(tcp_room *room)
{
    if (!room)
        return;
    pthread_mutex_destroy(&room->lock);
    free(room);
}

/* ---- the member list and outboxes (all under room->lock) --------------- */

static void wake(member *m)
{
    uint64_t one = 1;
    ssize_t ignored = write(m->wake_fd, &one, sizeof one); /* never blocks */
    (void)ignored;
}

/* Append a copy of line to m's outbox. Never waits: a full outbox marks
 * the member for dropping instead. */
static void enqueue(tcp_room *room, member *m, const char *line)
{
    if (m->overflowed)
        return;
    size_t len = strlen(line);
    size_t cost = sizeof(queued) + len + 1;
    queued *q = m->bytes + cost <= room->outbox ? malloc(cost) : NULL;
    if (!q) {
        m->overflowed = true;
        return;
    }
    q->next = NULL;
    q->len = len;
    memcpy(q->text, line, len + 1);
    bool was_empty = m->head == NULL;
    *m->tail = q;
    m->tail = &q->next;
    m->bytes += cost;
    /* Only the first line needs a wake-up: the handler takes them all. */
    if (was_empty)
        wake(m);
}

static void free_queue(queued *q)
{
    while (q) {
        queued *next = q->next;
        free(q);
        q = next;
    }
}

/* Members whose outbox overflowed leave now; each departure is news for
 * the others, which may overflow another outbox, hence the loop. */
static void drop_overflowed(tcp_room *room)
{
    for (;;) {
        member **link = &room->members;
        while (*link && !(*link)->overflowed)
            link = &(*link)->next;
        member *m = *link;
        if (!m)
            return;
        *link = m->next;
        m->dropped = true;
        wake(m);
        char line[CHAT_OUT_MAX];
        snprintf(line, sizeof line, "LEFT %s slow\n", m->name);
        for (member *other = room->members; other; other = other->next)
            enqueue(room, other, line);
    }
}

static void broadcast_locked(tcp_room *room, const member *except,
                             const char *line)
{
    for (member *m = room->members; m; m = m->next)
        if (m != except)
            enqueue(room, m, line);
    drop_overflowed(room);
}

static void broadcast(tcp_room *room, const member *except, const char *line)
{
    pthread_mutex_lock(&room->lock);
    broadcast_locked(room, except, line);
    pthread_mutex_unlock(&room->lock);
}

static bool name_taken(const tcp_room *room, const char *name)
{
    for (const member *m = room->members; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return true;
    return false;
}

void tcp_room_admin(tcp_room *room, const char *text)
{
    char line[CHAT_OUT_MAX];
    snprintf(line, sizeof line, "ADMIN %s\n", text);
    broadcast(room, NULL, line);
}

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
static bool join(ss_request *req, tcp_room *room, session *s)
{
    char line[CHAT_LINE_MAX + 1];
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
        const char *arg;
        size_t len = chat_command(line, &arg);
        if (chat_is(line, len, "QUIT")) {
            reply(req, "BYE\n");
            ss_flush(req);
            return false;
        }
        if (!chat_is(line, len, "JOIN")) {
            reply(req, "ERR join first\n");
            continue;
        }
        if (!chat_valid_name(arg)) {
            reply(req, "ERR bad name\n");
            continue;
        }
        snprintf(s->m.name, sizeof s->m.name, "%s", arg);
        char joined[CHAT_OUT_MAX];
        snprintf(joined, sizeof joined, "JOINED %s\n", s->m.name);
        /* Check and insert in one critical section: two clients asking
         * for the same name at once cannot both get it. */
        pthread_mutex_lock(&room->lock);
        bool taken = name_taken(room, s->m.name);
        if (!taken) {
            broadcast_locked(room, NULL, joined);
            s->m.next = room->members;
            room->members = &s->m;
        }
        pthread_mutex_unlock(&room->lock);
        if (taken) {
            reply(req, "ERR name taken\n");
            continue;
        }
        char peer[128];
        ss_request_client_address_string(req, peer, sizeof peer);
        chat_log("%s joined (%s)", s->m.name, peer);
        /* Before anything from the outbox: the loop sends those after. */
        char ok[CHAT_OUT_MAX];
        snprintf(ok, sizeof ok, "OK %s\n", s->m.name);
        reply(req, ok);
        return true;
    }
}

/* Send what other members queued for this one. Returns 0 or the write's
 * error; *dropped tells whether the room dropped this member. */
static int deliver(ss_request *req, tcp_room *room, session *s, bool *dropped)
{
    member *m = &s->m;
    /* Reset the eventfd before taking the lines: a line queued after this
     * point wakes the next wait, so none is left behind unnoticed. */
    uint64_t count;
    ssize_t ignored = read(m->wake_fd, &count, sizeof count);
    (void)ignored;

    pthread_mutex_lock(&room->lock);
    queued *lines = m->head;
    m->head = NULL;
    m->tail = &m->head;
    m->bytes = 0;
    *dropped = m->dropped;
    pthread_mutex_unlock(&room->lock);

    /* No lock from here on: these writes may wait for the client. */
    int rc = 0;
    for (queued *q = lines; q && rc == 0; q = q->next) {
        int w = ss_write_all(req, q->text, q->len);
        if (w < 0)
            rc = w;
    }
    free_queue(lines);
    if (rc == 0)
        rc = ss_flush(req);
    return rc;
}

/* One line from a member's client. Returns why the member leaves, or
 * NULL to go on. */
static const char *command(ss_request *req, tcp_room *room, session *s,
                           char *line)
{
    chat_sanitize(line);
    const char *arg;
    size_t len = chat_command(line, &arg);
    if (len == 0 && *arg == '\0')
        return NULL; /* an empty line */
    if (chat_is(line, len, "MSG")) {
        char out[CHAT_OUT_MAX];
        snprintf(out, sizeof out, "MSG %s %s\n", s->m.name, arg);
        broadcast(room, &s->m, out);
    } else if (chat_is(line, len, "QUIT")) {
        reply(req, "BYE\n");
        ss_flush(req);
        return "quit";
    } else if (chat_is(line, len, "JOIN")) {
        reply(req, "ERR already joined\n");
    } else if (!chat_is(line, len, "PING")) {
        reply(req, "ERR unknown command\n");
    }
    return NULL;
}

/* Act on the complete lines received so far, as many as flood control
 * allows; the rest wait in s->input. Returns why the member leaves, or
 * NULL to go on. */
static const char *process_lines(ss_request *req, tcp_room *room, session *s)
{
    char *start = s->input, *end = s->input + s->input_len, *newline;
    const char *why = NULL;
    while (!why && (room->flood_limit <= 0 || s->allowance >= 1) &&
           (newline = memchr(start, '\n', (size_t)(end - start)))) {
        *newline = '\0';
        chat_chomp(start, (size_t)(newline - start));
        s->allowance -= 1;
        why = command(req, room, s, start);
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

/* Flood control: the allowance grows back at flood_limit lines per
 * second, up to flood_limit (the largest burst). */
static void refill(const tcp_room *room, session *s)
{
    int64_t now = ss_now_ns();
    s->allowance += room->flood_limit * (double)(now - s->checked_at) / 1e9;
    if (s->allowance > room->flood_limit)
        s->allowance = room->flood_limit;
    s->checked_at = now;
}

/* A member's life after joining. Returns why it leaves: quit, gone,
 * slow, error or shutdown. */
static const char *converse(ss_request *req, tcp_room *room, session *s)
{
    ss_request_set_timeout(req, MEMBER_WRITE_TIMEOUT);
    s->allowance = room->flood_limit;
    s->checked_at = ss_now_ns();
    for (;;) {
        refill(room, s);
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
        if (room->flood_limit > 0 && s->allowance < 1) {
            /* Talking too fast: until the allowance has grown back, only
             * the outbox; the client's input waits (TCP holds it back). */
            rc = ss_wait_fd(req, s->m.wake_fd, POLLIN,
                            (1 - s->allowance) / room->flood_limit);
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

static void leave(tcp_room *room, session *s, const char *why)
{
    member *m = &s->m;
    char line[CHAT_OUT_MAX];
    snprintf(line, sizeof line, "LEFT %s %s\n", m->name, why);
    pthread_mutex_lock(&room->lock);
    bool dropped = m->dropped; /* then the room took it off already */
    if (!dropped) {
        member **link = &room->members;
        while (*link != m)
            link = &(*link)->next;
        *link = m->next;
        /* When the server stops, everyone is told BYE instead. */
        if (strcmp(why, "shutdown") != 0)
            broadcast_locked(room, NULL, line);
    }
    pthread_mutex_unlock(&room->lock);
    chat_log("%s left (%s)", m->name, dropped ? "slow" : why);
}

static int chat_handle(ss_request *req)
{
    tcp_room *room = ss_request_user(req);
    session *s = ss_request_state(req);
    member *m = &s->m;
    keep_alive(ss_request_fileno(req));
    m->tail = &m->head;
    m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = 0;
    if (m->wake_fd < 0) {
        rc = -errno;
        reply(req, "ERR server busy\n");
    } else if (join(req, room, s)) {
        const char *why = converse(req, room, s);
        leave(room, s, why);
        if (strcmp(why, "shutdown") == 0)
            reply(req, "BYE shutdown\n"); /* sent by the library after
                                             handle, within the grace */
    }
    /* Off the list: nobody else touches the outbox now. */
    free_queue(m->head);
    if (m->wake_fd >= 0)
        close(m->wake_fd);
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
