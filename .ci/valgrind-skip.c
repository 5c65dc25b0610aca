/*
 * valgrind-skip.c — lets .ci/valgrind.sh leave out single cmocka test cases
 * whose timing bound cannot hold under Valgrind, without touching the
 * tests. Built as a shared object and preloaded (LD_PRELOAD) into a test
 * run under memcheck, it wraps cmocka's _cmocka_run_group_tests (what
 * cmocka_run_group_tests expands to) and drops every case whose name
 * matches one of the fnmatch(3) patterns in SOCKSERV_VALGRIND_SKIP
 * (separated by newlines), saying so on stdout. The remaining cases run
 * through the real function, unchanged.
 *
 * cmocka 1.1's own cmocka_set_skip_filter takes a single pattern; a test
 * program may need several.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fnmatch.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef int (*run_fn)(const char *, const struct CMUnitTest *const,
                      const size_t, CMFixtureFunction, CMFixtureFunction);

static int skipped(const char *name, const char *patterns)
{
    const char *p = patterns;
    while (*p) {
        size_t n = strcspn(p, "\n");
        if (n > 0) {
            char pattern[512];
            snprintf(pattern, sizeof pattern, "%.*s", (int)n, p);
            if (fnmatch(pattern, name, 0) == 0)
                return 1;
        }
        p += n + (p[n] == '\n');
    }
    return 0;
}

int _cmocka_run_group_tests(const char *group_name,
                            const struct CMUnitTest *const tests,
                            const size_t num_tests,
                            CMFixtureFunction group_setup,
                            CMFixtureFunction group_teardown)
{
    run_fn real = (run_fn)dlsym(RTLD_NEXT, "_cmocka_run_group_tests");
    if (!real) {
        fprintf(stderr, "valgrind-skip: no _cmocka_run_group_tests\n");
        abort();
    }
    const char *patterns = getenv("SOCKSERV_VALGRIND_SKIP");
    if (!patterns || !*patterns)
        return real(group_name, tests, num_tests, group_setup, group_teardown);

    struct CMUnitTest *kept = calloc(num_tests ? num_tests : 1, sizeof *kept);
    if (!kept)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < num_tests; i++) {
        if (skipped(tests[i].name, patterns))
            printf("[ SKIPPED  ] %s (under valgrind: .ci/valgrind.sh)\n",
                   tests[i].name);
        else
            kept[n++] = tests[i];
    }
    fflush(stdout);
    int rc = real(group_name, kept, n, group_setup, group_teardown);
    free(kept);
    return rc;
}
