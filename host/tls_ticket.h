/*
 * tls_ticket.h - the keys that encrypt TLS session tickets (RFC 5077 for
 * TLS 1.2, RFC 8446 4.6.1 for TLS 1.3), the same in every worker.
 *
 * A ticket is the server's session state, encrypted by the server and
 * kept by the client; whichever worker (or host, with a shared key file)
 * the client comes back to can resume it if it holds the same key.  So
 * the key is derived, never kept per WOLFSSL_CTX: from a master secret
 * made once in the supervisor before the workers are forked (or read from
 * tls_ticket_key_file), and the time.  Every tls_session_timeout seconds
 * the key changes (rotation needs no message between workers: each
 * derives the key of the period it is in); a ticket of the period before
 * still decrypts and is replaced by a new one, an older one is refused
 * and the client gets a full handshake.
 *
 * Fails: a key file that cannot be read, or holds fewer than 32 bytes, is
 * refused with a message; a ticket that does not decrypt is refused (a
 * full handshake follows, never a failed one).
 */
#ifndef UPESI_TLS_TICKET_H
#define UPESI_TLS_TICKET_H

#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

typedef struct up_tls_ticket_keys up_tls_ticket_keys;

/* The random master secret of this process tree, made at the first call
 * (getrandom).  Call it before forking workers, so that they share it; a
 * later call keeps it.  -1 if the system gives no random bytes. */
int up_tls_ticket_seed(void);

/* tls_ticket_key_file: readable, 32 bytes or more (at most 64 KiB). */
int up_tls_ticket_check_file(const char *path, char *err, size_t errlen);

/* The keys of one configuration generation: from the file if path is set,
 * else from the seed; rotated every period seconds.  NULL with a message. */
up_tls_ticket_keys *up_tls_ticket_keys_new(const char *path, long period,
                                           char *err, size_t errlen);
void up_tls_ticket_keys_free(up_tls_ticket_keys *k);

/* Seal (enc) or open a ticket in place at Unix time `when`, as wolfSSL's
 * SessionTicketEncCb does (the callback passes time(NULL)): sealing fills
 * name, iv and mac; opening returns WOLFSSL_TICKET_RET_OK for a ticket of
 * this period, WOLFSSL_TICKET_RET_CREATE for one of the period before
 * (wolfSSL then issues a fresh one), WOLFSSL_TICKET_RET_REJECT for any
 * other or one that does not decrypt.  *out_len = in_len. */
int up_tls_ticket_crypt(up_tls_ticket_keys *k, int64_t when, int enc,
                        unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                        unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                        unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
                        unsigned char *ticket, int in_len, int *out_len);

/* Make ctx encrypt and decrypt its tickets with k (k outlives ctx). */
int up_tls_ticket_attach(WOLFSSL_CTX *ctx, up_tls_ticket_keys *k);

#endif
