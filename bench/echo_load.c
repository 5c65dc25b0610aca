/*
 * echo_load.c — a closed-loop load generator for echo servers (TCP and
 * UDP), used by run_echo_bench.py to compare libsockserv with Python's
 * socketserver under exactly the same client.
 *
 *   echo_load --host 127.0.0.1 --port P [--udp] --connections N --size M
 *             --duration S [--warmup S] [--connect-per-request] [--threads T]
 *             [--udp-timeout-ms MS] [--udp-retries R] [--drain S]
 *             [--source-addresses N] [--websocket]
 *
 * Closed loop: each of N "connections" sends an M-byte message, waits for
 * all M bytes to come back, checks them, and only then sends the next. The
 * rate therefore measures the server's round-trip cost under N concurrent
 * clients, not how fast we can stuff a socket.
 *
 *  - persistent (default): N TCP connections opened before the clock
 *    starts, each doing round trips until the end.
 *  - --connect-per-request: each round trip is connect, send, receive,
 *    close (the echo client of Python's documentation), N at a time. To a
 *    127.x address the connections come from 127.0.0.2 … 127.0.0.(1+N')
 *    in turn (N' = --source-addresses, default 250; 0 = no bind) so that
 *    TIME_WAIT on our side never decides the rate.
 *  - --udp: N connected UDP sockets; a reply that does not arrive within
 *    --udp-timeout-ms counts as a timeout (an error) and the message is
 *    sent again, at most --udp-retries times before moving on.
 *
 * Why epoll in one thread by default: on a 2-core machine the client and
 * the server share the CPUs, and a thread per connection would spend the
 * server's core on context switches. One epoll thread handles each ready
 * socket with one recv and one send. --threads splits the connections over
 * more epoll threads for bigger machines.
 *
 * --websocket: each persistent connection first upgrades to a WebSocket
 * (GET / with Upgrade: websocket, answered 101), then every message is a
 * masked binary frame, as a client must send it, and the reply must be the
 * server's unmasked frame of the same payload: sockserv-ws-echo measured
 * with the same client and the same loop as a plain echo server.
 *
 * Every message carries its sequence number in its first 8 bytes and a
 * pattern derived from (connection, sequence) in the rest, so a reply that
 * differs is a mismatch, and a late UDP reply to an earlier attempt is
 * recognised as stale rather than as corruption.
 *
 * Output: one line of key=value pairs on stdout, e.g.
 *   echo_load proto=tcp mode=persistent connections=50 size=64 threads=1
 *   duration=2.000 round_trips=123456 rt_per_sec=61728.0 errors=0
 *   mismatches=0 timeouts=0 stale=0 connects=50
 * (mode is persistent, connect-per-request or datagram.)
 * Exit status 0 after a run (even one with errors, which the line reports),
 * 2 for bad usage, 1 if the run could not start.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_TCP_SIZE ((size_t)16 << 20)
#define MAX_UDP_SIZE ((size_t)65507)
#define SEQ_BYTES 8

typedef struct options {
    const char *host;
    const char *port;
    bool udp;
    bool connect_per_request;
    int connections;
    size_t size;
    double duration;
    double warmup;
    double drain;
    int threads;
    int udp_timeout_ms;
    int udp_retries;
    int source_addresses;
    bool websocket;
} options;

enum slot_state {
    SLOT_IDLE,       /* no socket: connect-per-request between requests */
    SLOT_CONNECTING, /* non-blocking connect in progress */
    SLOT_SENDING,    /* message partly sent (waiting for POLLOUT) */
    SLOT_RECEIVING,  /* message sent, reply partly received */
    SLOT_DONE,       /* closed for good (end of run) */
};

typedef struct slot {
    int id;
    int fd;
    enum slot_state state;
    uint64_t seq;       /* sequence number of the message in flight */
    size_t sent;        /* bytes of out[] sent */
    size_t received;    /* bytes of in[] received */
    bool served;        /* a reply ever arrived on this connection */
    int attempts;       /* UDP: sends of the current message */
    int64_t sent_at;    /* UDP: when the current attempt went out */
    unsigned char *out; /* the message in flight (--websocket: its frame) */
    unsigned char *in;  /* its reply (UDP: one byte more, to see overruns) */
    unsigned char *expect; /* the reply it must be (out, or a frame) */
} slot;

typedef struct counters {
    uint64_t round_trips; /* completed inside the measured window */
    uint64_t errors;      /* failed connects, resets, early EOF, timeouts */
    uint64_t mismatches;  /* replies that differ from what was sent */
    uint64_t timeouts;    /* UDP: replies that did not come in time */
    uint64_t stale;       /* UDP: late replies to an earlier attempt */
    uint64_t connects;    /* TCP connections opened */
} counters;

typedef struct worker {
    pthread_t thread;
    int epfd;
    unsigned next_source; /* connect-per-request: source address rotation */
    slot **slots;
    int nslots;
    counters count;
} worker;

/* Set before any worker starts and read-only afterwards. */
static options opt;
static struct sockaddr_storage server_addr;
static socklen_t server_addr_len;
static int64_t measure_start_ns; /* end of warm-up */
static int64_t measure_end_ns;   /* end of the run */
/* Bytes of a message and of its reply on the wire: opt.size, or with
 * --websocket the frame headers too (client frames carry a mask). */
static size_t wire_out, wire_in, head_out, head_in;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool measuring(int64_t now)
{
    return now >= measure_start_ns && now < measure_end_ns;
}

/* ---- messages ------------------------------------------------------- */

/* The message for (connection, seq): the sequence number, little-endian,
 * in the first bytes, then a pattern that changes with both. */
static void make_message(slot *s)
{
    size_t n = opt.size;
    size_t head = n < SEQ_BYTES ? n : SEQ_BYTES;
    unsigned char *p = s->out + head_out;
    for (size_t i = 0; i < head; i++)
        p[i] = (unsigned char)(s->seq >> (8 * i));
    uint32_t x = (uint32_t)s->id * 2654435761u + (uint32_t)s->seq * 40503u;
    for (size_t i = head; i < n; i++)
        p[i] = (unsigned char)((x >> 11) + i * 7);
    if (!opt.websocket)
        return;
    /* The reply: the server's frame (FIN, binary, unmasked) of p. */
    memcpy(s->expect + head_in, p, n);
    /* The message: our frame, masked with a key that changes with seq. */
    unsigned char *key = s->out + head_out - 4;
    for (int i = 0; i < 4; i++)
        key[i] = (unsigned char)(x >> (8 * i)) | 1;
    for (size_t i = 0; i < n; i++)
        p[i] ^= key[i & 3];
}

/* A frame header for n bytes into h (mask bit and room for the key when
 * masked); returns its length. */
static size_t ws_header(unsigned char *h, size_t n, bool masked)
{
    unsigned char m = masked ? 0x80 : 0;
    h[0] = 0x82;
    size_t len;
    if (n < 126) {
        h[1] = m | (unsigned char)n;
        len = 2;
    } else if (n < 65536) {
        h[1] = m | 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        len = 4;
    } else {
        h[1] = m | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (8 * (7 - i)));
        len = 10;
    }
    return len + (masked ? 4 : 0);
}

static uint64_t message_seq(const unsigned char *buf, size_t n)
{
    uint64_t seq = 0;
    for (size_t i = 0; i < n && i < SEQ_BYTES; i++)
        seq |= (uint64_t)buf[i] << (8 * i);
    return seq;
}

/* ---- TCP ------------------------------------------------------------ */

static void close_slot(slot *s)
{
    if (s->fd >= 0)
        close(s->fd); /* also removes it from the epoll set */
    s->fd = -1;
    s->state = SLOT_IDLE;
    s->sent = s->received = 0;
}

static int watch(worker *w, slot *s, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = s};
    return epoll_ctl(w->epfd, op, s->fd, &ev);
}

/* Send what is left of the message. Returns 0 (all sent, now receiving),
 * 1 (the socket is full: wait for EPOLLOUT) or -1 (connection failed). */
static int send_rest(slot *s)
{
    while (s->sent < wire_out) {
        ssize_t n = send(s->fd, s->out + s->sent, wire_out - s->sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            s->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 1;
        } else {
            return -1;
        }
    }
    s->state = SLOT_RECEIVING;
    return 0;
}

/* Start the next message on an open connection, with the socket watched
 * for EPOLLIN already (op = MOD) or not yet (op = ADD). */
static int start_message(worker *w, slot *s, int op)
{
    s->sent = s->received = 0;
    s->state = SLOT_SENDING;
    make_message(s);
    int rc = send_rest(s);
    if (rc < 0)
        return -1;
    if (rc == 1)
        return watch(w, s, op, EPOLLIN | EPOLLOUT);
    /* Persistent connections are registered for EPOLLIN once and stay so;
     * only a newly opened one (ADD) or one coming back from EPOLLOUT needs
     * a call. */
    if (op == EPOLL_CTL_ADD)
        return watch(w, s, EPOLL_CTL_ADD, EPOLLIN);
    return 0;
}

static int open_socket(int type)
{
    return socket(server_addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  0);
}

/* Connect-per-request to 127.x.x.x: every closed connection leaves its
 * 4-tuple in TIME_WAIT on our side for a minute. With one source address
 * and one server port, thousands of connections a second soon collide with
 * those (new connects stall, sometimes for a SYN retransmit of a second),
 * and the run measures the client's port reuse instead of the server.
 * Rotating the source over 127.0.0.2, 127.0.0.3, … gives each address its
 * own port space; IP_BIND_ADDRESS_NO_PORT lets connect() pick the port
 * for the whole 4-tuple. */
static void bind_rotating_source(worker *w, int fd)
{
    if (opt.source_addresses == 0 || server_addr.ss_family != AF_INET)
        return;
    const struct sockaddr_in *to = (const struct sockaddr_in *)&server_addr;
    if ((ntohl(to->sin_addr.s_addr) >> 24) != 127)
        return;
    unsigned k = w->next_source++ % (unsigned)opt.source_addresses;
    struct sockaddr_in from = {
        .sin_family = AF_INET,
        .sin_addr.s_addr = htonl(0x7f000002u + k), /* 127.0.0.2 + k */
    };
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    bind(fd, (struct sockaddr *)&from, sizeof from); /* best effort */
}

/* Connect-per-request (and reconnects): a non-blocking connect. Loopback
 * usually finishes the handshake inside connect(), so try to send at once
 * and only wait for EPOLLOUT when the kernel says the socket is not ready.
 */
static void tcp_connect(worker *w, slot *s)
{
    if (opt.websocket) {
        /* No handshake here: a WebSocket connection that failed is lost. */
        w->count.errors++;
        s->state = SLOT_DONE;
        return;
    }
    s->fd = open_socket(SOCK_STREAM);
    if (s->fd < 0) {
        w->count.errors++;
        s->state = SLOT_IDLE;
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bind_rotating_source(w, s->fd);
    w->count.connects++;
    s->served = false;
    int rc = connect(s->fd, (struct sockaddr *)&server_addr, server_addr_len);
    if (rc < 0 && errno != EINPROGRESS) {
        w->count.errors++;
        close_slot(s);
        return;
    }
    /* Connected, or in progress: send now if the kernel lets us. */
    s->sent = s->received = 0;
    make_message(s);
    s->state = SLOT_SENDING;
    int sent = send_rest(s);
    if (sent == 0 && watch(w, s, EPOLL_CTL_ADD, EPOLLIN) == 0)
        return;
    /* EAGAIN (handshake not finished, or a full socket) and ENOTCONN (a
     * kernel that wants the handshake first) both mean: wait for EPOLLOUT.
     * Anything else is a failure. */
    if (sent == 1 || (sent < 0 && errno == ENOTCONN)) {
        s->state = SLOT_CONNECTING;
        if (watch(w, s, EPOLL_CTL_ADD, EPOLLOUT) == 0)
            return;
    }
    w->count.errors++;
    close_slot(s);
}

/* The connection failed mid-request: count it, and get a new one. */
static void tcp_fail(worker *w, slot *s, bool stopping)
{
    w->count.errors++;
    close_slot(s);
    if (!stopping)
        tcp_connect(w, s);
    else
        s->state = SLOT_DONE;
}

static void tcp_reply_complete(worker *w, slot *s, int64_t now, bool stopping)
{
    if (memcmp(s->in, s->expect, wire_in) != 0) {
        /* The stream is out of step; only a new connection recovers. */
        w->count.mismatches++;
        close_slot(s);
        if (stopping)
            s->state = SLOT_DONE;
        else
            tcp_connect(w, s);
        return;
    }
    s->served = true;
    s->seq++;
    if (measuring(now))
        w->count.round_trips++;
    if (opt.connect_per_request || stopping) {
        close_slot(s);
        if (stopping)
            s->state = SLOT_DONE;
        else
            tcp_connect(w, s);
        return;
    }
    if (start_message(w, s, EPOLL_CTL_MOD) < 0)
        tcp_fail(w, s, stopping);
}

static void tcp_event(worker *w, slot *s, uint32_t events, int64_t now,
                      bool stopping)
{
    if (s->state == SLOT_CONNECTING) {
        int error = 0;
        socklen_t len = sizeof error;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0 ||
            error != 0) {
            tcp_fail(w, s, stopping);
            return;
        }
        s->state = SLOT_SENDING;
        int rc = send_rest(s);
        if (rc < 0 || (rc == 0 && watch(w, s, EPOLL_CTL_MOD, EPOLLIN) < 0))
            tcp_fail(w, s, stopping);
        return;
    }
    if (s->state == SLOT_SENDING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int rc = send_rest(s);
        if (rc < 0 || (rc == 0 && watch(w, s, EPOLL_CTL_MOD, EPOLLIN) < 0))
            tcp_fail(w, s, stopping);
        return;
    }
    if (s->state != SLOT_RECEIVING)
        return;
    for (;;) {
        ssize_t n = recv(s->fd, s->in + s->received, wire_in - s->received,
                         MSG_DONTWAIT);
        if (n > 0) {
            s->received += (size_t)n;
            if (s->received == wire_in) {
                tcp_reply_complete(w, s, now, stopping);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        tcp_fail(w, s, stopping); /* EOF before the reply, or a reset */
        return;
    }
}

/* ---- UDP ------------------------------------------------------------ */

static int udp_send(worker *w, slot *s, int64_t now)
{
    s->attempts++;
    s->sent_at = now;
    s->state = SLOT_RECEIVING;
    ssize_t n = send(s->fd, s->out, opt.size, MSG_DONTWAIT);
    if (n == (ssize_t)opt.size)
        return 0;
    /* A refused or full send is handled like a lost packet: the timeout
     * scan sends it again. */
    (void)w;
    return -1;
}

static void udp_next_message(worker *w, slot *s, int64_t now)
{
    s->seq++;
    s->attempts = 0;
    make_message(s);
    udp_send(w, s, now);
}

static void udp_event(worker *w, slot *s, int64_t now, bool stopping)
{
    for (;;) {
        ssize_t n = recv(s->fd, s->in, opt.size + 1, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* EAGAIN: nothing more. ECONNREFUSED: an ICMP error for an
             * earlier send; the timeout scan will resend. */
            return;
        }
        if (s->state != SLOT_RECEIVING)
            continue;
        if ((size_t)n == opt.size && memcmp(s->in, s->out, opt.size) == 0) {
            s->served = true;
            if (measuring(now))
                w->count.round_trips++;
            if (stopping)
                s->state = SLOT_DONE;
            else
                udp_next_message(w, s, now);
            continue;
        }
        if ((size_t)n == opt.size && opt.size >= SEQ_BYTES &&
            message_seq(s->in, (size_t)n) < s->seq)
            w->count.stale++; /* a reply to an attempt we gave up on */
        else
            w->count.mismatches++;
    }
}

/* Lost packets: resend the current message, or give up on it after
 * udp_retries resends and go on with the next. */
static void udp_check_timeouts(worker *w, int64_t now, bool stopping)
{
    int64_t limit = (int64_t)opt.udp_timeout_ms * 1000000;
    for (int i = 0; i < w->nslots; i++) {
        slot *s = w->slots[i];
        if (s->state != SLOT_RECEIVING || now - s->sent_at < limit)
            continue;
        w->count.timeouts++;
        w->count.errors++;
        if (stopping)
            s->state = SLOT_DONE;
        else if (s->attempts <= opt.udp_retries)
            udp_send(w, s, now);
        else
            udp_next_message(w, s, now);
    }
}

/* ---- the loop ------------------------------------------------------- */

static bool outstanding(const worker *w)
{
    for (int i = 0; i < w->nslots; i++) {
        const slot *s = w->slots[i];
        /* A persistent connection the server never picked up (a sync
         * server serving someone else) would never answer: don't wait. */
        if (s->state == SLOT_DONE || s->state == SLOT_IDLE)
            continue;
        if (!opt.connect_per_request && !opt.udp && !s->served)
            continue;
        return true;
    }
    return false;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    int64_t now = now_ns();

    /* Start every slot. Persistent TCP and UDP sockets are already open. */
    for (int i = 0; i < w->nslots; i++) {
        slot *s = w->slots[i];
        if (opt.udp) {
            watch(w, s, EPOLL_CTL_ADD, EPOLLIN);
            udp_next_message(w, s, now);
        } else if (opt.connect_per_request) {
            tcp_connect(w, s);
        } else if (start_message(w, s, EPOLL_CTL_ADD) < 0) {
            tcp_fail(w, s, false);
        }
    }

    int64_t drain_end = measure_end_ns + (int64_t)(opt.drain * 1e9);
    int64_t next_scan = now;
    bool stopping = false;
    for (;;) {
        int timeout_ms = opt.udp ? 5 : 50;
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, timeout_ms);
        if (n < 0 && errno != EINTR)
            break;
        now = now_ns();
        if (!stopping && now >= measure_end_ns)
            stopping = true;
        for (int i = 0; i < n; i++) {
            slot *s = events[i].data.ptr;
            if (opt.udp)
                udp_event(w, s, now, stopping);
            else
                tcp_event(w, s, events[i].events, now, stopping);
        }
        /* Slots that failed to reconnect retry on the next turn. */
        if (!stopping && !opt.udp)
            for (int i = 0; i < w->nslots; i++)
                if (w->slots[i]->state == SLOT_IDLE)
                    tcp_connect(w, w->slots[i]);
        if (opt.udp && now >= next_scan) {
            udp_check_timeouts(w, now, stopping);
            next_scan = now + 2000000;
        }
        /* Finish the requests in flight so servers see clean closes, not
         * resets; but never wait longer than --drain. */
        if (stopping && (now >= drain_end || !outstanding(w)))
            break;
    }
    for (int i = 0; i < w->nslots; i++)
        if (w->slots[i]->fd >= 0) {
            close(w->slots[i]->fd);
            w->slots[i]->fd = -1;
        }
    return NULL;
}

/* ---- setup ---------------------------------------------------------- */

/* --websocket: the opening handshake on a blocking socket. The server
 * sends nothing after its 101 head until we send, so reading up to the
 * blank line takes exactly the head. */
static int ws_upgrade(int fd)
{
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)sizeof req - 1)
        return -EIO;
    char head[1024];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        if (n == sizeof head - 1)
            return -EPROTO;
        ssize_t r = recv(fd, head + n, sizeof head - 1 - n, 0);
        if (r <= 0)
            return r == 0 ? -ECONNRESET : -errno;
        n += (size_t)r;
    }
    head[n] = '\0';
    return strncmp(head, "HTTP/1.1 101 ", 13) == 0 ? 0 : -EPROTO;
}

/* Persistent TCP and UDP sockets are opened before the clock starts, with
 * a blocking connect bounded by a 5 s send timeout. */
static int open_persistent(slot *s, counters *count)
{
    int type = opt.udp ? SOCK_DGRAM : SOCK_STREAM;
    int fd = socket(server_addr.ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (!opt.udp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(fd, (struct sockaddr *)&server_addr, server_addr_len) < 0) {
        int error = -errno;
        close(fd);
        return error;
    }
    if (opt.websocket) {
        int rc = ws_upgrade(fd);
        if (rc < 0) {
            close(fd);
            return rc;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    s->fd = fd;
    if (!opt.udp)
        count->connects++;
    return 0;
}

static int resolve(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = opt.udp ? SOCK_DGRAM : SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "echo_load: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    memcpy(&server_addr, res->ai_addr, res->ai_addrlen);
    server_addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void usage(FILE *to)
{
    fputs("usage: echo_load --port P [--host H] [--udp] [--connections N] "
          "[--size M]\n"
          "                 [--duration S] [--warmup S] [--drain S] "
          "[--connect-per-request]\n"
          "                 [--threads T] [--udp-timeout-ms MS] "
          "[--udp-retries R]\n"
          "                 [--source-addresses N] [--websocket]\n",
          to);
}

static bool parse_double(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= 0))
        return false;
    *out = v;
    return true;
}

static bool parse_int(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv)
{
    enum {
        OPT_HOST = 1000,
        OPT_PORT,
        OPT_UDP,
        OPT_CONNECTIONS,
        OPT_SIZE,
        OPT_DURATION,
        OPT_WARMUP,
        OPT_DRAIN,
        OPT_CPR,
        OPT_THREADS,
        OPT_UDP_TIMEOUT,
        OPT_UDP_RETRIES,
        OPT_SOURCE_ADDRESSES,
        OPT_WEBSOCKET,
    };
    static const struct option longopts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"udp", no_argument, NULL, OPT_UDP},
        {"connections", required_argument, NULL, OPT_CONNECTIONS},
        {"size", required_argument, NULL, OPT_SIZE},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"drain", required_argument, NULL, OPT_DRAIN},
        {"connect-per-request", no_argument, NULL, OPT_CPR},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"udp-timeout-ms", required_argument, NULL, OPT_UDP_TIMEOUT},
        {"udp-retries", required_argument, NULL, OPT_UDP_RETRIES},
        {"source-addresses", required_argument, NULL, OPT_SOURCE_ADDRESSES},
        {"websocket", no_argument, NULL, OPT_WEBSOCKET},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opt = (options){
        .host = "127.0.0.1",
        .connections = 50,
        .size = 64,
        .duration = 2.0,
        .warmup = 0.0,
        .drain = 0.5,
        .threads = 1,
        .udp_timeout_ms = 500,
        .udp_retries = 3,
        .source_addresses = 250,
    };
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case OPT_HOST:
            opt.host = optarg;
            break;
        case OPT_PORT:
            opt.port = optarg;
            break;
        case OPT_UDP:
            opt.udp = true;
            break;
        case OPT_CPR:
            opt.connect_per_request = true;
            break;
        case OPT_WEBSOCKET:
            opt.websocket = true;
            break;
        case OPT_CONNECTIONS:
            ok = parse_int(optarg, 1, 100000, &v);
            opt.connections = (int)v;
            break;
        case OPT_SIZE:
            ok = parse_int(optarg, 1, (long)MAX_TCP_SIZE, &v);
            opt.size = (size_t)v;
            break;
        case OPT_THREADS:
            ok = parse_int(optarg, 1, 256, &v);
            opt.threads = (int)v;
            break;
        case OPT_UDP_TIMEOUT:
            ok = parse_int(optarg, 1, 60000, &v);
            opt.udp_timeout_ms = (int)v;
            break;
        case OPT_UDP_RETRIES:
            ok = parse_int(optarg, 0, 1000, &v);
            opt.udp_retries = (int)v;
            break;
        case OPT_SOURCE_ADDRESSES:
            ok = parse_int(optarg, 0, 250, &v);
            opt.source_addresses = (int)v;
            break;
        case OPT_DURATION:
            ok = parse_double(optarg, &opt.duration);
            break;
        case OPT_WARMUP:
            ok = parse_double(optarg, &opt.warmup);
            break;
        case OPT_DRAIN:
            ok = parse_double(optarg, &opt.drain);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "echo_load: invalid value for --%s: '%s'\n",
                    longopts[c - OPT_HOST].name, optarg);
            return -1;
        }
    }
    if (optind != argc || !opt.port) {
        usage(stderr);
        return -1;
    }
    if (opt.udp && opt.connect_per_request) {
        fprintf(stderr, "echo_load: --connect-per-request is for TCP\n");
        return -1;
    }
    if (opt.websocket && (opt.udp || opt.connect_per_request)) {
        fprintf(stderr, "echo_load: --websocket is for persistent TCP\n");
        return -1;
    }
    if (opt.udp && opt.size > MAX_UDP_SIZE) {
        fprintf(stderr, "echo_load: --size: UDP allows at most %zu bytes\n",
                MAX_UDP_SIZE);
        return -1;
    }
    if (opt.duration <= 0) {
        fprintf(stderr, "echo_load: --duration must be positive\n");
        return -1;
    }
    if (opt.threads > opt.connections)
        opt.threads = opt.connections;
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0)
        return 2;
    if (resolve(opt.host, opt.port) < 0)
        return 1;

    int n = opt.connections;
    unsigned char frame[14];
    head_out = opt.websocket ? ws_header(frame, opt.size, true) : 0;
    head_in = opt.websocket ? ws_header(frame, opt.size, false) : 0;
    wire_out = head_out + opt.size;
    wire_in = head_in + opt.size;
    size_t per_slot = wire_out + 2 * wire_in + 1;
    slot *slots = calloc((size_t)n, sizeof *slots);
    worker *workers = calloc((size_t)opt.threads, sizeof *workers);
    unsigned char *buffers = malloc((size_t)n * per_slot);
    if (!slots || !workers || !buffers) {
        fprintf(stderr, "echo_load: out of memory\n");
        return 1;
    }
    counters setup = {0};
    for (int i = 0; i < n; i++) {
        slots[i] = (slot){.id = i, .fd = -1, .state = SLOT_IDLE};
        slots[i].out = buffers + (size_t)i * per_slot;
        slots[i].in = slots[i].out + wire_out;
        slots[i].expect = slots[i].out;
        if (opt.websocket) {
            slots[i].expect = slots[i].in + wire_in + 1;
            ws_header(slots[i].out, opt.size, true);
            ws_header(slots[i].expect, opt.size, false);
        }
        if (opt.connect_per_request)
            continue;
        int rc = open_persistent(&slots[i], &setup);
        if (rc < 0) {
            fprintf(stderr, "echo_load: connection %d: %s\n", i, strerror(-rc));
            return 1;
        }
    }
    for (int t = 0; t < opt.threads; t++) {
        workers[t].epfd = epoll_create1(EPOLL_CLOEXEC);
        workers[t].slots = calloc((size_t)n / opt.threads + 1, sizeof(slot *));
        if (workers[t].epfd < 0 || !workers[t].slots) {
            perror("echo_load: epoll");
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        worker *w = &workers[i % opt.threads];
        w->slots[w->nslots++] = &slots[i];
    }

    int64_t start = now_ns();
    measure_start_ns = start + (int64_t)(opt.warmup * 1e9);
    measure_end_ns = measure_start_ns + (int64_t)(opt.duration * 1e9);
    for (int t = 0; t < opt.threads; t++)
        if (pthread_create(&workers[t].thread, NULL, worker_main,
                           &workers[t]) != 0) {
            fprintf(stderr, "echo_load: cannot start thread %d\n", t);
            return 1;
        }
    counters total = setup;
    for (int t = 0; t < opt.threads; t++) {
        pthread_join(workers[t].thread, NULL);
        counters *c = &workers[t].count;
        total.round_trips += c->round_trips;
        total.errors += c->errors;
        total.mismatches += c->mismatches;
        total.timeouts += c->timeouts;
        total.stale += c->stale;
        total.connects += c->connects;
    }

    printf("echo_load proto=%s mode=%s connections=%d size=%zu threads=%d "
           "duration=%.3f round_trips=%" PRIu64 " rt_per_sec=%.1f "
           "errors=%" PRIu64 " mismatches=%" PRIu64 " timeouts=%" PRIu64
           " stale=%" PRIu64 " connects=%" PRIu64 "\n",
           opt.udp ? "udp" : opt.websocket ? "websocket" : "tcp",
           opt.udp                   ? "datagram"
           : opt.connect_per_request ? "connect-per-request"
                                     : "persistent",
           opt.connections, opt.size, opt.threads, opt.duration,
           total.round_trips, (double)total.round_trips / opt.duration,
           total.errors, total.mismatches, total.timeouts, total.stale,
           total.connects);
    for (int t = 0; t < opt.threads; t++) {
        close(workers[t].epfd);
        free(workers[t].slots);
    }
    free(workers);
    free(buffers);
    free(slots);
    return 0;
}
