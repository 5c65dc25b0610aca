/*
 * protocol.h — what sockserv-fileserver and sockserv-filecli agree on.
 *
 * The protocol is text lines with byte counts, so that a student can speak
 * it by hand with `nc` and a program can never mistake file bytes for a
 * command. Every command line ends with '\n' ("\r\n" is accepted); every
 * answer is one line "CODE TEXT\n", where CODE is three digits chosen to
 * mean what they mean in HTTP, and a few answers are followed by data
 * whose size the line announced:
 *
 *   LIST              -> 200 COUNT files      then COUNT lines "SIZE NAME"
 *   GET NAME          -> 200 SIZE bytes       then exactly SIZE bytes
 *   PUT SIZE NAME     -> 100 send SIZE bytes  then the client sends SIZE
 *                                             bytes, and gets
 *                     -> 201 stored SIZE bytes as NAME
 *   HELP              -> 200 commands: ...
 *   QUIT              -> 200 bye              and the server closes
 *
 * Failures are 4xx (the request's fault: 400 bad command or name, 403, 404,
 * 409, 413 too large) or 5xx (the server's: 500, 507 disk full). A client
 * acts on the first digit: 1 go on, 2 done, 4 or 5 failed. 421 means the
 * server is closing the connection (idle too long).
 *
 * docs/fileserver.md is the full description.
 */
#ifndef SOCKSERV_FILESERVER_PROTOCOL_H
#define SOCKSERV_FILESERVER_PROTOCOL_H

/* The default port: 8000 + FTP's 21, and no root needed. */
#define FS_DEFAULT_PORT 8021

/* The longest command line, '\n' included. A name is at most 255 bytes
 * (NAME_MAX), so "PUT " + 20 digits + " " + a name fits with room. */
#define FS_LINE_MAX 1024

/* The longest answer line the server sends, '\n' included. */
#define FS_ANSWER_MAX 1024

#define FS_CONTINUE 100     /* PUT accepted: send the body now */
#define FS_OK 200           /* done; data may follow (LIST, GET) */
#define FS_CREATED 201      /* PUT stored */
#define FS_BAD_REQUEST 400  /* unknown command, bad size, bad name */
#define FS_FORBIDDEN 403    /* the server may not read the file */
#define FS_NOT_FOUND 404    /* no such regular file */
#define FS_CONFLICT 409     /* PUT onto a name a directory holds */
#define FS_TOO_LARGE 413    /* PUT larger than --max-size */
#define FS_CLOSING 421      /* idle too long: the server hangs up */
#define FS_SERVER_ERROR 500 /* the server failed (see its log) */
#define FS_NO_SPACE 507     /* the disk is full */

#endif /* SOCKSERV_FILESERVER_PROTOCOL_H */
