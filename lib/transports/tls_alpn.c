/*
 * tls_alpn.c — ss_tls_options.alpn, "http/1.1,h2", into the wire format
 * OpenSSL's ALPN callback compares with the client's list: each name as
 * one length byte and its bytes. A pure function (tests/fuzz has a
 * target for it): the only text around TLS the library parses itself.
 */
#include <errno.h>
#include <string.h>

#include "tls_internal.h"

int ss__tls_alpn_wire(const char *list, unsigned char *out, size_t size)
{
    size_t used = 0;
    const char *p = list;
    if (list[strspn(list, " \t")] == '\0')
        return 0; /* an empty (or blank) list: no ALPN */
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *end = p + strcspn(p, ",");
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        size_t len = (size_t)(last - p);
        /* RFC 7301: 1 to 255 bytes; printable ASCII keeps names sane
         * in logs, and no registered name uses anything else. */
        if (len == 0 || len > 255)
            return -EINVAL;
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
                return -EINVAL;
        if (size - used < len + 1)
            return -EINVAL;
        out[used++] = (unsigned char)len;
        memcpy(out + used, p, len);
        used += len;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    return (int)used;
}
