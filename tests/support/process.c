/*
 * process.c — the helpers declared in process.h.
 */
#include "process.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

double test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool test_wait_for(bool (*cond)(void *arg), void *arg, double seconds)
{
    double deadline = test_now() + seconds;
    for (;;) {
        if (cond(arg))
            return true;
        if (test_now() >= deadline)
            return cond(arg);
        struct timespec ms = {.tv_nsec = 1000000};
        nanosleep(&ms, NULL);
    }
}

void test_sleep(double seconds)
{
    if (!(seconds > 0))
        return;
    struct timespec ts = {(time_t)seconds,
                          (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int test_wait_exit(pid_t pid, double seconds)
{
    double deadline = test_now() + seconds;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -2;
        if (test_now() >= deadline)
            return -1;
        test_sleep(0.002);
    }
}

int test_wait_port_file(const char *path, pid_t *pid, double seconds,
                        int *ports, int count)
{
    double deadline = test_now() + seconds;
    while (test_now() < deadline) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            int got = 0;
            while (got < count && fscanf(f, "%d", &ports[got]) == 1 &&
                   ports[got] > 0)
                got++;
            fclose(f);
            if (got == count)
                return 0; /* else written only in part so far */
        }
        if (pid != NULL && *pid > 0 && waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return -ECHILD;
        }
        test_sleep(0.005);
    }
    return -ETIMEDOUT;
}

int test_count_process_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
    DIR *dir = opendir(path);
    if (!dir)
        return -errno;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            count++;
    closedir(dir);
    return count;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int test_remove_tree(const char *dir)
{
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
