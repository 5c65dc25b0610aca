/*
 * tls_context.c — ss_tls_context: the certificates and settings every TLS
 * connection of a server starts from, and their reload.
 *
 * The context keeps the paths it was given (a reload reads them again)
 * and a current certificate set (tls_internal.h): one SSL_CTX per
 * certificate, all with the same settings, the first one the default and
 * the SNI callback choosing among the rest. A connection takes a
 * reference on the set at its start; a reload builds a whole new set
 * beside the old one and swaps the pointer under a short lock, so a
 * handshake never sees half a reload and open connections keep theirs.
 *
 * Processes: a context made before fork() works in the children (an
 * SSL_CTX is plain memory). A reload in one process must reach the
 * others — prefork workers above all — without signals or pipes of the
 * library's own, so the context counts reloads in a MAP_SHARED page:
 * before a handshake, a process whose last load is older than the
 * counter loads the files again itself (one thread does, under the lock
 * the others take to start their handshakes: they wait a few ms). The session ticket keys are made once
 * here, so tickets issued by one worker resume in another, and across
 * reloads.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tls_internal.h"

#define DEFAULT_HANDSHAKE_TIMEOUT 10.0
#define MAX_PASSWORD 1024
#define MAX_ALPN 256
#define TICKET_KEYS_SIZE 80 /* name 16, HMAC 32, AES 32: OpenSSL's layout */

typedef struct tls_entry {
    char *cert_file;
    char *key_file;      /* NULL: the key is in cert_file */
    char *password_file; /* NULL: not encrypted */
} tls_entry;

struct ss_tls_context {
    /* Settings, fixed once made. */
    double handshake_timeout;
    ss_tls_verify verify_client;
    char *client_ca_file;
    unsigned char alpn[MAX_ALPN];
    size_t alpn_len;
    bool tickets;
    unsigned char ticket_keys[TICKET_KEYS_SIZE];
    bool ktls;
    ss_log_fn log;
    void *log_user;
    BIO_METHOD *bio_method;

    pthread_mutex_t lock; /* entries, current, loaded_generation */
    tls_entry *entries;
    int entry_count;
    ss__tls_certs *current;
    uint64_t loaded_generation; /* the shared count when current was made */
    /* Reloads done in any process sharing the context (MAP_SHARED). */
    _Atomic uint64_t *generation;
};

/* ---- messages -------------------------------------------------------- */

static void tls_log(const ss_tls_context *ctx, const char *fmt, ...)
    SS_PRINTF(2, 3);

static void tls_log(const ss_tls_context *ctx, const char *fmt, ...)
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
    if (len < sizeof line - 1) {
        line[len++] = '\n';
    } else {
        line[len - 1] = '\n';
    }
    ssize_t rc;
    do
        rc = write(STDERR_FILENO, line, len);
    while (rc < 0 && errno == EINTR);
}

/* The first error OpenSSL queued, in words ("no start line"), and the
 * queue emptied. */
static const char *openssl_reason(char *buf, size_t size)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (reason)
        snprintf(buf, size, "%s", reason);
    else if (e)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "unknown error");
    ERR_clear_error();
    return buf;
}

/* A file OpenSSL is about to read: say clearly when it cannot be opened,
 * which OpenSSL's own messages do not. */
static int check_readable(const ss_tls_context *ctx, const char *what,
                          const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        tls_log(ctx, "cannot open the %s %s: %s", what, path, strerror(-rc));
        return rc;
    }
    close(fd);
    return 0;
}

/* ---- one SSL_CTX per certificate ------------------------------------- */

/* Python's http.server: the password file's content, stripped. */
static int read_password(const ss_tls_context *ctx, const char *path,
                         char *out, size_t size)
{
    int rc = check_readable(ctx, "password file", path);
    if (rc < 0)
        return rc;
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    size_t n = fread(out, 1, size - 1, f);
    bool too_long = n == size - 1 && fgetc(f) != EOF;
    fclose(f);
    if (too_long) {
        tls_log(ctx, "the password file %s is too long", path);
        return -EINVAL;
    }
    out[n] = '\0';
    size_t start = strspn(out, " \t\r\n\v\f");
    while (n > start && strchr(" \t\r\n\v\f", out[n - 1]))
        n--;
    memmove(out, out + start, n - start);
    out[n - start] = '\0';
    return 0;
}

/* OpenSSL asks for the key's password through this; NULL userdata (no
 * password file) answers with none, so OpenSSL never prompts on a
 * terminal. */
static int password_callback(char *buf, int size, int rwflag, void *userdata)
{
    (void)rwflag;
    const char *password = userdata;
    if (!password || size <= 0)
        return 0;
    size_t len = strlen(password);
    if (len > (size_t)size)
        len = (size_t)size;
    memcpy(buf, password, len);
    return (int)len;
}

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    ss_tls_context *ctx = arg;
    unsigned char *chosen;
    /* The server's list first: its order decides. */
    if (SSL_select_next_proto(&chosen, outlen, ctx->alpn,
                              (unsigned int)ctx->alpn_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* serve without ALPN */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* SNI: the first certificate of the set whose names match the client's
 * server name; none matching keeps the default (ctx[0]). */
static int sni_select(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    ss__tls_certs *certs = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || certs->count < 2)
        return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < certs->count; i++) {
        X509 *cert = SSL_CTX_get0_certificate(certs->ctx[i]);
        if (cert && X509_check_host(cert, name, 0, 0, NULL) == 1) {
            if (i > 0)
                SSL_set_SSL_CTX(ssl, certs->ctx[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static int load_client_cas(const ss_tls_context *ctx, SSL_CTX *c)
{
    char why[256];
    if (SSL_CTX_load_verify_locations(c, ctx->client_ca_file, NULL) != 1) {
        tls_log(ctx, "cannot load the client CA file %s: %s",
                ctx->client_ca_file, openssl_reason(why, sizeof why));
        return -EINVAL;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ctx->client_ca_file);
    if (names)
        SSL_CTX_set_client_CA_list(c, names); /* takes them */
    ERR_clear_error();
    int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
    if (ctx->verify_client == SS_TLS_VERIFY_REQUIRED)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c, mode, NULL);
    return 0;
}

static int load_key_pair(const ss_tls_context *ctx, SSL_CTX *c,
                         const tls_entry *e)
{
    char why[256];
    const char *key_file = e->key_file ? e->key_file : e->cert_file;
    int rc = check_readable(ctx, "certificate file", e->cert_file);
    if (rc == 0 && e->key_file)
        rc = check_readable(ctx, "key file", e->key_file);
    if (rc < 0)
        return rc;
    if (SSL_CTX_use_certificate_chain_file(c, e->cert_file) != 1) {
        tls_log(ctx, "cannot load the certificate chain %s: %s", e->cert_file,
                openssl_reason(why, sizeof why));
        return -EINVAL;
    }
    char password[MAX_PASSWORD];
    password[0] = '\0';
    if (e->password_file) {
        rc = read_password(ctx, e->password_file, password, sizeof password);
        if (rc < 0)
            return rc;
    }
    SSL_CTX_set_default_passwd_cb(c, password_callback);
    SSL_CTX_set_default_passwd_cb_userdata(c,
                                           e->password_file ? password : NULL);
    int ok = SSL_CTX_use_PrivateKey_file(c, key_file, SSL_FILETYPE_PEM);
    SSL_CTX_set_default_passwd_cb_userdata(c, NULL);
    OPENSSL_cleanse(password, sizeof password);
    if (ok != 1) {
        unsigned long error = ERR_peek_error();
        bool mismatch = ERR_GET_LIB(error) == ERR_LIB_X509 &&
                        ERR_GET_REASON(error) == X509_R_KEY_VALUES_MISMATCH;
        bool decrypt = ERR_GET_LIB(error) == ERR_LIB_PEM ||
                       ERR_GET_REASON(error) == EVP_R_BAD_DECRYPT;
        openssl_reason(why, sizeof why);
        if (mismatch)
            tls_log(ctx, "the private key %s does not match the certificate %s",
                    key_file, e->cert_file);
        else
            tls_log(ctx, "cannot load the private key %s: %s%s", key_file, why,
                    !decrypt               ? ""
                    : e->password_file ? " (wrong password?)"
                                       : " (encrypted? give a password file)");
        return -EINVAL;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        tls_log(ctx, "the private key %s does not match the certificate %s: %s",
                key_file, e->cert_file, openssl_reason(why, sizeof why));
        return -EINVAL;
    }
    return 0;
}

static int make_ssl_ctx(const ss_tls_context *ctx, const tls_entry *e,
                        SSL_CTX **out)
{
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (!c)
        return -ENOMEM;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                       /* a peer that closes without close_notify has
                        * ended its stream (HTTP frames its own data) */
                       SSL_OP_IGNORE_UNEXPECTED_EOF;
    if (!ctx->tickets)
        options |= SSL_OP_NO_TICKET;
#ifdef SSL_OP_ENABLE_KTLS
    if (ctx->ktls)
        options |= SSL_OP_ENABLE_KTLS;
#endif
    SSL_CTX_set_options(c, options);
    /* Partial writes as send() has them; the core retries a write that
     * would block with the same bytes, maybe from another address (its
     * write buffer moves); idle connections give back their buffers. */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char session_context[] = "sockserv";
    SSL_CTX_set_session_id_context(c, session_context,
                                   sizeof session_context - 1);
    if (ctx->tickets)
        SSL_CTX_set_tlsext_ticket_keys(c, (void *)ctx->ticket_keys,
                                       TICKET_KEYS_SIZE);
    else
        SSL_CTX_set_num_tickets(c, 0);
    if (ctx->alpn_len > 0)
        SSL_CTX_set_alpn_select_cb(c, alpn_select, (void *)ctx);
    int rc = load_key_pair(ctx, c, e);
    if (rc == 0 && ctx->verify_client != SS_TLS_VERIFY_NONE)
        rc = load_client_cas(ctx, c);
    if (rc < 0) {
        SSL_CTX_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- certificate sets ------------------------------------------------- */

static void certs_free(ss__tls_certs *certs)
{
    for (int i = 0; i < certs->count; i++)
        SSL_CTX_free(certs->ctx[i]);
    free(certs->ctx);
    free(certs);
}

void ss__tls_certs_release(ss__tls_certs *certs)
{
    if (certs && atomic_fetch_sub(&certs->refs, 1) == 1)
        certs_free(certs);
}

/* A new set from entries (lock held, or the context not yet shared). */
static int certs_load(const ss_tls_context *ctx, const tls_entry *entries,
                      int count, ss__tls_certs **out)
{
    ss__tls_certs *certs = calloc(1, sizeof *certs);
    if (certs)
        certs->ctx = calloc((size_t)count, sizeof *certs->ctx);
    if (!certs || !certs->ctx) {
        free(certs);
        return -ENOMEM;
    }
    atomic_init(&certs->refs, 1);
    for (int i = 0; i < count; i++) {
        int rc = make_ssl_ctx(ctx, &entries[i], &certs->ctx[i]);
        if (rc < 0) {
            certs_free(certs);
            return rc;
        }
        certs->count = i + 1;
    }
    if (count > 1) {
        SSL_CTX_set_tlsext_servername_callback(certs->ctx[0], sni_select);
        SSL_CTX_set_tlsext_servername_arg(certs->ctx[0], certs);
    }
    *out = certs;
    return 0;
}

/* Put certs in place (lock held) and release the set it replaces. */
static void certs_swap(ss_tls_context *ctx, ss__tls_certs *certs,
                       uint64_t generation)
{
    ss__tls_certs *old = ctx->current;
    ctx->current = certs;
    ctx->loaded_generation = generation;
    ss__tls_certs_release(old);
}

ss__tls_certs *ss__tls_certs_acquire(ss_tls_context *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    /* Another process reloaded since this one last loaded: load the files
     * again here (the threads that start a handshake meanwhile wait for
     * it). A failure is logged and not retried until the next reload. */
    uint64_t generation = atomic_load(ctx->generation);
    if (ctx->loaded_generation != generation) {
        ss__tls_certs *certs = NULL;
        int rc = certs_load(ctx, ctx->entries, ctx->entry_count, &certs);
        if (rc == 0)
            certs_swap(ctx, certs, generation);
        else
            ctx->loaded_generation = generation;
        if (rc < 0)
            tls_log(ctx,
                    "reload in process %d failed (%s); keeping the "
                    "certificates loaded before",
                    (int)getpid(), strerror(-rc));
    }
    ss__tls_certs *certs = ctx->current;
    atomic_fetch_add(&certs->refs, 1);
    pthread_mutex_unlock(&ctx->lock);
    return certs;
}

double ss__tls_handshake_timeout(const ss_tls_context *ctx)
{
    return ctx->handshake_timeout;
}

BIO_METHOD *ss__tls_bio_method(ss_tls_context *ctx)
{
    return ctx->bio_method;
}

bool ss__tls_ktls_wanted(const ss_tls_context *ctx)
{
    return ctx->ktls;
}

/* ---- the context ------------------------------------------------------ */

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
    if (fgets(line, sizeof line, f))
        for (char *word = strtok(line, " \n"); word && !found;
             word = strtok(NULL, " \n"))
            found = strcmp(word, "tls") == 0;
    fclose(f);
    return found;
#endif
}

static void entry_free(tls_entry *e)
{
    free(e->cert_file);
    free(e->key_file);
    free(e->password_file);
}

/* Copy the paths; NULL stays NULL. */
static int entry_init(tls_entry *e, const char *cert_file, const char *key_file,
                      const char *password_file)
{
    *e = (tls_entry){0};
    e->cert_file = strdup(cert_file);
    e->key_file = key_file ? strdup(key_file) : NULL;
    e->password_file = password_file ? strdup(password_file) : NULL;
    if (!e->cert_file || (key_file && !e->key_file) ||
        (password_file && !e->password_file)) {
        entry_free(e);
        return -ENOMEM;
    }
    return 0;
}

static int check_options(ss_tls_context *ctx, const ss_tls_options *o)
{
    if (!o->cert_file || !o->cert_file[0]) {
        tls_log(ctx, "cert_file is required");
        return -EINVAL;
    }
    if (o->verify_client < SS_TLS_VERIFY_NONE ||
        o->verify_client > SS_TLS_VERIFY_REQUIRED) {
        tls_log(ctx, "verify_client: not an ss_tls_verify value");
        return -EINVAL;
    }
    if (o->verify_client != SS_TLS_VERIFY_NONE && !o->client_ca_file) {
        tls_log(ctx, "verify_client needs client_ca_file");
        return -EINVAL;
    }
    if (!(o->handshake_timeout >= 0) || o->handshake_timeout > 1e6) {
        tls_log(ctx, "handshake_timeout: from 0 (default: 10) to 1e6 seconds");
        return -EINVAL;
    }
    int n = ss__tls_alpn_wire(o->alpn ? o->alpn : "http/1.1", ctx->alpn,
                              sizeof ctx->alpn);
    if (n < 0) {
        tls_log(ctx,
                "alpn: a comma-separated list of protocol names (1 to 255 "
                "printable characters each) was expected, not \"%s\"",
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
    ctx->generation = mmap(NULL, sizeof *ctx->generation,
                           PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                           -1, 0);
    if (ctx->generation == MAP_FAILED) {
        ctx->generation = NULL;
        rc = -errno;
        goto fail;
    }
    atomic_init(ctx->generation, 0);
    ctx->bio_method = ss__tls_bio_method_new();
    ctx->entries = calloc(1, sizeof *ctx->entries);
    if (!ctx->bio_method || !ctx->entries) {
        rc = -ENOMEM;
        goto fail;
    }
    if (options->client_ca_file &&
        !(ctx->client_ca_file = strdup(options->client_ca_file))) {
        rc = -ENOMEM;
        goto fail;
    }
    if (ctx->client_ca_file &&
        (rc = check_readable(ctx, "client CA file", ctx->client_ca_file)) < 0)
        goto fail;
    if (ctx->tickets && RAND_bytes(ctx->ticket_keys, TICKET_KEYS_SIZE) != 1) {
        rc = -EIO;
        goto fail;
    }
    rc = entry_init(&ctx->entries[0], options->cert_file, options->key_file,
                    options->password_file);
    if (rc < 0)
        goto fail;
    ctx->entry_count = 1;
    rc = certs_load(ctx, ctx->entries, 1, &ctx->current);
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
    tls_entry *grown = realloc(ctx->entries, ((size_t)ctx->entry_count + 1) *
                                                 sizeof *ctx->entries);
    if (grown) {
        ctx->entries = grown;
        rc = entry_init(&grown[ctx->entry_count], cert_file, key_file,
                        password_file);
    }
    ss__tls_certs *certs = NULL;
    if (rc == 0) {
        rc = certs_load(ctx, ctx->entries, ctx->entry_count + 1, &certs);
        if (rc == 0) {
            ctx->entry_count++;
            certs_swap(ctx, certs, ctx->loaded_generation);
        } else {
            entry_free(&ctx->entries[ctx->entry_count]);
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

int ss_tls_context_reload(ss_tls_context *ctx)
{
    if (!ctx)
        return -EINVAL;
    pthread_mutex_lock(&ctx->lock);
    ss__tls_certs *certs = NULL;
    int rc = certs_load(ctx, ctx->entries, ctx->entry_count, &certs);
    if (rc == 0)
        certs_swap(ctx, certs, atomic_fetch_add(ctx->generation, 1) + 1);
    pthread_mutex_unlock(&ctx->lock);
    if (rc < 0)
        tls_log(ctx, "reload failed (%s); keeping the certificates loaded "
                     "before",
                strerror(-rc));
    return rc;
}

void ss_tls_context_free(ss_tls_context *ctx)
{
    if (!ctx)
        return;
    ss__tls_certs_release(ctx->current);
    for (int i = 0; i < ctx->entry_count; i++)
        entry_free(&ctx->entries[i]);
    free(ctx->entries);
    free(ctx->client_ca_file);
    if (ctx->bio_method)
        BIO_meth_free(ctx->bio_method);
    if (ctx->generation)
        munmap(ctx->generation, sizeof *ctx->generation);
    pthread_mutex_destroy(&ctx->lock);
    OPENSSL_cleanse(ctx->ticket_keys, sizeof ctx->ticket_keys);
    free(ctx);
}
