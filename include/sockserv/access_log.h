/**
 * @file access_log.h
 * A buffered line log for access logs: nginx's `access_log … buffer=
 * flush=`, for any handler that writes a line per request (the HTTP
 * handler does, with ss_http_config.access_log).
 *
 * Writing a line copies it into a buffer of the calling thread; the
 * buffer goes to the file in one write(2) of whole lines when it is full,
 * when it has waited flush_interval seconds (a thread of the log's own
 * writes it then), when the thread ends, at ss_access_log_flush() and
 * ss_access_log_close(). So a request costs a memcpy, not a system call,
 * and lines are never interleaved or torn: every write(2) holds whole
 * lines, the file is opened O_APPEND (one write is one append, whatever
 * other threads and processes write), and to a pipe or socket the
 * buffer goes in pieces of at most PIPE_BUF bytes cut at line ends, so
 * that each piece is atomic too (a single line longer than PIPE_BUF
 * cannot be, and is written alone).
 *
 *     ss_access_log *log;
 *     ss_access_log_options opt = {.buffer_size = 64 * 1024,
 *                                  .flush_interval = 1.0};
 *     int rc = ss_access_log_open(&log, "access.log", &opt);
 *     ...
 *     http.access_log = log;           // ss_http_config
 *     ... serve, ss_server_free(srv) ...
 *     ss_access_log_close(log);        // the last lines are written here
 *
 * Processes: a log made before the server forks works in forked children
 * and prefork workers. ss_server_fork() writes out every log's buffers
 * before fork(), so a child starts with none of its parent's lines, and a
 * child the library forked writes its own before it leaves (prefork
 * workers as they stop, forking children after their request) — nothing
 * is lost or written twice when the server stops cleanly (ss_shutdown(),
 * SIGTERM/SIGINT with ss_shutdown_on_signals()). A program that forks by
 * itself calls ss_access_log_flush() first. Coroutines: the requests
 * running on one thread share that thread's buffer; appending never
 * yields, so their lines do not mix.
 *
 * Log rotation: ss_access_log_reopen() (async-signal-safe: call it from a
 * SIGHUP handler) opens the path again in this process at once, and in
 * every other process sharing the log (its forked children, prefork
 * workers) at its next line or flush, so the signal need only reach one
 * of them.
 */
#ifndef SOCKSERV_ACCESS_LOG_H
#define SOCKSERV_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "sockserv/sockserv.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A buffered access log: ss_access_log_open(), ss_access_log_close(). */
typedef struct ss_access_log ss_access_log;

/** How an access log buffers. A zeroed struct (or NULL) means the
 * defaults. */
typedef struct ss_access_log_options {
    /** Bytes each thread buffers before writing (nginx's buffer=). 0: 64
     * KiB. At most 16 MiB. A line longer than the buffer is written
     * alone. */
    size_t buffer_size;
    /** The longest a line waits in a buffer, in seconds (nginx's
     * flush=). 0: 1 s. At most one day. */
    double flush_interval;
    /** Write every line at once, in one write(2), as it comes (no buffer,
     * no thread): what a terminal wants. buffer_size and flush_interval
     * are then ignored. */
    bool unbuffered;
} ss_access_log_options;

/** Open (create, mode 0644, or append to) the file at path, O_APPEND.
 * Returns 0 with *log set, -EINVAL for a NULL argument or an option out
 * of range, or the negative errno of open(2) (-EACCES, -ENOENT…), or
 * -ENOMEM. The path is opened again, as given, by ss_access_log_reopen():
 * make it absolute if the program changes directory. */
SS_API int ss_access_log_open(ss_access_log **log, const char *path,
                              const ss_access_log_options *options);

/** The same, writing to fd (STDERR_FILENO, a pipe…), which the caller
 * keeps and closes after ss_access_log_close(). ss_access_log_reopen()
 * does nothing to such a log. Returns 0, -EINVAL, -EBADF for a descriptor
 * that is not open, or -ENOMEM. */
SS_API int ss_access_log_open_fd(ss_access_log **log, int fd,
                                 const ss_access_log_options *options);

/** Add one line: len bytes (no newline; the log adds it; a newline
 * inside the line is the caller's to escape). Thread-safe; not
 * async-signal-safe. Returns 0, or a negative errno when the line had to
 * be written at once and could not be (it is then lost); an error of a
 * later buffered write is reported by ss_access_log_flush(). */
SS_API int ss_access_log_write(ss_access_log *log, const char *line,
                               size_t len);

/** Write out every thread's buffered lines in this process, now.
 * Thread-safe; not async-signal-safe. Returns 0, or the negative errno of
 * the first write that failed since the last call (those lines are
 * lost). */
SS_API int ss_access_log_flush(ss_access_log *log);

/** Ask for the file to be opened again (after logrotate renamed it): at
 * once in this process (by the log's thread), at the next line or flush
 * in the other processes sharing the log. Async-signal-safe and
 * thread-safe: made to be called from a SIGHUP handler. A log made with
 * ss_access_log_open_fd() ignores it. A reopen that fails keeps the file
 * open before (and ss_access_log_flush() reports the error). */
SS_API void ss_access_log_reopen(ss_access_log *log);

/** Write out the last lines, stop the log's thread, close the file (not
 * a descriptor given to ss_access_log_open_fd()) and free the log. Call
 * it once nothing writes to the log any more: after ss_server_free() of
 * every server using it. NULL is ignored. Returns what
 * ss_access_log_flush() would. */
SS_API int ss_access_log_close(ss_access_log *log);

/** Write out the buffered lines of every open log of this process, as
 * fflush(NULL) does for stdio: what a process forked to serve calls
 * before _exit(). The library's own strategies and ss_server_fork() do;
 * a strategy of your own that forks and leaves with _exit() calls it
 * (ss_server_fork() takes care of the other end). Not
 * async-signal-safe. */
SS_API void ss_access_log_flush_all(void);

#ifdef __cplusplus
}
#endif

#endif /* SOCKSERV_ACCESS_LOG_H */
