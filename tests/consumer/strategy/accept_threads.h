/*
 * accept_threads.h — a strategy written outside libsockserv, against its
 * installed headers only: N threads that each accept a request and serve
 * it to the end before accepting the next (the "leader/followers" shape:
 * no queue, no hand-off between threads).
 *
 *     accept_threads_options opt = {.threads = 8};
 *     ss_config cfg = {.strategy_options = &opt};
 *     ss_server_new(&srv, &ss_tcp, &accept_threads, "127.0.0.1:8000",
 *                   &handler, &cfg);
 */
#ifndef ACCEPT_THREADS_H
#define ACCEPT_THREADS_H

#include <sockserv/strategy.h>

typedef struct accept_threads_options {
    /** Threads that accept and serve; 0 (default): 4. */
    int threads;
} accept_threads_options;

extern const ss_strategy accept_threads;

#endif
