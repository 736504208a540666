/*
 * karma.c - a reputation per client IP and per client network, built from
 * what the other plugins decided, kept in the host's store with decay
 * (docs/plugins/karma.md, issue 19).
 *
 * The scoring table ([score] in karma.ini) gives points to notes: at the
 * end of each transaction (RESET) its txn notes are scored, at disconnect
 * the conn notes, and the sum of the session goes to the store.  An entry
 *   conn.blacklisted = -5         the note is set: -5
 *   conn.rcpt.rejected = -1       an integer note: -1 times its value
 *   txn.bayes.class[spam] = -5    the note has this value: -5
 * Without a [score] section the table is karma_default_table below (the
 * same as conf/karma.ini ships).
 *
 * Decay: `decay` is cut into `buckets` slots; a session's points go into
 * the slot of now, i:<ip>:<slot> and n:<network>:<slot> (store_mincr, one
 * call), which expire after `decay`.  The score at connect weighs each
 * slot by how much of `decay` is left of it: points fade linearly to
 * nothing over `decay`.  Score = IP's + network's * network_share / 100,
 * rounded toward zero.  One store_mget at connect reads every slot.
 *
 * The score goes into conn note "karma.score" (an integer; mail_rules'
 * `karma_score`, Lua's conn.notes["karma.score"]).  At `stage` (connect or
 * mail) a score at or below `reject_at` is refused (554 5.7.1 at connect,
 * as the host answers a denied connection; 550 5.7.1 at MAIL), at or below
 * `tempfail_at` deferred (421 4.7.0 at connect, 451 4.7.0 at MAIL).
 *
 * Statistics: SMTP.Karma.Rejected, SMTP.Karma.Deferred, SMTP.Karma.Scored,
 * Karma.Store.Failures.
 *
 * Fails: as store_failure says (accept: score 0; tempfail: 451 4.3.0 at
 * connect); writes that fail are counted and forgotten.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../common/netprefix.h"
#include "../common/store_failure.h"
#include "karma_table.h"
#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *km_ctx;

#define KM_MAX_BUCKETS 240

typedef struct km_config {
    double decay;
    int buckets;
    int v4_bits, v6_bits;
    int network_share;
    int reject_at, tempfail_at;  /* 0: off */
    int stage;                   /* 0 connect, 1 mail */
    int store_failure;
    km_entry *table;
    size_t ntable;
    int table_given;
} km_config;

static const char *const km_default_table[] = {
    "conn.blacklisted = -5",
    "conn.greylist.passed = 1",
    "conn.rcpt.rejected = -1",
    "conn.auth.failures = -2",
    "conn.early_talker = -5",
    "conn.improper_pipelining = -5",
    "txn.bayes.class[spam] = -5",
    "txn.bayes.class[ham] = 2",
    NULL
};

static void km_config_free(void *p)
{
    km_config *c = p;
    km_table_free(&c->table, &c->ntable);
    free(c);
}

static void *km_config_new(void)
{
    km_config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    char err[128];
    for (size_t i = 0; km_default_table[i]; i++)
        if (km_add_line(&c->table, &c->ntable, km_default_table[i], err, sizeof err) != 0) {
            km_config_free(c);
            return NULL;
        }
    return c;
}

static int km_config_set(void *p, const char *section, const char *key,
                         const char *value, char *err, size_t errlen)
{
    km_config *c = p;
    if (strcmp(section, "score")) {
        snprintf(err, errlen, section[0] ? "unknown section [%s] (only "
                 "[score])" : "unknown key '%s'", section[0] ? section : key);
        return -1;
    }
    if (!c->table_given) {       /* the file's table replaces the default */
        km_table_free(&c->table, &c->ntable);
        c->table_given = 1;
    }
    return km_add_entry(&c->table, &c->ntable, key, value, err, errlen);
}

static int km_config_check(void *p, char *err, size_t errlen)
{
    km_config *c = p;
    if (c->tempfail_at && c->reject_at && c->reject_at > c->tempfail_at) {
        snprintf(err, errlen, "reject_at (%d) must be at or below "
                 "tempfail_at (%d)", c->reject_at, c->tempfail_at);
        return -1;
    }
    if (c->decay / c->buckets < 1) {
        snprintf(err, errlen, "decay / buckets must be 1 s at least (%gs / "
                 "%d)", c->decay, c->buckets);
        return -1;
    }
    return 0;
}

static const char *const km_failure_choices[] = { "accept", "tempfail",
                                                  NULL };
static const char *const km_stages[] = { "connect", "mail", NULL };

static const upesi_setting km_settings[] = {
    { "decay", UPESI_SETTING_DURATION, offsetof(km_config, decay), 2,
      366 * 86400.0, NULL, NULL, "720h", "how long points last: they fade "
      "linearly to nothing over this time (30 days)" },
    { "buckets", UPESI_SETTING_INT, offsetof(km_config, buckets), 2,
      KM_MAX_BUCKETS, NULL, NULL, "10", "slots `decay` is cut into (the "
      "store keeps one counter per slot, IP and network)" },
    { "ipv4_prefix", UPESI_SETTING_INT, offsetof(km_config, v4_bits), 8, 32,
      NULL, NULL, "24", "the network of an IPv4 client (bits)" },
    { "ipv6_prefix", UPESI_SETTING_INT, offsetof(km_config, v6_bits), 16,
      128, NULL, NULL, "64", "the network of an IPv6 client (bits)" },
    { "network_share", UPESI_SETTING_INT, offsetof(km_config, network_share),
      0, 100, NULL, NULL, "25", "percent of the network's score added to "
      "the IP's" },
    { "reject_at", UPESI_SETTING_INT, offsetof(km_config, reject_at),
      -1000000, 0, NULL, NULL, "0", "a score at or below this is refused "
      "at `stage` (0: never)" },
    { "tempfail_at", UPESI_SETTING_INT, offsetof(km_config, tempfail_at),
      -1000000, 0, NULL, NULL, "0", "a score at or below this is deferred "
      "at `stage` (0: never)" },
    { "stage", UPESI_SETTING_ENUM, offsetof(km_config, stage), 0, 0,
      km_stages, NULL, "connect", "where the thresholds act: `connect` or "
      "`mail`" },
    { "store_failure", UPESI_SETTING_ENUM, offsetof(km_config, store_failure),
      0, 0, km_failure_choices, NULL, "accept", "when the store fails: "
      "`accept` (score 0) or `tempfail` (451 4.3.0 at connect)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

/* ---------------------------------------------------------------------- */

typedef struct km_req {
    upesi_call *call;
    upesi_store_op *op;
    const km_config *cfg;
    long long slot;
} km_req;

static long long km_slot(const km_config *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return ms / (long long)(c->decay * 1000 / c->buckets);
}

static void km_ignore(const upesi_store_result *r, void *arg)
{
    (void)arg;
    if (r->status != 0)
        store_failure_note(api, km_ctx, NULL, STORE_FAILURE_ACCEPT,
                           r->status, "Karma.Store.Failures",
                           "writing points");
}

static void km_on_cancel(upesi_call *call, void *arg)
{
    (void)call;
    km_req *q = arg;
    if (q->op)
        api->store_cancel(q->op);
    free(q);
}

/* Refuse or defer per the thresholds, at connect or MAIL. */
static upesi_verdict km_judge(upesi_call *call, const km_config *c,
                              long long score)
{
    int at_connect = api->hook(call) == UPESI_HOOK_CONNECT;
    if (c->reject_at && score <= c->reject_at) {
        api->stat_add(km_ctx, "SMTP.Karma.Rejected", 1);
        api->log_call(call, UPESI_LOG_NOTICE, "score %lld <= "
                      "reject_at %d: refused", score, c->reject_at);
        api->reply(call, at_connect ? 554 : 550, "5.7.1", "Your reputation "
                   "here is too low (karma %lld)", score);
        return UPESI_DENY;
    }
    if (c->tempfail_at && score <= c->tempfail_at) {
        api->stat_add(km_ctx, "SMTP.Karma.Deferred", 1);
        api->log_call(call, UPESI_LOG_NOTICE, "score %lld <= "
                      "tempfail_at %d: deferred", score, c->tempfail_at);
        api->reply(call, at_connect ? 421 : 451, "4.7.0", "Your reputation "
                   "here is too low (karma %lld), try again later", score);
        return at_connect ? UPESI_DENYSOFTDISCONNECT : UPESI_DENYSOFT;
    }
    return UPESI_CONT;
}

static void km_on_read(const upesi_store_result *r, void *arg)
{
    km_req *q = arg;
    const km_config *c = q->cfg;
    upesi_call *call = q->call;
    q->op = NULL;
    free(q);
    if (r->status != 0) {
        upesi_verdict v = store_failure_note(
            api, km_ctx, call, c->store_failure, r->status,
            "Karma.Store.Failures", "reading the score");
        if (v == UPESI_CONT)     /* accept: as a client never seen */
            api->note_set_int(call, UPESI_SCOPE_CONN, "karma.score", 0);
        api->resume(call, v);
        return;
    }
    long long ip = 0, net = 0;      /* in 1/buckets of a point */
    size_t b = (size_t)c->buckets;
    for (size_t age = 0; age < b; age++) {
        long long weight = (long long)(b - age);
        ip += r->values[age].num * weight;
        net += r->values[b + age].num * weight;
    }
    long long score = (ip * 100 + net * c->network_share) /
                      ((long long)b * 100);
    api->note_set_int(call, UPESI_SCOPE_CONN, "karma.score", score);
    api->stat_add(km_ctx, "SMTP.Karma.Scored", 1);
    api->log_call(call, UPESI_LOG_INFO, "score %lld (IP %.1f, "
                  "network %.1f)", score, (double)ip / (double)b,
                  (double)net / (double)b);
    api->resume(call, c->stage == 0 ? km_judge(call, c, score) : UPESI_CONT);
}

static int km_keys(upesi_call *call, const km_config *c, char which,
                   char *out, size_t len)
{
    const char *ip = api->conn(call)->remote_ip;
    if (which == 'i') {
        snprintf(out, len, "i:%s", ip);
        return 0;
    }
    char net[64];
    if (netprefix(ip, c->v4_bits, c->v6_bits, net, sizeof net) != 0)
        return -1;
    snprintf(out, len, "n:%s", net);
    return 0;
}

static upesi_verdict km_connect(upesi_call *call)
{
    const km_config *c = api->config(call);
    if (c == NULL)
        return UPESI_CONT;
    char ipk[96], netk[96];
    if (km_keys(call, c, 'i', ipk, sizeof ipk) != 0 ||
        km_keys(call, c, 'n', netk, sizeof netk) != 0)
        return UPESI_CONT;
    km_req *q = calloc(1, sizeof *q);
    size_t b = (size_t)c->buckets;
    char (*names)[128] = calloc(2 * b, sizeof *names);
    const char **keys = calloc(2 * b, sizeof *keys);
    if (q == NULL || names == NULL || keys == NULL) {
        free(q);
        free(names);
        free(keys);
        return UPESI_CONT;
    }
    q->call = call;
    q->cfg = c;
    q->slot = km_slot(c);
    for (size_t age = 0; age < b; age++) {
        snprintf(names[age], sizeof names[age], "%s:%lld", ipk,
                 q->slot - (long long)age);
        snprintf(names[b + age], sizeof names[b + age], "%s:%lld", netk,
                 q->slot - (long long)age);
        keys[age] = names[age];
        keys[b + age] = names[b + age];
    }
    q->op = api->store_mget(km_ctx, keys, 2 * b, km_on_read, q);
    free(names);
    free(keys);
    if (q->op == NULL) {
        free(q);
        return store_failure_note(api, km_ctx, call, c->store_failure,
                                  -EIO, "Karma.Store.Failures",
                                  "reading the score");
    }
    api->on_cancel(call, km_on_cancel, q);
    return UPESI_PENDING;
}

static upesi_verdict km_mail(upesi_call *call)
{
    const km_config *c = api->config(call);
    if (c == NULL || c->stage != 1 ||
        api->note_get(call, UPESI_SCOPE_CONN, "karma.score") == NULL)
        return UPESI_CONT;
    return km_judge(call, c,
                    api->note_get_int(call, UPESI_SCOPE_CONN, "karma.score",
                                      0));
}

/* The points the table gives the notes of one scope now. */
static long long km_points(upesi_call *call, const km_config *c,
                           upesi_scope scope)
{
    long long sum = 0;
    for (size_t i = 0; i < c->ntable; i++) {
        const km_entry *e = &c->table[i];
        if (e->scope != scope)
            continue;
        const char *v = api->note_get(call, scope, e->note);
        if (v == NULL)
            continue;
        if (e->value) {
            if (!strcasecmp(v, e->value))
                sum += e->points;
            continue;
        }
        char *end;
        long long n = strtoll(v, &end, 10);
        sum += e->points * (end != v && *end == '\0' ? n : 1);
    }
    return sum;
}

static upesi_verdict km_reset(upesi_call *call)
{
    const km_config *c = api->config(call);
    if (c == NULL)
        return UPESI_CONT;
    long long p = km_points(call, c, UPESI_SCOPE_TXN);
    if (p)
        api->note_set_int(call, UPESI_SCOPE_CONN, "karma.txn_points",
                          api->note_get_int(call, UPESI_SCOPE_CONN,
                                            "karma.txn_points", 0) + p);
    return UPESI_CONT;
}

static upesi_verdict km_disconnect(upesi_call *call)
{
    const km_config *c = api->config(call);
    if (c == NULL)
        return UPESI_CONT;
    long long p = km_points(call, c, UPESI_SCOPE_CONN) +
                  api->note_get_int(call, UPESI_SCOPE_CONN,
                                    "karma.txn_points", 0);
    if (p == 0)
        return UPESI_CONT;
    char ipk[96], netk[96], k0[128], k1[128];
    if (km_keys(call, c, 'i', ipk, sizeof ipk) != 0 ||
        km_keys(call, c, 'n', netk, sizeof netk) != 0)
        return UPESI_CONT;
    long long slot = km_slot(c);
    snprintf(k0, sizeof k0, "%s:%lld", ipk, slot);
    snprintf(k1, sizeof k1, "%s:%lld", netk, slot);
    const char *keys[2] = { k0, k1 };
    const long long by[2] = { p, p };
    api->log_call(call, UPESI_LOG_INFO, "%+lld points for this "
                  "session", p);
    /* the slot's counters expire when the slot has faded out */
    api->store_mincr(km_ctx, keys, by, 2, (long long)(c->decay * 1000),
                     km_ignore, NULL);
    return UPESI_CONT;
}

static int km_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                   size_t errlen)
{
    km_ctx = ctx;
    api = host;
    (void)err;
    (void)errlen;
    return 0;
}

UPESI_PLUGIN = {
    /* the store's minor: a host without the store_* calls refuses to
     * load the plugin, so init need not test them */
    UPESI_PLUGIN_HEADER_NEEDS(UPESI_API_STORE_MINOR),
    .name = "karma",
    .version = "1.0",
    .init = km_init,
    .config_new = km_config_new,
    .config_set = km_config_set,
    .config_check = km_config_check,
    .config_free = km_config_free,
    .settings = km_settings,
    .hooks = {
        [UPESI_HOOK_CONNECT] = km_connect,
        [UPESI_HOOK_MAIL] = km_mail,
        [UPESI_HOOK_RESET] = km_reset,
        [UPESI_HOOK_DISCONNECT] = km_disconnect,
    },
};
