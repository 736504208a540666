/*
 * dnslist.c - DNS lists as dnsbl and dnswl ask them: zones and their
 * accepted answers, one query per zone at once, the first configured zone
 * that lists the client wins (see dnslist.h).
 *
 * Fails: open; a DNS problem is "not listed", logged and counted.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnslist.h"
#include "settings.h"

static const upesi_api *dnslist_api;
static upesi_ctx *dnslist_ctx;
static const dnslist_kind *dnslist_kind_of;
static char dnslist_note_site[32];      /* "dnsbl.site" */
static char dnslist_note_tag[32];       /* "dnsbl.tag" */
static char dnslist_header[32];         /* "X-DNSBL-Site" */

void dnslist_init(upesi_ctx *ctx, const upesi_api *host,
                  const dnslist_kind *kind)
{
    dnslist_ctx = ctx;
    dnslist_api = host;
    dnslist_kind_of = kind;
    snprintf(dnslist_note_site, sizeof dnslist_note_site, "%s.site",
             kind->name);
    snprintf(dnslist_note_tag, sizeof dnslist_note_tag, "%s.tag", kind->name);
    snprintf(dnslist_header, sizeof dnslist_header, "X-%s-Site", kind->stat);
}

/* ---------------------------------------------------------------------- */
/* settings                                                                */

void dnslist_config_init(dnslist_config *c)
{
    memset(c, 0, sizeof *c);
    c->action = dnslist_kind_of->default_action;
}

void dnslist_config_done(dnslist_config *c)
{
    for (size_t i = 0; i < c->nzones; i++) {
        free(c->zones[i].name);
        free(c->zones[i].ranges);
    }
    free(c->zones);
}

void *dnslist_config_new(void)
{
    dnslist_config *c = malloc(sizeof *c);
    if (c)
        dnslist_config_init(c);
    return c;
}

void dnslist_config_free(void *config)
{
    dnslist_config_done(config);
    free(config);
}

/* A zone: letters, digits, '-' and '_', labels of 1..63, room left for the
 * 64 characters of an IPv6 nibble name. */
static int dnslist_zone_valid(const char *z)
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

static int dnslist_parse_ip4(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return -1;
    *out = ntohl(a.s_addr);
    return 0;
}

/* "127.0.0.2", "127.0.0.2-127.0.0.11", "127.0.1.0/24" */
static int dnslist_parse_range(const char *item, dnslist_range *r, char *err,
                               size_t errlen)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", item);
    char *dash = strchr(buf, '-'), *slash = strchr(buf, '/');
    if (dash)
        *dash = '\0';
    if (slash)
        *slash = '\0';
    int bad = dnslist_parse_ip4(buf, &r->lo) != 0;
    r->hi = r->lo;
    if (!bad && dash)
        bad = dnslist_parse_ip4(dash + 1, &r->hi) != 0 || r->hi < r->lo;
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
static int dnslist_each_item(const char *value, const char *seps,
                             int (*fn)(void *, char *, char *, size_t),
                             void *arg, char *err, size_t errlen)
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

static int dnslist_add_range(void *arg, char *item, char *err, size_t errlen)
{
    dnslist_zone *z = arg;
    dnslist_range r;
    if (dnslist_parse_range(item, &r, err, errlen) != 0)
        return -1;
    if ((r.lo >> 24) != 127 || (r.hi >> 24) != 127) {
        snprintf(err, errlen, "'%s': list answers are inside 127.0.0.0/8",
                 item);
        return -1;
    }
    dnslist_range *grown = realloc(z->ranges, (z->nranges + 1) * sizeof r);
    if (grown == NULL)
        return -1;
    z->ranges = grown;
    z->ranges[z->nranges++] = r;
    return 0;
}

/* One octet of a postscreen filter: "7", "[2..11]", "[10;11]" into up to
 * 256 flags; returns the end of it or NULL. */
static const char *dnslist_octet(const char *p, unsigned char set[256])
{
    char *end;
    memset(set, 0, 256);
    if (*p != '[') {
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 255)
            return NULL;
        set[v] = 1;
        return end;
    }
    p++;
    for (;;) {
        long lo = strtol(p, &end, 10), hi;
        if (end == p || lo < 0 || lo > 255)
            return NULL;
        p = end;
        hi = lo;
        if (p[0] == '.' && p[1] == '.') {
            hi = strtol(p + 2, &end, 10);
            if (end == p + 2 || hi < lo || hi > 255)
                return NULL;
            p = end;
        }
        for (long v = lo; v <= hi; v++)
            set[v] = 1;
        if (*p == ']')
            return p + 1;
        if (*p != ';')
            return NULL;
        p++;
    }
}

/* postscreen's reply filter "127.0.0.[2..11]" as ranges of z */
static int dnslist_add_filter(dnslist_zone *z, const char *f, char *err,
                              size_t errlen)
{
    unsigned char set[4][256];
    const char *p = f;
    for (int i = 0; i < 4; i++) {
        if (i && *p++ != '.')
            p = NULL;
        if (p == NULL || (p = dnslist_octet(p, set[i])) == NULL)
            break;
    }
    if (p == NULL || *p || !set[0][127]) {
        snprintf(err, errlen, "'%s' is not a reply filter inside 127/8 "
                 "(127.0.0.2, 127.0.0.[2..11], 127.0.0.[4;5;10])", f);
        return -1;
    }
    for (unsigned b = 0; b < 256; b++) {
        if (!set[1][b])
            continue;
        for (unsigned c = 0; c < 256; c++) {
            if (!set[2][c])
                continue;
            for (unsigned d = 0; d < 256; d++) {
                if (!set[3][d])
                    continue;
                unsigned e = d;
                while (e + 1 < 256 && set[3][e + 1])
                    e++;
                dnslist_range r = { 127u << 24 | b << 16 | c << 8 | d,
                                    127u << 24 | b << 16 | c << 8 | e };
                if (set[0][127] != 1 || z->nranges > 4096)
                    goto big;
                dnslist_range *grown = realloc(z->ranges,
                                               (z->nranges + 1) * sizeof r);
                if (grown == NULL)
                    return -1;
                z->ranges = grown;
                z->ranges[z->nranges++] = r;
                d = e;
            }
        }
    }
    for (unsigned a = 0; a < 256; a++)
        if (set[0][a] && a != 127)
            goto big;
    return 0;
big:
    snprintf(err, errlen, "'%s': a reply filter is inside 127/8 and names "
             "at most 4096 ranges", f);
    return -1;
}

static int dnslist_add_zone(void *arg, char *item, char *err, size_t errlen)
{
    dnslist_config *c = arg;
    int weight = 1, weighted = 0;
    char *star = strrchr(item, '*');
    if (star) {
        char *end;
        long w = strtol(star + 1, &end, 10);
        if (end == star + 1 || *end || w < -1000 || w > 1000 || w == 0) {
            snprintf(err, errlen, "'%s': a weight is a whole number from "
                     "-1000 to 1000, not 0", star);
            return -1;
        }
        *star = '\0';
        weight = (int)w;
        weighted = 1;
    }
    char *answers = strchr(item, '=');
    if (answers)
        *answers++ = '\0';
    size_t n = strlen(item);
    while (n > 0 && isspace((unsigned char)item[n - 1]))
        item[--n] = '\0';
    if (n > 0 && item[n - 1] == '.')
        item[--n] = '\0';
    if (!dnslist_zone_valid(item)) {
        snprintf(err, errlen, "'%s' is not a zone name", item);
        return -1;
    }
    for (size_t i = 0; i < c->nzones && !weighted; i++)
        if (!strcasecmp(c->zones[i].name, item)) {
            snprintf(err, errlen, "zone %s is listed twice (only weighted "
                     "zones, zone=answers*weight, may be)", item);
            return -1;
        }
    dnslist_zone *grown = realloc(c->zones, (c->nzones + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    c->zones = grown;
    dnslist_zone *z = &c->zones[c->nzones];
    memset(z, 0, sizeof *z);
    if ((z->name = strdup(item)) == NULL)
        return -1;
    for (char *p = z->name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    z->weight = weight;
    c->nzones++;
    c->weighted |= weighted;     /* once the zone is in, not before */
    if (answers && strchr(answers, '['))
        return dnslist_add_filter(z, answers, err, errlen);
    if (answers &&
        dnslist_each_item(answers, ";", dnslist_add_range, z, err, errlen) != 0)
        return -1;
    return 0;
}

int dnslist_config_check(dnslist_config *c, char *err, size_t errlen)
{
    if (!c->weighted) {
        if (c->cache_ttl > 0 || c->allow_threshold) {
            snprintf(err, errlen, "%s: only with weighted zones "
                     "(zone*weight)", c->cache_ttl > 0 ? "cache_ttl"
                                                       : "allow_threshold");
            return -1;
        }
        return 0;
    }
    for (size_t i = 0; i < c->nzones; i++)   /* a zone given twice: one
                                                 weight each, or none */
        for (size_t j = i + 1; j < c->nzones; j++)
            if (!strcmp(c->zones[i].name, c->zones[j].name) &&
                (c->zones[i].nranges == 0 || c->zones[j].nranges == 0)) {
                snprintf(err, errlen, "zone %s is listed twice and one of "
                         "them accepts every answer: give each its reply "
                         "filter", c->zones[i].name);
                return -1;
            }
    if (c->cache_ttl > 0 && !UPESI_API_SUPPORTED(dnslist_api, store_get)) {
        snprintf(err, errlen, "cache_ttl: this host has no store");
        return -1;
    }
    return 0;
}

int dnslist_config_check_any(void *config, char *err, size_t errlen)
{
    return dnslist_config_check(config, err, errlen);
}

/* [zone] sections: answers only. */
static int dnslist_zone_set(dnslist_config *c, const char *section,
                            const char *key, const char *value, char *err,
                            size_t errlen)
{
    char zname[256];
    snprintf(zname, sizeof zname, "%s", section);
    size_t n = strlen(zname);
    if (n && zname[n - 1] == '.')
        zname[n - 1] = '\0';
    dnslist_zone *z = NULL;
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
    /* the list splitter of every setting; ';' as in zones' zone=a;b */
    const char *pos = value, *start;
    size_t len;
    while ((start = upesi_list_next(&pos, &len)) != NULL) {
        char item[128];
        if (len >= sizeof item) {
            snprintf(err, errlen, "'%.40s...' is too long", start);
            return -1;
        }
        memcpy(item, start, len);
        item[len] = '\0';
        if (dnslist_each_item(item, ";", dnslist_add_range, z, err,
                              errlen) != 0)
            return -1;
    }
    return 0;
}

int dnslist_set_zone(void *config, const char *item, char *err,
                     size_t errlen)
{
    char copy[512];
    if (strlen(item) >= sizeof copy) {
        snprintf(err, errlen, "'%.40s...' is too long", item);
        return -1;
    }
    strcpy(copy, item);
    return dnslist_add_zone(config, copy, err, errlen);
}

/* The keys at the top (zones, action, expand_stats) are the plugin's
 * settings table (DNSLIST_SETTINGS); here only [zone] sections. */
int dnslist_config_set(dnslist_config *c, const char *section,
                       const char *key, const char *value, char *err,
                       size_t errlen)
{
    if (section[0])
        return dnslist_zone_set(c, section, key, value, err, errlen);
    snprintf(err, errlen, "unknown key '%s'", key);
    return -1;
}

int dnslist_config_set_any(void *config, const char *section,
                           const char *key, const char *value, char *err,
                           size_t errlen)
{
    return dnslist_config_set(config, section, key, value, err, errlen);
}

/* ---------------------------------------------------------------------- */
/* one connection's lookups                                                */

static void dnslist_cancel_all(dnslist_lookup *lk)
{
    for (size_t i = 0; i < lk->cfg->nzones; i++)
        if (lk->slots[i].q) {
            dnslist_api->dns_cancel(lk->slots[i].q);
            lk->slots[i].q = NULL;
        }
    if (lk->extra) {
        dnslist_api->dns_cancel(lk->extra);
        lk->extra = NULL;
    }
    if (lk->cache_op) {
        dnslist_api->store_cancel(lk->cache_op);
        lk->cache_op = NULL;
    }
}

/* The host gave up on the call (plugin_timeout, disconnect). */
static void dnslist_on_cancel(upesi_call *call, void *arg)
{
    (void)call;
    dnslist_lookup *lk = arg;
    dnslist_cancel_all(lk);
    free(lk);
}

void dnslist_finish(dnslist_lookup *lk, upesi_verdict v)
{
    upesi_call *call = lk->call;
    dnslist_cancel_all(lk);
    free(lk);
    dnslist_api->resume(call, v);
}

/* SMTP.<NAME>[.zone][.ip].what */
static void dnslist_stat(const char *zone, const char *ip, const char *what)
{
    char stat[256];
    snprintf(stat, sizeof stat, "SMTP.%s%s%s%s%s.%s", dnslist_kind_of->stat,
             zone ? "." : "", zone ? zone : "", ip ? "." : "", ip ? ip : "",
             what);
    dnslist_api->stat_add(dnslist_ctx, stat, 1);
}

static void dnslist_listed(dnslist_lookup *lk, size_t i)
{
    const dnslist_config *c = lk->cfg;
    const char *zone = c->zones[i].name;
    lk->hit = i;
    for (size_t j = i + 1; j < c->nzones; j++)
        if (lk->slots[j].q) {
            dnslist_api->dns_cancel(lk->slots[j].q);
            lk->slots[j].q = NULL;
        }
    dnslist_stat(NULL, NULL, "TotalHits");
    dnslist_stat(zone, NULL, "TotalHits");
    if (c->expand_stats)
        dnslist_stat(zone, lk->ip, "Hits");
    dnslist_api->note_set(lk->call, UPESI_SCOPE_CONN, dnslist_note_site,
                          zone);
    if (c->action == dnslist_kind_of->tag_action)
        dnslist_api->note_set(lk->call, UPESI_SCOPE_CONN, dnslist_note_tag,
                              zone);
    dnslist_kind_of->listed(lk, zone, lk->slots[i].answer);
}

static void dnslist_ignore(const upesi_store_result *r, void *arg)
{
    (void)r;
    (void)arg;
}

/* Weighted mode: the sum of this plugin's zones (from the DNS, or from the
 * pass cache when from_cache) is known. */
static void dnslist_weighed(dnslist_lookup *lk, long long score,
                            int from_cache)
{
    const dnslist_config *c = lk->cfg;
    upesi_call *call = lk->call;
    long long total = dnslist_api->note_get_int(call, UPESI_SCOPE_CONN,
                                                "dns.score", 0) + score;
    dnslist_api->note_set_int(call, UPESI_SCOPE_CONN, "dns.score", total);
    size_t top = c->nzones;
    for (size_t i = 0; i < c->nzones && !from_cache; i++)
        if (lk->slots[i].listed) {
            dnslist_stat(c->zones[i].name, NULL, "Listed");
            if (c->zones[i].weight > 0 &&
                (top == c->nzones || c->zones[i].weight > c->zones[top].weight))
                top = i;
        }
    dnslist_api->log_call(call, UPESI_LOG_INFO, "%s: %s score %+lld%s, "
                          "dns.score %lld", lk->ip, dnslist_kind_of->stat,
                          score, from_cache ? " (cached)" : "", total);
    int listed = dnslist_kind_of->blocks && total >= c->threshold &&
                 top < c->nzones;
    /* a zone that did not answer counted 0 this time; cached, that 0
     * would let a listed client past every host for cache_ttl */
    int all_answered = 1;
    for (size_t i = 0; i < c->nzones && !from_cache; i++)
        if (lk->slots[i].unanswered)
            all_answered = 0;
    if (!listed && c->cache_ttl > 0 && !from_cache && all_answered) {
        char key[96], val[24];
        snprintf(key, sizeof key, "pass:%s", lk->ip);
        int n = snprintf(val, sizeof val, "%lld", score);
        dnslist_api->store_set(dnslist_ctx, key, val, (size_t)n,
                               (long long)(c->cache_ttl * 1000),
                               dnslist_ignore, NULL);
    }
    if (listed) {
        dnslist_listed(lk, top);
        return;
    }
    if (c->allow_threshold < 0 && total <= c->allow_threshold) {
        dnslist_stat(NULL, NULL, "Allowed");
        if (!dnslist_kind_of->blocks) {     /* dnswl: its own way */
            dnslist_kind_of->listed(lk, "dns.score", "allow_threshold");
            return;
        }
        dnslist_api->log_call(call, UPESI_LOG_NOTICE, "%s whitelisted: "
                              "dns.score %lld <= allow_threshold %d",
                              lk->ip, total, c->allow_threshold);
        dnslist_api->note_set(call, UPESI_SCOPE_CONN, "whitelisted",
                              "dns.score");
    }
    dnslist_finish(lk, UPESI_CONT);
}

/* The first zone, in config order, that has answered "listed" wins once
 * every zone before it has answered "not listed".  Weighted: every zone
 * answers, then the sum decides. */
static void dnslist_decide(dnslist_lookup *lk)
{
    if (lk->cfg->weighted) {
        long long score = 0;
        for (size_t i = 0; i < lk->cfg->nzones; i++) {
            if (!lk->slots[i].done)
                return;
            if (lk->slots[i].listed)
                score += lk->cfg->zones[i].weight;
        }
        dnslist_weighed(lk, score, 0);
        return;
    }
    for (size_t i = 0; i < lk->cfg->nzones; i++) {
        if (!lk->slots[i].done)
            return;
        if (lk->slots[i].listed) {
            dnslist_listed(lk, i);
            return;
        }
    }
    dnslist_finish(lk, UPESI_CONT);
}

static int dnslist_answer_accepted(const dnslist_zone *z, uint32_t a)
{
    if (z->nranges == 0)
        return (a >> 24) == 127 && (a >> 8) != 0x7fffff;
    for (size_t i = 0; i < z->nranges; i++)
        if (a >= z->ranges[i].lo && a <= z->ranges[i].hi)
            return 1;
    return 0;
}

static void dnslist_on_answer(const upesi_dns_answer *a, void *arg)
{
    dnslist_slot *slot = arg;
    dnslist_lookup *lk = slot->lk;
    size_t i = (size_t)(slot - lk->slots);
    const dnslist_zone *z = &lk->cfg->zones[i];
    const upesi_api *api = dnslist_api;
    slot->q = NULL;
    slot->done = 1;
    switch (a->status) {
    case UPESI_DNS_OK:
        for (size_t k = 0; k < a->count && !slot->listed; k++) {
            uint32_t v;
            if (dnslist_parse_ip4(a->records[k].text, &v) != 0)
                continue;
            if ((v >> 24) != 127) {
                api->log_call(lk->call, UPESI_LOG_WARNING, "%s: %s answered %s, "
                         "outside 127.0.0.0/8: ignored", lk->ip, z->name,
                         a->records[k].text);
                dnslist_stat(z->name, NULL, "Ignored");
            } else if (dnslist_answer_accepted(z, v)) {
                slot->listed = 1;
                snprintf(slot->answer, sizeof slot->answer, "%s",
                         a->records[k].text);
            } else {
                api->log_call(lk->call, UPESI_LOG_INFO, "%s: %s answered %s, not "
                         "an accepted answer: not listed", lk->ip, z->name,
                         a->records[k].text);
            }
        }
        break;
    case UPESI_DNS_NXDOMAIN:
    case UPESI_DNS_NODATA:
        break;
    case UPESI_DNS_TIMEOUT:
    case UPESI_DNS_ERROR:
        slot->unanswered = 1;
        api->log_call(lk->call, UPESI_LOG_WARNING, "%s: %s did not answer (%s): "
                 "taken as not listed", lk->ip, z->name,
                 a->status == UPESI_DNS_TIMEOUT ? "timeout" : "DNS error");
        dnslist_stat(z->name, NULL,
                     a->status == UPESI_DNS_TIMEOUT ? "Timeouts" : "Errors");
        break;
    }
    dnslist_decide(lk);
}

/* ---------------------------------------------------------------------- */
/* hooks                                                                   */

static size_t dnslist_query(dnslist_lookup *lk);
static void dnslist_on_cache(const upesi_store_result *r, void *arg);

upesi_verdict dnslist_connect(upesi_call *call)
{
    const upesi_api *api = dnslist_api;
    const dnslist_config *c = api->config(call);
    const upesi_conn_info *conn = api->conn(call);
    if (c == NULL || conn == NULL || c->nzones == 0)
        return UPESI_CONT;
    const char *wl = api->note_get(call, UPESI_SCOPE_CONN, "whitelisted");
    const char *bl = api->note_get(call, UPESI_SCOPE_CONN, "blacklisted");
    if (wl || bl) {
        api->log_call(call, UPESI_LOG_DEBUG, "%s %s by %s: %ss skipped",
                 conn->remote_ip, wl ? "whitelisted" : "blacklisted",
                 wl ? wl : bl, dnslist_kind_of->stat);
        return UPESI_CONT;
    }
    dnslist_lookup *lk = calloc(1, sizeof *lk +
                                       c->nzones * sizeof(dnslist_slot));
    if (lk == NULL)
        return UPESI_CONT;
    lk->call = call;
    lk->cfg = c;
    snprintf(lk->ip, sizeof lk->ip, "%s", conn->remote_ip);
    if (c->weighted && c->cache_ttl > 0) {
        char key[96];
        snprintf(key, sizeof key, "pass:%s", lk->ip);
        lk->cache_op = api->store_get(dnslist_ctx, key, dnslist_on_cache, lk);
        if (lk->cache_op) {
            api->on_cancel(call, dnslist_on_cancel, lk);
            return UPESI_PENDING;
        }
    }
    if (dnslist_query(lk) == 0) {
        free(lk);
        return UPESI_CONT;
    }
    api->on_cancel(call, dnslist_on_cancel, lk);
    return UPESI_PENDING;
}

/* Ask every zone; the number of queries started. */
static size_t dnslist_query(dnslist_lookup *lk)
{
    const upesi_api *api = dnslist_api;
    const dnslist_config *c = lk->cfg;
    upesi_call *call = lk->call;
    size_t started = 0;
    for (size_t i = 0; i < c->nzones; i++) {
        char name[320];
        dnslist_slot *slot = &lk->slots[i];
        slot->lk = lk;
        if (api->dns_ip_name(lk->ip, c->zones[i].name, name,
                             sizeof name) == 0)
            slot->q = api->dns_lookup(dnslist_ctx, call, UPESI_DNS_A, name,
                                      dnslist_on_answer, slot);
        if (slot->q)
            started++;
        else
            slot->done = 1;     /* cannot ask: not listed */
    }
    return started;
}

/* The pass cache answered: a client cached is decided without DNS; a
 * miss or a store failure asks the DNS. */
static void dnslist_on_cache(const upesi_store_result *r, void *arg)
{
    dnslist_lookup *lk = arg;
    lk->cache_op = NULL;
    if (r->status == 0 && r->values[0].found) {
        dnslist_stat(NULL, NULL, "CacheHits");
        dnslist_weighed(lk, r->values[0].num, 1);
        return;
    }
    if (r->status != 0)
        dnslist_api->log_call(lk->call, UPESI_LOG_DEBUG, "pass cache: %s; "
                              "asking the DNS",
                              dnslist_api->strerror(r->status));
    if (dnslist_query(lk) == 0)
        dnslist_finish(lk, UPESI_CONT);
}

/* Tag: the connection's tag goes on each transaction and message. */
upesi_verdict dnslist_mail(upesi_call *call)
{
    const char *tag = dnslist_api->note_get(call, UPESI_SCOPE_CONN,
                                            dnslist_note_tag);
    if (tag)
        dnslist_api->note_set(call, UPESI_SCOPE_TXN, dnslist_note_site, tag);
    return UPESI_CONT;
}

upesi_verdict dnslist_data_post(upesi_call *call)
{
    const char *tag = dnslist_api->note_get(call, UPESI_SCOPE_CONN,
                                            dnslist_note_tag);
    if (tag)
        dnslist_api->header_add(call, dnslist_header, tag);
    return UPESI_CONT;
}
