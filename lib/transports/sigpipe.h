/*
 * sigpipe.h — for the few calls on a request's socket that take no
 * MSG_NOSIGNAL (sendfile(2), and OpenSSL's kernel-TLS writes): block
 * SIGPIPE on this thread around the call and swallow the one it raised,
 * so the process's disposition is never touched (principle 5) and no
 * SIGPIPE escapes.
 *
 *     ss__sigpipe_guard guard;
 *     ss__sigpipe_block(&guard);
 *     ... the call ...
 *     ss__sigpipe_restore(&guard);
 */
#ifndef SOCKSERV_SIGPIPE_H
#define SOCKSERV_SIGPIPE_H

#include <signal.h>
#include <stdbool.h>

typedef struct ss__sigpipe_guard {
    sigset_t old;
    bool was_pending;
} ss__sigpipe_guard;

void ss__sigpipe_block(ss__sigpipe_guard *g);
/* Swallow a SIGPIPE the call raised (it may have, even when it returned a
 * count: bytes went out before the peer's reset was seen), unless one was
 * pending before — that one is not ours — and restore the mask. errno is
 * kept. */
void ss__sigpipe_restore(ss__sigpipe_guard *g);

#endif /* SOCKSERV_SIGPIPE_H */
