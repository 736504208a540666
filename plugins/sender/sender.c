/*
 * sender.c - inbound sender controls, Domino's "Inbound Sender Controls"
 * (DESIGN.md 6, docs/plugins/sender.md): allow and deny lists of senders,
 * and "Verify sender's domain in DNS".
 *
 * conf/sender.ini:
 *   allow = items   when set, only these senders may send
 *                   ("Allow messages only from the following internet
 *                   addresses/domains")
 *   deny = items    these senders may not ("Deny messages from ...")
 *   verify_domain = 0|1   the MAIL FROM domain must have an MX, or (no MX
 *                   record: RFC 5321 5.1's implicit MX) an A or AAAA
 *   timeout = S     seconds the whole check may take (decimals allowed;
 *                   default 20), SMTPVerifySendersDomainTimeout
 * Items, comma or blank separated, case-insensitive, '*' a wildcard:
 *   user@example.com     that address
 *   *@example.com        any address at example.com (also @example.com,
 *                        or example.com alone)
 *   *.example.com        any address at a subdomain of example.com
 * A sender on both lists is allowed (Allow wins, as in Domino).  The null
 * sender <> (bounces) is always allowed: refusing it breaks delivery
 * reports (RFC 5321 4.5.5).
 *
 * The lists are decided first (no DNS for a denied sender), then the
 * domain, asynchronously: MX; NODATA -> A; NODATA -> AAAA.  The null
 * sender, domain literals ([192.0.2.1]), addresses without a domain and
 * non-ASCII (SMTPUTF8) domains are not looked up.
 *
 * Refusals, at MAIL FROM:
 *   554 5.7.1 Mail from <addr> rejected for policy reasons      (lists)
 *   553 5.1.8 Sender address <addr> rejected: Domain not found  (NXDOMAIN,
 *             or neither MX nor A nor AAAA)
 *   550 5.7.27 Sender address <addr> rejected: Domain does not accept mail
 *             (a null MX, RFC 7505)
 *   451 4.4.3 Sender domain lookup failed, try again later   (timeout,
 *             SERVFAIL, `timeout` reached)
 *
 * Matching uses hostmatch_glob (plugins/common/hostmatch.c, compiled in).
 *
 * Fails: a bad item is a configuration error naming it.  A DNS failure is
 * a 451: the client tries again later, nothing is refused for good.
 */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hostmatch.h"
#include "../common/settings.h"
#include "upesi/plugin.h"

static const upesi_api *snd_api;
static upesi_ctx *snd_ctx;

typedef struct snd_list {
    char **items;                /* lower case; "a@b" or a domain pattern */
    size_t n, cap;
} snd_list;

typedef struct snd_config {
    snd_list allow;
    snd_list deny;
    int verify_domain;
    double timeout;              /* seconds */
} snd_config;

#define SND_DEFAULT_TIMEOUT 20.0

/* ---------------------------------------------------------------------- */
/* settings                                                               */

static void snd_list_free(snd_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

static void snd_config_free(void *config)
{
    snd_config *cfg = config;
    if (cfg == NULL)
        return;
    snd_list_free(&cfg->allow);
    snd_list_free(&cfg->deny);
    free(cfg);
}

static void *snd_config_new(void)
{
    snd_config *cfg = calloc(1, sizeof *cfg);
    if (cfg)
        cfg->timeout = SND_DEFAULT_TIMEOUT;
    return cfg;
}

/* An item: local@domain (either side may hold '*'), or a domain pattern,
 * maybe with a leading '@' or "*@". */
static int snd_item_valid(const char *s)
{
    if (*s == '\0')
        return 0;
    const char *at = strchr(s, '@');
    if (at && strchr(at + 1, '@'))
        return 0;
    if (at && at[1] == '\0')
        return 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == 0x7f || strchr("<>()[],;:\\\"", c))
            return 0;
    }
    return 1;
}

/* One item of allow or deny (the host split the line: upesi_list_next). */
static int snd_list_add(snd_list *l, const char *start, char *err,
                        size_t errlen)
{
    {
        size_t len = strlen(start);
        char *item = malloc(len + 1);
        if (item == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < len; i++)
            item[i] = (char)tolower((unsigned char)start[i]);
        item[len] = '\0';
        /* "@example.com" and "*@example.com" are the domain example.com */
        const char *domain = NULL;
        if (item[0] == '@')
            domain = item + 1;
        else if (item[0] == '*' && item[1] == '@')
            domain = item + 2;
        if (domain)
            memmove(item, domain, strlen(domain) + 1);
        /* an IDN domain is kept as its A-labels, as the sender's is
         * compared (SMTPUTF8); the local part stays as written */
        char *dpart = strrchr(item, '@') ? strrchr(item, '@') + 1 : item;
        char alabels[300];
        int idn_bad = 0;
        for (const char *q = dpart; *q && !idn_bad; q++)
            if ((unsigned char)*q >= 0x80) {
                if (hostmatch_to_alabels(dpart, alabels, sizeof alabels) != 0)
                    idn_bad = 1;
                else {
                    char *grown = malloc((size_t)(dpart - item) +
                                         strlen(alabels) + 1);
                    if (grown == NULL)
                        idn_bad = 1;
                    else {
                        memcpy(grown, item, (size_t)(dpart - item));
                        strcpy(grown + (dpart - item), alabels);
                        free(item);
                        item = grown;
                    }
                }
                break;
            }
        if (idn_bad || !snd_item_valid(item)) {
            snprintf(err, errlen, "'%.*s' is not an address or domain "
                     "(user@example.com, *@example.com, *.example.com)",
                     (int)len, start);
            free(item);
            return -1;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 8;
            char **grown = realloc(l->items, cap * sizeof *grown);
            if (grown == NULL) {
                free(item);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            l->items = grown;
            l->cap = cap;
        }
        l->items[l->n++] = item;
    }
    return 0;
}

static int snd_allow(void *config, const char *item, char *err,
                     size_t errlen)
{
    return snd_list_add(&((snd_config *)config)->allow, item, err, errlen);
}

static int snd_deny(void *config, const char *item, char *err,
                    size_t errlen)
{
    return snd_list_add(&((snd_config *)config)->deny, item, err, errlen);
}

static const upesi_setting snd_settings[] = {
    { "allow", UPESI_SETTING_LIST, 0, 0, 0, NULL, snd_allow, NULL,
      "when set, only these senders may send: `user@example.com`, "
      "`*@example.com`, `*.example.com`, `j*@example.com`" },
    { "deny", UPESI_SETTING_LIST, 0, 0, 0, NULL, snd_deny, NULL,
      "these senders may not" },
    { "verify_domain", UPESI_SETTING_BOOL,
      offsetof(snd_config, verify_domain), 0, 0, NULL, NULL, "0",
      "on: the MAIL FROM domain must exist in DNS (Verify sender's domain "
      "in DNS)" },
    { "timeout", UPESI_SETTING_DURATION, offsetof(snd_config, timeout), 0.1,
      3600, NULL, NULL, "20", "the whole DNS check may take this long "
      "(SMTPVerifySendersDomainTimeout)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

/* ---------------------------------------------------------------------- */
/* matching                                                               */

/* The sender's domain is compared in A-labels (an IDN in either form
 * matches the list's), its local part as given (ASCII letters without
 * case, UTF-8 bytes as they are). */
static int snd_match(const snd_list *l, const char *sender)
{
    const char *at = strrchr(sender, '@');
    const char *domain = at ? at + 1 : "";
    char alabels[300], addr[600];
    for (const char *q = domain; *q; q++)
        if ((unsigned char)*q >= 0x80) {
            if (hostmatch_to_alabels(domain, alabels, sizeof alabels) != 0)
                return 0;
            snprintf(addr, sizeof addr, "%.*s@%s", (int)(at - sender),
                     sender, alabels);
            sender = addr;
            domain = alabels;
            break;
        }
    for (size_t i = 0; i < l->n; i++) {
        const char *item = l->items[i];
        if (strchr(item, '@') ? hostmatch_glob(item, sender)
                              : hostmatch_glob(item, domain))
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* the sender's domain in DNS                                             */

typedef struct snd_lookup {
    upesi_call *call;
    upesi_dns_query *query;
    upesi_timer *timer;
    int type;                    /* being asked: MX, then A, then AAAA */
    char *sender;
    char domain[256];
} snd_lookup;

typedef enum snd_outcome {
    SND_VERIFIED,
    SND_NOT_FOUND,
    SND_NULL_MX,
    SND_TEMP_FAIL
} snd_outcome;

static const char *snd_type_name(int type)
{
    return type == UPESI_DNS_MX ? "MX" : type == UPESI_DNS_A ? "A" : "AAAA";
}

static void snd_lookup_stop(snd_lookup *lk)
{
    if (lk->query) {
        snd_api->dns_cancel(lk->query);
        lk->query = NULL;
    }
    if (lk->timer) {
        snd_api->timer_stop(lk->timer);
        lk->timer = NULL;
    }
}

/* The host gave up on the call (plugin_timeout, disconnect). */
static void snd_on_cancel(upesi_call *call, void *arg)
{
    (void)call;
    snd_lookup *lk = arg;
    snd_lookup_stop(lk);
    free(lk->sender);
    free(lk);
}

/* Reply and log for an outcome: the verdict. */
static upesi_verdict snd_verdict(upesi_call *call, const char *sender,
                                 const char *domain, snd_outcome outcome,
                                 const char *why)
{
    switch (outcome) {
    case SND_VERIFIED:
        snd_api->stat_add(snd_ctx, "SMTP.Sender.DomainVerified", 1);
        snd_api->log_call(call, UPESI_LOG_DEBUG, "sender domain %s: %s", domain,
                     why);
        return UPESI_CONT;
    case SND_NOT_FOUND:
        snd_api->stat_add(snd_ctx, "SMTP.Sender.DomainNotFound", 1);
        snd_api->log_call(call, UPESI_LOG_INFO, "sender <%s> refused: domain %s "
                     "not found (%s)", sender, domain, why);
        snd_api->reply(call, 553, "5.1.8", "Sender address <%s> rejected: "
                       "Domain not found", sender);
        return UPESI_DENY;
    case SND_NULL_MX:
        snd_api->stat_add(snd_ctx, "SMTP.Sender.DomainNullMX", 1);
        snd_api->log_call(call, UPESI_LOG_INFO, "sender <%s> refused: domain %s "
                     "has a null MX", sender, domain);
        snd_api->reply(call, 550, "5.7.27", "Sender address <%s> rejected: "
                       "Domain does not accept mail", sender);
        return UPESI_DENY;
    case SND_TEMP_FAIL:
        break;
    }
    snd_api->stat_add(snd_ctx, "SMTP.Sender.DomainLookupFailed", 1);
    snd_api->log_call(call, UPESI_LOG_NOTICE, "sender <%s> deferred: lookup of %s "
                 "failed (%s)", sender, domain, why);
    snd_api->reply(call, 451, "4.4.3", "Sender domain lookup failed, try "
                   "again later");
    return UPESI_DENYSOFT;
}

static void snd_finish(snd_lookup *lk, snd_outcome outcome, const char *why)
{
    upesi_call *call = lk->call;
    snd_lookup_stop(lk);
    upesi_verdict v = snd_verdict(call, lk->sender, lk->domain, outcome, why);
    free(lk->sender);
    free(lk);
    snd_api->resume(call, v);
}

static void snd_on_timer(void *arg)
{
    snd_lookup *lk = arg;
    lk->timer = NULL;           /* the host frees a timer that fired */
    char why[64];
    const snd_config *cfg = snd_api->config(lk->call);
    snprintf(why, sizeof why, "no answer within timeout = %g s",
             cfg ? cfg->timeout : 0.0);
    snd_finish(lk, SND_TEMP_FAIL, why);
}

static int snd_ask(snd_lookup *lk, int type);

static void snd_on_answer(const upesi_dns_answer *a, void *arg)
{
    snd_lookup *lk = arg;
    lk->query = NULL;
    char why[128];
    const char *type = snd_type_name(lk->type);
    switch (a->status) {
    case UPESI_DNS_OK:
        /* RFC 7505: one MX of preference 0 whose host is the root */
        if (lk->type == UPESI_DNS_MX && a->count == 1 &&
            (a->records[0].text[0] == '\0' ||
             !strcmp(a->records[0].text, "."))) {
            snd_finish(lk, SND_NULL_MX, "null MX");
            return;
        }
        snprintf(why, sizeof why, "%s %s", type, a->records[0].text);
        snd_finish(lk, SND_VERIFIED, why);
        return;
    case UPESI_DNS_NODATA:
        if (lk->type != UPESI_DNS_AAAA) {
            int next = lk->type == UPESI_DNS_MX ? UPESI_DNS_A : UPESI_DNS_AAAA;
            if (snd_ask(lk, next) == 0)
                return;
            snd_finish(lk, SND_TEMP_FAIL, "cannot start a lookup");
            return;
        }
        snd_finish(lk, SND_NOT_FOUND, "no MX, A or AAAA record");
        return;
    case UPESI_DNS_NXDOMAIN:
        snd_finish(lk, SND_NOT_FOUND, "NXDOMAIN");
        return;
    case UPESI_DNS_TIMEOUT:
        snprintf(why, sizeof why, "%s lookup timed out", type);
        snd_finish(lk, SND_TEMP_FAIL, why);
        return;
    case UPESI_DNS_ERROR:
        break;
    }
    snprintf(why, sizeof why, "%s lookup: DNS error", type);
    snd_finish(lk, SND_TEMP_FAIL, why);
}

static int snd_ask(snd_lookup *lk, int type)
{
    lk->type = type;
    lk->query = snd_api->dns_lookup(snd_ctx, lk->call, type, lk->domain,
                                    snd_on_answer, lk);
    return lk->query ? 0 : -1;
}

/* What to do with the sender's domain: 1 look it up, 0 leave it (no
 * domain, a domain literal, non-ASCII), -1 it cannot be a domain. */
static int snd_domain_of(const char *sender, char *out, size_t outlen)
{
    const char *at = strrchr(sender, '@');
    if (at == NULL || at[1] == '\0' || at[1] == '[')
        return 0;
    const char *d = at + 1;
    size_t len = strlen(d);
    if (d[len - 1] == '.')
        len--;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)d[i] >= 0x80)
            return 0;           /* an SMTPUTF8 U-label: no IDNA here */
    if (len == 0 || len > 253 || len >= outlen)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return -1;
            label = 0;
            out[i] = '.';
            continue;
        }
        if (!isalnum(c) && c != '-' && c != '_')
            return -1;
        if (label == 0 && c == '-')
            return -1;
        if (++label > 63)
            return -1;
        out[i] = (char)tolower(c);
    }
    if (label == 0)
        return -1;
    out[len] = '\0';
    return 1;
}

static upesi_verdict snd_verify(upesi_call *call, const snd_config *cfg,
                                const char *sender)
{
    char domain[256];
    int rc = snd_domain_of(sender, domain, sizeof domain);
    if (rc == 0)
        return UPESI_CONT;
    if (rc < 0)
        return snd_verdict(call, sender, strrchr(sender, '@') + 1,
                           SND_NOT_FOUND, "not a domain name");
    snd_lookup *lk = calloc(1, sizeof *lk);
    if (lk == NULL)
        return snd_verdict(call, sender, domain, SND_TEMP_FAIL,
                           "out of memory");
    lk->call = call;
    lk->sender = strdup(sender);
    memcpy(lk->domain, domain, strlen(domain) + 1);
    if (lk->sender == NULL || snd_ask(lk, UPESI_DNS_MX) != 0) {
        free(lk->sender);
        free(lk);
        return snd_verdict(call, sender, domain, SND_TEMP_FAIL,
                           "cannot start a lookup");
    }
    lk->timer = snd_api->timer_start(snd_ctx, (uint64_t)(cfg->timeout * 1000),
                                     snd_on_timer, lk);
    snd_api->on_cancel(call, snd_on_cancel, lk);
    return UPESI_PENDING;
}

static upesi_verdict snd_mail(upesi_call *call)
{
    const snd_config *cfg = snd_api->config(call);
    const char *sender = snd_api->address(call);
    if (cfg == NULL || sender == NULL || *sender == '\0')
        return UPESI_CONT;
    int allowed = snd_match(&cfg->allow, sender);
    const char *why = NULL;
    if (!allowed && cfg->allow.n)
        why = "not in allow";
    else if (!allowed && snd_match(&cfg->deny, sender))
        why = "in deny";
    if (why == NULL)
        return cfg->verify_domain ? snd_verify(call, cfg, sender)
                                  : UPESI_CONT;
    snd_api->stat_add(snd_ctx, "SMTP.Sender.Denied", 1);
    snd_api->log_call(call, UPESI_LOG_INFO, "sender <%s> refused: %s", sender, why);
    snd_api->reply(call, 554, "5.7.1", "Mail from <%s> rejected for policy "
                   "reasons", sender);
    return UPESI_DENY;
}

static int snd_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                    size_t errlen)
{
    snd_ctx = ctx;
    (void)err;
    (void)errlen;
    snd_api = api;
    hostmatch_set_idna(api);
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "sender",
    .version = "1.0",
    .init = snd_init,
    .config_new = snd_config_new,
    .settings = snd_settings,
    .config_free = snd_config_free,
    .hooks = {
        [UPESI_HOOK_MAIL] = snd_mail,
    },
};
