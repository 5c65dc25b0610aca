/*
 * children.h — the child processes of one server (see children.c).
 */
#ifndef SOCKSERV_CHILDREN_H
#define SOCKSERV_CHILDREN_H

#include <sys/types.h>

#include "internal.h"

typedef struct ss__child {
    pid_t pid;
    int pidfd; /* -1 where the kernel has no pidfd_open */
    int64_t started_ns;
    ss__limit_ticket limit; /* forking: its request's places (limits.c) */
} ss__child;

typedef struct ss__children {
    ss__child *items;
    int count;
    int capacity;
    /* Forking: reaping a child gives its limit places back to this
     * server. NULL (prefork): children hold none. */
    ss_server *server;
} ss__children;

/* Track a child just forked. -ENOMEM if it cannot be tracked. */
int ss__children_add(ss__children *c, pid_t pid);
/* Reap one finished child of ours without blocking: 1 (with its record
 * and wait status, either may be NULL) or 0 if none has finished. */
int ss__children_reap_one(ss__children *c, ss__child *child, int *status);
void ss__children_reap_finished(ss__children *c);
/* Block until one of our children has exited (not reaped yet), extra_fd
 * (may be -1) is readable (returns 1), or the deadline passes
 * (-ETIMEDOUT). Returns 0 when a child may have exited. */
int ss__children_wait_any(ss__children *c, int extra_fd, int64_t deadline);
/* Block until every child has exited, reaping them. */
void ss__children_wait_all(ss__children *c);
void ss__children_signal_all(ss__children *c, int signo);
/* In a freshly forked child: drop the parent's bookkeeping (closes the
 * inherited pidfds, reaps nothing). */
void ss__children_forget_in_child(ss__children *c);
void ss__children_free(ss__children *c);

#endif
