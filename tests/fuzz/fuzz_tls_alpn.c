/*
 * fuzz_tls_alpn.c — libFuzzer target for the one text around TLS the
 * library parses itself: ss_tls_options.alpn, "http/1.1,h2", turned into
 * ALPN's wire format (lib/transports/tls_alpn.c, ss__tls_alpn_wire). It
 * comes from configuration (a command line, a file), and OpenSSL trusts
 * the wire format it is given, so a malformed one must never come out.
 *
 * The input, up to its first NUL, is the list; the output buffer is a heap
 * block of a size taken from the input's first byte (0..255, so the
 * "list too long" path is reached), ending exactly where it ends so that
 * ASan catches a write past it. Properties, each an abort when broken:
 *  - the result is -EINVAL or a length in 0..size, and 0 exactly when the
 *    list is empty or blank;
 *  - the output is a sequence of names, each a length byte of 1..255 and
 *    that many printable ASCII bytes without ',' or white space, covering
 *    the result exactly;
 *  - each name is, in order, one comma-separated item of the input with
 *    its surrounding blanks removed;
 *  - the names joined with ',' parse back to the same bytes.
 */
#include "tls_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_tls_alpn: %s:%d: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

static bool blank(const char *s)
{
    return s[strspn(s, " \t")] == '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t out_size = data[0];
    char *list = malloc(size);
    if (!list)
        return 0;
    memcpy(list, data + 1, size - 1);
    list[size - 1] = '\0';
    unsigned char *out = malloc(out_size ? out_size : 1);
    if (!out) {
        free(list);
        return 0;
    }
    int n = ss__tls_alpn_wire(list, out, out_size);
    CHECK(n == -EINVAL || (n >= 0 && (size_t)n <= out_size));
    if (blank(list))
        CHECK(n == 0);
    if (n > 0) {
        CHECK(!blank(list));
        /* Walk the names and the input's items side by side. */
        const char *item = list;
        char *joined = malloc((size_t)n + 1);
        size_t used = 0, at = 0;
        CHECK(joined != NULL);
        while (at < (size_t)n) {
            size_t len = out[at++];
            CHECK(len >= 1 && at + len <= (size_t)n);
            for (size_t i = 0; i < len; i++) {
                unsigned char c = out[at + i];
                CHECK(c > ' ' && c < 0x7f && c != ',');
            }
            CHECK(item != NULL);
            item += strspn(item, " \t");
            CHECK(strncmp(item, (const char *)out + at, len) == 0);
            const char *rest = item + len;
            rest += strspn(rest, " \t");
            CHECK(*rest == ',' || *rest == '\0');
            item = *rest == ',' ? rest + 1 : NULL;
            if (used)
                joined[used++] = ',';
            memcpy(joined + used, out + at, len);
            used += len;
            at += len;
        }
        CHECK(item == NULL); /* every item became a name */
        joined[used] = '\0';
        unsigned char *again = malloc((size_t)n);
        CHECK(again != NULL);
        CHECK(ss__tls_alpn_wire(joined, again, (size_t)n) == n);
        CHECK(memcmp(again, out, (size_t)n) == 0);
        free(again);
        free(joined);
    }
    free(out);
    free(list);
    return 0;
}
