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
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upesi/plugin.h"

static const upesi_api *api;

enum { ACT_SKIP, ACT_LOG, ACT_TAG };

typedef struct dnswl_range {
    uint32_t lo, hi;
} dnswl_range;

typedef struct dnswl_zone {
    char *name;
    dnswl_range *ranges;         /* none: all of 127/8 but 127.255.255/24 */
    size_t nranges;
} dnswl_zone;

typedef struct dnswl_config {
    dnswl_zone *zones;
    size_t nzones;
    int action;
    int expand_stats;
} dnswl_config;

/* ---------------------------------------------------------------------- */
/* settings                                                                */

static void *dnswl_config_new(void)
{
    dnswl_config *c = calloc(1, sizeof *c);
    if (c)
        c->action = ACT_LOG;
    return c;
}

static void dnswl_config_free(void *p)
{
    dnswl_config *c = p;
    for (size_t i = 0; i < c->nzones; i++) {
        free(c->zones[i].name);
        free(c->zones[i].ranges);
    }
    free(c->zones);
    free(c);
}

/* A zone: letters, digits, '-' and '_', labels of 1..63, room left for the
 * 64 characters of an IPv6 nibble name. */
static int zone_valid(const char *z)
{
    size_t len = strlen(z), label = 0;
    if (len == 0 || len > 189)
        return 0;
    for (const char *p = z; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0;
}

static int parse_ip4(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return -1;
    *out = ntohl(a.s_addr);
    return 0;
}

/* "127.0.0.2", "127.0.0.2-127.0.0.11", "127.0.1.0/24" */
static int parse_range(const char *item, dnswl_range *r, char *err,
                       size_t errlen)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", item);
    char *dash = strchr(buf, '-'), *slash = strchr(buf, '/');
    if (dash)
        *dash = '\0';
    if (slash)
        *slash = '\0';
    int bad = parse_ip4(buf, &r->lo) != 0;
    r->hi = r->lo;
    if (!bad && dash)
        bad = parse_ip4(dash + 1, &r->hi) != 0 || r->hi < r->lo;
    if (!bad && slash) {
        char *end;
        long bits = strtol(slash + 1, &end, 10);
        bad = *end || end == slash + 1 || bits < 0 || bits > 32;
        if (!bad) {
            uint32_t mask = bits ? ~0u << (32 - bits) : 0;
            r->lo &= mask;
            r->hi = r->lo | ~mask;
        }
    }
    if (bad || strlen(item) >= sizeof buf) {
        snprintf(err, errlen, "'%s' is not an answer range (127.0.0.2, "
                 "127.0.0.2-127.0.0.11 or 127.0.0.0/24)", item);
        return -1;
    }
    return 0;
}

/* Split on any of seps, trim; fn gets each non-empty item. */
static int each_item(const char *value, const char *seps,
                     int (*fn)(void *, char *, char *, size_t), void *arg,
                     char *err, size_t errlen)
{
    char *copy = strdup(value), *save = NULL;
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (char *t = strtok_r(copy, seps, &save); t && rc == 0;
         t = strtok_r(NULL, seps, &save)) {
        while (isspace((unsigned char)*t))
            t++;
        char *end = t + strlen(t);
        while (end > t && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*t)
            rc = fn(arg, t, err, errlen);
    }
    free(copy);
    return rc;
}

static int add_range(void *arg, char *item, char *err, size_t errlen)
{
    dnswl_zone *z = arg;
    dnswl_range r;
    if (parse_range(item, &r, err, errlen) != 0)
        return -1;
    if ((r.lo >> 24) != 127 || (r.hi >> 24) != 127) {
        snprintf(err, errlen, "'%s': list answers are inside 127.0.0.0/8",
                 item);
        return -1;
    }
    dnswl_range *grown = realloc(z->ranges, (z->nranges + 1) * sizeof r);
    if (grown == NULL)
        return -1;
    z->ranges = grown;
    z->ranges[z->nranges++] = r;
    return 0;
}

static int add_zone(void *arg, char *item, char *err, size_t errlen)
{
    dnswl_config *c = arg;
    char *answers = strchr(item, '=');
    if (answers)
        *answers++ = '\0';
    size_t n = strlen(item);
    while (n > 0 && isspace((unsigned char)item[n - 1]))
        item[--n] = '\0';
    if (n > 0 && item[n - 1] == '.')
        item[--n] = '\0';
    if (!zone_valid(item)) {
        snprintf(err, errlen, "'%s' is not a zone name", item);
        return -1;
    }
    for (size_t i = 0; i < c->nzones; i++)
        if (!strcasecmp(c->zones[i].name, item)) {
            snprintf(err, errlen, "zone %s is listed twice", item);
            return -1;
        }
    dnswl_zone *grown = realloc(c->zones, (c->nzones + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    c->zones = grown;
    dnswl_zone *z = &c->zones[c->nzones];
    memset(z, 0, sizeof *z);
    if ((z->name = strdup(item)) == NULL)
        return -1;
    for (char *p = z->name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    c->nzones++;
    if (answers && each_item(answers, ";", add_range, z, err, errlen) != 0)
        return -1;
    return 0;
}

static int dnswl_config_set(void *p, const char *section, const char *key,
                            const char *value, char *err, size_t errlen)
{
    dnswl_config *c = p;
    if (section[0]) {
        char zname[256];
        snprintf(zname, sizeof zname, "%s", section);
        size_t n = strlen(zname);
        if (n && zname[n - 1] == '.')
            zname[n - 1] = '\0';
        dnswl_zone *z = NULL;
        for (size_t i = 0; i < c->nzones; i++)
            if (!strcasecmp(c->zones[i].name, zname))
                z = &c->zones[i];
        if (z == NULL) {
            snprintf(err, errlen, "[%s]: not a zone in zones (zones come "
                     "first, at the top of the file)", section);
            return -1;
        }
        if (strcmp(key, "answers")) {
            snprintf(err, errlen, "unknown key '%s' in [%s] (only answers)",
                     key, section);
            return -1;
        }
        return each_item(value, ",; \t", add_range, z, err, errlen);
    }
    /* a list may go on over several lines (repeated or continued keys):
     * items add up */
    if (!strcmp(key, "zones"))
        return each_item(value, ", \t", add_zone, c, err, errlen);
    if (!strcmp(key, "action")) {
        if (!strcasecmp(value, "skip"))
            c->action = ACT_SKIP;
        else if (!strcasecmp(value, "log"))
            c->action = ACT_LOG;
        else if (!strcasecmp(value, "tag"))
            c->action = ACT_TAG;
        else {
            snprintf(err, errlen, "action '%s': use skip, log or tag",
                     value);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "expand_stats")) {
        if (strcmp(value, "0") && strcmp(value, "1")) {
            snprintf(err, errlen, "expand_stats '%s': use 0 or 1", value);
            return -1;
        }
        c->expand_stats = value[0] == '1';
        return 0;
    }
    snprintf(err, errlen, "unknown key '%s'", key);
    return -1;
}

/* ---------------------------------------------------------------------- */
/* one connection's lookups                                                */

typedef struct zone_slot {
    struct dnswl_state *st;
    upesi_dns_query *q;
    int done, listed;
    char answer[48];
} zone_slot;

typedef struct dnswl_state {
    upesi_call *call;
    const dnswl_config *cfg;
    char ip[64];
    zone_slot slots[];
} dnswl_state;

static void state_cancel_all(dnswl_state *st)
{
    for (size_t i = 0; i < st->cfg->nzones; i++)
        if (st->slots[i].q) {
            api->dns_cancel(st->slots[i].q);
            st->slots[i].q = NULL;
        }
}

/* The host gave up on the call (plugin_timeout, disconnect). */
static void dnswl_on_cancel(upesi_call *call, void *arg)
{
    (void)call;
    dnswl_state *st = arg;
    state_cancel_all(st);
    free(st);
}

static void finish(dnswl_state *st, upesi_verdict v)
{
    upesi_call *call = st->call;
    state_cancel_all(st);
    free(st);
    api->resume(call, v);
}

static void listed(dnswl_state *st, size_t i)
{
    const dnswl_config *c = st->cfg;
    const char *zone = c->zones[i].name;
    upesi_call *call = st->call;
    char stat[256];
    for (size_t j = i + 1; j < c->nzones; j++)
        if (st->slots[j].q) {
            api->dns_cancel(st->slots[j].q);
            st->slots[j].q = NULL;
        }
    api->stat_add("SMTP.DNSWL.TotalHits", 1);
    snprintf(stat, sizeof stat, "SMTP.DNSWL.%s.TotalHits", zone);
    api->stat_add(stat, 1);
    if (c->expand_stats) {
        snprintf(stat, sizeof stat, "SMTP.DNSWL.%s.%s.Hits", zone, st->ip);
        api->stat_add(stat, 1);
    }
    if (c->action != ACT_SKIP)
        api->log(call, UPESI_LOG_NOTICE, "%s whitelisted by %s (%s)%s",
                 st->ip, zone, st->slots[i].answer,
                 c->action == ACT_TAG ? ": tagged" : "");
    api->note_set(call, UPESI_SCOPE_CONN, "whitelisted", zone);
    api->note_set(call, UPESI_SCOPE_CONN, "dnswl.site", zone);
    if (c->action == ACT_TAG)
        api->note_set(call, UPESI_SCOPE_CONN, "dnswl.tag", zone);
    finish(st, UPESI_CONT);
}

/* The first zone, in config order, that has answered "listed" wins once
 * every zone before it has answered "not listed". */
static void decide(dnswl_state *st)
{
    for (size_t i = 0; i < st->cfg->nzones; i++) {
        if (!st->slots[i].done)
            return;
        if (st->slots[i].listed) {
            listed(st, i);
            return;
        }
    }
    finish(st, UPESI_CONT);
}

static int answer_accepted(const dnswl_zone *z, uint32_t a)
{
    if (z->nranges == 0)
        return (a >> 24) == 127 && (a >> 8) != 0x7fffff;
    for (size_t i = 0; i < z->nranges; i++)
        if (a >= z->ranges[i].lo && a <= z->ranges[i].hi)
            return 1;
    return 0;
}

static void on_answer(const upesi_dns_answer *a, void *arg)
{
    zone_slot *slot = arg;
    dnswl_state *st = slot->st;
    size_t i = (size_t)(slot - st->slots);
    const dnswl_zone *z = &st->cfg->zones[i];
    char stat[256];
    slot->q = NULL;
    slot->done = 1;
    switch (a->status) {
    case UPESI_DNS_OK:
        for (size_t k = 0; k < a->count && !slot->listed; k++) {
            uint32_t v;
            if (parse_ip4(a->records[k].text, &v) != 0)
                continue;
            if ((v >> 24) != 127) {
                api->log(st->call, UPESI_LOG_WARNING, "%s: %s answered %s, "
                         "outside 127.0.0.0/8: ignored", st->ip, z->name,
                         a->records[k].text);
                snprintf(stat, sizeof stat, "SMTP.DNSWL.%s.Ignored", z->name);
                api->stat_add(stat, 1);
            } else if (answer_accepted(z, v)) {
                slot->listed = 1;
                snprintf(slot->answer, sizeof slot->answer, "%s",
                         a->records[k].text);
            } else {
                api->log(st->call, UPESI_LOG_INFO, "%s: %s answered %s, not "
                         "an accepted answer: not listed", st->ip, z->name,
                         a->records[k].text);
            }
        }
        break;
    case UPESI_DNS_NXDOMAIN:
    case UPESI_DNS_NODATA:
        break;
    case UPESI_DNS_TIMEOUT:
    case UPESI_DNS_ERROR:
        api->log(st->call, UPESI_LOG_WARNING, "%s: %s did not answer (%s): "
                 "taken as not listed", st->ip, z->name,
                 a->status == UPESI_DNS_TIMEOUT ? "timeout" : "DNS error");
        snprintf(stat, sizeof stat, "SMTP.DNSWL.%s.%s", z->name,
                 a->status == UPESI_DNS_TIMEOUT ? "Timeouts" : "Errors");
        api->stat_add(stat, 1);
        break;
    }
    decide(st);
}

/* ---------------------------------------------------------------------- */
/* hooks                                                                   */

static upesi_verdict dnswl_connect(upesi_call *call)
{
    const dnswl_config *c = api->config(call);
    const upesi_conn_info *conn = api->conn(call);
    if (c == NULL || conn == NULL || c->nzones == 0)
        return UPESI_CONT;
    const char *wl = api->note_get(call, UPESI_SCOPE_CONN, "whitelisted");
    const char *bl = api->note_get(call, UPESI_SCOPE_CONN, "blacklisted");
    if (wl || bl) {
        api->log(call, UPESI_LOG_DEBUG, "%s %s by %s: DNSWLs skipped",
                 conn->remote_ip, wl ? "whitelisted" : "blacklisted",
                 wl ? wl : bl);
        return UPESI_CONT;
    }
    dnswl_state *st = calloc(1, sizeof *st + c->nzones * sizeof(zone_slot));
    if (st == NULL)
        return UPESI_CONT;
    st->call = call;
    st->cfg = c;
    snprintf(st->ip, sizeof st->ip, "%s", conn->remote_ip);
    size_t started = 0;
    for (size_t i = 0; i < c->nzones; i++) {
        char name[320];
        zone_slot *slot = &st->slots[i];
        slot->st = st;
        if (api->dns_ip_name(st->ip, c->zones[i].name, name,
                             sizeof name) == 0)
            slot->q = api->dns_lookup(call, UPESI_DNS_A, name, on_answer,
                                      slot);
        if (slot->q)
            started++;
        else
            slot->done = 1;     /* cannot ask: not listed */
    }
    if (started == 0) {
        free(st);
        return UPESI_CONT;
    }
    api->on_cancel(call, dnswl_on_cancel, st);
    return UPESI_PENDING;
}

/* Tag: the connection's tag goes on each transaction and message. */
static upesi_verdict dnswl_mail(upesi_call *call)
{
    const char *tag = api->note_get(call, UPESI_SCOPE_CONN, "dnswl.tag");
    if (tag)
        api->note_set(call, UPESI_SCOPE_TXN, "dnswl.site", tag);
    return UPESI_CONT;
}

static upesi_verdict dnswl_data_post(upesi_call *call)
{
    const char *tag = api->note_get(call, UPESI_SCOPE_CONN, "dnswl.tag");
    if (tag)
        api->header_add(call, "X-DNSWL-Site", tag);
    return UPESI_CONT;
}

static int dnswl_init(const upesi_api *host, upesi_plugin_ref *self,
                      char *err, size_t errlen)
{
    (void)self;
    if (host->abi_minor < 1) {
        snprintf(err, errlen, "needs a host with DNS (ABI 1.1)");
        return -1;
    }
    api = host;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "dnswl",
    .version = "1.0",
    .init = dnswl_init,
    .config_new = dnswl_config_new,
    .config_set = dnswl_config_set,
    .config_free = dnswl_config_free,
    .hooks = {
        [UPESI_HOOK_CONNECT] = dnswl_connect,
        [UPESI_HOOK_MAIL] = dnswl_mail,
        [UPESI_HOOK_DATA_POST] = dnswl_data_post,
    },
};
