/*
 * bayes_store_host.c - the bayes counts in the host's store service
 * (smtp.ini `store`, docs/store.md): LMDB shared by the workers of a
 * host, or one Redis shared by a fleet, so that every host learns what
 * any of them is taught.  Keys (the host prefixes "bayes:"):
 *   t:<16 hex>   a feature: spam * 2^32 + ham, one counter, so that a
 *                learn is one atomic increment per feature
 *   n            the message totals, the same encoding
 *   l:<32 hex>   a learned message (its digest): "s" or "h"
 * A lookup is one store_mget of the totals and every feature (at most
 * UPESI_STORE_BATCH_MAX - 1 features: the rest, a random share since ids
 * are hashes, is not read).  A learn is a store_get of the learned record,
 * one store_mincr of all the changes (a move is +1 in one class and -1 in
 * the other, in the same increment), then the record's store_set or
 * store_del: three round trips, whatever the size of the message.
 *
 * How it fails: every store error is the callback's status (-ETIMEDOUT,
 * -ECONNREFUSED, -ENOSPC, -EIO); a learn that fails between its mincr and
 * its record leaves the counts learned without the record (learning the
 * message again counts it twice, which a filter forgives).  A call that
 * cannot start (no store in this process) is -EIO to the caller, whose
 * callback then never runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bayes.h"
#include "bayes_store.h"

#define SPAM_ONE (1LL << 32)
#define KEY_LEN 20               /* "t:" + 16 hex + NUL, rounded          */
#define MAX_IDS (UPESI_STORE_BATCH_MAX - 1)

struct bayes_store {
    int unused;                  /* the host's store holds all the state */
};

static uint32_t spam_of(long long v)
{
    return v > 0 ? (uint32_t)(v >> 32) : 0;
}

static uint32_t ham_of(long long v)
{
    return v > 0 ? (uint32_t)(v & 0xffffffffLL) : 0;
}

/* keys[0] = "n", keys[1..n] the features; one allocation. */
static const char **make_keys(const uint64_t *ids, size_t n, char **buf)
{
    const char **keys = malloc((n + 1) * sizeof *keys);
    *buf = malloc(n * KEY_LEN + 2);
    if (keys == NULL || *buf == NULL) {
        free(keys);
        free(*buf);
        *buf = NULL;
        return NULL;
    }
    char *p = *buf;
    strcpy(p, "n");
    keys[0] = p;
    p += 2;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        /* "t:" and 16 hex digits: by hand, printf was a tenth of a verdict */
        p[0] = 't';
        p[1] = ':';
        for (int d = 0; d < 16; d++)
            p[2 + d] = hex[(ids[i] >> (60 - 4 * d)) & 0xf];
        p[18] = '\0';
        keys[i + 1] = p;
        p += KEY_LEN;
    }
    return keys;
}

static void digest_key(char out[40], const unsigned char *digest)
{
    memcpy(out, "l:", 2);
    for (int i = 0; i < BAYES_DIGEST_LEN; i++)
        snprintf(out + 2 + 2 * i, 3, "%02x", digest[i]);
}

/* ---------------------------------------------------------------------- */
/* lookup                                                                  */

typedef struct lookup_op {
    bayes_lookup_fn fn;
    void *arg;
    size_t n;
    const char **keys;
    char *buf;
} lookup_op;

static void lookup_done(const upesi_store_result *r, void *arg)
{
    lookup_op *op = arg;
    bayes_totals t = {0, 0, 0};
    bayes_count *counts = NULL;
    int status = r->status;
    if (status == 0 && (counts = calloc(op->n + 1, sizeof *counts)) == NULL)
        status = -ENOMEM;
    if (status == 0) {
        t.spam = spam_of(r->values[0].num);
        t.ham = ham_of(r->values[0].num);
        for (size_t i = 0; i < op->n; i++) {
            long long v = r->values[i + 1].num;
            counts[i] = (bayes_count){spam_of(v), ham_of(v)};
        }
    }
    op->fn(status, counts, status ? 0 : op->n, t, op->arg);
    free(counts);
    free(op->keys);
    free(op->buf);
    free(op);
}

int bayes_store_lookup(bayes_store *st, const uint64_t *ids, size_t n,
                       bayes_lookup_fn fn, void *arg)
{
    (void)st;
    if (n > MAX_IDS)
        n = MAX_IDS;
    lookup_op *op = calloc(1, sizeof *op);
    if (op == NULL || (op->keys = make_keys(ids, n, &op->buf)) == NULL) {
        free(op);
        return -ENOMEM;
    }
    op->fn = fn;
    op->arg = arg;
    op->n = n;
    if (bayes_api->store_mget(bayes_ctx, op->keys, n + 1, lookup_done,
                              op) == NULL) {
        free(op->keys);
        free(op->buf);
        free(op);
        return -EIO;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* learn: the record, the counts, the record again                         */

typedef struct learn_op {
    bayes_learn_fn fn;
    void *arg;
    uint64_t *ids;
    size_t n;
    char lkey[40];
    bayes_class cls;
    int unlearn;
    bayes_learn_result result;
    const char **keys;
    char *buf;
    long long *by;
} learn_op;

static void learn_finish(learn_op *op, int status)
{
    op->fn(status, op->result, op->arg);
    free(op->ids);
    free(op->keys);
    free(op->buf);
    free(op->by);
    free(op);
}

static void record_done(const upesi_store_result *r, void *arg)
{
    learn_finish(arg, r->status);
}

static void counts_done(const upesi_store_result *r, void *arg)
{
    learn_op *op = arg;
    if (r->status != 0) {
        learn_finish(op, r->status);
        return;
    }
    upesi_store_op *next;
    if (op->result == BAYES_UNLEARNED) {
        next = bayes_api->store_del(bayes_ctx, op->lkey, record_done, op);
    } else {
        const char *v = op->cls == BAYES_SPAM ? "s" : "h";
        next = bayes_api->store_set(bayes_ctx, op->lkey, v, 1, 0,
                                    record_done, op);
    }
    if (next == NULL)
        learn_finish(op, -EIO);
}

/* one increment a key: the message's features and the totals */
static void record_read(const upesi_store_result *r, void *arg)
{
    learn_op *op = arg;
    if (r->status != 0) {
        learn_finish(op, r->status);
        return;
    }
    const upesi_store_value *v = &r->values[0];
    int known = v->found && v->len == 1;
    bayes_class was = known && *(const char *)v->data == 's' ? BAYES_SPAM
                                                             : BAYES_HAM;
    long long one_cls = op->cls == BAYES_SPAM ? SPAM_ONE : 1;
    long long one_was = was == BAYES_SPAM ? SPAM_ONE : 1;
    long long delta;
    if (op->unlearn) {
        if (!known || was != op->cls) {
            op->result = BAYES_NOT_LEARNED;
            learn_finish(op, 0);
            return;
        }
        op->result = BAYES_UNLEARNED;
        delta = -one_cls;
    } else if (known && was == op->cls) {
        op->result = BAYES_ALREADY;
        learn_finish(op, 0);
        return;
    } else {
        op->result = known ? BAYES_MOVED : BAYES_LEARNED;
        delta = known ? one_cls - one_was : one_cls;
    }
    op->keys = make_keys(op->ids, op->n, &op->buf);
    op->by = malloc((op->n + 1) * sizeof *op->by);
    if (op->keys == NULL || op->by == NULL) {
        learn_finish(op, -ENOMEM);
        return;
    }
    for (size_t i = 0; i <= op->n; i++)
        op->by[i] = delta;
    if (bayes_api->store_mincr(bayes_ctx, op->keys, op->by, op->n + 1, 0,
                               counts_done, op) == NULL)
        learn_finish(op, -EIO);
}

int bayes_store_learn(bayes_store *st, const uint64_t *ids, size_t n,
                      const unsigned char *digest, bayes_class cls,
                      int unlearn, bayes_learn_fn fn, void *arg)
{
    (void)st;
    if (n > MAX_IDS)
        n = MAX_IDS;
    learn_op *op = calloc(1, sizeof *op);
    if (op == NULL || (op->ids = malloc((n ? n : 1) * sizeof *ids)) == NULL) {
        free(op);
        return -ENOMEM;
    }
    memcpy(op->ids, ids, n * sizeof *ids);
    op->n = n;
    op->fn = fn;
    op->arg = arg;
    op->cls = cls;
    op->unlearn = unlearn;
    digest_key(op->lkey, digest);
    if (bayes_api->store_get(bayes_ctx, op->lkey, record_read, op) == NULL) {
        free(op->ids);
        free(op);
        return -EIO;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* stats: the totals, and the keys (lmdb only) less the records            */

typedef struct stats_op {
    bayes_stats_fn fn;
    void *arg;
    bayes_totals t;
} stats_op;

static void count_done(const upesi_store_result *r, void *arg)
{
    stats_op *op = arg;
    if (r->status == 0) {
        long long other = 1 + (long long)(op->t.spam + op->t.ham);
        long long keys = r->values[0].num;
        op->t.tokens = keys > other ? (uint64_t)(keys - other) : 0;
    }
    op->fn(0, op->t, op->arg);
    free(op);
}

static void totals_done(const upesi_store_result *r, void *arg)
{
    stats_op *op = arg;
    if (r->status != 0) {
        op->fn(r->status, op->t, op->arg);
        free(op);
        return;
    }
    op->t.spam = spam_of(r->values[0].num);
    op->t.ham = ham_of(r->values[0].num);
    if (bayes_api->store_count(bayes_ctx, count_done, op) == NULL) {
        op->fn(0, op->t, op->arg);
        free(op);
    }
}

int bayes_store_stats(bayes_store *st, bayes_stats_fn fn, void *arg)
{
    (void)st;
    stats_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return -ENOMEM;
    op->fn = fn;
    op->arg = arg;
    op->t.tokens = BAYES_TOKENS_UNKNOWN;
    if (bayes_api->store_get(bayes_ctx, "n", totals_done, op) == NULL) {
        free(op);
        return -EIO;
    }
    return 0;
}

void bayes_store_close(bayes_store *st)
{
    free(st);
}

bayes_store *bayes_store_open_host(void)
{
    return calloc(1, sizeof(bayes_store));
}
