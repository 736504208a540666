/*
 * dnswl.c - DNS whitelists at connect, as Domino's "DNS whitelist filters"
 * (DESIGN.md 6, issue 4).
 *
 * The client's address is looked up in every zone of dnswl.ini `zones` at
 * once (IPv4 reversed, IPv6 by nibbles).  The zone reported is the first in
 * config order that lists the client.  A listing is an A record inside
 * 127.0.0.0/8 and inside the zone's accepted answers; an answer outside
 * 127/8 is ignored with a warning.  A timeout or DNS error means "not
 * listed" and is counted.  Skipped when private_lists already white- or
 * blacklisted the client (a private blacklist overrides DNS whitelists).
 * The zones, lookups and statistics are plugins/common/dnslist.c, shared
 * with dnsbl.
 *
 * A listed client is whitelisted: conn note "whitelisted" = the zone, and
 * dnsbl skips it.  It stays subject to relay, sender and recipient
 * controls.  Actions say what else happens:
 *   skip  nothing else (Domino: "skip blacklist filters silently")
 *   log   a log line
 *   tag   a log line, X-DNSWL-Site header and txn note "dnswl.site"
 *
 * dnswl.ini:
 *   zones = list.dnswl.example, wl.example.net=127.0.0.2-127.0.0.11
 *   action = skip | log | tag              (default log)
 *   expand_stats = 0 | 1                   (SMTP.DNSWL.<zone>.<ip>.Hits)
 *   [wl.example.net]
 *   answers = 127.0.0.2-127.0.0.11, 127.0.1.0/24
 *
 * Statistics: SMTP.DNSWL.TotalHits, SMTP.DNSWL.<zone>.TotalHits,
 * SMTP.DNSWL.<zone>.Timeouts, SMTP.DNSWL.<zone>.Errors.
 *
 * Fails: closed to the whitelist: a DNS problem means "not whitelisted",
 * and the blacklists run as usual.
 */
#include "../common/dnslist.h"
#include <stddef.h>

#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *dnswl_ctx;

enum { ACT_SKIP, ACT_LOG, ACT_TAG };

static void dnswl_listed(dnslist_lookup *lk, const char *zone,
                         const char *answer)
{
    int action = lk->cfg->action;
    if (action != ACT_SKIP)
        api->log_call(lk->call, UPESI_LOG_NOTICE, "%s whitelisted by %s (%s)%s",
                 lk->ip, zone, answer, action == ACT_TAG ? ": tagged" : "");
    api->note_set(lk->call, UPESI_SCOPE_CONN, "whitelisted", zone);
    dnslist_finish(lk, UPESI_CONT);
}

static const dnslist_kind dnswl_kind = {
    .name = "dnswl",
    .stat = "DNSWL",
    .actions = { "skip", "log", "tag" },
    .default_action = ACT_LOG,
    .tag_action = ACT_TAG,
    .listed = dnswl_listed,
};

/* one wrapper struct so that offsetof names the list's fields */
typedef struct dnswl_config {
    dnslist_config list;
} dnswl_config;

static const char *const dnswl_actions[] = { "skip", "log", "tag", NULL };

static const upesi_setting dnswl_settings[] = {
    DNSLIST_SETTINGS(dnswl_config, list, dnswl_actions, "log",
                     "`skip`: skip the blacklists silently; `log`: and log "
                     "it; `tag`: and tag each message"),
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

static int dnswl_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                      size_t errlen)
{
    dnswl_ctx = ctx;
    api = host;
    (void)err;
    (void)errlen;
    dnslist_init(ctx, host, &dnswl_kind);
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "dnswl",
    .version = "1.0",
    .init = dnswl_init,
    .config_new = dnslist_config_new,
    .config_set = dnslist_config_set_any,   /* [zone] sections */
    .config_check = dnslist_config_check_any,
    .settings = dnswl_settings,
    .config_free = dnslist_config_free,
    .hooks = {
        [UPESI_HOOK_CONNECT] = dnslist_connect,
        [UPESI_HOOK_MAIL] = dnslist_mail,
        [UPESI_HOOK_DATA_POST] = dnslist_data_post,
    },
};
