/*
 * store_lmdb.c - the store's default backend: LMDB, one environment per
 * host in <spool_dir>/store/ (smtp.ini store = lmdb:PATH), shared by every
 * worker process through LMDB's own memory map and locks.
 *
 * Each worker opens the environment after the fork (LMDB forbids carrying
 * one across fork).  Calls queue up while the loop runs and are done
 * together after the loop's poll (its check phase): one transaction for the whole batch,
 * read-only when nothing in it writes.  A call that fails on its own
 * (incr of a text) is checked before it writes and leaves no trace; when
 * LMDB itself fails inside the batch (a full map), the transaction is
 * aborted and each call runs in one of its own, so only the calls that
 * fail alone fail.  (No nested transactions: each costs LMDB a 2 MB
 * page list.)  LMDB serializes writers
 * of all processes with a robust mutex: a worker killed while it writes
 * leaves neither a held lock nor a half-written transaction (the next
 * writer recovers the mutex, the old transaction was never committed).
 *
 * A value is stored as 8 bytes of expiry (milliseconds since the epoch,
 * 0 = never) and the bytes.  Expired keys are absent to every read and
 * every write; worker 0 sweeps them out, a slice of the key space each
 * second, clears reader slots of dead processes (mdb_reader_check) and
 * sets SMTP.Store.Keys.
 *
 * Durability (docs/store.md): MDB_NOSYNC, with the file synced once a
 * second on a pool thread when something was written.  A crash of any
 * upesi process loses nothing committed (the data is in the kernel's page
 * cache); a crash of the machine may lose the last second of writes.
 *
 * Fails: an environment that cannot open is logged (ERR) and every call
 * answers -EIO; a full map (store_size) answers -ENOSPC and logs one ERR
 * line a minute naming store_size; other LMDB errors answer -EIO, logged
 * once a minute.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "durable.h"
#include "log.h"
#include "stats.h"
#include "store_int.h"

#define LMDB_SWEEP_MS 1000
#define LMDB_SWEEP_SLICE 2000       /* entries looked at per sweep */
#define LMDB_SYNC_MS 1000
#define LMDB_HEAD 8                 /* the expiry in front of a value */

static MDB_env *env;
static MDB_dbi dbi;
static int max_key;
static up_store_params lp;
static uv_check_t run_check;        /* runs the batch after the poll   */
static uv_idle_t run_idle;          /* keeps that poll from blocking    */
static uv_timer_t sweep_timer, sync_timer;
static upesi_store_op *queue_head, *queue_tail;
static int dirty, sync_busy;
static char sweep_from[512];
static size_t sweep_from_len;
static uint64_t full_logged, error_logged;
/* an LMDB call failed inside the batch's transaction: it must be aborted
 * (writes may be half done) and the calls redone one by one */
static int txn_spoiled;

static int lmdb_error(int rc, const char *what)
{
    txn_spoiled = 1;
    uint64_t now = up_store_now_ms();
    if (rc == MDB_MAP_FULL) {
        if (now - full_logged >= 60000 || full_logged == 0) {
            full_logged = now;
            up_log(NULL, UPESI_LOG_ERR, "store: %s is full (store_size = "
                   "%llu bytes): writes fail until expired keys are swept; "
                   "raise store_size in smtp.ini and restart", lp.url.path,
                   (unsigned long long)lp.size);
        }
        return -ENOSPC;
    }
    if (now - error_logged >= 60000 || error_logged == 0) {
        error_logged = now;
        up_log(NULL, UPESI_LOG_ERR, "store: %s: %s: %s", lp.url.path, what,
               mdb_strerror(rc));
    }
    return -EIO;
}

static uint64_t head_get(const MDB_val *v)
{
    uint64_t e;
    memcpy(&e, v->mv_data, sizeof e);
    return e;
}

/* the live value of key, or MDB_NOTFOUND (absent or expired) */
static int live_get(MDB_txn *txn, const char *key, size_t klen, MDB_val *v,
                    uint64_t now)
{
    MDB_val k = { klen, (void *)key };
    int rc = mdb_get(txn, dbi, &k, v);
    if (rc != 0)
        return rc;
    if (v->mv_size < LMDB_HEAD)
        return MDB_NOTFOUND;        /* not ours: treat as absent */
    uint64_t e = head_get(v);
    return e && e <= now ? MDB_NOTFOUND : 0;
}

static int put(MDB_txn *txn, const char *key, size_t klen, uint64_t expires,
               const void *data, size_t len)
{
    MDB_val k = { klen, (void *)key }, v = { LMDB_HEAD + len, NULL };
    int rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return rc;
    memcpy(v.mv_data, &expires, LMDB_HEAD);
    if (len)
        memcpy((char *)v.mv_data + LMDB_HEAD, data, len);
    return 0;
}

/* Sort order of a batch's keys: by key, then by position, so that the
 * occurrences of one key are adjacent and in call order. */
static int key_cmp(const upesi_store_op *op, size_t i, size_t j)
{
    size_t li = op->klens[i], lj = op->klens[j];
    int c = memcmp(op->keys[i], op->keys[j], li < lj ? li : lj);
    if (c == 0 && li != lj)
        c = li < lj ? -1 : 1;
    return c;
}

static int key_order(const void *a, const void *b, void *arg)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = key_cmp(arg, i, j);
    if (c == 0)
        c = i < j ? -1 : 1;
    return c;
}

/* prev[i]: the position of key i's previous occurrence in the batch, or
 * SIZE_MAX; last[i]: no later occurrence.  One sort of positions, so a
 * batch of n keys costs O(n log n) (comparing every pair was 17 ms of
 * CPU for 1,000 keys).  0 or -ENOMEM. */
static int find_duplicates(const upesi_store_op *op, size_t *prev,
                           unsigned char *last)
{
    size_t n = op->n;
    for (size_t i = 0; i < n; i++) {
        prev[i] = SIZE_MAX;
        last[i] = 1;
    }
    if (n < 2)
        return 0;
    /* keys given in strictly increasing order (the bayes plugin's are)
     * hold no duplicate: one pass instead of the sort */
    size_t up = 1;
    while (up < n && key_cmp(op, up - 1, up) < 0)
        up++;
    if (up == n)
        return 0;
    size_t *order = malloc(n * sizeof *order);
    if (order == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof *order, key_order, (void *)op);
    for (size_t k = 1; k < n; k++) {
        size_t a = order[k - 1], b = order[k];
        if (op->klens[a] == op->klens[b] &&
            !memcmp(op->keys[a], op->keys[b], op->klens[a])) {
            prev[b] = a;
            last[a] = 0;
        }
    }
    free(order);
    return 0;
}

/* All keys read and checked first, then all written: a value that is no
 * whole number (or would overflow) fails the call before anything
 * changed, without spoiling the batch's transaction.  A key twice in one
 * batch adds to its earlier sum and is written once. */
static int do_incr(MDB_txn *txn, upesi_store_op *op, uint64_t now)
{
    uint64_t *expires = malloc(op->n * sizeof *expires);
    size_t *prev = malloc(op->n * sizeof *prev);
    unsigned char *last = malloc(op->n);
    int st = expires && prev && last ? find_duplicates(op, prev, last)
                                     : -ENOMEM;
    for (size_t i = 0; i < op->n && st == 0; i++) {
        MDB_val v;
        long long cur = 0;
        if (prev[i] != SIZE_MAX) {
            /* a key twice in one batch: the earlier sum is the base */
            cur = op->values[prev[i]].num;
            expires[i] = expires[prev[i]];
        } else {
            expires[i] = op->ttl_ms ? now + (uint64_t)op->ttl_ms : 0;
            int rc = live_get(txn, op->keys[i], op->klens[i], &v, now);
            if (rc == 0) {
                /* a key with an expiry keeps it (a fixed window); one
                 * without takes ttl_ms, as Redis's PEXPIRE NX does */
                if (head_get(&v) || !op->ttl_ms)
                    expires[i] = head_get(&v);
                if (up_store_parse_num((char *)v.mv_data + LMDB_HEAD,
                                       v.mv_size - LMDB_HEAD, &cur) != 0)
                    st = -EINVAL;
            } else if (rc != MDB_NOTFOUND) {
                st = lmdb_error(rc, "read");
            }
        }
        if (st == 0 && __builtin_add_overflow(cur, op->by[i],
                                              &op->values[i].num))
            st = -EINVAL;
    }
    for (size_t i = 0; i < op->n && st == 0; i++) {
        op->values[i].found = 1;
        if (!last[i])
            continue;
        char text[24];
        int n = snprintf(text, sizeof text, "%lld", op->values[i].num);
        int rc = put(txn, op->keys[i], op->klens[i], expires[i], text,
                     (size_t)n);
        if (rc != 0)
            st = lmdb_error(rc, "write");
    }
    free(expires);
    free(prev);
    free(last);
    return st;
}

static int do_count(MDB_txn *txn, upesi_store_op *op, uint64_t now)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc != 0)
        return lmdb_error(rc, "cursor");
    size_t plen = strlen(op->prefix);
    MDB_val k = { plen, op->prefix }, v;
    long long n = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, op->prefix, plen))
            break;
        if (v.mv_size >= LMDB_HEAD &&
            (head_get(&v) == 0 || head_get(&v) > now))
            n++;
    }
    mdb_cursor_close(c);
    op->values[0].found = 1;
    op->values[0].num = n;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_error(rc, "cursor");
}

/* A batch read through one cursor: LMDB's MDB_SET on a positioned
 * cursor searches the current leaf page first, so keys given in order
 * (the bayes plugin's are sorted) skip the descent from the root that
 * mdb_get makes for every key. */
static int do_mget(MDB_txn *txn, upesi_store_op *op, uint64_t now)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc != 0)
        return lmdb_error(rc, "cursor");
    int st = 0;
    for (size_t i = 0; i < op->n && st == 0; i++) {
        MDB_val k = { op->klens[i], op->keys[i] }, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0) {
            st = lmdb_error(rc, "read");
            break;
        }
        if (v.mv_size < LMDB_HEAD)
            continue;               /* not ours: treat as absent */
        uint64_t e = head_get(&v);
        if (e && e <= now)
            continue;               /* expired */
        op->values[i].found = 1;
        if (up_store_value_copy(op, i, (char *)v.mv_data + LMDB_HEAD,
                                v.mv_size - LMDB_HEAD) != 0)
            st = -ENOMEM;
    }
    mdb_cursor_close(c);
    return st;
}

/* one call inside txn: 0 or -errno */
static int do_op(MDB_txn *txn, upesi_store_op *op, uint64_t now)
{
    for (size_t i = 0; i < op->n; i++)
        if (op->klens[i] > (size_t)max_key)
            return -EINVAL;
    MDB_val v;
    int rc;
    switch (op->kind) {
    case UP_STORE_GET:
    case UP_STORE_MGET:
        return do_mget(txn, op, now);
    case UP_STORE_TTL:
        rc = live_get(txn, op->keys[0], op->klens[0], &v, now);
        if (rc == MDB_NOTFOUND)
            return 0;
        if (rc != 0)
            return lmdb_error(rc, "read");
        op->values[0].found = 1;
        op->values[0].num = head_get(&v) ? (long long)(head_get(&v) - now)
                                         : -1;
        return 0;
    case UP_STORE_COUNT:
        return do_count(txn, op, now);
    case UP_STORE_SET:
        rc = put(txn, op->keys[0], op->klens[0],
                 op->ttl_ms ? now + (uint64_t)op->ttl_ms : 0, op->data,
                 op->len);
        return rc ? lmdb_error(rc, "write") : 0;
    case UP_STORE_DEL:
    case UP_STORE_EXPIRE:
        rc = live_get(txn, op->keys[0], op->klens[0], &v, now);
        if (rc == MDB_NOTFOUND)
            return 0;
        if (rc != 0)
            return lmdb_error(rc, "read");
        op->values[0].found = 1;
        if (op->kind == UP_STORE_DEL) {
            MDB_val k = { op->klens[0], op->keys[0] };
            rc = mdb_del(txn, dbi, &k, NULL);
        } else {
            /* v points into the map, which put may move: copy first */
            size_t len = v.mv_size - LMDB_HEAD;
            char *copy = malloc(len + 1);
            if (copy == NULL)
                return -ENOMEM;
            memcpy(copy, (char *)v.mv_data + LMDB_HEAD, len);
            rc = put(txn, op->keys[0], op->klens[0],
                     op->ttl_ms ? now + (uint64_t)op->ttl_ms : 0, copy, len);
            free(copy);
        }
        return rc ? lmdb_error(rc, "write") : 0;
    case UP_STORE_INCR:
    case UP_STORE_MINCR:
        return do_incr(txn, op, now);
    }
    return -EINVAL;
}

static int writes(const upesi_store_op *op)
{
    return op->kind == UP_STORE_SET || op->kind == UP_STORE_DEL ||
           op->kind == UP_STORE_INCR || op->kind == UP_STORE_MINCR ||
           op->kind == UP_STORE_EXPIRE;
}

static void batch_fail(upesi_store_op *list, int status)
{
    for (upesi_store_op *op = list; op; op = op->qnext)
        op->status = status;
}

static void op_clear(upesi_store_op *op)
{
    size_t nv = op->kind == UP_STORE_COUNT ? 1 : op->n;
    for (size_t i = 0; i < nv; i++) {
        op->values[i].found = 0;
        op->values[i].num = 0;
    }
}

/* One call in a transaction of its own (after the batch's failed). */
static void run_alone(upesi_store_op *op, uint64_t now)
{
    MDB_txn *txn;
    op_clear(op);
    int rc = mdb_txn_begin(env, NULL, writes(op) ? 0 : MDB_RDONLY, &txn);
    if (rc != 0) {
        op->status = lmdb_error(rc, "begin");
        return;
    }
    op->status = do_op(txn, op, now);
    if (op->status == 0 && writes(op)) {
        if ((rc = mdb_txn_commit(txn)) != 0)
            op->status = lmdb_error(rc, "commit");
        else
            dirty = 1;
    } else {
        mdb_txn_abort(txn);
    }
}

/* Every call queued since the last turn, in one transaction (read-only
 * when none writes).  A call that fails before it writes (incr of text)
 * leaves the transaction usable; an LMDB error inside it (a full map)
 * spoils it: then it is aborted and every call runs alone, so only the
 * calls that fail on their own fail. */
static void run_batch(uv_check_t *check)
{
    uv_check_stop(check);
    uv_idle_stop(&run_idle);
    upesi_store_op *list = queue_head;
    queue_head = queue_tail = NULL;
    int any_write = 0;
    for (upesi_store_op *op = list; op; op = op->qnext)
        any_write |= writes(op);
    uint64_t now = up_store_now_ms();
    MDB_txn *txn = NULL;
    int rc;
    if (env == NULL) {
        batch_fail(list, -EIO);
    } else if ((rc = mdb_txn_begin(env, NULL, any_write ? 0 : MDB_RDONLY,
                                   &txn)) != 0) {
        batch_fail(list, lmdb_error(rc, "begin"));
    } else {
        txn_spoiled = 0;
        for (upesi_store_op *op = list; op && !txn_spoiled; op = op->qnext)
            op->status = do_op(txn, op, now);
        if (!txn_spoiled && any_write) {
            if ((rc = mdb_txn_commit(txn)) != 0)
                lmdb_error(rc, "commit");
            else
                dirty = 1;
        } else {
            mdb_txn_abort(txn);
        }
        if (txn_spoiled)
            for (upesi_store_op *op = list; op; op = op->qnext)
                run_alone(op, now);
    }
    while (list) {
        upesi_store_op *op = list;
        list = op->qnext;
        op->qnext = NULL;
        up_store_done(op, op->status);
    }
}

static void idle_nothing(uv_idle_t *idle)
{
    (void)idle;
}

static void lmdb_submit(upesi_store_op *op)
{
    op->qnext = NULL;
    if (queue_tail)
        queue_tail->qnext = op;
    else
        queue_head = op;
    queue_tail = op;
    /* the batch runs in this loop turn's check phase, right after the
     * poll whose callbacks made most calls; the idle handle makes the
     * poll return at once when a call came from a timer instead */
    uv_check_start(&run_check, run_batch);
    uv_idle_start(&run_idle, idle_nothing);
}

/* -- background: expiry sweep, stale readers, the Keys counter, sync ---- */

static void sweep(uv_timer_t *t)
{
    (void)t;
    if (env == NULL)
        return;
    int dead = 0;
    mdb_reader_check(env, &dead);
    if (dead)
        up_log(NULL, UPESI_LOG_NOTICE, "store: cleared %d reader slots of "
               "processes that died", dead);
    MDB_txn *txn;
    if (mdb_txn_begin(env, NULL, 0, &txn) != 0)
        return;
    MDB_cursor *c;
    if (mdb_cursor_open(txn, dbi, &c) != 0) {
        mdb_txn_abort(txn);
        return;
    }
    uint64_t now = up_store_now_ms();
    MDB_val k = { sweep_from_len, sweep_from }, v;
    int rc = mdb_cursor_get(c, &k, &v, sweep_from_len ? MDB_SET_RANGE
                                                      : MDB_FIRST);
    int removed = 0;
    for (int seen = 0; rc == 0 && seen < LMDB_SWEEP_SLICE; seen++) {
        if (v.mv_size >= LMDB_HEAD && head_get(&v) && head_get(&v) <= now) {
            if (mdb_cursor_del(c, 0) != 0)
                break;
            removed++;
            /* after a delete, MDB_NEXT gives the entry that followed */
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && k.mv_size <= sizeof sweep_from) {
        memcpy(sweep_from, k.mv_data, k.mv_size);
        sweep_from_len = k.mv_size;
    } else {
        sweep_from_len = 0;     /* the end: start over next time */
    }
    mdb_cursor_close(c);
    MDB_stat st;
    if (mdb_stat(txn, dbi, &st) == 0)
        up_stats_set("SMTP.Store.Keys", (long long)st.ms_entries);
    if (removed) {
        if (mdb_txn_commit(txn) == 0)
            dirty = 1;
    } else {
        mdb_txn_abort(txn);
    }
}

static void sync_work(uv_work_t *req)
{
    (void)req;
    mdb_env_sync(env, 1);
}

static void sync_after(uv_work_t *req, int status)
{
    (void)status;
    free(req);
    sync_busy = 0;
}

static void sync_tick(uv_timer_t *t)
{
    if (!dirty || sync_busy || env == NULL)
        return;
    uv_work_t *req = malloc(sizeof *req);
    if (req == NULL)
        return;
    dirty = 0;
    sync_busy = 1;
    if (uv_queue_work(t->loop, req, sync_work, sync_after) != 0) {
        free(req);
        sync_busy = 0;
        dirty = 1;
    }
}

static int lmdb_start(uv_loop_t *loop, const up_store_params *p)
{
    lp = *p;
    uv_idle_init(loop, &run_idle);
    uv_unref((uv_handle_t *)&run_idle);
    uv_check_init(loop, &run_check);
    uv_unref((uv_handle_t *)&run_check);
    uv_timer_init(loop, &sync_timer);
    uv_unref((uv_handle_t *)&sync_timer);
    uv_timer_start(&sync_timer, sync_tick, LMDB_SYNC_MS, LMDB_SYNC_MS);
    int rc = up_durable_dir_make(lp.url.path);
    if (rc != 0) {
        up_log(NULL, UPESI_LOG_ERR, "store: cannot create %s: %s; store "
               "calls will fail", lp.url.path, strerror(-rc));
        return -1;
    }
    const char *step = "mdb_env_create";
    MDB_txn *txn;
    if ((rc = mdb_env_create(&env)) != 0)
        goto fail;
    step = "store_size";
    if ((rc = mdb_env_set_mapsize(env, (size_t)lp.size)) != 0)
        goto fail;
    step = "mdb_env_set_maxreaders";
    if ((rc = mdb_env_set_maxreaders(env, 1024)) != 0)
        goto fail;
    step = "open";
    if ((rc = mdb_env_open(env, lp.url.path, MDB_NOSYNC | MDB_NOTLS, 0600)))
        goto fail;
    step = "open the database";
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
        goto fail;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0 ||
        (rc = mdb_txn_commit(txn)) != 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    max_key = mdb_env_get_maxkeysize(env);
    int dead = 0;
    mdb_reader_check(env, &dead);
    if (p->worker_index == 0) {
        uv_timer_init(loop, &sweep_timer);
        uv_unref((uv_handle_t *)&sweep_timer);
        uv_timer_start(&sweep_timer, sweep, 10, LMDB_SWEEP_MS);
    }
    up_log(NULL, UPESI_LOG_INFO, "store: lmdb:%s open (store_size %llu "
           "bytes)", lp.url.path, (unsigned long long)lp.size);
    return 0;
fail:
    up_log(NULL, UPESI_LOG_ERR, "store: lmdb:%s: %s: %s; store calls will "
           "fail", lp.url.path, step, mdb_strerror(rc));
    if (env)
        mdb_env_close(env);
    env = NULL;
    return -1;
}

static void lmdb_stop(void)
{
    if (queue_head)
        run_batch(&run_check);
    uv_timer_stop(&sync_timer);
    if (lp.worker_index == 0 && env)
        uv_timer_stop(&sweep_timer);
    if (env && !sync_busy) {
        if (dirty)
            mdb_env_sync(env, 1);
        mdb_env_close(env);
        env = NULL;
    }
}

const up_store_backend up_store_lmdb = {
    .name = "lmdb",
    .start = lmdb_start,
    .submit = lmdb_submit,
    .stop = lmdb_stop,
};
