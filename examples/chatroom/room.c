/*
 * room.c — the chat room itself, whatever door its members came in by:
 * the member list, unique names, the protocol's commands, joins and
 * leaves, admin lines, flood control, and each member's outbox.
 *
 * Two doors lead into the same room: tcp_room.c (a TCP connection per
 * member, lines ending in '\n') and web_room.c (a WebSocket per member, a
 * text message per line). A door runs one request per member, reads its
 * client's commands, hands each to chat_room_command(), and waits for its
 * client's input or its member's eventfd, whichever comes first. Nothing
 * here ever touches a socket: a door alone writes to its member's
 * connection, so this file is the same for every door and every strategy.
 *
 * Outboxes. Each member has a bounded queue of lines that the others (and
 * the admin thread) append to, plus an eventfd made readable when the
 * first line goes into an empty queue. The member's own request takes the
 * lines (chat_room_take) and sends them.
 *
 * The lock. The member list and all outboxes are guarded by one mutex,
 * room->lock, held for list and queue operations only, never across a
 * call that can wait or park: that is what makes a plain mutex right
 * under coroutines too (a coroutine never parks while holding it). Holding
 * it over a whole broadcast gives every member the same order of lines,
 * whichever door they use, so each sender's lines arrive in order and
 * exactly once.
 *
 * Slow readers. A sender that finds an outbox full never waits: that
 * member is dropped on the spot (taken off the list, announced as
 * "LEFT name slow"), and its request, woken through the eventfd, sends
 * what it still has, then "ERR too slow", and ends.
 *
 * Flood control. A member may send room->flood_limit lines per second on
 * average, in bursts of as many (chat_flood_allows); past that its door
 * stops reading its client for a while (chat_flood_wait), so the one who
 * floods is slowed down, nobody else.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chat.h"

struct chat_room {
    pthread_mutex_t lock;
    chat_member *members; /* in order of joining */
    size_t outbox;
    double flood_limit; /* lines per second; 0: no limit */
};

int chat_room_new(chat_room **out, size_t outbox, double flood_limit)
{
    chat_room *room = calloc(1, sizeof *room);
    if (!room)
        return -ENOMEM;
    pthread_mutex_init(&room->lock, NULL);
    room->outbox = outbox;
    room->flood_limit = flood_limit;
    *out = room;
    return 0;
}

void chat_room_free(chat_room *room)
{
    if (!room)
        return;
    pthread_mutex_destroy(&room->lock);
    free(room);
}

int chat_member_init(chat_member *m)
{
    memset(m, 0, sizeof *m);
    m->tail = &m->head;
    m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return m->wake_fd < 0 ? -errno : 0;
}

void chat_lines_free(chat_line *line)
{
    while (line) {
        chat_line *next = line->next;
        free(line);
        line = next;
    }
}

void chat_member_destroy(chat_member *m)
{
    /* Off the list by now: nobody else touches the outbox. */
    chat_lines_free(m->head);
    m->head = NULL;
    m->tail = &m->head;
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    m->wake_fd = -1;
}

/* ---- the member list and outboxes (all under room->lock) --------------- */

static void wake(chat_member *m)
{
    uint64_t one = 1;
    ssize_t ignored = write(m->wake_fd, &one, sizeof one); /* never blocks */
    (void)ignored;
}

/* Append a copy of text (a whole line, '\n' included) to m's outbox.
 * Never waits: a full outbox marks the member for dropping instead —
 * unless unbounded, for the answer to the member's own NAMES. */
static void enqueue(chat_room *room, chat_member *m, const char *text,
                    bool unbounded)
{
    if (m->overflowed)
        return;
    size_t len = strlen(text);
    size_t cost = sizeof(chat_line) + len + 1;
    chat_line *q =
        unbounded || m->bytes + cost <= room->outbox ? malloc(cost) : NULL;
    if (!q) {
        m->overflowed = true;
        return;
    }
    q->next = NULL;
    q->len = len;
    memcpy(q->text, text, len + 1);
    bool was_empty = m->head == NULL;
    *m->tail = q;
    m->tail = &q->next;
    m->bytes += cost;
    /* Only the first line needs a wake-up: the request takes them all. */
    if (was_empty)
        wake(m);
}

/* Members whose outbox overflowed leave now; each departure is news for
 * the others, which may overflow another outbox, hence the loop. */
static void drop_overflowed(chat_room *room)
{
    for (;;) {
        chat_member **link = &room->members;
        while (*link && !(*link)->overflowed)
            link = &(*link)->next;
        chat_member *m = *link;
        if (!m)
            return;
        *link = m->next;
        m->dropped = true;
        wake(m);
        char line[CHAT_OUT_MAX];
        snprintf(line, sizeof line, "LEFT %s slow\n", m->name);
        for (chat_member *other = room->members; other; other = other->next)
            enqueue(room, other, line, false);
    }
}

static void broadcast_locked(chat_room *room, const chat_member *except,
                             const char *line)
{
    for (chat_member *m = room->members; m; m = m->next)
        if (m != except)
            enqueue(room, m, line, false);
    drop_overflowed(room);
}

static void broadcast(chat_room *room, const chat_member *except,
                      const char *line)
{
    pthread_mutex_lock(&room->lock);
    broadcast_locked(room, except, line);
    pthread_mutex_unlock(&room->lock);
}

static bool name_taken(const chat_room *room, const char *name)
{
    for (const chat_member *m = room->members; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return true;
    return false;
}

void chat_room_admin(chat_room *room, const char *text)
{
    char line[CHAT_OUT_MAX];
    snprintf(line, sizeof line, "ADMIN %s\n", text);
    broadcast(room, NULL, line);
}

/* "NAMES a b c\n": every member, in order of joining, into m's own
 * outbox — behind the lines queued before it and ahead of those queued
 * after, so that the list and the JOINED/LEFT lines around it agree. */
static void names(chat_room *room, chat_member *m)
{
    pthread_mutex_lock(&room->lock);
    size_t size = sizeof "NAMES\n";
    for (const chat_member *o = room->members; o; o = o->next)
        size += strlen(o->name) + 1;
    char *line = malloc(size);
    if (line) {
        size_t len = (size_t)snprintf(line, size, "NAMES");
        for (const chat_member *o = room->members; o; o = o->next)
            len += (size_t)snprintf(line + len, size - len, " %s", o->name);
        snprintf(line + len, size - len, "\n");
        enqueue(room, m, line, true);
        free(line);
    } else {
        m->overflowed = true; /* no memory: as good as too slow */
        drop_overflowed(room);
    }
    pthread_mutex_unlock(&room->lock);
}

/* ---- the protocol -------------------------------------------------------- */

chat_outcome chat_room_join_command(chat_room *room, chat_member *m, char *line,
                                    char *reply, size_t size, const char *peer)
{
    reply[0] = '\0';
    /* Not sanitized: a name with a control character is refused. */
    const char *arg;
    size_t len = chat_command(line, &arg);
    if (chat_is(line, len, "QUIT")) {
        snprintf(reply, size, "BYE\n");
        return CHAT_LEAVE;
    }
    if (!chat_is(line, len, "JOIN")) {
        snprintf(reply, size, "ERR join first\n");
        return CHAT_GO_ON;
    }
    if (!chat_valid_name(arg)) {
        snprintf(reply, size, "ERR bad name\n");
        return CHAT_GO_ON;
    }
    snprintf(m->name, sizeof m->name, "%s", arg);
    char joined[CHAT_OUT_MAX];
    snprintf(joined, sizeof joined, "JOINED %s\n", m->name);
    /* Check and insert in one critical section: two clients asking for
     * the same name at once — through either door — cannot both get it. */
    pthread_mutex_lock(&room->lock);
    bool taken = name_taken(room, m->name);
    if (!taken) {
        broadcast_locked(room, NULL, joined);
        chat_member **link = &room->members;
        while (*link)
            link = &(*link)->next;
        m->next = NULL;
        *link = m;
    }
    pthread_mutex_unlock(&room->lock);
    if (taken) {
        snprintf(reply, size, "ERR name taken\n");
        return CHAT_GO_ON;
    }
    chat_log("%s joined (%s)", m->name, peer);
    m->allowance = room->flood_limit;
    m->checked_at = ss_now_ns();
    /* The door sends it before anything from the outbox. */
    snprintf(reply, size, "OK %s\n", m->name);
    return CHAT_JOINED;
}

const char *chat_room_command(chat_room *room, chat_member *m, char *line,
                              char *reply, size_t size)
{
    reply[0] = '\0';
    chat_sanitize(line);
    const char *arg;
    size_t len = chat_command(line, &arg);
    if (len == 0 && *arg == '\0')
        return NULL; /* an empty line */
    if (chat_is(line, len, "MSG")) {
        char out[CHAT_OUT_MAX];
        snprintf(out, sizeof out, "MSG %s %s\n", m->name, arg);
        broadcast(room, m, out);
    } else if (chat_is(line, len, "QUIT")) {
        snprintf(reply, size, "BYE\n");
        return "quit";
    } else if (chat_is(line, len, "NAMES")) {
        names(room, m);
    } else if (chat_is(line, len, "JOIN")) {
        snprintf(reply, size, "ERR already joined\n");
    } else if (!chat_is(line, len, "PING")) {
        snprintf(reply, size, "ERR unknown command\n");
    }
    return NULL;
}

chat_line *chat_room_take(chat_room *room, chat_member *m, bool *dropped)
{
    /* Reset the eventfd before taking the lines: a line queued after this
     * point wakes the next wait, so none is left behind unnoticed. */
    uint64_t count;
    ssize_t ignored = read(m->wake_fd, &count, sizeof count);
    (void)ignored;

    pthread_mutex_lock(&room->lock);
    chat_line *lines = m->head;
    m->head = NULL;
    m->tail = &m->head;
    m->bytes = 0;
    *dropped = m->dropped;
    pthread_mutex_unlock(&room->lock);
    return lines;
}

void chat_room_leave(chat_room *room, chat_member *m, const char *why)
{
    char line[CHAT_OUT_MAX];
    snprintf(line, sizeof line, "LEFT %s %s\n", m->name, why);
    pthread_mutex_lock(&room->lock);
    bool dropped = m->dropped; /* then the room took it off already */
    if (!dropped) {
        chat_member **link = &room->members;
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

/* ---- flood control ------------------------------------------------------- */

/* The allowance grows back at flood_limit lines per second, up to
 * flood_limit (the largest burst). */
static void refill(const chat_room *room, chat_member *m)
{
    int64_t now = ss_now_ns();
    m->allowance += room->flood_limit * (double)(now - m->checked_at) / 1e9;
    if (m->allowance > room->flood_limit)
        m->allowance = room->flood_limit;
    m->checked_at = now;
}

bool chat_flood_allows(const chat_room *room, chat_member *m)
{
    if (room->flood_limit <= 0)
        return true;
    refill(room, m);
    if (m->allowance < 1)
        return false;
    m->allowance -= 1;
    return true;
}

double chat_flood_wait(const chat_room *room, chat_member *m)
{
    if (room->flood_limit <= 0)
        return 0;
    refill(room, m);
    return m->allowance >= 1 ? 0 : (1 - m->allowance) / room->flood_limit;
}
