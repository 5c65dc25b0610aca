/*
 * ws_frame.c — RFC 6455 framing for test clients (ws_frame.h).
 */
#include "ws_frame.h"

#include <stdio.h>
#include <string.h>

#include <setjmp.h> /* cmocka.h needs these three first */
#include <stdarg.h>
#include <cmocka.h>

void test_ws_request(char *buf, size_t size, const char *host,
                     const char *origin)
{
    char origin_line[256] = "";
    if (origin)
        snprintf(origin_line, sizeof origin_line, "Origin: %s\r\n", origin);
    snprintf(buf, size,
             "GET /ws HTTP/1.1\r\n"
             "Host: %s\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: " TEST_WS_KEY "\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "%s\r\n",
             host, origin_line);
}

size_t test_ws_client_frame(unsigned char *out, size_t size, int opcode,
                            const void *payload, size_t n)
{
    assert_true(n <= 0xffff && size >= n + 8);
    size_t len = 0;
    out[len++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        out[len++] = (unsigned char)(0x80 | n);
    } else {
        out[len++] = 0x80 | 126;
        out[len++] = (unsigned char)(n >> 8);
        out[len++] = (unsigned char)n;
    }
    const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    memcpy(out + len, mask, 4);
    len += 4;
    for (size_t i = 0; i < n; i++)
        out[len + i] = ((const unsigned char *)payload)[i] ^ mask[i % 4];
    return len + n;
}

size_t test_ws_frame_header(const unsigned char *f, size_t len, int *opcode,
                            bool *fin, uint64_t *n)
{
    if (len < 2)
        return 0;
    assert_false(f[1] & 0x80); /* a server never masks */
    *opcode = f[0] & 0x0f;
    *fin = (f[0] & 0x80) != 0;
    *n = f[1] & 0x7f;
    if (*n == 126) {
        if (len < 4)
            return 0;
        *n = (uint64_t)f[2] << 8 | f[3];
        return 4;
    }
    if (*n == 127) {
        if (len < 10)
            return 0;
        *n = 0;
        for (int i = 0; i < 8; i++)
            *n = *n << 8 | f[2 + i];
        return 10;
    }
    return 2;
}
