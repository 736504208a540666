/*
 * limit.c - limits that hold across workers and hosts, on the host's
 * store (docs/plugins/limit.md, issue 19): concurrent connections and
 * connection rate per client IP, messages and recipients per client IP,
 * per authenticated user and per sender domain, and AUTH failures per
 * client IP and per account.
 *
 * Every limit is a store counter: store_incr is atomic across the workers
 * (lmdb) and the hosts (redis), so a window is exact, not per process.  A
 * window is fixed: it starts with the first event its key counts and the
 * key expires `window` later (the expiry a new key takes in store_incr).
 * A rule is `N/WINDOW` plus an optional verdict: the default (451 4.7.0,
 * 421 at connect), `421` (421 4.7.0 and close), or `tarpit DURATION` (the
 * reply is held that long, then the command goes on).
 *
 * Concurrent connections: the counter c:<ip> goes up at connect and down
 * at disconnect.  Its expiry, refreshed at every connect, is the safety
 * net for a worker that crashed holding connections: their counts vanish
 * `concurrency_ttl` after that IP's last connect.
 *
 * AUTH failures: the host counts them in conn notes "auth.failures" and
 * "auth.failed_user" (ABI 2.1).  At the next AUTH of the session (limit's
 * auth hook, before the auth plugin) or at disconnect, the new failures
 * are added to af:ip:<ip> and af:a:<account>; an AUTH on an IP or account
 * at its limit gets 454 4.7.0, at twice its limit 421 4.7.0 and the
 * connection closes, and the password is never checked.
 *
 * Statistics: SMTP.Limit.<Rule>.Exceeded per rule, Limit.Store.Failures.
 *
 * Fails: as store_failure says (accept: the command goes on unlimited;
 * tempfail: 451 4.3.0).
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/store_failure.h"
#include "limit_rule.h"
#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *lim_ctx;

enum {
    R_RATE, R_MSG_IP, R_MSG_USER, R_MSG_DOMAIN, R_RCPT_IP, R_RCPT_USER,
    R_RCPT_DOMAIN, R_AUTH_IP, R_AUTH_ACCOUNT, R_COUNT
};

/* the rule's key in limit.ini, its counter, its store key prefix */
static const struct {
    const char *key, *stat, *prefix, *what;
} lim_names[R_COUNT] = {
    { "rate_per_ip", "RatePerIP", "r:", "connections from your address" },
    { "messages_per_ip", "MessagesPerIP", "m:ip:",
      "messages from your address" },
    { "messages_per_user", "MessagesPerUser", "m:u:",
      "messages from your account" },
    { "messages_per_domain", "MessagesPerDomain", "m:d:",
      "messages from your domain" },
    { "recipients_per_ip", "RecipientsPerIP", "n:ip:",
      "recipients from your address" },
    { "recipients_per_user", "RecipientsPerUser", "n:u:",
      "recipients from your account" },
    { "recipients_per_domain", "RecipientsPerDomain", "n:d:",
      "recipients from your domain" },
    { "auth_failures_per_ip", "AuthFailuresPerIP", "af:ip:",
      "authentication failures from your address" },
    { "auth_failures_per_account", "AuthFailuresPerAccount", "af:a:",
      "authentication failures for this account" },
};

typedef struct lim_config {
    int concurrency;
    double concurrency_ttl;
    lim_rule rules[R_COUNT];
    int store_failure;
} lim_config;

static void *lim_config_new(void)
{
    return calloc(1, sizeof(lim_config));
}

static void lim_config_free(void *p)
{
    free(p);
}

#define LIM_SETTER(idx)                                                      \
    static int lim_set_##idx(void *p, const char *v, char *err,             \
                             size_t errlen)                                  \
    {                                                                        \
        return lim_parse_rule(&((lim_config *)p)->rules[idx], v, err,        \
                              errlen);                                       \
    }
LIM_SETTER(R_RATE)
LIM_SETTER(R_MSG_IP)
LIM_SETTER(R_MSG_USER)
LIM_SETTER(R_MSG_DOMAIN)
LIM_SETTER(R_RCPT_IP)
LIM_SETTER(R_RCPT_USER)
LIM_SETTER(R_RCPT_DOMAIN)
LIM_SETTER(R_AUTH_IP)
LIM_SETTER(R_AUTH_ACCOUNT)

static const char *const lim_failure_choices[] = { "accept", "tempfail",
                                                   NULL };

#define LIM_RULE(idx, help)                                                  \
    { lim_names[idx].key, UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,               \
      lim_set_##idx, "0", help }

static const upesi_setting lim_settings[] = {
    { "concurrency", UPESI_SETTING_INT, offsetof(lim_config, concurrency), 0,
      1000000, NULL, NULL, "0", "connections one client IP may hold at once "
      "(0: no limit); one more gets 421 4.7.0" },
    { "concurrency_ttl", UPESI_SETTING_DURATION,
      offsetof(lim_config, concurrency_ttl), 60, 7 * 86400.0, NULL, NULL,
      "1h", "the safety net of `concurrency`: a client IP's count vanishes "
      "this long after its last connect (counts a crashed worker held)" },
    { "rate_per_ip", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, lim_set_R_RATE,
      "0", "connections per client IP: `N/WINDOW` (`30/1m`), then `421` or "
      "`tarpit DELAY` optionally; past N: 421 4.7.0 (or the tarpit)" },
    LIM_RULE(R_MSG_IP, "transactions (MAIL) per client IP; past N: 451 "
             "4.7.0 at MAIL (same form as rate_per_ip)"),
    LIM_RULE(R_MSG_USER, "transactions per authenticated user"),
    LIM_RULE(R_MSG_DOMAIN, "transactions per sender domain"),
    LIM_RULE(R_RCPT_IP, "recipients per client IP; past N: 451 4.7.0 at "
             "RCPT"),
    LIM_RULE(R_RCPT_USER, "recipients per authenticated user"),
    LIM_RULE(R_RCPT_DOMAIN, "recipients per sender domain"),
    LIM_RULE(R_AUTH_IP, "AUTH failures per client IP across sessions and "
             "hosts: at N an AUTH gets 454 4.7.0, at 2N 421 and the "
             "connection closes (limit must come before auth in "
             "conf/plugins)"),
    LIM_RULE(R_AUTH_ACCOUNT, "AUTH failures per account (user name), the "
             "same way"),
    { "store_failure", UPESI_SETTING_ENUM, offsetof(lim_config, store_failure),
      0, 0, lim_failure_choices, NULL, "accept", "when the store fails: "
      "`accept` (not limited) or `tempfail` (451 4.3.0)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

static int lim_config_check(void *p, char *err, size_t errlen)
{
    lim_config *c = p;
    if ((c->rules[R_AUTH_IP].max || c->rules[R_AUTH_ACCOUNT].max)) {
        int me = api->plugin_position(lim_ctx, "limit");
        int auth = api->plugin_position(lim_ctx, "auth");
        if (auth >= 0 && me > auth) {
            snprintf(err, errlen, "auth_failures_*: limit must come before "
                     "auth in conf/plugins (its auth hook refuses before "
                     "the password is checked)");
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* checks: some counters incremented at once, then one verdict             */

#define LIM_MAX_CHECKS 4

typedef struct lim_req lim_req;

typedef struct lim_check {
    lim_req *req;
    upesi_store_op *op;
    int rule;                    /* R_*, or -1: concurrency */
    long long over;              /* exceeded when the count is > over */
    long long count;
    int done;
    char key[UPESI_STORE_KEY_MAX];
} lim_check;

struct lim_req {
    upesi_call *call;
    const lim_config *cfg;
    upesi_timer *tarpit;
    char ip[64];
    int pending, failed, status;
    size_t n;
    lim_check checks[LIM_MAX_CHECKS];
};

static void lim_ignore(const upesi_store_result *r, void *arg)
{
    (void)r;
    (void)arg;
}

static void lim_free(lim_req *q)
{
    for (size_t i = 0; i < q->n; i++)
        if (q->checks[i].op)
            api->store_cancel(q->checks[i].op);
    if (q->tarpit)
        api->timer_stop(q->tarpit);
    free(q);
}

static void lim_on_cancel(upesi_call *call, void *arg)
{
    (void)call;
    lim_free(arg);
}

static void lim_tarpit_done(void *arg)
{
    lim_req *q = arg;
    upesi_call *call = q->call;
    q->tarpit = NULL;
    lim_free(q);
    api->resume(call, UPESI_CONT);
}

static void lim_key(char *out, size_t len, int rule, const char *id)
{
    snprintf(out, len, "%s", lim_names[rule].prefix);
    size_t n = strlen(out);
    for (; *id && n + 1 < len; id++)
        out[n++] = (char)tolower((unsigned char)*id);
    out[n] = '\0';
}

/* An AUTH refused for too many failures counts as one more on the keys
 * that refused it, so that a client that keeps trying reaches 421. */
static void lim_auth_refused(lim_req *q)
{
    for (size_t i = 0; i < q->n; i++) {
        lim_check *k = &q->checks[i];
        if (k->count > k->over && k->rule >= 0)
            api->store_incr(lim_ctx, k->key, 1,
                            (long long)(q->cfg->rules[k->rule].window * 1000),
                            lim_ignore, NULL);
    }
}

/* Every answer is in: the strongest verdict of the exceeded rules. */
static void lim_decide(lim_req *q)
{
    upesi_call *call = q->call;
    const lim_config *c = q->cfg;
    upesi_hook hook = api->hook(call);
    if (q->failed) {
        upesi_verdict v = store_failure_note(
            api, lim_ctx, call, c->store_failure, q->status,
            "Limit.Store.Failures", "counting");
        lim_free(q);
        api->resume(call, v);
        return;
    }
    int worst = -1;                   /* index of the check that decides */
    int worst_rank = 0;
    for (size_t i = 0; i < q->n; i++) {
        lim_check *k = &q->checks[i];
        if (k->count <= k->over)
            continue;
        int rank;
        if (k->rule < 0) {
            rank = 3;
        } else {
            const lim_rule *r = &c->rules[k->rule];
            if (k->rule == R_AUTH_IP || k->rule == R_AUTH_ACCOUNT)
                rank = k->count > 2 * r->max - 1 ? 3 : 2;
            else
                rank = r->verdict == V_TARPIT ? 1 :
                       r->verdict == V_421 ? 3 : 2;
        }
        char stat[96];
        snprintf(stat, sizeof stat, "SMTP.Limit.%s.Exceeded",
                 k->rule < 0 ? "Concurrency" : lim_names[k->rule].stat);
        api->stat_add(lim_ctx, stat, 1);
        if (rank > worst_rank) {
            worst_rank = rank;
            worst = (int)i;
        }
    }
    if (worst < 0) {
        lim_free(q);
        api->resume(call, UPESI_CONT);
        return;
    }
    lim_check *k = &q->checks[worst];
    const char *what = k->rule < 0 ? "concurrent connections from your "
                                     "address" : lim_names[k->rule].what;
    long long max = k->rule < 0 ? c->concurrency : c->rules[k->rule].max;
    api->log_call(call, UPESI_LOG_NOTICE, "%s %s: %lld > %lld%s",
                  q->ip, k->rule < 0 ? "concurrency" : lim_names[k->rule].key,
                  k->count, k->over, worst_rank == 1 ? ", tarpit" : "");
    if (worst_rank == 1) {
        q->tarpit = api->timer_start(lim_ctx,
            (uint64_t)(c->rules[k->rule].tarpit * 1000), lim_tarpit_done, q);
        if (q->tarpit == NULL) {
            lim_free(q);
            api->resume(call, UPESI_CONT);
        }
        return;
    }
    upesi_verdict v;
    if (hook == UPESI_HOOK_AUTH)
        lim_auth_refused(q);
    if (hook == UPESI_HOOK_AUTH && worst_rank == 2) {
        api->reply(call, 454, "4.7.0", "Too many %s, try again later",
                   what);
        v = UPESI_DENYSOFT;
    } else if (worst_rank == 3 || hook == UPESI_HOOK_CONNECT) {
        api->reply(call, 421, "4.7.0", "Too many %s (at most %lld), try "
                   "again later", what, max);
        v = UPESI_DENYSOFTDISCONNECT;
    } else {
        api->reply(call, 451, "4.7.0", "Too many %s (at most %lld), try "
                   "again later", what, max);
        v = UPESI_DENYSOFT;
    }
    lim_free(q);
    api->resume(call, v);
}

static void lim_on_count(const upesi_store_result *r, void *arg)
{
    lim_check *k = arg;
    lim_req *q = k->req;
    k->op = NULL;
    k->done = 1;
    if (r->status != 0) {
        q->failed = 1;
        q->status = r->status;
        /* not counted, unless it timed out: then the increment may still
         * be made, and the disconnect gives it back (a count below 0 is
         * removed, lim_conc_back) */
        if (k->rule < 0 && r->status != -ETIMEDOUT)
            api->note_set(q->call, UPESI_SCOPE_CONN, "limit.held", "0");
    } else {
        k->count = r->values[0].num;
        if (k->rule < 0 && k->count > k->over) {  /* refused: not held */
            api->store_incr(lim_ctx, k->key, -1, 0, lim_ignore, NULL);
            api->note_set(q->call, UPESI_SCOPE_CONN, "limit.held", "0");
        }
    }
    if (--q->pending == 0)
        lim_decide(q);
}

static lim_req *lim_new(upesi_call *call, const lim_config *c)
{
    lim_req *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->call = call;
    q->cfg = c;
    snprintf(q->ip, sizeof q->ip, "%s", api->conn(call)->remote_ip);
    return q;
}

/* Add a check: increment key by `by` (a new key expires in window_s). */
static void lim_add(lim_req *q, int rule, const char *key, long long by,
                    double window_s, long long over)
{
    if (q->n >= LIM_MAX_CHECKS)
        return;
    lim_check *k = &q->checks[q->n];
    snprintf(k->key, sizeof k->key, "%s", key);
    k->req = q;
    k->rule = rule;
    k->over = over;
    k->op = api->store_incr(lim_ctx, key, by, (long long)(window_s * 1000),
                            lim_on_count, k);
    if (k->op == NULL) {
        q->failed = 1;
        q->status = -EIO;
        return;
    }
    q->n++;
    q->pending++;
}

static upesi_verdict lim_start(lim_req *q)
{
    if (q->pending == 0) {
        upesi_call *call = q->call;
        int failed = q->failed, status = q->status;
        const lim_config *c = q->cfg;
        free(q);
        if (failed)
            return store_failure_note(api, lim_ctx, call, c->store_failure,
                                      status, "Limit.Store.Failures",
                                      "counting");
        return UPESI_CONT;
    }
    api->on_cancel(q->call, lim_on_cancel, q);
    return UPESI_PENDING;
}

/* Add a rule's check on id (skipped when the rule is off or id empty). */
static void lim_rule_check(lim_req *q, int rule, const char *id,
                           long long by, long long over_delta)
{
    const lim_rule *r = &q->cfg->rules[rule];
    if (r->max == 0 || id == NULL || *id == '\0')
        return;
    char key[UPESI_STORE_KEY_MAX];
    lim_key(key, sizeof key, rule, id);
    lim_add(q, rule, key, by, r->window, r->max + over_delta);
}

/* ---------------------------------------------------------------------- */
/* hooks                                                                   */

static upesi_verdict lim_connect(upesi_call *call)
{
    const lim_config *c = api->config(call);
    if (c == NULL || (c->concurrency == 0 && c->rules[R_RATE].max == 0))
        return UPESI_CONT;
    lim_req *q = lim_new(call, c);
    if (q == NULL)
        return UPESI_CONT;
    if (c->concurrency) {
        char key[96];
        snprintf(key, sizeof key, "c:%s", q->ip);
        long long ttl = (long long)(c->concurrency_ttl * 1000);
        /* the expiry is set (refreshed) by the store_expire right after,
         * in the same batch, at every connect: the count lives while the
         * IP is active, and no longer than concurrency_ttl after */
        size_t issued = q->n;
        lim_add(q, -1, key, 1, 0, c->concurrency);
        /* held from the moment the increment is sent, not when it is
         * answered: a client that leaves first (its call cancelled, the
         * increment made all the same) or a store that answers too late
         * must still give it back at disconnect, or the count only grows
         * and the address is refused for good */
        if (q->n > issued)
            api->note_set(call, UPESI_SCOPE_CONN, "limit.held", "1");
        api->store_expire(lim_ctx, key, ttl, lim_ignore, NULL);
    }
    lim_rule_check(q, R_RATE, q->ip, 1, 0);
    return lim_start(q);
}

static const char *lim_domain(const char *address)
{
    const char *at = address ? strrchr(address, '@') : NULL;
    return at ? at + 1 : NULL;
}

static const char *lim_user(upesi_call *call)
{
    const upesi_conn_info *conn = api->conn(call);
    return conn->authenticated ? conn->auth_user : NULL;
}

static upesi_verdict lim_mail(upesi_call *call)
{
    const lim_config *c = api->config(call);
    if (c == NULL)
        return UPESI_CONT;
    lim_req *q = lim_new(call, c);
    if (q == NULL)
        return UPESI_CONT;
    const char *sender = api->address(call);
    lim_rule_check(q, R_MSG_IP, q->ip, 1, 0);
    lim_rule_check(q, R_MSG_USER, lim_user(call), 1, 0);
    lim_rule_check(q, R_MSG_DOMAIN, lim_domain(sender), 1, 0);
    return lim_start(q);
}

static upesi_verdict lim_rcpt(upesi_call *call)
{
    const lim_config *c = api->config(call);
    if (c == NULL)
        return UPESI_CONT;
    lim_req *q = lim_new(call, c);
    if (q == NULL)
        return UPESI_CONT;
    lim_rule_check(q, R_RCPT_IP, q->ip, 1, 0);
    lim_rule_check(q, R_RCPT_USER, lim_user(call), 1, 0);
    lim_rule_check(q, R_RCPT_DOMAIN, lim_domain(api->sender(call)), 1, 0);
    return lim_start(q);
}

/* AUTH failures the host noted since limit last looked: added to the
 * store's counters (fire and forget; the store keeps a worker's calls in
 * order, so a check issued after sees them). */
static void lim_auth_flush(upesi_call *call, const lim_config *c)
{
    long long failures = api->note_get_int(call, UPESI_SCOPE_CONN,
                                           "auth.failures", 0);
    long long counted = api->note_get_int(call, UPESI_SCOPE_CONN,
                                          "limit.auth_counted", 0);
    if (failures <= counted)
        return;
    api->note_set_int(call, UPESI_SCOPE_CONN, "limit.auth_counted",
                      failures);
    const char *user = api->note_get(call, UPESI_SCOPE_CONN,
                                     "auth.failed_user");
    char key[UPESI_STORE_KEY_MAX];
    const lim_rule *r = &c->rules[R_AUTH_IP];
    if (r->max) {
        lim_key(key, sizeof key, R_AUTH_IP, api->conn(call)->remote_ip);
        api->store_incr(lim_ctx, key, failures - counted,
                        (long long)(r->window * 1000), lim_ignore, NULL);
    }
    r = &c->rules[R_AUTH_ACCOUNT];
    if (r->max && user && *user) {
        lim_key(key, sizeof key, R_AUTH_ACCOUNT, user);
        api->store_incr(lim_ctx, key, failures - counted,
                        (long long)(r->window * 1000), lim_ignore, NULL);
    }
}

static upesi_verdict lim_auth(upesi_call *call)
{
    const lim_config *c = api->config(call);
    if (c == NULL ||
        (c->rules[R_AUTH_IP].max == 0 && c->rules[R_AUTH_ACCOUNT].max == 0))
        return UPESI_CONT;
    lim_auth_flush(call, c);
    lim_req *q = lim_new(call, c);
    if (q == NULL)
        return UPESI_CONT;
    /* by 0: read the count; at max failures the next AUTH is refused */
    lim_rule_check(q, R_AUTH_IP, q->ip, 0, -1);
    lim_rule_check(q, R_AUTH_ACCOUNT, api->auth_user(call), 0, -1);
    return lim_start(q);
}

/* A counter below zero (its key expired while connections were open,
 * then they closed) is removed: it starts again from nothing. */
static void lim_conc_back(const upesi_store_result *r, void *arg)
{
    char *key = arg;
    if (r->status == 0 && r->values[0].num < 0)
        api->store_del(lim_ctx, key, lim_ignore, NULL);
    free(key);
}

static upesi_verdict lim_disconnect(upesi_call *call)
{
    const lim_config *c = api->config(call);
    if (c == NULL)
        return UPESI_CONT;
    lim_auth_flush(call, c);
    const char *held = api->note_get(call, UPESI_SCOPE_CONN, "limit.held");
    if (held && strcmp(held, "1") == 0) {
        char key[96];
        snprintf(key, sizeof key, "c:%s", api->conn(call)->remote_ip);
        char *copy = strdup(key);
        if (copy &&
            api->store_incr(lim_ctx, key, -1, 0, lim_conc_back, copy) == NULL)
            free(copy);
    }
    return UPESI_CONT;
}

static int lim_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                    size_t errlen)
{
    lim_ctx = ctx;
    api = host;
    (void)err;
    (void)errlen;
    return 0;
}

UPESI_PLUGIN = {
    /* the store's minor: a host without the store_* calls refuses to
     * load the plugin, so init need not test them */
    UPESI_PLUGIN_HEADER_NEEDS(UPESI_API_STORE_MINOR),
    .name = "limit",
    .version = "1.0",
    .init = lim_init,
    .config_new = lim_config_new,
    .config_check = lim_config_check,
    .config_free = lim_config_free,
    .settings = lim_settings,
    .hooks = {
        [UPESI_HOOK_CONNECT] = lim_connect,
        [UPESI_HOOK_MAIL] = lim_mail,
        [UPESI_HOOK_RCPT] = lim_rcpt,
        [UPESI_HOOK_AUTH] = lim_auth,
        [UPESI_HOOK_DISCONNECT] = lim_disconnect,
    },
};
