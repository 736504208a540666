/*
 * smtp_ext.c - ESMTP parameter values of SMTPUTF8 (RFC 6531/6532) and DSN
 * (RFC 3461, RFC 6533 for utf-8 ORCPT), internationalized domain names
 * (libidn2), and the packed parameter lists the session keeps.
 *
 * The DSN values are checked by their grammar, not just copied, because
 * they travel: into the spool envelope, to a downstream, into a report.
 * xtext is decoded to check what it stands for; lower-case hex after "+"
 * is taken too (RFC 3461 asks for upper case; senders that get it wrong
 * exist and the meaning is plain), and the value is kept as the client
 * sent it.
 *
 * Fails: never; a bad value gets -1 and a static text for the reply.
 */
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_ext.h"

/* ---------------------------------------------------------------------- */
/* UTF-8                                                                  */

int up_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1; cp = c & 0x1f; min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2; cp = c & 0x0f; min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3; cp = c & 0x07; min = 0x10000;
        } else {
            return 0;           /* a continuation byte, C0, C1, F5.. */
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* ---------------------------------------------------------------------- */
/* xtext                                                                  */

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int up_xtext_decode(const char *in, size_t len, char *out, size_t outlen)
{
    size_t n = 0;
    const unsigned char *end = (const unsigned char *)in + len;
    for (const unsigned char *p = (const unsigned char *)in; p < end; p++) {
        int c = *p;
        if (c == '+') {
            if (end - p < 3)
                return -1;
            int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
            if (lo < 0)
                return -1;
            c = hi * 16 + lo;
            p += 2;
            if (c == 0)
                return -1;      /* it would end the string */
        } else if (c < 33 || c > 126 || c == '=') {
            return -1;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = (char)c;
    }
    if (outlen == 0)
        return -1;
    out[n] = '\0';
    return (int)n;
}

/* ---------------------------------------------------------------------- */
/* DSN parameters                                                         */

static int fail(const char **why, const char *text)
{
    *why = text;
    return -1;
}

int up_dsn_notify(const char *value, unsigned *bits, const char **why)
{
    static const struct { const char *name; unsigned bit; } words[] = {
        { "NEVER", UP_NOTIFY_NEVER }, { "SUCCESS", UP_NOTIFY_SUCCESS },
        { "FAILURE", UP_NOTIFY_FAILURE }, { "DELAY", UP_NOTIFY_DELAY },
    };
    *bits = 0;
    const char *p = value;
    for (;;) {
        size_t len = strcspn(p, ",");
        size_t i;
        for (i = 0; i < sizeof words / sizeof *words; i++)
            if (strlen(words[i].name) == len &&
                !strncasecmp(p, words[i].name, len))
                break;
        if (i == sizeof words / sizeof *words)
            return fail(why, "Bad NOTIFY parameter: NEVER, or a list of "
                        "SUCCESS, FAILURE, DELAY");
        if (*bits & words[i].bit)
            return fail(why, "Bad NOTIFY parameter: a keyword repeated");
        *bits |= words[i].bit;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    if ((*bits & UP_NOTIFY_NEVER) && *bits != UP_NOTIFY_NEVER)
        return fail(why, "Bad NOTIFY parameter: NEVER must be alone");
    return 0;
}

int up_dsn_ret(const char *value, const char **why)
{
    if (!strcasecmp(value, "FULL") || !strcasecmp(value, "HDRS"))
        return 0;
    return fail(why, "Bad RET parameter: FULL or HDRS");
}

int up_dsn_envid(const char *value, const char **why)
{
    char out[512];
    int n = up_xtext_decode(value, strlen(value), out, sizeof out);
    if (n <= 0)
        return fail(why, "Bad ENVID parameter: not xtext");
    if (n > 100)
        return fail(why, "Bad ENVID parameter: longer than 100 characters");
    for (int i = 0; i < n; i++)
        if ((unsigned char)out[i] < 32 || (unsigned char)out[i] > 126)
            return fail(why, "Bad ENVID parameter: not printable ASCII");
    return 0;
}

/* RFC 6533: utf-8-addr-xtext, or -unitext with raw UTF-8 allowed */
static int utf8_addr_check(const char *p, int unitext, const char **why)
{
    if (*p == '\0')
        return fail(why, "Bad ORCPT parameter: empty address");
    const char *raw_start = NULL;
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x80) {
            if (!unitext)
                return fail(why, "Bad ORCPT parameter: raw UTF-8 needs "
                            "SMTPUTF8");
            if (raw_start == NULL)
                raw_start = p;
            continue;
        }
        if (raw_start) {
            if (!up_utf8_valid(raw_start, (size_t)(p - raw_start)))
                return fail(why, "Bad ORCPT parameter: not well-formed "
                            "UTF-8");
            raw_start = NULL;
        }
        if (c == '\\') {
            if (p[1] != 'x' || p[2] != '{')
                return fail(why, "Bad ORCPT parameter: a \\ that is not "
                            "\\x{HEX}");
            p += 3;
            unsigned long cp = 0;
            int digits = 0;
            for (; hexval((unsigned char)*p) >= 0 && digits < 7; p++, digits++)
                cp = cp * 16 + (unsigned long)hexval((unsigned char)*p);
            if (*p != '}' || digits < 2 || digits > 6 || cp == 0 ||
                cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return fail(why, "Bad ORCPT parameter: bad \\x{HEX} "
                            "escape");
        } else if (c < 33 || c > 126 || c == '+' || c == '=') {
            return fail(why, "Bad ORCPT parameter: a character that must "
                        "be escaped");
        }
    }
    if (raw_start && !up_utf8_valid(raw_start, strlen(raw_start)))
        return fail(why, "Bad ORCPT parameter: not well-formed UTF-8");
    return 0;
}

int up_dsn_orcpt(const char *value, int smtputf8, const char **why)
{
    if (strlen(value) > 500)
        return fail(why, "Bad ORCPT parameter: longer than 500 characters");
    const char *semi = strchr(value, ';');
    if (semi == NULL || semi == value)
        return fail(why, "Bad ORCPT parameter: addr-type;address");
    for (const char *t = value; t < semi; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
              (*t >= '0' && *t <= '9') || (*t == '-' && t > value)))
            return fail(why, "Bad ORCPT parameter: bad address type");
    const char *addr = semi + 1;
    size_t tlen = (size_t)(semi - value);
    if (tlen == 5 && !strncasecmp(value, "utf-8", 5))
        return utf8_addr_check(addr, smtputf8, why);
    char out[512];
    int n = up_xtext_decode(addr, strlen(addr), out, sizeof out);
    if (n <= 0)
        return fail(why, "Bad ORCPT parameter: the address is not xtext");
    if (tlen == 6 && !strncasecmp(value, "rfc822", 6))
        for (int i = 0; i < n; i++)
            if ((unsigned char)out[i] < 32 || (unsigned char)out[i] > 126)
                return fail(why, "Bad ORCPT parameter: an rfc822 address "
                            "must be ASCII (use utf-8;)");
    return 0;
}

/* ---------------------------------------------------------------------- */
/* domains                                                                */

int up_domain_to_ascii(const char *domain, char *out, size_t outlen)
{
    size_t len = strlen(domain);
    int ascii = 1;
    for (size_t i = 0; i < len; i++)
        ascii &= (unsigned char)domain[i] < 0x80;
    if (ascii || domain[0] == '[') {
        if (len >= outlen)
            return -1;
        for (size_t i = 0; i <= len; i++)
            out[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z'
                                ? domain[i] - 'A' + 'a' : domain[i]);
        return 0;
    }
    if (!up_utf8_valid(domain, len))
        return -1;
    char *a = NULL;
    /* UTS 46 non-transitional: what browsers and resolvers do today
     * (ß stays ß, upper case is mapped) */
    int rc = idn2_to_ascii_8z(domain, &a, IDN2_NFC_INPUT |
                              IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK || a == NULL || strlen(a) >= outlen) {
        idn2_free(a);
        return -1;
    }
    strcpy(out, a);
    idn2_free(a);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

int up_domain_equal(const char *a, const char *b)
{
    if (!strcasecmp(a, b))
        return 1;
    char aa[300], ba[300];
    return up_domain_to_ascii(a, aa, sizeof aa) == 0 &&
           up_domain_to_ascii(b, ba, sizeof ba) == 0 && !strcmp(aa, ba);
}

/* ---------------------------------------------------------------------- */
/* packed parameters                                                      */

char *up_packed_new(const char *mailbox, const up_path *path,
                    const char *const *keep)
{
    size_t size = strlen(mailbox) + 2;
    for (int pass = 0; pass < 2; pass++) {
        char *buf = pass ? malloc(size) : NULL;
        if (pass && buf == NULL)
            return NULL;
        size_t n = strlen(mailbox) + 1;
        if (buf)
            memcpy(buf, mailbox, n);
        for (int i = 0; path && i < path->nparams; i++) {
            const up_param *p = &path->params[i];
            int wanted = 0;
            for (size_t k = 0; keep && keep[k]; k++)
                wanted |= !strcmp(p->keyword, keep[k]);
            if (!wanted)
                continue;
            size_t kl = strlen(p->keyword) + 1, vl = strlen(p->value) + 1;
            if (buf) {
                memcpy(buf + n, p->keyword, kl);
                memcpy(buf + n + kl, p->value, vl);
            } else {
                size += kl + vl;
            }
            n += kl + vl;
        }
        if (buf) {
            buf[n] = '\0';
            return buf;
        }
    }
    return NULL;
}

const char *up_packed_param(const char *packed, const char *keyword)
{
    const char *p = packed + strlen(packed) + 1;
    while (*p) {
        const char *v = p + strlen(p) + 1;
        if (!strcasecmp(p, keyword))
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

int up_packed_format(const char *packed, char *out, size_t outlen)
{
    size_t n = 0;
    const char *p = packed + strlen(packed) + 1;
    if (outlen == 0)
        return -1;
    out[0] = '\0';
    while (*p) {
        const char *v = p + strlen(p) + 1;
        size_t need = (n ? 1 : 0) + strlen(p) + (*v ? 1 + strlen(v) : 0);
        if (n + need >= outlen)
            return -1;
        n += (size_t)snprintf(out + n, outlen - n, "%s%s%s%s", n ? " " : "",
                              p, *v ? "=" : "", v);
        p = v + strlen(v) + 1;
    }
    return (int)n;
}
