/*
 * signals.c — ss_shutdown_on_signals(): the opt-in handler that turns
 * SIGINT and SIGTERM into ss_shutdown() for the registered servers, the
 * one piece of process-wide state in the library; the previous
 * dispositions come back when the last server is freed, and in forked
 * request children. Behaviour and its one limit: docs/architecture.md
 * ("Signals").
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "internal.h"

#define MAX_SERVERS 16

static const int shutdown_signals[] = {SIGINT, SIGTERM};
#define NSIGNALS (sizeof shutdown_signals / sizeof shutdown_signals[0])

static _Atomic(ss_server *) registered[MAX_SERVERS];
/* Guards installing and restoring, never taken in the handler. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction previous[NSIGNALS];
static int registered_count;

static void on_shutdown_signal(int signo)
{
    (void)signo;
    for (int i = 0; i < MAX_SERVERS; i++) {
        ss_server *srv = atomic_load(&registered[i]);
        if (srv)
            ss_shutdown(srv);
    }
}

static int install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_shutdown_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < NSIGNALS; i++) {
        if (sigaction(shutdown_signals[i], &sa, &previous[i]) < 0) {
            int rc = -errno;
            while (i-- > 0)
                sigaction(shutdown_signals[i], &previous[i], NULL);
            return rc;
        }
    }
    return 0;
}

static void restore(void)
{
    for (size_t i = 0; i < NSIGNALS; i++)
        sigaction(shutdown_signals[i], &previous[i], NULL);
}

int ss_shutdown_on_signals(ss_server *srv)
{
    if (!srv)
        return -EINVAL;
    int rc = 0, free_slot = -1;
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < MAX_SERVERS; i++) {
        ss_server *s = atomic_load(&registered[i]);
        if (s == srv)
            goto out; /* already registered */
        if (!s && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0) {
        rc = -ENOSPC;
        goto out;
    }
    if (registered_count == 0) {
        rc = install();
        if (rc < 0)
            goto out;
    }
    atomic_store(&registered[free_slot], srv);
    registered_count++;
out:
    pthread_mutex_unlock(&table_lock);
    return rc;
}

void ss__signals_reset_in_child(void)
{
    /* Only the forking thread exists in the child, and the lock may have
     * been held by another thread at fork time: start it afresh. */
    pthread_mutex_init(&table_lock, NULL);
    if (registered_count > 0)
        restore();
    registered_count = 0;
    for (int i = 0; i < MAX_SERVERS; i++)
        atomic_store(&registered[i], NULL);
}

void ss__signals_forget(ss_server *srv)
{
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (atomic_load(&registered[i]) == srv) {
            atomic_store(&registered[i], NULL);
            if (--registered_count == 0)
                restore();
        }
    }
    pthread_mutex_unlock(&table_lock);
}
