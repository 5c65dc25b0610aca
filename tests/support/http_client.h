/*
 * http_client.h — a minimal blocking HTTP/1.1 client for the tests that
 * run sockserv-httpd as a program (test_httpd, test_httpd_cache): one
 * connection to a loopback port, requests sent as text, responses read
 * per Content-Length (or to the end of the stream without one).
 *
 * Every call fails the running cmocka test on an error or a timeout
 * rather than returning one.
 */
#ifndef SOCKSERV_TEST_HTTP_CLIENT_H
#define SOCKSERV_TEST_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct test_http_conn {
    int fd;
    char buf[1 << 16];
    size_t len; /* bytes received and not yet consumed */
} test_http_conn;

typedef struct test_http_response {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char body[1 << 16];
    size_t body_len; /* body[body_len] is a NUL */
} test_http_response;

/* Connect to 127.0.0.1:port; every later send or receive on it fails the
 * test after timeout seconds without progress. */
test_http_conn *test_http_connect(int port, double timeout);
void test_http_close(test_http_conn *c);
/* Send the whole of text. */
void test_http_send(test_http_conn *c, const char *text);
/* More bytes into c->buf; false at the end of the stream. */
bool test_http_receive_more(test_http_conn *c);
/* Read one response off c. HEAD, 204 and 304 responses have no body. */
void test_http_read_response(test_http_conn *c, test_http_response *r,
                             bool head_request);
/* The value of header name in r (any case), in a buffer of the calling
 * thread's that the next call reuses, or NULL. */
const char *test_http_header(const test_http_response *r, const char *name);

#endif
