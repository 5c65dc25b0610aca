/*
 * http_client.c — see http_client.h.
 */
#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

test_http_conn *test_http_connect(int port, double timeout)
{
    test_http_conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {
        .tv_sec = (time_t)timeout,
        .tv_usec = (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return c;
}

void test_http_close(test_http_conn *c)
{
    close(c->fd);
    free(c);
}

void test_http_send(test_http_conn *c, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(send(c->fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

bool test_http_receive_more(test_http_conn *c)
{
    assert_true(c->len < sizeof c->buf);
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    assert_true(n >= 0); /* -1: the timeout, or an error */
    c->len += (size_t)n;
    return n > 0;
}

static void consume(test_http_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

void test_http_read_response(test_http_conn *c, test_http_response *r,
                             bool head_request)
{
    memset(r, 0, sizeof *r);
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        assert_true(test_http_receive_more(c));
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof r->head);
    memcpy(r->head, c->buf, head_len);
    assert_int_equal(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
    consume(c, head_len);

    const char *length = test_http_header(r, "Content-Length");
    if (head_request || r->status == 304 || r->status == 204) {
        r->body_len = 0;
    } else if (length != NULL) {
        size_t n = strtoul(length, NULL, 10);
        assert_true(n < sizeof r->body);
        while (c->len < n)
            assert_true(test_http_receive_more(c));
        memcpy(r->body, c->buf, n);
        r->body_len = n;
        consume(c, n);
    } else {
        while (test_http_receive_more(c))
            ;
        assert_true(c->len < sizeof r->body);
        memcpy(r->body, c->buf, c->len);
        r->body_len = c->len;
        c->len = 0;
    }
    r->body[r->body_len] = '\0';
}

const char *test_http_header(const test_http_response *r, const char *name)
{
    static _Thread_local char value[1024]; /* storm tests' threads */
    size_t len = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line;
         line = strstr(line + 2, "\r\n")) {
        const char *s = line + 2;
        if (strncasecmp(s, name, len) == 0 && s[len] == ':') {
            s += len + 1;
            s += strspn(s, " ");
            snprintf(value, sizeof value, "%.*s", (int)strcspn(s, "\r"), s);
            return value;
        }
    }
    return NULL;
}
