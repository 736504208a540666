/*
 * xclient_parse.c - the parser of XCLIENT's arguments (session_xclient.c
 * says what XCLIENT does): "NAME=value ..." with xtext values (RFC 3461).
 It stands alone (with smtp_ext.c's xtext decoder) so that
 * fuzz/fuzz_xclient.c can link it.
 *
 * Fails: up_xclient_parse returns the text of the 501 reply: a bad name
 * or syntax, bad xtext, a value outside printable ASCII once decoded, or
 * one too long.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_ext.h"
#include "smtp_parse.h"
#include "xclient_parse.h"

/* An xtext value (smtp_ext.c decodes it) that must be printable ASCII
 * once decoded: it goes into logs and headers. */
static int xtext_printable(const char *in, size_t len, char *out, size_t size)
{
    int n = up_xtext_decode(in, len, out, size);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if ((unsigned char)out[i] <= 32 || (unsigned char)out[i] >= 127)
            return -1;
    return 0;
}

static int unavailable(const char *v)
{
    return !strcasecmp(v, "[UNAVAILABLE]") || !strcasecmp(v, "[TEMPUNAVAIL]");
}

/* Parse "NAME=value ..." into *a.  NULL, or what to say in the 501. */
const char *up_xclient_parse(const char *arg, up_xclient_attrs *a)
{
    memset(a, 0, sizeof *a);
    a->port = a->proto = -1;
    const char *p = arg;
    if (*p == '\0')
        return "Syntax: XCLIENT attribute=value ...";
    while (*p) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " ");
        const char *eq = memchr(p, '=', len);
        if (eq == NULL)
            return "Syntax: XCLIENT attribute=value ...";
        size_t klen = (size_t)(eq - p);
        char v[256];
        if (xtext_printable(eq + 1, len - klen - 1, v, sizeof v) != 0)
            return "Bad XCLIENT attribute value";
        p += len;
        if (unavailable(v))
            continue;
#define KEY(k) (klen == sizeof(k) - 1 && !strncasecmp(eq - klen, (k), klen))
        if (KEY("NAME")) {
            snprintf(a->name, sizeof a->name, "%s", v);
        } else if (KEY("HELO")) {
            up_parse_error err;
            if (up_helo_check(v, 0, &err) != 0)
                return "Bad XCLIENT HELO value";
            snprintf(a->helo, sizeof a->helo, "%s", v);
        } else if (KEY("LOGIN")) {
            snprintf(a->login, sizeof a->login, "%s", v);
        } else if (KEY("ADDR")) {
            const char *ip = !strncasecmp(v, "IPV6:", 5) ? v + 5 : v;
            unsigned char bin[16];
            if (inet_pton(AF_INET, ip, bin) == 1) {
                a->is_ipv6 = 0;
                inet_ntop(AF_INET, bin, a->addr, sizeof a->addr);
            } else if (inet_pton(AF_INET6, ip, bin) == 1) {
                a->is_ipv6 = 1;
                inet_ntop(AF_INET6, bin, a->addr, sizeof a->addr);
            } else {
                return "Bad XCLIENT ADDR value";
            }
        } else if (KEY("PORT")) {
            char *end;
            long port = strtol(v, &end, 10);
            if (*end || end == v || port < 0 || port > 65535)
                return "Bad XCLIENT PORT value";
            a->port = (int)port;
        } else if (KEY("PROTO")) {
            if (!strcasecmp(v, "SMTP"))
                a->proto = 0;
            else if (!strcasecmp(v, "ESMTP"))
                a->proto = 1;
            else
                return "Bad XCLIENT PROTO value";
        } else {
            return "Bad XCLIENT attribute name";
        }
#undef KEY
    }
    return NULL;
}
