/*
 * coroutines.c — ss_coroutines: each request is a coroutine on one of
 * coro_threads epoll schedulers that share the listening socket; a wait
 * parks the coroutine until epoll or the timer heap wakes it, and a
 * shutdown resumes waiting coroutines with -ECANCELED. Design:
 * docs/strategies.md (ss_coroutines) and docs/architecture.md.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "coro_blocking.h"
#include "coro_context.h"
#include "fault.h"
#include "internal.h"

#define DEFAULT_STACK_SIZE ((size_t)256 * 1024)
#define STACK_CACHE_CAPACITY 64
#define ACCEPT_BATCH 64
#define MAX_EVENTS 256
#define SHARED_FD_RETRY_NS INT64_C(1000000)

typedef struct sched sched;

/* epoll tags: the scheduler's own descriptors have the addresses of two
 * statics; a coroutine's one-shot wait has the coroutine's address; its
 * permanent socket registration has that address with the low bit set
 * (all three are aligned, so the bit is free). */
#define SOCKET_BIT ((uintptr_t)1)

typedef struct coro {
    ss__context ctx;
    ss__stack stack;
    sched *sched;
    ss_request *req;
    int armed_fd;       /* descriptor armed in epoll for this coroutine */
    bool armed_enabled; /* ...and not fired yet: it can still wake us */
    bool cancellable;   /* waiting for input: shutdown resumes it */
    bool waiting;
    bool finished;
    int result;             /* what the pending wait returns */
    ss_server *running_for; /* its "inside a handler" mark, while parked */
    /* The request's own socket stays registered, edge-triggered, for the
     * coroutine's whole life: no epoll_ctl per wait. socket_ready collects
     * edges that came while the coroutine was not waiting for them. */
    bool socket_registered;
    bool waiting_on_socket;
    uint32_t socket_wanted;
    uint32_t socket_ready;
    /* The peer's FIN (or an error) has been seen: end of input is
     * readable for good, and no further edge will announce it again. */
    bool socket_input_ended;
    /* What ended the last wait: SS_READY_INPUT for the socket wait,
     * SS_READY_FD for the armed descriptor (ss_wait_input_or_fd). */
    int woke;
    int64_t deadline;
    size_t heap_index; /* position in the timer heap, or NOT_IN_HEAP */
    struct coro *next_ready;
    struct coro *prev_live, *next_live;
} coro;

#define NOT_IN_HEAP ((size_t)-1)

struct sched {
    ss_server *srv;
    int epfd;
    ss__context main_ctx;
    coro *ready_head, *ready_tail;
    coro **heap; /* timers: min-heap on deadline */
    size_t heap_len, heap_cap;
    coro *live;
    int live_count;
    ss__stack_cache stacks;
    bool stopping;
    pthread_t thread;
    int rc;
    /* The scheduler on the thread that called ss_serve_forever runs the
     * server's service_actions hook, at least every service_ms. */
    bool primary;
    int service_ms;
    /* The listening socket: whether this scheduler accepts at all, and
     * whether it is in the epoll set now (see gate_listener). */
    bool accepts;
    bool listening;
    ss_accept_pause pause;
};

/* Tags for the scheduler's own descriptors in epoll. */
static long listener_tag, wake_tag;

static _Thread_local sched *current_sched;

/* ---- timers -------------------------------------------------------- */

static void heap_swap(sched *s, size_t a, size_t b)
{
    coro *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_index = a;
    s->heap[b]->heap_index = b;
}

static void heap_up(sched *s, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->deadline <= s->heap[i]->deadline)
            break;
        heap_swap(s, i, parent);
        i = parent;
    }
}

static void heap_down(sched *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->heap_len && s->heap[l]->deadline < s->heap[m]->deadline)
            m = l;
        if (r < s->heap_len && s->heap[r]->deadline < s->heap[m]->deadline)
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static int timer_add(sched *s, coro *c)
{
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        coro **grown = realloc(s->heap, cap * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        s->heap = grown;
        s->heap_cap = cap;
    }
    c->heap_index = s->heap_len;
    s->heap[s->heap_len++] = c;
    heap_up(s, c->heap_index);
    return 0;
}

static void timer_remove(sched *s, coro *c)
{
    size_t i = c->heap_index;
    if (i == NOT_IN_HEAP)
        return;
    c->heap_index = NOT_IN_HEAP;
    s->heap_len--;
    if (i == s->heap_len)
        return;
    s->heap[i] = s->heap[s->heap_len];
    s->heap[i]->heap_index = i;
    heap_up(s, i);
    heap_down(s, s->heap[i]->heap_index);
}

/* ---- run queue and resuming ----------------------------------------- */

static void make_ready(sched *s, coro *c, int result)
{
    c->result = result;
    c->waiting = false;
    timer_remove(s, c);
    c->next_ready = NULL;
    if (s->ready_tail)
        s->ready_tail->next_ready = c;
    else
        s->ready_head = c;
    s->ready_tail = c;
}

/* Stop watching the descriptor a coroutine waited on (after a timeout, a
 * cancel, or a wake by its other source): a later event must not resume a
 * coroutine that moved on. A registration that has fired is disabled
 * (EPOLLONESHOT) and is left alone: its descriptor may have been closed
 * since (ss_run_blocking's eventfd is) and the number reused by another
 * request's socket in this epoll set, which a DEL by number would
 * unregister. Closing the descriptor removes it from the set. */
static void disarm(sched *s, coro *c)
{
    if (c->armed_fd >= 0 && c->armed_enabled)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->armed_fd, NULL);
    c->armed_fd = -1;
    c->armed_enabled = false;
}

/* ---- the io class --------------------------------------------------- */

static int arm(sched *s, coro *c, int fd, short events)
{
    struct epoll_event ev = {.data.ptr = c, .events = EPOLLONESHOT};
    if (events & POLLIN)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (events & POLLOUT)
        ev.events |= EPOLLOUT;
    if (c->armed_fd == fd) {
        if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) {
            c->armed_enabled = true;
            return 0;
        }
    }
    disarm(s, c);
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 &&
        (errno != EEXIST || epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) < 0))
        return -errno;
    c->armed_fd = fd;
    c->armed_enabled = true;
    return 0;
}

static uint32_t epoll_bits(short events)
{
    uint32_t bits = EPOLLERR | EPOLLHUP;
    if (events & POLLIN)
        bits |= EPOLLIN | EPOLLRDHUP;
    if (events & POLLOUT)
        bits |= EPOLLOUT;
    return bits;
}

/* Wait on the request's own socket through its permanent edge-triggered
 * registration. Returns 1 when the wait is already satisfied by an edge
 * seen earlier, 0 when the caller must park, or a negative errno. */
static int prepare_socket_wait(sched *s, coro *c, int fd, short events)
{
    uint32_t wanted = epoll_bits(events);
    if (!c->socket_registered) {
        struct epoll_event ev = {
            .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
            .data.u64 = (uintptr_t)c | SOCKET_BIT,
        };
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            return -errno;
        c->socket_registered = true;
    } else if (c->socket_ready & wanted) {
        c->socket_ready &= ~wanted;
        return 1; /* the caller retries its system call */
    } else if ((events & POLLIN) && c->socket_input_ended) {
        return 1; /* a read will see the end (or the error) at once */
    }
    c->waiting_on_socket = true;
    c->socket_wanted = wanted;
    return 0;
}

static int coro_wait(ss_request *req, int fd, short events, int64_t deadline,
                     bool cancellable)
{
    coro *c = ss_request_strategy_data(req);
    sched *s = c->sched;
    c->cancellable = cancellable;
    if (s->stopping && c->cancellable)
        return -ECANCELED; /* like ss_blocking_io's readable cancel_fd */
    /* The server's own socket is watched by the scheduler (and shared by
     * every datagram request): retry on a short timer instead. */
    if (fd >= 0 && fd == ss_server_fileno(s->srv)) {
        int64_t retry = ss_now_ns() + SHARED_FD_RETRY_NS;
        if (deadline == SS_NO_DEADLINE || retry < deadline)
            deadline = retry;
        fd = -1;
    }
    if (fd >= 0 && fd == ss_request_fileno(req) && !ss_request_is_datagram(req)) {
        int rc = prepare_socket_wait(s, c, fd, events);
        if (rc != 0)
            return rc > 0 ? 0 : rc;
    } else if (fd >= 0) {
        int rc = arm(s, c, fd, events);
        if (rc < 0)
            return rc;
    }
    c->deadline = deadline;
    if (deadline != SS_NO_DEADLINE && timer_add(s, c) < 0) {
        disarm(s, c);
        return -ENOMEM;
    }
    if (fd < 0 && deadline == SS_NO_DEADLINE)
        return -EINVAL; /* would never wake */
    c->waiting = true;
    ss__context_switch(&c->ctx, &s->main_ctx);
    c->waiting_on_socket = false;
    return c->result;
}

/* ss_wait_input_or_fd: park on the request's socket (its permanent
 * registration, for input) and on fd (armed one-shot) at once. dispatch()
 * records in c->woke which of them ended the wait; both may have. */
static int coro_wait_input_or_fd(ss_request *req, int fd, short events,
                                 int64_t deadline)
{
    coro *c = ss_request_strategy_data(req);
    sched *s = c->sched;
    c->cancellable = true;
    if (s->stopping)
        return -ECANCELED;
    /* Edge-triggered, the socket announces input only when more arrives.
     * After a recv() that filled the read buffer more may be waiting
     * already, which no edge will announce (and a client whose window is
     * full sends nothing more): ask the socket. */
    if (ss__fd_ready_now(ss_request_fileno(req), POLLIN))
        return SS_READY_INPUT | ss__fd_ready_now(fd, events);
    int rc = prepare_socket_wait(s, c, ss_request_fileno(req), POLLIN);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        /* An edge seen earlier. It may be for input read since (a recv()
         * came after it): the end of the stream stays, but anything else
         * is believed only if the socket says so. An empty socket gets a
         * new edge with new input, so parking is then safe. */
        if (c->socket_input_ended || ss__fd_ready_now(ss_request_fileno(req), POLLIN))
            return SS_READY_INPUT | ss__fd_ready_now(fd, events);
        c->waiting_on_socket = true;
        c->socket_wanted = epoll_bits(POLLIN);
    }
    rc = arm(s, c, fd, events);
    if (rc == 0 && deadline != SS_NO_DEADLINE) {
        c->deadline = deadline;
        rc = timer_add(s, c);
        if (rc < 0)
            disarm(s, c);
    }
    if (rc < 0) {
        c->waiting_on_socket = false;
        return rc;
    }
    c->woke = 0;
    c->waiting = true;
    ss__context_switch(&c->ctx, &s->main_ctx);
    c->waiting_on_socket = false;
    if (c->armed_enabled) /* woken by the socket: fd must not wake us */
        disarm(s, c);
    if (c->result < 0)
        return c->result;
    int ready = c->woke;
    /* The other source may have fired in the same epoll round. */
    if (!(ready & SS_READY_INPUT) &&
        ((c->socket_ready & c->socket_wanted) || c->socket_input_ended)) {
        c->socket_ready &= ~c->socket_wanted;
        ready |= SS_READY_INPUT;
    }
    return ready;
}

static int coro_run_blocking(ss_request *req, int (*fn)(void *), void *arg)
{
    coro *c = ss_request_strategy_data(req);
    return ss__coro_blocking_run(c->sched->srv, req, fn, arg);
}

static const ss_wait_class coro_wait_class = {
    .name = "coroutines",
    .wait = coro_wait,
    .run_blocking = coro_run_blocking,
    .wait_input_or_fd = coro_wait_input_or_fd,
};

/* ---- coroutines ----------------------------------------------------- */

static void coro_main(void *arg)
{
    coro *c = arg;
    ss_run_request(c->sched->srv, c->req);
    c->req = NULL;
    c->finished = true;
    ss__context_switch(&c->ctx, &c->sched->main_ctx);
    /* never resumed */
}

static void live_remove(sched *s, coro *c)
{
    if (c->prev_live)
        c->prev_live->next_live = c->next_live;
    else
        s->live = c->next_live;
    if (c->next_live)
        c->next_live->prev_live = c->prev_live;
    s->live_count--;
}

static int spawn(sched *s, ss_request *req)
{
    coro *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int rc = ss__fault_should_fail(SS_FAULT_STACK)
                 ? -ENOMEM
                 : ss__stack_alloc(&s->stacks, &c->stack);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->sched = s;
    c->req = req;
    c->armed_fd = -1;
    c->heap_index = NOT_IN_HEAP;
    ss_request_set_wait_class(req, &coro_wait_class);
    ss_request_set_strategy_data(req, c);
    ss__context_make(&c->ctx, &c->stack, coro_main, c);
    c->next_live = s->live;
    if (s->live)
        s->live->prev_live = c;
    s->live = c;
    s->live_count++;
    make_ready(s, c, 0);
    return 0;
}

static void reap(sched *s, coro *c)
{
    live_remove(s, c);
    timer_remove(s, c);
    ss__context_destroy(&c->ctx);
    ss__stack_free(&s->stacks, &c->stack);
    free(c);
}

static void run_ready(sched *s)
{
    /* Only what is ready now: coroutines that yield go to the back and run
     * in the next round, after epoll has been asked again. */
    coro *tail = s->ready_tail;
    bool last = false;
    while (s->ready_head && !last) {
        coro *c = s->ready_head;
        s->ready_head = c->next_ready;
        if (!s->ready_head)
            s->ready_tail = NULL;
        last = c == tail;
        /* The thread's "running a request of" mark belongs to whichever
         * coroutine runs; see ss_server_close's refusal. */
        ss_server *scheduler_mark = ss__running_for_swap(c->running_for);
        ss__context_switch(&s->main_ctx, &c->ctx);
        c->running_for = ss__running_for_swap(scheduler_mark);
        if (c->finished)
            reap(s, c);
    }
}

/* ---- the scheduler loop --------------------------------------------- */

static void begin_stopping(sched *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, ss_server_fileno(s->srv), NULL);
    s->listening = false;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, ss_server_wake_fd(s->srv), NULL);
    for (coro *c = s->live; c; c = c->next_live) {
        if (c->waiting && c->cancellable) {
            disarm(s, c);
            make_ready(s, c, -ECANCELED);
        }
    }
}

static void accept_batch(sched *s)
{
    for (int i = 0; i < ACCEPT_BATCH && !s->stopping; i++) {
        /* get_request, verify_request, then our process_request, which
         * spawns on this thread's scheduler. */
        int rc = ss_server_accept_request(s->srv);
        ss_accept_pause_update(s->srv, &s->pause, rc);
        if (rc < 0)
            break;
    }
}

/* Keep the listening socket in this scheduler's epoll set only while it
 * may accept: not while the server is at max_connections (the request
 * that makes room writes the wake eventfd, which brings every scheduler
 * round to here) nor during a pause after EMFILE & co., when the socket
 * stays readable and would wake us at once, forever. EPOLLEXCLUSIVE
 * registrations cannot be modified, only deleted and added again.
 * Returns the epoll timeout, shortened to the end of a pause. */
static int gate_listener(sched *s, int timeout)
{
    if (!s->accepts || s->stopping)
        return timeout;
    int pause_ms = ss_accept_pause_left_ms(&s->pause);
    bool want = pause_ms == 0 && !ss_server_at_capacity(s->srv);
    if (want && !s->listening) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
                                 .data.ptr = &listener_tag};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, ss_server_fileno(s->srv), &ev) == 0) {
            s->listening = true;
        } else {
            ss_accept_pause_update(s->srv, &s->pause, -errno);
            pause_ms = ss_accept_pause_left_ms(&s->pause);
        }
    } else if (!want && s->listening) {
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, ss_server_fileno(s->srv), NULL);
        s->listening = false;
    }
    if (pause_ms > 0 && (timeout < 0 || timeout > pause_ms))
        timeout = pause_ms;
    return timeout;
}

static int epoll_timeout_ms(sched *s)
{
    if (s->ready_head)
        return 0;
    if (s->heap_len == 0)
        return -1;
    return ss_poll_timeout_ms(s->heap[0]->deadline);
}

static void expire_timers(sched *s)
{
    int64_t now = ss_now_ns();
    while (s->heap_len > 0 && s->heap[0]->deadline <= now) {
        coro *c = s->heap[0];
        disarm(s, c);
        make_ready(s, c, -ETIMEDOUT);
    }
}

static int sched_init(sched *s, ss_server *srv, bool listen)
{
    memset(s, 0, sizeof *s);
    s->srv = srv;
    size_t stack = ss__coro_options(srv)->stack_size
                       ? ss__coro_options(srv)->stack_size
                       : DEFAULT_STACK_SIZE;
    ss__stack_cache_init(&s->stacks, stack, STACK_CACHE_CAPACITY);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        return -errno;
    if (!listen)
        return 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
                             .data.ptr = &listener_tag};
    struct epoll_event wake = {.events = EPOLLIN, .data.ptr = &wake_tag};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, ss_server_fileno(srv), &ev) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, ss_server_wake_fd(srv), &wake) < 0) {
        int rc = -errno;
        close(s->epfd);
        return rc;
    }
    s->accepts = s->listening = true;
    return 0;
}

static void sched_destroy(sched *s)
{
    ss__context_destroy(&s->main_ctx);
    close(s->epfd);
    free(s->heap);
    ss__stack_cache_destroy(&s->stacks);
}

/* One epoll event: the scheduler's own descriptors, a coroutine's
 * permanent socket registration, or a coroutine's one-shot wait. */
static void dispatch(sched *s, const struct epoll_event *ev)
{
    void *tag = ev->data.ptr;
    if (tag == &wake_tag) {
        if (ss_server_shutdown_requested(s->srv))
            begin_stopping(s);
        else
            ss_server_drain_wake_fd(s->srv); /* stale: an earlier run */
    } else if (tag == &listener_tag) {
        accept_batch(s);
    } else if ((uintptr_t)tag & SOCKET_BIT) {
        coro *c = (coro *)((uintptr_t)tag & ~SOCKET_BIT);
        if (ev->events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            c->socket_input_ended = true;
        if (c->waiting && c->waiting_on_socket &&
            (ev->events & c->socket_wanted)) {
            c->woke |= SS_READY_INPUT;
            make_ready(s, c, 0);
        } else {
            c->socket_ready |= ev->events;
        }
    } else {
        coro *c = tag;
        c->armed_enabled = false; /* one-shot: it has fired */
        c->woke |= SS_READY_FD;
        if (c->waiting)
            make_ready(s, c, 0);
    }
}

static int sched_run(sched *s)
{
    struct epoll_event events[MAX_EVENTS];
    current_sched = s;
    for (;;) {
        run_ready(s);
        if (s->stopping && s->live_count == 0)
            break;
        int timeout = epoll_timeout_ms(s);
        if (s->primary && (timeout < 0 || timeout > s->service_ms))
            timeout = s->service_ms;
        timeout = gate_listener(s, timeout);
        int n = epoll_wait(s->epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            s->rc = -errno;
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(s, &events[i]);
        expire_timers(s);
        if (s->primary && !s->stopping)
            ss_server_kind(s->srv)->service_actions(s->srv); /* Python: every loop */
        if (ss_server_shutdown_requested(s->srv))
            begin_stopping(s);
    }
    current_sched = NULL;
    return s->rc;
}

static void *sched_thread(void *arg)
{
    sched *s = arg;
    bool reporting =
        !ss__coro_options(s->srv)->no_overflow_report &&
        ss__coro_thread_init() == 0;
    sched_run(s);
    if (reporting)
        ss__coro_thread_fini();
    return NULL;
}

/* ---- the strategy --------------------------------------------------- */

static int coro_init(ss_server *srv, const void *options)
{
    ss_coroutine_options opt = {0};
    if (options)
        opt = *(const ss_coroutine_options *)options;
    const char *bad = NULL;
    if (opt.threads < 0)
        bad = "sockserv: ss_coroutine_options.threads: must not be negative "
              "(0: the CPU count)";
    else if (opt.blocking_threads < 0)
        bad = "sockserv: ss_coroutine_options.blocking_threads: must not be "
              "negative (0: 4)";
    else if (opt.stack_size > ((size_t)1 << 30))
        bad = "sockserv: ss_coroutine_options.stack_size: at most 1 GiB "
              "(0: 256 KiB)";
    if (bad) {
        ss_server_log(srv, bad);
        return -EINVAL;
    }
    return ss__coro_blocking_init(srv, &opt);
}

/* Spawn on the scheduler of this thread. Called by accept_batch() through
 * the core, or by ss_handle_request() from a plain thread: then a
 * one-request scheduler runs the coroutine to its end, right here. */
static int coro_process_request(ss_server *srv, ss_request *req)
{
    if (current_sched)
        return spawn(current_sched, req);
    sched s;
    int rc = sched_init(&s, srv, false);
    if (rc < 0)
        return rc;
    rc = spawn(&s, req);
    if (rc == 0) {
        current_sched = &s;
        while (s.live_count > 0) {
            run_ready(&s);
            if (s.live_count == 0)
                break;
            struct epoll_event events[16];
            int n = epoll_wait(s.epfd, events, 16, epoll_timeout_ms(&s));
            for (int i = 0; i < n; i++)
                dispatch(&s, &events[i]);
            expire_timers(&s);
        }
        current_sched = NULL;
    }
    sched_destroy(&s);
    return rc;
}

static int coro_serve_forever(ss_server *srv, double poll_interval)
{
    const ss_coroutine_options *opt = ss__coro_options(srv);
    int nthreads = opt->threads ? opt->threads : ss_cpu_count();
    sched *scheds = calloc((size_t)nthreads, sizeof *scheds);
    if (!scheds)
        return -ENOMEM;
    /* A stack overflow should say so, not just "Segmentation fault". */
    bool reporting = !opt->no_overflow_report &&
                     ss__coro_install_overflow_reporter() == 0;
    int rc = 0, started = 0;
    for (; started < nthreads; started++) {
        rc = sched_init(&scheds[started], srv, true);
        if (rc < 0)
            break;
        /* Scheduler 0 runs on this thread, the others on their own. */
        if (started > 0 &&
            pthread_create(&scheds[started].thread, NULL, sched_thread,
                           &scheds[started]) != 0) {
            sched_destroy(&scheds[started]);
            rc = -EAGAIN;
            break;
        }
    }
    if (started > 0) {
        scheds[0].primary = true;
        /* Timers wake the loops; poll_interval only paces
         * service_actions. */
        scheds[0].service_ms = ss__poll_interval_ms(poll_interval);
        if (rc < 0)
            ss_shutdown(srv); /* could not start them all: stop the rest */
        int first = sched_run(&scheds[0]);
        if (rc == 0)
            rc = first;
        for (int i = 1; i < started; i++) {
            pthread_join(scheds[i].thread, NULL);
            if (rc == 0)
                rc = scheds[i].rc;
        }
        for (int i = 0; i < started; i++)
            sched_destroy(&scheds[i]);
    }
    if (reporting)
        ss__coro_thread_fini();
    free(scheds);
    return rc;
}

static void coro_destroy(ss_server *srv)
{
    ss__coro_blocking_destroy(srv);
}

const ss_strategy ss_coroutines = {
    .name = "coro",
    /* Requests switch to coro_wait_class when spawned (ss_handle_request
     * runs one in a one-request scheduler of its own). */
    .wait_class = &ss_blocking_wait,
    .init = coro_init,
    .process_request = coro_process_request,
    .destroy = coro_destroy,
    .serve_forever = coro_serve_forever,
};
