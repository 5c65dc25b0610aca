/*
 * Lab step 3 — the same server with libsockserv.
 *
 *   step3_threading [PORT]  or  step3_forking [PORT]
 *                                (default 8000; 0 = any free port)
 *
 * The service, the same in steps 1 to 3: every byte a client sends comes
 * back in upper case. Try it with `nc 127.0.0.1 8000`.
 *
 * The lesson's socketserver recipe (集成模块完成多进程/线程socket并发), in
 * C: a request handler class whose handle() serves one client, and a
 * server made of a kind (TCP) and a strategy (Python's mix-in). Socket,
 * bind, listen, the accept loop and the thread per client of step 2 are
 * the library's job now. step3_threading.c and step3_forking.c are the same
 * file but for one word: the strategy, ss_threading (a thread per client,
 * Python's ThreadingTCPServer) or ss_forking (a child process per client,
 * ForkingTCPServer).
 */
#include <sockserv/sockserv.h>

#include <ctype.h>
#include <stdio.h>

/* The service: step 1's serve_client() as a handler. The library calls it
 * once per client, wherever the strategy runs it, and closes the
 * connection when it returns. Python: class UpperHandler(
 * socketserver.StreamRequestHandler) with this as its handle(). */
static int upper_handle(ss_request *req)
{
    char who[64];
    ss_request_client_address_string(req, who, sizeof who);
    printf("%s connected\n", who);

    char buf[1024];
    int n;
    while ((n = ss_read(req, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            buf[i] = (char)toupper((unsigned char)buf[i]);
        if ((n = ss_write_all(req, buf, (size_t)n)) < 0)
            break;
    }
    printf("%s left\n", who);
    return n < 0 ? n : 0; /* an error code: the server reports it */
}

/* The handler class: a const struct of function pointers. */
static const ss_handler_class upper_handler = {
    .base = &ss_stream_handler, /* StreamRequestHandler */
    .handle = upper_handle,
};

int main(int argc, char **argv)
{
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%s",
             argc > 1 ? argv[1] : "8000");
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, even to a pipe */

    ss_config cfg;
    ss_config_init(&cfg);
    cfg.allow_reuse_address = true; /* restart at once after Ctrl-C */

    /* The strategy (Python's mix-in): how each client is run. This line is
     * the only difference between step3_threading.c and step3_forking.c. */
    const ss_strategy *strategy = &ss_forking;

    /* The server: kind + strategy + handler class. */
    ss_server *srv;
    int rc =
        ss_server_new(&srv, &ss_tcp, strategy, address, &upper_handler, &cfg);
    if (rc < 0) {
        fprintf(stderr, "cannot serve on %s: %s\n", address, ss_strerror(rc));
        return 1;
    }
    /* Ctrl-C and kill make ss_serve_forever() return: exit 0, cleanly. */
    ss_shutdown_on_signals(srv);
    ss_server_address_string(srv, address, sizeof address); /* real port */
    printf("listening on %s\n", address);

    rc = ss_serve_forever(srv, 0.5); /* Python: server.serve_forever() */
    ss_server_free(srv);             /* Python: server.server_close() */
    return rc < 0 ? 1 : 0;
}
