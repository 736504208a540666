/*
 * store.c - the store's front (see store.h): what every backend shares.
 *
 * A call becomes an operation with the plugin's prefix on each key, goes
 * on the waiting list (ordered by deadline: every call gets the same
 * store_timeout, so the list is a FIFO, but for the calls made before a
 * reload that shortened it, which a new call passes; one timer watches
 * its head) and
 * to the backend.  The caller's callback runs once: with the backend's
 * answer, or with -ETIMEDOUT when the deadline passes first, or never
 * after store_cancel.  The operation lives until both the caller has been
 * answered (or cancelled) and the backend is done with it.
 *
 * Statistics: SMTP.Store.Calls (every call started), SMTP.Store.Errors
 * (answers with an error other than -EINVAL, the caller's own mistake;
 * timeouts included), SMTP.Store.Timeouts.  SMTP.Store.Keys is the
 * backend's.
 *
 * Fails: NULL from a call that cannot start (bad key, no store in this
 * process, out of memory); nothing here blocks.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "stats.h"
#include "simulate.h"
#include "store_int.h"

static uv_loop_t *store_loop;
static const up_store_backend *backend;
static up_store_params params;
static uv_timer_t deadline_timer;
static uv_idle_t later_idle;
static upesi_store_op *waiting_head, *waiting_tail;
static upesi_store_op *later_head, *later_tail;
static int stopping;

uint64_t up_store_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

uint64_t up_store_timeout_ms(void)
{
    return params.timeout_ms;
}

static char *slot_of(const upesi_store_op *op, size_t i)
{
    return op->slots ? op->slots + i * UP_STORE_SLOT : NULL;
}

int up_store_value_copy(upesi_store_op *op, size_t i, const void *data,
                        size_t len)
{
    /* a batch read of a thousand counters made a thousand allocations */
    if (op->slots == NULL && len < UP_STORE_SLOT && op->n > 0)
        op->slots = malloc(op->n * UP_STORE_SLOT);
    char *slot = slot_of(op, i);
    char *copy = slot && len < UP_STORE_SLOT ? slot : malloc(len + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, data, len);
    copy[len] = '\0';
    if (op->values[i].data != slot)
        free((void *)op->values[i].data);
    op->values[i].data = copy;
    op->values[i].len = len;
    long long num;
    op->values[i].num = up_store_parse_num(data, len, &num) == 0 ? num : 0;
    return 0;
}

/* -- operations ---------------------------------------------------------- */

static void op_free(upesi_store_op *op)
{
    size_t nv = op->kind == UP_STORE_COUNT ? 1 : op->n;
    for (size_t i = 0; op->values && i < nv; i++)
        if (op->values[i].data != slot_of(op, i))
            free((void *)op->values[i].data);
    free(op->values);
    free(op->slots);
    free(op->keys ? op->keys[0] : NULL);    /* one block for all keys */
    free(op->keys);
    free(op->klens);
    free(op->by);
    free(op->data);
    free(op->prefix);
    free(op);
}

static int key_ok(const char *key)
{
    if (key == NULL)
        return 0;
    size_t len = strlen(key);
    return len >= 1 && len <= UPESI_STORE_KEY_MAX;
}

static upesi_store_op *op_new(up_store_kind kind, const char *plugin,
                              const char *const *keys, size_t n,
                              upesi_store_fn fn, void *arg)
{
    if (backend == NULL || stopping || fn == NULL || plugin == NULL ||
        (kind != UP_STORE_COUNT && (n < 1 || n > UPESI_STORE_BATCH_MAX)))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!key_ok(keys[i]))
            return NULL;
    upesi_store_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return NULL;
    op->kind = kind;
    op->n = n;
    op->fn = fn;
    op->arg = arg;
    size_t nv = kind == UP_STORE_COUNT ? 1 : n;
    size_t plen = strlen(plugin);
    op->values = calloc(nv, sizeof *op->values);
    op->keys = calloc(n ? n : 1, sizeof *op->keys);
    op->klens = calloc(n ? n : 1, sizeof *op->klens);
    op->prefix = malloc(plen + 2);
    if (op->values == NULL || op->keys == NULL || op->klens == NULL ||
        op->prefix == NULL)
        goto fail;
    memcpy(op->prefix, plugin, plen);
    op->prefix[plen] = ':';
    op->prefix[plen + 1] = '\0';
    /* the prefixed keys in one block (a batch may have thousands) */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        op->klens[i] = plen + 1 + strlen(keys[i]);
        total += op->klens[i] + 1;
    }
    char *block = n ? malloc(total) : NULL;
    if (n && block == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        op->keys[i] = block;
        memcpy(block, op->prefix, plen + 1);
        memcpy(block + plen + 1, keys[i], op->klens[i] - plen - 1 + 1);
        block += op->klens[i] + 1;
    }
    return op;
fail:
    op_free(op);
    return NULL;
}

static void waiting_unlink(upesi_store_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else if (waiting_head == op)
        waiting_head = op->next;
    else
        return;                 /* not on the list */
    if (op->next)
        op->next->prev = op->prev;
    else
        waiting_tail = op->prev;
    op->prev = op->next = NULL;
}

static void deadline_passed(uv_timer_t *t);

static void deadline_arm(void)
{
    if (waiting_head == NULL) {
        uv_timer_stop(&deadline_timer);
        return;
    }
    uint64_t now = uv_now(store_loop);
    uint64_t d = waiting_head->deadline;
    uv_timer_start(&deadline_timer, deadline_passed,
                   d > now ? d - now : 0, 0);
}

static void answer(upesi_store_op *op, int status)
{
    op->answered = 1;
    if (status == -ETIMEDOUT)
        up_stats_add("SMTP.Store.Timeouts", 1);
    if (status != 0 && status != -EINVAL)
        up_stats_add("SMTP.Store.Errors", 1);
    upesi_store_result r = {
        .status = status,
        .count = op->kind == UP_STORE_COUNT ? 1
                 : op->kind == UP_STORE_SET ? 0 : op->n,
        .values = op->values,
    };
    /* -bh without --write: an incr was sent as a read; answer what the
     * incr would have answered */
    for (size_t i = 0; op->sim_incr && status == 0 && i < op->n; i++) {
        op->values[i].num = (op->values[i].found ? op->values[i].num : 0) +
                            op->by[i];
        op->values[i].found = 1;
    }
    op->fn(&r, op->arg);
}

static void deadline_passed(uv_timer_t *t)
{
    (void)t;
    uint64_t now = uv_now(store_loop);
    while (waiting_head && waiting_head->deadline <= now) {
        upesi_store_op *op = waiting_head;
        waiting_unlink(op);
        answer(op, -ETIMEDOUT);     /* the backend still holds op */
    }
    deadline_arm();
}

static upesi_store_op *submit(upesi_store_op *op)
{
    up_stats_add("SMTP.Store.Calls", 1);
    op->deadline = uv_now(store_loop) + params.timeout_ms;
    /* after the last call whose deadline is not later: the tail, unless
     * a reload shortened store_timeout since older calls were made */
    upesi_store_op *after = waiting_tail;
    while (after && after->deadline > op->deadline)
        after = after->prev;
    op->prev = after;
    op->next = after ? after->next : waiting_head;
    if (op->next)
        op->next->prev = op;
    else
        waiting_tail = op;
    if (after)
        after->next = op;
    else
        waiting_head = op;
    if (waiting_head == op)
        deadline_arm();
    op->with_backend = 1;
    if (!up_simulate_store_writes()) {
        /* -bh without --write: reads are real, writes are not made.  An
         * incr reads and answers the sum it would have stored; set, del
         * and expire answer success, later, as the backend would */
        if (op->kind == UP_STORE_MINCR) {
            op->kind = UP_STORE_MGET;
            op->sim_incr = 1;
        } else if (op->kind == UP_STORE_SET || op->kind == UP_STORE_DEL ||
                   op->kind == UP_STORE_EXPIRE) {
            up_store_done_later(op, 0);
            return op;
        }
    }
    backend->submit(op);
    return op;
}

void up_store_done(upesi_store_op *op, int status)
{
    op->with_backend = 0;
    op->status = status;
    if (!op->answered && !op->cancelled) {
        int was_head = waiting_head == op;
        waiting_unlink(op);
        if (was_head)
            deadline_arm();
        answer(op, status);
    }
    op_free(op);
}

static void later_run(uv_idle_t *idle)
{
    upesi_store_op *list = later_head;
    later_head = later_tail = NULL;
    uv_idle_stop(idle);
    while (list) {
        upesi_store_op *op = list;
        list = op->qnext;
        op->qnext = NULL;
        up_store_done(op, op->status);
    }
}

void up_store_done_later(upesi_store_op *op, int status)
{
    op->status = status;
    op->qnext = NULL;
    if (later_tail)
        later_tail->qnext = op;
    else
        later_head = op;
    later_tail = op;
    uv_idle_start(&later_idle, later_run);
}

void up_store_cancel(upesi_store_op *op)
{
    if (op == NULL || op->answered || op->cancelled)
        return;
    op->cancelled = 1;
    int was_head = waiting_head == op;
    waiting_unlink(op);
    if (was_head)
        deadline_arm();
}

/* -- the calls ------------------------------------------------------------ */

upesi_store_op *up_store_get(const char *plugin, const char *key,
                             upesi_store_fn fn, void *arg)
{
    upesi_store_op *op = op_new(UP_STORE_GET, plugin, &key, 1, fn, arg);
    return op ? submit(op) : NULL;
}

upesi_store_op *up_store_mget(const char *plugin, const char *const *keys,
                              size_t n, upesi_store_fn fn, void *arg)
{
    if (keys == NULL)
        return NULL;
    upesi_store_op *op = op_new(UP_STORE_MGET, plugin, keys, n, fn, arg);
    return op ? submit(op) : NULL;
}

/* A ttl Redis can add to now (it refuses an expiry past 2^63 ms, after
 * the write it goes with); a hundred years is plenty. */
#define UP_STORE_TTL_MAX (100LL * 366 * 24 * 3600 * 1000)

static int ttl_ok(long long ttl_ms)
{
    return ttl_ms >= 0 && ttl_ms <= UP_STORE_TTL_MAX;
}

upesi_store_op *up_store_set(const char *plugin, const char *key,
                             const void *data, size_t len, long long ttl_ms,
                             upesi_store_fn fn, void *arg)
{
    if ((data == NULL && len) || len > UPESI_STORE_VALUE_MAX || !ttl_ok(ttl_ms))
        return NULL;
    upesi_store_op *op = op_new(UP_STORE_SET, plugin, &key, 1, fn, arg);
    if (op == NULL)
        return NULL;
    op->data = malloc(len + 1);
    if (op->data == NULL) {
        op_free(op);
        return NULL;
    }
    if (len)
        memcpy(op->data, data, len);
    op->data[len] = '\0';
    op->len = len;
    op->ttl_ms = ttl_ms;
    return submit(op);
}

upesi_store_op *up_store_del(const char *plugin, const char *key,
                             upesi_store_fn fn, void *arg)
{
    upesi_store_op *op = op_new(UP_STORE_DEL, plugin, &key, 1, fn, arg);
    return op ? submit(op) : NULL;
}

upesi_store_op *up_store_mincr(const char *plugin, const char *const *keys,
                               const long long *by, size_t n,
                               long long ttl_ms, upesi_store_fn fn,
                               void *arg)
{
    if (keys == NULL || by == NULL || !ttl_ok(ttl_ms))
        return NULL;
    upesi_store_op *op = op_new(UP_STORE_MINCR, plugin, keys, n, fn, arg);
    if (op == NULL)
        return NULL;
    op->by = malloc(n * sizeof *op->by);
    if (op->by == NULL) {
        op_free(op);
        return NULL;
    }
    memcpy(op->by, by, n * sizeof *op->by);
    op->ttl_ms = ttl_ms;
    return submit(op);
}

upesi_store_op *up_store_incr(const char *plugin, const char *key,
                              long long by, long long ttl_ms,
                              upesi_store_fn fn, void *arg)
{
    upesi_store_op *op = up_store_mincr(plugin, &key, &by, 1, ttl_ms, fn,
                                        arg);
    return op;
}

upesi_store_op *up_store_expire(const char *plugin, const char *key,
                                long long ttl_ms, upesi_store_fn fn,
                                void *arg)
{
    if (!ttl_ok(ttl_ms))
        return NULL;
    upesi_store_op *op = op_new(UP_STORE_EXPIRE, plugin, &key, 1, fn, arg);
    if (op == NULL)
        return NULL;
    op->ttl_ms = ttl_ms;
    return submit(op);
}

upesi_store_op *up_store_ttl(const char *plugin, const char *key,
                             upesi_store_fn fn, void *arg)
{
    upesi_store_op *op = op_new(UP_STORE_TTL, plugin, &key, 1, fn, arg);
    return op ? submit(op) : NULL;
}

upesi_store_op *up_store_count(const char *plugin, upesi_store_fn fn,
                               void *arg)
{
    upesi_store_op *op = op_new(UP_STORE_COUNT, plugin, NULL, 0, fn, arg);
    return op ? submit(op) : NULL;
}

/* -- life cycle ----------------------------------------------------------- */

void up_store_worker_start(uv_loop_t *loop, const up_store_params *p)
{
    store_loop = loop;
    params = *p;
    stopping = 0;
    static int handles_ready;       /* once: the handles are never closed */
    if (!handles_ready) {
        uv_timer_init(loop, &deadline_timer);
        uv_idle_init(loop, &later_idle);
        uv_unref((uv_handle_t *)&deadline_timer);
        uv_unref((uv_handle_t *)&later_idle);
        handles_ready = 1;
    }
    backend = p->url.kind == UP_STORE_REDIS ? &up_store_redis
                                            : &up_store_lmdb;
    backend->start(loop, &params);
}

void up_store_reload(const up_store_params *p)
{
    if (backend == NULL)
        return;
    if (memcmp(&p->url, &params.url, sizeof p->url) ||
        p->size != params.size) {
        char now[512], want[512];
        up_store_url_text(&params.url, now, sizeof now);
        up_store_url_text(&p->url, want, sizeof want);
        up_log(NULL, UPESI_LOG_WARNING, "store: a change of store or "
               "store_size needs a restart; still using %s", now);
        (void)want;
    }
    params.timeout_ms = p->timeout_ms;
}

void up_store_worker_stop(void)
{
    if (backend == NULL)
        return;
    stopping = 1;
    backend->stop();
    /* what the backend gave back waits in later_head: answer it now */
    later_run(&later_idle);
    while (waiting_head) {
        upesi_store_op *op = waiting_head;
        waiting_unlink(op);
        answer(op, -ECONNREFUSED);
    }
    uv_timer_stop(&deadline_timer);
    backend = NULL;
}
