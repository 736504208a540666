/*
 * tls_cache.c - the session cache the workers share (see tls_cache.h).
 *
 * Layout: a header with a process-shared robust mutex, then n slots in
 * sets of four; a session ID (32 random bytes the server chose) picks its
 * set by its first bytes, and a new session takes the slot with the same
 * ID, an empty or expired one, or else the one that expires first.  One
 * lock for the whole cache: it is held for a memcpy of a few hundred
 * bytes, while a handshake costs milliseconds.
 *
 * Fails: see tls_cache.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "tls_cache.h"

#define CACHE_WAYS 4
#define CACHE_ID_MAX 32
/* a server session in wolfSSL's form (no client certificate) is 118
 * bytes with wolfSSL 5.5, about 300 with a TLS 1.2 ticket in it; a larger
 * one is not shared */
#define CACHE_DER_MAX 480

typedef struct cache_slot {
    int64_t expires;            /* Unix time; 0 = empty                 */
    uint16_t len;
    unsigned char id_len;
    unsigned char id[CACHE_ID_MAX];
    unsigned char der[CACHE_DER_MAX];
} cache_slot;

typedef struct cache_shm {
    pthread_mutex_t lock;
    size_t n_sets;
    cache_slot slots[];
} cache_shm;

static cache_shm *cache;
static int decided;             /* the first call sets the size for good */
static int init_error;          /* and its outcome, for later callers    */

int up_tls_cache_init(size_t n)
{
    /* later calls (a worker's reload) keep what the supervisor made: a
     * cache made after the fork would be the worker's alone */
    if (decided)
        return init_error;
    decided = 1;
    if (n == 0)
        return 0;
    size_t sets = (n + CACHE_WAYS - 1) / CACHE_WAYS;
    size_t size = sizeof(cache_shm) + sets * CACHE_WAYS * sizeof(cache_slot);
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return init_error = -errno;
    cache_shm *c = map;
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0) {
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        rc = pthread_mutex_init(&c->lock, &attr);
        pthread_mutexattr_destroy(&attr);
    }
    if (rc != 0) {
        munmap(map, size);
        return init_error = -rc;
    }
    c->n_sets = sets;
    cache = c;
    return 0;
}

static int cache_lock(void)
{
    int rc = pthread_mutex_lock(&cache->lock);
    if (rc == EOWNERDEAD) {
        /* a worker died holding it: a slot may be half written, and a
         * session that does not decode is simply not resumed */
        pthread_mutex_consistent(&cache->lock);
        rc = 0;
    }
    return rc;
}

static cache_slot *cache_set(const unsigned char *id, size_t id_len)
{
    uint64_t h = 1469598103934665603ULL;     /* FNV-1a over the ID */
    for (size_t i = 0; i < id_len; i++)
        h = (h ^ id[i]) * 1099511628211ULL;
    return &cache->slots[(h % cache->n_sets) * CACHE_WAYS];
}

static cache_slot *cache_find(cache_slot *set, const unsigned char *id,
                              size_t id_len)
{
    for (int i = 0; i < CACHE_WAYS; i++)
        if (set[i].expires && set[i].id_len == id_len &&
            !memcmp(set[i].id, id, id_len))
            return &set[i];
    return NULL;
}

/* wolfSSL made a session it can resume: share it.  0: wolfSSL keeps its
 * reference (we copied the session). */
static int cache_new(WOLFSSL *ssl, WOLFSSL_SESSION *sess)
{
    (void)ssl;
    unsigned int id_len = 0;
    const unsigned char *id = wolfSSL_SESSION_get_id(sess, &id_len);
    if (cache == NULL || id == NULL || id_len == 0 || id_len > CACHE_ID_MAX)
        return 0;
    unsigned char der[CACHE_DER_MAX], *p = der;
    int len = wolfSSL_i2d_SSL_SESSION(sess, NULL);
    if (len <= 0 || len > CACHE_DER_MAX ||
        wolfSSL_i2d_SSL_SESSION(sess, &p) != len)
        return 0;
    int64_t now = (int64_t)time(NULL);
    long timeout = wolfSSL_SESSION_get_timeout(sess);
    if (cache_lock() != 0)
        return 0;
    cache_slot *set = cache_set(id, id_len);
    cache_slot *slot = cache_find(set, id, id_len);
    if (slot == NULL) {         /* empty (0), expired, or first to expire */
        slot = &set[0];
        for (int i = 1; i < CACHE_WAYS; i++)
            if (set[i].expires < slot->expires)
                slot = &set[i];
    }
    slot->expires = now + (timeout > 0 ? timeout : 300);
    slot->id_len = (unsigned char)id_len;
    memcpy(slot->id, id, id_len);
    slot->len = (uint16_t)len;
    memcpy(slot->der, der, (size_t)len);
    pthread_mutex_unlock(&cache->lock);
    return 0;
}

/* A client offered a session ID: a decoded copy, which wolfSSL frees
 * (*copy = 0), or NULL.  wolfSSL checks the session's own timeout too. */
static WOLFSSL_SESSION *cache_get(WOLFSSL *ssl, const unsigned char *id,
                                  int id_len, int *copy)
{
    (void)ssl;
    *copy = 0;
    if (cache == NULL || id_len <= 0 || id_len > CACHE_ID_MAX)
        return NULL;
    unsigned char der[CACHE_DER_MAX];
    int len = 0;
    if (cache_lock() != 0)
        return NULL;
    cache_slot *slot = cache_find(cache_set(id, (size_t)id_len), id,
                                  (size_t)id_len);
    if (slot && slot->expires > (int64_t)time(NULL)) {
        len = slot->len;
        memcpy(der, slot->der, (size_t)len);
    }
    pthread_mutex_unlock(&cache->lock);
    if (len == 0)
        return NULL;
    const unsigned char *p = der;
    return wolfSSL_d2i_SSL_SESSION(NULL, &p, len);
}

void up_tls_cache_attach(WOLFSSL_CTX *ctx)
{
    if (cache == NULL)
        return;
    /* wolfSSL's own cache need not store too: this one answers first */
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_SERVER |
                                       WOLFSSL_SESS_CACHE_NO_INTERNAL_STORE);
    wolfSSL_CTX_sess_set_new_cb(ctx, cache_new);
    wolfSSL_CTX_sess_set_get_cb(ctx, cache_get);
    /* no remove callback: wolfSSL calls it whenever it frees a session it
     * did not store itself, that is at the end of every connection; a
     * session leaves the cache when it expires or its slot is needed */
}
