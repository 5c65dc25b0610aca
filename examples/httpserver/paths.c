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
 * 2. httpd_open_beneath() works on the file system. It opens the path
 *    relative to a descriptor of the served directory with O_PATH — which
 *    opens nothing for I/O, so a FIFO cannot block us and a device cannot
 *    notice — and then asks the kernel where that descriptor really is
 *    (/proc/self/fd/N). Symlinks are therefore followed only when the file
 *    they finally lead to is inside the directory; anything else is "not
 *    found". The check is made on the descriptor we go on to use, so a
 *    symlink swapped in between cannot win a race.
 */
#include "httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode one raw segment into out (room for len bytes). Returns the decoded
 * length, or -400 / -404 for a byte that no file name inside can hold. An
 * invalid escape ("%zz", "%4") stays as it is, as in Python's unquote. */
static long decode_segment(const char *segment, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)segment[i];
        if (c == '%' && i + 2 < len && hex_value(segment[i + 1]) >= 0 &&
            hex_value(segment[i + 2]) >= 0) {
            c = (unsigned char)(hex_value(segment[i + 1]) * 16 +
                                hex_value(segment[i + 2]));
            i += 2;
        }
        if (c == '\0')
            return -400;
        if (c == '/')
            return -404; /* "%2f": one segment cannot be two names */
        out[n++] = (char)c;
    }
    return (long)n;
}

void httpd_path_free(httpd_path *path)
{
    free(path->raw);
    free(path->query);
    free(path->relative);
    free(path->display);
    memset(path, 0, sizeof *path);
}

int httpd_path_parse(const char *target, httpd_path *out)
{
    memset(out, 0, sizeof *out);
    const char *p = target;
    if (strncasecmp(p, "http://", 7) == 0 ||
        strncasecmp(p, "https://", 8) == 0) {
        /* absolute form (RFC 9112 §3.2.2): the host part is not ours */
        p = strstr(p, "://") + 3;
        p += strcspn(p, "/?#");
    } else if (p[0] != '/') {
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
    out->raw = malloc(path_len + 2);
    out->relative = malloc(path_len + 2);
    out->display = malloc(path_len + 3);
    if (query != NULL)
        out->query = strndup(query, strcspn(query, "#"));
    if (!out->raw || !out->relative || !out->display || (query && !out->query))
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

    if (strcmp(out->relative, ".") == 0)
        strcpy(out->display, "/");
    else
        sprintf(out->display, "/%s/", out->relative);
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

int httpd_open_beneath(const httpd_context *ctx, const char *relative,
                       struct stat *st)
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
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int httpd_reopen(int path_fd, int flags)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", path_fd);
    /* Opening the magic link reopens the very inode path_fd refers to. */
    int fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | flags);
    return fd < 0 ? -errno : fd;
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
