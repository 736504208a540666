/*
 * store_redis.c - unit test of the store's Redis backend
 * (host/store_redis.c, store_redis_uv.c) against a real redis-server
 * started here on a free loopback port, persisting nothing: many calls of
 * one loop iteration pipelined and answered in order, more than a socket
 * buffer holds written in one go, counters with their ttl, the batch
 * increment and "remove the expiry" scripts called by SHA-1 (EVALSHA) and
 * sent again as text when Redis lost its scripts (SCRIPT FLUSH), and the
 * scripts loaded again on a new connection.  Prints TAP; skips without
 * redis-server.
 *
 * Fails: a "not ok" line per broken expectation; exit status from
 * done_testing().
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "stats.h"
#include "store.h"
#include "tap.h"

#define T_MANY 300
#define T_BIG 40
#define T_BIG_LEN 60000

typedef struct t_answer {
    int done, status;
    long long num[8];
    int found[8];
    size_t len;
    int same;                   /* the data matched t_expect */
} t_answer;

static uv_loop_t *loop;
static const char *t_expect;
static size_t t_expect_len;

static void t_answered(const upesi_store_result *r, void *arg)
{
    t_answer *a = arg;
    a->done = 1;
    a->status = r->status;
    for (size_t i = 0; r->status == 0 && i < r->count && i < 8; i++) {
        a->found[i] = r->values[i].found;
        a->num[i] = r->values[i].num;
    }
    if (r->status == 0 && r->count && r->values[0].data) {
        a->len = r->values[0].len;
        a->same = t_expect && a->len == t_expect_len &&
                  !memcmp(r->values[0].data, t_expect, a->len);
    }
}

static void t_wait_all(t_answer *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        while (!a[i].done)
            uv_run(loop, UV_RUN_ONCE);
}

static t_answer *t_one(upesi_store_op *op, t_answer *a)
{
    if (op == NULL) {
        a->done = 1;
        a->status = -999;
    }
    t_wait_all(a, 1);
    return a;
}

static void t_tick(uv_timer_t *t)
{
    (void)t;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(0x7f000001) };
    socklen_t sl = sizeof sin;
    bind(fd, (struct sockaddr *)&sin, sizeof sin);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);
    return ntohs(sin.sin_port);
}

/* a command on a connection of our own; the reply's integer, or -1 */
static long long t_cli(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

/* calls=N of a command in INFO commandstats, 0 when never called */
static long long t_calls(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, "INFO commandstats");
    long long n = 0;
    char pat[64];
    snprintf(pat, sizeof pat, "cmdstat_%s:calls=", cmd);
    const char *at = r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
    at = at ? strstr(at, pat) : NULL;
    if (at)
        n = strtoll(at + strlen(pat), NULL, 10);
    if (r)
        freeReplyObject(r);
    return n;
}

int main(void)
{
    const char *server = "/usr/bin/redis-server";
    if (access(server, X_OK) != 0) {
        printf("1..0 # SKIP redis-server is not installed\n");
        return 0;
    }
    plan(22);
    loop = uv_default_loop();
    uv_timer_t keepalive;
    uv_timer_init(loop, &keepalive);
    uv_timer_start(&keepalive, t_tick, 10, 10);
    up_stats_init(1024);

    char dir[64], port_text[16], logfile[96];
    snprintf(dir, sizeof dir, "/tmp/upesi-store-redis-%d", (int)getpid());
    mkdir(dir, 0700);
    int port = free_port();
    snprintf(port_text, sizeof port_text, "%d", port);
    snprintf(logfile, sizeof logfile, "%s/redis.log", dir);
    pid_t rpid = fork();
    if (rpid == 0) {
        execl(server, server, "--port", port_text, "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no", "--dir", dir,
              "--logfile", logfile, (char *)NULL);
        _exit(127);
    }
    redisContext *cli = NULL;
    for (int i = 0; i < 100 && cli == NULL; i++) {
        cli = redisConnect("127.0.0.1", port);
        if (cli && cli->err) {
            redisFree(cli);
            cli = NULL;
            usleep(50000);
        }
    }
    if (!ok(cli != NULL, "redis-server listens on port %d", port)) {
        kill(rpid, SIGTERM);
        return done_testing();
    }

    up_store_params p = { .timeout_ms = 5000, .size = 1 << 20 };
    char url[64], err[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    up_store_url_parse(url, &p.url, err, sizeof err);
    up_store_worker_start(loop, &p);

    /* many calls in one loop iteration: pipelined, answered in order */
    static t_answer many[T_MANY];
    static long long order[T_MANY];
    int started = 1;
    for (int i = 0; i < T_MANY; i++)
        started &= up_store_incr("t", "many", 1, 60000, t_answered,
                                 &many[i]) != NULL;
    t_wait_all(many, T_MANY);
    int in_order = started;
    for (int i = 0; i < T_MANY; i++) {
        order[i] = many[i].num[0];
        in_order &= many[i].status == 0 && order[i] == i + 1;
    }
    ok(in_order, "%d increments started in one loop iteration: each "
       "answered, running sums 1..%d in call order", T_MANY, T_MANY);
    long long pttl = t_cli(cli, "PTTL t:many");
    ok(pttl > 59000 && pttl <= 60000, "the counter has the ttl of its "
       "creating call (%lld ms)", pttl);

    /* more than a socket buffer takes at once: the rest when it has room */
    static char big[T_BIG_LEN];
    static t_answer sets[T_BIG], gets[T_BIG];
    for (int i = 0; i < T_BIG; i++) {
        char key[16];
        memset(big, 'a' + i % 26, sizeof big);
        snprintf(key, sizeof key, "big%d", i);
        up_store_set("t", key, big, sizeof big, 0, t_answered, &sets[i]);
    }
    t_wait_all(sets, T_BIG);
    int all_set = 1;
    for (int i = 0; i < T_BIG; i++)
        all_set &= sets[i].status == 0;
    ok(all_set, "%d values of %d bytes set in one loop iteration (%d KB "
       "queued at once)", T_BIG, T_BIG_LEN, T_BIG * T_BIG_LEN / 1000);
    int all_same = 1;
    for (int i = 0; i < T_BIG; i++) {
        char key[16];
        memset(big, 'a' + i % 26, sizeof big);
        t_expect = big;
        t_expect_len = sizeof big;
        snprintf(key, sizeof key, "big%d", i);
        memset(&gets[i], 0, sizeof gets[i]);
        t_one(up_store_get("t", key, t_answered, &gets[i]), &gets[i]);
        all_same &= gets[i].status == 0 && gets[i].same;
    }
    t_expect = NULL;
    ok(all_same, "... each reads back whole");

    /* the batch increment script, by SHA-1 */
    long long evalsha0 = t_calls(cli, "evalsha"), eval0 = t_calls(cli, "eval");
    const char *keys[3] = { "m1", "m2", "m1" };
    const long long by[3] = { 2, 5, 3 };
    t_answer a = { 0 };
    t_one(up_store_mincr("t", keys, by, 3, 30000, t_answered, &a), &a);
    ok(a.status == 0 && a.num[0] == 2 && a.num[1] == 5 && a.num[2] == 5,
       "mincr: running sums (%lld %lld %lld)", a.num[0], a.num[1], a.num[2]);
    pttl = t_cli(cli, "PTTL t:m2");
    ok(pttl > 29000 && pttl <= 30000, "... the new keys take its ttl (%lld)",
       pttl);
    ok(t_calls(cli, "evalsha") == evalsha0 + 1 &&
       t_calls(cli, "eval") == eval0, "... called as EVALSHA, the script's "
       "text not sent");

    /* Redis forgets its scripts: NOSCRIPT, then the call goes as text */
    redisReply *r = redisCommand(cli, "SCRIPT FLUSH");
    if (r)
        freeReplyObject(r);
    memset(&a, 0, sizeof a);
    t_one(up_store_mincr("t", keys, by, 3, 30000, t_answered, &a), &a);
    ok(a.status == 0 && a.num[0] == 7 && a.num[1] == 10 && a.num[2] == 10,
       "after SCRIPT FLUSH mincr still works, once (%lld %lld %lld)",
       a.num[0], a.num[1], a.num[2]);
    ok(t_calls(cli, "eval") == eval0 + 1, "... sent again as EVAL after "
       "NOSCRIPT");
    memset(&a, 0, sizeof a);
    t_one(up_store_mincr("t", keys, by, 3, 30000, t_answered, &a), &a);
    ok(a.status == 0 && a.num[0] == 12 && t_calls(cli, "eval") == eval0 + 1,
       "... and the next call is EVALSHA again (the EVAL taught Redis)");

    /* remove the expiry: the other script, the same way */
    r = redisCommand(cli, "SCRIPT FLUSH");
    if (r)
        freeReplyObject(r);
    memset(&a, 0, sizeof a);
    t_one(up_store_expire("t", "m2", 0, t_answered, &a), &a);
    ok(a.status == 0 && a.found[0] && t_cli(cli, "PTTL t:m2") == -1,
       "expire 0 after SCRIPT FLUSH: the expiry removed");
    memset(&a, 0, sizeof a);
    t_one(up_store_expire("t", "nokey", 0, t_answered, &a), &a);
    ok(a.status == 0 && !a.found[0], "... of a key that does not exist: "
       "not found");

    /* a text among the keys: -EINVAL, nothing changed (the script) */
    r = redisCommand(cli, "SET t:text hello");
    if (r)
        freeReplyObject(r);
    const char *mixed[2] = { "m1", "text" };
    const long long one[2] = { 1, 1 };
    memset(&a, 0, sizeof a);
    t_one(up_store_mincr("t", mixed, one, 2, 0, t_answered, &a), &a);
    ok(a.status == -EINVAL, "mincr with a text among the keys: -EINVAL");
    memset(&a, 0, sizeof a);
    t_one(up_store_get("t", "m1", t_answered, &a), &a);
    ok(a.num[0] == 15, "... and m1 is unchanged (%lld)", a.num[0]);

    /* values INCRBY refuses, found before the first write: Redis does
     * not undo a script's writes, so m1 must stay as it is */
    static const struct { const char *set, *what; } odd[] = {
        { "SET t:odd 007", "a number with a leading zero" },
        { "SET t:odd -0", "-0" },
        { "SET t:odd 9223372036854775807", "LLONG_MAX + 1 (overflow)" },
    };
    const char *with_odd[2] = { "m1", "odd" };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        r = redisCommand(cli, odd[i].set);
        if (r)
            freeReplyObject(r);
        memset(&a, 0, sizeof a);
        t_one(up_store_mincr("t", with_odd, one, 2, 0, t_answered, &a), &a);
        int st = a.status;
        memset(&a, 0, sizeof a);
        t_one(up_store_get("t", "m1", t_answered, &a), &a);
        ok(st == -EINVAL && a.num[0] == 15,
           "mincr beside %s: -EINVAL (%d), m1 unchanged (%lld)", odd[i].what,
           st, a.num[0]);
    }

    /* a new connection loads the scripts before its first call */
    r = redisCommand(cli, "SCRIPT FLUSH");
    if (r)
        freeReplyObject(r);
    r = redisCommand(cli, "CLIENT KILL TYPE normal SKIPME yes");
    if (r)
        freeReplyObject(r);
    uint64_t end = uv_now(loop) + 3000;
    memset(&a, 0, sizeof a);
    a.status = -ECONNREFUSED;
    while (a.status == -ECONNREFUSED && uv_now(loop) < end) {
        memset(&a, 0, sizeof a);
        t_one(up_store_get("t", "m1", t_answered, &a), &a);
        if (a.status == -ECONNREFUSED) {
            uint64_t until = uv_now(loop) + 50;
            while (uv_now(loop) < until)
                uv_run(loop, UV_RUN_ONCE);
        }
    }
    ok(a.status == 0, "reconnected after the server closed the connection");
    long long eval1 = t_calls(cli, "eval");
    memset(&a, 0, sizeof a);
    t_one(up_store_mincr("t", keys, by, 3, 0, t_answered, &a), &a);
    ok(a.status == 0 && a.num[2] == 20, "mincr on the new connection "
       "(%lld)", a.num[2]);
    ok(t_calls(cli, "eval") == eval1, "... by EVALSHA: the connection "
       "loaded the scripts (SCRIPT LOAD), no NOSCRIPT round");

    /* Redis gone, and its port taken by a listener that never accepts and
     * whose queue is full, as a host that drops packets: a reconnect
     * attempt then hangs until store_timeout.  A call meanwhile is not
     * queued behind it: it fails at once. */
    redisFree(cli);
    cli = NULL;
    kill(rpid, SIGKILL);
    waitpid(rpid, NULL, 0);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(0x7f000001) };
    int fill[4] = { -1, -1, -1, -1 };
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
        listen(lfd, 0) == 0) {
        for (int i = 0; i < 4; i++) {       /* fill the accept queue */
            fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (connect(fill[i], (struct sockaddr *)&sin, sizeof sin) != 0 &&
                errno != EINPROGRESS)
                diag("fill %d: %s", i, strerror(errno));
        }
    } else {
        diag("cannot listen on port %d again: %s", port, strerror(errno));
    }
    /* the store sees the connection lost, then retries into the queue */
    for (uint64_t until = uv_now(loop) + 800; uv_now(loop) < until;)
        uv_run(loop, UV_RUN_ONCE);
    memset(&a, 0, sizeof a);
    uint64_t t0 = uv_now(loop);
    t_one(up_store_get("t", "m1", t_answered, &a), &a);
    uint64_t took = uv_now(loop) - t0;
    ok(a.status == -ECONNREFUSED && took < 100,
       "while a reconnect hangs, a call fails at once: %d after %llu ms",
       a.status, (unsigned long long)took);
    for (int i = 0; i < 4; i++)
        if (fill[i] >= 0)
            close(fill[i]);
    close(lfd);

    up_store_worker_stop();
    kill(rpid, SIGTERM);
    waitpid(rpid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    return done_testing();
}
