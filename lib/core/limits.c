/*
 * limits.c — max_connections and max_connections_per_client: the place a
 * request holds from accept until it is freed (or its forked child
 * reaped), the per-client hash table, and waking the loops when there is
 * room again. How it works: docs/reliability-resources.md
 * ("Connection limits").
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"

#define INITIAL_BUCKETS 64

typedef struct client_count {
    unsigned char address[16];
    int count;
    struct client_count *next;
} client_count;

typedef struct ss__limits {
    int max_total;        /* 0: no global limit */
    int max_per_client;   /* 0: no per-client limit */
    atomic_int active;    /* places taken under max_total */
    pthread_mutex_t lock; /* the table below */
    client_count **buckets;
    size_t bucket_count; /* a power of two */
    size_t entries;
    uint64_t seed;
} ss__limits;

static uint64_t mix(uint64_t x)
{
    /* splitmix64's finaliser: every input bit moves every output bit. */
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static size_t bucket_of(const ss__limits *l, const unsigned char *address)
{
    uint64_t high, low;
    memcpy(&high, address, 8);
    memcpy(&low, address + 8, 8);
    return (size_t)(mix(mix(high ^ l->seed) ^ low) & (l->bucket_count - 1));
}

static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    return (uint64_t)ss_now_ns() ^ ((uint64_t)getpid() << 32);
}

int ss__limits_init(ss_server *srv)
{
    srv->limits = NULL;
    if (srv->config.max_connections == 0 &&
        srv->config.max_connections_per_client == 0)
        return 0;
    ss__limits *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->max_total = srv->config.max_connections;
    l->max_per_client = srv->config.max_connections_per_client;
    atomic_init(&l->active, 0);
    if (l->max_per_client > 0) {
        l->bucket_count = INITIAL_BUCKETS;
        l->buckets = calloc(l->bucket_count, sizeof *l->buckets);
        if (!l->buckets) {
            free(l);
            return -ENOMEM;
        }
        l->seed = random_seed();
    }
    if (pthread_mutex_init(&l->lock, NULL) != 0) {
        free(l->buckets);
        free(l);
        return -ENOMEM;
    }
    srv->limits = l;
    return 0;
}

static void forget_clients(ss__limits *l)
{
    for (size_t i = 0; i < l->bucket_count; i++) {
        client_count *c = l->buckets[i];
        while (c) {
            client_count *next = c->next;
            free(c);
            c = next;
        }
        l->buckets[i] = NULL;
    }
    l->entries = 0;
}

void ss__limits_destroy(ss_server *srv)
{
    ss__limits *l = srv->limits;
    if (!l)
        return;
    forget_clients(l);
    pthread_mutex_destroy(&l->lock);
    free(l->buckets);
    free(l);
    srv->limits = NULL;
}

void ss__limits_after_fork(ss_server *srv)
{
    /* A forked child or prefork worker counts only its own requests; the
     * lock may have been held by another thread of the parent. */
    ss__limits *l = srv->limits;
    if (!l)
        return;
    pthread_mutex_init(&l->lock, NULL);
    atomic_store(&l->active, 0);
    if (l->buckets)
        forget_clients(l);
}

bool ss_server_at_capacity(const ss_server *srv)
{
    const ss__limits *l = srv->limits;
    return l && l->max_total > 0 &&
           atomic_load_explicit(&((ss__limits *)l)->active,
                                memory_order_relaxed) >= l->max_total;
}

bool ss__limits_reserve(ss_server *srv, ss__limit_ticket *ticket)
{
    ss__limits *l = srv->limits;
    if (!l || l->max_total == 0)
        return true;
    if (atomic_fetch_add(&l->active, 1) >= l->max_total) {
        /* Full after all: undo. If places were given back meanwhile,
         * ours may be the decrement that makes room; wake the loops. */
        ss__limit_ticket taken = {.counted = true};
        ss__limits_release(srv, &taken);
        return false;
    }
    ticket->counted = true;
    return true;
}

/* The client's address as 16 bytes; false for addresses the per-client
 * limit does not apply to (Unix sockets). */
static bool client_key(const ss_request *req, unsigned char key[16])
{
    const struct sockaddr *sa = (const struct sockaddr *)&req->client_address;
    if (sa->sa_family == AF_INET6 &&
        req->client_address_len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    if (sa->sa_family == AF_INET &&
        req->client_address_len >= (socklen_t)sizeof(struct sockaddr_in)) {
        /* As ::ffff:a.b.c.d, the form a dual-stack socket reports. */
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    return false;
}

static client_count **find(ss__limits *l, const unsigned char *address)
{
    client_count **link = &l->buckets[bucket_of(l, address)];
    while (*link && memcmp((*link)->address, address, 16) != 0)
        link = &(*link)->next;
    return link;
}

/* More buckets when chains grow past two entries on average. A failed
 * allocation leaves the table as it was: longer chains, still correct. */
static void grow(ss__limits *l)
{
    size_t count = l->bucket_count * 2;
    client_count **buckets = calloc(count, sizeof *buckets);
    if (!buckets)
        return;
    client_count **old = l->buckets;
    size_t old_count = l->bucket_count;
    l->buckets = buckets;
    l->bucket_count = count;
    for (size_t i = 0; i < old_count; i++) {
        client_count *c = old[i];
        while (c) {
            client_count *next = c->next;
            size_t b = bucket_of(l, c->address);
            c->next = buckets[b];
            buckets[b] = c;
            c = next;
        }
    }
    free(old);
}

int ss__limits_admit_client(ss_server *srv, ss_request *req)
{
    ss__limits *l = srv->limits;
    if (!l || l->max_per_client == 0)
        return 0;
    unsigned char key[16];
    if (!client_key(req, key))
        return 0;
    int rc = 0;
    pthread_mutex_lock(&l->lock);
    client_count **link = find(l, key);
    if (!*link) {
        client_count *c = calloc(1, sizeof *c);
        if (!c) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(c->address, key, 16);
        *link = c;
        l->entries++;
        if (l->entries > 2 * l->bucket_count)
            grow(l);
        link = find(l, key);
    }
    if ((*link)->count >= l->max_per_client) {
        rc = -EUSERS;
        goto out;
    }
    (*link)->count++;
    req->limit.per_client = true;
    memcpy(req->limit.client, key, 16);
out:
    pthread_mutex_unlock(&l->lock);
    return rc;
}

void ss__limits_release(ss_server *srv, ss__limit_ticket *ticket)
{
    ss__limits *l = srv->limits;
    if (!l)
        return;
    if (ticket->per_client) {
        ticket->per_client = false;
        pthread_mutex_lock(&l->lock);
        client_count **link = find(l, ticket->client);
        if (*link && --(*link)->count == 0) {
            client_count *gone = *link;
            *link = gone->next;
            free(gone);
            l->entries--;
        }
        pthread_mutex_unlock(&l->lock);
    }
    if (ticket->counted) {
        ticket->counted = false;
        /* The place that takes the server from full to not full wakes the
         * loops that stopped polling the listening socket. */
        if (atomic_fetch_sub(&l->active, 1) == l->max_total) {
            uint64_t one = 1;
            ssize_t ignored = write(srv->wake_fd, &one, sizeof one);
            (void)ignored; /* EAGAIN: it is readable already */
        }
    }
}

int ss__limits_running(const ss_server *srv)
{
    ss__limits *l = srv->limits;
    return l ? atomic_load(&l->active) : 0;
}

int ss__limits_clients(const ss_server *srv)
{
    ss__limits *l = srv->limits;
    if (!l)
        return 0;
    pthread_mutex_lock(&l->lock);
    int n = (int)l->entries;
    pthread_mutex_unlock(&l->lock);
    return n;
}
