/*
 * cli.h — the command line of the example programs the way Python's
 * argparse reads it, on getopt_long: options and positional arguments in
 * any order, long options also as --name=VALUE and by any unambiguous
 * prefix, and every mistake a usage error, "usage: ..." then "PROG:
 * error: MESSAGE" on stderr and exit status 2.
 *
 * Shared by sockserv-httpd, sockserv-fileserver, sockserv-filecli,
 * sockserv-chat and sockserv-chatcli; examples/echo/echo.c has its own
 * copy so that it stays one file.
 *
 *     cli c = {.prog = "sockserv-httpd", .usage = usage,
 *              .shortopts = "-:b:d:hq", .longopts = longopts};
 *     const char *value;
 *     int opt;
 *     while ((opt = cli_next(&c, argc, argv, &value)) != -1)
 *         switch (opt) {
 *         case CLI_POSITIONAL: ... value is PORT, or cli_extra(&c, value)
 *         case 'b': ... value is the option's
 *         }
 *     cli_finish(&c);
 *
 * The short options string must start with "-:": "-" has getopt_long
 * hand over positional arguments where they stand (so the order does not
 * matter, whatever POSIXLY_CORRECT says), ":" has it report a missing
 * value instead of printing its own message. Long-only options take vals
 * of CLI_LONG_ONLY and above, so that they cannot be taken for a short
 * option.
 */
#ifndef SOCKSERV_EXAMPLES_CLI_H
#define SOCKSERV_EXAMPLES_CLI_H

#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_POSITIONAL 1
#define CLI_LONG_ONLY 256

typedef struct cli {
    const char *prog;              /* "PROG: error: ..." */
    const char *usage;             /* "usage: ...\n" */
    const char *shortopts;         /* "-:" and getopt's letters */
    const struct option *longopts; /* ends with {0} */
    bool rest;                     /* after "--": positional only */
    char extra[256];               /* cli_extra()'s, for cli_finish() */
} cli;

/* Like argparse's error(): usage and the reason on stderr, exit status 2. */
static inline void cli_error(const cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static inline void cli_error(const cli *c, const char *fmt, ...)
{
    va_list ap;
    fputs(c->usage, stderr);
    fprintf(stderr, "%s: error: ", c->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* An option as argparse names it in messages: "-b/--bind", "--mode", "-t". */
static inline const char *cli_name(const cli *c, int val)
{
    static char name[80];
    const struct option *o = c->longopts;
    while (o->name != NULL && o->val != val)
        o++;
    bool has_short = val > 0 && val < CLI_LONG_ONLY && isalnum(val);
    if (o->name == NULL)
        snprintf(name, sizeof name, "-%c", has_short ? val : '?');
    else if (has_short)
        snprintf(name, sizeof name, "-%c/--%s", val, o->name);
    else
        snprintf(name, sizeof name, "--%s", o->name);
    return name;
}

/* argparse takes a word that starts with '-' for an option, not for the
 * value of the one before it: "--bind --udp" lacks the address. "-" and
 * negative numbers are values. */
static inline bool cli_looks_like_option(const char *word)
{
    if (word[0] != '-' || word[1] == '\0' || strchr(word, ' ') != NULL)
        return false;
    const char *p = word + 1;
    p += strspn(p, "0123456789");
    if (*p == '.')
        p += 1 + strspn(p + 1, "0123456789");
    return *p != '\0' || p == word + 1;
}

/* getopt_long's '?': an unknown option, an ambiguous prefix, or a value
 * given to an option that takes none. */
static inline void cli_refuse(const cli *c, char **argv)
    __attribute__((noreturn));
static inline void cli_refuse(const cli *c, char **argv)
{
    const char *word = argv[optind - 1]; /* long options only */
    bool known = optopt >= CLI_LONG_ONLY ||
                 (optopt > 0 && optopt != ':' && optopt != '-' &&
                  strchr(c->shortopts, optopt) != NULL);
    if (known && strncmp(word, "--", 2) == 0 && strchr(word, '='))
        cli_error(c, "argument %s: ignored explicit argument '%s'",
                  cli_name(c, optopt), strchr(word, '=') + 1);
    if (optopt != 0)
        cli_error(c, "unrecognized arguments: -%c", optopt);
    size_t len = strcspn(word + 2, "=");
    char matches[256] = "";
    int count = 0;
    for (const struct option *o = c->longopts; o->name != NULL; o++)
        if (strncmp(o->name, word + 2, len) == 0 && strlen(matches) < 200)
            snprintf(matches + strlen(matches),
                     sizeof matches - strlen(matches), "%s--%s",
                     count++ ? ", " : "", o->name);
    if (count > 1)
        cli_error(c, "ambiguous option: %.*s could match %s", (int)len + 2,
                  word, matches);
    cli_error(c, "unrecognized arguments: %s", word);
}

/* The next option's val with *value its value (NULL when it takes none),
 * or CLI_POSITIONAL with *value the argument, or -1 at the end. Exits
 * through cli_error() on a mistake. */
static inline int cli_next(cli *c, int argc, char **argv, const char **value)
{
    if (c->rest) {
        *value = optind < argc ? argv[optind++] : NULL;
        return *value ? CLI_POSITIONAL : -1;
    }
    opterr = 0;
    int opt = getopt_long(argc, argv, c->shortopts, c->longopts, NULL);
    *value = optarg;
    if (opt == -1 && optind < argc) { /* after "--" */
        c->rest = true;
        return cli_next(c, argc, argv, value);
    }
    if (opt == ':')
        cli_error(c, "argument %s: expected one argument", cli_name(c, optopt));
    if (opt == '?')
        cli_refuse(c, argv);
    /* "-b VALUE" and "--bind VALUE", not "-bVALUE" or "--bind=VALUE" */
    if (opt != CLI_POSITIONAL && optarg != NULL && optarg == argv[optind - 1] &&
        cli_looks_like_option(optarg))
        cli_error(c, "argument %s: expected one argument", cli_name(c, opt));
    return opt;
}

/* A positional argument the program has no place for. */
static inline void cli_extra(cli *c, const char *arg)
{
    size_t used = strlen(c->extra);
    snprintf(c->extra + used, sizeof c->extra - used, "%s%s", used ? " " : "",
             arg);
}

/* After the loop: argparse names every argument left over. */
static inline void cli_finish(const cli *c)
{
    if (c->extra[0] != '\0')
        cli_error(c, "unrecognized arguments: %s", c->extra);
}

#endif
