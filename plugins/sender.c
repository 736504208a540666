/*
 * sender.c - inbound sender controls, Domino's "Inbound Sender Controls"
 * (DESIGN.md 6, docs/plugins/sender.md): allow and deny lists of senders.
 * Verifying the sender's domain in DNS (verify_domain, timeout) comes with
 * the DNS service of the plugin ABI and is not here yet.
 *
 * conf/sender.ini:
 *   allow = items   when set, only these senders may send
 *                   ("Allow messages only from the following internet
 *                   addresses/domains")
 *   deny = items    these senders may not ("Deny messages from ...")
 * Items, comma or blank separated, case-insensitive, '*' a wildcard:
 *   user@example.com     that address
 *   *@example.com        any address at example.com (also @example.com,
 *                        or example.com alone)
 *   *.example.com        any address at a subdomain of example.com
 * A sender on both lists is allowed (Allow wins, as in Domino).  The null
 * sender <> (bounces) is always allowed: refusing it breaks delivery
 * reports (RFC 5321 4.5.5).
 *
 * A refusal, at MAIL FROM:
 *   554 5.7.1 Mail from <addr> rejected for policy reasons
 *
 * Fails: a bad item is a configuration error naming it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upesi/plugin.h"

static const upesi_api *snd_api;

typedef struct snd_list {
    char **items;                /* lower case; "a@b" or a domain pattern */
    size_t n, cap;
} snd_list;

typedef struct snd_config {
    snd_list allow;
    snd_list deny;
} snd_config;

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
    return calloc(1, sizeof(snd_config));
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
        if (c <= ' ' || c >= 0x7f || strchr("<>()[],;:\\\"", c))
            return 0;
    }
    return 1;
}

static int snd_list_add(snd_list *l, const char *value, char *err,
                        size_t errlen)
{
    const char *p = value;
    for (;;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            return 0;
        const char *start = p;
        while (*p && *p != ',' && !isspace((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - start);
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
        if (!snd_item_valid(item)) {
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
}

static int snd_config_set(void *config, const char *section, const char *key,
                          const char *value, char *err, size_t errlen)
{
    snd_config *cfg = config;
    if (section && *section) {
        snprintf(err, errlen, "unknown section [%s] (sender.ini keys live at "
                 "the top of the file)", section);
        return -1;
    }
    snd_list *l = !strcmp(key, "allow") ? &cfg->allow
                : !strcmp(key, "deny") ? &cfg->deny : NULL;
    if (l == NULL) {
        if (!strcmp(key, "verify_domain") || !strcmp(key, "timeout"))
            snprintf(err, errlen, "%s: not available yet (needs the DNS "
                     "service of the plugin ABI)", key);
        else
            snprintf(err, errlen, "unknown key '%s' (sender takes allow, "
                     "deny)", key);
        return -1;
    }
    char why[256];
    if (snd_list_add(l, value, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", key, why);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* matching                                                               */

/* Case-insensitive glob with '*'; pat is lower case. */
static int snd_glob(const char *pat, const char *str)
{
    const char *star = NULL, *resume = NULL;
    while (*str) {
        if (*pat == '*') {
            star = pat++;
            resume = str;
        } else if (*pat && *pat == tolower((unsigned char)*str)) {
            pat++;
            str++;
        } else if (star) {
            pat = star + 1;
            str = ++resume;
        } else {
            return 0;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static int snd_match(const snd_list *l, const char *sender)
{
    const char *at = strrchr(sender, '@');
    const char *domain = at ? at + 1 : "";
    for (size_t i = 0; i < l->n; i++) {
        const char *item = l->items[i];
        if (strchr(item, '@') ? snd_glob(item, sender)
                              : snd_glob(item, domain))
            return 1;
    }
    return 0;
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
        return UPESI_CONT;
    snd_api->stat_add("SMTP.Sender.Denied", 1);
    snd_api->log(call, UPESI_LOG_INFO, "sender <%s> refused: %s", sender, why);
    snd_api->reply(call, 554, "5.7.1", "Mail from <%s> rejected for policy "
                   "reasons", sender);
    return UPESI_DENY;
}

static int snd_init(const upesi_api *api, upesi_plugin_ref *self, char *err,
                    size_t errlen)
{
    (void)self;
    (void)err;
    (void)errlen;
    snd_api = api;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "sender",
    .version = "0.9",
    .init = snd_init,
    .config_new = snd_config_new,
    .config_set = snd_config_set,
    .config_free = snd_config_free,
    .hooks = {
        [UPESI_HOOK_MAIL] = snd_mail,
    },
};
