/*
 * files.c — see files.h.
 */
#include "files.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

void test_write_pattern_file(const char *path, size_t size, uint64_t seed)
{
    static unsigned char block[64 * 1024];
    uint64_t x = seed * 2654435761u + 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    for (size_t done = 0; done < size;) {
        size_t n = size - done < sizeof block ? size - done : sizeof block;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block[i] = (unsigned char)x;
        }
        assert_int_equal(write(fd, block, n), (ssize_t)n);
        done += n;
    }
    assert_int_equal(close(fd), 0);
}

bool test_files_equal(const char *a, const char *b)
{
    static char x[64 * 1024], y[64 * 1024];
    int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
    bool same = fa >= 0 && fb >= 0;
    while (same) {
        /* Regular local files: full reads until the end. */
        ssize_t na = read(fa, x, sizeof x), nb = read(fb, y, sizeof y);
        same = na == nb && na >= 0 && memcmp(x, y, (size_t)na) == 0;
        if (na <= 0)
            break;
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

char *test_read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

bool test_sanitizer_report(const char *text)
{
    return strstr(text, "Sanitizer") != NULL ||
           strstr(text, "runtime error:") != NULL;
}
