/*
 * paths.c — from a request target to a file that is certainly inside the
 * served directory.
 *
 * Two layers, so that neither has to be perfect alone:
 *
 * 1. httpd_path_parse() works on text. It splits the path on '/' *before*
 *    percent-decoding, so "%2f" can never create a separator; decodes every
 *    "%XY" to its byte (a Latin-1 "%E9" reaches a file whose name has that
 *    byte); drops empty segments ("//") and "."; and refuses what can never
 *    name something inside: a ".." segment however it was spelled ("..",
 *    "%2e%2e"), a decoded '/', a NUL byte. Python instead normalises ".."
 *    away and turns "%2f" into a separator; refusing is simpler to trust.
 *
 * 2. httpd_open_beneath() works on the file system, relative to a
 *    descriptor of the served directory. Where the kernel has openat2
 *    (Linux 5.6+), one call with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
 *    opens the file for reading and refuses, during the lookup itself,
 *    every step that would leave the directory. A symlink it refuses
 *    (absolute, or stepping out and back in) may still end inside; that
 *    case, and kernels without openat2, take the older way: open with
 *    O_PATH — which opens nothing for I/O — and ask the kernel where that
 *    descriptor really is (/proc/self/fd/N). Either way symlinks are
 *    followed only when the file they finally lead to is inside the
 *    directory; anything else is "not found". The check is made on the
 *    descriptor we go on to use, so a symlink swapped in between cannot
 *    win a race.
 */
#include "httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif

/* Decode one raw segment into out (room for len + 1 bytes) with the
 * library's percent-decoding (an invalid escape such as "%zz" stays as it
 * is, as in Python's unquote; a NUL byte is refused). Returns the decoded
 * length, or -400 / -404 for a byte that no file name inside can hold. */
static long decode_segment(const char *segment, size_t len, char *out)
{
    int n = ss_http_percent_decode(segment, len, false, out, len + 1);
    if (n < 0)
        return -400; /* "%00" */
    if (memchr(out, '/', (size_t)n))
        return -404; /* "%2f": one segment cannot be two names */
    return n;
}

void httpd_path_free(httpd_path *path)
{
    free(path->raw); /* relative and display live in the same block */
    free(path->query);
    memset(path, 0, sizeof *path);
}

int httpd_path_parse(const char *target, httpd_path *out)
{
    memset(out, 0, sizeof *out);
    const char *p = target;
    if (p[0] == '/') {
        /* origin form, nearly every request: nothing to strip */
    } else if (strncasecmp(p, "http://", 7) == 0 ||
               strncasecmp(p, "https://", 8) == 0) {
        /* absolute form (RFC 9112 §3.2.2): the host part is not ours */
        p = strstr(p, "://") + 3;
        p += strcspn(p, "/?#");
    } else {
        return 400; /* "*", "example.com:443", "relative" */
    }

    size_t path_len = strcspn(p, "?#");
    const char *query = p[path_len] == '?' ? p + path_len + 1 : NULL;
    /* "//evil.example/x" is a path here, but a Location built from it
     * would send browsers to another host: keep one leading slash. */
    while (path_len > 1 && p[0] == '/' && p[1] == '/') {
        p++;
        path_len--;
    }

    int status = 500;
    /* raw, relative and display in one block (one malloc per request, not
     * three): path_len + 2, path_len + 2 and path_len + 3 bytes. */
    out->raw = malloc(3 * path_len + 7);
    if (!out->raw)
        goto fail;
    out->relative = out->raw + path_len + 2;
    out->display = out->relative + path_len + 2;
    if (query != NULL && !(out->query = strndup(query, strcspn(query, "#"))))
        goto fail;
    if (path_len == 0 || p[0] != '/') /* "http://host" or "http://host?q" */
        out->raw[0] = '/', memcpy(out->raw + 1, p, path_len), path_len++;
    else
        memcpy(out->raw, p, path_len);
    out->raw[path_len] = '\0';
    out->trailing_slash = out->raw[path_len - 1] == '/';

    /* Segment by segment, on the raw text. */
    size_t used = 0; /* bytes in out->relative */
    for (const char *s = out->raw; *s;) {
        s += strspn(s, "/");
        size_t len = strcspn(s, "/");
        if (len == 0)
            break;
        size_t start = used ? used + 1 : 0;
        long n = decode_segment(s, len, out->relative + start);
        if (n < 0) {
            status = (int)-n;
            goto fail;
        }
        s += len;
        const char *name = out->relative + start;
        if (n == 1 && name[0] == '.')
            continue; /* "/a/./b" is "/a/b" */
        if (n == 2 && name[0] == '.' && name[1] == '.') {
            status = 404; /* never climb, however it was spelled */
            goto fail;
        }
        if (used)
            out->relative[used] = '/';
        used = start + (size_t)n;
    }
    if (used == 0)
        out->relative[used++] = '.';
    out->relative[used] = '\0';

    /* "/" or "/RELATIVE/", by hand: sprintf showed in the profile. */
    if (strcmp(out->relative, ".") == 0) {
        strcpy(out->display, "/");
    } else {
        out->display[0] = '/';
        memcpy(out->display + 1, out->relative, used);
        out->display[used + 1] = '/';
        out->display[used + 2] = '\0';
    }
    return 0;

fail:
    httpd_path_free(out);
    return status;
}

/* Whether the canonical path resolved names the root or lies below it. */
static bool inside_root(const httpd_context *ctx, const char *resolved)
{
    if (ctx->root_len == 1) /* serving "/" itself */
        return resolved[0] == '/';
    return strncmp(resolved, ctx->root_path, ctx->root_len) == 0 &&
           (resolved[ctx->root_len] == '\0' || resolved[ctx->root_len] == '/');
}

/* The method that needs /proc: open with O_PATH — nothing is opened for
 * I/O, so neither a FIFO nor a device notices — ask the kernel where the
 * descriptor really is, and reopen that very inode for reading through its
 * magic link. Four system calls more than openat2 costs, so it only runs
 * where openat2 cannot decide: kernels without it, and symlinks that
 * openat2's RESOLVE_BENEATH refuses though they may end inside (absolute
 * ones, or "../www/x" that steps out and back in). */
static int open_checked_via_proc(const httpd_context *ctx, const char *relative,
                                 struct stat *st, bool *readable)
{
    int fd = openat(ctx->root_fd, relative, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return -errno;

    char link[64], resolved[PATH_MAX + 1];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, resolved, sizeof resolved - 1);
    int rc = n < 0 ? -errno : 0;
    if (rc == 0) {
        resolved[n] = '\0';
        if (!inside_root(ctx, resolved))
            rc = -ENOENT; /* outside is the same as absent */
        else if (fstat(fd, st) < 0)
            rc = -errno;
        else if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
            rc = -ENOENT; /* FIFO, socket, device: never opened for I/O */
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    /* Opening the magic link reopens the very inode fd refers to, so a
     * symlink swapped in after the check cannot win a race. */
    int io = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    *readable = io >= 0;
    if (io < 0 && errno == EACCES)
        return fd;            /* no read permission: the caller answers */
    rc = io < 0 ? -errno : 0; /* out of descriptors, say: not "unreadable" */
    close(fd);
    return io < 0 ? rc : io;
}

#if defined(SYS_openat2) && defined(RESOLVE_BENEATH)
/* openat2 with RESOLVE_BENEATH: the kernel refuses, during the lookup
 * itself, any step that would leave the directory ("..", an absolute
 * symlink, a /proc magic link), with EXDEV or ELOOP. One system call for
 * what the /proc method needs three for, and nothing to race. */
static int openat2_beneath(int dirfd, const char *relative, uint64_t flags)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0;; attempt++) {
        long fd = syscall(SYS_openat2, dirfd, relative, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        /* EAGAIN: a rename raced the lookup; the kernel asks us to retry */
        if (errno != EAGAIN || attempt == 8)
            return -errno;
    }
}

/* An open for reading failed with error, which may be about the kind of
 * file rather than the server: a socket says ENXIO, a device whatever its
 * driver says. Anything that is neither a regular file nor a directory is
 * not served, whatever its open said, so look with O_PATH (which opens
 * nothing for I/O): -ENOENT for those, else error as it was. */
static int classify_open_error(int dirfd, const char *relative, int error)
{
    int fd = openat2_beneath(dirfd, relative, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return error;
    struct stat st;
    bool servable =
        fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode));
    close(fd);
    return servable ? error : -ENOENT;
}

#endif

int httpd_open_beneath(const httpd_context *ctx, const char *relative,
                       struct stat *st, bool *readable)
{
#if defined(SYS_openat2) && defined(RESOLVE_BENEATH)
    static atomic_bool no_openat2; /* set once: the kernel has no openat2 */
    if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
        /* Opened for reading straight away: this is the descriptor the
         * file is served from. O_NONBLOCK so that a FIFO cannot hang the
         * open; O_NOCTTY so that a terminal cannot become ours. */
        int fd = openat2_beneath(ctx->root_fd, relative,
                                 O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        *readable = fd >= 0;
        if (fd == -EACCES) /* no read permission: still 301 or 404 below */
            fd = openat2_beneath(ctx->root_fd, relative, O_PATH | O_CLOEXEC);
        if (fd >= 0) {
            int rc = fstat(fd, st) < 0 ? -errno : 0;
            if (rc == 0 && !S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
                rc = -ENOENT; /* FIFO, socket, device */
            if (rc < 0) {
                close(fd);
                return rc;
            }
            return fd;
        }
        if (fd == -ENOSYS)
            atomic_store_explicit(&no_openat2, true, memory_order_relaxed);
        else if (fd == -ENOENT || fd == -ENOTDIR || fd == -EMFILE ||
                 fd == -ENFILE || fd == -ENOMEM || fd == -ENAMETOOLONG)
            return fd; /* not there, or the server is out of resources */
        else if (fd != -EXDEV && fd != -ELOOP)
            return classify_open_error(ctx->root_fd, relative, fd);
        /* EXDEV, ELOOP: a symlink openat2 will not follow; it may still
         * lead inside, which the /proc method can tell. */
    }
#endif
    return open_checked_via_proc(ctx, relative, st, readable);
}

char *httpd_url_quote(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
            (*c >= '0' && *c <= '9') || strchr("-._~/", *c) != NULL) {
            *o++ = (char)*c;
        } else {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
    }
    *o = '\0';
    return out;
}
