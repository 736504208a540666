/*
 * tls.h - TLS for SMTP sessions: wolfSSL driven over memory buffers.
 *
 * The session owns the socket; this module never touches it.  Ciphertext
 * the session read is handed in with up_tls_feed, wolfSSL consumes it
 * through a custom receive callback, and everything wolfSSL wants to send
 * (handshake records, alerts, encrypted replies) collects in an output
 * buffer that the session writes with uv_write.  Nothing here blocks,
 * sleeps or starts a thread: a call that needs more input says so (0) and
 * the session calls again after its next read.
 *
 * An up_tls_ctx is the server side of one configuration generation:
 * certificate, key, protocol floor (TLS 1.2) and cipher list, and one
 * more wolfSSL context per tls_sni name, which a session switches to when
 * the client's server name matches (wolfSSL_set_SSL_CTX).  It belongs
 * to up_config and is freed with it; every session holds a reference to
 * its generation, so a SIGHUP that loads a new certificate never changes
 * the context under a running session.
 *
 * Fails: every failure returns -1 with a reason for the log (up_tls_error
 * for a session, err for a context); nothing here exits or aborts.
 */
#ifndef UPESI_TLS_H
#define UPESI_TLS_H

#include <stddef.h>

typedef struct up_tls_ctx up_tls_ctx;
typedef struct up_tls up_tls;

/* Checks for the configuration parser, each on its own so the error can
 * name the line of its key: 0, or -1 with a message in err. */
int up_tls_check_cert(const char *path, char *err, size_t errlen);
int up_tls_check_key(const char *path, char *err, size_t errlen);
int up_tls_check_ciphers(const char *list, char *err, size_t errlen);
/* tls_sni: the name alone (a host name, or "*." and a domain of two
 * labels or more), then its certificate and key together, and that they
 * belong to each other. */
int up_tls_check_sni_name(const char *name, char *err, size_t errlen);
int up_tls_check_sni(const char *name, const char *cert, const char *key,
                     char *err, size_t errlen);

/* Does the client's server name match a tls_sni name?  Case-insensitive;
 * "*.example.com" matches one whole label in place of the '*' (RFC 6125
 * 6.4.3): a.example.com, not example.com nor a.b.example.com. */
int up_tls_name_matches(const char *pattern, const char *name);

/* One tls_sni line of smtp.ini: the certificate served to a client that
 * asks for name (SNI, RFC 6066 3). */
typedef struct up_tls_sni {
    char *name;                 /* lower case: "mx.example.org", "*.x.org" */
    char *cert;                 /* PEM files, absolute paths               */
    char *key;
} up_tls_sni;

/* Session resumption (docs/tls.md): tickets on or off, the file their
 * key comes from (NULL: a random key made before the workers fork), and
 * how long a session may be resumed, in seconds (also the ticket key's
 * rotation period). */
typedef struct up_tls_resume {
    int tickets;
    const char *ticket_key_file;
    long timeout;
    size_t cache_size;          /* shared session-ID cache, made at the
                                 * first context (in the supervisor)     */
} up_tls_resume;

/* tls_ticket_key_file: readable and long enough (see tls_ticket.h). */
int up_tls_check_ticket_key_file(const char *path, char *err, size_t errlen);

/* Make the ticket key secret of this process tree now, so that workers
 * forked later share it (used when no tls_ticket_key_file is set).
 * -1 if the system gives no random bytes. */
int up_tls_seed(void);

/* Make the session cache the workers share, n sessions (0: none; then
 * wolfSSL's own small cache in each worker), unless the first context
 * made it already.  Before forking; later calls keep the first cache.
 * 0 or a negative errno. */
int up_tls_cache_start(size_t n);

/* The cipher list used when tls_ciphers is not set. */
extern const char up_tls_default_ciphers[];

/* A server context: the certificate chain file, its key, and a cipher list
 * (NULL = the default), served when the client names no server or one no
 * tls_sni entry matches; and the n_sni certificates chosen by name, an
 * exact name before a wildcard.  NULL with a message in err. */
up_tls_ctx *up_tls_ctx_new(const char *cert, const char *key,
                           const char *ciphers, const up_tls_sni *sni,
                           size_t n_sni, const up_tls_resume *resume,
                           char *err, size_t errlen);
void up_tls_ctx_free(up_tls_ctx *ctx);

/* Release wolfSSL's global state (at exit, after the last context). */
void up_tls_cleanup(void);

/* One TLS connection, server side.  NULL when out of memory. */
up_tls *up_tls_new(up_tls_ctx *ctx);
void up_tls_free(up_tls *t);

/* Hand over ciphertext read from the client.  -1 when it would buffer
 * more than a sane amount (the session stops reading long before). */
int up_tls_feed(up_tls *t, const char *buf, size_t len);
/* Ciphertext fed and not yet consumed by wolfSSL. */
size_t up_tls_buffered(const up_tls *t);

/* Drive the handshake: 1 done, 0 needs more input, -1 failed. */
int up_tls_handshake(up_tls *t);
int up_tls_established(const up_tls *t);

/* Decrypt into buf: the number of bytes (> 0), 0 when more input is
 * needed, UP_TLS_CLOSED when the client sent close_notify, -1 on error. */
#define UP_TLS_CLOSED (-2)
long up_tls_read(up_tls *t, char *buf, size_t len);

/* Encrypt len bytes into the output buffer.  0 or -1. */
int up_tls_write(up_tls *t, const char *buf, size_t len);
/* Queue a close_notify alert (once). */
void up_tls_close_notify(up_tls *t);

/* The ciphertext waiting to be sent, handed over (the caller frees it);
 * NULL with *len = 0 when there is none. */
char *up_tls_take_output(up_tls *t, size_t *len);

/* Why the last call failed, for the log. */
const char *up_tls_error(const up_tls *t);
/* After the handshake: "TLSv1.3", and the cipher in OpenSSL's naming
 * ("TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES128-GCM-SHA256"). */
const char *up_tls_version(const up_tls *t);
const char *up_tls_cipher(const up_tls *t);
/* 1 when the handshake resumed an earlier session (ID or ticket). */
int up_tls_resumed(const up_tls *t);
/* The server name the client sent (SNI), non-printable bytes as '?', or
 * NULL when it sent none; and the tls_sni name whose certificate was
 * served, or NULL for tls_cert.  Both are known once the ClientHello is
 * read. */
const char *up_tls_server_name(const up_tls *t);
const char *up_tls_sni_match(const up_tls *t);

#endif
