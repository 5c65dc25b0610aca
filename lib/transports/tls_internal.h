/*
 * tls_internal.h — what the TLS files share:
 *   tls_context.c   the context: options, reload, the set new handshakes use
 *   tls_snapshot.c  the certificate, key and CA files read into one blob,
 *                   and the shared memory that carries it to other processes
 *   tls_certs.c     SSL_CTXs made from a snapshot: certificate sets
 *   tls.c           the transport: one connection's handshake and bytes
 *   tls_alpn.c      the ALPN option's list into wire format
 *
 * Why a snapshot: a reload must reach prefork workers and forked children,
 * and they must get the very bytes the reloading process checked, not
 * whatever the files hold by the time each of them looks (a renewal in
 * progress, or a broken file the reload refused). So every load reads the
 * files once into a blob, builds the SSL_CTXs from the blob, and publishes
 * the blob in a MAP_SHARED region made with the context (before any
 * fork); another process sees the generation change and builds its own
 * SSL_CTXs from the same blob.
 *
 * A certificate set is one SSL_CTX per certificate (the first answers
 * clients whose SNI matches no other). A connection takes a reference on
 * the set it starts with, so a reload swaps the set for new connections
 * while open ones keep theirs; the last reference frees it.
 */
#ifndef SOCKSERV_TLS_INTERNAL_H
#define SOCKSERV_TLS_INTERNAL_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "sockserv/strategy.h"
#include "sockserv/tls.h"

#define SS__TLS_MAX_ALPN 256
#define SS__TLS_TICKET_KEYS 80 /* name 16, HMAC 32, AES 32: OpenSSL's */

typedef struct ss__tls_shared ss__tls_shared;
typedef struct ss__tls_certs ss__tls_certs;

/* The paths one certificate is loaded from (as given; key_file and
 * password_file may be NULL). */
typedef struct ss__tls_source {
    char *cert_file;
    char *key_file;
    char *password_file;
} ss__tls_source;

struct ss_tls_context {
    /* Settings, fixed once made. */
    double handshake_timeout;
    ss_tls_verify verify_client;
    char *client_ca_file;
    unsigned char alpn[SS__TLS_MAX_ALPN];
    size_t alpn_len;
    bool tickets;
    unsigned char ticket_keys[SS__TLS_TICKET_KEYS];
    bool ktls;
    ss_log_fn log;
    void *log_user;
    BIO_METHOD *bio_method;

    pthread_mutex_t lock; /* sources, current, loaded_generation */
    ss__tls_source *sources;
    int source_count;
    ss__tls_certs *current;
    uint64_t loaded_generation; /* the snapshot current was made from */
    ss__tls_shared *shared;
};

/* tls_context.c: a "sockserv: TLS: ..." line to the context's log. */
void ss__tls_log(const ss_tls_context *ctx, const char *fmt, ...)
    SS_PRINTF(2, 3);
/* The set new handshakes use, with a reference for the caller; first
 * rebuilds it when another process published a newer snapshot. Never
 * NULL. */
ss__tls_certs *ss__tls_certs_acquire(ss_tls_context *ctx);

/* ---- tls_snapshot.c ---------------------------------------------------- */

/* One file's bytes inside a snapshot, with its path for messages. */
typedef struct ss__tls_pem {
    const char *path; /* NULL: none */
    const char *data;
    size_t len;
} ss__tls_pem;

/* One certificate's files. key.path NULL: the key is in cert. */
typedef struct ss__tls_cert_files {
    ss__tls_pem cert, key;
    const char *password; /* NULL: not encrypted */
} ss__tls_cert_files;

/* A snapshot's parts, pointing into its blob. */
typedef struct ss__tls_snapshot {
    int count;
    ss__tls_cert_files *certs; /* count of them (malloc'ed) */
    ss__tls_pem ca;            /* path NULL: none */
} ss__tls_snapshot;

/* Read every file (the sources, their password files, the client CA file)
 * into a new blob, *blob (free it). Returns 0, or -errno (a file that
 * cannot be opened, -EFBIG for one over 1 MiB) after a log line. */
int ss__tls_snapshot_read(const ss_tls_context *ctx,
                          const ss__tls_source *sources, int count,
                          unsigned char **blob, size_t *len);
/* The parts of a blob made by ss__tls_snapshot_read (-EINVAL if it is not
 * one, -ENOMEM). Free with ss__tls_snapshot_free (not the blob). */
int ss__tls_snapshot_parse(const unsigned char *blob, size_t len,
                           ss__tls_snapshot *out);
void ss__tls_snapshot_free(ss__tls_snapshot *snap);
/* Wipe and free a blob (it holds keys and passwords). */
void ss__tls_blob_free(unsigned char *blob, size_t len);

/* The region processes share: the last published blob and its
 * generation. Made before any fork, so every process of the family maps
 * the same pages. */
int ss__tls_shared_new(ss__tls_shared **out);
void ss__tls_shared_free(ss__tls_shared *shared);
/* The generation published last (a lock-free read: each handshake asks). */
uint64_t ss__tls_shared_generation(const ss__tls_shared *shared);
/* Publish blob as the next generation (into *generation). -EFBIG when it
 * does not fit. */
int ss__tls_shared_publish(ss__tls_shared *shared, const unsigned char *blob,
                           size_t len, uint64_t *generation);
/* A copy of the published blob (free with ss__tls_blob_free) and its
 * generation. */
int ss__tls_shared_fetch(ss__tls_shared *shared, unsigned char **blob,
                         size_t *len, uint64_t *generation);

/* ---- tls_certs.c -------------------------------------------------------- */

struct ss__tls_certs {
    atomic_int refs;
    int count;
    SSL_CTX **ctx; /* count of them; ctx[0] answers by default */
};

/* A set made from snap with ctx's settings, one reference. Returns 0, or
 * -EINVAL / -ENOMEM after a log line naming the file. */
int ss__tls_certs_make(const ss_tls_context *ctx, const ss__tls_snapshot *snap,
                       ss__tls_certs **out);
void ss__tls_certs_release(ss__tls_certs *certs);

/* ---- tls.c ---------------------------------------------------------------- */

/* The BIO method the context keeps for its connections. */
BIO_METHOD *ss__tls_bio_method_new(void);

/* ---- tls_alpn.c ----------------------------------------------------------- */

/* "http/1.1,h2" (commas, blanks around names ignored) into ALPN's wire
 * format (length-prefixed names) in out. Returns its length (0 for an
 * empty list) or -EINVAL (an empty or over-long name, a control
 * character, a list longer than size). */
int ss__tls_alpn_wire(const char *list, unsigned char *out, size_t size);

#endif /* SOCKSERV_TLS_INTERNAL_H */
