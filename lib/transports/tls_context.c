/*
 * tls_context.c — ss_tls_context: the settings and certificates every TLS
 * connection of a server starts from, and their reload.
 *
 * The context keeps the paths it was given and a current certificate set
 * (tls_certs.c). Loading — when the context is made, when a certificate
 * is added, on a reload — reads the files once into a snapshot
 * (tls_snapshot.c), builds a new set from it beside the old one, and only
 * then swaps the pointer under a short lock: a handshake never sees half
 * a reload, a reload that fails changes nothing, and open connections
 * keep the set they hold a reference on.
 *
 * Processes: a context made before fork() works in the children (an
 * SSL_CTX is plain memory). A load publishes its snapshot in the shared
 * region with a new generation; before each handshake a process compares
 * the generation with the one its set was built from (one atomic read)
 * and, when another process has published since, builds a set from the
 * published snapshot — the same bytes, whatever the files hold by then.
 * So a reload in the prefork supervisor reaches its workers, and one in a
 * forking server's parent its future children (which inherit the set
 * anyway). The session ticket keys are made once here, so tickets issued
 * by one process resume in another, and across reloads.
 */
#include <errno.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls_internal.h"

#define DEFAULT_HANDSHAKE_TIMEOUT 10.0

/* ---- messages -------------------------------------------------------- */

void ss__tls_log(const ss_tls_context *ctx, const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof line, "sockserv: TLS: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (ctx->log) {
        ctx->log(ctx->log_user, line);
        return;
    }
    /* One write(), like ss_server_log(): lines never interleave. */
    size_t len = strlen(line);
    if (len < sizeof line - 1)
        line[len++] = '\n';
    else
        line[len - 1] = '\n';
    ssize_t rc;
    do
        rc = write(STDERR_FILENO, line, len);
    while (rc < 0 && errno == EINTR);
}

/* ---- loading ------------------------------------------------------------ */

/* A set from a blob (made here or fetched). */
static int certs_from_blob(const ss_tls_context *ctx, const unsigned char *blob,
                           size_t len, ss__tls_certs **out)
{
    ss__tls_snapshot snap;
    int rc = ss__tls_snapshot_parse(blob, len, &snap);
    if (rc == 0) {
        rc = ss__tls_certs_make(ctx, &snap, out);
        ss__tls_snapshot_free(&snap);
    }
    return rc;
}

/* Read sources, build a set, publish the snapshot and put the set in
 * place; on failure nothing changes. Lock held (or the context not yet
 * shared). */
static int load(ss_tls_context *ctx, const ss__tls_source *sources, int count)
{
    unsigned char *blob;
    size_t len;
    int rc = ss__tls_snapshot_read(ctx, sources, count, &blob, &len);
    if (rc < 0)
        return rc;
    ss__tls_certs *certs = NULL;
    rc = certs_from_blob(ctx, blob, len, &certs);
    uint64_t generation = 0;
    if (rc == 0) {
        rc = ss__tls_shared_publish(ctx->shared, blob, len, &generation);
        if (rc < 0)
            ss__tls_log(ctx, "the certificates and keys are larger than 1 MiB "
                             "in all");
    }
    ss__tls_blob_free(blob, len);
    if (rc < 0) {
        ss__tls_certs_release(certs);
        return rc;
    }
    ss__tls_certs *old = ctx->current;
    ctx->current = certs;
    ctx->loaded_generation = generation;
    ss__tls_certs_release(old);
    return 0;
}

ss__tls_certs *ss__tls_certs_acquire(ss_tls_context *ctx)
{
    uint64_t published = ss__tls_shared_generation(ctx->shared);
    pthread_mutex_lock(&ctx->lock);
    /* Another process loaded since this one did: build from its snapshot
     * (the threads that start a handshake meanwhile wait for it; it is
     * one parse of a few KiB). A failure is logged and not retried until
     * the next load. */
    if (ctx->loaded_generation != published) {
        unsigned char *blob = NULL;
        size_t len = 0;
        uint64_t generation = published;
        ss__tls_certs *certs = NULL;
        int rc = ss__tls_shared_fetch(ctx->shared, &blob, &len, &generation);
        if (rc == 0)
            rc = certs_from_blob(ctx, blob, len, &certs);
        ss__tls_blob_free(blob, len);
        if (rc == 0) {
            ss__tls_certs_release(ctx->current);
            ctx->current = certs;
        } else {
            ss__tls_log(ctx,
                        "process %d cannot take the certificates another "
                        "process loaded (%s); it keeps its own",
                        (int)getpid(), strerror(-rc));
        }
        ctx->loaded_generation = generation;
    }
    ss__tls_certs *certs = ctx->current;
    atomic_fetch_add(&certs->refs, 1);
    pthread_mutex_unlock(&ctx->lock);
    return certs;
}

/* ---- the context -------------------------------------------------------- */

/* Kernel TLS needs OpenSSL built with it and the kernel's "tls" upper
 * layer protocol loaded. Asking the kernel for a ULP it has not loaded
 * makes it try to load the module on every connection, so look first. */
static bool kernel_offers_ktls(void)
{
#if defined(OPENSSL_NO_KTLS) || !defined(SSL_OP_ENABLE_KTLS)
    return false;
#else
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");
    if (!f)
        return false;
    char line[256];
    bool found = false;
    if (fgets(line, sizeof line, f)) {
        char *save = NULL;
        for (char *word = strtok_r(line, " \n", &save); word && !found;
             word = strtok_r(NULL, " \n", &save))
            found = strcmp(word, "tls") == 0;
    }
    fclose(f);
    return found;
#endif
}

static void source_free(ss__tls_source *s)
{
    free(s->cert_file);
    free(s->key_file);
    free(s->password_file);
    *s = (ss__tls_source){0};
}

/* Copy the paths; NULL stays NULL. */
static int source_init(ss__tls_source *s, const char *cert_file,
                       const char *key_file, const char *password_file)
{
    *s = (ss__tls_source){0};
    s->cert_file = strdup(cert_file);
    s->key_file = key_file ? strdup(key_file) : NULL;
    s->password_file = password_file ? strdup(password_file) : NULL;
    if (!s->cert_file || (key_file && !s->key_file) ||
        (password_file && !s->password_file)) {
        source_free(s);
        return -ENOMEM;
    }
    return 0;
}

static int check_options(ss_tls_context *ctx, const ss_tls_options *o)
{
    if (!o->cert_file || !o->cert_file[0]) {
        ss__tls_log(ctx, "cert_file is required");
        return -EINVAL;
    }
    if (o->verify_client < SS_TLS_VERIFY_NONE ||
        o->verify_client > SS_TLS_VERIFY_REQUIRED) {
        ss__tls_log(ctx, "verify_client: not an ss_tls_verify value");
        return -EINVAL;
    }
    if (o->verify_client != SS_TLS_VERIFY_NONE && !o->client_ca_file) {
        ss__tls_log(ctx, "verify_client needs client_ca_file");
        return -EINVAL;
    }
    if (!(o->handshake_timeout >= 0) || o->handshake_timeout > 1e6) {
        ss__tls_log(ctx,
                    "handshake_timeout: from 0 (default: 10) to 1e6 seconds");
        return -EINVAL;
    }
    int n = ss__tls_alpn_wire(o->alpn ? o->alpn : "http/1.1", ctx->alpn,
                              sizeof ctx->alpn);
    if (n < 0) {
        ss__tls_log(ctx,
                    "alpn: a comma-separated list of protocol names (1 to "
                    "255 printable characters each) was expected, not \"%s\"",
                    o->alpn);
        return -EINVAL;
    }
    ctx->alpn_len = (size_t)n;
    return 0;
}

bool ss_tls_available(void)
{
    return true;
}

int ss_tls_context_new(ss_tls_context **out, const ss_tls_options *options)
{
    if (!out || !options)
        return -EINVAL;
    *out = NULL;
    ss_tls_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return -ENOMEM;
    ctx->log = options->log;
    ctx->log_user = options->log_user;
    int rc = check_options(ctx, options);
    if (rc < 0) {
        free(ctx);
        return rc;
    }
    ctx->handshake_timeout = options->handshake_timeout > 0
                                 ? options->handshake_timeout
                                 : DEFAULT_HANDSHAKE_TIMEOUT;
    ctx->verify_client = options->verify_client;
    ctx->tickets = !options->no_session_tickets;
    ctx->ktls = !options->no_ktls && kernel_offers_ktls();
    pthread_mutex_init(&ctx->lock, NULL);
    rc = ss__tls_shared_new(&ctx->shared);
    if (rc < 0)
        goto fail;
    ctx->bio_method = ss__tls_bio_method_new();
    ctx->sources = calloc(1, sizeof *ctx->sources);
    if (!ctx->bio_method || !ctx->sources) {
        rc = -ENOMEM;
        goto fail;
    }
    if (options->client_ca_file &&
        !(ctx->client_ca_file = strdup(options->client_ca_file))) {
        rc = -ENOMEM;
        goto fail;
    }
    if (ctx->tickets &&
        RAND_bytes(ctx->ticket_keys, SS__TLS_TICKET_KEYS) != 1) {
        rc = -EIO;
        goto fail;
    }
    rc = source_init(&ctx->sources[0], options->cert_file, options->key_file,
                     options->password_file);
    if (rc < 0)
        goto fail;
    ctx->source_count = 1;
    rc = load(ctx, ctx->sources, 1);
    if (rc < 0)
        goto fail;
    *out = ctx;
    return 0;
fail:
    ss_tls_context_free(ctx);
    return rc;
}

int ss_tls_context_add_certificate(ss_tls_context *ctx, const char *cert_file,
                                   const char *key_file,
                                   const char *password_file)
{
    if (!ctx || !cert_file || !cert_file[0])
        return -EINVAL;
    pthread_mutex_lock(&ctx->lock);
    int rc = -ENOMEM;
    int count = ctx->source_count;
    ss__tls_source *grown =
        realloc(ctx->sources, ((size_t)count + 1) * sizeof *ctx->sources);
    if (grown) {
        ctx->sources = grown;
        rc = source_init(&grown[count], cert_file, key_file, password_file);
    }
    if (rc == 0) {
        rc = load(ctx, ctx->sources, count + 1);
        if (rc == 0)
            ctx->source_count++;
        else
            source_free(&ctx->sources[count]);
    }
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

int ss_tls_context_reload(ss_tls_context *ctx)
{
    if (!ctx)
        return -EINVAL;
    pthread_mutex_lock(&ctx->lock);
    int rc = load(ctx, ctx->sources, ctx->source_count);
    pthread_mutex_unlock(&ctx->lock);
    if (rc < 0)
        ss__tls_log(ctx,
                    "reload failed (%s); keeping the certificates loaded "
                    "before",
                    strerror(-rc));
    return rc;
}

void ss_tls_context_free(ss_tls_context *ctx)
{
    if (!ctx)
        return;
    ss__tls_certs_release(ctx->current);
    for (int i = 0; i < ctx->source_count; i++)
        source_free(&ctx->sources[i]);
    free(ctx->sources);
    free(ctx->client_ca_file);
    if (ctx->bio_method)
        BIO_meth_free(ctx->bio_method);
    ss__tls_shared_free(ctx->shared);
    pthread_mutex_destroy(&ctx->lock);
    OPENSSL_cleanse(ctx->ticket_keys, sizeof ctx->ticket_keys);
    free(ctx);
}
