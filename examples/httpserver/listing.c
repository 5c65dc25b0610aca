/*
 * listing.c — the pages people see: a directory's listing, for a
 * directory asked for with its slash that has no index.html, and the
 * stylesheet it shares with the error pages (httpd_page_head, which
 * main.c gives the library as ss_http_config.error_head).
 *
 * Python's list_directory() is a bare list of names; this is what nginx's
 * autoindex and h2o's listing show: each entry's size (human-readable,
 * "-" for a directory) and modification time (UTC, "2026-12-06 18:05"),
 * in a table a phone can read (the viewport meta, a small inline
 * stylesheet, long names wrapped). Kept from Python: the order (names
 * compared case-insensitively, directories among the files, not first),
 * "/" after directories and "@" after symbolic links, every name
 * HTML-escaped and every href percent-encoded, the title and heading
 * "Directory listing for PATH".
 *
 * Speed: one readdir() pass, then one fstatat() per entry on the
 * directory's descriptor (the link test comes from d_type, not a second
 * stat; a file system without d_type costs one more). The page is built
 * in memory (open_memstream) and sent with its Content-Length, so a
 * listing that runs out of memory half-way is an error page, never half a
 * listing.
 */
#include "httpd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
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

/* The pages' <head> additions: readable on a phone, light or dark. */
const char httpd_page_head[] =
    "<meta name=\"viewport\" content=\"width=device-width, "
    "initial-scale=1\">\n"
    "<style>\n"
    "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,"
    "sans-serif;margin:1em auto;max-width:60em;padding:0 1em;"
    "line-height:1.4;color:#222;background:#fff}\n"
    "h1{font-size:1.3em;overflow-wrap:anywhere}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{padding:.3em .5em;text-align:left;vertical-align:top}\n"
    "th{border-bottom:1px solid #ccc;font-weight:600}\n"
    "tbody tr:nth-child(even){background:#f4f4f4}\n"
    "td:first-child{overflow-wrap:anywhere}\n"
    ".size{text-align:right;white-space:nowrap}\n"
    ".date{white-space:nowrap;color:#555}\n"
    "a{color:#0645ad;text-decoration:none}a:hover{text-decoration:underline}\n"
    "@media (max-width:32em){body{font-size:.9em;padding:0 .5em}"
    "th,td{padding:.25em .3em}}\n"
    "@media (prefers-color-scheme:dark){body{color:#ddd;background:#111}"
    "th{border-color:#444}tbody tr:nth-child(even){background:#1c1c1c}"
    ".date{color:#aaa}a{color:#8ab4f8}}\n"
    "</style>\n";

/* One entry of the directory, as readdir() gave it. */
typedef struct entry {
    char *name;
    unsigned char type; /* d_type: DT_LNK, DT_DIR, DT_UNKNOWN… */
} entry;

static int compare_entries(const void *a, const void *b)
{
    const char *x = ((const entry *)a)->name, *y = ((const entry *)b)->name;
    int c = strcasecmp(x, y); /* Python: key=str.lower */
    return c ? c : strcmp(x, y);
}

/* "512", "1.5K", "23M", "4.0G": bytes below 1 KiB, else one decimal
 * below 10 units, as ls -h and nginx's autoindex do (powers of 1024). */
static void human_size(uint64_t size, char *buf, size_t n)
{
    static const char units[] = "KMGTPE";
    if (size < 1024) {
        snprintf(buf, n, "%" PRIu64, size);
        return;
    }
    double value = (double)size;
    int unit = -1;
    while (value >= 1024 && unit < 5) {
        value /= 1024;
        unit++;
    }
    if (value < 9.95)
        snprintf(buf, n, "%.1f%c", value, units[unit]);
    else
        snprintf(buf, n, "%.0f%c", value, units[unit]);
}

/* One row: name (escaped, its href percent-encoded), size, date. False
 * when out of memory. */
static bool put_row(FILE *page, int dir_fd, const entry *e)
{
    struct stat st;
    bool known = fstatat(dir_fd, e->name, &st, 0) == 0; /* follows links */
    bool is_dir = known && S_ISDIR(st.st_mode);
    bool is_link = e->type == DT_LNK;
    if (e->type == DT_UNKNOWN) { /* no d_type here: ask */
        struct stat lst;
        is_link = fstatat(dir_fd, e->name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
                  S_ISLNK(lst.st_mode);
    }
    char size[32] = "-", date[32] = "-";
    if (known && !is_dir)
        human_size((uint64_t)st.st_size, size, sizeof size);
    struct tm tm;
    if (known && gmtime_r(&st.st_mtime, &tm))
        strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm);
    char *href = httpd_url_quote(e->name);
    if (href == NULL)
        return false;
    fprintf(page, "<tr><td><a href=\"%s%s", href, is_dir ? "/\">" : "\">");
    free(href);
    bool ok = put_escaped(page, e->name);
    fprintf(page,
            "%s</a></td><td class=\"size\">%s</td>"
            "<td class=\"date\">%s</td></tr>\n",
            is_link  ? "@"
            : is_dir ? "/"
                     : "",
            size, date);
    return ok;
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

    entry *entries = NULL;
    size_t count = 0, cap = 0;
    bool failed = false;
    struct dirent *d;
    while (!failed && (d = readdir(dir)) != NULL) {
        if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            entry *grown = realloc(entries, cap * sizeof *entries);
            if (grown == NULL) {
                failed = true;
                break;
            }
            entries = grown;
        }
        entries[count].type = d->d_type;
        if ((entries[count].name = strdup(d->d_name)) == NULL)
            failed = true;
        else
            count++;
    }
    if (count > 1)
        qsort(entries, count, sizeof *entries, compare_entries);

    char *data = NULL;
    size_t len = 0;
    FILE *page = failed ? NULL : open_memstream(&data, &len);
    failed = page == NULL;
    if (!failed) {
        fputs("<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n"
              "<meta charset=\"utf-8\">\n",
              page);
        fputs(httpd_page_head, page);
        fputs("<title>Directory listing for ", page);
        failed |= !put_escaped(page, path->display);
        fputs("</title>\n</head>\n<body>\n<h1>Directory listing for ", page);
        failed |= !put_escaped(page, path->display);
        fputs("</h1>\n<hr>\n<table>\n<thead><tr><th>Name</th>"
              "<th class=\"size\">Size</th>"
              "<th class=\"date\">Last modified (UTC)</th></tr></thead>\n"
              "<tbody>\n",
              page);
    }
    for (size_t i = 0; !failed && i < count; i++)
        failed = !put_row(page, dirfd(dir), &entries[i]);
    closedir(dir);
    for (size_t i = 0; i < count; i++)
        free(entries[i].name);
    free(entries);
    if (page) {
        fputs("</tbody>\n</table>\n<hr>\n</body>\n</html>\n", page);
        failed |= ferror(page) != 0;
        failed |= fclose(page) != 0;
    }
    int rc = failed ? ENOMEM : send_page(h, data, len);
    free(data);
    return rc;
}
