/*
 * store_redis.c - the store's fleet backend: Redis through hiredis's
 * asynchronous API on the worker's libuv loop, one
 * connection per worker, so that every host of a fleet shares counters,
 * greylisting and tokens (smtp.ini store = redis://HOST:PORT/DB or
 * redis+unix:///PATH; docs/store.md).
 *
 * The connection is watched through store_redis_uv.c: the commands of one
 * loop iteration go out in one write.  Each call is one Redis command,
 * pipelined on the connection with every
 * other call in flight: GET, MGET (a batch is one command), SET ... PX,
 * DEL, PTTL, PEXPIRE, INCRBY; an increment with a ttl for new keys is
 * INCRBY then PEXPIRE NX (see incr_one); a batch of increments and an expire that
 * removes the ttl are small Lua scripts, so each stays atomic: all
 * keys checked before any is changed, the ttl set only on a key that has
 * none.  A script is called by its SHA-1 (EVALSHA); a server that does not
 * know it (a restart, SCRIPT FLUSH, a failover) answers NOSCRIPT, and that
 * call is sent again with the script's text (EVAL, which also teaches the
 * server the script for the next EVALSHA).  (One counter with a ttl stays
 * INCRBY and PEXPIRE NX: a script costs Redis 4 us a call where the pair
 * costs 0.7, bench/README.md.)
 *
 * Connection: AUTH and SELECT go first on every new connection.  A lost
 * or refused connection is retried after 100 ms, doubling up to
 * REDIS_BACKOFF_MAX_MS; meanwhile calls fail at once with -ECONNREFUSED
 * (never queued while down).  A connect that does not finish within
 * store_timeout is abandoned and retried the same way.  The front's
 * deadline bounds every call, so a stalled server delays a call by at
 * most store_timeout.
 *
 * Fails: the first failure of a connection is logged as a WARNING, the
 * reconnection as a NOTICE (not one line per retry); an error reply is
 * -EINVAL ("not an integer"), -ENOSPC (Redis's maxmemory: OOM) or -EIO,
 * the last logged at most once a minute.
 */
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "log.h"
#include "stats.h"
#include "store_int.h"
#include "store_redis_uv.h"

#define REDIS_BACKOFF_FIRST_MS 100
#define REDIS_BACKOFF_MAX_MS 2000
#define REDIS_KEYS_MS 10000

/* KEYS: the counters; ARGV[1]: ttl in ms for keys without one (0: none),
 * ARGV[i+1]: the increment of KEYS[i].  All or nothing: Redis does not
 * undo a script's writes, so every value INCRBY would refuse is refused
 * before the first write: one that is not an integer as Redis writes it
 * ("007", "-0" and 20 digits are not), and a sum past a 64-bit integer.
 * Lua's numbers are doubles, exact below 2^53: a sum is checked in them
 * only when a value or an increment has 16 digits or more, and one
 * within 2,048 of the limit is refused (LMDB takes it). */
static const char incr_script[] =
    "local ttl = tonumber(ARGV[1])\n"
    "local sums = {}\n"
    "for i = 1, #KEYS do\n"
    "  local v = sums[KEYS[i]] or redis.call('GET', KEYS[i]) or '0'\n"
    "  if v ~= '0' and not (string.match(v, '^%-?[1-9]%d*$') and\n"
    "                       #v <= 20) then\n"
    "    return redis.error_reply('ERR value is not an integer')\n"
    "  end\n"
    "  local by = ARGV[i + 1]\n"
    "  local s = tonumber(v) + tonumber(by)\n"
    "  if (#v >= 16 or #by >= 16) and\n"
    "     (s >= 9223372036854773760 or s <= -9223372036854773760) then\n"
    "    return redis.error_reply('ERR increment or decrement would "
    "overflow')\n"
    "  end\n"
    "  sums[KEYS[i]] = string.format('%.0f', s)\n"
    "end\n"
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  out[i] = redis.call('INCRBY', KEYS[i], ARGV[i + 1])\n"
    "  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl, 'NX') end\n"
    "end\n"
    "return out\n";

static const char persist_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "return 1\n";

/* a script and its SHA-1 in hex (redis_start computes it) */
typedef struct redis_script {
    const char *text;
    size_t len;
    char sha[41];
} redis_script;

static redis_script incr_lua = { incr_script, sizeof incr_script - 1, "" };
static redis_script persist_lua = { persist_script, sizeof persist_script - 1,
                                    "" };

/* op->backend_flags */
#define REDIS_SECOND_LOST 1     /* incr_one: the PEXPIRE never went out */
#define REDIS_EVAL_TEXT 2       /* NOSCRIPT came back: send the text */

static void script_sha(redis_script *s)
{
    unsigned char h[WC_SHA_DIGEST_SIZE];
    if (wc_ShaHash((const unsigned char *)s->text, (unsigned)s->len, h)) {
        s->sha[0] = '\0';      /* EVAL every time: slower, as correct */
        return;
    }
    for (size_t i = 0; i < sizeof h; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", h[i]);
}

static uv_loop_t *rloop;
static up_store_params rp;
static redisAsyncContext *ac;
static int connected, stopping, was_down;
static uint64_t backoff_ms, error_logged;
static uv_timer_t retry_timer, connect_timer, keys_timer;
static char where[600];

static void connect_now(void);

static void retry_now(uv_timer_t *t)
{
    (void)t;
    connect_now();
}

static void schedule_retry(void)
{
    if (stopping)
        return;
    backoff_ms = backoff_ms ? backoff_ms * 2 : REDIS_BACKOFF_FIRST_MS;
    if (backoff_ms > REDIS_BACKOFF_MAX_MS)
        backoff_ms = REDIS_BACKOFF_MAX_MS;
    uv_timer_start(&retry_timer, retry_now, backoff_ms, 0);
}

static void went_down(const char *why)
{
    connected = 0;
    if (!was_down)
        up_log(NULL, UPESI_LOG_WARNING, "store: %s: %s; store calls fail "
               "until it is back (retrying every %d ms at most)", where, why,
               REDIS_BACKOFF_MAX_MS);
    was_down = 1;
    schedule_retry();
}

static void on_connect(const redisAsyncContext *c, int status)
{
    uv_timer_stop(&connect_timer);
    if (status != REDIS_OK) {
        if (c == ac)
            ac = NULL;              /* hiredis frees it after this */
        went_down(c->errstr[0] ? c->errstr : "cannot connect");
        return;
    }
    connected = 1;
}

/* The setup's last answer (PING, after AUTH and SELECT): only now is the
 * connection usable, and the backoff over.  A server that takes the
 * connection and then refuses it (a wrong password, a bad db, maxclients)
 * is retried with the backoff, and said once, as one that is down. */
static void setup_done(redisAsyncContext *c, void *r, void *privdata)
{
    redisReply *reply = r;
    (void)privdata;
    if (c != ac || reply == NULL || reply->type == REDIS_REPLY_ERROR)
        return;                 /* refused or gone: said and retried there */
    backoff_ms = 0;
    up_log(NULL, was_down ? UPESI_LOG_NOTICE : UPESI_LOG_INFO,
           "store: %s %s", was_down ? "reconnected to" : "connected to",
           where);
    was_down = 0;
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    if (c == ac)
        ac = NULL;
    if (stopping)
        return;
    went_down(status == REDIS_OK ? "connection closed"
              : c->errstr[0] ? c->errstr : "connection lost");
}

static void drop_connection(const char *why)
{
    redisAsyncContext *old = ac;
    ac = NULL;
    connected = 0;
    if (old)
        redisAsyncFree(old);    /* pending calls get their NULL replies */
    went_down(why);
}

static void connect_timed_out(uv_timer_t *t)
{
    (void)t;
    if (ac && !connected)
        drop_connection("no connection within store_timeout");
}

static void setup_reply(redisAsyncContext *c, void *r, void *privdata)
{
    redisReply *reply = r;
    const char *what = privdata;
    if (reply && reply->type == REDIS_REPLY_ERROR && c == ac) {
        char why[300];
        snprintf(why, sizeof why, "%s refused: %s", what, reply->str);
        redisAsyncDisconnect(ac);
        if (!was_down)
            up_log(NULL, UPESI_LOG_ERR, "store: %s: %s", where, why);
    }
}

/* SCRIPT LOAD's answer: nothing to do (refused, EVALSHA gets NOSCRIPT and
 * the call goes again as EVAL) */
static void script_loaded(redisAsyncContext *c, void *r, void *privdata)
{
    (void)c;
    (void)r;
    (void)privdata;
}

static void connect_now(void)
{
    if (stopping || ac)
        return;
    ac = rp.url.path[0] ? redisAsyncConnectUnix(rp.url.path)
                        : redisAsyncConnect(rp.url.host, rp.url.port);
    if (ac == NULL || ac->err) {
        char why[200];
        snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        ac = NULL;
        went_down(why);
        return;
    }
    if (up_store_redis_attach(ac, rloop) != REDIS_OK) {
        redisAsyncFree(ac);
        ac = NULL;
        went_down("cannot watch the connection");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (rp.url.password[0]) {
        if (rp.url.user[0])
            redisAsyncCommand(ac, setup_reply, (void *)"AUTH", "AUTH %s %s",
                              rp.url.user, rp.url.password);
        else
            redisAsyncCommand(ac, setup_reply, (void *)"AUTH", "AUTH %s",
                              rp.url.password);
    }
    if (rp.url.db)
        redisAsyncCommand(ac, setup_reply, (void *)"SELECT", "SELECT %d",
                          rp.url.db);
    /* the scripts, before any call's EVALSHA on this connection: a
     * restarted Redis knows them again without a NOSCRIPT round */
    redisAsyncCommand(ac, script_loaded, NULL, "SCRIPT LOAD %b",
                      incr_lua.text, incr_lua.len);
    redisAsyncCommand(ac, script_loaded, NULL, "SCRIPT LOAD %b",
                      persist_lua.text, persist_lua.len);
    redisAsyncCommand(ac, setup_done, NULL, "PING");
    uv_timer_start(&connect_timer, connect_timed_out, rp.timeout_ms, 0);
}

/* -- replies ---------------------------------------------------------- */

static int reply_error(const redisReply *reply)
{
    if (!strncmp(reply->str, "ERR value is not an integer", 27) ||
        strstr(reply->str, "not an integer") ||
        strstr(reply->str, "would overflow") ||
        !strncmp(reply->str, "WRONGTYPE", 9))
        return -EINVAL;
    if (!strncmp(reply->str, "OOM", 3))
        return -ENOSPC;
    uint64_t now = up_store_now_ms();
    if (error_logged == 0 || now - error_logged >= 60000) {
        error_logged = now;
        up_log(NULL, UPESI_LOG_ERR, "store: %s: %s", where, reply->str);
    }
    return -EIO;
}

static int value_of(upesi_store_op *op, size_t i, const redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_STRING)
        return -EIO;
    op->values[i].found = 1;
    return up_store_value_copy(op, i, r->str, r->len);
}

static void redis_submit(upesi_store_op *op);

static void on_reply(redisAsyncContext *c, void *r, void *privdata)
{
    (void)c;
    upesi_store_op *op = privdata;
    redisReply *reply = r;
    int st = 0;
    if (reply == NULL) {
        up_store_done(op, -ECONNREFUSED);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR &&
        !strncmp(reply->str, "NOSCRIPT", 8) &&
        !(op->backend_flags & REDIS_EVAL_TEXT)) {
        op->backend_flags |= REDIS_EVAL_TEXT;   /* again, with the text */
        redis_submit(op);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        up_store_done(op, reply_error(reply));
        return;
    }
    switch (op->kind) {
    case UP_STORE_GET:
        st = value_of(op, 0, reply);
        break;
    case UP_STORE_MGET:
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != op->n) {
            st = -EIO;
            break;
        }
        for (size_t i = 0; i < op->n && st == 0; i++)
            st = value_of(op, i, reply->element[i]);
        break;
    case UP_STORE_SET:
        st = reply->type == REDIS_REPLY_STATUS ? 0 : -EIO;
        break;
    case UP_STORE_DEL:
    case UP_STORE_EXPIRE:
        if (reply->type != REDIS_REPLY_INTEGER)
            st = -EIO;
        else
            op->values[0].found = reply->integer > 0;
        break;
    case UP_STORE_TTL:
        if (reply->type != REDIS_REPLY_INTEGER) {
            st = -EIO;
        } else if (reply->integer != -2) {
            op->values[0].found = 1;
            op->values[0].num = reply->integer;
        }
        break;
    case UP_STORE_INCR:
    case UP_STORE_MINCR:
        if (op->kind == UP_STORE_INCR) {    /* PEXPIRE NX after INCRBY */
            st = op->status;
        } else if (reply->type == REDIS_REPLY_NIL) {
            st = -EIO;
        } else if (reply->type == REDIS_REPLY_INTEGER && op->n == 1) {
            op->values[0].found = 1;
            op->values[0].num = reply->integer;
        } else if (reply->type == REDIS_REPLY_ARRAY &&
                   reply->elements == op->n) {
            for (size_t i = 0; i < op->n; i++) {
                op->values[i].found = 1;
                op->values[i].num = reply->element[i]->integer;
            }
        } else {
            st = -EIO;
        }
        break;
    case UP_STORE_COUNT:
        st = -ENOTSUP;
        break;
    }
    up_store_done(op, st);
}

/* -- calls ------------------------------------------------------------- */

/* One counter with a ttl for a new key: INCRBY, then PEXPIRE NX,
 * pipelined.  PEXPIRE NX sets the ttl only on a key that has none: the key
 * the INCRBY created (or one an increment without a ttl made, which then
 * gets one).  Not a transaction, and it need not be: Redis runs the two
 * back to back, and if the connection broke in between, the next
 * increment's PEXPIRE NX gives the key its ttl.  The INCRBY's answer is
 * kept in op; the PEXPIRE's completes it. */
static void incr_first(redisAsyncContext *c, void *r, void *privdata)
{
    (void)c;
    upesi_store_op *op = privdata;
    redisReply *reply = r;
    if (reply == NULL) {
        op->status = -ECONNREFUSED;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        op->status = reply_error(reply);
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        op->status = 0;
        op->values[0].found = 1;
        op->values[0].num = reply->integer;
    } else {
        op->status = -EIO;
    }
    if (op->backend_flags & REDIS_SECOND_LOST)
        up_store_done(op, op->status);
}

static void incr_one(upesi_store_op *op)
{
    char by[24], ttl[24];
    snprintf(by, sizeof by, "%lld", op->by[0]);
    snprintf(ttl, sizeof ttl, "%lld", op->ttl_ms);
    const char *incr[3] = { "INCRBY", op->keys[0], by };
    size_t incr_len[3] = { 6, op->klens[0], strlen(by) };
    const char *exp[4] = { "PEXPIRE", op->keys[0], ttl, "NX" };
    size_t exp_len[4] = { 7, op->klens[0], strlen(ttl), 2 };
    op->kind = UP_STORE_INCR;       /* on_reply: the second of two */
    if (redisAsyncCommandArgv(ac, incr_first, op, 3, incr, incr_len) !=
        REDIS_OK) {
        up_store_done_later(op, -ECONNREFUSED);
        return;
    }
    if (redisAsyncCommandArgv(ac, on_reply, op, 4, exp, exp_len) !=
        REDIS_OK) {
        /* hardly possible once the first went out: then the first's
         * callback completes op */
        op->backend_flags |= REDIS_SECOND_LOST;
    }
}

static void redis_submit(upesi_store_op *op)
{
    /* down, or trying to get back: a connect attempt can take up to
     * store_timeout (a host that drops packets), and a call never waits
     * for one (docs/store.md).  Only the first connect, at start, holds
     * the calls made meanwhile. */
    if (ac == NULL || stopping || (was_down && !connected)) {
        up_store_done_later(op, -ECONNREFUSED);
        return;
    }
    if (op->kind == UP_STORE_COUNT) {
        up_store_done_later(op, -ENOTSUP);
        return;
    }
    size_t n = op->n;
    size_t argc_max = 3 + 2 * n + 2;
    const char **argv = malloc(argc_max * sizeof *argv);
    size_t *lens = malloc(argc_max * sizeof *lens);
    char (*nums)[24] = malloc((n + 1) * sizeof *nums);
    if (argv == NULL || lens == NULL || nums == NULL) {
        free(argv);
        free(lens);
        free(nums);
        up_store_done_later(op, -ENOMEM);
        return;
    }
    int argc = 0;
#define ARG(s, l) (argv[argc] = (s), lens[argc++] = (l))
#define ARGS(s) ARG(s, strlen(s))
#define SCRIPT(s)                                                            \
    do {                                                                     \
        if ((s).sha[0] && !(op->backend_flags & REDIS_EVAL_TEXT)) {         \
            ARGS("EVALSHA");                                                 \
            ARG((s).sha, 40);                                                \
        } else {                                                             \
            ARGS("EVAL");                                                    \
            ARG((s).text, (s).len);                                          \
        }                                                                    \
    } while (0)
    switch (op->kind) {
    case UP_STORE_GET:
        ARGS("GET");
        ARG(op->keys[0], op->klens[0]);
        break;
    case UP_STORE_MGET:
        ARGS("MGET");
        for (size_t i = 0; i < n; i++)
            ARG(op->keys[i], op->klens[i]);
        break;
    case UP_STORE_SET:
        ARGS("SET");
        ARG(op->keys[0], op->klens[0]);
        ARG(op->data, op->len);
        if (op->ttl_ms) {
            ARGS("PX");
            snprintf(nums[0], sizeof nums[0], "%lld", op->ttl_ms);
            ARGS(nums[0]);
        }
        break;
    case UP_STORE_DEL:
        ARGS("DEL");
        ARG(op->keys[0], op->klens[0]);
        break;
    case UP_STORE_TTL:
        ARGS("PTTL");
        ARG(op->keys[0], op->klens[0]);
        break;
    case UP_STORE_EXPIRE:
        if (op->ttl_ms) {
            ARGS("PEXPIRE");
            ARG(op->keys[0], op->klens[0]);
            snprintf(nums[0], sizeof nums[0], "%lld", op->ttl_ms);
            ARGS(nums[0]);
        } else {
            SCRIPT(persist_lua);
            ARGS("1");
            ARG(op->keys[0], op->klens[0]);
        }
        break;
    case UP_STORE_INCR:
    case UP_STORE_MINCR:
        if (n == 1 && op->ttl_ms == 0) {
            ARGS("INCRBY");
            ARG(op->keys[0], op->klens[0]);
            snprintf(nums[0], sizeof nums[0], "%lld", op->by[0]);
            ARGS(nums[0]);
            break;
        }
        if (n == 1) {
            /* the common case (a rate limit): INCRBY and PEXPIRE NX,
             * cheaper than a script for both sides */
            free(argv);
            free(lens);
            free(nums);
            incr_one(op);
            return;
        }
        SCRIPT(incr_lua);
        snprintf(nums[n], sizeof nums[n], "%zu", n);
        ARGS(nums[n]);
        for (size_t i = 0; i < n; i++)
            ARG(op->keys[i], op->klens[i]);
        /* ARGV[1] the ttl, then the increments: nums[] is n+1 long, the
         * ttl goes through a small buffer of its own */
        {
            static char ttl_text[24];
            snprintf(ttl_text, sizeof ttl_text, "%lld", op->ttl_ms);
            ARGS(ttl_text);
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(nums[i], sizeof nums[i], "%lld", op->by[i]);
            ARGS(nums[i]);
        }
        break;
    case UP_STORE_COUNT:
        break;
    }
#undef ARG
#undef ARGS
#undef SCRIPT
    /* hiredis formats the command into its own buffer at once */
    int rc = redisAsyncCommandArgv(ac, on_reply, op, argc, argv, lens);
    free(argv);
    free(lens);
    free(nums);
    if (rc != REDIS_OK)
        up_store_done_later(op, -ECONNREFUSED);
}

/* -- SMTP.Store.Keys: DBSIZE, from worker 0 ------------------------------ */

static void keys_reply(redisAsyncContext *c, void *r, void *privdata)
{
    (void)c;
    (void)privdata;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        up_stats_set("SMTP.Store.Keys", reply->integer);
}

static void keys_tick(uv_timer_t *t)
{
    (void)t;
    if (ac && connected)
        redisAsyncCommand(ac, keys_reply, NULL, "DBSIZE");
}

/* -- life cycle --------------------------------------------------------- */

static int redis_start(uv_loop_t *loop, const up_store_params *p)
{
    rloop = loop;
    rp = *p;
    script_sha(&incr_lua);
    script_sha(&persist_lua);
    up_store_url_text(&rp.url, where, sizeof where);
    uv_timer_init(loop, &retry_timer);
    uv_timer_init(loop, &connect_timer);
    uv_timer_init(loop, &keys_timer);
    uv_unref((uv_handle_t *)&retry_timer);
    uv_unref((uv_handle_t *)&connect_timer);
    uv_unref((uv_handle_t *)&keys_timer);
    if (p->worker_index == 0)
        uv_timer_start(&keys_timer, keys_tick, 1000, REDIS_KEYS_MS);
    connect_now();
    return 0;
}

static void redis_stop(void)
{
    stopping = 1;
    uv_timer_stop(&retry_timer);
    uv_timer_stop(&connect_timer);
    uv_timer_stop(&keys_timer);
    redisAsyncContext *old = ac;
    ac = NULL;
    if (old)
        redisAsyncFree(old);    /* calls in flight answered NULL: done */
}

const up_store_backend up_store_redis = {
    .name = "redis",
    .start = redis_start,
    .submit = redis_submit,
    .stop = redis_stop,
};

/* -- the start-up check ------------------------------------------------ */

void up_store_probe(const up_store_params *p)
{
    if (p->url.kind != UP_STORE_REDIS)
        return;
    char text[600], why[300] = "";
    up_store_url_text(&p->url, text, sizeof text);
    struct timeval tv = { (time_t)(p->timeout_ms / 1000),
                          (suseconds_t)(p->timeout_ms % 1000) * 1000 };
    redisContext *c = p->url.path[0]
        ? redisConnectUnixWithTimeout(p->url.path, tv)
        : redisConnectWithTimeout(p->url.host, p->url.port, tv);
    if (c == NULL || c->err) {
        snprintf(why, sizeof why, "%s", c ? c->errstr : "out of memory");
    } else {
        redisSetTimeout(c, tv);
        redisReply *r = NULL;
        if (p->url.password[0])
            r = p->url.user[0]
                ? redisCommand(c, "AUTH %s %s", p->url.user, p->url.password)
                : redisCommand(c, "AUTH %s", p->url.password);
        if (r == NULL && p->url.password[0])
            snprintf(why, sizeof why, "AUTH: %s", c->errstr);
        else if (r && r->type == REDIS_REPLY_ERROR)
            snprintf(why, sizeof why, "AUTH: %s", r->str);
        if (r)
            freeReplyObject(r);
        if (!why[0]) {
            r = redisCommand(c, "SELECT %d", p->url.db);
            if (r == NULL || r->type == REDIS_REPLY_ERROR)
                snprintf(why, sizeof why, "SELECT %d: %s", p->url.db,
                         r ? r->str : c->errstr);
            if (r)
                freeReplyObject(r);
        }
    }
    if (c)
        redisFree(c);
    if (why[0])
        up_log(NULL, UPESI_LOG_WARNING, "store: %s is not reachable now "
               "(%s); mail flows, store calls fail until it is",
               text, why);
}
