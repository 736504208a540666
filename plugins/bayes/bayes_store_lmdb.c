/*
 * bayes_store_lmdb.c - the bayes counts in an LMDB environment of the
 * plugin's own (see bayes_store.h), for a host without the store service.
 *
 * One environment per host, shared by every worker process and by the
 * command line (LMDB's lock file serialises writers across processes);
 * each process opens its own handle after the fork.  Two databases:
 *   "tokens"  id (uint64, MDB_INTEGERKEY) -> spam, ham counts (2 x uint32)
 *   "meta"    'N' -> totals: spam, ham messages (2 x uint64)
 *             'L' + digest (16 bytes) -> a learned message's class (1 byte)
 * A feature's count is read and rewritten through one cursor (one tree
 * search), and a message's ids come sorted, so the pages it touches are
 * visited in order.
 * Writes are not fsynced one by one (MDB_NOSYNC): a crash may forget the
 * last learns but never corrupts the file; bayes_store_sync makes them
 * durable, and the command line calls it before it exits.
 *
 * How it fails: every LMDB error is a negative errno to the callback
 * (MDB_MAP_FULL is -ENOSPC), the data unchanged (the transaction is
 * aborted).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "bayes_store.h"

#define MAP_SIZE ((size_t)4 << 30)   /* address space; the file is sparse */

typedef struct lmdb_store {
    bayes_store base;
    MDB_env *env;
    MDB_dbi tok, meta;
    MDB_txn *batch;              /* bayes_store_batch: the open write txn */
    unsigned batched;            /* learns in it                          */
    /* batch mode: the features' count changes, summed in memory and
     * written sorted when the batch commits (a word in 500 messages is
     * one write, not 500) */
    struct pending *pend;
    size_t pend_cap, pend_n;     /* cap: a power of 2                     */
} lmdb_store;

static int pending_flush(lmdb_store *st, MDB_txn *txn);

typedef struct pending {
    uint64_t id;
    int32_t d[2];                /* spam, ham                             */
    int used;
} pending;

/* Learns per write transaction in batch mode. */
#define BATCH_LEARNS 1000

static int lmdb_errno(int rc)
{
    if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL)
        return -ENOSPC;
    if (rc > 0 && rc < 200)          /* a system errno */
        return -rc;
    return -EIO;
}

static const bayes_store_ops lmdb_ops;
static int lmdb_batch(bayes_store *base, int on);

int bayes_store_open_lmdb(const char *path, bayes_store **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
        return -e;
    }
    lmdb_store *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -ENOMEM;
    int rc = mdb_env_create(&st->env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(st->env, MAP_SIZE);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(st->env, 4);
    if (rc == 0)
        rc = mdb_env_open(st->env, path, MDB_NOSYNC | MDB_NOTLS, 0600);
    MDB_txn *txn = NULL;
    if (rc == 0)
        rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "tokens", MDB_CREATE | MDB_INTEGERKEY,
                          &st->tok);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0) {
        snprintf(err, errlen, "cannot open the bayes store %s: %s", path,
                 mdb_strerror(rc));
        if (st->env)
            mdb_env_close(st->env);
        free(st);
        return lmdb_errno(rc);
    }
    st->base.ops = &lmdb_ops;
    *out = &st->base;
    return 0;
}

static void lmdb_close(bayes_store *base)
{
    lmdb_store *st = (lmdb_store *)base;
    if (st == NULL)
        return;
    lmdb_batch(&st->base, 0);
    free(st->pend);
    mdb_env_sync(st->env, 1);
    mdb_env_close(st->env);
    free(st);
}

static int lmdb_batch(bayes_store *base, int on)
{
    lmdb_store *st = (lmdb_store *)base;
    int rc = 0;
    if (st->batch) {
        rc = st->pend_n ? pending_flush(st, st->batch) : 0;
        if (rc == 0)
            rc = mdb_txn_commit(st->batch);
        else
            mdb_txn_abort(st->batch);
        st->batch = NULL;
        st->batched = 0;
    }
    if (rc == 0 && on)
        rc = mdb_txn_begin(st->env, NULL, 0, &st->batch);
    return rc ? lmdb_errno(rc) : 0;
}

static int lmdb_sync(bayes_store *base)
{
    lmdb_store *st = (lmdb_store *)base;
    int rc = 0;
    if (st->batch)
        rc = lmdb_batch(&st->base, 1);
    int s = mdb_env_sync(st->env, 1);
    return rc ? rc : s ? lmdb_errno(s) : 0;
}

static int read_totals(MDB_txn *txn, MDB_dbi dbi, bayes_totals *t)
{
    MDB_val k = {1, "N"}, v;
    memset(t, 0, sizeof *t);
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (v.mv_size == 16) {
        memcpy(&t->spam, v.mv_data, 8);
        memcpy(&t->ham, (char *)v.mv_data + 8, 8);
    }
    return 0;
}

static int lmdb_lookup(bayes_store *base, const uint64_t *ids, size_t n,
                       bayes_lookup_fn fn, void *arg)
{
    lmdb_store *st = (lmdb_store *)base;
    bayes_count *counts = calloc(n ? n : 1, sizeof *counts);
    bayes_totals totals = {0};
    if (counts == NULL) {
        fn(-ENOMEM, NULL, 0, totals, arg);
        return 0;
    }
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = read_totals(txn, st->meta, &totals);
        /* one cursor for the sorted ids: LMDB looks on the cursor's page
         * before it searches from the root */
        MDB_cursor *cur = NULL;
        if (rc == 0)
            rc = mdb_cursor_open(txn, st->tok, &cur);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            uint64_t id = ids[i];
            MDB_val k = {sizeof id, &id}, v;
            int g = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
            if (g == 0 && v.mv_size == 8) {
                memcpy(&counts[i].spam, v.mv_data, 4);
                memcpy(&counts[i].ham, (char *)v.mv_data + 4, 4);
            } else if (g != MDB_NOTFOUND && g != 0) {
                rc = g;
            }
        }
        if (cur)
            mdb_cursor_close(cur);
        mdb_txn_abort(txn);
    }
    fn(rc ? lmdb_errno(rc) : 0, rc ? NULL : counts, rc ? 0 : n, totals, arg);
    free(counts);
    return 0;
}

/* Add delta (+1 or -1) to one class of every feature of the message. */
static int add_counts(MDB_txn *txn, MDB_dbi dbi, const uint64_t *ids,
                      size_t n, bayes_class cls, int delta)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t id = ids[i];
        MDB_val k = {sizeof id, &id}, v;
        uint32_t c[2] = {0, 0};
        int found = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
        if (found == 0 && v.mv_size == 8)
            memcpy(c, v.mv_data, 8);
        else if (found != 0 && found != MDB_NOTFOUND) {
            rc = found;
            break;
        }
        uint32_t *slot = &c[cls == BAYES_SPAM ? 0 : 1];
        if (delta > 0 && *slot < UINT32_MAX)
            (*slot)++;
        else if (delta < 0 && *slot > 0)
            (*slot)--;
        if (c[0] == 0 && c[1] == 0) {
            if (found == 0)
                rc = mdb_cursor_del(cur, 0);
            continue;
        }
        v.mv_size = 8;
        v.mv_data = c;
        rc = found == 0 ? mdb_cursor_put(cur, &k, &v, MDB_CURRENT)
                        : mdb_cursor_put(cur, &k, &v, 0);
    }
    mdb_cursor_close(cur);
    return rc;
}

static int pending_grow(lmdb_store *st)
{
    size_t cap = st->pend_cap ? st->pend_cap * 2 : 65536;
    pending *t = calloc(cap, sizeof *t);
    if (t == NULL)
        return ENOMEM;
    for (size_t i = 0; i < st->pend_cap; i++) {
        if (!st->pend[i].used)
            continue;
        size_t j = (size_t)(st->pend[i].id ^ (st->pend[i].id >> 29)) &
                   (cap - 1);
        while (t[j].used)
            j = (j + 1) & (cap - 1);
        t[j] = st->pend[i];
    }
    free(st->pend);
    st->pend = t;
    st->pend_cap = cap;
    return 0;
}

static int pending_add(lmdb_store *st, const uint64_t *ids, size_t n,
                       bayes_class cls, int delta)
{
    for (size_t i = 0; i < n; i++) {
        if ((st->pend_n + 1) * 2 > st->pend_cap && pending_grow(st) != 0)
            return ENOMEM;
        size_t mask = st->pend_cap - 1;
        size_t j = (size_t)(ids[i] ^ (ids[i] >> 29)) & mask;
        while (st->pend[j].used && st->pend[j].id != ids[i])
            j = (j + 1) & mask;
        if (!st->pend[j].used) {
            st->pend[j].used = 1;
            st->pend[j].id = ids[i];
            st->pend_n++;
        }
        st->pend[j].d[cls == BAYES_SPAM ? 0 : 1] += delta;
    }
    return 0;
}

static int by_id(const void *a, const void *b)
{
    uint64_t x = ((const pending *)a)->id, y = ((const pending *)b)->id;
    return x < y ? -1 : x > y;
}

/* Write the summed changes into txn, in id order, and empty the table. */
static int pending_flush(lmdb_store *st, MDB_txn *txn)
{
    size_t n = 0;
    for (size_t i = 0; i < st->pend_cap; i++)
        if (st->pend[i].used)
            st->pend[n++] = st->pend[i];
    qsort(st->pend, n, sizeof *st->pend, by_id);
    MDB_cursor *cur;
    int rc = n ? mdb_cursor_open(txn, st->tok, &cur) : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t id = st->pend[i].id;
        MDB_val k = {sizeof id, &id}, v;
        uint32_t c[2] = {0, 0};
        int found = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
        if (found == 0 && v.mv_size == 8)
            memcpy(c, v.mv_data, 8);
        else if (found != 0 && found != MDB_NOTFOUND) {
            rc = found;
            break;
        }
        for (int x = 0; x < 2; x++) {
            int64_t nv = (int64_t)c[x] + st->pend[i].d[x];
            c[x] = nv < 0 ? 0 : nv > UINT32_MAX ? UINT32_MAX : (uint32_t)nv;
        }
        if (c[0] == 0 && c[1] == 0) {
            if (found == 0)
                rc = mdb_cursor_del(cur, 0);
            continue;
        }
        v.mv_size = 8;
        v.mv_data = c;
        rc = found == 0 ? mdb_cursor_put(cur, &k, &v, MDB_CURRENT)
                        : mdb_cursor_put(cur, &k, &v, 0);
    }
    if (n)
        mdb_cursor_close(cur);
    memset(st->pend, 0, st->pend_cap * sizeof *st->pend);
    st->pend_n = 0;
    return rc;
}

/* A message's count changes: summed in memory in batch mode, else
 * written at once. */
static int count_delta(lmdb_store *st, MDB_txn *txn, const uint64_t *ids,
                       size_t n, bayes_class cls, int delta)
{
    if (st->batch && txn == st->batch)
        return pending_add(st, ids, n, cls, delta);
    return add_counts(txn, st->tok, ids, n, cls, delta);
}

static int add_total(MDB_txn *txn, MDB_dbi dbi, bayes_class cls, int delta)
{
    bayes_totals t;
    int rc = read_totals(txn, dbi, &t);
    if (rc != 0)
        return rc;
    uint64_t *slot = cls == BAYES_SPAM ? &t.spam : &t.ham;
    if (delta > 0)
        (*slot)++;
    else if (*slot > 0)
        (*slot)--;
    uint64_t raw[2] = {t.spam, t.ham};
    MDB_val k = {1, "N"}, v = {16, raw};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int learn_txn(MDB_txn *txn, lmdb_store *st, const uint64_t *ids,
                     size_t n, const unsigned char *digest, bayes_class cls,
                     int unlearn, bayes_learn_result *result)
{
    unsigned char lkey[1 + BAYES_DIGEST_LEN];
    lkey[0] = 'L';
    memcpy(lkey + 1, digest, BAYES_DIGEST_LEN);
    MDB_val k = {sizeof lkey, lkey}, v;
    MDB_dbi dbi = st->meta;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    int known = rc == 0 && v.mv_size == 1;
    bayes_class was = known ? (bayes_class)*(unsigned char *)v.mv_data
                            : BAYES_HAM;
    if (unlearn) {
        /* the class given must be the one it was learned as */
        if (!known || was != cls) {
            *result = BAYES_NOT_LEARNED;
            return 0;
        }
        if ((rc = count_delta(st, txn, ids, n, cls, -1)) != 0 ||
            (rc = add_total(txn, dbi, cls, -1)) != 0)
            return rc;
        rc = mdb_del(txn, dbi, &k, NULL);
        *result = BAYES_UNLEARNED;
        return rc;
    }
    if (known && was == cls) {
        *result = BAYES_ALREADY;
        return 0;
    }
    if (known) {
        if ((rc = count_delta(st, txn, ids, n, was, -1)) != 0 ||
            (rc = add_total(txn, dbi, was, -1)) != 0)
            return rc;
    }
    if ((rc = count_delta(st, txn, ids, n, cls, +1)) != 0 ||
        (rc = add_total(txn, dbi, cls, +1)) != 0)
        return rc;
    unsigned char c = (unsigned char)cls;
    MDB_val cv = {1, &c};
    rc = mdb_put(txn, dbi, &k, &cv, 0);
    *result = known ? BAYES_MOVED : BAYES_LEARNED;
    return rc;
}

static int lmdb_learn(bayes_store *base, const uint64_t *ids, size_t n,
                      const unsigned char *digest, bayes_class cls,
                      int unlearn, bayes_learn_fn fn, void *arg)
{
    lmdb_store *st = (lmdb_store *)base;
    MDB_txn *txn;
    bayes_learn_result result = BAYES_NOT_LEARNED;
    if (st->batch) {
        /* a failure aborts the whole batch: the caller stops there */
        int rc = learn_txn(st->batch, st, ids, n, digest, cls, unlearn,
                           &result);
        int err = rc ? lmdb_errno(rc) : 0;
        if (rc != 0) {
            mdb_txn_abort(st->batch);
            st->batch = NULL;
            st->batched = 0;
            if (st->pend)
                memset(st->pend, 0, st->pend_cap * sizeof *st->pend);
            st->pend_n = 0;
        } else if (++st->batched >= BATCH_LEARNS) {
            err = lmdb_batch(&st->base, 1);
        }
        fn(err, result, arg);
        return 0;
    }
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = learn_txn(txn, st, ids, n, digest, cls, unlearn, &result);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    fn(rc ? lmdb_errno(rc) : 0, result, arg);
    return 0;
}

static int lmdb_totals(lmdb_store *st, bayes_totals *out)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdb_errno(rc);
    rc = read_totals(txn, st->meta, out);
    MDB_stat ms;
    if (rc == 0)
        rc = mdb_stat(txn, st->tok, &ms);
    mdb_txn_abort(txn);
    if (rc != 0)
        return lmdb_errno(rc);
    out->tokens = ms.ms_entries;
    return 0;
}

static int lmdb_stats(bayes_store *base, bayes_stats_fn fn, void *arg)
{
    bayes_totals t;
    int rc = lmdb_totals((lmdb_store *)base, &t);
    fn(rc, t, arg);
    return 0;
}

static const bayes_store_ops lmdb_ops = {
    .close = lmdb_close,
    .sync = lmdb_sync,
    .batch = lmdb_batch,
    .lookup = lmdb_lookup,
    .learn = lmdb_learn,
    .stats = lmdb_stats,
};
