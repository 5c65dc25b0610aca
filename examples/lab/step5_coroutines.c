/*
 * Lab steps 4 and 5 — HTTPServer V2.0: a small web server in a "class".
 *
 *   step4_httpserver_v2 [PORT] [DIRECTORY]
 *   step5_coroutines    [PORT] [DIRECTORY]
 *       PORT       default 8000; 0 = any free port
 *       DIRECTORY  the pages to serve (default: examples/lab/static)
 *
 * The lesson's HTTPServer V2.0, point by point:
 *   1. it parses each request (the request line, then header lines up to
 *      the empty line) and answers what was asked;
 *   2. it serves many clients at once — how is up to the strategy, one
 *      word in httpserver_open(): ss_threading (a thread per client) in
 *      step 4, ss_coroutines (a coroutine per client) in step 5;
 *   3. besides pages from DIRECTORY it serves simple data: /time (text)
 *      and /api/hello (JSON);
 *   4. it is wrapped in a class: httpserver_open(), _serve_forever() and
 *      _close() on a struct httpserver, like the lesson's
 *      HTTPServer(addr, static_dir).serve_forever().
 *
 * One request per connection, answered with "Connection: close" (HTTP/1.0
 * style). Reading the request by hand with ss_readline() is the point of
 * the exercise; the library's real HTTP handler — keep-alive, bodies,
 * limits, error pages — is <sockserv/http.h>, and sockserv-httpd
 * (examples/httpserver) is a complete server built on it.
 *
 * step5_coroutines.c is this file with that one word changed.
 */
#include <sockserv/sockserv.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LAB_STATIC_DIR
#define LAB_STATIC_DIR "static" /* the build passes examples/lab/static */
#endif

/* The object: the lesson's self.static_dir and the server it runs. */
typedef struct httpserver {
    const char *static_dir;
    ss_server *server;
} httpserver;

/* One request, as parsed: the per-request state. The library allocates a
 * zeroed one for every connection (state_size below) and frees it
 * afterwards; ss_request_state() returns it. Python's BaseHTTPRequestHandler
 * keeps the same things as self.command, self.path, self.headers. */
typedef struct http_request {
    char method[16];
    char path[512];
    char version[16];
    char user_agent[128]; /* the one header we keep */
    char line[128];       /* the request line as received, for the log */
    long content_length;  /* of the body after the head; 0 = none */
    int status;           /* of our answer, for the log; 0 = none sent */
} http_request;

/* ---- reading the request --------------------------------------------- */

/* Copy a header's value (or the request line), trimmed, with anything
 * unprintable or special in JSON (" and \) replaced by '?': it goes into
 * the log and into JSON. */
static void copy_value(char *dst, size_t size, const char *value)
{
    value += strspn(value, " \t");
    size_t i = 0;
    for (; value[i] && value[i] != '\r' && value[i] != '\n' && i + 1 < size;
         i++) {
        bool plain = isprint((unsigned char)value[i]) && value[i] != '"' &&
                     value[i] != '\\';
        dst[i] = plain ? value[i] : '?';
    }
    dst[i] = '\0';
}

/* The request line: three words, "GET /index.html HTTP/1.1". Python:
 * method, path, version = line.split(). Returns 0 or 400. */
static int parse_request_line(http_request *r, char *line)
{
    char *save, *words[4] = {NULL};
    int count = 0;
    for (char *w = strtok_r(line, " \r\n", &save); w && count < 4;
         w = strtok_r(NULL, " \r\n", &save))
        words[count++] = w;
    if (count != 3 || strncmp(words[2], "HTTP/1.", 7) != 0 ||
        strlen(words[0]) >= sizeof r->method ||
        strlen(words[1]) >= sizeof r->path ||
        strlen(words[2]) >= sizeof r->version)
        return 400;
    strcpy(r->method, words[0]);
    strcpy(r->path, words[1]);
    strcpy(r->version, words[2]);
    r->path[strcspn(r->path, "?")] = '\0'; /* drop a query string */
    return 0;
}

/* A header line: "Name: value". Returns 0 or 400. */
static int parse_header(http_request *r, char *line)
{
    char *colon = strchr(line, ':');
    if (colon == NULL || colon == line)
        return 400;
    *colon = '\0';
    const char *value = colon + 1;
    if (strcasecmp(line, "User-Agent") == 0) {
        copy_value(r->user_agent, sizeof r->user_agent, value);
    } else if (strcasecmp(line, "Content-Length") == 0) {
        char *end;
        r->content_length = strtol(value, &end, 10);
        if (end == value || r->content_length < 0 ||
            r->content_length > 1024 * 1024 ||
            strspn(end, " \t\r\n") != strlen(end))
            return 400;
    }
    return 0;
}

/* Read the whole head: the request line and header lines, up to the empty
 * line. All of it, even after a mistake: a connection closed with unread
 * data is reset by the kernel, and the client could lose our answer.
 * Returns 0, 400 for a malformed request, SS_EOF when the client left
 * before finishing it, or a negative errno (a timeout…). */
static int parse_request(ss_request *req, http_request *r)
{
    char line[1024];
    int status = 0;
    for (int lines = 0; lines < 100; lines++) {
        int n = ss_readline(req, line, sizeof line);
        if (lines == 0 && (n > 0 || n == -EMSGSIZE)) /* even if malformed */
            copy_value(r->line, sizeof r->line, line);
        if (n == -EMSGSIZE) { /* too long: the rest comes as the next line */
            status = 400;
            continue;
        }
        if (n < 0)
            return n;
        if (n == 0 || line[n - 1] != '\n')
            return SS_EOF;
        if (lines > 0 && (strcmp(line, "\r\n") == 0 || strcmp(line, "\n") == 0))
            return status; /* the empty line: the head is complete */
        int rc =
            lines == 0 ? parse_request_line(r, line) : parse_header(r, line);
        if (status == 0)
            status = rc;
    }
    return 400; /* more than 100 lines: not a request we want */
}

/* The body, if any, is read and dropped — for the same reason as above. */
static int skip_body(ss_request *req, http_request *r)
{
    char buf[4096];
    for (long left = r->content_length; left > 0;) {
        int n = ss_read(req, buf, left < 4096 ? (size_t)left : sizeof buf);
        if (n <= 0)
            return n < 0 ? n : SS_EOF;
        left -= n;
    }
    return 0;
}

/* ---- answering ------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    default:
        return "Error";
    }
}

/* The response head: status line, headers, empty line. */
static int send_head(ss_request *req, http_request *r, int status,
                     const char *type, size_t length)
{
    r->status = status;
    int rc = ss_writef(req,
                           "HTTP/1.1 %d %s\r\n"
                           "Content-Type: %s\r\n"
                           "Content-Length: %zu\r\n"
                           "%s"
                           "Connection: close\r\n"
                           "\r\n",
                           status, reason(status), type, length,
                           status == 405 ? "Allow: GET, HEAD\r\n" : "");
    return rc < 0 ? rc : 0;
}

/* A whole answer from memory; HEAD gets the head alone. */
static int send_answer(ss_request *req, http_request *r, int status,
                       const char *type, const char *body, size_t length)
{
    int rc = send_head(req, r, status, type, length);
    if (rc == 0 && strcmp(r->method, "HEAD") != 0) {
        int sent = ss_write_all(req, body, length);
        rc = sent < 0 ? sent : 0;
    }
    return rc;
}

static int send_error(ss_request *req, http_request *r, int status)
{
    char body[128];
    int n =
        snprintf(body, sizeof body, "<h1>%d %s</h1>\n", status, reason(status));
    return send_answer(req, r, status, "text/html; charset=utf-8", body,
                       (size_t)n);
}

/* ---- simple data ----------------------------------------------------- */

static int send_time(ss_request *req, http_request *r)
{
    char body[64];
    time_t now = time(NULL);
    struct tm tm;
    size_t n = strftime(body, sizeof body, "%Y-%m-%d %H:%M:%S\n",
                        localtime_r(&now, &tm));
    return send_answer(req, r, 200, "text/plain; charset=utf-8", body, n);
}

static int send_hello(ss_request *req, http_request *r)
{
    char who[64], body[512];
    ss_request_client_address_string(req, who, sizeof who);
    int n = snprintf(body, sizeof body,
                     "{\"message\": \"hello\", \"client\": \"%s\", "
                     "\"user_agent\": \"%s\"}\n",
                     who, r->user_agent);
    return send_answer(req, r, 200, "application/json", body, (size_t)n);
}

/* Paths that answer with data instead of a file. Python: the lesson's
 * urls list. Add a route here. */
static const struct {
    const char *path;
    int (*send)(ss_request *req, http_request *r);
} routes[] = {
    {"/time", send_time},
    {"/api/hello", send_hello},
};

/* ---- pages ------------------------------------------------------------ */

/* Only plain paths: letters, digits and "-._/" (so no "%XX", no "\"), and
 * no part that starts with '.': that refuses "..", which would climb out
 * of the directory, as well as hidden files such as ".git". */
static bool safe_path(const char *path)
{
    if (path[0] != '/')
        return false;
    for (const char *p = path; *p; p++) {
        if (!isalnum((unsigned char)*p) && strchr("-._/", *p) == NULL)
            return false;
        if (p[0] == '/' && p[1] == '.')
            return false;
    }
    return true;
}

static const char *content_type(const char *file)
{
    static const struct {
        const char *extension, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css"},
        {".js", "text/javascript"},
        {".txt", "text/plain; charset=utf-8"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(file, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].extension) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* A file of the directory; "/" and "/dir/" mean their index.html. */
static int send_page(ss_request *req, http_request *r)
{
    httpserver *self = ss_request_user(req);
    if (!safe_path(r->path))
        return 403;
    char file[1024];
    bool is_dir = r->path[strlen(r->path) - 1] == '/';
    int n = snprintf(file, sizeof file, "%s%s%s", self->static_dir, r->path,
                     is_dir ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof file)
        return 404;

    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 404;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 404;
    }
    int rc = send_head(req, r, 200, content_type(file), (size_t)st.st_size);
    off_t offset = 0;
    while (rc == 0 && strcmp(r->method, "HEAD") != 0 && offset < st.st_size) {
        /* The kernel copies the file to the socket; under coroutines the
         * wait for room in the socket parks only this request. */
        int sent =
            ss_sendfile(req, fd, &offset, (size_t)(st.st_size - offset));
        if (sent <= 0)
            rc = sent < 0 ? sent : -EIO; /* the file shrank */
    }
    close(fd);
    return rc;
}

/* ---- the handler class ------------------------------------------------- */

/* Answer a parsed request. Returns 0 once answered, an error status to
 * answer with instead, or a negative errno. */
static int respond(ss_request *req, http_request *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        return 405;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(r->path, routes[i].path) == 0)
            return routes[i].send(req, r);
    return send_page(req, r);
}

/* One connection: one request, one answer, one log line. The library
 * calls it for every client, and closes the connection when it returns.
 * Python: the lesson's handle_request(connfd). */
static int handle(ss_request *req)
{
    http_request *r = ss_request_state(req);
    int rc = parse_request(req, r);
    if (rc == 0)
        rc = skip_body(req, r);
    if (rc == SS_EOF)
        return 0; /* the client left before finishing its request */
    if (rc == 0)
        rc = respond(req, r);
    if (rc >= 400)
        rc = send_error(req, r, rc);

    if (r->status != 0) { /* the access log: who, what, which answer */
        char who[64];
        ss_request_client_address_string(req, who, sizeof who);
        printf("%s \"%s\" %d \"%s\"\n", who, r->line, r->status, r->user_agent);
    }
    return rc; /* negative: a timeout or a broken connection, reported */
}

static const ss_handler_class request_handler = {
    .base = &ss_stream_handler,
    .state_size = sizeof(http_request), /* a fresh one per connection */
    .handle = handle,
    .timeout = 30,    /* a client silent for 30 s is dropped */
    .wbufsize = 8192, /* the head and a small body leave in one send */
};

/* ---- the class: HTTPServer(address, static_dir) ------------------------ */

/* Python: httpd = HTTPServer(address, static_dir). config.user points at
 * the object, so every request reaches it: ss_request_user(req). */
static int httpserver_open(httpserver *self, const char *address,
                           const char *static_dir)
{
    self->static_dir = static_dir;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.allow_reuse_address = true; /* restart at once after Ctrl-C */
    cfg.user = self;
    /* How clients are run: the one word steps 4 and 5 differ in. */
    const ss_strategy *strategy = &ss_coroutines;
    int rc = ss_server_new(&self->server, &ss_tcp, strategy, address,
                           &request_handler, &cfg);
    if (rc == 0)
        ss_shutdown_on_signals(self->server); /* Ctrl-C: a clean exit */
    return rc;
}

/* Python: httpd.serve_forever(). Returns after Ctrl-C or kill. */
static int httpserver_serve_forever(httpserver *self)
{
    return ss_serve_forever(self->server, 0.5);
}

static void httpserver_close(httpserver *self)
{
    ss_server_free(self->server);
}

int main(int argc, char **argv)
{
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%s",
             argc > 1 ? argv[1] : "8000");
    const char *static_dir = argc > 2 ? argv[2] : LAB_STATIC_DIR;
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, even to a pipe */

    httpserver httpd;
    int rc = httpserver_open(&httpd, address, static_dir);
    if (rc < 0) {
        fprintf(stderr, "cannot serve on %s: %s\n", address, ss_strerror(rc));
        return 1;
    }
    ss_server_address_string(httpd.server, address, sizeof address);
    printf("listening on %s\n", address);
    printf("serving %s at http://%s/\n", static_dir, address);

    rc = httpserver_serve_forever(&httpd);
    httpserver_close(&httpd);
    return rc < 0 ? 1 : 0;
}
