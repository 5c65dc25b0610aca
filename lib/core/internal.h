/*
 * internal.h — what the library's files share and users never see.
 *
 * Naming: ss_ is public API (include/sockserv/sockserv.h), ss__ is internal
 * but shared between files here, static functions have no prefix.
 *
 * The two central structs live here:
 *  - ss_server: the listening socket, the three classes it was built from
 *    (kind, strategy, resolved handler), its transport, its config, and the wake-up
 *    eventfd that lets ss_shutdown() interrupt the serve loop at once.
 *  - ss_request: one connection or one datagram, with its read buffer,
 *    optional write buffer (or datagram reply), and the handler's state, all
 *    in one allocation.
 */
#ifndef SOCKSERV_INTERNAL_H
#define SOCKSERV_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include "proxy_protocol.h"
#include "sockserv/sockserv.h"
#include "sockserv/strategy.h"

/* The handler class with its base chain already walked: every pointer is
 * set, so the hot path never looks up a base. */
typedef struct ss__handler {
    int (*setup)(ss_request *req);
    int (*handle)(ss_request *req);
    int (*finish)(ss_request *req);
    size_t state_size;
    double timeout;
    size_t rbufsize;
    size_t wbufsize;
    bool disable_nagle_algorithm;
    double (*first_byte_timeout)(const ss_request *req);
    const void *class_data;
} ss__handler;

struct ss_server {
    ss_server_class kind; /* copied: the user's struct may go away */
    const ss_strategy *strategy;
    ss__handler handler;
    const ss_transport *transport; /* stream requests' bytes */
    void *transport_data;          /* the transport's, per server */
    ss_config config;

    int fd;                    /* listening / datagram socket, -1 closed */
    int wake_fd;               /* eventfd written by ss_shutdown() */
    atomic_int spare_fd;       /* reserved for EMFILE, see socket_kind.c;
                                  atomic: coroutine schedulers share it */
    bool listener_nodelay;     /* TCP_NODELAY set on fd, which Linux
                                  passes on to what accept() returns */
    bool input_stamped;        /* SO_TIMESTAMPNS on fd (input_time.c) */
    int deferred_fd;           /* datagram socket still used by requests
                                  after close; closed by ss_server_free */
    atomic_int requests_alive; /* ss_request objects not yet freed */
    int stop_fd; /* ss_server_set_stop_fd: readable = stop serving */
    struct sockaddr_storage address; /* requested, then the bound one */
    socklen_t address_len;
    bool bound;
    bool activated;
    bool closed;
    bool unlink_path; /* we created a Unix socket file */

    atomic_bool shutdown_requested;
    /* Set by ss_shutdown() until the next ss_serve_forever(): requests in
     * flight stop waiting for input (cancel_fd turns readable) and get
     * config.shutdown_grace seconds from shutdown_at to send answers. */
    atomic_bool stopping;
    _Atomic int64_t shutdown_at;
    int cancel_fd;
    /* In a forked child or prefork worker: the parent's cancel_fd, so the
     * parent's shutdown reaches requests running here too. -1 otherwise. */
    int parent_cancel_fd;
    /* ss_shutdown_wait() support: who is serving, and a condition to wait
     * on until they stop. */
    pthread_mutex_t serving_lock;
    pthread_cond_t serving_done;
    bool serving;
    pthread_t serving_thread;
    /* blocking_receive.c, under serving_lock: the requests that may block
     * in recv(), and whether the serve loop's end has shut their reading
     * down (none may start blocking after that). */
    ss_request *inflight;
    bool inflight_cancelled;
    /* In a child of ss_server_fork_request(): the parent holds a copy of
     * the connection and its shutdown cuts the input with it, so the
     * request may block in recv() (blocking_receive.c). */
    bool cut_by_parent;

    void *strategy_data;
    struct ss__limits *limits;   /* limits.c; NULL when there are none */
    ss__proxy_trust proxy_trust; /* config.proxy_trusted, parsed */
    /* The parking lot (parking.c); NULL until a loop that parks runs. */
    struct ss__lot *lot;
    /* Read before the transport opens and the handler runs, in the
     * request's own context (the PROXY header); NULL: nothing. Set by the
     * feature that needs it (proxy_request.c), so the core calls no
     * feature by name. */
    int (*preamble)(ss_request *req);
};

/* limits.c: what a request holds against max_connections and
 * max_connections_per_client, given back when it is freed (or, under
 * ss_forking, when its child is reaped). */
typedef struct ss__limit_ticket {
    bool counted;             /* one place under max_connections */
    bool per_client;          /* one under its client's maximum */
    unsigned char client[16]; /* that client: IPv6, IPv4 as ::ffff:a.b.c.d */
} ss__limit_ticket;

struct ss_request {
    ss_server *server;
    int fd; /* stream: the connection; datagram: the
               server socket (not ours to close) */
    bool is_datagram;
    bool truncated;
    bool nodelay_inherited; /* accepted from a TCP_NODELAY listener */
    bool eof; /* peer closed (stream) */
    /* input_time.c: the kernel's arrival stamp of the latest bytes
     * received (CLOCK_REALTIME ns; 0: not known). */
    int64_t input_time_ns;
    struct sockaddr_storage client_address;
    socklen_t client_address_len;
    double timeout; /* per-call I/O timeout, seconds */
    const ss_wait_class *wait_class;
    void *transport_data;

    void *state; /* handler state, inside this allocation */

    /* Read side: stream data buffered from the socket, or the datagram. */
    char *rbuf;
    size_t rbuf_size;
    size_t rpos; /* next unread byte */
    size_t rlen; /* bytes valid in rbuf */

    /* Write side: a stream's buffer (wbufsize > 0), or a datagram's reply,
     * grown on demand. */
    char *wbuf;
    size_t wbuf_size;
    size_t wlen;

    void *strategy_data; /* for strategies: per-request bookkeeping */
    /* request_io.c's own: the transport said its source was drained by
     * the last receive, so the next one waits first. */
    bool wait_before_recv;
    /* blocking_receive.c's: listed in server->inflight (so its recv() may
     * block), the socket's O_NONBLOCK cleared, its SO_RCVTIMEO (ns, 0:
     * none), and its place in the list. */
    bool may_block_recv;
    bool sock_blocking;
    int64_t rcvtimeo_ns;
    bool inflight_listed; /* in server->inflight (a child's is not) */
    ss_request *inflight_prev, *inflight_next;
    /* In the parent: listed only so that the serve loop's end can cut the
     * input of the child (this pid) that serves the connection; released
     * by ss_server_child_reaped(). */
    pid_t held_for_child;
    /* Parking (parking.c): setup has run (a parked request resumes at
     * handle), its deadline, its place in the lot's heap, and the lot its
     * socket is registered with. */
    bool started;
    bool transport_open; /* open_request ran: the transport close is due */
    bool park_calls_back; /* ss_park_until: handle runs at the deadline */
    int64_t park_deadline;
    size_t lot_index;
    struct ss__lot *registered_in;
    /* ss_request_set_base_data() */
    void *base_data;
    void (*base_free)(void *data);
    /* request_io.c's own, for a stall that spans calls: when the last wait
     * to send began, and, after a call returned a short count because
     * that wait timed out, the deadline the next waits to send keep (0:
     * none) — see send_cut_short(). */
    int64_t send_wait_began;
    int64_t send_stall_deadline;
    ss__limit_ticket limit;
    /* ss_request_set_error_detail(): why the request failed, in words,
     * for handle_error; malloc'ed, freed with the request. */
    char *error_detail;
    /* With config.proxy_protocol: the connection's own peer (the proxy),
     * once the header has replaced client_address. Length 0 before. */
    struct sockaddr_storage peer_address;
    socklen_t peer_address_len;
};

/* Largest UDP payload: a UDP reply may not grow past it (Unix datagram
 * replies may, up to 16 MiB; the kernel has the last word). */
#define SS__MAX_DATAGRAM 65507

/* places.c: what ss_places holds. */
struct ss_places {
    ss__limit_ticket ticket;
};

/* config.c: check the server's copy of its config, naming a bad field in
 * a log line (-EINVAL), and fill in the defaults its zeros stand for. */
int ss__config_resolve(ss_server *srv);
/* Log "sockserv: FIELD: WHY" and return -EINVAL (strategies' options
 * have their own public way: ss_server_log). */
int ss__config_refuse(const ss_server *srv, const char *field,
                      const char *why);

/* request.c */
int ss__request_new(ss_server *srv, ss_request **out);
void ss__request_free(ss_request *req);
/* After finish: flush a stream's buffer or send a datagram's reply. */
int ss__request_complete_io(ss_request *req);

/* handlers.c: walk the base chain; -EINVAL / -ELOOP for a bad class. */
int ss__handler_resolve(const ss_handler_class *cls, ss__handler *out);

/* socket_kind.c: the methods every kind shares */
int ss__socket_open(ss_server *srv);
/* socket_kind.c: the options set on the server's socket as soon as it is
 * made or adopted (and on each twin socket), before bind, so a user's
 * server_activate and the connections accepted inherit them:
 * config.input_timestamps and config.defer_accept. Neither fails the
 * server: an option the kernel refuses is reported through the log. */
void ss__socket_options(ss_server *srv);
/* input_time.c: SO_TIMESTAMPNS when config.input_timestamps asks and the
 * kind gives stamps (srv->input_stamped says whether it took). */
void ss__input_stamps_enable(ss_server *srv);
/* The arrival stamp a recvmsg() with ss__INPUT_CONTROL room returned, in
 * ns, or 0 when it carried none. */
int64_t ss__input_stamp_of(const struct msghdr *msg);
#define SS__INPUT_CONTROL CMSG_SPACE(sizeof(struct timespec))
int ss__server_bind_socket(ss_server *srv);
int ss__stream_server_activate(ss_server *srv);
/* The descriptor kept free for shedding connections at EMFILE. */
void ss__reserve_spare_fd(ss_server *srv);
/* A TCP listener whose handler disables Nagle's algorithm gets TCP_NODELAY
 * itself (srv->listener_nodelay), so the connections it accepts need no
 * setsockopt() each. */
void ss__listener_nodelay(ss_server *srv);
int ss__datagram_server_activate(ss_server *srv);
int ss__stream_get_request(ss_server *srv, ss_request *req);
int ss__datagram_get_request(ss_server *srv, ss_request *req);
void ss__stream_shutdown_request(ss_server *srv, ss_request *req);
void ss__stream_close_request(ss_server *srv, ss_request *req);
void ss__datagram_close_request(ss_server *srv, ss_request *req);
/* After finish: send a datagram request's reply (even when empty). */
int ss__datagram_send_reply(ss_request *req, int64_t deadline);
bool ss__default_verify_request(ss_server *srv, ss_request *req);
int ss__default_finish_request(ss_server *srv, ss_request *req);
void ss__default_handle_error(ss_server *srv, ss_request *req, int error);
void ss__default_handle_timeout(ss_server *srv);
void ss__default_service_actions(ss_server *srv);

/* parking.c (see there) */
typedef struct ss__lot ss__lot;
int ss__lot_create(ss_server *srv); /* ss_server_new: made, not open */
int ss__lot_open(ss_server *srv);  /* the loop starts: take connections */
void ss__lot_close(ss_server *srv); /* the loop stops: end every parked */
void ss__lot_free(ss_server *srv);  /* ss_server_free */
int ss__lot_fd(const ss_server *srv); /* readable: a parked one is ready */
int ss__lot_timeout_ms(const ss_server *srv); /* to the next deadline */
void ss__lot_service(ss_server *srv); /* resume the ready, end the late */
/* Park req (its park_deadline set): 0, or a negative errno when the lot
 * takes no connections (-ESHUTDOWN: not open or closing). */
int ss__lot_park(ss_server *srv, ss_request *req);
void ss__lot_forget_in_child(ss_server *srv);
void ss__request_unregister(ss_request *req);
/* request.c: end a request that is not running (parked): the handler's
 * finish if it had started, a report of error if non-zero, then
 * shutdown_request and free. */
void ss__request_end(ss_server *srv, ss_request *req, int error);

/* request_io.c: input the next read returns without waiting — buffered,
 * held inside the transport, or the end of the stream already seen. */
bool ss__request_has_input(const ss_request *req);
/* The request's input ended because the serve loop's shutdown(SHUT_RD)
 * cut it (a request that may block in recv(), on a stopping server), not
 * because the peer ended it: reads and waits report -ECANCELED. */
bool ss__input_cut_by_shutdown(const ss_request *req);
/* request_io.c: receive into buf through the server's transport, waiting
 * with the shutdown policy. */
ssize_t ss__request_receive(ss_request *req, void *buf, size_t n,
                            int64_t deadline);
/* The same through transport t: the PROXY header reader receives through
 * ss_plain_transport, since the header comes before any layer the
 * server's transport opens. */
ssize_t ss__request_receive_via(ss_request *req, const ss_transport *t,
                                void *buf, size_t n, int64_t deadline);
/* The wait of a request's I/O on its own socket, with the shutdown
 * policy: ss_request_wait() with its result. */
int ss__request_wait_io(ss_request *req, short events, int64_t deadline);
/* True on a thread that is running a request of srv right now. */
bool ss__running_request_of(const ss_server *srv);
/* Coroutine switches carry that mark with the coroutine: set it to srv and
 * return what it was. */
ss_server *ss__running_for_swap(ss_server *srv);

/* server.c: ss_server_new_sockaddr around a socket already bound to
 * address (socket_activation.c). Neither binds nor activates; on failure
 * fd is left open, on success the server owns it. */
int ss__server_new_adopted(ss_server **out, const ss_server_class *kind,
                           const ss_strategy *strategy, int fd,
                           const struct sockaddr *address,
                           socklen_t address_len,
                           const ss_handler_class *handler,
                           const ss_config *cfg);

/* blocking_receive.c: a recv() that blocks, for requests with a thread
 * of their own (see there). enter when the request starts running on a
 * thread (lists it if it may block); leave before its socket is closed or
 * handed on (handing_on: to the lot, which wants it non-blocking). */
void ss__inflight_enter(ss_server *srv, ss_request *req);
void ss__inflight_leave(ss_server *srv, ss_request *req, bool handing_on);
/* The serve loop ends on a shutdown: shutdown(SHUT_RD) every listed
 * request; none is listed after. With serving_lock held. */
void ss__inflight_cancel_locked(ss_server *srv);
/* ss_server_fork_request(): whether the child may block in recv() with
 * the parent holding req to cut its input; then, in the parent, hold it.
 * In a child just forked: close and free the parent's held copies. */
bool ss__can_hold_for_child(ss_server *srv, const ss_request *req);
void ss__hold_for_child(ss_server *srv, ss_request *req, pid_t pid);
void ss__held_copies_after_fork(ss_server *srv);
/* Release every held copy (the server closes). */
void ss__release_held_copies(ss_server *srv);
/* The server stops, here or (a child of ss_server_fork_request) in the
 * parent, whose cut then ended the input. */
bool ss__stopping_or_cut(ss_server *srv);
/* Receive into buf, blocking until deadline: the count, 0 at the end of
 * the stream, -ETIMEDOUT, -ECANCELED (the server stops), -EAGAIN (not
 * here: wait with poll() and use the transport), or a negative errno. */
ssize_t ss__blocking_receive(ss_request *req, void *buf, size_t n,
                             int64_t deadline);
/* ss_sendfile: sendfile() has no MSG_DONTWAIT; the socket must be
 * non-blocking again. */
void ss__request_before_sendfile(ss_request *req);

/* serve_loop.c */
/* The server is stopping (ss_shutdown(), or the parent's noticed in a
 * forked child): from now on requests wait for no input. */
void ss__mark_stopping(ss_server *srv);
/* What every wait of a request returns through: rc, after marking the
 * server stopping when rc is -ECANCELED. */
int ss__cancelled_wait(ss_request *req, int rc);
/* serve_forever's poll_interval in milliseconds: rounded up, 0.5 s when
 * not positive, capped at a day. */
int ss__poll_interval_ms(double seconds);

/* limits.c (see ss__limit_ticket above) */
int ss__limits_init(ss_server *srv); /* ss_server_new */
void ss__limits_destroy(ss_server *srv);
void ss__limits_after_fork(ss_server *srv);
/* Before accepting: take a place under max_connections into *ticket;
 * false (nothing taken) when the server is full. */
bool ss__limits_reserve(ss_server *srv, ss__limit_ticket *ticket);
/* After accept: a place under max_connections_per_client into req->limit,
 * or -EUSERS when the client has its maximum (-ENOMEM: no memory). */
int ss__limits_admit_client(ss_server *srv, ss_request *req);
/* Give back what ticket holds (idempotent); wakes the loops when that
 * makes room under max_connections. */
void ss__limits_release(ss_server *srv, ss__limit_ticket *ticket);
/* For tests: places taken under max_connections, and clients holding
 * places under max_connections_per_client. */
int ss__limits_running(const ss_server *srv);
int ss__limits_clients(const ss_server *srv);

/* proxy_request.c: check config.proxy_* (ss_server_new) and, when the
 * PROXY protocol is on, set srv->preamble to the header reader. */
int ss__proxy_configure(ss_server *srv);

/* signals.c */
void ss__signals_forget(ss_server *srv);
/* In a forking child: SIGINT/SIGTERM get the program's own dispositions
 * back, so a child dies of them as a Python ForkingMixIn child does. */
void ss__signals_reset_in_child(void);

/* http/access_log.c: the open access logs of the process around fork()
 * (ss_server_fork), as stdio is fflush(NULL)ed: before, every buffered
 * line is written; after_fork, in the child, drops the parent's lines and
 * locks (see the file). A forked child calls ss_access_log_flush_all()
 * before _exit(). */
void ss__access_logs_after_fork(void);


/* cooperative.c: SS_READY_FD when fd is ready for events right now (a
 * poll() that does not wait; an error or hangup counts), else 0. */
int ss__fd_ready_now(int fd, short events);


#endif /* SOCKSERV_INTERNAL_H */
