/*
 * test_kv_store.c — the key-value store over TCP that a new user writes
 * first (issue 18), under every strategy, and the warning of
 * docs/strategies.md that backs it: under ss_forking (and ss_prefork)
 * memory a handler changes dies with its process, so state shared between
 * requests must live outside it — here, a file per key.
 *
 * The protocol is a line each way: "SET key value" → "OK",
 * "GET key" → "VALUE value" or "NONE". Two stores sit behind the same
 * handler: a table in memory guarded by a mutex (right for ss_sync,
 * ss_threading, ss_thread_pool, ss_coroutines), and a directory with one
 * file per key, written to a temporary name and renamed into place (right
 * for every strategy).
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KV_MAX_KEYS 64
#define KV_MAX_TEXT 64

typedef struct kv_store {
    /* In memory. */
    pthread_mutex_t lock;
    int count;
    char keys[KV_MAX_KEYS][KV_MAX_TEXT];
    char values[KV_MAX_KEYS][KV_MAX_TEXT];
    /* On disk, when dir >= 0: one file per key. */
    int dir;
} kv_store;

/* Keys are file names, so only these characters. */
static bool key_ok(const char *key)
{
    size_t n = strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_");
    return n > 0 && key[n] == '\0' && n < KV_MAX_TEXT;
}

static int memory_set(kv_store *kv, const char *key, const char *value)
{
    pthread_mutex_lock(&kv->lock);
    int i = 0;
    while (i < kv->count && strcmp(kv->keys[i], key) != 0)
        i++;
    int rc = 0;
    if (i == KV_MAX_KEYS) {
        rc = -ENOSPC;
    } else {
        if (i == kv->count)
            snprintf(kv->keys[kv->count++], KV_MAX_TEXT, "%s", key);
        snprintf(kv->values[i], KV_MAX_TEXT, "%s", value);
    }
    pthread_mutex_unlock(&kv->lock);
    return rc;
}

static bool memory_get(kv_store *kv, const char *key, char *value)
{
    pthread_mutex_lock(&kv->lock);
    bool found = false;
    for (int i = 0; i < kv->count && !found; i++)
        if (strcmp(kv->keys[i], key) == 0) {
            memcpy(value, kv->values[i], KV_MAX_TEXT);
            found = true;
        }
    pthread_mutex_unlock(&kv->lock);
    return found;
}

/* The value goes to a file of its own, renamed over the key's: a reader
 * in another process sees the old value or the new one, never half. */
static int file_set(kv_store *kv, const char *key, const char *value)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".tmp.%d.%lu", (int)getpid(),
             (unsigned long)pthread_self());
    int fd =
        openat(kv->dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t n = strlen(value);
    int rc = write(fd, value, n) == (ssize_t)n ? 0 : -EIO;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(kv->dir, tmp, kv->dir, key) < 0)
        rc = -errno;
    if (rc < 0)
        unlinkat(kv->dir, tmp, 0);
    return rc;
}

static bool file_get(kv_store *kv, const char *key, char *value)
{
    int fd = openat(kv->dir, key, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, value, KV_MAX_TEXT - 1);
    close(fd);
    value[n > 0 ? n : 0] = '\0';
    return n >= 0;
}

/* One command per line until the client leaves. */
static int kv_handle(ss_request *req)
{
    kv_store *kv = ss_request_user(req);
    char line[2 * KV_MAX_TEXT + 8];
    int n;
    while ((n = ss_readline(req, line, sizeof line)) > 0) {
        line[strcspn(line, "\r\n")] = '\0';
        char value[KV_MAX_TEXT];
        char *key = strchr(line, ' ');
        char *arg = key ? strchr(key + 1, ' ') : NULL;
        if (key)
            *key++ = '\0';
        if (arg)
            *arg++ = '\0';
        if (strcmp(line, "SET") == 0 && key && arg && key_ok(key) &&
            strlen(arg) < KV_MAX_TEXT) {
            int rc = kv->dir >= 0 ? file_set(kv, key, arg)
                                  : memory_set(kv, key, arg);
            n = rc < 0 ? ss_writef(req, "ERROR %s\n", ss_strerror(rc))
                       : ss_write_all(req, "OK\n", 3);
        } else if (strcmp(line, "GET") == 0 && key && !arg && key_ok(key)) {
            bool found = kv->dir >= 0 ? file_get(kv, key, value)
                                      : memory_get(kv, key, value);
            n = found ? ss_writef(req, "VALUE %s\n", value)
                      : ss_write_all(req, "NONE\n", 5);
        } else {
            n = ss_write_all(req, "ERROR bad command\n", 18);
        }
        if (n < 0)
            break;
    }
    return n < 0 ? n : 0;
}

static const ss_handler_class kv_handler = {
    .base = &ss_stream_handler,
    .handle = kv_handle,
    .timeout = 10.0,
};

/* ---- the tests ------------------------------------------------------ */

typedef struct kv_server {
    kv_store store;
    char dir_path[64];
    test_options opts;
    test_server server;
} kv_server;

static void kv_start(kv_server *k, const ss_strategy *strategy, bool on_disk)
{
    memset(k, 0, sizeof *k);
    pthread_mutex_init(&k->store.lock, NULL);
    k->store.dir = -1;
    if (on_disk) {
        snprintf(k->dir_path, sizeof k->dir_path, "/tmp/sockserv-kv-XXXXXX");
        assert_non_null(mkdtemp(k->dir_path));
        k->store.dir = open(k->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(k->store.dir >= 0);
    }
    k->opts.prefork.workers = 2;
    k->opts.coro.threads = 2;
    ss_config cfg = {.user = &k->store};
    test_use_options(&cfg, strategy, &k->opts);
    assert_int_equal(test_server_start_with(&k->server, &ss_tcp, strategy,
                                            "127.0.0.1:0", &kv_handler, &cfg,
                                            0.05),
                     0);
}

static void kv_stop(kv_server *k)
{
    test_server_stop(&k->server);
    if (k->store.dir >= 0) {
        close(k->store.dir);
        assert_int_equal(test_remove_tree(k->dir_path), 0);
    }
    pthread_mutex_destroy(&k->store.lock);
}

/* One connection: send a command, expect one answer line. */
static void expect_answer(int fd, const char *command, const char *answer)
{
    test_send_all(fd, command, strlen(command));
    char got[128];
    size_t n = 0;
    while (n < sizeof got - 1) {
        test_recv_exact(fd, got + n, 1);
        if (got[n++] == '\n')
            break;
    }
    got[n] = '\0';
    assert_string_equal(got, answer);
}

/* A value set on one connection is there for the next ones — each in a
 * new thread, coroutine, child or whichever worker takes it. */
static void values_outlive_the_connection(const ss_strategy *strategy,
                                          bool on_disk)
{
    kv_server k;
    kv_start(&k, strategy, on_disk);
    int fd = test_connect(k.server.srv);
    assert_true(fd >= 0);
    expect_answer(fd, "SET color blue\n", "OK\n");
    expect_answer(fd, "GET color\n", "VALUE blue\n");
    expect_answer(fd, "GET size\n", "NONE\n");
    close(fd);
    for (int i = 0; i < 4; i++) {
        fd = test_connect(k.server.srv);
        assert_true(fd >= 0);
        expect_answer(fd, "GET color\n", "VALUE blue\n");
        close(fd);
    }
    /* Two clients at once (one after the other under ss_sync). */
    int a = test_connect(k.server.srv), b = test_connect(k.server.srv);
    assert_true(a >= 0 && b >= 0);
    expect_answer(a, "SET size 9\n", "OK\n");
    close(a);
    expect_answer(b, "GET size\n", "VALUE 9\n");
    close(b);
    kv_stop(&k);
}

#define KV_TEST(strategy, on_disk, name)                                       \
    static void test_##name(void **state)                                      \
    {                                                                          \
        (void)state;                                                           \
        values_outlive_the_connection(&strategy, on_disk);                     \
    }

/* A table in memory where every request shares the process's memory. */
KV_TEST(ss_sync, false, kv_in_memory_sync)
KV_TEST(ss_threading, false, kv_in_memory_threading)
KV_TEST(ss_thread_pool, false, kv_in_memory_thread_pool)
KV_TEST(ss_coroutines, false, kv_in_memory_coroutines)
/* Files where requests run in processes of their own — and everywhere. */
KV_TEST(ss_forking, true, kv_in_files_forking)
KV_TEST(ss_prefork, true, kv_in_files_prefork)
KV_TEST(ss_sync, true, kv_in_files_sync)
KV_TEST(ss_threading, true, kv_in_files_threading)
KV_TEST(ss_thread_pool, true, kv_in_files_thread_pool)
KV_TEST(ss_coroutines, true, kv_in_files_coroutines)

/* The warning itself: under ss_forking a SET changes the child's copy of
 * the table, which ends with the request; the next child starts again
 * from the parent's memory, where the key was never set. */
static void test_kv_in_memory_forgets_under_forking(void **state)
{
    (void)state;
    kv_server k;
    kv_start(&k, &ss_forking, false);
    int fd = test_connect(k.server.srv);
    assert_true(fd >= 0);
    expect_answer(fd, "SET color blue\n", "OK\n");
    expect_answer(fd, "GET color\n", "VALUE blue\n"); /* same child */
    close(fd);
    fd = test_connect(k.server.srv);
    assert_true(fd >= 0);
    expect_answer(fd, "GET color\n", "NONE\n"); /* a new child */
    close(fd);
    kv_stop(&k);
}

int main(int argc, char **argv)
{
    test_start_runtime_threads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_in_memory_sync),
        cmocka_unit_test(test_kv_in_memory_threading),
        cmocka_unit_test(test_kv_in_memory_thread_pool),
        cmocka_unit_test(test_kv_in_memory_coroutines),
        cmocka_unit_test(test_kv_in_files_forking),
        cmocka_unit_test(test_kv_in_files_prefork),
        cmocka_unit_test(test_kv_in_files_sync),
        cmocka_unit_test(test_kv_in_files_threading),
        cmocka_unit_test(test_kv_in_files_thread_pool),
        cmocka_unit_test(test_kv_in_files_coroutines),
        cmocka_unit_test(test_kv_in_memory_forgets_under_forking),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
