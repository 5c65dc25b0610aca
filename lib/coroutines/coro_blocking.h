/*
 * coro_blocking.h — helper threads for ss_run_blocking() under
 * ss_coroutines (see coro_blocking.c).
 */
#ifndef SOCKSERV_CORO_BLOCKING_H
#define SOCKSERV_CORO_BLOCKING_H

#include "internal.h"

/* Prepare the (lazily started) pool; stored as the strategy data, with a
 * copy of the strategy's options (ss__coro_options). */
int ss__coro_blocking_init(ss_server *srv, const ss_coroutine_options *options);
const ss_coroutine_options *ss__coro_options(const ss_server *srv);
/* Stop and join the helper threads; free the pool. */
void ss__coro_blocking_destroy(ss_server *srv);
/* Run fn(arg) on a helper thread while the calling coroutine waits. */
int ss__coro_blocking_run(ss_server *srv, ss_request *req, int (*fn)(void *arg),
                          void *arg);

#endif
