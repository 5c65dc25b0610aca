/*
 * store.c — the served directory: which names are allowed, how a download
 * is opened so that it cannot leave the directory, and how an upload
 * becomes a file whole or not at all.
 *
 * Confinement, in two layers that each suffice alone:
 *
 * 1. Text (fs_name_problem): a name is a single path component. No '/', so
 *    no directories, no absolute paths; no leading '.', so no "." or ".."
 *    and no hidden or temporary files; no control bytes, so a name always
 *    fits on one protocol line.
 *
 * 2. File system (fs_open_for_reading): the name is opened relative to a
 *    descriptor of the served directory, with openat2() and
 *    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: the kernel itself refuses any
 *    lookup that would step out of the directory or through a symlink.
 *    Kernels without openat2 (before 5.6) get openat() with O_NOFOLLOW,
 *    which for a one-component name means the same. Symlinks are never
 *    followed, even those that point inside: in a flat directory of
 *    uploads a symlink is something nobody uploaded. Only regular files
 *    are served, so a FIFO or a device cannot hang or surprise a worker.
 *
 * Uploads: the body goes to an O_TMPFILE file — an inode with no name in
 * the directory. If the client vanishes, or the process is killed, the
 * kernel frees it: a partial upload is never visible, not even for a
 * moment, and nothing is left to clean up. Once the last byte is written
 * and fsync()ed, the file gets a unique temporary name (linkat cannot
 * replace an existing name) and is renamed onto its real one: rename()
 * is atomic, so a reader sees the old file or the new one, never a mix.
 * Two uploads of the same name each write their own file and the later
 * rename wins whole. File systems without O_TMPFILE get a named temporary
 * file (".upload-…", hidden from LIST and unreachable by GET) that is
 * unlinked when the upload fails.
 */
#include "fileserver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif

#define NAME_MAX_BYTES 255

const char *fs_name_problem(const char *name)
{
    size_t len = strlen(name);
    if (len == 0)
        return "empty name";
    if (len > NAME_MAX_BYTES)
        return "name longer than 255 bytes";
    if (strchr(name, '/') != NULL)
        return "names may not contain '/'";
    if (name[0] == '.')
        return "names may not start with '.'";
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return "names may not contain control characters";
    return NULL;
}

/* ---- downloads ---------------------------------------------------------- */

#if defined(SYS_openat2) && defined(RESOLVE_BENEATH)
/* Returns the descriptor or a negative errno (-ENOSYS: no openat2). */
static int openat2_confined(int dir_fd, const char *name, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0;; attempt++) {
        long fd = syscall(SYS_openat2, dir_fd, name, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        /* EAGAIN: a concurrent rename raced the lookup; try again */
        if (errno != EAGAIN || attempt == 8)
            return -errno;
    }
}
#endif

int fs_open_for_reading(const fs_context *ctx, const char *name, off_t *size)
{
    /* O_NONBLOCK: a FIFO must not hang the open (it is refused below);
     * O_NOCTTY: a terminal must not become ours. */
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    int fd = -ENOSYS;
#if defined(SYS_openat2) && defined(RESOLVE_BENEATH)
    fd = openat2_confined(ctx->dir_fd, name, flags);
#endif
    if (fd == -ENOSYS) {
        fd = openat(ctx->dir_fd, name, flags | O_NOFOLLOW);
        if (fd < 0)
            fd = -errno;
    }
    if (fd == -ELOOP || fd == -EXDEV)
        return -ENOENT; /* a symlink, or a way out: as good as absent */
    if (fd < 0)
        return fd;
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && !S_ISREG(st.st_mode))
        rc = -ENOENT; /* a directory, FIFO, socket or device */
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *size = st.st_size;
    return fd;
}

/* ---- listing ------------------------------------------------------------ */

typedef struct entry {
    char *name;
    off_t size;
} entry;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

int fs_list(const fs_context *ctx, char **text, size_t *length, size_t *count)
{
    int fd = openat(ctx->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int rc = -errno;
        close(fd);
        return rc;
    }

    entry *entries = NULL;
    size_t n = 0, capacity = 0, bytes = 0;
    int rc = 0;
    struct dirent *d;
    errno = 0;
    while ((d = readdir(dir)) != NULL) {
        struct stat st;
        /* The same rules as GET: what LIST shows, GET can fetch. */
        if (fs_name_problem(d->d_name) != NULL ||
            fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode)) {
            errno = 0;
            continue;
        }
        if (n == capacity) {
            size_t more = capacity ? capacity * 2 : 32;
            entry *grown = realloc(entries, more * sizeof *entries);
            if (grown == NULL) {
                rc = -ENOMEM;
                break;
            }
            entries = grown;
            capacity = more;
        }
        entries[n].name = strdup(d->d_name);
        if (entries[n].name == NULL) {
            rc = -ENOMEM;
            break;
        }
        entries[n].size = st.st_size;
        bytes += strlen(d->d_name) + 24; /* "SIZE NAME\n", SIZE <= 20 */
        n++;
        errno = 0;
    }
    if (rc == 0 && errno != 0)
        rc = -errno; /* readdir failed */
    closedir(dir);

    char *out = NULL;
    size_t used = 0;
    if (rc == 0 && (out = malloc(bytes + 1)) == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        if (n > 1) /* an empty directory: entries is NULL, which qsort
                    * may not be given even for 0 elements */
            qsort(entries, n, sizeof *entries, by_name);
        for (size_t i = 0; i < n; i++)
            used +=
                (size_t)snprintf(out + used, bytes + 1 - used, "%jd %s\n",
                                 (intmax_t)entries[i].size, entries[i].name);
        *text = out;
        *length = used;
        *count = n;
    }
    for (size_t i = 0; i < n; i++)
        free(entries[i].name);
    free(entries);
    return rc;
}

/* ---- uploads ------------------------------------------------------------ */

/* A name no other upload of any process uses at the same time: the pid,
 * the clock and a counter; O_EXCL / EEXIST settle the rest. Starts with
 * '.', so LIST never shows it and GET and PUT can never name it. */
static void temp_name(char *buf, size_t size)
{
    static atomic_uint counter;
    snprintf(buf, size, ".upload-%ld-%llx-%u", (long)getpid(),
             (unsigned long long)ss_now_ns(), atomic_fetch_add(&counter, 1));
}

int fs_upload_begin(const fs_context *ctx, fs_upload *up)
{
    up->temp_name[0] = '\0';
    up->fd = openat(ctx->dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (up->fd >= 0)
        return 0;
    /* EOPNOTSUPP (the file system has no O_TMPFILE), EISDIR or EINVAL (a
     * kernel that does not know the flag): fall back to a named file.
     * Anything else (EACCES, EROFS, ENOSPC…) the fallback would meet too. */
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return -errno;
    for (int attempt = 0; attempt < 100; attempt++) {
        temp_name(up->temp_name, sizeof up->temp_name);
        up->fd =
            openat(ctx->dir_fd, up->temp_name,
                   O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (up->fd >= 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    int rc = -errno;
    up->temp_name[0] = '\0';
    return rc;
}

int fs_upload_write(fs_upload *up, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t written = write(up->fd, p, n);
        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return -errno;
        p += written;
        n -= (size_t)written;
    }
    return 0;
}

int fs_upload_sync(void *arg)
{
    fs_upload *up = arg;
    return fsync(up->fd) < 0 ? -errno : 0;
}

/* Give the unnamed O_TMPFILE file a temporary name. linkat() through
 * /proc/self/fd works for any user; AT_EMPTY_PATH is the way without
 * /proc, for processes allowed to use it. */
static int link_unnamed(const fs_context *ctx, fs_upload *up)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", up->fd);
    for (int attempt = 0; attempt < 100; attempt++) {
        temp_name(up->temp_name, sizeof up->temp_name);
        int rc = linkat(AT_FDCWD, proc, ctx->dir_fd, up->temp_name,
                        AT_SYMLINK_FOLLOW);
        if (rc < 0 && errno == ENOENT)
            rc = linkat(up->fd, "", ctx->dir_fd, up->temp_name, AT_EMPTY_PATH);
        if (rc == 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    int rc = -errno;
    up->temp_name[0] = '\0';
    return rc;
}

int fs_upload_commit(const fs_context *ctx, fs_upload *up, const char *name)
{
    int rc = up->temp_name[0] == '\0' ? link_unnamed(ctx, up) : 0;
    if (close(up->fd) < 0 && rc == 0)
        rc = -errno; /* some file systems report write errors only here */
    up->fd = -1;
    if (rc == 0 && renameat(ctx->dir_fd, up->temp_name, ctx->dir_fd, name) < 0)
        rc = -errno;
    if (rc < 0 && up->temp_name[0] != '\0')
        unlinkat(ctx->dir_fd, up->temp_name, 0);
    up->temp_name[0] = '\0';
    return rc;
}

void fs_upload_abort(const fs_context *ctx, fs_upload *up)
{
    if (up->fd >= 0)
        close(up->fd);
    up->fd = -1;
    if (up->temp_name[0] != '\0')
        unlinkat(ctx->dir_fd, up->temp_name, 0);
    up->temp_name[0] = '\0';
}
