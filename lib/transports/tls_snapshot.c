/*
 * tls_snapshot.c — a TLS context's files read once into one blob, and the
 * shared memory that carries the blob to the other processes of the
 * family (tls_internal.h says why).
 *
 * The blob, native byte order (it never leaves the machine): a count,
 * then per certificate its path and PEM bytes, its key file's path and
 * bytes (empty: in the certificate file) and the key's password (or
 * none), then the client CA file's path and bytes (or none). Every string
 * is stored with a NUL after it, so paths and passwords are C strings in
 * place and the PEM bytes can go to OpenSSL as they are.
 *
 * The shared region is made with the context, before any fork: a robust,
 * process-shared mutex (a process that dies holding it leaves the region
 * marked empty, never half written), the generation, and the last blob.
 * Its 1 MiB is address space reserved with MAP_NORESERVE; only the pages
 * a blob touches are ever made.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls_internal.h"

#define SHARED_SIZE ((size_t)1 << 20)
#define MAX_FILE ((size_t)1 << 20)
#define MAX_PASSWORD 1024
#define NO_STRING UINT32_MAX

struct ss__tls_shared {
    pthread_mutex_t lock;
    _Atomic uint64_t generation;
    size_t length; /* 0: none (a writer died midway) */
    unsigned char blob[];
};

#define SHARED_CAPACITY (SHARED_SIZE - offsetof(ss__tls_shared, blob))

/* ---- building a blob ----------------------------------------------------- */

typedef struct builder {
    unsigned char *data;
    size_t len, cap;
    bool failed;
} builder;

static void put(builder *b, const void *bytes, size_t n)
{
    if (b->failed)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n)
            cap *= 2;
        unsigned char *grown = malloc(cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        if (b->data) {
            memcpy(grown, b->data, b->len);
            ss__tls_blob_free(b->data, b->cap); /* wipe what it held */
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

static void put_u32(builder *b, uint32_t v)
{
    put(b, &v, sizeof v);
}

/* A string (NULL: none), stored with a NUL after it. */
static void put_string(builder *b, const char *s, size_t n)
{
    if (!s) {
        put_u32(b, NO_STRING);
        return;
    }
    put_u32(b, (uint32_t)n);
    put(b, s, n);
    put(b, "", 1);
}

/* A file's whole content (malloc'ed, *len), or -errno after a log line. */
static int read_file(const ss_tls_context *ctx, const char *what,
                     const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc = 0;
    if (fd < 0 || fstat(fd, &st) < 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE)
        rc = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
    char *data = rc == 0 ? malloc((size_t)st.st_size + 1) : NULL;
    if (rc == 0 && !data)
        rc = -ENOMEM;
    size_t done = 0;
    while (rc == 0 && done < (size_t)st.st_size) {
        ssize_t n = read(fd, data + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    if (rc < 0) {
        ss__tls_log(ctx, "cannot %s the %s %s: %s",
                    rc == -EFBIG || rc == -EINVAL ? "use" : "open", what, path,
                    rc == -EFBIG   ? "larger than 1 MiB"
                    : rc == -EINVAL ? "not a regular file"
                                    : strerror(-rc));
        free(data);
        return rc;
    }
    *out = data;
    *len = done;
    return 0;
}

static int put_file(builder *b, const ss_tls_context *ctx, const char *what,
                    const char *path)
{
    if (!path) {
        put_string(b, NULL, 0);
        put_string(b, NULL, 0);
        return 0;
    }
    char *data;
    size_t len;
    int rc = read_file(ctx, what, path, &data, &len);
    if (rc < 0)
        return rc;
    put_string(b, path, strlen(path));
    put_string(b, data, len);
    OPENSSL_cleanse(data, len);
    free(data);
    return 0;
}

/* Python's http.server: the password file's content, stripped. */
static int put_password(builder *b, const ss_tls_context *ctx,
                        const char *path)
{
    if (!path) {
        put_string(b, NULL, 0);
        return 0;
    }
    char *data;
    size_t len;
    int rc = read_file(ctx, "password file", path, &data, &len);
    if (rc < 0)
        return rc;
    static const char blanks[] = " \t\r\n\v\f";
    size_t start = 0;
    while (start < len && strchr(blanks, data[start]) && data[start])
        start++;
    while (len > start && strchr(blanks, data[len - 1]) && data[len - 1])
        len--;
    if (len - start > MAX_PASSWORD) {
        ss__tls_log(ctx, "the password in %s is longer than %d bytes", path,
                    MAX_PASSWORD);
        rc = -EINVAL;
    } else {
        put_string(b, data + start, len - start);
    }
    OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}

int ss__tls_snapshot_read(const ss_tls_context *ctx,
                          const ss__tls_source *sources, int count,
                          unsigned char **blob, size_t *len)
{
    builder b = {0};
    int rc = 0;
    put_u32(&b, (uint32_t)count);
    for (int i = 0; i < count && rc == 0; i++) {
        rc = put_file(&b, ctx, "certificate file", sources[i].cert_file);
        if (rc == 0)
            rc = put_file(&b, ctx, "key file", sources[i].key_file);
        if (rc == 0)
            rc = put_password(&b, ctx, sources[i].password_file);
    }
    if (rc == 0)
        rc = put_file(&b, ctx, "client CA file", ctx->client_ca_file);
    if (rc == 0 && b.failed)
        rc = -ENOMEM;
    if (rc < 0) {
        ss__tls_blob_free(b.data, b.cap);
        return rc;
    }
    *blob = b.data;
    *len = b.len;
    return 0;
}

void ss__tls_blob_free(unsigned char *blob, size_t len)
{
    if (!blob)
        return;
    OPENSSL_cleanse(blob, len);
    free(blob);
}

/* ---- reading a blob ------------------------------------------------------- */

typedef struct reader {
    const unsigned char *data;
    size_t len, at;
    bool bad;
} reader;

static uint32_t get_u32(reader *r)
{
    uint32_t v = 0;
    if (r->len - r->at < sizeof v) {
        r->bad = true;
        return 0;
    }
    memcpy(&v, r->data + r->at, sizeof v);
    r->at += sizeof v;
    return v;
}

/* A string as put_string stored it: NULL for none. */
static const char *get_string(reader *r, size_t *len)
{
    uint32_t n = get_u32(r);
    *len = 0;
    if (r->bad || n == NO_STRING)
        return NULL;
    if (r->len - r->at < (size_t)n + 1 || r->data[r->at + n] != '\0') {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->data + r->at;
    r->at += (size_t)n + 1;
    *len = n;
    return s;
}

static void get_pem(reader *r, ss__tls_pem *pem)
{
    size_t len;
    pem->path = get_string(r, &len);
    pem->data = get_string(r, &pem->len);
}

int ss__tls_snapshot_parse(const unsigned char *blob, size_t len,
                           ss__tls_snapshot *out)
{
    reader r = {.data = blob, .len = len};
    *out = (ss__tls_snapshot){0};
    uint32_t count = get_u32(&r);
    if (r.bad || count == 0 || count > 4096)
        return -EINVAL;
    out->certs = calloc(count, sizeof *out->certs);
    if (!out->certs)
        return -ENOMEM;
    out->count = (int)count;
    for (uint32_t i = 0; i < count; i++) {
        size_t n;
        get_pem(&r, &out->certs[i].cert);
        get_pem(&r, &out->certs[i].key);
        out->certs[i].password = get_string(&r, &n);
        if (!out->certs[i].cert.data)
            r.bad = true;
    }
    get_pem(&r, &out->ca);
    if (r.bad || r.at != len) {
        ss__tls_snapshot_free(out);
        return -EINVAL;
    }
    return 0;
}

void ss__tls_snapshot_free(ss__tls_snapshot *snap)
{
    free(snap->certs);
    *snap = (ss__tls_snapshot){0};
}

/* ---- the shared region -------------------------------------------------- */

int ss__tls_shared_new(ss__tls_shared **out)
{
    ss__tls_shared *s = mmap(NULL, SHARED_SIZE, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s == MAP_FAILED)
        return -errno;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&s->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        munmap(s, SHARED_SIZE);
        return -rc;
    }
    atomic_init(&s->generation, 0);
    s->length = 0;
    *out = s;
    return 0;
}

void ss__tls_shared_free(ss__tls_shared *shared)
{
    if (!shared)
        return;
    /* The other processes keep their own mapping; the mutex is not
     * destroyed, as they may still use it. */
    OPENSSL_cleanse(shared->blob, shared->length);
    munmap(shared, SHARED_SIZE);
}

/* The lock, taken over from a process that died holding it: whatever it
 * was writing is not to be read. */
static void shared_lock(ss__tls_shared *s)
{
    if (pthread_mutex_lock(&s->lock) == EOWNERDEAD) {
        s->length = 0;
        pthread_mutex_consistent(&s->lock);
    }
}

uint64_t ss__tls_shared_generation(const ss__tls_shared *shared)
{
    return atomic_load(&((ss__tls_shared *)shared)->generation);
}

int ss__tls_shared_publish(ss__tls_shared *shared, const unsigned char *blob,
                           size_t len, uint64_t *generation)
{
    if (len > SHARED_CAPACITY)
        return -EFBIG;
    shared_lock(shared);
    memcpy(shared->blob, blob, len);
    if (shared->length > len) /* no old key bytes left behind */
        OPENSSL_cleanse(shared->blob + len, shared->length - len);
    shared->length = len;
    *generation = atomic_fetch_add(&shared->generation, 1) + 1;
    pthread_mutex_unlock(&shared->lock);
    return 0;
}

int ss__tls_shared_fetch(ss__tls_shared *shared, unsigned char **blob,
                         size_t *len, uint64_t *generation)
{
    shared_lock(shared);
    *generation = atomic_load(&shared->generation);
    size_t n = shared->length;
    unsigned char *copy = n ? malloc(n) : NULL;
    if (copy)
        memcpy(copy, shared->blob, n);
    pthread_mutex_unlock(&shared->lock);
    if (!copy)
        return n ? -ENOMEM : -ENODATA;
    *blob = copy;
    *len = n;
    return 0;
}
