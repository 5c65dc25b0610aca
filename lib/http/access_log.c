/*
 * access_log.c — the buffered access log of sockserv/access_log.h.
 *
 * Design. Each thread that writes a line gets a buffer of its own (found
 * with a pthread key, so the request path takes no shared lock); the
 * buffer has a mutex that only its thread and the flushing paths take, so
 * it is uncontended almost always. A thread of the log's own (the
 * flusher) wakes every flush_interval and writes out every buffer that
 * holds lines: a line waits at most that long. A thread's buffer is
 * written and freed when the thread ends (the key's destructor).
 *
 * Writes hold whole lines only; see write_lines() for pipes.
 *
 * Fork. Buffers are process memory, so a forked child would inherit its
 * parent's unwritten lines (written twice) and mutexes that a thread of
 * the parent may hold (a deadlock). The library forks in one place,
 * ss_server_fork(): before fork() it writes out every open log
 * (ss_access_log_flush_all), and in the child it empties every
 * buffer, makes the mutexes new and forgets the parent's flusher, which
 * the child starts again at its first buffered line
 * (ss__access_logs_after_fork). Forked children and prefork workers
 * write theirs before _exit() (ss_access_log_flush_all), as they
 * fflush(NULL). For that the open logs are on one process-wide list, like
 * stdio's list of FILEs.
 *
 * Reopen. A SIGHUP handler cannot open files or take locks, and the
 * signal reaches one process of a prefork group. So ss_access_log_reopen()
 * only bumps a counter in memory shared by every process the log reaches
 * (MAP_SHARED, made before any fork) and wakes this process's flusher
 * through an eventfd; each process compares the counter with the one it
 * last acted on at each line and each flush, and reopens with dup3() onto
 * the same descriptor number, so a concurrent write goes to one file or
 * the other, never to a closed descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sockserv/access_log.h"
#include "sockserv/strategy.h"

#include "internal.h"
#include "../transports/sigpipe.h"

#define DEFAULT_BUFFER_SIZE (64 * 1024)
#define MAX_BUFFER_SIZE (16 * 1024 * 1024)
#define DEFAULT_FLUSH_INTERVAL 1.0
#define MAX_FLUSH_INTERVAL 86400.0

/* One thread's lines. */
typedef struct thread_buffer {
    pthread_mutex_t lock;
    struct ss_access_log *log;
    struct thread_buffer *prev, *next; /* on log->buffers */
    size_t len;
    char data[]; /* log->buffer_size bytes */
} thread_buffer;

/* What every process sharing the log sees. */
typedef struct shared_state {
    atomic_ulong reopen_requests;
} shared_state;

struct ss_access_log {
    int fd;
    bool own_fd;   /* opened from path: closed at close, reopened */
    bool cut_pipe; /* a pipe or socket: PIPE_BUF pieces, SIGPIPE guard */
    bool unbuffered;
    char *path;
    size_t buffer_size;
    int flush_ms;
    pthread_key_t key;

    pthread_mutex_t lock; /* buffers, the flusher, reopening, error */
    thread_buffer *buffers;
    bool flusher_running;
    atomic_bool flusher_started; /* checked on each line without the lock */
    bool stopping;
    pthread_t flusher;
    int wake_fd; /* eventfd: reopen or stop */
    unsigned long reopen_seen;
    atomic_int error; /* first failed write since the last flush() */

    shared_state *shared;
    struct ss_access_log *next_open; /* on open_logs */
};

/* The open logs of this process, for the fork hooks. */
static pthread_mutex_t open_logs_lock = PTHREAD_MUTEX_INITIALIZER;
static ss_access_log *open_logs;

/* ---- writing -------------------------------------------------------- */

/* Atomic, not under log->lock: it is noted with a buffer's lock held,
 * and the lock order is log->lock, then a buffer's. */
static void note_error(ss_access_log *log, int error)
{
    int none = 0;
    atomic_compare_exchange_strong(&log->error, &none, error);
}

/* write(2) until done: EINTR retried, partial writes continued. */
static int write_fully(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Whole lines, in one write(2) — or, to a pipe or socket, in pieces of at
 * most PIPE_BUF bytes ending at a newline: a write to a pipe is atomic
 * only up to PIPE_BUF, and beyond that another writer's bytes may land in
 * the middle of ours. A regular file opened O_APPEND takes any write
 * whole. */
static int write_lines(ss_access_log *log, const char *p, size_t n)
{
    if (!log->cut_pipe)
        return write_fully(log->fd, p, n);
    ss__sigpipe_guard guard; /* a reader gone is an error, not a signal */
    ss__sigpipe_block(&guard);
    int rc = 0;
    while (n > 0 && rc == 0) {
        size_t piece = n;
        if (piece > PIPE_BUF) {
            piece = PIPE_BUF;
            while (piece > 0 && p[piece - 1] != '\n')
                piece--;
            if (piece == 0) { /* one line longer than PIPE_BUF: alone */
                const char *nl = memchr(p, '\n', n);
                piece = nl ? (size_t)(nl - p) + 1 : n;
            }
        }
        rc = write_fully(log->fd, p, piece);
        p += piece;
        n -= piece;
    }
    ss__sigpipe_restore(&guard);
    return rc;
}

/* With b->lock held. */
static void flush_buffer(thread_buffer *b)
{
    if (b->len == 0)
        return;
    int rc = write_lines(b->log, b->data, b->len);
    b->len = 0;
    if (rc < 0)
        note_error(b->log, rc);
}

/* ---- reopening ------------------------------------------------------ */

static int reopen_file(ss_access_log *log)
{
    int fd = open(log->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (dup3(fd, log->fd, O_CLOEXEC) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Reopen if some process asked since this one last did. Cheap when not:
 * one atomic load. */
static void reopen_if_asked(ss_access_log *log)
{
    if (!log->own_fd)
        return;
    unsigned long asked = atomic_load_explicit(&log->shared->reopen_requests,
                                               memory_order_acquire);
    if (asked == __atomic_load_n(&log->reopen_seen, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&log->lock);
    if (asked != log->reopen_seen) {
        __atomic_store_n(&log->reopen_seen, asked, __ATOMIC_RELAXED);
        /* What was logged before the rotation goes to the file rotated,
         * as nginx writes its buffers out before it reopens. */
        for (thread_buffer *b = log->buffers; b; b = b->next) {
            pthread_mutex_lock(&b->lock);
            flush_buffer(b);
            pthread_mutex_unlock(&b->lock);
        }
        int rc = reopen_file(log);
        if (rc < 0)
            note_error(log, rc);
    }
    pthread_mutex_unlock(&log->lock);
}

void ss_access_log_reopen(ss_access_log *log)
{
    if (log == NULL || !log->own_fd)
        return;
    atomic_fetch_add_explicit(&log->shared->reopen_requests, 1,
                              memory_order_release);
    uint64_t one = 1;
    ssize_t ignored = write(log->wake_fd, &one, sizeof one);
    (void)ignored;
}

/* ---- the flusher ---------------------------------------------------- */

static void flush_all_buffers(ss_access_log *log)
{
    pthread_mutex_lock(&log->lock);
    for (thread_buffer *b = log->buffers; b; b = b->next) {
        pthread_mutex_lock(&b->lock);
        flush_buffer(b);
        pthread_mutex_unlock(&b->lock);
    }
    pthread_mutex_unlock(&log->lock);
}

static void *flusher_main(void *arg)
{
    ss_access_log *log = arg;
    for (;;) {
        struct pollfd p = {.fd = log->wake_fd, .events = POLLIN};
        if (poll(&p, 1, log->flush_ms) > 0) {
            uint64_t count;
            ssize_t ignored = read(log->wake_fd, &count, sizeof count);
            (void)ignored;
        }
        pthread_mutex_lock(&log->lock);
        bool stop = log->stopping;
        pthread_mutex_unlock(&log->lock);
        if (stop)
            return NULL;
        reopen_if_asked(log);
        flush_all_buffers(log);
    }
}

/* Started at the first buffered line of each process (a forked child
 * starts its own), so a log nobody writes to costs no thread. */
static void start_flusher(ss_access_log *log)
{
    pthread_mutex_lock(&log->lock);
    if (!log->flusher_running && !log->stopping) {
        /* Signals go to the program's threads, not to this one. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc =
            ss_thread_start(&log->flusher, 64 * 1024, false, flusher_main, log);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        /* Without it lines still go out when buffers fill, at thread end
         * and at close; a later line tries again. */
        log->flusher_running = rc == 0;
        atomic_store(&log->flusher_started, rc == 0);
    }
    pthread_mutex_unlock(&log->lock);
}

/* ---- threads' buffers ----------------------------------------------- */

/* The key's destructor: a thread that ends writes its lines. */
static void thread_buffer_release(void *arg)
{
    thread_buffer *b = arg;
    ss_access_log *log = b->log;
    pthread_mutex_lock(&log->lock);
    pthread_mutex_lock(&b->lock);
    flush_buffer(b);
    pthread_mutex_unlock(&b->lock);
    if (b->prev)
        b->prev->next = b->next;
    else
        log->buffers = b->next;
    if (b->next)
        b->next->prev = b->prev;
    pthread_mutex_unlock(&log->lock);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static thread_buffer *thread_buffer_get(ss_access_log *log)
{
    thread_buffer *b = pthread_getspecific(log->key);
    if (b)
        return b;
    b = malloc(sizeof *b + log->buffer_size);
    if (b == NULL)
        return NULL;
    pthread_mutex_init(&b->lock, NULL);
    b->log = log;
    b->len = 0;
    b->prev = NULL;
    if (pthread_setspecific(log->key, b) != 0) {
        pthread_mutex_destroy(&b->lock);
        free(b);
        return NULL;
    }
    pthread_mutex_lock(&log->lock);
    b->next = log->buffers;
    if (b->next)
        b->next->prev = b;
    log->buffers = b;
    pthread_mutex_unlock(&log->lock);
    return b;
}

/* A line and its newline in one write(2) (writev is atomic as write is). */
static int write_line_now(ss_access_log *log, const char *line, size_t len)
{
    char small[512];
    if (len + 1 <= sizeof small) {
        memcpy(small, line, len);
        small[len] = '\n';
        return write_lines(log, small, len + 1);
    }
    struct iovec iov[2] = {{(void *)line, len}, {(void *)"\n", 1}};
    size_t left = len + 1;
    ss__sigpipe_guard guard;
    if (log->cut_pipe)
        ss__sigpipe_block(&guard);
    int rc = 0;
    while (left > 0) {
        ssize_t w = writev(log->fd, iov, 2);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        left -= (size_t)w;
        for (int i = 0; i < 2; i++) { /* a partial write: on from there */
            size_t take =
                (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + take;
            iov[i].iov_len -= take;
            w -= (ssize_t)take;
        }
    }
    if (log->cut_pipe)
        ss__sigpipe_restore(&guard);
    return rc;
}

int ss_access_log_write(ss_access_log *log, const char *line, size_t len)
{
    if (log == NULL || (line == NULL && len > 0))
        return -EINVAL;
    reopen_if_asked(log);
    if (log->unbuffered)
        return write_line_now(log, line, len);
    thread_buffer *b = thread_buffer_get(log);
    if (b == NULL)
        return write_line_now(log, line, len); /* no memory: unbuffered */
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    if (b->len + len + 1 > log->buffer_size)
        flush_buffer(b);
    if (len + 1 > log->buffer_size) {
        rc = write_line_now(log, line, len);
    } else {
        memcpy(b->data + b->len, line, len);
        b->data[b->len + len] = '\n';
        b->len += len + 1;
    }
    pthread_mutex_unlock(&b->lock);
    if (!atomic_load_explicit(&log->flusher_started, memory_order_relaxed))
        start_flusher(log);
    return rc;
}

int ss_access_log_flush(ss_access_log *log)
{
    if (log == NULL)
        return -EINVAL;
    reopen_if_asked(log);
    flush_all_buffers(log);
    return atomic_exchange(&log->error, 0);
}

/* ---- opening and closing -------------------------------------------- */

static int check_options(const ss_access_log_options *o, size_t *size,
                         int *flush_ms)
{
    static const ss_access_log_options defaults;
    if (o == NULL)
        o = &defaults;
    double interval = o->flush_interval;
    if (!(interval >= 0 && interval <= MAX_FLUSH_INTERVAL) ||
        o->buffer_size > MAX_BUFFER_SIZE)
        return -EINVAL; /* NaN too */
    *size = o->buffer_size ? o->buffer_size : DEFAULT_BUFFER_SIZE;
    if (interval == 0)
        interval = DEFAULT_FLUSH_INTERVAL;
    /* Rounded up to a millisecond, without libm (the library links only
     * libc and pthreads): interval is at most MAX_FLUSH_INTERVAL here. */
    double exact = interval * 1000.0;
    int ms = (int)exact;
    if (ms < exact)
        ms++;
    *flush_ms = ms < 1 ? 1 : ms;
    return 0;
}

static int log_new(ss_access_log **out, int fd, bool own_fd, const char *path,
                   const ss_access_log_options *options)
{
    size_t size;
    int flush_ms;
    int rc = check_options(options, &size, &flush_ms);
    if (rc < 0)
        return rc;
    ss_access_log *log = calloc(1, sizeof *log);
    if (log == NULL)
        return -ENOMEM;
    log->fd = fd;
    log->own_fd = own_fd;
    log->unbuffered = options && options->unbuffered;
    log->buffer_size = size;
    log->flush_ms = flush_ms;
    log->wake_fd = -1;
    log->shared = MAP_FAILED;
    struct stat st;
    if (fstat(fd, &st) == 0)
        log->cut_pipe = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
    rc = -ENOMEM;
    if (path && (log->path = strdup(path)) == NULL)
        goto fail;
    log->shared = mmap(NULL, sizeof *log->shared, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (log->shared == MAP_FAILED)
        goto fail;
    atomic_init(&log->shared->reopen_requests, 0);
    log->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (log->wake_fd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = -pthread_key_create(&log->key, thread_buffer_release)) < 0)
        goto fail;
    pthread_mutex_init(&log->lock, NULL);
    pthread_mutex_lock(&open_logs_lock);
    log->next_open = open_logs;
    open_logs = log;
    pthread_mutex_unlock(&open_logs_lock);
    *out = log;
    return 0;
fail:
    if (log->wake_fd >= 0)
        close(log->wake_fd);
    if (log->shared != MAP_FAILED)
        munmap(log->shared, sizeof *log->shared);
    free(log->path);
    free(log);
    return rc;
}

int ss_access_log_open(ss_access_log **log, const char *path,
                       const ss_access_log_options *options)
{
    if (log == NULL || path == NULL || *path == '\0')
        return -EINVAL;
    size_t size;
    int flush_ms;
    int rc = check_options(options, &size, &flush_ms);
    if (rc < 0)
        return rc;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    rc = log_new(log, fd, true, path, options);
    if (rc < 0)
        close(fd);
    return rc;
}

int ss_access_log_open_fd(ss_access_log **log, int fd,
                          const ss_access_log_options *options)
{
    if (log == NULL || fd < 0)
        return fd < 0 ? -EBADF : -EINVAL;
    if (fcntl(fd, F_GETFL) < 0)
        return -EBADF;
    return log_new(log, fd, false, NULL, options);
}

int ss_access_log_close(ss_access_log *log)
{
    if (log == NULL)
        return 0;
    pthread_mutex_lock(&open_logs_lock);
    for (ss_access_log **p = &open_logs; *p; p = &(*p)->next_open)
        if (*p == log) {
            *p = log->next_open;
            break;
        }
    pthread_mutex_unlock(&open_logs_lock);

    pthread_mutex_lock(&log->lock);
    log->stopping = true;
    bool joined = log->flusher_running;
    pthread_mutex_unlock(&log->lock);
    if (joined) {
        uint64_t one = 1;
        ssize_t ignored = write(log->wake_fd, &one, sizeof one);
        (void)ignored;
        pthread_join(log->flusher, NULL);
    }
    /* No destructor runs for this key from now on: the buffers of threads
     * still alive are written and freed here. */
    pthread_key_delete(log->key);
    int rc = ss_access_log_flush(log);
    for (thread_buffer *b = log->buffers, *next; b; b = next) {
        next = b->next;
        pthread_mutex_destroy(&b->lock);
        free(b);
    }
    pthread_mutex_destroy(&log->lock);
    close(log->wake_fd);
    if (log->own_fd)
        close(log->fd);
    munmap(log->shared, sizeof *log->shared);
    free(log->path);
    free(log);
    return rc;
}

/* ---- around fork() ------------------------------------ */

void ss_access_log_flush_all(void)
{
    pthread_mutex_lock(&open_logs_lock);
    for (ss_access_log *log = open_logs; log; log = log->next_open) {
        reopen_if_asked(log);
        flush_all_buffers(log);
    }
    pthread_mutex_unlock(&open_logs_lock);
}

/* In the child, the one thread there is: whatever a thread of the parent
 * held, nothing holds now. Lines buffered after the flush before fork()
 * are the parent's to write. */
void ss__access_logs_after_fork(void)
{
    pthread_mutex_init(&open_logs_lock, NULL);
    for (ss_access_log *log = open_logs; log; log = log->next_open) {
        pthread_mutex_init(&log->lock, NULL);
        for (thread_buffer *b = log->buffers; b; b = b->next) {
            pthread_mutex_init(&b->lock, NULL);
            b->len = 0;
        }
        log->flusher_running = false;
        atomic_store(&log->flusher_started, false);
        atomic_store(&log->error, 0);
        /* The eventfd is the parent's too: a reopen there must wake the
         * parent's flusher, not be drained by this process. */
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd >= 0) {
            dup3(fd, log->wake_fd, O_CLOEXEC);
            close(fd);
        }
    }
}
