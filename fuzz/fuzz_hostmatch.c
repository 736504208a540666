/*
 * fuzz_hostmatch.c - libFuzzer target for plugins/common/hostmatch.c, the
 * host and domain lists of relay.ini and private_lists.ini.
 *
 * The first line of the input is a list value as an administrator writes
 * it; every further line is a probe (an address or a name).  The whole
 * value is added to one list, and each of its items to a list of its own.
 * Checked, aborting on any difference:
 *   - hostmatch_add either accepts or fills err with a NUL-terminated
 *     message; the count is the number of items accepted;
 *   - an accepted item matches what it names: an address matches itself,
 *     a CIDR range its own base address, an IPv4 wildcard an address with
 *     its stars filled in, a name pattern the name with its stars filled in
 *     (in upper case too, and with a trailing dot);
 *   - for every probe, each one-item list answers as an independent model
 *     does (glob by dynamic programming, prefixes bit by bit), and the
 *     whole list answers "any item matches";
 *   - hostmatch_host is hostmatch_ip or hostmatch_name.
 *
 * Input: byte 0 picks the kinds the list accepts (addresses, names, both);
 * the rest is the text.
 *
 * Build and run (from the repository root): make fuzz, then
 *   ./build/fuzz/fuzz_hostmatch -max_total_time=60 build/fuzz/work/x \
 *     fuzz/corpus/fuzz_hostmatch
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/common/hostmatch.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)
#define FZ_MAX_ITEMS 16
#define FZ_MAX_PROBES 16

/* ---------------------------------------------------------------------- */
/* the model                                                              */

/* '*' matches any run of characters; ASCII case-insensitive. */
static int fz_glob(const char *pat, const char *str)
{
    size_t m = strlen(pat), n = strlen(str);
    unsigned char *row = calloc(n + 1, 1), *next = calloc(n + 1, 1);
    FZ_CHECK(row && next);
    row[0] = 1;                 /* row[j]: pat[0..i) matches str[0..j) */
    for (size_t i = 0; i < m; i++) {
        memset(next, 0, n + 1);
        for (size_t j = 0; j <= n; j++) {
            if (pat[i] == '*')
                next[j] = row[j] || (j > 0 && next[j - 1]);
            else if (j > 0 && row[j - 1] &&
                     tolower((unsigned char)pat[i]) ==
                         tolower((unsigned char)str[j - 1]))
                next[j] = 1;
        }
        unsigned char *t = row;
        row = next;
        next = t;
    }
    int ok = row[n];
    free(row);
    free(next);
    return ok;
}

/* 4 or 16 bytes; IPv4-mapped IPv6 folds to IPv4.  0 if not an address. */
static int fz_addr(const char *text, unsigned char out[16])
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
                                              0, 0, 0xff, 0xff };
    if (inet_pton(AF_INET, text, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, text, out) != 1)
        return 0;
    if (memcmp(out, mapped, 12) == 0) {
        memmove(out, out + 12, 4);
        return 4;
    }
    return 6;
}

static int fz_bit(const unsigned char *a, int i)
{
    return (a[i / 8] >> (7 - i % 8)) & 1;
}

/* What a single accepted item is, as the model reads it. */
typedef struct fz_item {
    char text[300];              /* brackets removed                   */
    enum { FZ_ALL, FZ_NET, FZ_WILD, FZ_NAME } kind;
    int family, prefix;
    unsigned char addr[16];
    int octet[4];                /* FZ_WILD: -1 = '*'                  */
    char name[300];              /* FZ_NAME: without a trailing dot    */
} fz_item;

/* Classify text the way hostmatch.h documents it; 0 if the model has no
 * opinion (then only crash-freedom is checked). */
static int fz_model_item(const char *raw, fz_item *it)
{
    size_t len = strlen(raw);
    memset(it, 0, sizeof *it);
    if (len >= sizeof it->text)
        return 0;
    if (len > 2 && raw[0] == '[' && raw[len - 1] == ']') {
        memcpy(it->text, raw + 1, len - 2);
        it->text[len - 2] = '\0';
    } else {
        memcpy(it->text, raw, len + 1);
    }
    const char *t = it->text;
    if (!strcmp(t, "*")) {
        it->kind = FZ_ALL;
        return 1;
    }
    const char *slash = strchr(t, '/');
    char base[300];
    size_t blen = slash ? (size_t)(slash - t) : strlen(t);
    memcpy(base, t, blen);
    base[blen] = '\0';
    it->family = fz_addr(base, it->addr);
    if (it->family) {
        it->kind = FZ_NET;
        it->prefix = it->family == 4 ? 32 : 128;
        if (slash) {
            /* the bits of an IPv4-mapped range are not modelled */
            if (strchr(base, ':') && it->family == 4)
                return 0;
            char *end;
            long bits = strtol(slash + 1, &end, 10);
            if (!isdigit((unsigned char)slash[1]) || *end)
                return 0;
            it->prefix = (int)bits;
        }
        return 1;
    }
    if (strspn(t, "0123456789.*") == strlen(t)) {
        int parts = 0;
        const char *p = t;
        while (parts < 4) {
            if (*p == '*') {
                it->octet[parts++] = -1;
                p++;
            } else {
                it->octet[parts++] = atoi(p);
                while (isdigit((unsigned char)*p))
                    p++;
            }
            if (*p != '.')
                break;
            p++;
        }
        for (int i = parts; i < 4; i++)
            it->octet[i] = -1;
        it->kind = FZ_WILD;
        it->family = 4;
        return 1;
    }
    it->kind = FZ_NAME;
    snprintf(it->name, sizeof it->name, "%s", t);
    size_t nl = strlen(it->name);
    if (nl > 0 && it->name[nl - 1] == '.')
        it->name[nl - 1] = '\0';
    return 1;
}

static int fz_model_ip(const fz_item *it, const char *ip)
{
    unsigned char a[16];
    int fam = fz_addr(ip, a);
    switch (it->kind) {
    case FZ_ALL:
        return 1;
    case FZ_NET:
        if (fam != it->family)
            return 0;
        for (int i = 0; i < it->prefix; i++)
            if (fz_bit(a, i) != fz_bit(it->addr, i))
                return 0;
        return 1;
    case FZ_WILD:
        if (fam != 4)
            return 0;
        for (int i = 0; i < 4; i++)
            if (it->octet[i] >= 0 && it->octet[i] != a[i])
                return 0;
        return 1;
    case FZ_NAME:
        return 0;
    }
    return 0;
}

static int fz_model_name(const fz_item *it, const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= 300)
        return 0;
    if (it->kind == FZ_ALL)
        return 1;
    if (it->kind != FZ_NAME)
        return 0;
    /* bytes over 127: compared by A-labels, and this target gives the
     * lists no IDNA conversion, so such a name matches no pattern */
    for (const char *c = name; *c; c++)
        if ((unsigned char)*c >= 0x80)
            return 0;
    char buf[300];
    memcpy(buf, name, len + 1);
    if (len > 1 && buf[len - 1] == '.')
        buf[len - 1] = '\0';
    return fz_glob(it->name, buf);
}

/* ---------------------------------------------------------------------- */

static char *fz_fill_stars(const char *pat, const char *with)
{
    size_t n = 0, wl = strlen(with);
    for (const char *p = pat; *p; p++)
        n += *p == '*' ? wl : 1;
    char *out = malloc(n + 1), *o = out;
    FZ_CHECK(out != NULL);
    for (const char *p = pat; *p; p++) {
        if (*p == '*') {
            memcpy(o, with, wl);
            o += wl;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

/* An accepted item matches what it names. */
static void fz_self_match(const hostmatch_list *one, const fz_item *it)
{
    char buf[400];
    switch (it->kind) {
    case FZ_ALL:
        FZ_CHECK(hostmatch_ip(one, "192.0.2.1"));
        FZ_CHECK(hostmatch_name(one, "example.com"));
        break;
    case FZ_NET:
        FZ_CHECK(inet_ntop(it->family == 4 ? AF_INET : AF_INET6, it->addr,
                           buf, sizeof buf) != NULL);
        FZ_CHECK(hostmatch_ip(one, buf));
        FZ_CHECK(!hostmatch_name(one, buf));
        break;
    case FZ_WILD:
        snprintf(buf, sizeof buf, "%d.%d.%d.%d",
                 it->octet[0] < 0 ? 7 : it->octet[0],
                 it->octet[1] < 0 ? 255 : it->octet[1],
                 it->octet[2] < 0 ? 0 : it->octet[2],
                 it->octet[3] < 0 ? 42 : it->octet[3]);
        FZ_CHECK(hostmatch_ip(one, buf));
        break;
    case FZ_NAME: {
        char *filled = fz_fill_stars(it->name, "aB-7.x");
        if (strlen(filled) + 2 < 300) {
            FZ_CHECK(hostmatch_name(one, filled));
            for (char *p = filled; *p; p++)
                *p = (char)toupper((unsigned char)*p);
            FZ_CHECK(hostmatch_name(one, filled));
            snprintf(buf, sizeof buf, "%s.", filled);
            FZ_CHECK(hostmatch_name(one, buf));
        }
        free(filled);
        char *bare = fz_fill_stars(it->name, "");
        size_t bl = strlen(bare);
        /* "a.*" filled with nothing is "a.", read as "a" */
        if (bl > 0 && !(bl > 1 && bare[bl - 1] == '.'))
            FZ_CHECK(hostmatch_name(one, bare));
        FZ_CHECK(!hostmatch_ip(one, "192.0.2.1"));
        free(bare);
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    static const int kinds_of[] = { HOSTMATCH_ADDRESSES, HOSTMATCH_NAMES,
                                    HOSTMATCH_ANY };
    int kinds = kinds_of[data[0] % 3];
    char *text = malloc(size);
    FZ_CHECK(text != NULL);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';      /* up to the first NUL, as a C string */

    char *nl = strchr(text, '\n');
    char *probes = NULL;
    if (nl) {
        *nl = '\0';
        probes = nl + 1;
    }
    const char *value = text;

    /* the whole value */
    char err[256];
    memset(err, 'x', sizeof err);
    hostmatch_list *all = hostmatch_new(kinds);
    FZ_CHECK(all != NULL);
    int all_ok = hostmatch_add(all, value, err, sizeof err) == 0;
    if (!all_ok)
        FZ_CHECK(memchr(err, '\0', sizeof err) && err[0] != '\0');

    /* each item alone */
    hostmatch_list *one[FZ_MAX_ITEMS];
    fz_item items[FZ_MAX_ITEMS];
    int modelled[FZ_MAX_ITEMS];
    size_t n_items = 0, n_accepted = 0;
    const char *p = value;
    for (;;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0' || n_items == FZ_MAX_ITEMS)
            break;
        const char *start = p;
        while (*p && *p != ',' && !isspace((unsigned char)*p))
            p++;
        char item[400];
        size_t len = (size_t)(p - start);
        if (len >= sizeof item)
            break;
        memcpy(item, start, len);
        item[len] = '\0';
        hostmatch_list *l = hostmatch_new(kinds);
        FZ_CHECK(l != NULL);
        if (hostmatch_add(l, item, err, sizeof err) != 0) {
            FZ_CHECK(hostmatch_count(l) == 0 && err[0] != '\0');
            hostmatch_free(l);
            /* the whole value stops at its first bad item */
            FZ_CHECK(!all_ok);
            break;
        }
        FZ_CHECK(hostmatch_count(l) == 1);
        modelled[n_items] = fz_model_item(item, &items[n_items]);
        if (modelled[n_items]) {
            const fz_item *it = &items[n_items];
            /* an item of a kind the list does not take is refused */
            if (it->kind == FZ_NAME)
                FZ_CHECK(kinds & HOSTMATCH_NAMES);
            if (it->kind == FZ_NET || it->kind == FZ_WILD)
                FZ_CHECK(kinds & HOSTMATCH_ADDRESSES);
            fz_self_match(l, it);
        }
        one[n_items++] = l;
        n_accepted++;
    }
    if (all_ok && *p == '\0')
        FZ_CHECK(hostmatch_count(all) == n_accepted);

    /* the probes */
    int n_probes = 0;
    while (probes && *probes && n_probes < FZ_MAX_PROBES) {
        char *end = strchr(probes, '\n');
        if (end)
            *end = '\0';
        const char *probe = probes;
        n_probes++;
        int any_ip = 0, any_name = 0;
        for (size_t i = 0; i < n_items; i++) {
            int ip = hostmatch_ip(one[i], probe);
            int name = hostmatch_name(one[i], probe);
            FZ_CHECK(hostmatch_host(one[i], probe, probe) == (ip || name));
            FZ_CHECK(hostmatch_host(one[i], probe, NULL) == ip);
            if (modelled[i]) {
                FZ_CHECK(ip == fz_model_ip(&items[i], probe));
                FZ_CHECK(name == fz_model_name(&items[i], probe));
            }
            any_ip |= ip;
            any_name |= name;
        }
        if (all_ok && n_items == hostmatch_count(all)) {
            FZ_CHECK(hostmatch_ip(all, probe) == any_ip);
            FZ_CHECK(hostmatch_name(all, probe) == any_name);
        } else {
            (void)hostmatch_host(all, probe, probe);
        }
        probes = end ? end + 1 : NULL;
    }
    for (size_t i = 0; i < n_items; i++)
        hostmatch_free(one[i]);
    hostmatch_free(all);
    free(text);
    return 0;
}
