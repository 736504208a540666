/*
 * bayes_store_host.c - the bayes counts in the host's store service
 * (smtp.ini `store`, docs/store.md): LMDB shared by the workers of a
 * host, or one Redis shared by a fleet, so that every host learns what
 * any of them is taught.  Keys (the host prefixes "bayes:"):
 *   f:<16 hex>   a feature: spam * 2^32 + ham, one counter, so that a
 *                learn is one atomic increment per feature
 *   total        the message totals, the same encoding
 *   m:<32 hex>   a learned message (its digest): "s" or "h"
 * These are format 2, where a pair's id begins with its token's bits
 * (bayes_features.c).  Format 1 ("t:", "n", "l:") hashed pairs whole:
 * its counts cannot be read as ours, so they are left alone under their
 * own names, and their totals are looked for once, to say so.
 * A lookup is one store_mget of the totals and every feature (at most
 * UPESI_STORE_BATCH_MAX - 1 features: the rest, a random share since ids
 * are hashes, is not read).  A learn is a store_get of the learned record,
 * one store_mincr of all the changes (a move is +1 in one class and -1 in
 * the other, in the same increment), then the record's store_set or
 * store_del: three round trips, whatever the size of the message; a move
 * or an unlearn reads the counts it lowers first (a fourth: no class
 * below 0, see clamp_decrements).
 * A batch (the command line's learn) is one store_mget of the messages'
 * records, their changes summed by feature and written by store_mincr
 * calls of at most UPESI_STORE_BATCH_MAX sorted keys, one after the
 * other (read first where they lower a count), then the changed
 * records: on a trained LMDB a single learn's
 * thousand increments copy a thousand pages, while a batch's sorted
 * union shares them (5,441 messages: 5.3 - 7 CPU-s in batches of 256
 * messages or 300,000 features, bayes_cli.c, against about 50 one at a
 * time).
 *
 * How it fails: every store error is the callback's status (-ETIMEDOUT,
 * -ECONNREFUSED, -ENOSPC, -EIO); a learn that fails between its mincr and
 * its record leaves the counts learned without the record (learning the
 * message again counts it twice, which a filter forgives; moving or
 * unlearning it again lowers no class below 0); a batch that fails part
 * way likewise, for the messages of the calls done.  A call that
 * cannot start (no store in this process) is -EIO to the caller, whose
 * callback then never runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bayes.h"
#include "bayes_features.h"
#include "bayes_store.h"

#define SPAM_ONE (1LL << 32)
#define KEY_LEN 20               /* "f:" + 16 hex + NUL, rounded          */
#define KEY_TOTALS "total"
#define KEY_FEATURE 'f'
#define KEY_LEARNED "m:"
#define OLD_KEY_TOTALS "n"       /* format 1's totals                     */
/* At most MAX_IDS of a message's features go to the store in one call (the
 * totals are the batch's other key).  A longer message's are a sample
 * chosen as a verdict's are (bayes_features_sample), so that what is
 * learned of a message holds what a verdict of it reads; the sorted ids
 * cut at MAX_IDS would drop whole tokens with all their pairs. */
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

/* keys[0] the totals, keys[1..n] the features; one allocation. */
static const char **make_keys(const uint64_t *ids, size_t n, char **buf)
{
    const char **keys = malloc((n + 1) * sizeof *keys);
    *buf = malloc(n * KEY_LEN + sizeof KEY_TOTALS);
    if (keys == NULL || *buf == NULL) {
        free(keys);
        free(*buf);
        *buf = NULL;
        return NULL;
    }
    char *p = *buf;
    strcpy(p, KEY_TOTALS);
    keys[0] = p;
    p += sizeof KEY_TOTALS;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        /* "f:" and 16 hex digits: by hand, printf was a tenth of a verdict */
        p[0] = KEY_FEATURE;
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
    memcpy(out, KEY_LEARNED, 2);
    for (int i = 0; i < BAYES_DIGEST_LEN; i++)
        snprintf(out + 2 + 2 * i, 3, "%02x", digest[i]);
}

/* ---------------------------------------------------------------------- */
/* no class below 0                                                        */

/* A move or an unlearn takes one from a class.  Spam and ham share one
 * counter (spam * 2^32 + ham), so taking from a class that is at 0 for a
 * feature would borrow from the other (5 spam and 0 ham, moved from ham,
 * reads 4 spam and 4,294,967,295 ham: the strongest ham clue there is) or
 * make the counter negative (read as nothing: its counts lost).  It
 * happens whenever the copy moved is not the copy learned (the same
 * Message-ID, other words: the delivered copy of a message voted on at
 * data_post) or a learn is retried after a failure.  So the keys with a
 * decrement are read first and each class stops at 0.  Another learner
 * between the read and the increment can still take a class below 0; a
 * counter found below 0 is set right the next time it is lowered. */

/* a packed change by = dspam * 2^32 + dham, each part signed (the ham
 * part in -2^31 .. 2^31 - 1), taken apart */
static void delta_split(long long by, long long *dspam, long long *dham)
{
    long long ham = (long long)((unsigned long long)by & 0xffffffffULL);
    if (ham >= SPAM_ONE / 2)
        ham -= SPAM_ONE;
    *dham = ham;
    *dspam = (by - ham) / SPAM_ONE;
}

static int has_decrement(long long by)
{
    long long dspam, dham;
    delta_split(by, &dspam, &dham);
    return dspam < 0 || dham < 0;
}

/* the increment that takes cur by `by`, with neither class below 0 */
static long long clamped(long long cur, long long by)
{
    long long dspam, dham;
    delta_split(by, &dspam, &dham);
    long long spam = (long long)spam_of(cur) + dspam;
    long long ham = (long long)ham_of(cur) + dham;
    return (spam < 0 ? 0 : spam) * SPAM_ONE + (ham < 0 ? 0 : ham) - cur;
}

typedef void (*clamp_fn)(int status, void *arg);

typedef struct clamp_op {
    const char *const *keys;
    long long *by;
    size_t n, at, len;
    clamp_fn fn;
    void *arg;
} clamp_op;

static void clamp_next(clamp_op *c);

static void clamp_read(const upesi_store_result *r, void *arg)
{
    clamp_op *c = arg;
    if (r->status != 0) {
        c->fn(r->status, c->arg);
        free(c);
        return;
    }
    for (size_t i = 0; i < c->len; i++) {
        long long *by = &c->by[c->at + i];
        if (has_decrement(*by))
            *by = clamped(r->values[i].found ? r->values[i].num : 0, *by);
    }
    c->at += c->len;
    clamp_next(c);
}

/* at most UPESI_STORE_BATCH_MAX keys a read, one after the other */
static void clamp_next(clamp_op *c)
{
    if (c->at == c->n) {
        c->fn(0, c->arg);
        free(c);
        return;
    }
    c->len = c->n - c->at;
    if (c->len > UPESI_STORE_BATCH_MAX)
        c->len = UPESI_STORE_BATCH_MAX;
    if (bayes_api->store_mget(bayes_ctx, c->keys + c->at, c->len, clamp_read,
                              c) == NULL) {
        c->fn(-EIO, c->arg);
        free(c);
    }
}

/* by[i], for keys[i], lowered where a class would go below 0; then fn,
 * at once when nothing is lowered.  keys and by stay the caller's. */
static void clamp_decrements(const char *const *keys, long long *by,
                             size_t n, clamp_fn fn, void *arg)
{
    size_t i = 0;
    while (i < n && !has_decrement(by[i]))
        i++;
    if (i == n) {                /* a learn: only increments */
        fn(0, arg);
        return;
    }
    clamp_op *c = calloc(1, sizeof *c);
    if (c == NULL) {
        fn(-ENOMEM, arg);
        return;
    }
    *c = (clamp_op){ .keys = keys, .by = by, .n = n, .fn = fn, .arg = arg };
    clamp_next(c);
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
    bayes_totals t = {0};
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

/* Counts of format 1 in the store: said once a process, at its first
 * lookup, since a verdict without them looks like an untrained filter. */
static void old_format_said(const upesi_store_result *r, void *arg)
{
    (void)arg;
    if (r->status != 0 || !r->values[0].found || r->values[0].num <= 0)
        return;
    bayes_api->log(bayes_ctx, UPESI_LOG_WARNING, "the store holds %u spam "
                   "and %u ham learned by an earlier version of bayes "
                   "(format 1), which this one cannot read: learn them "
                   "again (docs/plugins/bayes.md, \"Upgrading\")",
                   spam_of(r->values[0].num), ham_of(r->values[0].num));
}

static void old_format_check(void)
{
    static int checked;
    if (!checked) {
        checked = 1;
        bayes_api->store_get(bayes_ctx, OLD_KEY_TOTALS, old_format_said,
                             NULL);
    }
}

int bayes_store_lookup(bayes_store *st, const uint64_t *ids, size_t n,
                       bayes_lookup_fn fn, void *arg)
{
    (void)st;
    old_format_check();
    uint64_t *sample = NULL;
    if (n > MAX_IDS) {
        if ((sample = malloc(MAX_IDS * sizeof *sample)) == NULL)
            return -ENOMEM;
        n = bayes_features_sample(ids, n, MAX_IDS, sample);
        ids = sample;
    }
    lookup_op *op = calloc(1, sizeof *op);
    if (op == NULL || (op->keys = make_keys(ids, n, &op->buf)) == NULL) {
        free(sample);
        free(op);
        return -ENOMEM;
    }
    free(sample);
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

static void counts_write(int status, void *arg)
{
    learn_op *op = arg;
    if (status != 0)
        learn_finish(op, status);
    else if (bayes_api->store_mincr(bayes_ctx, op->keys, op->by, op->n + 1,
                                    0, counts_done, op) == NULL)
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
    clamp_decrements(op->keys, op->by, op->n + 1, counts_write, op);
}

int bayes_store_learn(bayes_store *st, const uint64_t *ids, size_t n,
                      const unsigned char *digest, bayes_class cls,
                      int unlearn, bayes_learn_fn fn, void *arg)
{
    (void)st;
    learn_op *op = calloc(1, sizeof *op);
    size_t room = n > MAX_IDS ? MAX_IDS : n ? n : 1;
    if (op == NULL || (op->ids = malloc(room * sizeof *ids)) == NULL) {
        free(op);
        return -ENOMEM;
    }
    op->n = bayes_features_sample(ids, n, MAX_IDS, op->ids);
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
/* learn a batch: the records, the summed counts, the records again        */

#define STATE_NONE (-1)          /* no record: not learned                */

typedef struct batch_op {
    bayes_batch_fn fn;
    void *arg;
    bayes_learn_item *items;
    size_t count;
    bayes_class cls;
    int unlearn;
    char (*lkeys)[40];           /* the records' keys, by item            */
    const char **lkp;
    size_t *prev;                /* the item's earlier copy, or SIZE_MAX  */
    signed char *first, *after;  /* record state before and after items  */
    unsigned char *last;         /* the item is its message's last copy   */
    const char **keys;           /* the totals and the distinct features  */
    char *buf;
    long long *by;
    size_t nkeys, at;            /* keys, and the next to increment      */
    size_t pending;
    int status;
} batch_op;

typedef struct id_delta {
    uint64_t id;
    long long by;
} id_delta;

static void batch_free(batch_op *op)
{
    free(op->lkeys);
    free(op->lkp);
    free(op->prev);
    free(op->first);
    free(op->after);
    free(op->last);
    free(op->keys);
    free(op->buf);
    free(op->by);
    free(op);
}

static void batch_finish(batch_op *op)
{
    op->fn(op->status, op->arg);
    batch_free(op);
}

/* One call of the batch has answered; the next step when all have. */
static void batch_step_done(batch_op *op, int status, void (*next)(batch_op *))
{
    if (status != 0 && op->status == 0)
        op->status = status;
    if (--op->pending > 0)
        return;
    if (op->status != 0 || next == NULL)
        batch_finish(op);
    else
        next(op);
}

static void record_written(const upesi_store_result *r, void *arg)
{
    batch_step_done(arg, r->status, NULL);
}

/* The last copy of each message writes its record, when it changed. */
static void batch_records_write(batch_op *op)
{
    op->pending = 1;             /* held until every call is issued       */
    for (size_t i = 0; i < op->count; i++) {
        if (!op->last[i] || op->after[i] == op->first[i])
            continue;
        upesi_store_op *w;
        op->pending++;
        if (op->after[i] == STATE_NONE)
            w = bayes_api->store_del(bayes_ctx, op->lkeys[i], record_written,
                                     op);
        else
            w = bayes_api->store_set(bayes_ctx, op->lkeys[i],
                                     op->after[i] == BAYES_SPAM ? "s" : "h",
                                     1, 0, record_written, op);
        if (w == NULL) {
            op->pending--;
            op->status = -EIO;
            break;
        }
    }
    batch_step_done(op, 0, NULL);
}

/* The increments go one call after the other, each of at most
 * UPESI_STORE_BATCH_MAX keys: on LMDB each its own short write
 * transaction, so that a long learn never holds the writers' lock (which
 * the workers' store calls wait for) for more than one call's time.  The
 * keys are sorted, so each call covers its own range of the tree and
 * little is lost by not sharing one transaction. */
static void batch_counts_next(batch_op *op);

static void batch_counts_done(const upesi_store_result *r, void *arg)
{
    batch_op *op = arg;
    if (r->status != 0) {
        op->status = r->status;
        batch_finish(op);
    } else if (op->at < op->nkeys) {
        batch_counts_next(op);
    } else {
        op->pending = 1;
        batch_step_done(op, 0, batch_records_write);
    }
}

static void batch_counts_next(batch_op *op)
{
    size_t n = op->nkeys - op->at;
    if (n > UPESI_STORE_BATCH_MAX)
        n = UPESI_STORE_BATCH_MAX;
    size_t at = op->at;
    op->at += n;
    if (bayes_api->store_mincr(bayes_ctx, op->keys + at, op->by + at, n, 0,
                               batch_counts_done, op) == NULL) {
        op->status = -EIO;
        batch_finish(op);
    }
}

static void batch_counts_start(int status, void *arg)
{
    batch_op *op = arg;
    if (status != 0) {
        op->status = status;
        batch_finish(op);
    } else {
        batch_counts_next(op);
    }
}

static int cmp_id_delta(const void *a, const void *b)
{
    uint64_t x = ((const id_delta *)a)->id, y = ((const id_delta *)b)->id;
    return x < y ? -1 : x > y;
}

/* Sum the batch's changes by feature and issue the increments: totals and
 * the features in calls of at most UPESI_STORE_BATCH_MAX keys. */
static void batch_counts_write(batch_op *op, const long long *delta)
{
    size_t total = 0;
    long long sum = 0;
    for (size_t i = 0; i < op->count; i++)
        if (delta[i]) {
            total += op->items[i].n;
            sum += delta[i];
        }
    id_delta *all = malloc((total ? total : 1) * sizeof *all);
    if (all == NULL) {
        op->status = -ENOMEM;
        batch_finish(op);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < op->count; i++)
        for (size_t j = 0; delta[i] && j < op->items[i].n; j++)
            all[k++] = (id_delta){op->items[i].ids[j], delta[i]};
    qsort(all, total, sizeof *all, cmp_id_delta);
    size_t out = 0;
    for (size_t i = 0; i < total; i++) {
        if (out && all[out - 1].id == all[i].id)
            all[out - 1].by += all[i].by;
        else
            all[out++] = all[i];
    }
    uint64_t *ids = malloc((out ? out : 1) * sizeof *ids);
    op->by = malloc((out + 1) * sizeof *op->by);
    if (ids == NULL || op->by == NULL) {
        free(ids);
        free(all);
        op->status = -ENOMEM;
        batch_finish(op);
        return;
    }
    op->by[0] = sum;
    size_t m = 0;
    for (size_t i = 0; i < out; i++) {
        if (all[i].by == 0)
            continue;
        ids[m] = all[i].id;
        op->by[1 + m++] = all[i].by;
    }
    free(all);
    op->nkeys = m + 1;
    op->keys = make_keys(ids, m, &op->buf);
    free(ids);
    if (op->keys == NULL) {
        op->status = -ENOMEM;
        batch_finish(op);
        return;
    }
    if (sum == 0 && m == 0) {    /* nothing to count: only records */
        op->pending = 1;
        batch_step_done(op, 0, batch_records_write);
        return;
    }
    op->at = 0;
    clamp_decrements(op->keys, op->by, op->nkeys, batch_counts_start, op);
}

static int cmp_digest_at(const void *a, const void *b, void *arg)
{
    const bayes_learn_item *items = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = memcmp(items[i].digest, items[j].digest, BAYES_DIGEST_LEN);
    return c ? c : i < j ? -1 : i > j;
}

/* The records are read: each message's result in order, a message's
 * later copies starting from what its earlier ones left. */
static void batch_records_read(const upesi_store_result *r, void *arg)
{
    batch_op *op = arg;
    if (r->status != 0) {
        op->status = r->status;
        batch_finish(op);
        return;
    }
    size_t *order = malloc(op->count * sizeof *order);
    long long *delta = malloc(op->count * sizeof *delta);
    if (order == NULL || delta == NULL) {
        free(order);
        free(delta);
        op->status = -ENOMEM;
        batch_finish(op);
        return;
    }
    for (size_t i = 0; i < op->count; i++) {
        order[i] = i;
        op->prev[i] = SIZE_MAX;
        op->last[i] = 1;
    }
    qsort_r(order, op->count, sizeof *order, cmp_digest_at, op->items);
    for (size_t k = 1; k < op->count; k++)
        if (!memcmp(op->items[order[k]].digest, op->items[order[k - 1]].digest,
                    BAYES_DIGEST_LEN)) {
            op->prev[order[k]] = order[k - 1];
            op->last[order[k - 1]] = 0;
        }
    free(order);
    long long one_cls = op->cls == BAYES_SPAM ? SPAM_ONE : 1;
    for (size_t i = 0; i < op->count; i++) {
        bayes_learn_item *it = &op->items[i];
        signed char was;
        if (op->prev[i] != SIZE_MAX) {
            was = op->after[op->prev[i]];
        } else {
            const upesi_store_value *v = &r->values[i];
            was = !(v->found && v->len == 1) ? STATE_NONE
                  : *(const char *)v->data == 's' ? BAYES_SPAM : BAYES_HAM;
        }
        op->first[i] = op->prev[i] != SIZE_MAX ? op->first[op->prev[i]] : was;
        op->after[i] = was;
        delta[i] = 0;
        if (op->unlearn) {
            if (was != (signed char)op->cls) {
                it->result = BAYES_NOT_LEARNED;
            } else {
                it->result = BAYES_UNLEARNED;
                op->after[i] = STATE_NONE;
                delta[i] = -one_cls;
            }
        } else if (was == (signed char)op->cls) {
            it->result = BAYES_ALREADY;
        } else {
            it->result = was == STATE_NONE ? BAYES_LEARNED : BAYES_MOVED;
            op->after[i] = (signed char)op->cls;
            delta[i] = was == STATE_NONE
                           ? one_cls
                           : one_cls - (was == BAYES_SPAM ? SPAM_ONE : 1);
        }
    }
    batch_counts_write(op, delta);
    free(delta);
}

int bayes_store_learn_batch(bayes_store *st, bayes_learn_item *items,
                            size_t count, bayes_class cls, int unlearn,
                            bayes_batch_fn fn, void *arg)
{
    (void)st;
    if (count == 0 || count > BAYES_BATCH_MAX)
        return -EINVAL;
    batch_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return -ENOMEM;
    op->fn = fn;
    op->arg = arg;
    op->items = items;
    op->count = count;
    op->cls = cls;
    op->unlearn = unlearn;
    op->lkeys = malloc(count * sizeof *op->lkeys);
    op->lkp = malloc(count * sizeof *op->lkp);
    op->prev = malloc(count * sizeof *op->prev);
    op->first = malloc(count);
    op->after = malloc(count);
    op->last = malloc(count);
    if (!op->lkeys || !op->lkp || !op->prev || !op->first || !op->after ||
        !op->last) {
        batch_free(op);
        return -ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        /* as a single learn: the same features */
        items[i].n = bayes_features_sample(items[i].ids, items[i].n, MAX_IDS,
                                           items[i].ids);
        digest_key(op->lkeys[i], items[i].digest);
        op->lkp[i] = op->lkeys[i];
    }
    if (bayes_api->store_mget(bayes_ctx, op->lkp, count, batch_records_read,
                              op) == NULL) {
        batch_free(op);
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
        /* the totals and a record a message learned, of each format */
        long long other = 1 + (long long)(op->t.spam + op->t.ham) +
                          (op->t.old_spam + op->t.old_ham
                               ? 1 + (long long)(op->t.old_spam + op->t.old_ham)
                               : 0);
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
    op->t.old_spam = spam_of(r->values[1].num);
    op->t.old_ham = ham_of(r->values[1].num);
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
    static const char *const keys[] = { KEY_TOTALS, OLD_KEY_TOTALS };
    if (bayes_api->store_mget(bayes_ctx, keys, 2, totals_done, op) == NULL) {
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
