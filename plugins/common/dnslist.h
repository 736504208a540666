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
 * Weighted mode (postscreen's dnsbl_sites): a zone written `zone*weight`
 * (and `zone=127.0.0.[2..11]*weight`, postscreen's reply filter: each
 * octet a number, [a..b] or [a;b;c]) has a weight, negative for allow
 * lists; the same zone may appear again with other answers and weights.
 * Every zone is asked and the weights of those that list the client are
 * summed; the sum is added to conn note "dns.score" (dnswl's and dnsbl's
 * add up).  dns.score >= threshold: listed (the zone reported is the one
 * with the largest weight that listed it); dns.score <= allow_threshold
 * (when negative): conn note "whitelisted" = "dns.score".  A client not
 * listed is cached in the store (key pass:<ip>, its sum) for cache_ttl:
 * its next connections are decided from the cache with no DNS query.  A
 * store that fails means "not cached": the DNS is asked.
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
    int weight;                  /* zone*weight (weighted mode), else 1 */
} dnslist_zone;

typedef struct dnslist_config {
    dnslist_zone *zones;
    size_t nzones;
    int action;                  /* an index in dnslist_kind.actions */
    int expand_stats;
    /* weighted mode (postscreen style): on when a zone has *weight */
    int weighted;
    int threshold;               /* score >= threshold: listed */
    int allow_threshold;         /* < 0: score <= it whitelists */
    double cache_ttl;            /* seconds a passed client is cached */
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
    /* weighted mode: 1 when score >= threshold means "listed" (dnsbl), 0
     * when only allow_threshold acts and "listed" means whitelisted
     * (dnswl) */
    int blocks;
} dnslist_kind;

typedef struct dnslist_slot {
    dnslist_lookup *lk;
    upesi_dns_query *q;
    int done, listed;
    int unanswered;              /* timed out or failed: not listed, and
                                    the sum not cached */
    char answer[48];
} dnslist_slot;

/* One connection's lookups. */
struct dnslist_lookup {
    upesi_call *call;
    const dnslist_config *cfg;
    char ip[64];                 /* the client's address */
    size_t hit;                  /* the zone reported */
    upesi_dns_query *extra;      /* the plugin's own query after a hit */
    upesi_store_op *cache_op;    /* the pass cache being read */
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
/* The cross-key checks of weighted mode (config_check). */
int dnslist_config_check(dnslist_config *c, char *err, size_t errlen);
int dnslist_config_check_any(void *config, char *err, size_t errlen);
#define DNSLIST_SETTINGS(type, member, choices, def_action, action_help)     \
    { "zones", UPESI_SETTING_LIST, 0, 0, 0, NULL, dnslist_set_zone, NULL,    \
      "zones, queried in parallel; `zone=127.0.0.2-127.0.0.11;127.0.0.20` "  \
      "gives the zone's accepted answers inline; lines add up" },            \
    { "action", UPESI_SETTING_ENUM, offsetof(type, member.action), 0, 0,     \
      choices, NULL, def_action, action_help },                              \
    { "expand_stats", UPESI_SETTING_BOOL,                                    \
      offsetof(type, member.expand_stats), 0, 0, NULL, NULL, "0",            \
      "on: also count `SMTP.<LIST>.<zone>.<ip>.Hits` (one counter per "      \
      "client address)" },                                                   \
    { "threshold", UPESI_SETTING_INT, offsetof(type, member.threshold),      \
      -1000, 1000, NULL, NULL, "1", "weighted mode (a zone has `*weight`): " \
      "the client is listed when the weights of the zones that list it "     \
      "add up to this or more" },                                            \
    { "allow_threshold", UPESI_SETTING_INT,                                  \
      offsetof(type, member.allow_threshold), -1000, 0, NULL, NULL, "0",     \
      "weighted mode: a sum at or below this (negative) whitelists the "     \
      "client (note `whitelisted`); 0: off" },                               \
    { "cache_ttl", UPESI_SETTING_DURATION, offsetof(type, member.cache_ttl), \
      0, 30 * 86400.0, NULL, NULL, "0", "weighted mode: a client that was "  \
      "not listed is remembered in the store this long, with its sum, and " \
      "its next connections ask no DNS; 0: no cache" },                       \
    { "ZONE.answers", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, NULL,             \
      "(any 127.0.0.0/8 answer but 127.255.255.x)", "in a section named "    \
      "after a zone of `zones`: the answers that count as listed "           \
      "(`127.0.0.2`, `127.0.0.2-127.0.0.11`, `127.0.1.0/24`; commas, "       \
      "blanks or `;` between)" }
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
