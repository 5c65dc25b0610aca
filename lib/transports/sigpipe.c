/*
 * sigpipe.c — the SIGPIPE guard of sigpipe.h.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "sigpipe.h"

void ss__sigpipe_block(ss__sigpipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
}

void ss__sigpipe_restore(ss__sigpipe_guard *g)
{
    int saved_errno = errno;
    sigset_t pending;
    if (!g->was_pending && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE)) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    errno = saved_errno;
}
