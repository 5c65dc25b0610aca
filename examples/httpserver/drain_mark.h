/*
 * drain_mark.h — "has a read of the inotify queue that began after this
 * request arrived already been applied?", answered from the clock instead
 * of with a system call.
 *
 * The file cache must apply every change the kernel queued before a
 * request arrived before it answers the request (file_cache.h). Reading
 * the queue for each request costs a read(); but when another request's
 * read of the queue began after this request's bytes arrived (the
 * kernel's receive stamp, ss_request_input_time()), every event queued
 * before the arrival was in the queue for that read, and is applied.
 *
 * Both times are CLOCK_REALTIME, which can be stepped. A step changes
 * the distance between CLOCK_REALTIME and CLOCK_MONOTONIC (slewing moves
 * both alike), so each drain records that distance, and a reader that
 * finds it fallen by more than a few microseconds (a backward step, the
 * only kind that can make an arrival look earlier) answers "no": the
 * caller then reads the queue itself. Steps smaller than that are
 * covered by a margin. docs/httpd.md ("File cache") has the argument.
 */
#ifndef SOCKSERV_HTTPD_DRAIN_MARK_H
#define SOCKSERV_HTTPD_DRAIN_MARK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* When the newest completed read of the queue began, written under the
 * cache's drain lock, read by any thread (a sequence lock: a reader
 * takes both numbers of the same drain or none). */
typedef struct drain_mark {
    _Atomic uint64_t seq;      /* odd while being written */
    _Atomic int64_t real_ns;   /* CLOCK_REALTIME; 0: no usable drain */
    _Atomic int64_t offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC then */
} drain_mark;

/* The clocks read just before a drain reads the queue. */
typedef struct drain_start {
    int64_t real_ns, offset_ns; /* real_ns 0: reading was interrupted */
} drain_start;

void drain_mark_init(drain_mark *m);
drain_start drain_mark_begin(void);
/* After the drain that began at start has applied what it read; writers
 * are serialised by the caller. */
void drain_mark_publish(drain_mark *m, drain_start start);
/* True when a drain that began after arrived_ns (a receive stamp; 0 or
 * less: not known) has completed, and no step of the clock can have
 * swapped the two. False means: read the queue. */
bool drain_mark_covers(drain_mark *m, int64_t arrived_ns);

#endif /* SOCKSERV_HTTPD_DRAIN_MARK_H */
