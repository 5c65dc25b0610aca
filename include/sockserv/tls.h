/**
 * @file tls.h
 * TLS for stream servers: Python's ssl.SSLContext.wrap_socket(server_side=
 * True) around any socketserver stream server, as a second transport.
 *
 * Make a context from PEM files, attach it to a TCP or Unix stream server
 * with ss_server_set_tls(), and every request of that server is a TLS
 * connection: the handshake runs in the request's own thread, child
 * process or coroutine (never in the accept loop) before the handler, and
 * ss_read, ss_readline, ss_write_all, ss_sendfile, ss_wait_input_or_fd…
 * move decrypted bytes. The handler source does not change, under any
 * strategy.
 *
 *     ss_tls_context *tls;
 *     ss_tls_options opt = {.cert_file = "cert.pem", .key_file = "key.pem"};
 *     int rc = ss_tls_context_new(&tls, &opt);
 *     if (rc == 0)
 *         rc = ss_server_set_tls(srv, tls);   // before serving
 *     ...
 *     ss_server_free(srv);
 *     ss_tls_context_free(tls);                // after every server using it
 *
 * What a connection gets: TLS 1.2 or 1.3 (older clients are refused),
 * OpenSSL's default cipher suites, ALPN ("http/1.1" by default), session
 * resumption with tickets whose keys every process made from the context
 * shares, optional client certificates (mTLS), several certificates chosen
 * by SNI, and certificates reloaded without a restart. A handshake that
 * fails — plaintext on the TLS port, a garbage or truncated ClientHello,
 * an old protocol version, a client certificate refused — is one
 * handle_error line saying why (ss_request_error_detail()); a peer that
 * connects and leaves without a byte is closed quietly. Renegotiation is
 * refused. The connection ends with a close_notify.
 *
 * The library is built with OpenSSL 3 when it is found
 * (-DSOCKSERV_TLS=AUTO, the default; ON requires it, OFF leaves it out).
 * Without it every function here returns -ENOTSUP (ss_tls_available()
 * says which). Guide: docs/tls.md.
 */
#ifndef SOCKSERV_TLS_H
#define SOCKSERV_TLS_H

#include "sockserv/sockserv.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Certificates, keys and settings for TLS servers: ss_tls_context_new().
 * One context may serve any number of servers, in this process and in
 * processes forked from it. */
typedef struct ss_tls_context ss_tls_context;

/** ss_tls_options.verify_client: whether clients show a certificate. */
typedef enum ss_tls_verify {
    SS_TLS_VERIFY_NONE = 0, /**< Do not ask for one (default). */
    /** Ask; a client without one is served, a certificate that does not
     * verify against client_ca_file is refused. */
    SS_TLS_VERIFY_OPTIONAL = 1,
    /** Ask, and refuse a client without a valid one (mTLS). */
    SS_TLS_VERIFY_REQUIRED = 2,
} ss_tls_verify;

/** How to make a context. Zero every field you do not set: each zero is
 * its default. The strings are read by ss_tls_context_new() and copied. */
typedef struct ss_tls_options {
    /** PEM file with the certificate, then the intermediate certificates
     * (Let's Encrypt's fullchain.pem). Required. Python: --tls-cert. */
    const char *cert_file;
    /** PEM file with the private key; NULL: it is in cert_file. Python:
     * --tls-key. */
    const char *key_file;
    /** File whose content, stripped of surrounding white space, is the
     * password of an encrypted key; NULL: the key is not encrypted. (No
     * prompt is ever shown.) Python: --tls-password-file. */
    const char *password_file;
    /** PEM file of the certificate authorities that client certificates
     * must chain to; required unless verify_client is
     * SS_TLS_VERIFY_NONE. */
    const char *client_ca_file;
    /** Whether to ask clients for a certificate. */
    ss_tls_verify verify_client;
    /** Seconds the whole handshake may take, counted from when the request
     * starts to run (shortened by the request's own timeout when that is
     * shorter); 0 (default): 10. A client that connects and says nothing
     * holds its thread, process or coroutine no longer. */
    double handshake_timeout;
    /** ALPN protocols the server speaks, in its order of preference,
     * separated by commas: NULL (default) means "http/1.1"; "" turns ALPN
     * off. A client that offers only others is served without ALPN. */
    const char *alpn;
    /** Do not issue session tickets (resumption then works only within
     * one process, from its session cache). Default false. */
    bool no_session_tickets;
    /** Never use kernel TLS for ss_sendfile(). By default it is used when
     * OpenSSL was built with it and the kernel offers it (the "tls"
     * module is loaded: /proc/sys/net/ipv4/tcp_available_ulp lists it);
     * otherwise ss_sendfile() reads the file and sends it through
     * OpenSSL. ss_request_tls_info() says which. */
    bool no_ktls;
    /** Where the context's lines go (a certificate that will not load, a
     * reload done or refused); NULL: stderr. */
    ss_log_fn log;
    /** The first argument of log. */
    void *log_user;
} ss_tls_options;

/** True when the library was built with TLS. */
SS_API bool ss_tls_available(void);

/** Make a context from options: load the certificate chain and the key
 * (checking that they match) and, with verify_client, the client CAs. On
 * success *out is yours to free with ss_tls_context_free(). Returns 0,
 * -EINVAL for bad options or files that do not load (a log line says
 * which file and why), -ENOENT / -EACCES when a file cannot be opened,
 * -ENOMEM, or -ENOTSUP without TLS. */
SS_API int ss_tls_context_new(ss_tls_context **out,
                              const ss_tls_options *options);

/** Another certificate, chosen for clients whose SNI server name it
 * matches (its subjectAltName DNS names, wildcards included, or its common
 * name); the context's first certificate answers every other client.
 * key_file and password_file as in ss_tls_options. Thread-safe; takes
 * effect for the next handshake. Returns as ss_tls_context_new(). */
SS_API int ss_tls_context_add_certificate(ss_tls_context *ctx,
                                          const char *cert_file,
                                          const char *key_file,
                                          const char *password_file);

/** Read every certificate, key and CA file again (after a renewal), from
 * the same paths. On success new handshakes use them at once in this
 * process, and before their next handshake in every process forked from
 * the one that made the context (forked children, prefork workers): what
 * this call read is published in memory those processes share, and they
 * build from the same bytes, whatever the files hold by then. Connections
 * already open keep the certificate they were made with. On failure (a
 * log line says why) everything stays as it was, in every process. Thread-safe, not async-signal-safe: from a
 * signal, set a flag and call it from a service_actions hook (see
 * sockserv-httpd's SIGHUP). Returns as ss_tls_context_new(). */
SS_API int ss_tls_context_reload(ss_tls_context *ctx);

/** Free the context. Every server using it must have been freed first
 * (connections keep references to the certificates they use, not to the
 * context). NULL is allowed. */
SS_API void ss_tls_context_free(ss_tls_context *ctx);

/** Serve every connection of srv (a TCP or Unix stream server) over TLS
 * with ctx, from now on: call it before serving. ctx must outlive srv.
 * Returns 0, -EINVAL for NULL, -EOPNOTSUPP for a datagram server, or
 * -ENOTSUP without TLS. */
SS_API int ss_server_set_tls(ss_server *srv, ss_tls_context *ctx);

/** What a TLS connection negotiated: ss_request_tls_info(). The strings
 * are valid while the request runs. */
typedef struct ss_tls_info {
    const char *version;     /**< "TLSv1.3", "TLSv1.2" */
    const char *cipher;      /**< "TLS_AES_256_GCM_SHA384", … */
    const char *server_name; /**< the client's SNI name, or NULL */
    char alpn[32];           /**< the ALPN protocol agreed, or "" */
    bool resumed;            /**< the session was resumed (no full handshake) */
    /** A client certificate was shown and verified:
     * ss_request_tls_peer_subject() names it. */
    bool peer_verified;
    /** ss_sendfile() goes through kernel TLS (SSL_sendfile); false: it
     * reads the file and sends it through OpenSSL. */
    bool ktls_send;
} ss_tls_info;

/** Fill *info for the request's TLS connection, from its handler. Returns
 * 0, -ENOTCONN when the request is not a TLS connection, or -ENOTSUP
 * without TLS. */
SS_API int ss_request_tls_info(const ss_request *req, ss_tls_info *info);

/** The subject of the client's verified certificate as RFC 2253 text
 * ("CN=alice,O=Example") into buf (NUL-terminated). Returns its length,
 * -ENOENT when the client showed no certificate, -ENOSPC when buf is too
 * small, -ENOTCONN when the request is not a TLS connection, or -ENOTSUP
 * without TLS. */
SS_API int ss_request_tls_peer_subject(const ss_request *req, char *buf,
                                       size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SOCKSERV_TLS_H */
