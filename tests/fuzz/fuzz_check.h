/*
 * fuzz_check.h — what every fuzz target here shares: CHECK(cond), which
 * reports a broken property with its file and line and aborts, so
 * libFuzzer (or the replay main, under ctest) stops on that input.
 */
#ifndef SOCKSERV_FUZZ_CHECK_H
#define SOCKSERV_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__,          \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif /* SOCKSERV_FUZZ_CHECK_H */
