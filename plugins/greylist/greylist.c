/*
 * greylist.c - greylisting at RCPT on the host's store, so that one host
 * (lmdb) or a fleet sharing one Redis decides alike
 * (docs/plugins/greylist.md, issue 19).
 *
 * Each recipient is decided on its own.  The triplet (client network /24
 * or /64, sender, recipient) seen for the first time is answered 451 4.7.1
 * and remembered for `window`; the same triplet again after `delay` (and
 * within `window`) passes, and so does the client's whole network from
 * then on: it is remembered for `pass_ttl`, refreshed by the recipients it
 * sends (written again once 1% of pass_ttl went by, not per recipient).  Exempt (SMTP.Greylist.Whitelisted): authenticated sessions, a
 * client an earlier plugin whitelisted (conn note "whitelisted":
 * private_lists, dnswl), senders whose domain is in `exempt_domains`.
 *
 * Store keys (prefixed "greylist:" by the host):
 *   t:<network>|<sender>|<recipient>   first seen, ms since the epoch
 *   p:<network>                        the network passed: when its
 *                                      pass_ttl was last refreshed (ms)
 * Both are read with one store_mget per recipient, unless the worker saw
 * the network pass less than `pass_cache` ago (its own memory: a network
 * that passed stays passed for pass_ttl, so this changes no answer).
 *
 * Notes: conn "greylist.passed" = "1" once a recipient passed after its
 * delay (karma scores it), txn "greylist" = "deferred" | "passed" |
 * "whitelisted" for the last recipient.
 *
 * Fails: as store_failure says (accept: the recipient goes on ungreylisted;
 * tempfail: 451 4.3.0), logged and counted in Greylist.Store.Failures.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../common/netprefix.h"
#include "../common/store_failure.h"
#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *gl_ctx;

typedef struct gl_config {
    double delay, window, pass_ttl, pass_cache;
    int v4_bits, v6_bits;
    int exempt_auth, exempt_whitelisted;
    int store_failure;
    char *message;
    char **domains;
    size_t ndomains;
} gl_config;

static void *gl_config_new(void)
{
    return calloc(1, sizeof(gl_config));
}

static void gl_config_free(void *p)
{
    gl_config *c = p;
    for (size_t i = 0; i < c->ndomains; i++)
        free(c->domains[i]);
    free(c->domains);
    api->free(c->message);
    free(c);
}

static int gl_set_domain(void *p, const char *item, char *err, size_t errlen)
{
    gl_config *c = p;
    if (item[0] == '@')
        item++;
    if (!*item || strchr(item, '@') || strlen(item) > 253) {
        snprintf(err, errlen, "'%s' is not a domain", item);
        return -1;
    }
    char **grown = realloc(c->domains, (c->ndomains + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    c->domains = grown;
    if ((c->domains[c->ndomains] = strdup(item)) == NULL)
        return -1;
    c->ndomains++;
    return 0;
}

static int gl_config_check(void *p, char *err, size_t errlen)
{
    gl_config *c = p;
    if (c->window <= c->delay) {
        snprintf(err, errlen, "window (%gs) must be longer than delay (%gs): "
                 "a retry could never pass", c->window, c->delay);
        return -1;
    }
    if (strpbrk(c->message, "\r\n%")) {
        snprintf(err, errlen, "message: one line without %%");
        return -1;
    }
    return 0;
}

static const char *const gl_failure_choices[] = { "accept", "tempfail",
                                                  NULL };

static const upesi_setting gl_settings[] = {
    { "delay", UPESI_SETTING_DURATION, offsetof(gl_config, delay), 1, 86400,
      NULL, NULL, "5m", "how long a new triplet is refused before a retry "
      "passes (1 s at least, for tests)" },
    { "window", UPESI_SETTING_DURATION, offsetof(gl_config, window), 2,
      30 * 86400.0, NULL, NULL, "24h", "how long a first seen triplet waits "
      "for its retry; after it the triplet is new again" },
    { "pass_ttl", UPESI_SETTING_DURATION, offsetof(gl_config, pass_ttl), 1,
      400 * 86400.0, NULL, NULL, "864h", "how long a client network that "
      "passed is let through without delay (36 days), refreshed with every "
      "recipient it sends" },
    { "pass_cache", UPESI_SETTING_DURATION, offsetof(gl_config, pass_cache),
      0, 3600, NULL, NULL, "60s", "how long a worker trusts a network it saw "
      "passed without asking the store again (0: ask every time)" },
    { "ipv4_prefix", UPESI_SETTING_INT, offsetof(gl_config, v4_bits), 8, 32,
      NULL, NULL, "24", "the client network of an IPv4 client (bits)" },
    { "ipv6_prefix", UPESI_SETTING_INT, offsetof(gl_config, v6_bits), 16, 128,
      NULL, NULL, "64", "the client network of an IPv6 client (bits)" },
    { "exempt_authenticated", UPESI_SETTING_BOOL,
      offsetof(gl_config, exempt_auth), 0, 0, NULL, NULL, "on",
      "authenticated sessions are not greylisted" },
    { "exempt_whitelisted", UPESI_SETTING_BOOL,
      offsetof(gl_config, exempt_whitelisted), 0, 0, NULL, NULL, "on",
      "clients an earlier plugin whitelisted (private_lists, dnswl: conn "
      "note `whitelisted`) are not greylisted" },
    { "exempt_domains", UPESI_SETTING_LIST, 0, 0, 0, NULL, gl_set_domain,
      NULL, "sender domains that are not greylisted (exact, any case)" },
    { "message", UPESI_SETTING_STRING, offsetof(gl_config, message), 0, 0,
      NULL, NULL, "Greylisted, please try again later",
      "the text of the 451 4.7.1 reply" },
    { "store_failure", UPESI_SETTING_ENUM, offsetof(gl_config, store_failure),
      0, 0, gl_failure_choices, NULL, "accept", "when the store fails: "
      "`accept` the recipient ungreylisted, or `tempfail` it (451 4.3.0)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

/* ---------------------------------------------------------------------- */

/* One recipient being decided. */
typedef struct gl_req {
    upesi_call *call;
    upesi_store_op *op;
    const gl_config *cfg;
    char net[64];
    char tkey[UPESI_STORE_KEY_MAX];
    char pkey[80];
} gl_req;

static long long gl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The worker's memory of networks that passed (pass_cache): a network
 * that passed stays passed for pass_ttl, so trusting it for a minute
 * without a store round trip changes no answer.  Direct-mapped: a
 * collision only costs a store read. */
#define GL_CACHE_SLOTS 4096

static struct gl_cache_slot {
    char net[64];
    long long until_ms;
} gl_cache[GL_CACHE_SLOTS];

static struct gl_cache_slot *gl_cache_slot(const char *net)
{
    uint32_t h = 2166136261u;           /* FNV-1a */
    for (const char *p = net; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &gl_cache[h % GL_CACHE_SLOTS];
}

static void gl_ignore(const upesi_store_result *r, void *arg)
{
    (void)r;
    (void)arg;
}

static void gl_on_cancel(upesi_call *call, void *arg)
{
    (void)call;
    gl_req *q = arg;
    if (q->op)
        api->store_cancel(q->op);
    free(q);
}

static void gl_done(gl_req *q, upesi_verdict v)
{
    upesi_call *call = q->call;
    free(q);
    api->resume(call, v);
}

static void gl_count(upesi_call *call, const char *what, const char *stat)
{
    api->note_set(call, UPESI_SCOPE_TXN, "greylist", what);
    api->stat_add(gl_ctx, stat, 1);
}

/* The worker saw net pass (or still passed): trusted for pass_cache. */
static void gl_cache_put(const gl_config *c, const char *net, long long now)
{
    if (c->pass_cache <= 0)
        return;
    struct gl_cache_slot *slot = gl_cache_slot(net);
    snprintf(slot->net, sizeof slot->net, "%s", net);
    slot->until_ms = now + (long long)(c->pass_cache * 1000);
}

/* p:<network> = when it was (last) refreshed, ms since the epoch */
static void gl_set_passed(const char *pkey, long long now, long long ttl_ms)
{
    char v[24];
    int n = snprintf(v, sizeof v, "%lld", now);
    api->store_set(gl_ctx, pkey, v, (size_t)n, ttl_ms, gl_ignore, NULL);
}

static void gl_defer(gl_req *q)
{
    gl_count(q->call, "deferred", "SMTP.Greylist.Deferred");
    api->reply(q->call, 451, "4.7.1", "%s", q->cfg->message);
    gl_done(q, UPESI_DENYSOFT);
}

static void gl_on_first_written(const upesi_store_result *r, void *arg)
{
    gl_req *q = arg;
    q->op = NULL;
    if (r->status != 0) {
        gl_done(q, store_failure_note(api, gl_ctx, q->call,
                                      q->cfg->store_failure, r->status,
                                      "Greylist.Store.Failures",
                                      "recording the triplet"));
        return;
    }
    api->log_call(q->call, UPESI_LOG_INFO, "%s deferred (first seen)",
                  q->tkey + 2);
    gl_defer(q);
}

static void gl_on_read(const upesi_store_result *r, void *arg)
{
    gl_req *q = arg;
    const gl_config *c = q->cfg;
    upesi_call *call = q->call;
    q->op = NULL;
    if (r->status != 0) {
        upesi_verdict v = store_failure_note(
            api, gl_ctx, call, c->store_failure, r->status,
            "Greylist.Store.Failures", "reading the triplet");
        gl_done(q, v);
        return;
    }
    long long pass_ms = (long long)(c->pass_ttl * 1000);
    long long now = gl_now_ms();
    if (r->values[0].found) {        /* the network passed before */
        /* refreshed when 1% of pass_ttl went by since the last refresh
         * (the value is its time): a busy network costs no write per
         * recipient, and its expiry moves at most 1% early */
        if (now - r->values[0].num > pass_ms / 100)
            gl_set_passed(q->pkey, now, pass_ms);
        gl_cache_put(c, q->net, now);
        gl_count(call, "passed", "SMTP.Greylist.Passed");
        gl_done(q, UPESI_CONT);
        return;
    }
    long long delay_ms = (long long)(c->delay * 1000);
    if (r->values[1].found) {
        long long first = r->values[1].num;
        long long waited = now - first;
        if (waited >= delay_ms) {
            gl_set_passed(q->pkey, now, pass_ms);
            gl_cache_put(c, q->net, now);
            api->store_del(gl_ctx, q->tkey, gl_ignore, NULL);
            api->note_set(call, UPESI_SCOPE_CONN, "greylist.passed", "1");
            api->log_call(call, UPESI_LOG_INFO, "%s passed after "
                          "%.1fs", q->tkey + 2, (double)waited / 1000);
            gl_count(call, "passed", "SMTP.Greylist.Passed");
            gl_done(q, UPESI_CONT);
            return;
        }
        api->log_call(call, UPESI_LOG_INFO, "%s deferred (retry "
                      "too early, %.1fs of %gs)", q->tkey + 2,
                      (double)waited / 1000, c->delay);
    } else {
        /* first seen: deferred only once the first sight is written.  A
         * store that reads but cannot write (LMDB at store_size, Redis at
         * maxmemory, a read-only replica) would otherwise defer the
         * sender at every try and never let it pass: that is a store
         * failure, answered by store_failure */
        char first[24];
        int n = snprintf(first, sizeof first, "%lld", now);
        q->op = api->store_set(gl_ctx, q->tkey, first, (size_t)n,
                               (long long)(c->window * 1000),
                               gl_on_first_written, q);
        if (q->op == NULL)
            gl_done(q, store_failure_note(api, gl_ctx, call,
                                          c->store_failure, -EIO,
                                          "Greylist.Store.Failures",
                                          "recording the triplet"));
        return;
    }
    gl_defer(q);
}

static int gl_exempt_domain(const gl_config *c, const char *sender)
{
    const char *at = sender ? strrchr(sender, '@') : NULL;
    if (at == NULL)
        return 0;
    for (size_t i = 0; i < c->ndomains; i++)
        if (!strcasecmp(at + 1, c->domains[i]))
            return 1;
    return 0;
}

static void gl_lower_into(char *dst, size_t room, const char *s)
{
    size_t n = strlen(dst);
    while (*s && n + 1 < room)
        dst[n++] = (char)tolower((unsigned char)*s++);
    dst[n] = '\0';
}

static upesi_verdict gl_rcpt(upesi_call *call)
{
    const gl_config *c = api->config(call);
    const upesi_conn_info *conn = api->conn(call);
    if (c == NULL || conn == NULL)
        return UPESI_CONT;
    const char *sender = api->sender(call);
    const char *why = NULL;
    if (c->exempt_auth && conn->authenticated)
        why = "authenticated";
    else if (c->exempt_whitelisted &&
             api->note_get(call, UPESI_SCOPE_CONN, "whitelisted"))
        why = api->note_get(call, UPESI_SCOPE_CONN, "whitelisted");
    else if (gl_exempt_domain(c, sender))
        why = "exempt sender domain";
    if (why) {
        api->log_call(call, UPESI_LOG_DEBUG, "not greylisted (%s)",
                      why);
        gl_count(call, "whitelisted", "SMTP.Greylist.Whitelisted");
        return UPESI_CONT;
    }
    gl_req *q = calloc(1, sizeof *q);
    if (q == NULL)
        return UPESI_CONT;
    q->call = call;
    q->cfg = c;
    if (netprefix(conn->remote_ip, c->v4_bits, c->v6_bits, q->net,
                  sizeof q->net) != 0) {
        free(q);
        return UPESI_CONT;
    }
    if (c->pass_cache > 0) {
        const struct gl_cache_slot *slot = gl_cache_slot(q->net);
        if (!strcmp(slot->net, q->net) && slot->until_ms > gl_now_ms()) {
            free(q);
            gl_count(call, "passed", "SMTP.Greylist.Passed");
            return UPESI_CONT;
        }
    }
    snprintf(q->pkey, sizeof q->pkey, "p:%s", q->net);
    snprintf(q->tkey, sizeof q->tkey, "t:%s|", q->net);
    gl_lower_into(q->tkey, sizeof q->tkey, sender ? sender : "");
    gl_lower_into(q->tkey, sizeof q->tkey, "|");
    gl_lower_into(q->tkey, sizeof q->tkey, api->address(call));
    const char *keys[2] = { q->pkey, q->tkey };
    q->op = api->store_mget(gl_ctx, keys, 2, gl_on_read, q);
    if (q->op == NULL) {
        free(q);
        return store_failure_note(api, gl_ctx, call, c->store_failure,
                                  -EIO, "Greylist.Store.Failures",
                                  "reading the triplet");
    }
    api->on_cancel(call, gl_on_cancel, q);
    return UPESI_PENDING;
}

static int gl_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                   size_t errlen)
{
    gl_ctx = ctx;
    api = host;
    (void)err;
    (void)errlen;
    return 0;
}

UPESI_PLUGIN = {
    /* the store's minor: a host without the store_* calls refuses to
     * load the plugin, so init need not test them */
    UPESI_PLUGIN_HEADER_NEEDS(UPESI_API_STORE_MINOR),
    .name = "greylist",
    .version = "1.0",
    .init = gl_init,
    .config_new = gl_config_new,
    .config_check = gl_config_check,
    .config_free = gl_config_free,
    .settings = gl_settings,
    .hooks = {
        [UPESI_HOOK_RCPT] = gl_rcpt,
    },
};
