/*
 * fileserver.h — what the files of sockserv-fileserver share.
 *
 *   main.c     command line, mode table, the server, Ctrl-C / SIGTERM
 *   handler.c  the protocol: one handler class for every mode
 *   store.c    the served directory: names, confinement, listing,
 *              downloads opened safely, uploads that appear whole or not
 *              at all
 */
#ifndef SOCKSERV_FILESERVER_H
#define SOCKSERV_FILESERVER_H

#include <sockserv/sockserv.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "protocol.h"

/* Set up by main() before serving; read-only afterwards, so every thread,
 * coroutine and forked child may read it without locks. */
typedef struct fs_context {
    int dir_fd;       /* the served directory, O_PATH */
    off_t max_size;   /* largest upload accepted (--max-size) */
    bool quiet;       /* no log line per command (-q) */
    const char *mode; /* "fork", "thread"… for log lines */
} fs_context;

/* The handler class; main() copies it to set the per-call timeout. */
extern const ss_handler_class fs_handler;

/* ---- store.c ------------------------------------------------------------ */

/* Why name cannot name a file in the served directory, or NULL when it can.
 * A name is one path component: 1–255 bytes, no '/', no control bytes
 * (below 0x20, or 0x7f), not starting with '.' (which also rules out "."
 * and ".." and keeps temporary and hidden files out of reach). */
const char *fs_name_problem(const char *name);

/* Open the regular file name of the served directory for reading. Never
 * follows a symlink and never leaves the directory. Returns the descriptor
 * and its size in *size, or -ENOENT (absent, a symlink, a directory, a
 * FIFO…), -EACCES, or another negative errno. */
int fs_open_for_reading(const fs_context *ctx, const char *name, off_t *size);

/* The listing LIST sends: one "SIZE NAME\n" line per regular file whose
 * name fs_name_problem() accepts, sorted by name. On success *text (to
 * free()) holds *length bytes and *count lines; returns 0 or -errno. */
int fs_list(const fs_context *ctx, char **text, size_t *length, size_t *count);

/* An upload in progress: the bytes go to a file that has no name in the
 * directory until fs_upload_commit() gives it one in a single rename. */
typedef struct fs_upload {
    int fd;
    char temp_name[64]; /* "" while the file is unnamed (O_TMPFILE) */
} fs_upload;

/* Create the unnamed file. Returns 0 or a negative errno. */
int fs_upload_begin(const fs_context *ctx, fs_upload *up);
/* Append n bytes. Returns 0 or a negative errno (-ENOSPC…). */
int fs_upload_write(fs_upload *up, const void *buf, size_t n);
/* fsync() the data: run through ss_run_blocking(), it may block. arg is
 * the fs_upload. Returns 0 or a negative errno. */
int fs_upload_sync(void *arg);
/* Give the file its name, replacing any file of that name atomically; the
 * upload is closed either way. Returns 0, -EISDIR when a directory has the
 * name, or another negative errno. */
int fs_upload_commit(const fs_context *ctx, fs_upload *up, const char *name);
/* Throw the upload away: nothing of it stays in the directory. */
void fs_upload_abort(const fs_context *ctx, fs_upload *up);

#endif /* SOCKSERV_FILESERVER_H */
