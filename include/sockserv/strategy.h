/**
 * @file strategy.h
 * For people who write a strategy or a transport: the two seams behind
 * every request, and what a strategy may ask of a server.
 *
 * A handler needs only sockserv.h. This header is the second one, as
 * libdill's libdillimpl.h is for socket implementers: the built-in
 * strategies ss_sync, ss_threading, ss_thread_pool, ss_forking and
 * ss_prefork are written against it and nothing else, so a strategy of
 * your own can do whatever they do. docs/strategies.md ("Writing a
 * strategy") walks through one; docs/architecture.md shows where each
 * seam sits.
 *
 * Three vtables meet in a request:
 *  - ss_strategy decides where a request runs (this thread, a new thread,
 *    a pool, a child process, a coroutine);
 *  - ss_wait_class decides how a request waits when its socket is not
 *    ready (poll() with a deadline, or parking a coroutine) — chosen by
 *    the strategy;
 *  - ss_transport moves a request's bytes (the plain socket, or a layer
 *    such as TLS) — chosen per server, independent of the strategy.
 * ss_read, ss_write_all, ss_sendfile… call the transport, and when it
 * says "would block", the wait class. That is how one handler source runs
 * under every strategy and every transport.
 */
#ifndef SOCKSERV_STRATEGY_H
#define SOCKSERV_STRATEGY_H

#include <pthread.h>

#include "sockserv/sockserv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Time
 * --------------------------------------------------------------------- */

/** The absolute deadline seconds from now (ss_now_ns() clock);
 * SS_NO_DEADLINE when seconds is 0 or negative. */
SS_API int64_t ss_deadline_after(double seconds);
/** Milliseconds until deadline, for poll(): -1 for SS_NO_DEADLINE, 0 once
 * it has passed, rounded up so a wait never ends early. */
SS_API int ss_poll_timeout_ms(int64_t deadline);
/** Online CPUs, at least 1 (the default size of pools and worker sets). */
SS_API int ss_cpu_count(void);

/* ------------------------------------------------------------------------
 * The wait seam: how a request waits (chosen by the strategy)
 * --------------------------------------------------------------------- */

/** How a request waits for a descriptor. Handlers never call it directly:
 * ss_read and friends do, after the transport said "would block", and so
 * do ss_sleep, ss_wait_fd and ss_wait_input_or_fd. */
struct ss_wait_class {
    const char *name; /**< "blocking", "coroutines", … — for messages */
    /** Wait until fd is ready for events (POLLIN and/or POLLOUT) or the
     * deadline (ss_now_ns() clock, or SS_NO_DEADLINE) passes. fd may be
     * -1: then only the deadline ends the wait (ss_sleep, ss_yield).
     * Returns 0 when ready (an error or hangup counts: the next call on fd
     * reports it), -ETIMEDOUT, or another negative errno.
     * When cancellable is true, a shutdown of the server ends the wait
     * with -ECANCELED — also one that starts while waiting, and (in a
     * forked child or prefork worker) the parent's: watch the descriptors
     * of ss_request_cancel_fds(). When false, only readiness and the
     * deadline end it (a request using its shutdown grace to send).
     * Contract the core relies on: a wait for POLLIN on the request's own
     * socket after a receive that came back short returns when more input
     * arrives — true of poll() (level-triggered) and of an edge-triggered
     * registration, since the short receive drained the socket. */
    int (*wait)(ss_request *req, int fd, short events, int64_t deadline,
                bool cancellable);
    /** Optional: run fn(arg) where blocking does no harm and return its
     * result (ss_run_blocking). NULL: call it right here, which is right
     * where a request has a thread or process of its own. */
    int (*run_blocking)(ss_request *req, int (*fn)(void *arg), void *arg);
    /** Optional: wait until the request's own stream socket has input
     * (POLLIN, or an error/hangup) or fd is ready for events, or the
     * deadline passes; always cancellable. Returns a mask of
     * SS_READY_INPUT and SS_READY_FD (never 0), -ETIMEDOUT, -ECANCELED or
     * another negative errno. The core has already looked at the
     * request's read buffer and the transport's pending bytes. The class
     * must not report SS_READY_INPUT unless the socket has input now (an
     * edge recorded earlier may be for input read since). NULL: the core
     * waits through wait() on the socket in slices of 10 ms and looks at
     * fd in between. */
    int (*wait_input_or_fd)(ss_request *req, int fd, short events,
                            int64_t deadline);
};

/** poll() on the descriptor and the cancel descriptors: what every
 * strategy that gives a request a thread or process of its own uses. */
SS_API extern const ss_wait_class ss_blocking_wait;

/** The descriptors a cancellable wait of req watches besides its own (they
 * turn readable when the server, or the parent process's server, shuts
 * down): fds[0] and fds[1], either -1 when absent. */
SS_API void ss_request_cancel_fds(const ss_request *req, int fds[2]);

/** For a strategy that runs some requests in a context of its own (the
 * coroutine strategy's coroutines): the wait class of this request
 * instead of the strategy's. Call before the request runs. */
SS_API void ss_request_set_wait_class(ss_request *req,
                                      const ss_wait_class *cls);

/* ------------------------------------------------------------------------
 * The transport seam: how a request's bytes move (chosen per server)
 * --------------------------------------------------------------------- */

/** Moves a stream request's bytes. Every call is non-blocking: when it
 * cannot go on it returns -EAGAIN and sets *want to POLLIN or POLLOUT
 * (a TLS layer may need to write while reading), and the core waits
 * through the wait class. EINTR is the transport's to retry. */
struct ss_transport {
    const char *name; /**< "plain", "tls", … — for messages */
    /** Optional: start the connection (a TLS handshake) in the request's
     * own context, before the handler runs, waiting with
     * ss_request_wait() until deadline (the request's timeout;
     * SS_NO_DEADLINE: none — a transport may set a shorter one of its
     * own). Returns 0, SS_EOF when the peer left before a byte, or a
     * negative errno (the request is then reported and closed without
     * running the handler; ss_request_set_error_detail() says why in
     * the report). Runs after the preamble (config.proxy_protocol's
     * header), which the core receives from the socket itself: bytes it
     * received past the header are in the request's read buffer, and a
     * transport that layers a protocol over the socket takes them first
     * (ss_request_take_buffered()); otherwise they are the handler's. */
    int (*open)(ss_request *req, int64_t deadline);
    /** Receive up to n (> 0) bytes. Returns the count, 0 at the end of the
     * stream, -EAGAIN with *want set, or a negative errno. On a count
     * shorter than n it may set *want to POLLIN to say "the source is
     * drained now": the next receive then waits before it calls (a
     * system call saved); leave *want 0 when unsure (a TLS record may hold
     * more than was asked for). */
    ssize_t (*recv)(ss_request *req, void *buf, size_t n, short *want);
    /** Send up to n (> 0) bytes: the count (maybe partial), -EAGAIN with
     * *want set, or a negative errno (-EPIPE…). Never raises SIGPIPE. */
    ssize_t (*send)(ss_request *req, const void *buf, size_t n, short *want);
    /** Optional: send up to n bytes of file fd from *offset (advanced),
     * like sendfile(2): the count, 0 at the end of the file, -EAGAIN with
     * *want set, -EINVAL or -ENOSYS when fd cannot be sent this way (the
     * core then reads and sends), or a negative errno. NULL: the core
     * always reads the file and sends through send(). */
    ssize_t (*sendfile)(ss_request *req, int fd, off_t *offset, size_t n,
                        short *want);
    /** Optional: bytes already received and held inside the transport (a
     * TLS layer's decrypted record), which a wait on the socket would not
     * see. NULL: none ever. */
    size_t (*pending)(const ss_request *req);
    /** Optional: end the connection's transport (a TLS close_notify)
     * before the socket is shut down; errors are ignored. Called for
     * every stream request that got as far as the preamble, also when
     * the preamble or open failed (free what open made, if anything). */
    void (*close)(ss_request *req, int64_t deadline);
};

/** The plain socket: recv(2), send(2) with MSG_NOSIGNAL, sendfile(2). The
 * default transport of every stream server. */
SS_API extern const ss_transport ss_plain_transport;

/** Use transport for the server's stream requests from now on (before
 * serving; the object must outlive the server). Returns 0, -EINVAL for
 * NULL or a transport without recv or send, -EOPNOTSUPP for a datagram
 * server (datagrams have no connection to carry a transport). */
SS_API int ss_server_set_transport(ss_server *srv,
                                   const ss_transport *transport);
/** The server's transport (ss_plain_transport unless set). */
SS_API const ss_transport *ss_server_transport(const ss_server *srv);
/** One pointer of per-server transport state, such as a TLS context
 * (NULL until set). */
SS_API void *ss_server_transport_data(const ss_server *srv);
/** Set what ss_server_transport_data() returns (before serving); never
 * freed by the library. */
SS_API void ss_server_set_transport_data(ss_server *srv, void *data);
/** Bytes the core has received on the request's connection and not yet
 * handed on: after the preamble, whatever arrived behind the PROXY header
 * (a TLS ClientHello). 0 for datagram requests. */
SS_API size_t ss_request_buffered(const ss_request *req);
/** Move up to size of those bytes into buf, for a transport's open that
 * must see them before it reads the socket; returns the count. Bytes
 * taken are no longer the handler's to read. */
SS_API size_t ss_request_take_buffered(ss_request *req, void *buf,
                                       size_t size);
/** One pointer of per-request transport state (NULL until set). */
SS_API void *ss_request_transport_data(const ss_request *req);
/** Set what ss_request_transport_data() returns; never freed by the
 * library: free it in close. */
SS_API void ss_request_set_transport_data(ss_request *req, void *data);

/** For transports: recv(2) on a stream request's socket (flags as there;
 * -1 with errno on failure; EOPNOTSUPP for a datagram request). With
 * config.input_timestamps it receives with recvmsg() and records the
 * kernel's arrival stamp of the bytes for ss_request_input_time(). A
 * transport should receive every byte through it: the time starts unknown
 * when the transport takes over the connection, and a receive made some
 * other way would leave it older than the bytes it brought. */
SS_API ssize_t ss_request_socket_recv(ss_request *req, void *buf, size_t n,
                                      int flags);

/** For transports: wait until the request's socket is ready for events,
 * through the request's wait class, with the shutdown policy of ss_read
 * and ss_write (while the server stops: no waiting for input, waiting to
 * send only for shutdown_grace). Returns 0, -ETIMEDOUT, -ECANCELED or
 * another negative errno. */
SS_API int ss_request_wait(ss_request *req, short events, int64_t deadline);

/* ------------------------------------------------------------------------
 * Strategies
 * --------------------------------------------------------------------- */

/** A concurrency strategy (Python's mix-ins). Copy one and change what you
 * need, or write your own against this header. */
struct ss_strategy {
    const char *name; /**< "sync", "thread", … — for messages */
    /** How its requests wait; NULL: ss_blocking_wait. */
    const ss_wait_class *wait_class;
    /** Optional: prepare per-server state (ss_server_new calls it, after
     * the socket is made and before it is bound). options is
     * ss_config.strategy_options as the user passed it (NULL: defaults):
     * the strategy's own options struct, which it validates here — name
     * the field in a ss_server_log() line and return -EINVAL when one is
     * out of range — and copies, as the user's may go away. */
    int (*init)(ss_server *srv, const void *options);
    /** Take ownership of an accepted, verified request and see that it is
     * run (ss_run_request) and released; return 0. Or return a negative
     * errno without taking it: the server reports it through handle_error
     * and closes the request — except -ESHUTDOWN (refused because the
     * server is stopping), which is closed without a report. */
    int (*process_request)(ss_server *srv, ss_request *req);
    /** Optional: periodic work, each loop iteration and on timeout. */
    void (*service_actions)(ss_server *srv);
    /** Optional: called by ss_server_close(), e.g. to wait for workers. */
    void (*server_close)(ss_server *srv);
    /** Optional: called by ss_server_free() after server_close: wait for
     * anything that still uses the server, then free strategy state. */
    void (*destroy)(ss_server *srv);
    /** Optional: replaces the serve loop (prefork runs a supervisor). It
     * must return when ss_shutdown() is called; ss_serve_core_loop() is
     * the default loop, for strategies that wrap it. */
    int (*serve_forever)(ss_server *srv, double poll_interval);
    /** What the default loop may keep in its parking lot — an epoll set
     * of connections waiting for input without a worker — a mask of
     * SS_PARK_NEW_CONNECTIONS and SS_PARK_IDLE_REQUESTS; 0: nothing (a
     * request waits where it runs, as under a thread or coroutine of its
     * own). A connection that turns readable comes back through
     * process_request (for an idle request, ss_run_request() then calls
     * handle again); one whose deadline passes, or that is still parked
     * when the loop stops, ends without a worker. */
    unsigned parking;
};

/** ss_strategy.parking: a new stream connection waits in the lot for its
 * first byte (or the handler class's timeout) before process_request. */
#define SS_PARK_NEW_CONNECTIONS 1u
/** ss_strategy.parking: a request whose handler returned ss_park() goes
 * back to the lot, and its worker is free for other requests. */
#define SS_PARK_IDLE_REQUESTS 2u

/* ---- the default loop and its pieces ---------------------------------- */

/** The loop ss_serve_forever() runs by default: poll the listening socket
 * and the wake-up descriptor, ss_server_accept_request() when a request
 * waits, pause after EMFILE & co., service actions every poll_interval. */
SS_API int ss_serve_core_loop(ss_server *srv, double poll_interval);

/** Accept (or receive) one request, run verify_request and the client
 * limits, and hand it to the strategy's process_request. Returns 0 once a
 * request was dispatched or refused, -EAGAIN when none was waiting (or the
 * server is at max_connections), or the error of accept itself (-EMFILE,
 * -ENFILE, -ENOBUFS, -ENOMEM: then see ss_accept_pause_update()). Safe to
 * call from several threads at once on one server. */
SS_API int ss_server_accept_request(ss_server *srv);

/** A loop's pause after accepting failed for want of descriptors or
 * memory (the listening socket stays readable, so polling it again at
 * once would spin). Zero-initialise one per loop. */
typedef struct ss_accept_pause {
    int64_t until;    /**< ss_now_ns() time the pause ends; 0: none */
    int64_t delay_ns; /**< the current pause; 0: no episode */
} ss_accept_pause;
/** After each ss_server_accept_request(), with what it returned: starts or
 * doubles the pause (10 ms up to 500 ms, one log line per episode) on
 * -EMFILE, -ENFILE, -ENOBUFS, -ENOMEM; a success ends the episode. */
SS_API void ss_accept_pause_update(ss_server *srv, ss_accept_pause *pause,
                                   int rc);
/** Milliseconds the pause has yet to run; 0 when accepting may resume. */
SS_API int ss_accept_pause_left_ms(ss_accept_pause *pause);

/** True while the server is at config.max_connections: a loop then leaves
 * the listening socket alone; the wake-up descriptor turns readable when
 * a request ends. */
SS_API bool ss_server_at_capacity(const ss_server *srv);

/* ---- requests ---------------------------------------------------------- */

/** Run the request's PROXY header read (config.proxy_protocol), transport
 * open and handler (finish_request), report a failure through handle_error
 * (not one caused by shutdown), then shut the request down and free it.
 * Returns the request's result: 0, or the error that was reported — a
 * forked child's exit status. */
SS_API int ss_run_request(ss_server *srv, ss_request *req);

/** Release a request without running it: its transport's close if it
 * ran before (a request a lot handed back, its TLS connection open),
 * shutdown_request, then free. */
SS_API void ss_drop_request(ss_server *srv, ss_request *req);

/** The parent's side of a request that a child process now serves: close
 * its descriptor without a shutdown() (close_request; a shutdown would end
 * the child's connection too) and free it. */
SS_API void ss_close_request_copy(ss_server *srv, ss_request *req);

/** True for a datagram request (it answers through the server's socket). */
SS_API bool ss_request_is_datagram(const ss_request *req);

/** One pointer of per-request strategy state (NULL until set). */
SS_API void *ss_request_strategy_data(const ss_request *req);
/** Set what ss_request_strategy_data() returns; never freed by the
 * library. */
SS_API void ss_request_set_strategy_data(ss_request *req, void *data);

/** The places a request holds under max_connections and
 * max_connections_per_client. A request gives them back when it is freed;
 * a forking strategy takes them off the request before fork() and gives
 * them back when the child is reaped, so the limits count children. */
typedef struct ss_places ss_places;
/** Take req's places (NULL when it holds none, or when no memory could be
 * had: then they are given back at once). */
SS_API ss_places *ss_request_take_places(ss_request *req);
/** Give places back to srv and free them. NULL places: nothing; NULL srv:
 * only free them (in a forked child, where they are the parent's). */
SS_API void ss_places_release(ss_server *srv, ss_places *places);

/* ---- the server, for strategies ----------------------------------------- */

/** One pointer of per-server strategy state (NULL until set). */
SS_API void *ss_server_strategy_data(const ss_server *srv);
/** Set what ss_server_strategy_data() returns; the library never frees it. */
SS_API void ss_server_set_strategy_data(ss_server *srv, void *data);
/* ss_server_shutdown_requested(), in sockserv.h: true once ss_shutdown()
 * was called, until the loop has returned. */
/** A descriptor that turns readable on ss_shutdown() and when a place
 * under max_connections frees up. Poll it beside your own. */
SS_API int ss_server_wake_fd(const ss_server *srv);
/** Empty the wake-up descriptor (after a wake-up that was not a shutdown,
 * e.g. left over from an earlier run). */
SS_API void ss_server_drain_wake_fd(ss_server *srv);
/** Wait on cond (lock held) until signalled or a shutdown is requested:
 * a backpressure wait that must not delay a shutdown. Returns false when
 * the server is shutting down. (ss_shutdown() may run in a signal handler
 * and cannot signal a condition variable, so this looks every 20 ms.) */
SS_API bool ss_server_cond_wait(ss_server *srv, pthread_cond_t *cond,
                                pthread_mutex_t *lock);
/** The serve loop also stops (as after ss_shutdown()) when fd turns
 * readable: a prefork worker's stop pipe from its supervisor. -1: none. */
SS_API void ss_server_set_stop_fd(ss_server *srv, int fd);
/** Make fd the server's listening (or datagram) socket and return the one
 * it had, which is now the caller's (a forked child closes it, -1 to have
 * none; a prefork worker takes its own SO_REUSEPORT socket). */
SS_API int ss_server_swap_fd(ss_server *srv, int fd);
/** Another socket like the server's own: same family and type, bound to
 * the server's address through the kind's server_bind and
 * server_activate (an SO_REUSEPORT group: allow_reuse_port). On success
 * *fd is the caller's. */
SS_API int ss_server_open_twin_socket(ss_server *srv, int *fd);
/** config.allow_reuse_port, from a strategy's init: it applies to the
 * server's own socket when the server binds it (not to a socket already
 * bound, such as one given to ss_server_new_fd()) and to every socket
 * ss_server_open_twin_socket() makes. */
SS_API void ss_server_set_allow_reuse_port(ss_server *srv, bool on);
/** Python's server.timeout: the wait of ss_handle_request() (0: none). */
SS_API void ss_server_set_timeout(ss_server *srv, double seconds);
/** Replace the strategy in a forked worker that is to serve as an ordinary
 * server (prefork): destroys nothing, clears the strategy data and runs
 * the new strategy's init with options. Returns what init returns. */
SS_API int ss_server_switch_strategy(ss_server *srv,
                                     const ss_strategy *strategy,
                                     const void *options);
/** A line to config.log, or to stderr in one write(). */
SS_API void ss_server_log(const ss_server *srv, const char *line);

/* ---- threads and processes ---------------------------------------------- */

/** pthread_create with a stack size (0: the system's) and detached or
 * joinable. Returns 0 or a negative errno (-EAGAIN: no thread). */
SS_API int ss_thread_start(pthread_t *thread, size_t stack_size,
                           bool detached, void *(*fn)(void *arg), void *arg);

/** ss_server_fork() flag: the child keeps the handlers of
 * ss_shutdown_on_signals(), so SIGINT/SIGTERM stop its server gracefully
 * (a prefork worker) instead of ending it as they end the program. */
#define SS_FORK_KEEP_SIGNALS 1

/** fork() for a strategy: stdio flushed first (so buffers are not written
 * twice), and in the child the server is made its own — its own wake-up
 * and cancel descriptors (the parent's shutdown still cancels the child's
 * waits, the child's cancels nothing in its siblings), limits counted
 * afresh, the Unix socket file left to the parent, and (unless flags has
 * SS_FORK_KEEP_SIGNALS) SIGINT and SIGTERM back to the program's own
 * dispositions, so Ctrl-C ends a child as Python's ForkingMixIn's.
 * Returns the child's pid in the parent, 0 in the child, or a negative
 * errno. */
SS_API pid_t ss_server_fork(ss_server *srv, int flags);

/** ss_server_fork() for a child that serves one request, req, of the
 * serving loop (ss_forking's way). In the child it returns 0, and req is
 * the child's to run. In the parent it returns the child's pid, and req
 * is no longer the caller's, as after ss_close_request_copy(): where it
 * can (a stream request over the plain transport, the loop serving), the
 * library keeps the parent's copy of the connection until
 * ss_server_child_reaped() names the child, and the loop's end on a
 * shutdown cuts the child's input with it (shutdown(SHUT_RD)). The
 * child's reads may then block in recv() — one system call each where
 * poll() + recv() were two — and still end at once at a shutdown, with
 * -ECANCELED. A negative errno if fork() failed (req is still the
 * caller's then). */
SS_API pid_t ss_server_fork_request(ss_server *srv, ss_request *req, int flags);
/** The child pid that ss_server_fork_request() returned has been reaped:
 * the parent's copy of its connection, if it kept one, is closed. The
 * ss_children functions that reap call it for you; nothing happens for a
 * pid that holds nothing. */
SS_API void ss_server_child_reaped(ss_server *srv, pid_t pid);

/** The child processes of a strategy, watched through pidfds where the
 * kernel has them, so waits wake at once and only our own children are
 * reaped (a program's other children keep their exit status). Zero-
 * initialise; one thread uses it. */
typedef struct ss_child {
    pid_t pid;          /**< the child */
    int pidfd;          /**< -1 where the kernel has no pidfd_open */
    int64_t started_ns; /**< ss_now_ns() when it was added */
    ss_places *places;  /**< given back when it is reaped */
} ss_child;
/** A set of child processes (see ss_child). */
typedef struct ss_children {
    ss_child *items; /**< count children, in no particular order */
    int count;       /**< children not yet reaped */
    int capacity;    /**< allocated items */
    ss_server *server; /**< where places are given back */
} ss_children;
/** Track a child just forked, holding places (may be NULL). -ENOMEM if it
 * cannot be tracked (places are then the caller's). */
SS_API int ss_children_add(ss_children *c, pid_t pid, ss_places *places);
/** Reap one finished child without blocking: 1 (its record and wait
 * status into child and status, either may be NULL) or 0 if none. */
SS_API int ss_children_reap_one(ss_children *c, ss_child *child, int *status);
/** Reap every finished child without blocking. */
SS_API void ss_children_reap_finished(ss_children *c);
/** Block until one of the children may have exited (0), extra_fd (-1:
 * none) is readable (1), or deadline passes (-ETIMEDOUT). */
SS_API int ss_children_wait_any(ss_children *c, int extra_fd,
                                int64_t deadline);
/** Block until every child has exited, reaping them. */
SS_API void ss_children_wait_all(ss_children *c);
/** Send signo to every child. */
SS_API void ss_children_signal_all(ss_children *c, int signo);
/** In a child just forked: drop the parent's records (closes the inherited
 * pidfds, reaps nothing, gives no places back). */
SS_API void ss_children_forget(ss_children *c);
/** Free the records (reaps nothing; call ss_children_wait_all first). */
SS_API void ss_children_free(ss_children *c);

#ifdef __cplusplus
}
#endif

#endif /* SOCKSERV_STRATEGY_H */
