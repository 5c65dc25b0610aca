/*
 * api.c — the JSON routes next to the files: "simple data besides web
 * pages".
 *
 *   GET  /api/status         {"uptime_seconds":12.5,"requests_served":42,
 *                             "mode":"thread","max_connections":330,
 *                             "tls":false,"file_cache":{"hits":…}}
 *   POST /api/echo           the request body in, {"length":N,"lines":M} out
 *   GET  /api/greet/{name}   {"greeting":"Hello, NAME!"}; ?greeting=Hi
 *                            changes the first word
 *   POST /api/greet          the same from a form body (name=…&greeting=…,
 *                            an HTML form's POST)
 *
 * Routes are patterns matched with the library's request helpers
 * (sockserv/http.h): ss_http_match() against the decoded path, with
 * ss_http_capture() for "{name}", ss_http_query() for the query string and
 * ss_http_read_form() / ss_http_form() for form bodies. Adding a route is
 * one function and one line in the routes table below (docs/httpd.md
 * walks through it). Every path under /api belongs to the API, so a file
 * in a directory named "api" is not served: an unknown route is a JSON 404
 * rather than a surprise from the file system.
 */
#include "httpd.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Bodies larger than this are refused with 413 (the HTTP handler's
 * max_body_size is set to the same value in main.c). */
#define ECHO_MAX_BODY (64 * 1024)
/* A greeting's form body, and each of its words. */
#define GREET_MAX_FORM 1024
#define GREET_MAX_WORD 100

typedef int (*route_fn)(ss_http *h, httpd_context *ctx);

/* A JSON answer: Content-Type, Content-Length and no caching, since the
 * data is live. */
static int send_json(ss_http *h, int status, const char *json)
{
    size_t len = strlen(json);
    int rc = ss_http_send_response(h, status, NULL);
    if (rc == 0)
        rc = ss_http_send_header(h, "Content-Type", "application/json");
    if (rc == 0)
        rc = ss_http_send_headerf(h, "Content-Length", "%zu", len);
    if (rc == 0)
        rc = ss_http_send_header(h, "Cache-Control", "no-store");
    if (rc == 0)
        rc = ss_http_end_headers(h);
    if (rc == 0 && ss_http_write(h, json, len) < 0)
        rc = -1;
    return rc < 0 ? -1 : 0;
}

static int api_status(ss_http *h, httpd_context *ctx)
{
    char json[896], cache[576] = "null";
    double uptime = (double)(ss_now_ns() - ctx->started_ns) / 1e9;
    if (ctx->file_cache != NULL) { /* this process's cache */
        file_cache_stats st;
        file_cache_get_stats(ctx->file_cache, &st);
        snprintf(cache, sizeof cache,
                 "{\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
                 ",\"invalidated\":%" PRIu64 ",\"evicted\":%" PRIu64
                 ",\"uncacheable\":%" PRIu64 ",\"queue_reads\":%" PRIu64
                 ",\"queue_reads_skipped\":%" PRIu64
                 ",\"entries\":%zu,\"bytes\":%zu,\"descriptors\":%zu"
                 ",\"watches\":%zu,\"inotify\":%s}",
                 st.hits, st.misses, st.invalidated, st.evicted, st.uncacheable,
                 st.queue_reads, st.queue_reads_skipped, st.entries, st.bytes,
                 st.descriptors, st.watches, st.inotify ? "true" : "false");
    }
    snprintf(json, sizeof json,
             "{\"uptime_seconds\":%.3f,\"requests_served\":%" PRIu64
             ",\"mode\":\"%s\",\"max_connections\":%d,\"tls\":%s"
             ",\"file_cache\":%s}\n",
             uptime, atomic_load(ctx->requests_served), ctx->mode,
             ctx->max_connections, ctx->tls ? "true" : "false", cache);
    return send_json(h, 200, json);
}

/* Counts the body's bytes and lines (a last line without '\n' counts). */
static int api_echo(ss_http *h, httpd_context *ctx)
{
    (void)ctx;
    char buf[8192];
    uint64_t length = 0, lines = 0;
    char last = '\n';
    int n;
    while ((n = ss_http_read_body(h, buf, sizeof buf)) > 0) {
        length += (uint64_t)n;
        if (length > ECHO_MAX_BODY) {
            ss_http_close_connection(h); /* do not drain the rest */
            return send_json(h, 413, "{\"error\":\"body too large\"}\n");
        }
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
        last = buf[n - 1];
    }
    if (n < 0) {
        int status = ss_http_error_status(n);
        if (status == 0) /* the client went away or timed out */
            return -1;
        ss_http_close_connection(h);
        return send_json(h, status, "{\"error\":\"bad request body\"}\n");
    }
    if (last != '\n')
        lines++;
    char json[128];
    snprintf(json, sizeof json,
             "{\"length\":%" PRIu64 ",\"lines\":%" PRIu64 "}\n", length, lines);
    return send_json(h, 200, json);
}

/* s as the inside of a JSON string: quotes, backslashes and control
 * characters escaped; other bytes (UTF-8) as they are. Returns false when
 * it does not fit in size bytes. */
static bool json_escape(const char *s, char *out, size_t size)
{
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        int len;
        if (*c == '"' || *c == '\\')
            len = snprintf(esc, sizeof esc, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            len = snprintf(esc, sizeof esc, "\\u%04x", *c);
        else
            len = snprintf(esc, sizeof esc, "%c", *c);
        if (n + (size_t)len >= size)
            return false;
        memcpy(out + n, esc, (size_t)len);
        n += (size_t)len;
    }
    out[n] = '\0';
    return true;
}

/* {"greeting":"GREETING, NAME!"}, the greeting "Hello" unless given. */
static int send_greeting(ss_http *h, const char *greeting, const char *name)
{
    char g[6 * GREET_MAX_WORD + 1], n[6 * GREET_MAX_WORD + 1];
    if (!greeting || !*greeting)
        greeting = "Hello";
    if (!name || !*name)
        return send_json(h, 400, "{\"error\":\"no name\"}\n");
    if (strlen(greeting) > GREET_MAX_WORD || strlen(name) > GREET_MAX_WORD ||
        !json_escape(greeting, g, sizeof g) || !json_escape(name, n, sizeof n))
        return send_json(h, 400, "{\"error\":\"too long\"}\n");
    char json[2 * sizeof g + 32];
    snprintf(json, sizeof json, "{\"greeting\":\"%s, %s!\"}\n", g, n);
    return send_json(h, 200, json);
}

/* GET /api/greet/{name}?greeting=Hi: the name is a capture of the
 * decoded path, the greeting a decoded query parameter. */
static int api_greet_path(ss_http *h, httpd_context *ctx)
{
    (void)ctx;
    return send_greeting(h, ss_http_query(h, "greeting"),
                         ss_http_capture(h, "name"));
}

/* POST /api/greet with name=…&greeting=… as an HTML form sends it. */
static int api_greet_form(ss_http *h, httpd_context *ctx)
{
    (void)ctx;
    int rc = ss_http_read_form(h, GREET_MAX_FORM);
    if (rc < 0) {
        int status = ss_http_error_status(rc); /* 413, 415, 400 */
        if (status == 0) /* the client went away or timed out */
            return -1;
        return send_json(h, status, "{\"error\":\"bad form\"}\n");
    }
    return send_greeting(h, ss_http_form(h, "greeting"),
                         ss_http_form(h, "name"));
}

/* Method, route pattern (ss_http_match()), function. GET routes answer
 * HEAD too. */
static const struct {
    const char *method;
    const char *pattern;
    route_fn fn;
} routes[] = {
    {"GET", "/api/status", api_status},
    {"POST", "/api/echo", api_echo},
    {"GET", "/api/greet/{name}", api_greet_path},
    {"POST", "/api/greet", api_greet_form},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* Takes the decoded, normalised path (httpd_path.relative: "api/status",
 * "." for the root), never the raw one: "/%61pi/x", "/./api/x" and
 * "//api/x" all name the file api/x, so they must all be the API's, or a
 * directory named "api" would be reachable through them. */
bool httpd_api_owns(const char *relative)
{
    return strncmp(relative, "api", 3) == 0 &&
           (relative[3] == '\0' || relative[3] == '/');
}

int httpd_api_handle(ss_http *h, httpd_context *ctx, const httpd_path *path)
{
    (void)path; /* it decided that the API owns the request (main.c) */
    const char *method = ss_http_method_name(h);
    bool path_known = false;
    char allow[64] = "";
    /* Routes match the decoded path exactly ("/%61pi/status" is
     * /api/status; a trailing slash or "//" names a different, unknown
     * route): ss_http_match(). */
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (!ss_http_match(h, routes[i].pattern))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(routes[i].method, "GET") == 0 &&
             strcmp(method, "HEAD") == 0))
            return routes[i].fn(h, ctx);
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s%s",
                 allow[0] ? ", " : "", routes[i].method,
                 strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
    }
    if (!path_known)
        return send_json(h, 404, "{\"error\":\"no such route\"}\n");

    /* 405 must say what is allowed (RFC 9110 §15.5.6). */
    static const char json[] = "{\"error\":\"method not allowed\"}\n";
    int rc = ss_http_send_response(h, 405, NULL);
    if (rc == 0)
        rc = ss_http_send_header(h, "Allow", allow);
    if (rc == 0)
        rc = ss_http_send_header(h, "Content-Type", "application/json");
    if (rc == 0)
        rc = ss_http_send_headerf(h, "Content-Length", "%zu", sizeof json - 1);
    if (rc == 0)
        rc = ss_http_end_headers(h);
    if (rc == 0 && ss_http_write(h, json, sizeof json - 1) < 0)
        rc = -1;
    return rc < 0 ? -1 : 0;
}
