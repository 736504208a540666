/*
 * tls_ticket.c - session ticket keys shared by the workers (see
 * tls_ticket.h).
 *
 * Keys: master = 32 random bytes (up_tls_ticket_seed), or HKDF-Extract
 * (SHA-256) of the key file's contents.  The key of period n (n = the
 * Unix time divided by the period) is HKDF(master, "upesi ticket key" n);
 * the ticket's 16-byte key name is 8 bytes that name the master and n, so
 * that a ticket says which key it needs.  Tickets are sealed with
 * ChaCha20-Poly1305 (wolfCrypt) under a random nonce; the key name, the
 * nonce and the length are authenticated with them.
 *
 * Fails: see tls_ticket.h.  A ticket of another master (another server,
 * a replaced key file, a restart without a key file) is refused quietly.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "tls_ticket.h"

#define TICKET_MASTER_SZ 32
#define TICKET_FILE_MIN 32
#define TICKET_FILE_MAX 65536

typedef struct period_key {
    uint64_t period;
    int valid;
    unsigned char key[CHACHA20_POLY1305_AEAD_KEYSIZE];
} period_key;

struct up_tls_ticket_keys {
    unsigned char master[TICKET_MASTER_SZ];
    unsigned char id[8];        /* names the master in the key name */
    long period;                /* seconds                             */
    period_key cache[2];        /* the last two keys derived           */
};

static unsigned char seed[TICKET_MASTER_SZ];
static int seeded;

int up_tls_ticket_seed(void)
{
    if (seeded)
        return 0;
    size_t got = 0;
    while (got < sizeof seed) {
        ssize_t n = getrandom(seed + got, sizeof seed - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    seeded = 1;
    return 0;
}

/* The whole file, 32 bytes to 64 KiB; NULL with a message. */
static unsigned char *read_key_file(const char *path, size_t *len, char *err,
                                    size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, errlen, "tls_ticket_key_file %s: cannot open: %s",
                 path, strerror(errno));
        return NULL;
    }
    unsigned char *buf = malloc(TICKET_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, TICKET_FILE_MAX + 1, fp) : 0;
    int bad = buf == NULL || ferror(fp);
    fclose(fp);
    if (bad || n < TICKET_FILE_MIN || n > TICKET_FILE_MAX) {
        if (buf == NULL)
            snprintf(err, errlen, "out of memory");
        else if (bad)
            snprintf(err, errlen, "tls_ticket_key_file %s: cannot read",
                     path);
        else
            snprintf(err, errlen, "tls_ticket_key_file %s: holds %s%zu "
                     "bytes; it needs %d to %d secret bytes (make one with "
                     "'openssl rand -out FILE 48')", path,
                     n > TICKET_FILE_MAX ? "more than " : "",
                     n > TICKET_FILE_MAX ? (size_t)TICKET_FILE_MAX : n,
                     TICKET_FILE_MIN, TICKET_FILE_MAX);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int up_tls_ticket_check_file(const char *path, char *err, size_t errlen)
{
    size_t len;
    unsigned char *buf = read_key_file(path, &len, err, errlen);
    if (buf == NULL)
        return -1;
    memset(buf, 0, len);
    free(buf);
    return 0;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

up_tls_ticket_keys *up_tls_ticket_keys_new(const char *path, long period,
                                           char *err, size_t errlen)
{
    static const char salt[] = "upesi tls_ticket_key_file";
    static const char name_info[] = "upesi ticket key name";
    up_tls_ticket_keys *k = calloc(1, sizeof *k);
    if (k == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    k->period = period > 0 ? period : 3600;
    if (path) {
        size_t len;
        unsigned char *buf = read_key_file(path, &len, err, errlen);
        if (buf == NULL) {
            free(k);
            return NULL;
        }
        int rc = wc_HKDF_Extract(WC_SHA256, (const byte *)salt,
                                 sizeof salt - 1, buf, (word32)len,
                                 k->master);
        memset(buf, 0, len);
        free(buf);
        if (rc != 0) {
            snprintf(err, errlen, "tls_ticket_key_file %s: cannot derive "
                     "a key (wolfCrypt %d)", path, rc);
            free(k);
            return NULL;
        }
    } else {
        if (up_tls_ticket_seed() != 0) {
            snprintf(err, errlen, "no random bytes for the session ticket "
                     "key: %s", strerror(errno));
            free(k);
            return NULL;
        }
        memcpy(k->master, seed, sizeof k->master);
    }
    if (wc_HKDF(WC_SHA256, k->master, sizeof k->master, NULL, 0,
                (const byte *)name_info, sizeof name_info - 1, k->id,
                sizeof k->id) != 0) {
        snprintf(err, errlen, "cannot derive the session ticket key name");
        up_tls_ticket_keys_free(k);
        return NULL;
    }
    return k;
}

void up_tls_ticket_keys_free(up_tls_ticket_keys *k)
{
    if (k == NULL)
        return;
    memset(k, 0, sizeof *k);
    free(k);
}

/* The key of a period, derived once and kept while it is one of the last
 * two asked for.  NULL if wolfCrypt fails. */
static const unsigned char *period_key_get(up_tls_ticket_keys *k,
                                           uint64_t period)
{
    static const char info[] = "upesi ticket key";
    for (int i = 0; i < 2; i++)
        if (k->cache[i].valid && k->cache[i].period == period)
            return k->cache[i].key;
    period_key *slot = &k->cache[0];
    if (k->cache[1].valid == 0 ||
        (k->cache[0].valid && k->cache[1].period < k->cache[0].period))
        slot = &k->cache[1];
    unsigned char label[sizeof info - 1 + 8];
    memcpy(label, info, sizeof info - 1);
    put_be64(label + sizeof info - 1, period);
    if (wc_HKDF(WC_SHA256, k->master, sizeof k->master, NULL, 0, label,
                sizeof label, slot->key, sizeof slot->key) != 0) {
        slot->valid = 0;
        return NULL;
    }
    slot->period = period;
    slot->valid = 1;
    return slot->key;
}

int up_tls_ticket_crypt(up_tls_ticket_keys *k, int64_t when, int enc,
                        unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                        unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                        unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
                        unsigned char *ticket, int in_len, int *out_len)
{
    if (k == NULL || when < 0 || in_len < 0 || in_len > 0xffff)
        return enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
    uint64_t now = (uint64_t)when / (uint64_t)k->period, period;
    int ok = WOLFSSL_TICKET_RET_OK;
    if (enc) {
        period = now;
        memcpy(name, k->id, sizeof k->id);
        put_be64(name + 8, period);
        if (getrandom(iv, WOLFSSL_TICKET_IV_SZ, 0) != WOLFSSL_TICKET_IV_SZ)
            return WOLFSSL_TICKET_RET_FATAL;
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    } else {
        if (memcmp(name, k->id, sizeof k->id) != 0)
            return WOLFSSL_TICKET_RET_REJECT;
        period = get_be64(name + 8);
        if (period == now)
            ok = WOLFSSL_TICKET_RET_OK;
        else if (period + 1 == now)
            ok = WOLFSSL_TICKET_RET_CREATE;
        else
            return WOLFSSL_TICKET_RET_REJECT;
    }
    const unsigned char *key = period_key_get(k, period);
    if (key == NULL)
        return enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
    unsigned char aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ + 2];
    memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
    aad[sizeof aad - 2] = (unsigned char)(in_len >> 8);
    aad[sizeof aad - 1] = (unsigned char)in_len;
    /* the nonce is the first 12 of the 16 random bytes wolfSSL keeps */
    int rc = enc
        ? wc_ChaCha20Poly1305_Encrypt(key, iv, aad, sizeof aad, ticket,
                                      (word32)in_len, ticket, mac)
        : wc_ChaCha20Poly1305_Decrypt(key, iv, aad, sizeof aad, ticket,
                                      (word32)in_len, mac, ticket);
    if (rc != 0)
        return enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
    *out_len = in_len;
    return ok;
}

/* wolfSSL's SessionTicketEncCb, on the wall clock: every worker (and every
 * host sharing a key file) must agree on the period. */
static int ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc,
                     unsigned char *ticket, int in_len, int *out_len,
                     void *arg)
{
    (void)ssl;
    return up_tls_ticket_crypt(arg, (int64_t)time(NULL), enc, name, iv, mac,
                               ticket, in_len, out_len);
}

int up_tls_ticket_attach(WOLFSSL_CTX *ctx, up_tls_ticket_keys *k)
{
    if (wolfSSL_CTX_set_TicketEncCb(ctx, ticket_cb) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_TicketEncCtx(ctx, k) != WOLFSSL_SUCCESS)
        return -1;
    /* TLS 1.2 NewSessionTicket's lifetime hint (TLS 1.3 takes the
     * session timeout, set with wolfSSL_CTX_set_timeout) */
    return wolfSSL_CTX_set_TicketHint(ctx, (int)k->period) ==
           WOLFSSL_SUCCESS ? 0 : -1;
}
