/*
 * dnslist.h - DNS lists (RFC 5782) as dnsbl and dnswl ask them, shared by
 * the two plugins: what differs between them (the verdict on a listed
 * client, the action names, dnsbl's message and TXT reason) stays in the
 * plugin, the rest is here.
 *
 * Settings (<name>.ini):
 *   zones = zen.example.org, bl.example.net=127.0.0.2-127.0.0.11;127.0.0.20
 *   action = one of the plugin's three actions
 *   expand_stats = 0 | 1                   (SMTP.<NAME>.<zone>.<ip>.Hits)
 *   [bl.example.net]
 *   answers = 127.0.0.2-127.0.0.11, 127.0.0.20, 127.0.1.0/24
 * A zone without answers accepts all of 127/8 but 127.255.255/24.  List
 * keys add up over repeated lines.
 *
 * At connect the client's address is looked up in every zone at once
 * (IPv4 reversed, IPv6 by nibbles).  The zone reported is the first in
 * config order that lists the client, so an answer from a later zone
 * waits for the earlier ones.  A listing is an A record inside 127.0.0.0/8
 * and inside the zone's accepted answers; an answer outside 127/8 is
 * ignored with a warning.  Skipped when an earlier plugin has white- or
 * blacklisted the client (conn notes "whitelisted", "blacklisted").  On a
 * hit: SMTP.<NAME>.TotalHits, SMTP.<NAME>.<zone>.TotalHits, conn note
 * "<name>.site" = the zone ("<name>.tag" too under the tag action, which
 * the MAIL and DATA_POST hooks below turn into txn note "<name>.site" and
 * an X-<NAME>-Site header), then the plugin's listed callback.
 *
 * Not a plugin: part of build/plugins/libupesi_common.a, which every
 * plugin links (one copy per plugin .so).  The plugin's settings struct begins
 * with a dnslist_config, and the plugin calls dnslist_init from its init
 * (the host inits a plugin before it reads its settings).
 *
 * Fails: open.  A timeout or DNS error means "not listed" for that zone,
 * with a warning and SMTP.<NAME>.<zone>.Timeouts / .Errors.  A bad zone,
 * answer or action is a configuration error naming it.
 */
#ifndef UPESI_DNSLIST_H
#define UPESI_DNSLIST_H

#include <stddef.h>
#include <stdint.h>

#include "upesi/plugin.h"

typedef struct dnslist_range {
    uint32_t lo, hi;
} dnslist_range;

typedef struct dnslist_zone {
    char *name;                  /* lower case, no trailing dot */
    dnslist_range *ranges;       /* none: all of 127/8 but 127.255.255/24 */
    size_t nranges;
} dnslist_zone;

typedef struct dnslist_config {
    dnslist_zone *zones;
    size_t nzones;
    int action;                  /* an index in dnslist_kind.actions */
    int expand_stats;
} dnslist_config;

typedef struct dnslist_lookup dnslist_lookup;

/* What tells one list plugin from the other. */
typedef struct dnslist_kind {
    const char *name;            /* "dnsbl": notes dnsbl.site, dnsbl.tag */
    const char *stat;            /* "DNSBL": SMTP.DNSBL.*, X-DNSBL-Site */
    const char *actions[3];      /* action names, in the plugin's order */
    int default_action;
    int tag_action;
    /* zone (cfg->zones[lk->hit]) lists the client with answer: the plugin
     * logs and decides, and ends the lookup with dnslist_finish, at once
     * or from the callback of a query of its own kept in lk->extra. */
    void (*listed)(dnslist_lookup *lk, const char *zone, const char *answer);
} dnslist_kind;

typedef struct dnslist_slot {
    dnslist_lookup *lk;
    upesi_dns_query *q;
    int done, listed;
    char answer[48];
} dnslist_slot;

/* One connection's lookups. */
struct dnslist_lookup {
    upesi_call *call;
    const dnslist_config *cfg;
    char ip[64];                 /* the client's address */
    size_t hit;                  /* the zone reported */
    upesi_dns_query *extra;      /* the plugin's own query after a hit */
    dnslist_slot slots[];        /* one a zone, in config order */
};

/* From the plugin's init, with the context and API it got. */
void dnslist_init(upesi_ctx *ctx, const upesi_api *host,
                  const dnslist_kind *kind);

/* Settings: a dnslist_config inside the plugin's own struct ... */
void dnslist_config_init(dnslist_config *c);
void dnslist_config_done(dnslist_config *c);
int dnslist_config_set(dnslist_config *c, const char *section,
                       const char *key, const char *value, char *err,
                       size_t errlen);
/* The keys at the top of the file, for the plugin's settings table:
 *   DNSLIST_SETTINGS(struct dnsbl_config, list, choices, "log", help)
 * where choices is the NULL-ended list of the kind's actions in order.
 * zones is a list (an item per zone, "zone=answers;answers" inline);
 * the struct's dnslist_config is the field `member`. */
int dnslist_set_zone(void *config, const char *item, char *err,
                     size_t errlen);
#define DNSLIST_SETTINGS(type, member, choices, def_action, action_help)     \
    { "zones", UPESI_SETTING_LIST, 0, 0, 0, NULL, dnslist_set_zone, NULL,    \
      "zones, queried in parallel; `zone=127.0.0.2-127.0.0.11;127.0.0.20` "  \
      "gives the zone's accepted answers inline; lines add up" },            \
    { "action", UPESI_SETTING_ENUM, offsetof(type, member.action), 0, 0,     \
      choices, NULL, def_action, action_help },                              \
    { "expand_stats", UPESI_SETTING_BOOL,                                    \
      offsetof(type, member.expand_stats), 0, 0, NULL, NULL, "0",            \
      "on: also count `SMTP.<LIST>.<zone>.<ip>.Hits` (one counter per "      \
      "client address)" }
/* ... or the whole of it, for a plugin with no settings of its own. */
void *dnslist_config_new(void);
void dnslist_config_free(void *config);
int dnslist_config_set_any(void *config, const char *section,
                           const char *key, const char *value, char *err,
                           size_t errlen);

/* Cancel what is pending, free lk and resume the call with v. */
void dnslist_finish(dnslist_lookup *lk, upesi_verdict v);

/* Hooks: the lookups at connect; the tag on each transaction (MAIL) and
 * message (DATA_POST). */
upesi_verdict dnslist_connect(upesi_call *call);
upesi_verdict dnslist_mail(upesi_call *call);
upesi_verdict dnslist_data_post(upesi_call *call);

#endif
