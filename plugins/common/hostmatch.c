/*
 * hostmatch.c - host and domain lists (see hostmatch.h for the syntax).
 *
 * A list is a flat array of parsed items; matching walks it.  Lists are
 * small (an administrator types them), so a linear walk costs less than
 * anything cleverer would.  Addresses are parsed once, at configuration
 * time, with inet_pton: matching compares bytes, never text.
 *
 * Fails: only hostmatch_add and hostmatch_add_hosts, with a message in
 * err; hostmatch_ask_name says when it could not ask.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/hostmatch.h"

typedef enum hostmatch_kind {
    HOSTMATCH_ITEM_ALL,          /* "*"                                  */
    HOSTMATCH_ITEM_NET,          /* an address or CIDR range             */
    HOSTMATCH_ITEM_V4WILD,       /* 192.168.*.*                          */
    HOSTMATCH_ITEM_NAME          /* a name, maybe with '*'               */
} hostmatch_kind;

typedef struct hostmatch_item {
    hostmatch_kind kind;
    int family;                  /* 4 or 6 (NET, V4WILD)                 */
    unsigned char addr[16];
    int prefix;                  /* NET: bits that must match            */
    unsigned char wild;          /* V4WILD: bit i set = octet i is '*'   */
    char *name;                  /* NAME: lower-cased pattern            */
} hostmatch_item;

struct hostmatch_list {
    int kinds;
    hostmatch_item *items;
    size_t n, cap;
};

hostmatch_list *hostmatch_new(int kinds)
{
    hostmatch_list *list = calloc(1, sizeof *list);
    if (list)
        list->kinds = kinds;
    return list;
}

void hostmatch_free(hostmatch_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++)
        free(list->items[i].name);
    free(list->items);
    free(list);
}

size_t hostmatch_count(const hostmatch_list *list)
{
    return list ? list->n : 0;
}

/* ---------------------------------------------------------------------- */
/* parsing one item                                                       */

/* Textual address to 4 or 16 bytes; an IPv4-mapped IPv6 address becomes
 * IPv4.  Returns the family (4 or 6) or 0. */
static int hostmatch_parse_addr(const char *text, unsigned char out[16])
{
    if (inet_pton(AF_INET, text, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, text, out) == 1) {
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
                                                  0, 0, 0xff, 0xff };
        if (memcmp(out, mapped, sizeof mapped) == 0) {
            memmove(out, out + 12, 4);
            return 4;
        }
        return 6;
    }
    return 0;
}

static int hostmatch_parse_net(const char *text, hostmatch_item *item)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    item->family = hostmatch_parse_addr(buf, item->addr);
    if (item->family == 0)
        return -1;
    /* an IPv4-mapped address (::ffff:a.b.c.d) is written in IPv6 bits */
    int max = item->family == 4 && !strchr(buf, ':') ? 32 : 128;
    item->prefix = item->family == 4 ? 32 : 128;
    if (slash) {
        const char *p = slash + 1;
        if (!isdigit((unsigned char)*p) || strlen(p) > 3)
            return -1;
        char *end;
        long bits = strtol(p, &end, 10);
        if (*end || bits < 0 || bits > max)
            return -1;
        /* ::ffff:10.0.0.0/104 is 10.0.0.0/8 */
        if (item->family == 4 && strchr(buf, ':'))
            bits -= 96;
        if (bits < 0)
            return -1;
        item->prefix = (int)bits;
    }
    item->kind = HOSTMATCH_ITEM_NET;
    return 0;
}

/* 192.168.*.*, 10.*: decimal octets or '*'; fewer than four parts only
 * when the last one is '*'. */
static int hostmatch_parse_v4wild(const char *text, hostmatch_item *item)
{
    int parts = 0, last_star = 0;
    const char *p = text;
    memset(item->addr, 0, sizeof item->addr);
    item->wild = 0;
    for (;;) {
        if (parts == 4)
            return -1;
        if (*p == '*') {
            item->wild |= (unsigned char)(1u << parts);
            last_star = 1;
            p++;
        } else {
            int digits = 0, v = 0;
            while (isdigit((unsigned char)*p) && digits < 4) {
                v = v * 10 + (*p++ - '0');
                digits++;
            }
            if (digits == 0 || digits > 3 || v > 255)
                return -1;
            item->addr[parts] = (unsigned char)v;
            last_star = 0;
        }
        parts++;
        if (*p == '\0')
            break;
        if (*p++ != '.')
            return -1;
    }
    if (parts < 4) {
        if (!last_star)
            return -1;
        for (int i = parts; i < 4; i++)
            item->wild |= (unsigned char)(1u << i);
    }
    if (item->wild == 0)
        return -1;              /* no '*': an address, parsed elsewhere */
    item->family = 4;
    item->kind = HOSTMATCH_ITEM_V4WILD;
    return 0;
}

/* Host names: labels of letters, digits, '-' and '_', separated by dots,
 * with '*' anywhere.  Something made only of digits, dots and stars is a
 * mistyped address, not a name. */
/* -- internationalized names: compared in their A-label form, so that
 * "bücher.example" in a list matches "xn--bcher-kva.example" and the other
 * way round.  The conversion is the host's (api->domain_to_ascii, ABI
 * 2.3); without it a name with bytes over 127 matches nothing. */
static int (*hostmatch_idna)(const char *domain, char *out, size_t outlen);

void hostmatch_set_idna(const upesi_api *api)
{
    if (api && UPESI_API_SUPPORTED(api, domain_to_ascii))
        hostmatch_idna = api->domain_to_ascii;
}

int hostmatch_to_alabels(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    const char *p = in;
    for (;;) {
        size_t len = strcspn(p, ".");
        int eight = 0, star = 0;
        for (size_t i = 0; i < len; i++) {
            eight |= (unsigned char)p[i] >= 0x80;
            star |= p[i] == '*';
        }
        char label[300];
        if (len >= sizeof label)
            return -1;
        memcpy(label, p, len);
        label[len] = '\0';
        if (eight) {
            char a[300];
            if (star || hostmatch_idna == NULL ||
                hostmatch_idna(label, a, sizeof a) != 0)
                return -1;
            snprintf(label, sizeof label, "%s", a);
        }
        size_t ll = strlen(label);
        if (n + ll + 2 > outlen)
            return -1;
        for (size_t i = 0; i < ll; i++)
            out[n++] = (char)tolower((unsigned char)label[i]);
        if (p[len] != '.')
            break;
        out[n++] = '.';
        p += len + 1;
    }
    out[n] = '\0';
    return 0;
}

static int hostmatch_has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

static int hostmatch_parse_name(const char *text, hostmatch_item *item)
{
    char alabels[300];
    if (hostmatch_has_8bit(text)) {
        if (hostmatch_to_alabels(text, alabels, sizeof alabels) != 0)
            return -1;
        text = alabels;
    }
    size_t len = strlen(text);
    if (len > 0 && text[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return -1;
    int has_letter = 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
            continue;
        }
        if (!isalnum(c) && c != '-' && c != '_' && c != '*')
            return -1;
        if (isalpha(c) || c == '-' || c == '_')
            has_letter = 1;
        if (++label > 63)
            return -1;
    }
    if (label == 0 || !has_letter)
        return -1;
    item->name = malloc(len + 1);
    if (item->name == NULL)
        return -1;
    for (size_t i = 0; i < len; i++)
        item->name[i] = (char)tolower((unsigned char)text[i]);
    item->name[len] = '\0';
    item->kind = HOSTMATCH_ITEM_NAME;
    return 0;
}

static int hostmatch_add_one(hostmatch_list *list, const char *text,
                             char *err, size_t errlen)
{
    hostmatch_item item;
    memset(&item, 0, sizeof item);
    char buf[300];
    size_t len = strlen(text);
    if (len >= sizeof buf) {
        snprintf(err, errlen, "'%.40s...' is too long", text);
        return -1;
    }
    /* Domino accepts addresses in brackets: [192.0.2.7] */
    if (len > 2 && text[0] == '[' && text[len - 1] == ']') {
        memcpy(buf, text + 1, len - 2);
        buf[len - 2] = '\0';
    } else {
        memcpy(buf, text, len + 1);
    }

    int want_addr = list->kinds & HOSTMATCH_ADDRESSES;
    int want_name = list->kinds & HOSTMATCH_NAMES;
    int ok = 0;
    if (!strcmp(buf, "*")) {
        item.kind = HOSTMATCH_ITEM_ALL;
        ok = 1;
    } else if (strchr(buf, ':') || strchr(buf, '/')) {
        ok = want_addr && hostmatch_parse_net(buf, &item) == 0;
    } else if (strspn(buf, "0123456789.*") == strlen(buf)) {
        ok = want_addr && (hostmatch_parse_net(buf, &item) == 0 ||
                           hostmatch_parse_v4wild(buf, &item) == 0);
    } else {
        ok = want_name && hostmatch_parse_name(buf, &item) == 0;
    }
    if (!ok) {
        const char *what = want_addr && want_name
            ? "an IP address, CIDR range, IPv4 wildcard (192.168.*.*) or "
              "host name"
            : want_addr ? "an IP address, CIDR range or IPv4 wildcard "
                          "(192.168.*.*)"
                        : "a domain name (example.com, *.example.com)";
        snprintf(err, errlen, "'%s' is not %s", text, what);
        return -1;
    }
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        hostmatch_item *grown = realloc(list->items, cap * sizeof *grown);
        if (grown == NULL) {
            free(item.name);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        list->items = grown;
        list->cap = cap;
    }
    list->items[list->n++] = item;
    return 0;
}

/* Each item of value to fn, up to the first that fails.  Items are split
 * by upesi_list_next, the splitter of every list setting. */
static int hostmatch_each(const char *value,
                          int (*fn)(void *arg, const char *item, char *err,
                                    size_t errlen),
                          void *arg, char *err, size_t errlen)
{
    const char *pos = value, *start;
    size_t len;
    while ((start = upesi_list_next(&pos, &len)) != NULL) {
        char item[300];
        if (len >= sizeof item) {
            snprintf(err, errlen, "'%.40s...' is too long", start);
            return -1;
        }
        memcpy(item, start, len);
        item[len] = '\0';
        if (fn(arg, item, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int hostmatch_add_item(void *list, const char *item, char *err,
                              size_t errlen)
{
    return hostmatch_add_one(list, item, err, errlen);
}

int hostmatch_add(hostmatch_list *list, const char *value, char *err,
                  size_t errlen)
{
    return hostmatch_each(value, hostmatch_add_item, list, err, errlen);
}

typedef struct hostmatch_split {
    hostmatch_list *addrs, *names;
} hostmatch_split;

static int hostmatch_add_host(void *arg, const char *item, char *err,
                              size_t errlen)
{
    hostmatch_split *to = arg;
    if (hostmatch_add_one(to->addrs, item, err, errlen) == 0 ||
        hostmatch_add_one(to->names, item, err, errlen) == 0)
        return 0;
    /* neither: let a list of both kinds word the error */
    hostmatch_list *any = hostmatch_new(HOSTMATCH_ANY);
    if (any == NULL || hostmatch_add_one(any, item, err, errlen) == 0)
        snprintf(err, errlen, "'%.200s' is not a host", item);
    hostmatch_free(any);
    return -1;
}

int hostmatch_add_hosts(hostmatch_list *addrs, hostmatch_list *names,
                        const char *value, char *err, size_t errlen)
{
    hostmatch_split to = { addrs, names };
    return hostmatch_each(value, hostmatch_add_host, &to, err, errlen);
}

/* ---------------------------------------------------------------------- */
/* matching                                                               */

static int hostmatch_net_contains(const hostmatch_item *item,
                                  const unsigned char *addr)
{
    int full = item->prefix / 8, rest = item->prefix % 8;
    if (memcmp(item->addr, addr, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (item->addr[full] & mask) == (addr[full] & mask);
}

int hostmatch_ip(const hostmatch_list *list, const char *ip)
{
    if (list == NULL || ip == NULL)
        return 0;
    unsigned char addr[16];
    int family = hostmatch_parse_addr(ip, addr);
    for (size_t i = 0; i < list->n; i++) {
        const hostmatch_item *item = &list->items[i];
        switch (item->kind) {
        case HOSTMATCH_ITEM_ALL:
            return 1;
        case HOSTMATCH_ITEM_NET:
            if (family == item->family && hostmatch_net_contains(item, addr))
                return 1;
            break;
        case HOSTMATCH_ITEM_V4WILD:
            if (family == 4) {
                int j = 0;
                while (j < 4 && ((item->wild & (1u << j)) ||
                                 item->addr[j] == addr[j]))
                    j++;
                if (j == 4)
                    return 1;
            }
            break;
        case HOSTMATCH_ITEM_NAME:
            break;
        }
    }
    return 0;
}

int hostmatch_glob(const char *pat, const char *str)
{
    const char *star = NULL, *resume = NULL;
    while (*str) {
        if (*pat == '*') {
            star = pat++;
            resume = str;
        } else if (*pat && (unsigned char)*pat == tolower((unsigned char)*str)) {
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

int hostmatch_name(const hostmatch_list *list, const char *name)
{
    if (list == NULL || name == NULL || *name == '\0')
        return 0;
    char buf[300];
    size_t len = strlen(name);
    if (len >= sizeof buf)
        return 0;
    memcpy(buf, name, len + 1);
    if (len > 1 && buf[len - 1] == '.')
        buf[len - 1] = '\0';
    /* a name with bytes over 127 that has no A-label form is no name a
     * pattern can match; '*' still takes it, as it takes everything */
    int comparable = 1;
    if (hostmatch_has_8bit(buf)) {
        char alabels[300];
        if (hostmatch_to_alabels(buf, alabels, sizeof alabels) != 0)
            comparable = 0;
        else
            memcpy(buf, alabels, strlen(alabels) + 1);
    }
    for (size_t i = 0; i < list->n; i++) {
        const hostmatch_item *item = &list->items[i];
        if (item->kind == HOSTMATCH_ITEM_ALL)
            return 1;
        if (comparable && item->kind == HOSTMATCH_ITEM_NAME &&
            hostmatch_glob(item->name, buf))
            return 1;
    }
    return 0;
}

int hostmatch_host(const hostmatch_list *list, const char *ip,
                   const char *name)
{
    return hostmatch_ip(list, ip) || (name && hostmatch_name(list, name));
}

/* ---------------------------------------------------------------------- */
/* the client's name                                                      */

typedef struct hostmatch_asking {
    const upesi_api *api;
    upesi_call *call;
    upesi_dns_query *q;
    void (*done)(upesi_call *call, const upesi_dns_answer *a);
} hostmatch_asking;

/* The host gave up on the call (plugin_timeout, disconnect). */
static void hostmatch_on_cancel(upesi_call *call, void *arg)
{
    (void)call;
    hostmatch_asking *ask = arg;
    if (ask->q)
        ask->api->dns_cancel(ask->q);
    free(ask);
}

static void hostmatch_on_name(const upesi_dns_answer *a, void *arg)
{
    hostmatch_asking *ask = arg;
    upesi_call *call = ask->call;
    void (*done)(upesi_call *, const upesi_dns_answer *) = ask->done;
    free(ask);
    done(call, a);
}

int hostmatch_ask_name(const upesi_api *api, upesi_call *call,
                       void (*done)(upesi_call *call,
                                    const upesi_dns_answer *a))
{
    hostmatch_asking *ask = calloc(1, sizeof *ask);
    if (ask == NULL)
        return -1;
    ask->api = api;
    ask->call = call;
    ask->done = done;
    ask->q = api->reverse_name(call, hostmatch_on_name, ask);
    if (ask->q == NULL) {
        free(ask);
        return -1;
    }
    api->on_cancel(call, hostmatch_on_cancel, ask);
    return 0;
}
