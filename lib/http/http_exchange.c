/*
 * http_exchange.c — the per-connection state every part of the HTTP
 * handler shares: the string arena that holds the copies handed to
 * callbacks, and the record of a failed peer. The bottom layer of the
 * handler's files: http_handler.c (the connection loop) uses
 * http_request.c (path, query, form, routes), which uses http_body.c
 * (request bodies), which uses http_response.c (responses, the access
 * log), which uses this; nothing here calls back up.
 */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define ARENA_BLOCK 4096

/* ---- per-request string arena -------------------------------------- */

void *ss__http_alloc(ss_http *h, size_t n)
{
    ss__http_block *b = h->arena;
    if (!b || b->size - b->used < n) {
        size_t size = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        ss__http_block *fresh = malloc(sizeof *fresh + size);
        if (!fresh)
            return NULL;
        fresh->next = b;
        fresh->size = size;
        fresh->used = 0;
        h->arena = b = fresh;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

const char *ss__http_copy(ss_http *h, const char *s, size_t n)
{
    char *copy = ss__http_alloc(h, n + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

/* Keep one block for the next request; free the rest. */
void ss__http_arena_reset(ss_http *h)
{
    ss__http_block *b = h->arena;
    while (b && b->next) {
        ss__http_block *next = b->next;
        free(b);
        b = next;
    }
    h->arena = b;
    if (b)
        b->used = 0;
}

void ss__http_arena_free(ss_http *h)
{
    for (ss__http_block *b = h->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    h->arena = NULL;
}

int ss__http_peer_failed(ss_http *h, int error)
{
    if (!h->peer_error)
        h->peer_error = error;
    h->close = true;
    return error;
}
