/*
 * listing.c — a directory's listing, for a directory asked for with its
 * slash that has no index.html: Python's list_directory() (names sorted
 * case-insensitively, HTML-escaped, hrefs percent-encoded, "/" after
 * directories and "@" after symlinks).
 *
 * The page is built in memory (open_memstream) and sent with its
 * Content-Length, so a listing that runs out of memory half-way is an
 * error page, never half a listing.
 */
#include "httpd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* s escaped for HTML (&, <, >, ", '); false when out of memory. */
static bool put_escaped(FILE *page, const char *s)
{
    size_t size = strlen(s) * 6 + 1; /* the longest escape is 6 bytes */
    char *buf = malloc(size);
    bool ok = buf && ss_http_html_escape(s, buf, size) < size;
    if (ok)
        fputs(buf, page);
    free(buf);
    return ok;
}

static int compare_names(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int c = strcasecmp(x, y); /* Python: key=str.lower */
    return c ? c : strcmp(x, y);
}

static int send_page(ss_http *h, const char *data, size_t len)
{
    int rc = ss_http_send_response(h, 200, NULL);
    if (rc == 0)
        rc = ss_http_send_header(h, "Content-Type", "text/html; charset=utf-8");
    if (rc == 0)
        rc = ss_http_send_headerf(h, "Content-Length", "%zu", len);
    if (rc == 0)
        rc = ss_http_end_headers(h);
    if (rc == 0 && ss_http_write(h, data, len) < 0)
        rc = -1;
    return rc < 0 ? -1 : 0;
}

int httpd_list_directory(ss_http *h, int dir_fd, bool readable,
                         const httpd_path *path)
{
    if (!readable)
        return ss_http_send_error(h, 404, "No permission to list directory") < 0
                   ? -1
                   : 0;
    /* closedir() closes what fdopendir() was given: a duplicate, since
     * the caller closes dir_fd. */
    int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    DIR *dir = fd < 0 ? NULL : fdopendir(fd);
    if (dir == NULL) {
        int error = errno;
        if (fd >= 0)
            close(fd);
        return error;
    }

    char **names = NULL;
    size_t count = 0, cap = 0;
    bool failed = false;
    struct dirent *entry;
    while (!failed && (entry = readdir(dir)) != NULL) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, ".."))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (grown == NULL) {
                failed = true;
                break;
            }
            names = grown;
        }
        if ((names[count] = strdup(entry->d_name)) == NULL)
            failed = true;
        else
            count++;
    }
    if (count > 1)
        qsort(names, count, sizeof *names, compare_names);

    char *data = NULL;
    size_t len = 0;
    FILE *page = failed ? NULL : open_memstream(&data, &len);
    failed = page == NULL;
    if (!failed) {
        fputs("<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n"
              "<meta charset=\"utf-8\">\n<title>Directory listing for ",
              page);
        failed |= !put_escaped(page, path->display);
        fputs("</title>\n</head>\n<body>\n<h1>Directory listing for ", page);
        failed |= !put_escaped(page, path->display);
        fputs("</h1>\n<hr>\n<ul>\n", page);
    }
    for (size_t i = 0; !failed && i < count; i++) {
        struct stat st, lst;
        bool is_dir =
            fstatat(dirfd(dir), names[i], &st, 0) == 0 && S_ISDIR(st.st_mode);
        bool is_link =
            fstatat(dirfd(dir), names[i], &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(lst.st_mode);
        char *href = httpd_url_quote(names[i]);
        if (href == NULL) {
            failed = true;
            break;
        }
        fprintf(page, "<li><a href=\"%s%s", href, is_dir ? "/\">" : "\">");
        failed |= !put_escaped(page, names[i]);
        fprintf(page, "%s</a></li>\n", is_link ? "@" : is_dir ? "/" : "");
        free(href);
    }
    closedir(dir);
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    if (page) {
        fputs("</ul>\n<hr>\n</body>\n</html>\n", page);
        failed |= ferror(page) != 0;
        failed |= fclose(page) != 0;
    }
    int rc = failed ? ENOMEM : send_page(h, data, len);
    free(data);
    return rc;
}
