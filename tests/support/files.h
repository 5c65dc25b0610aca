/*
 * files.h — files the program tests write, compare and read back, and the
 * sanitizer reports they look for in a program's log.
 *
 * Each call fails the running cmocka test on an I/O error, except where
 * it says it returns one. Not for concurrent use: the first two share
 * static buffers.
 */
#ifndef SOCKSERV_TEST_FILES_H
#define SOCKSERV_TEST_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A file of size deterministic bytes that differ per seed (xorshift), so
 * a swapped or shifted block cannot compare equal by accident. */
void test_write_pattern_file(const char *path, size_t size, uint64_t seed);
/* Both files can be read and hold the same bytes. */
bool test_files_equal(const char *a, const char *b);
/* The whole file, NUL-terminated, to free(); NULL if it cannot be opened.
 * *len (when len is not NULL) is its length. */
char *test_read_whole(const char *path, size_t *len);
/* text holds an ASan, UBSan or TSan report (the programs under test may
 * be built with them; a forked worker's report shows only in the log). */
bool test_sanitizer_report(const char *text);

#endif
