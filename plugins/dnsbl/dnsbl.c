/*
 * dnsbl.c - DNS blacklists at connect, as Domino's "DNS blacklist filters"
 * (DESIGN.md 6, issue 4).
 *
 * The client's address is looked up in every zone of dnsbl.ini `zones` at
 * once (IPv4 reversed, IPv6 by nibbles, RFC 5782).  The zone reported is
 * the first in config order that lists the client, so an answer from a
 * later zone waits for the earlier ones.  A listing is an A record inside
 * 127.0.0.0/8 and inside the zone's accepted answers; an answer outside
 * 127/8 is ignored with a warning.  A timeout or DNS error means "not
 * listed" (fail open) and is counted.  Skipped when an earlier plugin has
 * white- or blacklisted the client (conn notes "whitelisted",
 * "blacklisted": private_lists, dnswl).  The zones, lookups and statistics
 * are plugins/common/dnslist.c, shared with dnswl.
 *
 * Actions: log; tag (X-DNSBL-Site header on each message, txn note
 * "dnsbl.site"); reject (connect DENY: the host greets and answers every
 * MAIL FROM with 554 5.7.1 and `message`).  The zone's TXT record, the
 * listing's reason, goes to the log.
 *
 * dnsbl.ini:
 *   zones = zen.example.org, bl.example.net=127.0.0.2-127.0.0.11
 *   action = log | tag | reject            (default log)
 *   expand_stats = 0 | 1                   (SMTP.DNSBL.<zone>.<ip>.Hits)
 *   message = Your host %s is listed in %s (IP, then zone)
 *   [bl.example.net]
 *   answers = 127.0.0.2-127.0.0.11, 127.0.0.20, 127.0.1.0/24
 *
 * Statistics: SMTP.DNSBL.TotalHits, SMTP.DNSBL.<zone>.TotalHits,
 * SMTP.DNSBL.<zone>.Timeouts, SMTP.DNSBL.<zone>.Errors.
 *
 * Fails: open.  A DNS problem lets the client through and is logged.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/dnslist.h"
#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *dnsbl_ctx;

enum { ACT_LOG, ACT_TAG, ACT_REJECT };

typedef struct dnsbl_config {
    dnslist_config list;         /* first: dnslist reads it */
    char *message;
} dnsbl_config;

#define DNSBL_DEFAULT_MESSAGE "Your host %s is listed in %s"

/* ---------------------------------------------------------------------- */
/* settings                                                                */

static void *dnsbl_config_new(void)
{
    dnsbl_config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    dnslist_config_init(&c->list);
    if ((c->message = strdup(DNSBL_DEFAULT_MESSAGE)) == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void dnsbl_config_free(void *p)
{
    dnsbl_config *c = p;
    dnslist_config_done(&c->list);
    free(c->message);
    free(c);
}

/* At most two %s (IP, zone), "%%" for a percent sign, nothing else. */
static int message_valid(const char *m, int max_s)
{
    int n = 0;
    for (const char *p = m; *p; p++) {
        if (*p != '%')
            continue;
        if (p[1] == '%') {
            p++;
        } else if (p[1] == 's' && ++n <= max_s) {
            p++;
        } else {
            return 0;
        }
    }
    return strpbrk(m, "\r\n") == NULL;
}

/* [zone] sections (the keys at the top: dnsbl_settings) */
static int dnsbl_config_set(void *p, const char *section, const char *key,
                            const char *value, char *err, size_t errlen)
{
    dnsbl_config *c = p;
    return dnslist_config_set(&c->list, section, key, value, err, errlen);
}

static int dnsbl_set_message(void *p, const char *value, char *err,
                             size_t errlen)
{
    dnsbl_config *c = p;
    if (!message_valid(value, 2)) {
        snprintf(err, errlen, "one line, at most two %%s (the IP, then the "
                 "zone), %%%% for a percent sign");
        return -1;
    }
    char *m = strdup(value);
    if (m == NULL)
        return -1;
    free(c->message);
    c->message = m;
    return 0;
}

static const char *const dnsbl_actions[] = { "log", "tag", "reject", NULL };

static const upesi_setting dnsbl_settings[] = {
    DNSLIST_SETTINGS(dnsbl_config, list, dnsbl_actions, "log",
                     "`log`: log the hit; `tag`: log, and tag each message; "
                     "`reject`: log, and refuse the client's mail"),
    { "message", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, dnsbl_set_message,
      "Your host %s is listed in %s", "the reject text; the first `%s` is "
      "the client's IP, the second the zone; `%%` is a percent sign" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

/* ---------------------------------------------------------------------- */
/* a listed client                                                         */

/* message with %s -> IP, then zone */
static void format_message(char *out, size_t len, const char *fmt,
                           const char *ip, const char *zone)
{
    size_t n = 0;
    int arg = 0;
    for (const char *p = fmt; *p && n + 1 < len; p++) {
        if (p[0] == '%' && p[1] == '%') {
            out[n++] = '%';
            p++;
        } else if (p[0] == '%' && p[1] == 's') {
            const char *s = arg++ == 0 ? ip : zone;
            n += (size_t)snprintf(out + n, len - n, "%s", s);
            if (n >= len)
                n = len - 1;
            p++;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

static void on_txt(const upesi_dns_answer *a, void *arg)
{
    dnslist_lookup *lk = arg;
    lk->extra = NULL;
    const dnslist_config *c = lk->cfg;
    if (a->status == UPESI_DNS_OK)
        api->log_call(lk->call, UPESI_LOG_INFO, "%s: reason from %s: %s", lk->ip,
                 c->zones[lk->hit].name, a->records[0].text);
    dnslist_finish(lk, c->action == ACT_REJECT ? UPESI_DENY : UPESI_CONT);
}

static void dnsbl_listed(dnslist_lookup *lk, const char *zone,
                         const char *answer)
{
    /* the dnslist_config is the first member of this plugin's settings */
    const dnsbl_config *c = (const dnsbl_config *)lk->cfg;
    upesi_call *call = lk->call;
    static const char *const what[] = { "logged", "tagged", "rejected" };
    api->log_call(call, UPESI_LOG_NOTICE, "%s listed in %s (%s): %s", lk->ip,
             zone, answer, what[c->list.action]);
    api->note_set(call, UPESI_SCOPE_CONN, "blacklisted", zone);
    if (c->list.action == ACT_REJECT) {
        char msg[512];
        format_message(msg, sizeof msg, c->message, lk->ip, zone);
        api->reply(call, 554, "5.7.1", "%s", msg);
    }
    char name[320];
    if (api->dns_ip_name(lk->ip, zone, name, sizeof name) == 0)
        lk->extra = api->dns_lookup(dnsbl_ctx, call, UPESI_DNS_TXT, name, on_txt, lk);
    if (lk->extra == NULL)
        dnslist_finish(lk, c->list.action == ACT_REJECT ? UPESI_DENY
                                                        : UPESI_CONT);
}

static const dnslist_kind dnsbl_kind = {
    .name = "dnsbl",
    .stat = "DNSBL",
    .actions = { "log", "tag", "reject" },
    .default_action = ACT_LOG,
    .tag_action = ACT_TAG,
    .listed = dnsbl_listed,
    .blocks = 1,
};

static int dnsbl_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                      size_t errlen)
{
    dnsbl_ctx = ctx;
    api = host;
    (void)err;
    (void)errlen;
    dnslist_init(ctx, host, &dnsbl_kind);
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "dnsbl",
    .version = "1.0",
    .init = dnsbl_init,
    .config_new = dnsbl_config_new,
    .config_set = dnsbl_config_set,
    .config_check = dnslist_config_check_any,   /* list is the first member */
    .settings = dnsbl_settings,
    .config_free = dnsbl_config_free,
    .hooks = {
        [UPESI_HOOK_CONNECT] = dnslist_connect,
        [UPESI_HOOK_MAIL] = dnslist_mail,
        [UPESI_HOOK_DATA_POST] = dnslist_data_post,
    },
};
