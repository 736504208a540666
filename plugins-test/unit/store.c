/*
 * store.c - unit test of the store (host/store*.c) against LMDB: get, set,
 * del, incr with a ttl for new keys, expire, ttl, mget and mincr of 500
 * keys, lazy expiry and the sweep, per-plugin prefixes, cancel, answers
 * that never come from inside the call, a full map (store_size), and the
 * front's deadline against a server that never answers.  Prints TAP.
 *
 * Fails: a "not ok" line per broken expectation; exit status from
 * done_testing().
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "stats.h"
#include "store.h"
#include "tap.h"

#define T_BATCH 500

typedef struct t_answer {
    int done, status;
    size_t count;
    int found[T_BATCH];
    long long num[T_BATCH];
    char data[256];
    size_t len;
} t_answer;

static uv_loop_t *loop;
static t_answer ans;

static void t_answered(const upesi_store_result *r, void *arg)
{
    t_answer *a = arg;
    a->done = 1;
    a->status = r->status;
    a->count = r->count;
    for (size_t i = 0; r->status == 0 && i < r->count && i < T_BATCH; i++) {
        a->found[i] = r->values[i].found;
        a->num[i] = r->values[i].num;
        if (i == 0 && r->values[0].data) {
            a->len = r->values[0].len;
            snprintf(a->data, sizeof a->data, "%s",
                     (const char *)r->values[0].data);
        }
    }
}

/* an mget's values, each checked against what was written: short values
 * share one allocation of the operation, long ones have their own */
static const char *want_data[4];
static void t_answered_data(const upesi_store_result *r, void *arg)
{
    int good = r->status == 0 && r->count == 4;
    for (size_t i = 0; good && i < 4; i++)
        good = r->values[i].found && r->values[i].len == strlen(want_data[i]) &&
               !strcmp(r->values[i].data, want_data[i]);
    t_answered(r, arg);
    ((t_answer *)arg)->num[0] = good;
}

/* the answer to op (started with &ans as arg), running the loop for it */
static t_answer *t_wait(upesi_store_op *op)
{
    if (op == NULL) {
        ans.status = -999;
        return &ans;
    }
    while (!ans.done)
        uv_run(loop, UV_RUN_ONCE);
    return &ans;
}

static t_answer *t_reset(void)
{
    memset(&ans, 0, sizeof ans);
    return &ans;
}

static void t_sleep_loop(uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;
    while (uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
}

static void t_tick(uv_timer_t *t)
{
    (void)t;
}

static char t_dir[256];

static void t_full_child(void)
{
    /* a store of 1 MiB fills up: -ENOSPC, and what is in stays readable */
    up_store_params p = { .timeout_ms = 5000, .size = 1 << 20 };
    p.url.kind = UP_STORE_LMDB;
    snprintf(p.url.path, sizeof p.url.path, "%s/full", t_dir);
    up_store_worker_start(loop, &p);
    static char big[60000];
    memset(big, 'x', sizeof big);
    int full = 0, i;
    for (i = 0; i < 100 && !full; i++) {
        char key[32];
        snprintf(key, sizeof key, "big%d", i);
        t_reset();
        t_wait(up_store_set("t", key, big, sizeof big, 0, t_answered, &ans));
        full = ans.status == -ENOSPC;
    }
    t_reset();
    t_wait(up_store_get("t", "big0", t_answered, &ans));
    _exit(full && i > 2 && ans.status == 0 && ans.found[0] &&
          ans.len == sizeof big ? 0 : 1);
}

int main(void)
{
    plan(63);
    loop = uv_default_loop();
    uv_timer_t keepalive;
    uv_timer_init(loop, &keepalive);
    uv_timer_start(&keepalive, t_tick, 10, 10);
    snprintf(t_dir, sizeof t_dir, "/tmp/upesi-store-unit-%d", (int)getpid());

    pid_t child = fork();
    if (child == 0)
        t_full_child();
    int wst = 0;
    waitpid(child, &wst, 0);
    ok(WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
       "a full store (store_size 1M) answers -ENOSPC; what it holds stays "
       "readable");
    up_stats_init(1024);        /* after the child: its errors are not ours */

    up_store_params p = { .timeout_ms = 2000, .size = 64 << 20,
                          .worker_index = 0 };
    p.url.kind = UP_STORE_LMDB;
    snprintf(p.url.path, sizeof p.url.path, "%s/store", t_dir);
    up_store_worker_start(loop, &p);

    t_answer *a = t_reset();
    upesi_store_op *op = up_store_get("t", "absent", t_answered, a);
    ok(op != NULL && !a->done, "a call returns before its answer");
    t_wait(op);
    ok(a->status == 0 && a->count == 1 && !a->found[0], "get: absent");

    t_wait(up_store_set("t", "a", "hello", 5, 0, t_answered, t_reset()));
    ok(ans.status == 0 && ans.count == 0, "set");
    t_wait(up_store_get("t", "a", t_answered, t_reset()));
    ok(ans.found[0] && ans.len == 5 && !strcmp(ans.data, "hello"),
       "get: the bytes set");
    t_wait(up_store_get("other", "a", t_answered, t_reset()));
    ok(ans.status == 0 && !ans.found[0], "another plugin's key of the same "
       "name is another key");
    t_wait(up_store_ttl("t", "a", t_answered, t_reset()));
    ok(ans.found[0] && ans.num[0] == -1, "ttl: -1 without expiry");

    t_wait(up_store_incr("t", "n", 5, 60000, t_answered, t_reset()));
    ok(ans.status == 0 && ans.num[0] == 5, "incr of a new key: by");
    t_wait(up_store_incr("t", "n", -2, 1, t_answered, t_reset()));
    ok(ans.status == 0 && ans.num[0] == 3, "incr again: the sum");
    t_wait(up_store_ttl("t", "n", t_answered, t_reset()));
    ok(ans.found[0] && ans.num[0] > 59000 && ans.num[0] <= 60000,
       "the ttl is the creating call's, the later incr's is ignored (%lld)",
       ans.num[0]);
    t_wait(up_store_incr("t", "forever", 1, 0, t_answered, t_reset()));
    t_wait(up_store_incr("t", "forever", 1, 5000, t_answered, t_reset()));
    t_wait(up_store_ttl("t", "forever", t_answered, t_reset()));
    ok(ans.num[0] > 4000 && ans.num[0] <= 5000, "a key without expiry takes "
       "the ttl of a later incr, as with Redis's PEXPIRE NX (%lld)",
       ans.num[0]);
    t_wait(up_store_get("t", "n", t_answered, t_reset()));
    ok(!strcmp(ans.data, "3") && ans.num[0] == 3,
       "a counter reads back as decimal text, num filled");
    t_wait(up_store_incr("t", "a", 1, 0, t_answered, t_reset()));
    ok(ans.status == -EINVAL, "incr of text: -EINVAL");
    t_wait(up_store_get("t", "a", t_answered, t_reset()));
    ok(!strcmp(ans.data, "hello"), "... and the text is untouched");
    t_wait(up_store_incr("t", "max", 0x7fffffffffffffffLL, 0, t_answered,
                         t_reset()));
    t_wait(up_store_incr("t", "max", 1, 0, t_answered, t_reset()));
    ok(ans.status == -EINVAL, "incr past the largest number: -EINVAL");

    t_wait(up_store_del("t", "a", t_answered, t_reset()));
    ok(ans.status == 0 && ans.found[0], "del: it was there");
    t_wait(up_store_del("t", "a", t_answered, t_reset()));
    ok(ans.status == 0 && !ans.found[0], "del again: it was not");

    t_wait(up_store_set("t", "short", "x", 1, 0, t_answered, t_reset()));
    t_wait(up_store_expire("t", "short", 60, t_answered, t_reset()));
    ok(ans.found[0], "expire of a key that exists");
    t_wait(up_store_expire("t", "nokey", 60, t_answered, t_reset()));
    ok(ans.status == 0 && !ans.found[0], "expire of one that does not");
    t_wait(up_store_ttl("t", "short", t_answered, t_reset()));
    ok(ans.found[0] && ans.num[0] > 0 && ans.num[0] <= 60, "ttl: ms left");
    t_sleep_loop(100);
    t_wait(up_store_get("t", "short", t_answered, t_reset()));
    ok(!ans.found[0], "an expired key is absent (lazily, before a sweep)");
    t_wait(up_store_incr("t", "short", 1, 0, t_answered, t_reset()));
    ok(ans.num[0] == 1, "incr of an expired key starts over");
    t_wait(up_store_set("t", "keep", "v", 1, 50, t_answered, t_reset()));
    t_wait(up_store_expire("t", "keep", 0, t_answered, t_reset()));
    t_sleep_loop(100);
    t_wait(up_store_get("t", "keep", t_answered, t_reset()));
    ok(ans.found[0], "expire with 0 removes the expiry");

    /* batches */
    static char names[T_BATCH][16];
    const char *keys[T_BATCH];
    long long by[T_BATCH];
    for (int i = 0; i < T_BATCH; i++) {
        snprintf(names[i], sizeof names[i], "tok%d", i);
        keys[i] = names[i];
        by[i] = i;
    }
    t_wait(up_store_mincr("t", keys, by, T_BATCH, 0, t_answered, t_reset()));
    int good = ans.status == 0 && ans.count == T_BATCH;
    for (int i = 0; good && i < T_BATCH; i++)
        good = ans.num[i] == i;
    ok(good, "mincr of %d keys: each its own sum", T_BATCH);
    t_wait(up_store_mincr("t", keys, by, T_BATCH, 0, t_answered, t_reset()));
    good = ans.status == 0;
    for (int i = 0; good && i < T_BATCH; i++)
        good = ans.num[i] == 2 * i;
    ok(good, "mincr again: doubled");
    snprintf(names[250], sizeof names[250], "missing");
    t_wait(up_store_mget("t", keys, T_BATCH, t_answered, t_reset()));
    good = ans.status == 0 && ans.count == T_BATCH;
    for (int i = 0; good && i < T_BATCH; i++)
        good = i == 250 ? !ans.found[i] : ans.found[i] && ans.num[i] == 2 * i;
    ok(good, "mget of %d keys: values in order, the absent one absent",
       T_BATCH);
    static char longv[101];
    memset(longv, 'x', 100);
    t_wait(up_store_set("t", "longv", longv, 100, 0, t_answered, t_reset()));
    t_wait(up_store_set("t", "shortv", "abc", 3, 0, t_answered, t_reset()));
    t_wait(up_store_set("t", "edgev", "0123456789012345678901234567890", 31,
                        0, t_answered, t_reset()));
    const char *mix4[4] = { "longv", "shortv", "edgev", "longv" };
    want_data[0] = want_data[3] = longv;
    want_data[1] = "abc";
    want_data[2] = "0123456789012345678901234567890";
    t_wait(up_store_mget("t", mix4, 4, t_answered_data, t_reset()));
    ok(ans.status == 0 && ans.num[0] == 1, "mget of long and short values: "
       "each value's bytes and length");
    t_wait(up_store_set("t", "text", "abc", 3, 0, t_answered, t_reset()));
    const char *mixed[3] = { "fresh1", "text", "fresh2" };
    long long one[3] = { 1, 1, 1 };
    t_wait(up_store_mincr("t", mixed, one, 3, 0, t_answered, t_reset()));
    ok(ans.status == -EINVAL, "mincr with a text among the keys: -EINVAL");
    t_wait(up_store_get("t", "fresh1", t_answered, t_reset()));
    ok(!ans.found[0], "... and no key of that batch changed (all or none)");
    ok(up_store_mget("t", keys, 0, t_answered, t_reset()) == NULL,
       "mget of no keys does not start");
    ok(up_store_mget("t", keys, UPESI_STORE_BATCH_MAX + 1, t_answered,
                     t_reset()) == NULL, "nor one over the batch limit");

    /* a key more than once in one batch: each occurrence adds to the
     * sum before it (in call order), the key holds the last sum, and a
     * new key's expiry is the one its first occurrence gave it */
    t_wait(up_store_incr("t", "dupA", 100, 0, t_answered, t_reset()));
    const char *dups[5] = { "dupA", "dupB", "dupA", "dupA", "dupB" };
    long long dby[5] = { 1, 10, 2, 4, 20 };
    t_wait(up_store_mincr("t", dups, dby, 5, 60000, t_answered, t_reset()));
    ok(ans.status == 0 && ans.count == 5 && ans.num[0] == 101 &&
       ans.num[1] == 10 && ans.num[2] == 103 && ans.num[3] == 107 &&
       ans.num[4] == 30, "mincr with keys twice: running sums in call order "
       "(%lld %lld %lld %lld %lld)", ans.num[0], ans.num[1], ans.num[2],
       ans.num[3], ans.num[4]);
    t_wait(up_store_get("t", "dupA", t_answered, t_reset()));
    ok(ans.found[0] && ans.num[0] == 107, "... the key holds the last sum");
    t_wait(up_store_get("t", "dupB", t_answered, t_reset()));
    ok(ans.found[0] && ans.num[0] == 30, "... a new key too");
    /* keys in increasing order skip the duplicate search (one pass), so
     * a duplicate at the end of an ordered run must still be found */
    const char *ord[4] = { "ordA", "ordB", "ordC", "ordC" };
    long long oby[4] = { 1, 2, 3, 4 };
    t_wait(up_store_mincr("t", ord, oby, 4, 0, t_answered, t_reset()));
    ok(ans.status == 0 && ans.num[0] == 1 && ans.num[1] == 2 &&
       ans.num[2] == 3 && ans.num[3] == 7, "mincr of ordered keys, the "
       "last twice: running sums (%lld %lld %lld %lld)", ans.num[0],
       ans.num[1], ans.num[2], ans.num[3]);
    t_wait(up_store_get("t", "ordC", t_answered, t_reset()));
    ok(ans.found[0] && ans.num[0] == 7, "... the key holds the last sum");
    t_wait(up_store_ttl("t", "dupB", t_answered, t_reset()));
    ok(ans.found[0] && ans.num[0] > 50000 && ans.num[0] <= 60000,
       "... and the new key took ttl_ms once");
    t_wait(up_store_ttl("t", "dupA", t_answered, t_reset()));
    ok(ans.found[0] && ans.num[0] > 50000 && ans.num[0] <= 60000,
       "... an old key without expiry took it too, once");
    /* T_BATCH keys over 7 names, in an order a sort must not disturb */
    static char dnames[T_BATCH][16];
    const char *dkeys[T_BATCH];
    long long dones[T_BATCH];
    long long want[7] = { 0 };
    for (int i = 0; i < T_BATCH; i++) {
        int k = (i * 5 + i / 7) % 7;
        snprintf(dnames[i], sizeof dnames[i], "many%d", k);
        dkeys[i] = dnames[i];
        dones[i] = i + 1;
    }
    t_wait(up_store_mincr("t", dkeys, dones, T_BATCH, 0, t_answered,
                          t_reset()));
    good = ans.status == 0 && ans.count == T_BATCH;
    for (int i = 0; good && i < T_BATCH; i++) {
        int k = (i * 5 + i / 7) % 7;
        want[k] += i + 1;
        good = ans.num[i] == want[k];
    }
    ok(good, "mincr of %d keys over 7 names: every running sum right",
       T_BATCH);
    const char *seven[7] = { "many0", "many1", "many2", "many3", "many4",
                             "many5", "many6" };
    t_wait(up_store_mget("t", seven, 7, t_answered, t_reset()));
    good = ans.status == 0;
    for (int k = 0; good && k < 7; k++)
        good = ans.found[k] && ans.num[k] == want[k];
    ok(good, "... and each name holds its total");

    /* several calls in one loop turn: one transaction, in order */
    t_answer a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
    up_store_set("t", "seq", "1", 1, 0, t_answered, &a1);
    up_store_incr("t", "seq", 41, 0, t_answered, &a2);
    up_store_get("t", "seq", t_answered, &a3);
    while (!a3.done)
        uv_run(loop, UV_RUN_ONCE);
    ok(a1.done && a2.done && a2.num[0] == 42 && !strcmp(a3.data, "42"),
       "calls of one turn run in the order made");

    /* bad calls */
    char longkey[UPESI_STORE_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    ok(up_store_get("t", longkey, t_answered, t_reset()) == NULL,
       "a key over %d bytes does not start", UPESI_STORE_KEY_MAX);
    ok(up_store_get("t", "", t_answered, t_reset()) == NULL,
       "an empty key does not start");
    longkey[UPESI_STORE_KEY_MAX] = '\0';
    t_wait(up_store_set("t", longkey, "v", 1, 0, t_answered, t_reset()));
    ok(ans.status == 0, "a key of %d bytes is fine", UPESI_STORE_KEY_MAX);

    /* cancel */
    t_answer ac = { 0 };
    upesi_store_op *cop = up_store_get("t", "seq", t_answered, &ac);
    up_store_cancel(cop);
    t_wait(up_store_get("t", "seq", t_answered, t_reset()));
    t_sleep_loop(20);
    ok(!ac.done, "a cancelled call never answers");

    /* count and the sweep */
    t_wait(up_store_count("cnt", t_answered, t_reset()));
    ok(ans.status == 0 && ans.num[0] == 0, "count of an empty prefix");
    for (int i = 0; i < 10; i++) {
        char k[8];
        snprintf(k, sizeof k, "e%d", i);
        t_wait(up_store_set("cnt", k, "v", 1, i < 6 ? 1500 : 0, t_answered,
                            t_reset()));
    }
    t_wait(up_store_count("cnt", t_answered, t_reset()));
    ok(ans.num[0] == 10, "count: 10 keys");
    t_sleep_loop(1100);         /* a sweep: SMTP.Store.Keys with all 10 */
    long long before = up_stats_get("SMTP.Store.Keys");
    t_sleep_loop(1600);         /* expired, and swept */
    t_wait(up_store_count("cnt", t_answered, t_reset()));
    ok(ans.num[0] == 4, "count: 4 live after the ttl passed");
    long long after = up_stats_get("SMTP.Store.Keys");
    ok(before > 10 && after == before - 6,
       "the sweep removed the expired keys from the file: SMTP.Store.Keys "
       "%lld -> %lld", before, after);
    ok(up_stats_get("SMTP.Store.Calls") > 40, "SMTP.Store.Calls counts");
    ok(up_stats_get("SMTP.Store.Errors") == 0,
       "SMTP.Store.Errors: -EINVAL is the caller's mistake, not counted");

    /* one value of the largest size */
    static char huge[UPESI_STORE_VALUE_MAX];
    memset(huge, 'h', sizeof huge);
    t_wait(up_store_set("t", "huge", huge, sizeof huge, 0, t_answered,
                        t_reset()));
    ok(ans.status == 0, "a value of UPESI_STORE_VALUE_MAX bytes");
    t_wait(up_store_get("t", "huge", t_answered, t_reset()));
    ok(ans.len == sizeof huge, "... reads back whole");
    ok(up_store_set("t", "huge", huge, sizeof huge + 1, 0, t_answered,
                    t_reset()) == NULL, "one byte more does not start");
    const char *k1[1] = { "a" };
    const long long b1[1] = { 1 };
    ok(up_store_set("t", "a", "v", 1, LLONG_MAX, t_answered, t_reset()) ==
           NULL &&
       up_store_mincr("t", k1, b1, 1, LLONG_MAX, t_answered, t_reset()) ==
           NULL &&
       up_store_expire("t", "a", LLONG_MAX, t_answered, t_reset()) == NULL,
       "a ttl over 100 years does not start (Redis would refuse it after "
       "the write)");

    up_store_worker_stop();
    ok(up_store_get("t", "a", t_answered, t_reset()) == NULL,
       "after stop, calls do not start");

    /* the deadline: a "Redis" that accepts and never answers */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(0x7f000001) };
    socklen_t sl = sizeof sin;
    bind(lfd, (struct sockaddr *)&sin, sizeof sin);
    listen(lfd, 16);
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    up_store_params rp = { .timeout_ms = 200, .size = 1 << 20 };
    char err[256];
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", ntohs(sin.sin_port));
    ok(up_store_url_parse(url, &rp.url, err, sizeof err) == 0, "parse %s",
       url);
    up_store_worker_start(loop, &rp);
    long long to0 = up_stats_get("SMTP.Store.Timeouts");
    uint64_t t0 = uv_now(loop);
    t_wait(up_store_get("t", "x", t_answered, t_reset()));
    uint64_t took = uv_now(loop) - t0;
    ok(ans.status == -ETIMEDOUT, "a server that never answers: -ETIMEDOUT");
    ok(took >= 190 && took < 400, "after store_timeout (200 ms): %llu ms",
       (unsigned long long)took);
    ok(up_stats_get("SMTP.Store.Timeouts") == to0 + 1 &&
       up_stats_get("SMTP.Store.Errors") >= 1,
       "counted in SMTP.Store.Timeouts and SMTP.Store.Errors");

    /* a reload that shortens store_timeout: a call made after it times out
     * by the new one, though an older call with a later deadline waits */
    static t_answer older;
    rp.timeout_ms = 2000;
    up_store_reload(&rp);
    memset(&older, 0, sizeof older);
    ok(up_store_get("t", "old", t_answered, &older) != NULL,
       "a call with store_timeout 2000 ms");
    rp.timeout_ms = 200;
    up_store_reload(&rp);
    t0 = uv_now(loop);
    t_wait(up_store_get("t", "new", t_answered, t_reset()));
    took = uv_now(loop) - t0;
    ok(ans.status == -ETIMEDOUT && took >= 190 && took < 400 && !older.done,
       "reloaded to 200 ms, a new call times out after %llu ms, the older "
       "one still waits", (unsigned long long)took);
    while (!older.done)
        uv_run(loop, UV_RUN_ONCE);
    took = uv_now(loop) - t0;
    ok(older.status == -ETIMEDOUT && took >= 1700 && took < 2200,
       "... until its own deadline (%llu ms later)", (unsigned long long)took);
    up_store_worker_stop();
    close(lfd);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", t_dir);
    if (system(cmd) != 0)
        diag("could not remove %s", t_dir);
    return done_testing();
}
