/*
 * protocol.c — the small pieces of the chat protocol both rooms and the
 * client use: names, line endings, commands, and the server's log line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat.h"

bool chat_valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > CHAT_NAME_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

size_t chat_chomp(char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n')
        line[--len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    return len;
}

void chat_sanitize(char *text)
{
    for (unsigned char *p = (unsigned char *)text; *p; p++)
        if (*p < ' ' || *p == 0x7f)
            *p = '?';
}

size_t chat_command(const char *line, const char **rest)
{
    const char *space = strchr(line, ' ');
    if (!space) {
        *rest = line + strlen(line);
        return strlen(line);
    }
    *rest = space + 1;
    return (size_t)(space - line);
}

bool chat_is(const char *line, size_t len, const char *command)
{
    return strlen(command) == len && memcmp(line, command, len) == 0;
}

void chat_log(const char *fmt, ...)
{
    char line[CHAT_OUT_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One call per line: stdio locks the stream for it. */
    printf("sockserv-chat: %s\n", line);
    fflush(stdout);
}
