/*
 * replay_main.c — the main() that turns a fuzz target into a regression
 * test: it feeds each file named on the command line (or each file in a
 * named directory) to LLVMFuzzerTestOneInput once, in name order, so the
 * seed corpus and every input that once crashed run under ctest with any
 * compiler, libFuzzer or not.
 *
 *   fuzz_address_replay tests/fuzz/corpus/address
 * tests/fuzz/regressions/address
 *
 * A target reports a broken property by aborting, so a bad input ends the
 * run with SIGABRT and the name of the file on stderr. Options starting
 * with '-' (libFuzzer's) are ignored. A directory that does not exist is an
 * error; an empty one is fine (regressions/ starts out empty).
 */
#define _DEFAULT_SOURCE /* DT_DIR, scandir, alphasort */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    uint8_t *data = NULL;
    size_t size = 0, cap = 0, n;
    uint8_t chunk[4096];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (size + n > cap) {
            cap = (size + n) * 2;
            uint8_t *grown = realloc(data, cap);
            if (!grown) {
                fprintf(stderr, "replay: %s: out of memory\n", path);
                free(data);
                fclose(f);
                return 1;
            }
            data = grown;
        }
        memcpy(data + size, chunk, n);
        size += n;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(data);
        return 1;
    }
    /* An exactly sized copy, as libFuzzer gives, so a sanitizer build
     * catches a read one past the end here too. */
    uint8_t *exact = malloc(size ? size : 1);
    if (!exact) {
        free(data);
        return 1;
    }
    if (size)
        memcpy(exact, data, size);
    free(data);
    /* Named before the call: if the target aborts, this says which input. */
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    return 0;
}

static int skip_entry(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    int failures = 0, files = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failures++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failures += replay_file(argv[i]);
            files++;
            continue;
        }
        struct dirent **names;
        int count = scandir(argv[i], &names, skip_entry, alphasort);
        if (count < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failures++;
            continue;
        }
        for (int k = 0; k < count; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                failures += replay_file(path);
                files++;
            }
            free(names[k]);
        }
        free(names);
    }
    printf("%s: replayed %d inputs, %d unreadable\n", argv[0], files, failures);
    return failures ? 1 : 0;
}
