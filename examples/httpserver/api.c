/*
 * api.c — the JSON routes next to the files: "simple data besides web
 * pages".
 *
 *   GET  /api/status
 *        {"uptime_seconds":12.5,"requests_served":42,"mode":"thread",
 *         "tls":false}
 *   POST /api/echo
 *        the request body in, {"length":N,"lines":M} out
 *
 * Adding a route is one function and one line in the routes table below
 * (docs/httpd.md walks through it). Every path under /api belongs to the
 * API, so a file in a directory named "api" is not served: an unknown
 * route is a JSON 404 rather than a surprise from the file system.
 */
#include "httpd.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Bodies larger than this are refused with 413 (the HTTP handler's
 * max_body_size is set to the same value in main.c). */
#define ECHO_MAX_BODY (64 * 1024)

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
    char json[256];
    double uptime = (double)(ss_now_ns() - ctx->started_ns) / 1e9;
    snprintf(json, sizeof json,
             "{\"uptime_seconds\":%.3f,\"requests_served\":%" PRIu64
             ",\"mode\":\"%s\",\"tls\":%s}\n",
             uptime, atomic_load(ctx->requests_served), ctx->mode,
             ctx->tls ? "true" : "false");
    return send_json(h, 200, json);
}

/* Counts the body's bytes and lines (a last line without '\n' counts). */
static int api_echo(ss_http *h, httpd_context *ctx)
{
    (void)ctx;
    char buf[8192];
    uint64_t length = 0, lines = 0;
    char last = '\n';
    ssize_t n;
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
        int status = ss_http_error_status((int)n);
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

/* Method, exact decoded path, function. GET routes answer HEAD too. */
static const struct {
    const char *method;
    const char *path;
    route_fn fn;
} routes[] = {
    {"GET", "/api/status", api_status},
    {"POST", "/api/echo", api_echo},
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
    const char *method = ss_http_method_name(h);
    bool path_known = false;
    char allow[64] = "";
    /* Routes match the decoded path, as ownership was decided on it; a
     * trailing slash names a different (unknown) route. */
    for (size_t i = 0; i < N_ROUTES; i++) {
        /* routes[i].path + 1: relative has no leading '/' */
        if (path->trailing_slash ||
            strcmp(routes[i].path + 1, path->relative) != 0)
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
