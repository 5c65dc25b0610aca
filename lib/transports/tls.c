/*
 * tls.c — the TLS transport: one connection's handshake, bytes and close
 * through OpenSSL, behind the same vtable as lib/transports/plain.c
 * (sockserv/strategy.h), so no strategy or handler changes for it.
 *
 * Nothing here blocks. OpenSSL reads and writes through a BIO of ours
 * over the request's non-blocking socket; when it says
 * SSL_ERROR_WANT_READ or _WANT_WRITE the call returns -EAGAIN with the
 * event, and the core waits through the request's wait class (poll(), or
 * a parked coroutine). The handshake in open() waits the same way, with
 * ss_request_wait(), in the request's own thread, process or coroutine.
 *
 * Why a BIO of our own rather than OpenSSL's socket BIO:
 *  - bytes the core received before the transport opened (the rest of
 *    the packet that carried a PROXY header: the ClientHello) must be
 *    read before the socket — the BIO serves them first
 *    (ss_request_take_buffered);
 *  - the socket BIO writes with write(), which raises SIGPIPE on a closed
 *    peer; ours sends with MSG_NOSIGNAL;
 *  - it records the errno of a failed recv/send and whether the peer
 *    sent anything, which the handshake's error report needs.
 * For kernel TLS (SSL_sendfile) OpenSSL must find a socket BIO, so where
 * kTLS may be used one sits behind ours in the chain: ours forwards
 * OpenSSL's kTLS controls to it, refuses kTLS for receiving (we read with
 * recv()), and once the kernel encrypts sends, lets it write, because
 * records that are not application data then need its control messages.
 *
 * ss_sendfile without kTLS: the file is read in 16 KiB pieces (a full TLS
 * record each) and written with SSL_write; a piece OpenSSL could not
 * finish is kept and offered again, as OpenSSL requires.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sigpipe.h"
#include "tls_internal.h"

#define SENDFILE_PIECE 16384

typedef struct tls_conn {
    SSL *ssl;
    ss__tls_certs *certs;
    ss_request *req; /* whose socket: received through it (input time) */
    int fd;
    /* What the core received before open: read before the socket. */
    unsigned char *prefix;
    size_t prefix_len, prefix_pos;
    int sys_errno;  /* of the last recv/send that failed */
    bool eof;       /* recv() returned 0 */
    bool received;  /* the peer sent at least one byte */
    bool open;      /* the handshake completed */
    bool failed;    /* a fatal TLS error: no close_notify */
    bool ktls_send; /* the kernel encrypts what we send */
    bool refused_renegotiation; /* we answered a ClientHello with no */
    /* ss_sendfile without kTLS: a piece read and not yet all written. */
    unsigned char *piece;
    size_t piece_len;
    bool piece_pending;
    int piece_fd;
} tls_conn;

static const ss_transport tls_transport;

/* ---- the BIO ------------------------------------------------------------ */

static int bio_read(BIO *b, char *out, int len)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (c->prefix_pos < c->prefix_len) {
        size_t n = c->prefix_len - c->prefix_pos;
        if (n > (size_t)len)
            n = (size_t)len;
        memcpy(out, c->prefix + c->prefix_pos, n);
        c->prefix_pos += n;
        return (int)n;
    }
    for (;;) {
        ssize_t n =
            ss_request_socket_recv(c->req, out, (size_t)len, MSG_DONTWAIT);
        if (n > 0) {
            c->received = true;
            return (int)n;
        }
        if (n == 0) {
            c->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_read(b);
            return -1;
        }
        c->sys_errno = errno;
        return -1;
    }
}

/* With kernel TLS sending, the socket BIO behind ours writes (it sends
 * non-data records with the control message the kernel needs); it uses
 * write(), hence the guard. */
static int bio_write_ktls(BIO *b, BIO *next, const char *in, int len)
{
    ss__sigpipe_guard guard;
    ss__sigpipe_block(&guard);
    errno = 0;
    int n = BIO_write(next, in, len);
    int error = errno;
    ss__sigpipe_restore(&guard);
    BIO_copy_next_retry(b);
    if (n <= 0 && !BIO_should_retry(b)) {
        tls_conn *c = BIO_get_data(b);
        c->sys_errno = error ? error : EPIPE;
    }
    return n;
}

static int bio_write(BIO *b, const char *in, int len)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    BIO *next = BIO_next(b);
    if (next && BIO_get_ktls_send(next))
        return bio_write_ktls(b, next, in, len);
    for (;;) {
        ssize_t n =
            send(c->fd, in, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_write(b);
            return -1;
        }
        c->sys_errno = errno;
        return -1;
    }
}

static long bio_ctrl(BIO *b, int cmd, long larg, void *parg)
{
    tls_conn *c = BIO_get_data(b);
    BIO *next = BIO_next(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* nothing is buffered here */
    case BIO_CTRL_EOF:
        return c && c->eof;
    case BIO_CTRL_PENDING:
        return c ? (long)(c->prefix_len - c->prefix_pos) : 0;
    case BIO_CTRL_WPENDING:
    case BIO_CTRL_PUSH:
    case BIO_CTRL_POP:
        return 0;
#ifdef BIO_CTRL_SET_KTLS
    case BIO_CTRL_SET_KTLS:
        /* larg: 1 to send, 0 to receive; receiving stays with recv(). */
        return next && larg ? BIO_ctrl(next, cmd, larg, parg) : 0;
#endif
    default:
        /* kTLS questions and the rest: the socket BIO's, if any. */
        return next ? BIO_ctrl(next, cmd, larg, parg) : 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    BIO_set_data(b, NULL);
    return 1;
}

BIO_METHOD *ss__tls_bio_method_new(void)
{
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "sockserv");
    if (!m)
        return NULL;
    if (!BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create) ||
        !BIO_meth_set_destroy(m, bio_destroy)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- errors ------------------------------------------------------------- */

/* The reason of the first error OpenSSL queued, and the queue emptied. */
static int first_reason(const char **text)
{
    unsigned long e = ERR_peek_error();
    *text = e ? ERR_reason_error_string(e) : NULL;
    if (!*text)
        *text = "unknown error";
    int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
    ERR_clear_error();
    return reason;
}

/* A failed call's result as the transport seam wants it: -EAGAIN with
 * the event, 0 at a clean end (reading), or an error, with the words for
 * handle_error set on the request. */
static ssize_t failure(ss_request *req, tls_conn *c, int rc, short *want,
                       const char *during)
{
    int err = SSL_get_error(c->ssl, rc);
    char detail[256];
    switch (err) {
    case SSL_ERROR_WANT_READ: /* (the error queue is empty then) */
        *want = POLLIN;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = POLLOUT;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify, or EOF (see the options) */
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        c->failed = true;
        if (c->eof && c->sys_errno == 0)
            return 0;
        return -(c->sys_errno ? c->sys_errno : ECONNRESET);
    default: {
        const char *text;
        first_reason(&text);
        c->failed = true;
        snprintf(detail, sizeof detail, "TLS %s: %s%s", during, text,
                 c->refused_renegotiation
                     ? " (after the client's renegotiation was refused)"
                     : "");
        ss_request_set_error_detail(req, detail);
        return -EPROTO;
    }
    }
}

/* Why a handshake failed, in words, and the error to report. */
static int handshake_failure(ss_request *req, tls_conn *c, int rc)
{
    int err = SSL_get_error(c->ssl, rc);
    c->failed = true;
    char detail[320];
    if (err == SSL_ERROR_ZERO_RETURN ||
        (err == SSL_ERROR_SYSCALL && c->sys_errno == 0) ||
        (c->eof && err != SSL_ERROR_SSL)) {
        ERR_clear_error();
        if (!c->received)
            return SS_EOF; /* left before a byte: a TCP health check */
        ss_request_set_error_detail(
            req, "TLS handshake: the client closed the connection midway");
        return -ECONNRESET;
    }
    if (err == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        snprintf(detail, sizeof detail, "TLS handshake: %s",
                 strerror(c->sys_errno));
        ss_request_set_error_detail(req, detail);
        return -c->sys_errno;
    }
    const char *text;
    int reason = first_reason(&text);
    int error = -EPROTO;
    const char *hint = "";
    char why[160];
    switch (reason) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        hint = " (a plaintext HTTP request on a TLS port)";
        break;
    case SSL_R_UNSUPPORTED_PROTOCOL:
        hint = " (the client offers no TLS version from 1.2 up)";
        break;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
        hint = " (not a TLS ClientHello)";
        break;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        error = -EACCES;
        hint = " (a client certificate is required)";
        break;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        error = -EACCES;
        snprintf(why, sizeof why, " (client certificate: %s)",
                 X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
        hint = why;
        break;
    default:
        break;
    }
    snprintf(detail, sizeof detail, "TLS handshake failed: %s%s", text, hint);
    ss_request_set_error_detail(req, detail);
    return error;
}

/* ---- the transport ---------------------------------------------------- */

static void conn_free(tls_conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl); /* and the BIO chain */
    ss__tls_certs_release(c->certs);
    free(c->prefix);
    free(c->piece);
    free(c);
}

/* OpenSSL answers a renegotiation attempt (a ClientHello after the
 * handshake, TLS 1.2) with a no_renegotiation warning; remembered, so the
 * failure that follows (the client gives up) says why. */
static void info_callback(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_WRITE_ALERT) &&
        (ret & 0xff) == SSL_AD_NO_RENEGOTIATION) {
        tls_conn *c = SSL_get_app_data(ssl);
        if (c)
            c->refused_renegotiation = true;
    }
}

/* SSL object and BIO chain for the request's socket. */
static int conn_new(ss_request *req, ss_tls_context *ctx, tls_conn **out)
{
    tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->req = req;
    c->fd = ss_request_fileno(req);
    c->certs = ss__tls_certs_acquire(ctx);
    size_t early = ss_request_buffered(req);
    if (early > 0) {
        c->prefix = malloc(early);
        if (!c->prefix) {
            conn_free(c);
            return -ENOMEM;
        }
        c->prefix_len = ss_request_take_buffered(req, c->prefix, early);
    }
    c->ssl = SSL_new(c->certs->ctx[0]);
    BIO *bio = c->ssl ? BIO_new(ctx->bio_method) : NULL;
    if (!bio) {
        conn_free(c);
        return -ENOMEM;
    }
    BIO_set_data(bio, c);
    if (ctx->ktls) {
        /* Kernel TLS wants a socket BIO to find (see the top). */
        BIO *sock = BIO_new_socket(c->fd, BIO_NOCLOSE);
        if (sock)
            BIO_push(bio, sock);
    }
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_app_data(c->ssl, c);
    SSL_set_info_callback(c->ssl, info_callback);
    SSL_set_accept_state(c->ssl);
    *out = c;
    return 0;
}

static int tls_open(ss_request *req, int64_t deadline)
{
    ss_tls_context *ctx = ss_server_transport_data(ss_request_server(req));
    double timeout = ctx->handshake_timeout;
    int64_t own = ss_deadline_after(timeout);
    if (deadline == SS_NO_DEADLINE || own < deadline)
        deadline = own;
    tls_conn *c;
    int rc = conn_new(req, ctx, &c);
    if (rc < 0)
        return rc;
    ss_request_set_transport_data(req, c);
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1)
            break;
        int err = SSL_get_error(c->ssl, r);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
            return handshake_failure(req, c, r);
        rc = ss_request_wait(req, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                             deadline);
        if (rc == -ETIMEDOUT) {
            char detail[96];
            snprintf(detail, sizeof detail,
                     "TLS handshake not finished within %g s", timeout);
            ss_request_set_error_detail(req, detail);
        }
        if (rc < 0) {
            c->failed = true;
            return rc;
        }
    }
    c->open = true;
    c->ktls_send = BIO_get_ktls_send(SSL_get_wbio(c->ssl));
    return 0;
}

static ssize_t tls_recv(ss_request *req, void *buf, size_t n, short *want)
{
    tls_conn *c = ss_request_transport_data(req);
    size_t got;
    ERR_clear_error();
    int r = SSL_read_ex(c->ssl, buf, n, &got);
    if (r == 1)
        return (ssize_t)got;
    return failure(req, c, r, want, "read");
}

static ssize_t tls_send(ss_request *req, const void *buf, size_t n,
                        short *want)
{
    tls_conn *c = ss_request_transport_data(req);
    size_t sent;
    ERR_clear_error();
    int r = SSL_write_ex(c->ssl, buf, n, &sent);
    if (r == 1)
        return (ssize_t)sent;
    ssize_t rc = failure(req, c, r, want, "write");
    return rc == 0 ? -EPIPE : rc;
}

#ifdef SSL_OP_ENABLE_KTLS
static ssize_t ktls_sendfile(ss_request *req, tls_conn *c, int fd,
                             off_t *offset, size_t n, short *want)
{
    if (!offset)
        return -EINVAL; /* SSL_sendfile needs an offset: the core reads */
    ss__sigpipe_guard guard;
    ss__sigpipe_block(&guard);
    ERR_clear_error();
    errno = 0;
    ossl_ssize_t sent = SSL_sendfile(c->ssl, fd, *offset, n, 0);
    int error = errno;
    ss__sigpipe_restore(&guard);
    if (sent >= 0) {
        *offset += sent;
        return sent;
    }
    if (SSL_get_error(c->ssl, (int)sent) == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        *want = POLLOUT;
        return -EAGAIN;
    }
    ERR_clear_error();
    (void)req;
    return -(error ? error : EIO);
}
#endif

/* Without kTLS: one piece of the file through SSL_write. */
static ssize_t piece_sendfile(ss_request *req, tls_conn *c, int fd,
                              off_t *offset, size_t n, short *want)
{
    /* A piece left over belongs to this file at this point; a different
     * call means the one before was abandoned (the connection is then
     * failing anyway): start afresh. */
    if (c->piece_pending && c->piece_fd != fd)
        c->piece_pending = false;
    if (!c->piece_pending) {
        if (!c->piece && !(c->piece = malloc(SENDFILE_PIECE)))
            return -ENOMEM;
        size_t want_bytes = n < SENDFILE_PIECE ? n : SENDFILE_PIECE;
        ssize_t got;
        do
            got = offset ? pread(fd, c->piece, want_bytes, *offset)
                         : read(fd, c->piece, want_bytes);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            return errno == ESPIPE ? -EINVAL : -errno;
        if (got == 0)
            return 0;
        c->piece_len = (size_t)got;
        c->piece_fd = fd;
        c->piece_pending = true;
    }
    size_t sent;
    ERR_clear_error();
    int r = SSL_write_ex(c->ssl, c->piece, c->piece_len, &sent);
    if (r != 1) {
        ssize_t rc = failure(req, c, r, want, "write");
        return rc == 0 ? -EPIPE : rc;
    }
    if (offset)
        *offset += (off_t)sent;
    if (sent < c->piece_len) { /* keep the rest for the next call */
        memmove(c->piece, c->piece + sent, c->piece_len - sent);
        c->piece_len -= sent;
    } else {
        c->piece_pending = false;
    }
    return (ssize_t)sent;
}

static ssize_t tls_sendfile(ss_request *req, int fd, off_t *offset, size_t n,
                            short *want)
{
    tls_conn *c = ss_request_transport_data(req);
#ifdef SSL_OP_ENABLE_KTLS
    if (c->ktls_send)
        return ktls_sendfile(req, c, fd, offset, n, want);
#endif
    return piece_sendfile(req, c, fd, offset, n, want);
}

/* Bytes a wait on the socket would not see: decrypted ones of the
 * current record, else (OpenSSL reads ahead) at least 1 when it holds
 * records it has not decrypted yet — maybe only part of one, in which
 * case the read that follows waits on the socket as it should — and
 * what the core handed over before the handshake. */
static size_t tls_pending(const ss_request *req)
{
    const tls_conn *c = ss_request_transport_data(req);
    if (!c)
        return 0;
    int decrypted = SSL_pending(c->ssl);
    size_t held = decrypted > 0 ? (size_t)decrypted
                                : (size_t)SSL_has_pending(c->ssl);
    return held + (c->prefix_len - c->prefix_pos);
}

/* One close_notify, without waiting: the peer's answer is not awaited
 * (the socket is shut down next), and a peer that does not read gets
 * none rather than holding the request. */
static void tls_close(ss_request *req, int64_t deadline)
{
    (void)deadline;
    tls_conn *c = ss_request_transport_data(req);
    if (!c)
        return;
    if (c->open && !c->failed) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    ss_request_set_transport_data(req, NULL);
    conn_free(c);
}

static const ss_transport tls_transport = {
    .name = "tls",
    .open = tls_open,
    .recv = tls_recv,
    .send = tls_send,
    .sendfile = tls_sendfile,
    .pending = tls_pending,
    .close = tls_close,
};

/* ---- the public calls ------------------------------------------------- */

int ss_server_set_tls(ss_server *srv, ss_tls_context *ctx)
{
    if (!srv || !ctx)
        return -EINVAL;
    int rc = ss_server_set_transport(srv, &tls_transport);
    if (rc == 0)
        ss_server_set_transport_data(srv, ctx);
    return rc;
}

/* The request's connection, once its handshake is done. */
static const tls_conn *open_conn(const ss_request *req)
{
    if (ss_server_transport(ss_request_server(req)) != &tls_transport)
        return NULL;
    const tls_conn *c = ss_request_transport_data(req);
    return c && c->open ? c : NULL;
}

int ss_request_tls_info(const ss_request *req, ss_tls_info *info)
{
    const tls_conn *c = req && info ? open_conn(req) : NULL;
    if (!c)
        return req && info ? -ENOTCONN : -EINVAL;
    *info = (ss_tls_info){0};
    info->version = SSL_get_version(c->ssl);
    info->cipher = SSL_get_cipher_name(c->ssl);
    info->server_name = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    const unsigned char *alpn;
    unsigned int alpn_len;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn && alpn_len < sizeof info->alpn) {
        memcpy(info->alpn, alpn, alpn_len);
        info->alpn[alpn_len] = '\0';
    }
    info->resumed = SSL_session_reused(c->ssl);
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    info->peer_verified =
        peer && SSL_get_verify_result(c->ssl) == X509_V_OK;
    info->ktls_send = c->ktls_send;
    return 0;
}

int ss_request_tls_peer_subject(const ss_request *req, char *buf, size_t size)
{
    if (!req || !buf || size == 0)
        return -EINVAL;
    const tls_conn *c = open_conn(req);
    if (!c)
        return -ENOTCONN;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return -ENOENT;
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem)
        return -ENOMEM;
    int rc = -ENOMEM;
    if (X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0,
                           XN_FLAG_RFC2253) >= 0) {
        char *text;
        long len = BIO_get_mem_data(mem, &text);
        if (len < 0 || (size_t)len >= size) {
            rc = -ENOSPC;
        } else {
            memcpy(buf, text, (size_t)len);
            buf[len] = '\0';
            rc = (int)len;
        }
    }
    BIO_free(mem);
    ERR_clear_error();
    return rc;
}
