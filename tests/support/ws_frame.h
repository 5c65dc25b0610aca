/*
 * ws_frame.h — the client side of RFC 6455 for tests, by hand: the
 * upgrade request, a masked client frame, a server frame's header. No
 * I/O, so that a plain socket (test_chatroom.c) and a TLS connection
 * (test_programs_tls.c) use the same bytes.
 */
#ifndef SOCKSERV_TEST_WS_FRAME_H
#define SOCKSERV_TEST_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 6455's own example key and the Accept it must produce. */
#define TEST_WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define TEST_WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* The upgrade request for /ws with Host host (e.g. "127.0.0.1:8000") and
 * an Origin header unless origin is NULL, into buf. */
void test_ws_request(char *buf, size_t size, const char *host,
                     const char *origin);

/* One client frame (FIN, opcode, masked as a client's must be, payload
 * of n <= 65535 bytes) into out; returns its length. Fails the test if
 * out is too small. */
size_t test_ws_client_frame(unsigned char *out, size_t size, int opcode,
                            const void *payload, size_t n);

/* The header of the server frame at f (len bytes there): 0 when it is not
 * all there yet, else the header's length, with *opcode, *fin and the
 * payload's length *n (the payload may not all be there yet). Fails the
 * test if the frame is masked (a server never masks). */
size_t test_ws_frame_header(const unsigned char *f, size_t len, int *opcode,
                            bool *fin, uint64_t *n);

#endif /* SOCKSERV_TEST_WS_FRAME_H */
