/*
 * file_cache.h — sockserv-httpd's open-file cache: what a file request
 * needs (stat, validators, content type, and the bytes of a small file or
 * the open descriptor of a large one), kept between requests and never
 * stale. docs/httpd.md ("File cache") gives the design and the argument.
 *
 * Only regular, readable files reached without any symlink are cached:
 * every other request takes the ordinary path (paths.c), so a hit can
 * never bypass a check a miss would make. Entries are invalidated by
 * inotify watches on the file and on every directory from the served root
 * down to it; the watch queue is read before every lookup, so an event
 * the kernel queued before the request arrived is applied before the
 * request is answered. A lookup that knows when its request arrived
 * skips that read when one that began later has been applied
 * (drain_mark.h).
 */
#ifndef SOCKSERV_HTTPD_FILE_CACHE_H
#define SOCKSERV_HTTPD_FILE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Files up to this size are kept in memory (the HTTP handler sends a head
 * and a body this small in one send); larger ones keep their descriptor,
 * for sendfile. */
#define FILE_CACHE_SMALL (16 * 1024)

typedef struct file_cache file_cache;

/* What a hit serves: read-only while the caller holds it. */
typedef struct file_cache_file {
    struct stat st;
    int fd;            /* open for reading; -1 when bytes holds the file */
    const char *bytes; /* the whole file (st.st_size bytes), or NULL */
    char etag[64], modified[64];
    const char *type; /* Content-Type */
} file_cache_file;

typedef struct file_cache_stats {
    uint64_t hits, misses, invalidated, evicted, uncacheable;
    /* Lookups that read the inotify queue, and those that did not need
     * to (a read that began after their request arrived had been done). */
    uint64_t queue_reads, queue_reads_skipped;
    size_t entries, bytes, descriptors, watches;
    bool inotify; /* false: watches unavailable, nothing is cached */
} file_cache_stats;

/* A cache for the files below root_fd (an O_PATH descriptor of the served
 * directory, which must outlive it), holding at most max_entries files,
 * max_bytes of small files' bytes and max_fds descriptors of large ones.
 * validators fills a file's ETag and Last-Modified, type names its
 * Content-Type (static_files.c and mime.c: one spelling for hits and
 * misses). Returns NULL when out of memory. Usable from any thread; after
 * fork() the child starts with an empty cache and its own inotify queue. */
file_cache *file_cache_new(int root_fd, size_t max_entries, size_t max_bytes,
                           size_t max_fds,
                           void (*validators)(const struct stat *st,
                                              char etag[64], char modified[64]),
                           const char *(*type)(const char *name));
void file_cache_free(file_cache *c);

/* The file at relative (a confined path from httpd_path_parse), from the
 * cache or opened, watched and added to it now. NULL when it is not
 * cacheable (absent, not a regular file, unreadable, reached through a
 * symlink, no watch possible, bounds full for it): the caller then takes
 * the ordinary path, which answers it. A file returned is held until
 * file_cache_release(). arrived_ns: when the request's bytes reached this
 * machine (ss_request_input_time(), CLOCK_REALTIME ns), or 0 when not
 * known; it only decides whether the inotify queue must be read first. */
const file_cache_file *file_cache_get(file_cache *c, const char *relative,
                                      int64_t arrived_ns);
void file_cache_release(file_cache *c, const file_cache_file *file);

void file_cache_get_stats(file_cache *c, file_cache_stats *out);

#endif /* SOCKSERV_HTTPD_FILE_CACHE_H */
