/**
 * @file
 * libsockserv — Python's socketserver, in C.
 *
 * A server is built from three independent parts, each a "class": a const
 * struct of function pointers.
 *
 *   server kind   ss_server_class   TCP, UDP, Unix stream, Unix datagram
 *   strategy      ss_strategy       how requests run: synchronously (ss_sync)
 *                                   and, as they land, forking, threading…
 *   handler       ss_handler_class  your setup / handle / finish
 *
 * plus an ss_config with Python's option names. Any kind combines with any
 * strategy and any handler.
 *
 * "Subclassing" is copying a const class struct and overriding pointers; an
 * override may call the base entry, exactly like super():
 *
 *     static bool only_local(ss_server *srv, ss_request *req)
 *     {
 *         return is_loopback(ss_request_client_address(req, NULL)) &&
 *                ss_tcp.verify_request(srv, req);
 *     }
 *     ss_server_class my_tcp = ss_tcp;   // copy
 *     my_tcp.verify_request = only_local; // override
 *
 * Conventions, for every function in this header unless it says otherwise:
 *  - Errors are values: 0 or a count on success, a negative errno value on
 *    failure (-EADDRINUSE, -EINVAL, -ETIMEDOUT…). ss_strerror() names them.
 *  - One integer type for "a count or an error": int, which is also what
 *    a handler returns, so `int n = ss_read(...); … return n < 0 ? n : 0;`
 *    needs no cast. One I/O call moves at most SS_IO_MAX bytes.
 *  - Nothing here calls exit(), aborts on bad input, changes signal
 *    dispositions (except ss_shutdown_on_signals(), which you call, and
 *    ss_coroutines' SIGSEGV stack-overflow reporter: see
 *    ss_coroutine_options.no_overflow_report) or prints, except the
 *    default handle_error, the optional log hook and that reporter's line.
 *  - Times are in seconds as doubles, like Python; 0 means "no timeout".
 *  - Request functions (ss_read, ss_write…) are called from the handler that
 *    owns the request, on the thread running it; they are not thread-safe
 *    for one request, and independent requests need no locking.
 */
#ifndef SOCKSERV_SOCKSERV_H
#define SOCKSERV_SOCKSERV_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SS_BUILDING_LIBRARY) && defined(__GNUC__)
#define SS_API __attribute__((visibility("default")))
#else
#define SS_API
#endif

#if defined(__GNUC__)
#define SS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SS_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------
 * Version. The macros give the version of this header, the functions the
 * version of the library actually loaded; docs/abi.md says what changes
 * between versions. (These three lines are the version's source of truth:
 * CMake refuses to configure when project(VERSION) disagrees.)
 * --------------------------------------------------------------------- */

#define SS_VERSION_MAJOR 0 /**< Changes when the ABI breaks (the SONAME). */
#define SS_VERSION_MINOR 1 /**< Changes when API is added, compatibly. */
#define SS_VERSION_PATCH 0 /**< Changes for fixes only. */

/** One number for a version, so versions compare with < and >:
 * major << 16 | minor << 8 | patch (each part below 256). Usable in `#if`. */
#define SS_VERSION_ENCODE(major, minor, patch)                                 \
    ((major)*65536u + (minor)*256u + (patch))
/** The version of this header as one number (SS_VERSION_ENCODE). */
#define SS_VERSION_NUMBER                                                      \
    SS_VERSION_ENCODE(SS_VERSION_MAJOR, SS_VERSION_MINOR, SS_VERSION_PATCH)
/** True when this header is version major.minor.patch or later, for code
 * that uses a newer call only where it exists:
 * `#if SS_VERSION_AT_LEAST(0, 2, 0)`. */
#define SS_VERSION_AT_LEAST(major, minor, patch)                               \
    (SS_VERSION_NUMBER >= SS_VERSION_ENCODE(major, minor, patch))
#define SS__STRINGIFY(x) #x
#define SS__VERSION_TEXT(a, b, c)                                              \
    SS__STRINGIFY(a) "." SS__STRINGIFY(b) "." SS__STRINGIFY(c)
/** The version of this header as text, "MAJOR.MINOR.PATCH" ("0.1.0"). */
#define SS_VERSION_STRING                                                      \
    SS__VERSION_TEXT(SS_VERSION_MAJOR, SS_VERSION_MINOR, SS_VERSION_PATCH)

/** The version of the library the program runs with, as SS_VERSION_NUMBER
 * was when the library was built. It may be newer than the header the
 * program was compiled with (same major version: see docs/abi.md). */
SS_API unsigned ss_version(void);
/** The library's version as text, "MAJOR.MINOR.PATCH" in decimal; a
 * static string. */
SS_API const char *ss_version_string(void);

typedef struct ss_server ss_server;   /**< A server: ss_server_new(). */
typedef struct ss_request ss_request; /**< One request, lent to a handler. */
/** A server kind: Python's TCPServer, UDPServer… (see below). */
typedef struct ss_server_class ss_server_class;
/** A concurrency strategy: Python's mix-ins and more (see below). */
typedef struct ss_strategy ss_strategy;
/** A request handler class: setup, handle, finish (see below). */
typedef struct ss_handler_class ss_handler_class;
/** How a request waits for its socket (sockserv/strategy.h). */
typedef struct ss_wait_class ss_wait_class;
/** How a request's bytes move: plain socket, TLS… (sockserv/strategy.h). */
typedef struct ss_transport ss_transport;
/** Every tunable of a server, with Python's names (see below). */
typedef struct ss_config ss_config;

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

/** Returned by a handle() that parked its connection (ss_park()). */
#define SS_PARK (-4093)

/** Returned by ss_read_exact() when the peer closed before the requested
 * number of bytes arrived. Outside the errno range, like libuv's UV_EOF. */
#define SS_EOF (-4095)

/** Returned by ss_handle_request() once a shutdown was requested
 * (ss_shutdown(), or SIGINT/SIGTERM with ss_shutdown_on_signals()): the
 * way out of a handle_request loop, as KeyboardInterrupt leaves Python's.
 * Outside the errno range, like SS_EOF. */
#define SS_SHUTDOWN (-4094)

/** The most bytes one I/O call (ss_read, ss_write, ss_sendfile, and the
 * HTTP handler's) moves or accepts, so that every count fits the int the
 * call returns: INT_MAX. Calls that may move fewer bytes than asked
 * (ss_read, ss_write, ss_sendfile…) move at most this many; calls that
 * must move all (ss_read_exact, ss_write_all, ss_http_write) refuse more
 * with -EINVAL. Linux's read() and write() move at most 0x7ffff000 bytes
 * a call anyway. */
#define SS_IO_MAX INT_MAX

/** A static, thread-safe description of an error code returned by this
 * library (a negative errno value or SS_EOF). Never NULL. */
SS_API const char *ss_strerror(int error);

/* ------------------------------------------------------------------------
 * Configuration (Python's names where Python has one)
 * --------------------------------------------------------------------- */

/** Receives every line the library would otherwise print to stderr (the
 * default handle_error's report), without the trailing newline. May be
 * called from any thread that runs requests. */
typedef void (*ss_log_fn)(void *user, const char *line);

/** ss_config.proxy_protocol: the PROXY protocol headers accepted. */
#define SS_PROXY_V1 1  /**< text: "PROXY TCP4 src dst sport dport\r\n" */
#define SS_PROXY_V2 2  /**< binary, with its 12-byte signature */
#define SS_PROXY_ANY 3 /**< either, told apart by the first byte */

struct ss_config {
    /** listen() backlog. 0 (default): SOMAXCONN (Python: 5). */
    int request_queue_size;
    /** SO_REUSEADDR before bind. Default false, as in Python's TCPServer
     * (http.server's HTTPServer sets it true; so do our examples). */
    bool allow_reuse_address;
    /** SO_REUSEPORT before bind. Default false. */
    bool allow_reuse_port;
    /** Python's bind_and_activate=False: ss_server_new() neither binds nor
     * listens, and the caller calls ss_server_bind() and
     * ss_server_activate() itself, e.g. after setting socket options on
     * ss_server_fileno(). Default false: bound and listening on return. */
    bool no_bind_and_activate;
    /** For IPv6 addresses: IPV6_V6ONLY. Default false, so "[::]:PORT" is
     * dual-stack and also accepts IPv4 clients. Set explicitly either way,
     * so the system default (net.ipv6.bindv6only) never decides. */
    bool ipv6_only;
    /** Seconds ss_handle_request() waits before calling handle_timeout.
     * 0 (default): wait forever (Python: None); ss_forking: 300, as
     * Python's ForkingMixIn. */
    double timeout;
    /** Largest datagram received in one request (UDP, Unix datagram).
     * 0 (default): 8192. Larger datagrams are cut and flagged:
     * ss_request_truncated() tells the handler. At most 16 MiB. */
    size_t max_packet_size;
    /** Remove the Unix socket's file when the server closes. Default false,
     * as in Python (which never removes it). Abstract names have no file. */
    bool unlink_on_close;
    /** Where report lines go instead of stderr; NULL = stderr. */
    ss_log_fn log;
    /** After ss_shutdown(), requests still running stop waiting for input
     * at once (their reads fail with -ECANCELED, which is not reported as
     * an error), and may spend this many seconds sending answers before
     * their writes fail with -ECANCELED too. So Ctrl-C never waits for an
     * idle client, and an answer in progress is not cut short. 0
     * (default): 5 s; SS_NO_GRACE (any negative value): none; at most
     * 1e6. The state lasts until the next ss_serve_forever(), so
     * ss_handle_request() after a shutdown sees it too. */
    double shutdown_grace;
    /** Ask the kernel to stamp each arriving packet (SO_TIMESTAMPNS on
     * the server's socket, which TCP connections inherit) and keep the
     * stamp of the latest bytes each request received:
     * ss_request_input_time(). Receives then use recvmsg(). TCP, UDP and
     * Unix datagram servers; Unix stream sockets give no stamps. A kernel
     * that refuses the option is reported through config.log, and the
     * times are then not known. Default false. */
    bool input_timestamps;
    /** TCP servers: seconds the kernel may keep a new connection to
     * itself until the client's first bytes arrive (TCP_DEFER_ACCEPT), so
     * that accept() hands over connections with something to read. For
     * protocols where the client speaks first (HTTP, TLS, the PROXY
     * protocol); it saves a wake-up and a receive that would find nothing
     * on every connection. A client that sends nothing is handed over
     * after about this long (the kernel rounds up to its SYN-ACK
     * retransmissions), so verify_request and the handler's timeouts see
     * it that much later. Whole seconds: a fraction rounds up. Set on the
     * socket when it is made (and on prefork's sockets per worker), so a
     * server_activate of your own keeps it; an adopted socket
     * (ss_server_new_fd) that already has a defer time keeps its own. A
     * kernel that refuses it is reported through config.log and the
     * server accepts at once. 0 (default): off; at most 3600; ignored by
     * the other kinds. */
    double defer_accept;

    /* --- limits (docs/reliability-resources.md) ----------------------- */
    /** Most requests running at once, counted from accept until the
     * request is freed (under ss_forking: until its child is reaped);
     * 0 (default) = no limit. At the limit the server stops accepting:
     * new connections wait in the kernel's listen backlog (datagrams in
     * the socket's receive buffer) until a request ends — backpressure,
     * not refusal. Every strategy; ss_prefork: per worker process. */
    int max_connections;
    /** Most requests running at once per client IP address (the port
     * does not count; an IPv4 client is the same client on a dual-stack
     * socket); 0 (default) = no limit. A new connection or datagram from
     * a client at its maximum is not handled: handle_error gets -EUSERS
     * (the default prints one line; an override may answer first, e.g.
     * an HTTP 503 through ss_write_all(), or stay quiet), then it is
     * closed. Not applied to Unix sockets, whose peers have no address.
     * With proxy_protocol the address counted is the proxy's (the header
     * is read later). ss_prefork: per worker process. */
    int max_connections_per_client;

    /* --- the strategy's own options ------------------------------------ */
    /** The strategy's options struct, as Python keeps daemon_threads on
     * ThreadingMixIn and max_children on ForkingMixIn: a pointer to an
     * ss_threading_options for ss_threading, ss_thread_pool_options for
     * ss_thread_pool, ss_forking_options, ss_prefork_options or
     * ss_coroutine_options — the one that fits the strategy the server is
     * made with. NULL (default): that strategy's defaults. The strategy
     * copies it in ss_server_new(); it need not outlive that call. */
    const void *strategy_options;

    /* --- behind a load balancer: the PROXY protocol -------------------- */
    /** Stream kinds: every connection starts with a PROXY protocol header
     * (HAProxy's send-proxy / send-proxy-v2, nginx's "proxy_protocol on"),
     * read before the handler runs, in the request's own thread, process
     * or coroutine; ss_request_client_address() is then the client the
     * header names and ss_request_peer_address() the proxy. 0 (default):
     * off; SS_PROXY_V1, SS_PROXY_V2 or SS_PROXY_ANY. A connection whose
     * header is malformed, of a version not enabled, incomplete after
     * proxy_protocol_timeout, or from a peer not in proxy_trusted is
     * closed without running the handler and reported through
     * handle_error (-EPROTO, -ETIMEDOUT, -EACCES); one that closes before
     * sending a byte (a TCP health check) is closed quietly. A v2 LOCAL
     * header (the proxy's own check) and v1 "UNKNOWN" keep the
     * connection's own address. verify_request runs before the header is
     * read, so it sees the proxy. Datagram kinds: ss_server_new() returns
     * -EOPNOTSUPP. */
    int proxy_protocol;
    /** Seconds the whole header may take to arrive; 0 (default): 5. At
     * most 1e6: a client that sends nothing holds a worker no longer —
     * under ss_sync, the server. */
    double proxy_protocol_timeout;
    /** Who may send the header: addresses and networks separated by commas
     * or spaces ("127.0.0.1, 10.0.0.0/8, ::1"; "unix" for any Unix-socket
     * peer), at most 32; IPv4 entries match IPv4-mapped IPv6 peers too.
     * Other peers are refused before a byte is read. NULL (default):
     * every peer — then make sure only the proxy can reach the socket.
     * Parsed by ss_server_new(); the string need not outlive that call. */
    const char *proxy_trusted;

    /** Your context, the server's: ss_request_user(req) in a handler,
     * ss_server_user(srv), and ss_http_server_user(h) in an HTTP callback.
     * The HTTP handler has a context of its own, ss_http_config.user
     * (ss_http_config_user(h)); the two are separate pointers. */
    void *user;
};

/** shutdown_grace: no grace at all (0 means the default, 5 s). */
#define SS_NO_GRACE (-1.0)

/** Fill *cfg with the defaults listed above: all zero, so
 * `ss_config cfg = {0};` (or designated initialisers naming only what you
 * change, or NULL for cfg) is the same config. Kept for clarity. */
SS_API void ss_config_init(ss_config *cfg);

/* ------------------------------------------------------------------------
 * Server kinds (Python: TCPServer, UDPServer, UnixStreamServer,
 * UnixDatagramServer). Copy one to override its methods.
 * --------------------------------------------------------------------- */

struct ss_server_class {
    const char *name; /**< "TCPServer", … — for messages */
    int family;       /**< AF_UNIX, or AF_UNSPEC: taken from the address */
    int socket_type;  /**< SOCK_STREAM or SOCK_DGRAM */

    /** Create nothing; bind the already created socket to the address and
     * record the real address (port 0 → the port the system chose). */
    int (*server_bind)(ss_server *srv);
    /** listen() for stream kinds; nothing for datagram kinds. */
    int (*server_activate)(ss_server *srv);
    /** Accept one connection (stream) or receive one datagram into req.
     * Returns 0, -EAGAIN if nothing is waiting, or another negative errno. */
    int (*get_request)(ss_server *srv, ss_request *req);
    /** Return false to refuse the request: it is then shut down, unhandled.
     * Default: true. */
    bool (*verify_request)(ss_server *srv, ss_request *req);
    /** Run the handler class on the request: setup, handle, finish (finish
     * runs even when handle fails). Returns 0 or the first failure. */
    int (*finish_request)(ss_server *srv, ss_request *req);
    /** Called once when a request fails (error is the handler's non-zero
     * return, or a negative errno from the library). Default: one report
     * line naming the client to stderr or to config.log. */
    void (*handle_error)(ss_server *srv, ss_request *req, int error);
    /** Called by ss_handle_request() when config.timeout passes with no
     * request. Default: nothing. */
    void (*handle_timeout)(ss_server *srv);
    /** Called once per ss_serve_forever() loop iteration. Default: nothing.
     * (The strategy's own periodic work, such as reaping children, runs
     * regardless of this hook — no super() call needed.) */
    void (*service_actions)(ss_server *srv);
    /** End a request: stream kinds shut the connection down for writing
     * and close it; datagram kinds have nothing to close. */
    void (*shutdown_request)(ss_server *srv, ss_request *req);
    /** Release the request's descriptor without a shutdown(). */
    void (*close_request)(ss_server *srv, ss_request *req);
};

SS_API extern const ss_server_class ss_tcp;           /**< TCPServer */
SS_API extern const ss_server_class ss_udp;           /**< UDPServer */
SS_API extern const ss_server_class ss_unix_stream;   /**< UnixStreamServer */
SS_API extern const ss_server_class ss_unix_datagram; /**< UnixDatagramServer */

/* ------------------------------------------------------------------------
 * Strategies (Python's mix-ins) and their options. Writing one of your
 * own: sockserv/strategy.h
 * --------------------------------------------------------------------- */

/** Monotonic clock in nanoseconds; deadlines below are absolute values of
 * it. SS_NO_DEADLINE means wait forever. */
#define SS_NO_DEADLINE INT64_C(-1)
SS_API int64_t ss_now_ns(void); /**< CLOCK_MONOTONIC now, in ns. */


/* Each strategy's own options, passed as ss_config.strategy_options. Every
 * field's zero is its default (Python's where Python has one): a bool whose
 * Python default is true appears negated, with no_ before Python's name.
 * A value out of range makes ss_server_new() return -EINVAL after a log
 * line that names the field. */

/** ss_threading's options (Python's ThreadingMixIn attributes). */
typedef struct ss_threading_options {
    /** ss_server_close() does not wait for request threads.
     * ss_server_free() still waits, because they use the server; it is
     * process exit that ends them, as in Python. Default false. */
    bool daemon_threads;
    /** Python's block_on_close = False: ss_server_close() does not wait for
     * (non-daemon) threads. Default false: it waits. */
    bool no_block_on_close;
    /** Most request threads at once; 0 (default) = unbounded (Python). At
     * the limit the loop waits for a thread to finish (backpressure). */
    int max_threads;
    /** Stack size of each thread in bytes; 0 (default) = the system's. */
    size_t thread_stack_size;
} ss_threading_options;

/** ss_thread_pool's options. */
typedef struct ss_thread_pool_options {
    /** Worker threads; 0 (default) = twice the CPU count. */
    int pool_size;
    /** Accepted requests waiting for a worker; 0 (default) = 4 ×
     * pool_size. When full, the loop waits for room (backpressure) — or,
     * with refuse_when_full, closes the new connection at once. */
    int queue_size;
    bool refuse_when_full; /**< Full queue: refuse, do not wait. */
    /** Start all workers in ss_server_new() (false, the default: start
     * them as requests arrive). */
    bool eager_start;
    /** Stack size of each worker in bytes; 0 (default) = the system's. */
    size_t thread_stack_size;
} ss_thread_pool_options;

/** ss_forking's options (Python's ForkingMixIn attributes). */
typedef struct ss_forking_options {
    /** Most children at once; at the limit the loop waits for one to exit
     * before accepting more. 0 (default): 40, Python's. */
    int max_children;
    /** Python's block_on_close = False: ss_server_close() does not wait
     * for running children. Default false: it waits. */
    bool no_block_on_close;
} ss_forking_options;

/** ss_prefork's options. */
typedef struct ss_prefork_options {
    /** Worker processes; 0 (default) = the CPU count. */
    int workers;
    /** How each worker runs its requests: NULL (default) = &ss_sync, or
     * &ss_threading, &ss_thread_pool (not prefork, not coroutines). */
    const ss_strategy *worker_strategy;
    /** worker_strategy's own options (NULL: its defaults). Copied for
     * ss_threading and ss_thread_pool; for a strategy of your own it must
     * outlive the server, as workers start (and restart) later. */
    const void *worker_options;
    /** Seconds a stopping worker may take to finish its requests before it
     * is killed. 0 (default): 10; negative: none, killed at once. */
    double graceful_timeout;
    /** IP kinds: instead of every worker taking connections from the one
     * listening socket, each worker slot gets a socket of its own in an
     * SO_REUSEPORT group on the server's address, and the kernel hashes
     * each connection (datagram flow) to one of them. The supervisor opens
     * the slots' sockets and holds them while serving, so a worker that
     * dies loses nothing queued: its replacement takes over the same
     * socket. Implies allow_reuse_port; the extra sockets go through the
     * kind's server_bind and server_activate. A connection waits for its
     * own worker even when another is idle: a sync worker held by a slow
     * client strands the connections hashed to it. Default false:
     * measured side by side (docs/performance.md), TCP was no faster; UDP
     * with more workers than CPUs was. Unix kinds: ss_server_new()
     * returns -EOPNOTSUPP; a socket given to ss_server_new_fd() without
     * SO_REUSEPORT: ss_serve_forever() returns -EINVAL. */
    bool reuseport;
} ss_prefork_options;

/** ss_coroutines' options. */
typedef struct ss_coroutine_options {
    /** Scheduler threads, each with its own epoll loop; 0 (default) = the
     * CPU count. A coroutine never moves between threads. */
    int threads;
    /** Usable stack bytes per coroutine (a guard page is added below).
     * 0 (default) = 256 KiB — address space, mostly never touched. At
     * most 1 GiB. */
    size_t stack_size;
    /** Helper threads for ss_run_blocking(); 0 (default) = 4. */
    int blocking_threads;
    /** By default, when serving starts, a SIGSEGV handler is installed
     * (chained to any previous one, acting only on a fault in a
     * coroutine's guard page) that prints "sockserv: coroutine stack
     * overflow (stack size N bytes); raise ss_coroutine_options.stack_size"
     * before the process dies — the one signal disposition the library
     * sets by itself. true leaves SIGSEGV alone (an overflow is then a
     * plain crash). */
    bool no_overflow_report;
} ss_coroutine_options;

/** Handle each request to completion before accepting the next (Python's
 * plain TCPServer). */
SS_API extern const ss_strategy ss_sync;
/** A child process per request (Python's ForkingMixIn), options
 * ss_forking_options. The child runs the handler and exits 0, or 1 after a
 * failure (reported by handle_error in the child). Memory the handler
 * changes is the child's and dies with it: state shared between requests
 * needs a file, a database or another process (docs/strategies.md). Only
 * the server's own children are ever reaped. ss_handle_request() waits
 * 300 s by default, as Python's ForkingMixIn.timeout. */
SS_API extern const ss_strategy ss_forking;
/** A thread per request (Python's ThreadingMixIn), options
 * ss_threading_options.
 * Finished threads leave no bookkeeping behind. */
SS_API extern const ss_strategy ss_threading;
/** Long-lived worker threads fed by a bounded queue, options
 * ss_thread_pool_options. A request is a whole connection: a worker runs
 * it until its handler returns. A handler that parks between exchanges
 * (ss_park(); the HTTP handler does) gives the worker back while its
 * client is idle — the connection waits in the serve loop without one —
 * so idle keep-alive clients do not hold workers; one that blocks in
 * ss_read() between exchanges holds its worker until its client leaves
 * or times out, and pool_size then bounds the connections open at once. */
SS_API extern const ss_strategy ss_thread_pool;
/** A supervisor process forks worker processes that share the listening
 * socket and each run a worker strategy; crashed workers are replaced.
 * Each worker has its own memory: what one request stores is seen only by
 * later requests of the same worker, and is lost when it is replaced.
 * Options ss_prefork_options. */
SS_API extern const ss_strategy ss_prefork;
/** Coroutines on epoll (gevent's idea, done explicitly): each request runs
 * as a coroutine with its own small stack; when its socket would block, it
 * parks and the scheduler runs another. The same handler source as for
 * every other strategy, at event-loop cost. Options ss_coroutine_options;
 * its scheduler threads share
 * the listening socket (EPOLLEXCLUSIVE). A handler must not block the
 * thread: use ss_sleep(), ss_wait_fd() and ss_run_blocking(). */
SS_API extern const ss_strategy ss_coroutines;

/* ------------------------------------------------------------------------
 * Request handlers (Python: BaseRequestHandler, StreamRequestHandler,
 * DatagramRequestHandler)
 * --------------------------------------------------------------------- */

struct ss_handler_class {
    /** The class this one extends; NULL fields are taken from it. NULL base
     * means ss_base_handler. */
    const ss_handler_class *base;
    /** Bytes of per-request state the library allocates, zeroes and frees:
     * ss_request_state(). Not inherited. */
    size_t state_size;
    /** Each returns 0 on success. A non-zero return from any of them makes
     * the server call handle_error with it; finish runs even when setup or
     * handle fails. */
    int (*setup)(ss_request *req);
    int (*handle)(ss_request *req); /**< The work (Python: handle). */
    int (*finish)(ss_request *req); /**< Clean up, also after a failure. */

    /** Options Python keeps on StreamRequestHandler. Here timeout and the
     * buffer sizes apply to every request of the class whatever its base
     * (ss_base_handler, ss_stream_handler, ss_datagram_handler, the HTTP
     * handler, or a setup that does not call its base's); only
     * disable_nagle_algorithm needs ss_stream_handler's setup. 0 fields
     * are inherited. */
    /** Seconds each read/write call may take before -ETIMEDOUT; 0 = none.
     * Set on the request before setup runs, with or without
     * ss_stream_handler as base; ss_request_set_timeout() changes it for
     * one request. (A stall that ss_sendfile() returned a short count for
     * goes on counting in the next write call: see there.) */
    double timeout;
    /** Read buffer size; default 8192. */
    size_t rbufsize;
    /** Write buffer size; 0 (default, like Python) writes straight through.
     * When set, data is sent when the buffer fills, on ss_flush(), and
     * after finish. */
    size_t wbufsize;
    /** TCP_NODELAY on the connection (TCP only), set by
     * ss_stream_handler's setup. */
    bool disable_nagle_algorithm;
    /** Optional: the protocol starts with the client (HTTP does; a server
     * that greets first must leave it NULL). Returns how many seconds a new
     * connection may wait for its first byte (0: no limit); it is called
     * once per connection, before setup, and may read the class data
     * (ss_request_class_data). Under a strategy that parks new connections
     * (ss_sync, ss_thread_pool, ss_forking) the connection waits without a
     * worker — and under ss_forking without a child — and is closed
     * quietly when that time passes, its handler never run. */
    double (*first_byte_timeout)(const ss_request *req);

    /** Data of the class itself — Python's class attributes — shared by all
     * its requests: ss_request_class_data(). Inherited when NULL. The HTTP
     * handler keeps its ss_http_config here. */
    const void *class_data;
};

/** No-op setup/handle/finish. Request I/O follows the server kind, so every
 * handler can read and write whatever the kind: */
SS_API extern const ss_handler_class ss_base_handler;
/** Its setup applies timeout and disable_nagle_algorithm. Reads come from
 * the connection, writes go to it. */
SS_API extern const ss_handler_class ss_stream_handler;
/** Reads come from the received datagram; writes collect a reply that is
 * sent to the client after finish — always, even when empty (as Python). */
SS_API extern const ss_handler_class ss_datagram_handler;

/* ------------------------------------------------------------------------
 * Servers
 * --------------------------------------------------------------------- */

/** Create a server. address is a string (see ss_address_parse); cfg may be
 * NULL for defaults and is copied. Unless cfg->no_bind_and_activate is
 * set, the socket is bound and listening on return.
 * On success *out owns the server: free it with ss_server_free(). On
 * failure *out is NULL and nothing is leaked. */
SS_API int ss_server_new(ss_server **out, const ss_server_class *kind,
                         const ss_strategy *strategy, const char *address,
                         const ss_handler_class *handler, const ss_config *cfg);

/** The same with an address already in a struct sockaddr (copied). */
SS_API int ss_server_new_sockaddr(ss_server **out, const ss_server_class *kind,
                                  const ss_strategy *strategy,
                                  const struct sockaddr *address,
                                  socklen_t address_len,
                                  const ss_handler_class *handler,
                                  const ss_config *cfg);

/** Python's plain classes in one call: the synchronous strategy. */
SS_API int ss_tcp_server_new(ss_server **out, const char *address,
                             const ss_handler_class *handler,
                             const ss_config *cfg);
/** UDPServer: ss_udp with ss_sync. */
SS_API int ss_udp_server_new(ss_server **out, const char *address,
                             const ss_handler_class *handler,
                             const ss_config *cfg);
/** UnixStreamServer: ss_unix_stream with ss_sync. */
SS_API int ss_unix_stream_server_new(ss_server **out, const char *address,
                                     const ss_handler_class *handler,
                                     const ss_config *cfg);
/** UnixDatagramServer: ss_unix_datagram with ss_sync. */
SS_API int ss_unix_datagram_server_new(ss_server **out, const char *address,
                                       const ss_handler_class *handler,
                                       const ss_config *cfg);

/** Python's combined classes: ThreadingTCPServer, ForkingUDPServer, … */
SS_API int ss_threading_tcp_server_new(ss_server **out, const char *address,
                                       const ss_handler_class *handler,
                                       const ss_config *cfg);
/** ThreadingUDPServer: ss_udp with ss_threading. */
SS_API int ss_threading_udp_server_new(ss_server **out, const char *address,
                                       const ss_handler_class *handler,
                                       const ss_config *cfg);
/** ThreadingUnixStreamServer: ss_unix_stream with ss_threading. */
SS_API int ss_threading_unix_stream_server_new(ss_server **out,
                                               const char *address,
                                               const ss_handler_class *handler,
                                               const ss_config *cfg);
/** ThreadingUnixDatagramServer: ss_unix_datagram with ss_threading. */
SS_API int
ss_threading_unix_datagram_server_new(ss_server **out, const char *address,
                                      const ss_handler_class *handler,
                                      const ss_config *cfg);
/** ForkingTCPServer: ss_tcp with ss_forking. */
SS_API int ss_forking_tcp_server_new(ss_server **out, const char *address,
                                     const ss_handler_class *handler,
                                     const ss_config *cfg);
/** ForkingUDPServer: ss_udp with ss_forking. */
SS_API int ss_forking_udp_server_new(ss_server **out, const char *address,
                                     const ss_handler_class *handler,
                                     const ss_config *cfg);
/** ForkingUnixStreamServer: ss_unix_stream with ss_forking. */
SS_API int ss_forking_unix_stream_server_new(ss_server **out,
                                             const char *address,
                                             const ss_handler_class *handler,
                                             const ss_config *cfg);
/** ForkingUnixDatagramServer: ss_unix_datagram with ss_forking. */
SS_API int ss_forking_unix_datagram_server_new(ss_server **out,
                                               const char *address,
                                               const ss_handler_class *handler,
                                               const ss_config *cfg);

/** Bind / listen, when no_bind_and_activate was set. Call once each, in that
 * order. */
SS_API int ss_server_bind(ss_server *srv);
/** listen() (Python: server_activate()), after ss_server_bind(). */
SS_API int ss_server_activate(ss_server *srv);

/** Handle requests until ss_shutdown(). Every poll_interval seconds (or
 * sooner) the loop runs service_actions; shutdown does not wait for it: it
 * wakes the loop at once. A shutdown requested before this call makes it
 * return at once. Returns 0, or a negative errno if the loop cannot run
 * (not activated: -EINVAL; already serving in another thread: -EBUSY).
 * Not to be called from a signal handler. */
SS_API int ss_serve_forever(ss_server *srv, double poll_interval);

/** Handle one request, waiting at most config.timeout (0 = forever); on
 * timeout calls handle_timeout and returns -ETIMEDOUT. Returns 0 once a
 * request was handled (or refused by verify_request; handler failures go to
 * handle_error and still return 0). At max_connections the wait includes
 * waiting for a running request to end. When accept itself fails (out of
 * descriptors: -EMFILE, -ENFILE; out of memory: -ENOBUFS, -ENOMEM), that
 * error is returned and pausing is the caller's choice; ss_serve_forever()
 * pauses by itself.
 *
 * Once a shutdown was requested — ss_shutdown() from any thread or a
 * handler, or SIGINT/SIGTERM after ss_shutdown_on_signals() — it returns
 * SS_SHUTDOWN: at once when the shutdown came first (nothing is accepted),
 * as soon as the wait is woken when it comes during the wait, and after
 * the request when it comes while one runs (whose reads are then
 * cancelled, quietly, as under ss_serve_forever()). Every later call
 * returns SS_SHUTDOWN too, until an ss_serve_forever() takes the shutdown
 * (it returns at once). So a handle_request loop ends on Ctrl-C:
 *
 *     while (!ss_server_shutdown_requested(srv))
 *         ss_handle_request(srv);
 *
 * or, keeping the result: `while ((rc = ss_handle_request(srv)) !=
 * SS_SHUTDOWN)`. Python's handle_request() has no such return: there
 * KeyboardInterrupt leaves it. */
SS_API int ss_handle_request(ss_server *srv);

/** Ask ss_serve_forever() to return, and return at once without waiting.
 * Safe from any thread, from the serving thread itself (including a
 * handler), and from a signal handler (async-signal-safe). Returns 0.
 * A handler stops its own server with ss_shutdown(ss_request_server(req))
 * (Python: SystemExit escaping handle_request); in a forked child that
 * stops only the child's copy. See config.shutdown_grace for what happens
 * to requests still running. */
SS_API int ss_shutdown(ss_server *srv);

/** Python's shutdown(): ask, then wait until ss_serve_forever() has
 * returned. Returns 0, or -EDEADLK if called from the thread that is
 * serving (which would wait for itself forever). Not signal-safe. */
SS_API int ss_shutdown_wait(ss_server *srv);

/** Whether a shutdown is pending: true from ss_shutdown() (or a signal
 * handled by ss_shutdown_on_signals()) until ss_serve_forever() has
 * returned because of it. A loop of ss_handle_request() calls leaves it
 * set, so it is the condition of such a loop; strategies use it too.
 * Thread-safe and async-signal-safe (one atomic load). */
SS_API bool ss_server_shutdown_requested(const ss_server *srv);

/** Close the listening socket, let the strategy finish its work (e.g. wait
 * for threads or children per block_on_close) and unlink the Unix socket if
 * configured. Idempotent. Python: server_close(). Call it after
 * ss_serve_forever() has returned, not from another thread while it runs.
 * Called from a handler of this very server it would wait for itself, so
 * it is refused there (ignored, with one log line): use ss_shutdown(). A
 * datagram socket stays open until requests still replying through it are
 * done (ss_server_free() closes it at the latest). */
SS_API void ss_server_close(ss_server *srv);

/** ss_server_close() if needed, then free. NULL is allowed. Waits for
 * everything still using the server (daemon threads too). Refused from a
 * handler of this server, like ss_server_close(). */
SS_API void ss_server_free(ss_server *srv);

/** The listening (or datagram) socket, -1 once closed. Python: fileno(). */
SS_API int ss_server_fileno(const ss_server *srv);

/** The bound address (after port 0: the real port). Python:
 * server_address. *len is in/out. Returns 0 or -ENOBUFS if too small. */
SS_API int ss_server_address(const ss_server *srv, struct sockaddr *addr,
                             socklen_t *len);
/** The bound port for IP servers, -EAFNOSUPPORT for Unix servers. */
SS_API int ss_server_port(const ss_server *srv);
/** "127.0.0.1:8000", "[::1]:8000", "unix:/path", "unix:@name". Returns the
 * length written (truncated to fit, always NUL-terminated). */
SS_API int ss_server_address_string(const ss_server *srv, char *buf,
                                    size_t size);

/** The server's own copy of its kind; valid until ss_server_free(). */
SS_API const ss_server_class *ss_server_kind(const ss_server *srv);
/** The strategy the server was made with. */
SS_API const ss_strategy *ss_server_strategy(const ss_server *srv);
/** The server's own copy of its config; do not modify through it. */
SS_API const ss_config *ss_server_config(const ss_server *srv);
/** ss_config.user: your context (what ss_request_user() gives every
 * request). */
SS_API void *ss_server_user(const ss_server *srv);

/** SIGINT and SIGTERM call ss_shutdown(srv). Installed only when you call
 * this; up to 16 servers may be registered at once. ss_server_free()
 * unregisters. Returns 0, -ENOSPC when the table is full, or sigaction's
 * error. */
SS_API int ss_shutdown_on_signals(ss_server *srv);

/* ------------------------------------------------------------------------
 * Socket activation: serving on a socket opened by someone else — a
 * service manager (systemd's LISTEN_FDS protocol), inetd-style supervisors,
 * or the program itself. docs/deployment.md has example units.
 * --------------------------------------------------------------------- */

/** The first descriptor a service manager passes: 3, then 4, 5, … */
#define SS_LISTEN_FDS_START 3

/** Create a server on fd, a socket that is already bound (to a port other
 * than 0 for IP, to a name for Unix), instead of making and binding one.
 * The socket must fit kind: ss_tcp takes an AF_INET or AF_INET6 stream
 * socket, ss_udp a datagram one, ss_unix_stream / ss_unix_datagram an
 * AF_UNIX socket of their type.
 *
 * A stream socket that is not listening yet gets listen() through the
 * kind's server_activate (with request_queue_size); one already listening
 * keeps its backlog (server_activate is not called). Datagram kinds get
 * their server_activate too (by default it does nothing). server_bind is
 * never called. The descriptor is made non-blocking and close-on-exec,
 * as the library's own sockets are; ss_server_address(), ss_server_port()
 * and ss_server_address_string() report the address it is bound to.
 * In cfg, allow_reuse_address, allow_reuse_port, ipv6_only and
 * no_bind_and_activate are ignored (the socket exists and is bound), and
 * unlink_on_close never removes the socket file of an adopted Unix
 * socket: whoever bound it made the file and removes it (systemd does
 * when the .socket unit stops; RemoveOnStop=).
 *
 * On success the server owns fd: ss_server_close() closes it. On any
 * failure fd is NOT closed and stays the caller's, unchanged:
 * -EBADF (not an open descriptor), -ENOTSOCK (not a socket), -EPROTOTYPE
 * (stream for a datagram kind or the reverse), -EAFNOSUPPORT (family does
 * not fit kind), -EDESTADDRREQ (not bound), -EINVAL (a NULL or incomplete
 * argument or a bad cfg, as ss_server_new), or listen()'s error.
 * Works with every strategy: to them it is a listening socket like any
 * other. */
SS_API int ss_server_new_fd(ss_server **out, const ss_server_class *kind,
                            const ss_strategy *strategy, int fd,
                            const ss_handler_class *handler,
                            const ss_config *cfg);

/** How many descriptors the service manager passed this process, as
 * systemd's sd_listen_fds(): they are SS_LISTEN_FDS_START up to
 * SS_LISTEN_FDS_START + count - 1, in the order the .socket unit lists
 * them, each now marked close-on-exec. Returns 0 when the process was not
 * socket-activated: LISTEN_PID or LISTEN_FDS unset, or LISTEN_PID names
 * another process (variables inherited from a parent are not for us).
 * Returns -EINVAL when a variable is not a plain decimal number or the
 * count is beyond any descriptor number, and -EBADF when the count covers
 * a descriptor that is not open. With unset_environment, LISTEN_PID,
 * LISTEN_FDS and LISTEN_FDNAMES are removed from the environment whatever
 * the result, so programs started later do not see them (and a second
 * call returns 0). Reads and changes the environment: call it early in
 * main(), before starting threads; not thread-safe. */
SS_API int ss_listen_fds(bool unset_environment);

/** ss_listen_fds() that also returns the names of the descriptors from
 * LISTEN_FDNAMES (systemd's FileDescriptorName=, by default the .socket
 * unit's name): when the result is positive and names is not NULL,
 * *names is an array of that many strings followed by NULL, in descriptor
 * order, allocated in one block: release it with free(). Without
 * LISTEN_FDNAMES (or with it empty) every name is "unknown". Returns what
 * ss_listen_fds() returns, or -EINVAL when LISTEN_FDNAMES holds a number
 * of colon-separated names other than the count, or -ENOMEM; *names is
 * NULL unless the result is positive. Same thread-safety as
 * ss_listen_fds(). */
SS_API int ss_listen_fds_with_names(bool unset_environment, char ***names);

/* ------------------------------------------------------------------------
 * Requests: what a handler sees
 * --------------------------------------------------------------------- */

/** The server the request came to (Python: self.server). */
SS_API ss_server *ss_request_server(const ss_request *req);
/** The handler's per-request state (state_size bytes, zeroed), or NULL. */
SS_API void *ss_request_state(const ss_request *req);
/** ss_config.user of the request's server (ss_server_user()). In an HTTP
 * callback: ss_http_server_user(). */
SS_API void *ss_request_user(const ss_request *req);
/** class_data of the handler class (or the nearest base that sets it). */
SS_API const void *ss_request_class_data(const ss_request *req);
/** The client's address; *len receives its length when len is not NULL.
 * For an unbound Unix client it has only a family. */
SS_API const struct sockaddr *ss_request_client_address(const ss_request *req,
                                                        socklen_t *len);
/** The client address as text ("127.0.0.1:51000", "unix:" for an unnamed
 * Unix peer). Returns the length written. */
SS_API int ss_request_client_address_string(const ss_request *req, char *buf,
                                            size_t size);
/** The address of the connection's peer. With config.proxy_protocol it is
 * the proxy that sent the header (the client address is the one the
 * header named); otherwise it is the client address. *len as above. */
SS_API const struct sockaddr *ss_request_peer_address(const ss_request *req,
                                                      socklen_t *len);
/** The request's socket, for socket options and getsockopt only: read and
 * write through ss_read/ss_write, which the strategy can intercept. Under
 * ss_threading and ss_thread_pool it may be in blocking mode while the
 * handler runs (reads wait in recv()): pass MSG_DONTWAIT for a call that
 * must not wait. */
SS_API int ss_request_fileno(const ss_request *req);
/** Datagram requests: the datagram was longer than max_packet_size and was
 * cut. Always false for streams. */
SS_API bool ss_request_truncated(const ss_request *req);
/** When the kernel received the latest bytes this request has read (a
 * stream's latest receive, or its datagram), as CLOCK_REALTIME, with
 * config.input_timestamps: never earlier than their arrival (a packet
 * that came before stamping was on is stamped when received, or not at
 * all). So a request sent after some event on this machine is never
 * stamped before it, which lets a handler order the two without a system
 * call (sockserv-httpd's file cache does). Returns false when not known: the
 * option is off, the socket gives no stamps (Unix stream), nothing has been
 * received yet, or the transport does not record it (ss_request_socket_recv()).
 */
SS_API bool ss_request_input_time(const ss_request *req, struct timespec *when);
/** Change the per-call I/O timeout for this request (seconds, 0 = none). */
SS_API void ss_request_set_timeout(ss_request *req, double seconds);
/** Say in words why the request is failing (text is copied; NULL clears
 * it): the default handle_error appends it to its report line after the
 * error's own text ("Protocol error: TLS handshake failed: http request").
 * The TLS transport sets it; a handler or transport of yours may too. */
SS_API void ss_request_set_error_detail(ss_request *req, const char *text);
/** The text of ss_request_set_error_detail(), or NULL: for handle_error
 * overrides. Valid until it is set again or the request ends. */
SS_API const char *ss_request_error_detail(const ss_request *req);

/** Read up to n bytes (at least 1 unless EOF; at most SS_IO_MAX). Returns
 * the count, 0 at end of stream (datagrams: end of the packet), or a
 * negative errno (-ETIMEDOUT past the timeout). */
SS_API int ss_read(ss_request *req, void *buf, size_t n);
/** Read up to n bytes (at most SS_IO_MAX) that are there now — in the
 * read buffer, or on the connection — without waiting. Returns the count,
 * 0 at end of stream (datagrams: end of the packet), -EAGAIN when nothing
 * has arrived yet (then wait, or return ss_park() from handle),
 * -ECANCELED once the server is shutting down where the request has a
 * thread of its own (thread, pool, a prefork worker's threads: the
 * shutdown cuts their input; bytes already in the read buffer are still
 * returned first), or a negative
 * errno. After a read that emptied the connection it answers
 * -EAGAIN without a system call: input that came since is announced by
 * the wait (or park) that follows, which then returns at once. */
SS_API int ss_read_nowait(ss_request *req, void *buf, size_t n);
/** Read exactly n bytes (at most SS_IO_MAX, else -EINVAL). Returns n,
 * SS_EOF if the stream ended first, or a negative errno (-ETIMEDOUT…); on
 * either failure the bytes that did arrive are in buf but consumed, and
 * their count is not reported. Use ss_read() where a short message must
 * be handled. */
SS_API int ss_read_exact(ss_request *req, void *buf, size_t n);
/** Read one line, up to and including '\n', into buf (NUL-terminated;
 * size counts the NUL). Returns its length; 0 at end of stream. A line that
 * ends without '\n' means the peer closed mid-line (nothing is lost; the
 * next call returns 0). A line that does not fit in size - 1 bytes returns
 * -EMSGSIZE: buf holds its first size - 1 bytes, which are consumed, and
 * the rest of the line is still to be read (a size above SS_IO_MAX + 1
 * counts as that). Other errors (-ETIMEDOUT…) consume what was read of
 * the line. */
SS_API int ss_readline(ss_request *req, char *buf, size_t size);

/** Park the connection: "nothing more to do until the client sends again".
 * A handler returns it from handle — `return ss_park(req, 15.0);` —
 * between two exchanges of a long-lived connection (a keep-alive HTTP
 * connection waiting for its next request), with everything it needs
 * kept in its state. When input arrives, handle is called again (setup
 * is not); when timeout seconds pass first (0: no limit), or the server
 * shuts down, the connection ends quietly: finish runs, nothing is
 * reported. Buffered output is flushed before parking. A strategy that
 * gives each connection a thread or coroutine of its own waits right
 * there; a bounded one (ss_sync, ss_thread_pool, prefork's workers) keeps
 * the connection in its event loop without a worker, so idle clients do
 * not hold workers (docs/strategies.md, "Parking"). Input already
 * buffered resumes it at once. Returns SS_PARK, or -EOPNOTSUPP for a
 * datagram request (its one packet is all there is). */
SS_API int ss_park(ss_request *req, double timeout);
/** ss_park(), except that when timeout passes before input, handle is
 * called once more instead of the connection ending quietly — so that it
 * can answer (the HTTP handler's 408 for a head that stopped half-way)
 * and end. A shutdown still ends a parked connection quietly. */
SS_API int ss_park_until(ss_request *req, double timeout);

/** One pointer for a handler base class's own per-connection object (the
 * HTTP handler keeps its connection state here), apart from
 * ss_request_state(), which stays the derived class's. free_fn (may be
 * NULL) is called with it when the request is freed. */
SS_API void ss_request_set_base_data(ss_request *req, void *data,
                                    void (*free_fn)(void *data));
/** What ss_request_set_base_data() set, or NULL. */
SS_API void *ss_request_base_data(const ss_request *req);

/** Cooperative helpers: they block the calling request only, under every
 * strategy — a coroutine parks, a thread or process simply waits. */
/** Wait for seconds. Returns 0, or -ECANCELED when the server shuts down. */
SS_API int ss_sleep(ss_request *req, double seconds);
/** Let other requests of the same scheduler run: a coroutine goes to the
 * back of the run queue; elsewhere the call returns at once (the kernel
 * schedules threads and processes anyway). Returns 0. */
SS_API int ss_yield(ss_request *req);
/** Wait until your own descriptor fd (a pipe, a database connection…) is
 * ready for events (POLLIN/POLLOUT), at most timeout seconds (0 = no
 * limit). Returns 0, -ETIMEDOUT, or -ECANCELED at shutdown. */
SS_API int ss_wait_fd(ss_request *req, int fd, short events, double timeout);
/** ss_wait_input_or_fd(): the request's own connection has input to read. */
#define SS_READY_INPUT 1
/** ss_wait_input_or_fd(): the descriptor fd is ready. */
#define SS_READY_FD 2
/** Wait until the request's own connection has input to read or your
 * descriptor fd is ready for events (POLLIN/POLLOUT), whichever comes
 * first, at most timeout seconds (0 = no limit). For a handler that serves
 * its client and also a queue other requests or threads fill (with an
 * eventfd that says "not empty"): only the handler touches its request,
 * and it polls neither. Input counts as ready when the next ss_read() has
 * something to return at once: bytes already in the request's read buffer
 * (then the call returns without waiting and without a system call on
 * the socket; fd is looked at by a poll() that does not wait), new bytes
 * on the socket, the end of the stream, or an error the read will report.
 * Returns SS_READY_INPUT, SS_READY_FD or both (never 0; a bit that is not
 * set may have become ready meanwhile: just call again), -ETIMEDOUT,
 * -ECANCELED once the server is shutting down (as ss_wait_fd), -EBADF
 * for fd < 0, -EINVAL when fd is the request's own socket or the
 * server's, and -EOPNOTSUPP for datagram requests, whose input is their
 * one packet, complete on arrival. Works under every strategy: one poll()
 * on both descriptors, or a coroutine parked on both. */
SS_API int ss_wait_input_or_fd(ss_request *req, int fd, short events,
                               double timeout);
/** Run fn(arg), which may block (DNS, disk, a database client), without
 * stalling other requests: under ss_coroutines it runs on a helper thread
 * while the coroutine waits. Returns fn's result. */
SS_API int ss_run_blocking(ss_request *req, int (*fn)(void *arg), void *arg);

/** Write up to n bytes (at most SS_IO_MAX): one send for streams (it may
 * be partial). Returns the count or a negative errno. Datagrams: appends
 * to the reply, which may hold at most 65,507 bytes for UDP (-EMSGSIZE
 * beyond, and nothing is appended) and 16 MiB for Unix datagram sockets,
 * where the kernel's buffer size may refuse a smaller reply when it is
 * sent. */
SS_API int ss_write(ss_request *req, const void *buf, size_t n);
/** Write all n bytes (at most SS_IO_MAX, else -EINVAL), completing
 * partial writes and retrying after signals. Returns n or a negative
 * errno (then an unknown prefix was sent). */
SS_API int ss_write_all(ss_request *req, const void *buf, size_t n);
/** printf to the request; like ss_write_all. */
SS_API int ss_writef(ss_request *req, const char *fmt, ...) SS_PRINTF(2, 3);
/** Send what a buffered writer (wbufsize > 0) holds. Returns 0 or a negative
 * errno. The library flushes after finish too. */
SS_API int ss_flush(ss_request *req);
/** Send count bytes of file fd from *offset (advanced), through sendfile()
 * where the kernel allows. Streams only (-EOPNOTSUPP otherwise). Returns
 * the count sent — short at end of file, beyond SS_IO_MAX (call again for
 * the rest), or when an error cut the transfer after some bytes went out
 * (the next call reports the error) — or a negative errno. The timeout
 * bounds the call, as for the other calls, with one addition that keeps
 * "the next call reports the error" true of timeouts: when a call returns
 * a short count because no byte could be sent before its deadline, the
 * stall goes on counting, and the next write call on the request
 * (ss_sendfile, ss_write, ss_write_all, ss_flush…) waits to send only for
 * what is left of one timeout from the moment the stall began, then
 * reports -ETIMEDOUT. So a loop that calls again after short counts ends
 * one timeout after the last byte moved, however many calls that spans;
 * any byte sent ends the stall. */
SS_API int ss_sendfile(ss_request *req, int fd, off_t *offset, size_t count);

/* ------------------------------------------------------------------------
 * Addresses
 * --------------------------------------------------------------------- */

/** Parse a server address:
 *   "127.0.0.1:8000"   IPv4         "[::1]:8000"  IPv6 ("[::]:PORT" is all
 *   "localhost:8000"   a host name (first IPv4/IPv6 result of getaddrinfo)
 *   ":8000"            all IPv4 interfaces (Python's host "")
 *   "::1", "::"        a bare IPv6 literal: port 0 (brackets give a port)
 *   "unix:/path"       Unix socket file   "unix:@name"  Linux abstract name
 * Ports are 0–65535 in decimal. Numbers in inet_aton's old forms
 * ("127.1", "010.0.0.1", "0x7f.0.0.1") are refused, not guessed at.
 * socket_type (SOCK_STREAM/SOCK_DGRAM) only
 * guides name lookup. Returns 0; -EINVAL for a malformed string or port;
 * -ENAMETOOLONG for a Unix path that does not fit; -EADDRNOTAVAIL when a
 * host name does not resolve. Never touches addr on failure. */
SS_API int ss_address_parse(const char *text, int socket_type,
                            struct sockaddr_storage *addr, socklen_t *len);

/** Format an address the way ss_address_parse reads it. Returns the length
 * written (truncated to fit, NUL-terminated), -EAFNOSUPPORT for a family
 * other than IPv4, IPv6 and Unix, or -EINVAL for a NULL or short address. */
SS_API int ss_address_format(const struct sockaddr *addr, socklen_t len,
                             char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SOCKSERV_SOCKSERV_H */
