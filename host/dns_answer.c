/*
 * dns_answer.c - DNS responses to upesi_dns_answer (see dns_answer.h).
 *
 * c-ares has matched the response to our query (id, question) before it
 * reaches us; what it does not do for TXT, MX and PTR is give the TTL, so
 * the answer section is walked here, with every length checked.
 *
 * Fails: a response that does not parse is an UPESI_DNS_ERROR answer;
 * only out of memory returns NULL.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <ares.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns_answer.h"

/* ---------------------------------------------------------------------- */
/* results                                                                 */

up_dns_result *up_dns_result_new(int type, const char *name,
                                 upesi_dns_status status, uint32_t ttl,
                                 const upesi_dns_record *records,
                                 size_t count)
{
    size_t strings = strlen(name) + 1;
    for (size_t i = 0; i < count; i++)
        strings += strlen(records[i].text) + 1;
    up_dns_result *r = malloc(sizeof *r + count * sizeof *records + strings);
    if (r == NULL)
        return NULL;
    char *p = (char *)&r->records[count];
    r->refs = 1;
    r->answer.status = status;
    r->answer.type = type;
    r->answer.ttl = ttl;
    r->answer.count = count;
    r->answer.records = r->records;
    size_t n = strlen(name) + 1;
    memcpy(p, name, n);
    r->answer.name = p;
    p += n;
    for (size_t i = 0; i < count; i++) {
        n = strlen(records[i].text) + 1;
        memcpy(p, records[i].text, n);
        r->records[i].text = p;
        r->records[i].preference = records[i].preference;
        p += n;
    }
    return r;
}

up_dns_result *up_dns_result_status(int type, const char *name,
                                    upesi_dns_status status, uint32_t ttl)
{
    return up_dns_result_new(type, name, status, ttl, NULL, 0);
}

up_dns_result *up_dns_result_ref(up_dns_result *r)
{
    r->refs++;
    return r;
}

void up_dns_result_unref(up_dns_result *r)
{
    if (r && --r->refs == 0)
        free(r);
}

/* ---------------------------------------------------------------------- */
/* names                                                                   */

int up_dns_name_normalize(const char *name, char *out, size_t outlen)
{
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > 253 || len >= outlen)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
        } else if (c <= 0x20 || c >= 0x7f || ++label > 63) {
            return -1;
        }
        out[i] = (char)tolower(c);
    }
    if (label == 0)
        return -1;
    out[len] = '\0';
    return 0;
}

int up_dns_ip_name(const char *ip, const char *zone, char *out,
                   size_t outlen)
{
    unsigned char a[16];
    int n;
    if (ip == NULL)
        return -EINVAL;
    if (!strncasecmp(ip, "::ffff:", 7) && strchr(ip, '.'))
        ip += 7;
    if (inet_pton(AF_INET, ip, a) == 1) {
        n = snprintf(out, outlen, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0],
                     zone ? zone : "in-addr.arpa");
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        static const char hex[] = "0123456789abcdef";
        char nib[65];
        for (int i = 0; i < 16; i++) {
            unsigned char b = a[15 - i];
            nib[i * 4] = hex[b & 15];
            nib[i * 4 + 1] = '.';
            nib[i * 4 + 2] = hex[b >> 4];
            nib[i * 4 + 3] = '.';
        }
        nib[64] = '\0';
        n = snprintf(out, outlen, "%s%s", nib, zone ? zone : "ip6.arpa");
    } else {
        return -EINVAL;
    }
    return n > 0 && (size_t)n < outlen ? 0 : -ENOSPC;
}

/* ---------------------------------------------------------------------- */
/* the wire                                                                */

#define DNS_HEADER 12
#define T_CNAME 5
#define T_SOA 6
#define MAX_CHAIN 8

typedef struct rr {
    char *owner;                /* ares_malloc'd */
    int type, klass;
    uint32_t ttl;
    const unsigned char *rdata;
    size_t rdlen;
} rr;

typedef struct wire {
    const unsigned char *buf;
    size_t len;
    size_t pos;
} wire;

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

/* Expand the name at p (inside w) into *out; *used = bytes it takes at p. */
static int expand_name(const wire *w, const unsigned char *p, char **out,
                       size_t *used)
{
    long enclen = 0;
    char *s = NULL;
    if (p < w->buf || p >= w->buf + w->len)
        return -1;
    if (ares_expand_name(p, w->buf, (int)w->len, &s, &enclen) !=
            ARES_SUCCESS || enclen <= 0) {
        if (s)
            ares_free_string(s);
        return -1;
    }
    *out = s;
    *used = (size_t)enclen;
    return 0;
}

static int skip_question(wire *w)
{
    char *s;
    size_t used;
    if (expand_name(w, w->buf + w->pos, &s, &used) != 0)
        return -1;
    ares_free_string(s);
    if (w->len - w->pos < used + 4)
        return -1;
    w->pos += used + 4;
    return 0;
}

/* The next resource record; its owner is the caller's to free. */
static int next_rr(wire *w, rr *out)
{
    size_t used;
    if (expand_name(w, w->buf + w->pos, &out->owner, &used) != 0)
        return -1;
    if (w->len - w->pos < used + 10) {
        ares_free_string(out->owner);
        return -1;
    }
    const unsigned char *p = w->buf + w->pos + used;
    out->type = get16(p);
    out->klass = get16(p + 2);
    out->ttl = get32(p + 4);
    if (out->ttl > 0x7fffffff)  /* RFC 2181 8: such a TTL means zero */
        out->ttl = 0;
    out->rdlen = get16(p + 8);
    out->rdata = p + 10;
    if (w->len - w->pos - used - 10 < out->rdlen) {
        ares_free_string(out->owner);
        return -1;
    }
    w->pos += used + 10 + out->rdlen;
    return 0;
}

static int in_chain(char *const *chain, int n, const char *owner)
{
    for (int i = 0; i < n; i++)
        if (!strcasecmp(chain[i], owner))
            return 1;
    return 0;
}

/* TXT: the strings of one record joined, control bytes made visible. */
static char *txt_text(const rr *r)
{
    char *text = malloc(r->rdlen + 1);
    size_t n = 0, i = 0;
    if (text == NULL)
        return NULL;
    while (i < r->rdlen) {
        size_t l = r->rdata[i++];
        if (l > r->rdlen - i) {
            free(text);
            return NULL;
        }
        for (size_t k = 0; k < l; k++) {
            unsigned char c = r->rdata[i + k];
            text[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        }
        i += l;
    }
    text[n] = '\0';
    return text;
}

/* One record of the type asked for, as text (malloc'd), or NULL when its
 * data is malformed. */
static char *record_text(const wire *w, const rr *r, int *preference)
{
    char buf[INET6_ADDRSTRLEN], *name, *copy;
    size_t used;
    *preference = 0;
    switch (r->type) {
    case UPESI_DNS_A:
        if (r->rdlen != 4 || !inet_ntop(AF_INET, r->rdata, buf, sizeof buf))
            return NULL;
        return strdup(buf);
    case UPESI_DNS_AAAA:
        if (r->rdlen != 16 ||
            !inet_ntop(AF_INET6, r->rdata, buf, sizeof buf))
            return NULL;
        return strdup(buf);
    case UPESI_DNS_TXT:
        return txt_text(r);
    case UPESI_DNS_MX:
    case UPESI_DNS_PTR: {
        size_t skip = r->type == UPESI_DNS_MX ? 2 : 0;
        if (r->rdlen <= skip)
            return NULL;
        if (expand_name(w, r->rdata + skip, &name, &used) != 0)
            return NULL;
        if (used > r->rdlen - skip) {
            ares_free_string(name);
            return NULL;
        }
        if (skip)
            *preference = get16(r->rdata);
        copy = strdup(name[0] ? name : ".");
        ares_free_string(name);
        return copy;
    }
    default:
        return NULL;
    }
}

/* Walk the answer section once: follow CNAMEs from the chain (grow it),
 * or collect records of `type` owned by a name on the chain. */
static int walk_answers(wire w, unsigned an, int type, char **chain,
                        int *nchain, uint32_t *ttl, upesi_dns_record *recs,
                        size_t *nrecs, int collect)
{
    for (unsigned i = 0; i < an; i++) {
        rr r;
        if (next_rr(&w, &r) != 0)
            return -1;
        int mine = r.klass == 1 && in_chain(chain, *nchain, r.owner);
        ares_free_string(r.owner);
        if (!mine)
            continue;
        if (!collect && r.type == T_CNAME && type != T_CNAME) {
            char *target;
            size_t used;
            if (expand_name(&w, r.rdata, &target, &used) != 0)
                return -1;
            if (used > r.rdlen) {
                ares_free_string(target);
                return -1;
            }
            if (*ttl > r.ttl)
                *ttl = r.ttl;
            if (!in_chain(chain, *nchain, target) && *nchain < MAX_CHAIN) {
                chain[(*nchain)++] = strdup(target);
                if (chain[*nchain - 1] == NULL)
                    (*nchain)--;
            }
            ares_free_string(target);
        } else if (collect && r.type == type) {
            if (*nrecs >= UP_DNS_MAX_RECORDS)
                continue;
            int pref;
            char *text = record_text(&w, &r, &pref);
            if (text == NULL)
                return -1;
            recs[*nrecs].text = text;
            recs[*nrecs].preference = pref;
            (*nrecs)++;
            if (*ttl > r.ttl)
                *ttl = r.ttl;
        }
    }
    return 0;
}

/* RFC 2308 5: a negative answer lives min(SOA TTL, SOA MINIMUM). */
static uint32_t negative_ttl(wire w, unsigned an, unsigned ns)
{
    rr r;
    for (unsigned i = 0; i < an; i++) {
        if (next_rr(&w, &r) != 0)
            return UP_DNS_DEFAULT_NEG_TTL;
        ares_free_string(r.owner);
    }
    for (unsigned i = 0; i < ns; i++) {
        if (next_rr(&w, &r) != 0)
            break;
        ares_free_string(r.owner);
        if (r.type != T_SOA)
            continue;
        /* mname, rname, then five 32-bit fields */
        const unsigned char *p = r.rdata, *end = r.rdata + r.rdlen;
        for (int k = 0; k < 2; k++) {
            char *s;
            size_t used;
            if (expand_name(&w, p, &s, &used) != 0)
                return UP_DNS_DEFAULT_NEG_TTL;
            ares_free_string(s);
            if (used > (size_t)(end - p))
                return UP_DNS_DEFAULT_NEG_TTL;
            p += used;
        }
        if (end - p < 20)
            return UP_DNS_DEFAULT_NEG_TTL;
        uint32_t minimum = get32(p + 16);
        uint32_t ttl = r.ttl < minimum ? r.ttl : minimum;
        return ttl > UP_DNS_MAX_NEG_TTL ? UP_DNS_MAX_NEG_TTL : ttl;
    }
    return UP_DNS_DEFAULT_NEG_TTL;
}

up_dns_result *up_dns_parse(const unsigned char *buf, size_t len, int type,
                            const char *name)
{
    if (buf == NULL || len < DNS_HEADER || !(buf[2] & 0x80))
        return up_dns_result_status(type, name, UPESI_DNS_ERROR, 0);
    int rcode = buf[3] & 0x0f;
    unsigned qd = get16(buf + 4), an = get16(buf + 6), ns = get16(buf + 8);
    wire w = { buf, len, DNS_HEADER };
    for (unsigned i = 0; i < qd; i++)
        if (skip_question(&w) != 0)
            return up_dns_result_status(type, name, UPESI_DNS_ERROR, 0);
    if (rcode != 0 && rcode != 3)
        return up_dns_result_status(type, name, UPESI_DNS_ERROR, 0);

    char *chain[MAX_CHAIN];
    int nchain = 1;
    if ((chain[0] = strdup(name)) == NULL)
        return NULL;
    uint32_t ttl = UP_DNS_MAX_TTL;
    upesi_dns_record recs[UP_DNS_MAX_RECORDS];
    size_t nrecs = 0;
    int bad = 0, before;
    /* each pass may add an alias; a chain ends within MAX_CHAIN passes */
    do {
        before = nchain;
        bad = walk_answers(w, an, type, chain, &nchain, &ttl, recs, &nrecs,
                           0) != 0;
    } while (!bad && nchain > before);
    if (!bad)
        bad = walk_answers(w, an, type, chain, &nchain, &ttl, recs, &nrecs,
                           1) != 0;

    up_dns_result *r;
    if (bad)
        r = up_dns_result_status(type, name, UPESI_DNS_ERROR, 0);
    else if (nrecs > 0 && rcode == 0)
        r = up_dns_result_new(type, name, UPESI_DNS_OK, ttl, recs, nrecs);
    else
        r = up_dns_result_status(type, name, rcode == 3 ? UPESI_DNS_NXDOMAIN
                                                        : UPESI_DNS_NODATA,
                                 negative_ttl(w, an, ns));
    for (size_t i = 0; i < nrecs; i++)
        free((char *)recs[i].text);
    for (int i = 0; i < nchain; i++)
        free(chain[i]);
    return r;
}
