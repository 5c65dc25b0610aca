/*
 * process.h — time, sleeping and child processes for the tests: the
 * monotonic clock, bounded waits, sleeps that resume after signals,
 * waiting for a child to exit with a deadline, removing a scratch
 * directory tree.
 *
 * Plain libc, no cmocka: nothing here fails a test by itself, so these
 * helpers may run on any thread, and in the tests of the example programs
 * that include only this (and program_run.h) rather than support.h.
 * Defined in process.c, part of the sockserv_test_support library.
 */
#ifndef SOCKSERV_TEST_PROCESS_H
#define SOCKSERV_TEST_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

/* Monotonic clock, seconds. */
double test_now(void);

/* Poll cond(arg) every millisecond until it returns true or seconds pass.
 * Returns the last value of cond: the bounded alternative to sleeping. */
bool test_wait_for(bool (*cond)(void *arg), void *arg, double seconds);

/* Sleep, resuming after signals (the whole time is slept). */
void test_sleep(double seconds);
void test_sleep_ms(long ms);

/* waitpid(pid) with a deadline in seconds, retried after EINTR: the
 * status, -1 on timeout (the child is left running), or -2 when waitpid
 * fails (not a child of this process). */
int test_wait_exit(pid_t pid, double seconds);

/* A program started with --port-file PATH writes the port(s) it bound
 * there once it listens: wait (at most seconds) until PATH holds count
 * positive numbers, into ports. 0; -ECHILD if *pid (when pid and *pid
 * are not 0) exited first — it is reaped and *pid set to 0; -ETIMEDOUT. */
int test_wait_port_file(const char *path, pid_t *pid, double seconds,
                        int *ports, int count);

/* How many descriptors process pid has open now (/proc/PID/fd), or a
 * negative errno. */
int test_count_process_fds(pid_t pid);

/* Remove dir and everything below it (nftw, depth first, not following
 * symbolic links). Returns 0, or -1 if something could not be removed. */
int test_remove_tree(const char *dir);

#endif /* SOCKSERV_TEST_PROCESS_H */
