/*
 * tls_cache.h - the TLS session cache every worker shares: TLS 1.2
 * resumption by session ID works whichever worker the client comes back
 * to.
 *
 * wolfSSL's own cache is per process and, as Debian builds it (no
 * *_SESSION_CACHE option), holds at most 33 sessions in rows by hash: of
 * 40 sessions made in a row, 21 could be resumed.  A busy server forgets
 * a session before its client returns, and a client that lands on
 * another worker is never resumed.  This cache is one shared anonymous mapping, made by the
 * supervisor before it forks the workers (so only they can see it), of
 * tls_session_cache_size slots, given to wolfSSL as its external cache
 * (HAVE_EXT_CACHE: the new and get callbacks); a session is stored in
 * wolfSSL's own serialised form.
 *
 * Fails: a mapping that cannot be made leaves resumption to wolfSSL's own
 * cache (logged by the caller); a full cache drops the session that
 * expires first; a worker that dies holding the lock does not block the
 * others (robust mutex).  A session too big for a slot is not shared.
 */
#ifndef UPESI_TLS_CACHE_H
#define UPESI_TLS_CACHE_H

#include <stddef.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

/* Map the cache for n sessions (0: none).  The first call decides, before
 * the workers are forked; later calls change nothing and return what the
 * first returned.  0, or a negative errno (then there is none). */
int up_tls_cache_init(size_t n);

/* Give ctx the shared cache instead of wolfSSL's own (a no-op while
 * there is none). */
void up_tls_cache_attach(WOLFSSL_CTX *ctx);

#endif
