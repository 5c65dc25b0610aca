/*
 * file_cache.c — the open-file cache (file_cache.h; the argument that it
 * is never stale is in docs/httpd.md, "File cache", with its one
 * assumption: the realtime clock is not stepped back and forth again
 * within microseconds, see drain_mark.h).
 *
 * Entries live in 16 shards, each a hash table and an LRU list under its
 * own mutex; an entry is reference counted, so one being served survives
 * its eviction or invalidation. Each entry records the inotify watches it
 * depends on — the served root, every directory down to the file, the
 * file itself — with each watch's generation at the moment the entry was
 * filled. Reading the inotify queue bumps the generation of the watch an
 * event names; an entry is valid while every generation it recorded is
 * still current (and the cache's epoch, bumped on a queue overflow).
 *
 * Order of a fill, which is what makes it safe: a directory is watched
 * before anything in it is looked up, and the file is watched before it
 * is stat'ed and read. So any change after the look-up queues an event
 * that postdates the recorded generation; any change before it is what
 * was read. Every lookup reads the queue first (one read() that finds it
 * empty), so an event queued before the request arrived is applied before
 * the request is answered — unless a read of the queue that began after
 * the request's bytes arrived has been applied already (drain_mark.h):
 * then it has nothing to add, and the lookup makes no system call.
 */
#include "file_cache.h"

#include "drain_mark.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHARDS 16
/* Directories from the root to a file; deeper files are not cached. */
#define MAX_DEPTH 32
#define WATCH_BUCKETS 1024

/* A directory is watched for changes to its names and to itself; changes
 * to a child's attributes are the child's own watch's business. */
#define DIR_MASK                                                               \
    (IN_ATTRIB | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF |       \
     IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)
/* A file's own watch sees writes through any of its names (a hard link
 * elsewhere, an open descriptor) and chmod/chown. */
#define FILE_MASK (IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
#define NAME_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)

typedef struct watch {
    int wd;
    unsigned refs;        /* entries (and fills) using it; watch_lock */
    _Atomic uint64_t gen; /* bumped by every event that concerns it */
    bool dead;            /* the kernel dropped it (IN_IGNORED) */
    struct watch *next;   /* hash chain by wd, while not dead */
} watch;

typedef struct dependency {
    watch *w;
    uint64_t gen;
} dependency;

typedef struct entry {
    file_cache_file file; /* first: a file_cache_file * is an entry * */
    char *key;
    uint64_t hash;
    _Atomic unsigned refs; /* the shard's, and each holder's */
    size_t cost;           /* bytes counted against the byte bound */
    uint64_t epoch;
    size_t n_deps;
    dependency deps[MAX_DEPTH + 2];
    struct entry *chain;         /* the shard's hash chain */
    struct entry *newer, *older; /* the shard's LRU list */
} entry;

typedef struct shard {
    pthread_mutex_t lock;
    entry **buckets;
    size_t mask; /* buckets - 1 */
    entry *newest, *oldest;
    size_t entries, bytes, fds;
} shard;

struct file_cache {
    int root_fd;
    int ifd; /* the inotify queue; -1: nothing is cached */
    size_t max_entries, max_bytes, max_fds; /* per shard */
    void (*validators)(const struct stat *, char[64], char[64]);
    const char *(*type)(const char *);
    pthread_mutex_t drain_lock; /* one reader of the queue at a time */
    drain_mark drained;         /* when the newest complete read began */
    int64_t born_ns; /* CLOCK_REALTIME when made (or forked): an arrival
                        stamped before it is not trusted (catch_up) */
    pthread_mutex_t watch_lock; /* the watch table, refs, add/rm */
    watch *watches[WATCH_BUCKETS];
    size_t n_watches;
    watch *root;            /* held for the cache's life: requests that turn out
                             * uncacheable do not add and remove it each time */
    _Atomic uint64_t epoch; /* bumped on IN_Q_OVERFLOW: everything stale */
    _Atomic uint64_t hits, misses, invalidated, evicted, uncacheable;
    _Atomic uint64_t queue_reads, queue_reads_skipped;
    shard shards[SHARDS];
};

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- watches ------------------------------------------------------------ */

static watch **watch_slot(file_cache *c, int wd)
{
    watch **slot = &c->watches[(unsigned)wd % WATCH_BUCKETS];
    while (*slot != NULL && (*slot)->wd != wd)
        slot = &(*slot)->next;
    return slot;
}

/* A watch on what fd is open on (the magic link names exactly that inode,
 * so nothing can be swapped in between), with a reference; NULL when the
 * kernel will not add one (max_user_watches) or out of memory. */
static watch *watch_acquire(file_cache *c, int fd, uint32_t mask)
{
    char path[40];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    pthread_mutex_lock(&c->watch_lock);
    watch *w = NULL;
    int wd = inotify_add_watch(c->ifd, path, mask);
    if (wd >= 0) {
        watch **slot = watch_slot(c, wd);
        w = *slot;
        if (w == NULL && (w = calloc(1, sizeof *w)) != NULL) {
            w->wd = wd;
            *slot = w;
            c->n_watches++;
        }
        /* Out of memory leaves a kernel watch without a struct: its
         * events are ignored, and it goes with the queue. */
        if (w != NULL)
            w->refs++;
    }
    pthread_mutex_unlock(&c->watch_lock);
    return w;
}

static void watch_release(file_cache *c, watch *w)
{
    pthread_mutex_lock(&c->watch_lock);
    if (--w->refs == 0) {
        if (!w->dead) {
            *watch_slot(c, w->wd) = w->next;
            c->n_watches--;
            inotify_rm_watch(c->ifd, w->wd);
        }
        free(w);
    }
    pthread_mutex_unlock(&c->watch_lock);
}

/* One event: bump the generation of the watch it names. A name event on a
 * directory (a child created, deleted, renamed) concerns it; a child's
 * attribute change also arrives named, and concerns only the child,
 * which has its own watch if anything depends on it. Called with
 * watch_lock held. */
static void apply_event(file_cache *c, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        atomic_fetch_add(&c->epoch, 1); /* events lost: all stale */
        return;
    }
    watch **slot = watch_slot(c, ev->wd);
    watch *w = *slot;
    if (w == NULL || (ev->len > 0 && !(ev->mask & NAME_EVENTS)))
        return;
    atomic_fetch_add(&w->gen, 1);
    if (ev->mask & IN_IGNORED) { /* removed by the kernel: it is gone */
        *slot = w->next;
        w->dead = true;
        c->n_watches--;
    }
}

/* Apply every event queued so far. One read() finds an empty queue; a
 * read that did not fill the buffer returned every event there was. A
 * drain that read the queue to its end is published as the newest
 * (drain_mark.h); one cut short by an error is not. Called with
 * drain_lock held. */
static void drain_locked(file_cache *c)
{
    enum { SIZE = 4096 };
    _Alignas(struct inotify_event) char buf[SIZE];
    drain_start start = drain_mark_begin();
    bool complete = false;
    for (;;) {
        ssize_t n = read(c->ifd, buf, SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            complete = true; /* empty */
        if (n <= 0)
            break;
        pthread_mutex_lock(&c->watch_lock);
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const void *)p;
            apply_event(c, ev);
            p += sizeof *ev + ev->len;
        }
        pthread_mutex_unlock(&c->watch_lock);
        if ((size_t)n < SIZE - sizeof(struct inotify_event) - NAME_MAX - 1) {
            complete = true;
            break;
        }
    }
    if (complete)
        drain_mark_publish(&c->drained, start);
}

/* Before a lookup for a request that arrived at arrived_ns (0: not
 * known): apply every event queued before then. Nothing to do when a
 * drain that began after the arrival is complete — also one that another
 * thread finished while this one waited for the lock. */
static void catch_up(file_cache *c, int64_t arrived_ns)
{
    /* A stamp from before the cache existed is no receive time of this
     * server's (old kernels could pass a sender's delivery time up as
     * one): not known. */
    if (arrived_ns < c->born_ns)
        arrived_ns = 0;
    bool covered = drain_mark_covers(&c->drained, arrived_ns);
    if (!covered) {
        pthread_mutex_lock(&c->drain_lock);
        covered = drain_mark_covers(&c->drained, arrived_ns);
        if (!covered)
            drain_locked(c);
        pthread_mutex_unlock(&c->drain_lock);
    }
    atomic_fetch_add_explicit(covered ? &c->queue_reads_skipped
                                      : &c->queue_reads,
                              1, memory_order_relaxed);
}

/* ---- entries ------------------------------------------------------------ */

static void entry_free(file_cache *c, entry *e)
{
    if (e->file.fd >= 0)
        close(e->file.fd);
    for (size_t i = 0; i < e->n_deps; i++)
        watch_release(c, e->deps[i].w);
    free((void *)e->file.bytes);
    free(e->key);
    free(e);
}

static void entry_put(file_cache *c, entry *e)
{
    if (atomic_fetch_sub(&e->refs, 1) == 1)
        entry_free(c, e);
}

static bool entry_valid(file_cache *c, const entry *e)
{
    if (atomic_load(&c->epoch) != e->epoch)
        return false;
    for (size_t i = 0; i < e->n_deps; i++)
        if (atomic_load(&e->deps[i].w->gen) != e->deps[i].gen)
            return false;
    return true;
}

static bool depend(file_cache *c, entry *e, int fd, uint32_t mask)
{
    watch *w = watch_acquire(c, fd, mask);
    if (w == NULL)
        return false;
    e->deps[e->n_deps].w = w;
    e->deps[e->n_deps].gen = atomic_load(&w->gen);
    e->n_deps++;
    return true;
}

/* openat2 below dirfd, refusing every symlink: a cached path has none, so
 * no symlink can be swapped under a cached entry (and a regular file
 * replaced by one is a name event on its directory). */
static int open_plain(int dirfd, const char *name, uint64_t flags)
{
    struct open_how how = {.flags = flags | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                      RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
    long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof how);
    return fd < 0 ? -1 : (int)fd;
}

/* Read the whole of a small file; false if it is not size bytes now. */
static bool read_all(int fd, char *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    char extra;
    return pread(fd, &extra, 1, (off_t)size) == 0;
}

/* Open, watch and read relative (see the order in the comment at the
 * top). NULL when it cannot be cached. */
static entry *fill(file_cache *c, const char *relative, uint64_t hash)
{
    size_t len = strlen(relative);
    if (len == 0 || len >= PATH_MAX)
        return NULL;
    entry *e = calloc(1, sizeof *e);
    if (e == NULL || (e->key = strdup(relative)) == NULL) {
        free(e);
        return NULL;
    }
    e->hash = hash;
    e->file.fd = -1;
    e->epoch = atomic_load(&c->epoch);
    atomic_init(&e->refs, 1);

    char path[PATH_MAX];
    memcpy(path, relative, len + 1);
    char *name = path, *slash;
    int dir = c->root_fd, fd = -1;
    bool ok = depend(c, e, dir, DIR_MASK);
    while (ok && (slash = strchr(name, '/')) != NULL) {
        *slash = '\0';
        if (name[0] != '\0' && strcmp(name, ".") != 0) {
            int next = e->n_deps <= MAX_DEPTH && strcmp(name, "..") != 0
                           ? open_plain(dir, name, O_PATH | O_DIRECTORY)
                           : -1;
            if (dir != c->root_fd)
                close(dir);
            dir = next;
            ok = dir >= 0 && depend(c, e, dir, DIR_MASK);
        }
        name = slash + 1;
    }
    if (ok && name[0] != '\0' && strcmp(name, ".") != 0 &&
        strcmp(name, "..") != 0)
        fd = open_plain(dir, name, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (dir >= 0 && dir != c->root_fd)
        close(dir);
    ok = fd >= 0 && fstat(fd, &e->file.st) == 0 && S_ISREG(e->file.st.st_mode);
    /* Watched first, then stat'ed and read: a change after is an event. */
    ok = ok && depend(c, e, fd, FILE_MASK) && fstat(fd, &e->file.st) == 0;
    if (ok && e->file.st.st_size <= FILE_CACHE_SMALL) {
        size_t size = (size_t)e->file.st.st_size;
        char *bytes = malloc(size ? size : 1);
        ok = bytes != NULL && read_all(fd, bytes, size);
        e->file.bytes = bytes;
        e->cost = size;
    } else if (ok) {
        e->file.fd = fd, fd = -1;
    }
    if (fd >= 0)
        close(fd);
    if (!ok) {
        entry_free(c, e);
        return NULL;
    }
    e->cost += len + sizeof *e;
    c->validators(&e->file.st, e->file.etag, e->file.modified);
    e->file.type = c->type(e->key);
    return e;
}

/* ---- shards ------------------------------------------------------------- */

static uint64_t hash_of(const char *s)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static entry **bucket_slot(shard *s, const char *key, uint64_t hash)
{
    entry **slot = &s->buckets[(hash >> 4) & s->mask];
    while (*slot && ((*slot)->hash != hash || strcmp((*slot)->key, key)))
        slot = &(*slot)->chain;
    return slot;
}

static void lru_unlink(shard *s, entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(shard *s, entry *e)
{
    e->older = s->newest;
    e->newer = NULL;
    if (s->newest)
        s->newest->newer = e;
    else
        s->oldest = e;
    s->newest = e;
}

/* Take e out of s (its slot given); the shard's reference goes to the
 * caller, to put once the lock is released. */
static void shard_remove(shard *s, entry **slot, entry *e)
{
    *slot = e->chain;
    e->chain = NULL;
    lru_unlink(s, e);
    s->entries--;
    s->bytes -= e->cost;
    s->fds -= e->file.fd >= 0;
}

static bool over_bounds(const file_cache *c, const shard *s)
{
    return s->entries > c->max_entries || s->bytes > c->max_bytes ||
           s->fds > c->max_fds;
}

/* Insert e (replacing any entry of its key) and evict the least recently
 * used until the shard is within its bounds. Evicted and replaced entries
 * are chained on *dropped, to put after the lock. */
static void shard_insert(file_cache *c, shard *s, entry *e, entry **dropped)
{
    entry **slot = bucket_slot(s, e->key, e->hash);
    if (*slot) {
        entry *old = *slot;
        shard_remove(s, slot, old);
        old->chain = *dropped, *dropped = old;
    }
    /* One that alone exceeds a bound is served once and not kept. */
    if (e->cost > c->max_bytes || (e->file.fd >= 0 && c->max_fds == 0))
        return;
    atomic_fetch_add(&e->refs, 1);
    *slot = e;
    lru_push(s, e);
    s->entries++;
    s->bytes += e->cost;
    s->fds += e->file.fd >= 0;
    while (over_bounds(c, s) && s->oldest != e) {
        entry *old = s->oldest;
        shard_remove(s, bucket_slot(s, old->key, old->hash), old);
        old->chain = *dropped, *dropped = old;
        atomic_fetch_add(&c->evicted, 1);
    }
}

const file_cache_file *file_cache_get(file_cache *c, const char *relative,
                                      int64_t arrived_ns)
{
    if (c->ifd < 0)
        return NULL;
    catch_up(c, arrived_ns);
    uint64_t hash = hash_of(relative);
    shard *s = &c->shards[hash % SHARDS];
    entry *stale = NULL;
    pthread_mutex_lock(&s->lock);
    entry **slot = bucket_slot(s, relative, hash);
    entry *e = *slot;
    if (e != NULL && entry_valid(c, e)) {
        atomic_fetch_add(&e->refs, 1);
        lru_unlink(s, e);
        lru_push(s, e);
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
        return &e->file;
    }
    if (e != NULL) {
        shard_remove(s, slot, e);
        stale = e;
    }
    pthread_mutex_unlock(&s->lock);
    if (stale) {
        atomic_fetch_add(&c->invalidated, 1);
        entry_put(c, stale);
    }
    atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);

    e = fill(c, relative, hash);
    if (e == NULL) {
        atomic_fetch_add(&c->uncacheable, 1);
        return NULL;
    }
    entry *dropped = NULL;
    pthread_mutex_lock(&s->lock);
    shard_insert(c, s, e, &dropped);
    pthread_mutex_unlock(&s->lock);
    while (dropped) {
        entry *next = dropped->chain;
        entry_put(c, dropped);
        dropped = next;
    }
    return &e->file;
}

void file_cache_release(file_cache *c, const file_cache_file *file)
{
    entry_put(c, (entry *)(void *)file);
}

void file_cache_get_stats(file_cache *c, file_cache_stats *out)
{
    *out = (file_cache_stats){.hits = atomic_load(&c->hits),
                              .misses = atomic_load(&c->misses),
                              .invalidated = atomic_load(&c->invalidated),
                              .evicted = atomic_load(&c->evicted),
                              .uncacheable = atomic_load(&c->uncacheable),
                              .queue_reads = atomic_load(&c->queue_reads),
                              .queue_reads_skipped =
                                  atomic_load(&c->queue_reads_skipped),
                              .inotify = c->ifd >= 0};
    for (size_t i = 0; i < SHARDS; i++) {
        shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        out->entries += s->entries;
        out->bytes += s->bytes;
        out->descriptors += s->fds;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_lock(&c->watch_lock);
    out->watches = c->n_watches;
    pthread_mutex_unlock(&c->watch_lock);
}

/* ---- life -----------------------------------------------------------------
 */

/* Drop every entry and watch. forked: in a child after fork(), whose
 * queue is its parent's: the watches are not removed from it (that would
 * remove them for the parent), the child makes its own. */
static void reset(file_cache *c, bool forked)
{
    if (forked) { /* a thread of the parent may have held one */
        pthread_mutex_init(&c->drain_lock, NULL);
        pthread_mutex_init(&c->watch_lock, NULL);
    }
    drain_mark_init(&c->drained); /* the parent's queue, not this one */
    c->born_ns = realtime_ns();
    for (size_t i = 0; i < SHARDS; i++) {
        shard *s = &c->shards[i];
        if (forked)
            pthread_mutex_init(&s->lock, NULL);
        while (s->oldest) {
            entry *e = s->oldest;
            shard_remove(s, bucket_slot(s, e->key, e->hash), e);
            if (forked) { /* the parent's watches are not ours to remove */
                for (size_t d = 0; d < e->n_deps; d++)
                    e->deps[d].w->dead = true;
            }
            entry_put(c, e);
        }
    }
    if (c->root != NULL) {
        c->root->dead |= forked;
        watch_release(c, c->root);
    }
    c->root = NULL;
    if (forked) {
        for (size_t i = 0; i < WATCH_BUCKETS; i++)
            c->watches[i] = NULL; /* held only by entries, now freed */
        c->n_watches = 0;
    }
    if (c->ifd >= 0)
        close(c->ifd);
    c->ifd = -1;
}

/* The inotify queue, and the root's watch, or nothing cached at all. */
static void open_queue(file_cache *c)
{
    c->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (c->ifd >= 0 &&
        (c->root = watch_acquire(c, c->root_fd, DIR_MASK)) == NULL) {
        close(c->ifd);
        c->ifd = -1;
    }
}

static file_cache *forked_cache; /* the one cache a child starts afresh */

static void at_fork_child(void)
{
    file_cache *c = forked_cache;
    if (c == NULL)
        return;
    reset(c, true);
    open_queue(c);
}

static void register_at_fork(void)
{
    pthread_atfork(NULL, NULL, at_fork_child);
}

file_cache *file_cache_new(int root_fd, size_t max_entries, size_t max_bytes,
                           size_t max_fds,
                           void (*validators)(const struct stat *st,
                                              char etag[64], char modified[64]),
                           const char *(*type)(const char *name))
{
    file_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->root_fd = root_fd;
    c->validators = validators;
    c->type = type;
    /* Bounds per shard, rounded up: the total may exceed the one asked
     * for by at most SHARDS - 1 entries (and their bytes). */
    c->max_entries = (max_entries + SHARDS - 1) / SHARDS;
    c->max_bytes = (max_bytes + SHARDS - 1) / SHARDS;
    c->max_fds = (max_fds + SHARDS - 1) / SHARDS;
    size_t buckets = 16;
    while (buckets < c->max_entries)
        buckets *= 2;
    pthread_mutex_init(&c->drain_lock, NULL);
    pthread_mutex_init(&c->watch_lock, NULL);
    drain_mark_init(&c->drained);
    c->born_ns = realtime_ns();
    for (size_t i = 0; i < SHARDS; i++) {
        shard *s = &c->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->mask = buckets - 1;
        if ((s->buckets = calloc(buckets, sizeof *s->buckets)) == NULL) {
            file_cache_free(c);
            return NULL;
        }
    }
    open_queue(c);
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_at_fork);
    forked_cache = c;
    return c;
}

void file_cache_free(file_cache *c)
{
    if (c == NULL)
        return;
    if (forked_cache == c)
        forked_cache = NULL;
    reset(c, false);
    for (size_t i = 0; i < SHARDS; i++) {
        free(c->shards[i].buckets);
        pthread_mutex_destroy(&c->shards[i].lock);
    }
    pthread_mutex_destroy(&c->drain_lock);
    pthread_mutex_destroy(&c->watch_lock);
    free(c);
}
