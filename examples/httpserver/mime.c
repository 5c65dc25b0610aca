/*
 * mime.c — the Content-Type of a file, from its extension.
 *
 * Python asks the mimetypes module, which reads /etc/mime.types; a compact
 * built-in table gives the same answers for what a web page is made of and
 * does not depend on what the machine has installed. Text types say
 * charset=utf-8 so that browsers need not guess.
 */
#include "httpd.h"

#include <string.h>

static const struct {
    const char *extension; /* without the dot, lower case */
    const char *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/vnd.microsoft.icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"}, /* Python's extensions_map */
    {"bz2", "application/x-bzip2"},
    {"xz", "application/x-xz"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
};

/* Longest extension in the table, plus one. */
#define EXTENSION_MAX 6

const char *httpd_guess_type(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    /* ".bashrc" has no extension, as in Python's splitext */
    if (dot == NULL || dot == base)
        return "application/octet-stream";
    /* Lower-cased once, then compared exactly, first byte first: this runs
     * for every file served, and a strcasecmp() per table entry was a
     * tenth of a keep-alive request's instructions for an extension not
     * in the table (callgrind). */
    char ext[EXTENSION_MAX];
    size_t n = 0;
    for (const char *p = dot + 1; *p; p++) {
        if (n + 1 == sizeof ext)
            return "application/octet-stream"; /* longer than any */
        ext[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    }
    ext[n] = '\0';
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].extension[0] == ext[0] &&
            strcmp(ext, types[i].extension) == 0)
            return types[i].type;
    return "application/octet-stream";
}
