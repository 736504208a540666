/*
 * fwd_tls.c - STARTTLS to the downstream (RFC 3207): wolfSSL straight on
 * the connection's own non-blocking socket (wolfSSL_set_fd).
 *
 * Nothing here blocks: wolfSSL_connect, wolfSSL_read and wolfSSL_write
 * return WANT_READ or WANT_WRITE when the socket has nothing to give or no
 * room, and the caller (fwd_conn.c, fwd_smtp.c) waits for that event
 * with fd_watch and calls again.  One client context per configuration
 * generation (built in config_check, so -t reports an unreadable CA
 * file), freed with the generation.
 *
 * TLS 1.2 and 1.3 only, AEAD ciphers with forward secrecy (the host's list,
 * docs/tls.md).  Without downstream_tls_verify the certificate is not
 * checked (downstreams are usually on loopback or the LAN and carry
 * self-signed certificates): the session is encrypted, not authenticated.
 * With it, the chain must lead to downstream_tls_ca and the certificate
 * must name downstream_tls_name (subjectAltName DNS, or CN).
 *
 * Fails: a context that cannot be built is a configuration error; a
 * connection's failure comes back as text for the log line and the 451
 * ("TLS handshake: ...").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "forward.h"

static const char fwd_tls_ciphers[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
    "TLS13-CHACHA20-POLY1305-SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct fwd_tls {
    WOLFSSL *ssl;
    int established;
    int failed;                 /* a fatal error: no close_notify */
    char cipher[64];
};

static int fwd_wolfssl_ready;

void *fwd_tls_ctx_new(const char *ca_file, int verify, char *err,
                      size_t errlen)
{
    if (!fwd_wolfssl_ready) {
        /* reference counted in wolfSSL: the host's own init is separate */
        if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "downstream_tls: wolfSSL_Init failed");
            return NULL;
        }
        fwd_wolfssl_ready = 1;
    }
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "downstream_tls: cannot make a TLS context");
        return NULL;
    }
    if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(ctx, fwd_tls_ciphers) !=
            WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "downstream_tls: cannot set the protocol "
                 "floor (TLS 1.2) or the cipher list");
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    if (verify) {
        FILE *fp = fopen(ca_file, "r");
        if (fp == NULL) {
            snprintf(err, errlen, "downstream_tls_ca %s: cannot open: %s",
                     ca_file, strerror(errno));
            wolfSSL_CTX_free(ctx);
            return NULL;
        }
        fclose(fp);
        int rc = wolfSSL_CTX_load_verify_locations(ctx, ca_file, NULL);
        if (rc != WOLFSSL_SUCCESS) {
            char why[120];
            wolfSSL_ERR_error_string_n((unsigned long)(rc < 0 ? -rc : rc),
                                       why, sizeof why);
            snprintf(err, errlen, "downstream_tls_ca %s: no usable CA "
                     "certificate in it (%s)", ca_file, why);
            wolfSSL_CTX_free(ctx);
            return NULL;
        }
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    } else {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

void fwd_tls_ctx_free(void *ctx)
{
    if (ctx)
        wolfSSL_CTX_free(ctx);
}

static void tls_error(fwd_tls *t, int rc, char *err, size_t errlen)
{
    int e = wolfSSL_get_error(t->ssl, rc);
    char why[120];
    wolfSSL_ERR_error_string_n((unsigned long)(e < 0 ? -e : e), why,
                               sizeof why);
    const char *hint = "";
    if (e == DOMAIN_NAME_MISMATCH)
        hint = " (the certificate does not name downstream_tls_name)";
    else if (e == ASN_NO_SIGNER_E || e == ASN_SELF_SIGNED_E)
        hint = " (the certificate is not signed by downstream_tls_ca)";
    else if (e == SOCKET_PEER_CLOSED_E || e == SOCKET_ERROR_E)
        hint = errno ? "" : " (closed by the downstream)";
    if (e == SOCKET_ERROR_E && errno)
        snprintf(err, errlen, "%s (wolfSSL %d): %s", why, e,
                 strerror(errno));
    else
        snprintf(err, errlen, "%s (wolfSSL %d)%s", why, e, hint);
    t->failed = 1;
}

fwd_tls *fwd_tls_new(void *ctx, int fd, const char *name, int verify,
                     char *err, size_t errlen)
{
    fwd_tls *t = calloc(1, sizeof *t);
    if (t == NULL || (t->ssl = wolfSSL_new(ctx)) == NULL) {
        free(t);
        snprintf(err, errlen, "out of memory (TLS)");
        return NULL;
    }
    if (wolfSSL_set_fd(t->ssl, fd) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot hand the socket to wolfSSL");
        fwd_tls_free(t);
        return NULL;
    }
    if (name && name[0]) {
#ifdef HAVE_SNI
        wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, name,
                       (unsigned short)strlen(name));
#endif
        if (verify && wolfSSL_check_domain_name(t->ssl, name) !=
                          WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "cannot set the name to verify");
            fwd_tls_free(t);
            return NULL;
        }
    }
    return t;
}

int fwd_tls_handshake(fwd_tls *t, int *want, char *err, size_t errlen)
{
    *want = 0;
    if (t->failed) {
        snprintf(err, errlen, "failed before");
        return -1;
    }
    if (t->established)
        return 1;
    errno = 0;
    int rc = wolfSSL_connect(t->ssl);
    if (rc == WOLFSSL_SUCCESS) {
        t->established = 1;
        /* OpenSSL's names, as the host logs them: IANA's for TLS 1.3 */
        const char *name;
        if (wolfSSL_version(t->ssl) == TLS1_3_VERSION) {
            int suite = wolfSSL_get_current_cipher_suite(t->ssl);
            name = wolfSSL_get_cipher_name_iana_from_suite(
                (unsigned char)(suite >> 8), (unsigned char)suite);
        } else {
            name = wolfSSL_get_cipher_name(t->ssl);
        }
        snprintf(t->cipher, sizeof t->cipher, "%s", name ? name : "unknown");
        return 1;
    }
    int e = wolfSSL_get_error(t->ssl, rc);
    if (e == WOLFSSL_ERROR_WANT_READ) {
        *want = UPESI_WATCH_READ;
        return 0;
    }
    if (e == WOLFSSL_ERROR_WANT_WRITE) {
        *want = UPESI_WATCH_READ | UPESI_WATCH_WRITE;
        return 0;
    }
    tls_error(t, rc, err, errlen);
    return -1;
}

ssize_t fwd_tls_read(fwd_tls *t, void *buf, size_t len, int *want,
                     char *err, size_t errlen)
{
    *want = 0;
    if (len > 0x40000000)
        len = 0x40000000;
    errno = 0;
    int n = wolfSSL_read(t->ssl, buf, (int)len);
    if (n > 0)
        return n;
    int e = wolfSSL_get_error(t->ssl, n);
    if (e == WOLFSSL_ERROR_WANT_READ)
        return -1;
    if (e == WOLFSSL_ERROR_WANT_WRITE) {
        *want = UPESI_WATCH_WRITE;
        return -1;
    }
    if (e == WOLFSSL_ERROR_ZERO_RETURN) {   /* close_notify */
        t->failed = 1;                       /* ours is not owed any more */
        return 0;
    }
    tls_error(t, n, err, errlen);
    return -2;
}

ssize_t fwd_tls_write(fwd_tls *t, const void *buf, size_t len, int *want,
                      char *err, size_t errlen)
{
    *want = 0;
    /* a record at a time: a write that waits is repeated with the same
     * bytes (they stay at the head of the caller's output) */
    if (len > 16384)
        len = 16384;
    errno = 0;
    int n = wolfSSL_write(t->ssl, buf, (int)len);
    if (n > 0)
        return n;
    int e = wolfSSL_get_error(t->ssl, n);
    if (e == WOLFSSL_ERROR_WANT_WRITE) {
        *want = UPESI_WATCH_WRITE;
        return -1;
    }
    if (e == WOLFSSL_ERROR_WANT_READ) {
        *want = UPESI_WATCH_READ;
        return -1;
    }
    tls_error(t, n, err, errlen);
    return -2;
}

const char *fwd_tls_version(const fwd_tls *t)
{
    return t->established ? wolfSSL_get_version(t->ssl) : "none";
}

const char *fwd_tls_cipher(const fwd_tls *t)
{
    return t->established ? t->cipher : "none";
}

void fwd_tls_free(fwd_tls *t)
{
    if (t == NULL)
        return;
    if (t->established && !t->failed) {
        /* close_notify, once, without waiting for the downstream's (the
         * socket is closed next; a full buffer just loses it) */
        int rc = wolfSSL_shutdown(t->ssl);
        (void)rc;
    }
    wolfSSL_free(t->ssl);
    free(t);
}
