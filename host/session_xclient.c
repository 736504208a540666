/*
 * session_xclient.c - XCLIENT (Postfix's XCLIENT_README): a trusted
 * front end (a proxy, a content filter, a test harness) tells upesi who
 * the real client is: "XCLIENT ADDR=192.0.2.7 NAME=mx.example HELO=mx".
 *
 * Only a peer in xclient_hosts (smtp.ini; addresses, CIDR ranges and
 * wildcards, decided on the address the session began with) may send it,
 * and only such a peer sees it in EHLO.  Attributes: NAME, ADDR (IPv4, or
 * IPv6 with or without the "IPV6:" prefix), PORT, PROTO (SMTP or ESMTP),
 * HELO, LOGIN; values are xtext (RFC 3461: "+2B" is "+"), and
 * "[UNAVAILABLE]" or "[TEMPUNAVAIL]" leave that attribute as it was.
 * Like Postfix, the session then starts again: the transaction and the
 * old client's conn notes, HELO and AUTH are forgotten (the reset and
 * disconnect hooks run), the given attributes become the client's, the
 * connect hook runs for the new client and a new 220 greeting follows.
 * LOGIN makes the session authenticated as that user.
 *
 * Fails: from a peer not in xclient_hosts, 550 5.7.0 (counted in
 * SMTP.Command.Invalid); inside a transaction 503 5.5.1; a bad attribute
 * or value 501 5.5.4 and nothing changes.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../plugins/common/hostmatch.h"
#include "dns.h"
#include "hooks.h"
#include "log.h"
#include "session.h"
#include "session_int.h"
#include "stats.h"

int session_xclient_allowed(const up_session *s)
{
    return s->cfg->xclient_hosts != NULL &&
           hostmatch_ip(s->cfg->xclient_hosts, s->remote_ip);
}

/* xtext (RFC 3461 4): "+" and two upper-case hex digits is a byte; the
 * result must be printable ASCII (it goes into logs and headers). */
static int xtext_decode(const char *in, size_t len, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '+') {
            static const char hexd[] = "0123456789ABCDEF";
            if (i + 2 >= len)
                return -1;
            const char *h1 = in[i + 1] ? strchr(hexd, in[i + 1]) : NULL;
            const char *h2 = in[i + 2] ? strchr(hexd, in[i + 2]) : NULL;
            if (h1 == NULL || h2 == NULL)
                return -1;
            unsigned v = (unsigned)((h1 - hexd) * 16 + (h2 - hexd));
            c = (int)v;
            i += 2;
        }
        if (c <= 32 || c >= 127 || o + 1 >= size)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

typedef struct xclient_attrs {
    char name[256], addr[64], helo[256], login[256];
    int port;                   /* -1: not given */
    int proto;                  /* -1, 0 SMTP, 1 ESMTP */
    int is_ipv6;
} xclient_attrs;

static int unavailable(const char *v)
{
    return !strcasecmp(v, "[UNAVAILABLE]") || !strcasecmp(v, "[TEMPUNAVAIL]");
}

/* Parse "NAME=value ..." into *a.  NULL, or what to say in the 501. */
static const char *xclient_parse(const char *arg, xclient_attrs *a)
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
        if (xtext_decode(eq + 1, len - klen - 1, v, sizeof v) != 0)
            return "Bad XCLIENT attribute value";
        p += len;
        if (unavailable(v))
            continue;
#define KEY(k) (klen == sizeof k - 1 && !strncasecmp(eq - klen, k, klen))
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

static void notified(up_session *s, upesi_verdict v, const up_reply *r)
{
    (void)s;
    (void)v;
    (void)r;
}

void session_cmd_xclient(up_session *s)
{
    if (!s->xclient_ok) {
        up_stats_add("SMTP.Command.Invalid", 1);
        up_log(s->id, UPESI_LOG_NOTICE, "XCLIENT refused: %s is not in "
               "xclient_hosts", s->remote_ip);
        up_session_reply(s, 550, "5.7.0", "Error: insufficient "
                         "authorization");
        return;
    }
    if (s->have_mail) {
        up_session_reply(s, 503, "5.5.1", "Error: MAIL transaction in "
                         "progress");
        return;
    }
    xclient_attrs a;
    const char *bad = xclient_parse(s->cmd.arg, &a);
    if (bad) {
        up_session_reply(s, 501, "5.5.4", bad);
        return;
    }
    const char *was = s->xclient_peer;
    /* the old client is gone: plugins hear it leave */
    session_txn_reset(s);
    up_hook_run(s, UPESI_HOOK_DISCONNECT, notified);
    up_dns_session_end(s);      /* its reverse name is not the new one's */
    up_notes_clear(&s->conn_notes);
    free(s->helo);
    s->helo = NULL;
    s->info.helo = NULL;
    s->info.esmtp = 0;
    session_ehlo_ext_clear(s);
    free(s->auth_user);
    s->auth_user = NULL;
    s->info.authenticated = 0;
    s->info.auth_user = NULL;
    s->info.early_talker = 0;
    s->reject_code = 0;
    free(s->reject_text);
    s->reject_text = NULL;
    /* the new one */
    if (a.addr[0]) {
        snprintf(s->remote_ip, sizeof s->remote_ip, "%s", a.addr);
        s->info.remote_is_ipv6 = a.is_ipv6;
    }
    if (a.port >= 0)
        s->info.remote_port = a.port;
    if (a.helo[0]) {
        s->helo = strdup(a.helo);
        s->info.helo = s->helo;
        s->info.esmtp = a.proto != 0;
    } else if (a.proto >= 0) {
        s->info.esmtp = a.proto;
    }
    if (a.login[0] && (s->auth_user = strdup(a.login)) != NULL) {
        s->info.authenticated = 1;
        s->info.auth_user = s->auth_user;
    }
    up_notes_set(&s->conn_notes, "xclient.peer", was);
    if (a.name[0]) {            /* the front end vouches for it */
        up_notes_set(&s->conn_notes, "xclient.name", a.name);
        up_notes_set(&s->conn_notes, "remote.name", a.name);
    }
    up_log(s->id, UPESI_LOG_INFO, "XCLIENT from %s: client %s port %d "
           "name %s helo %s login %s", was, s->remote_ip,
           s->info.remote_port, a.name[0] ? a.name : "-",
           a.helo[0] ? a.helo : "-", a.login[0] ? a.login : "-");
    /* start again: connect hook, then a new greeting (Postfix's way) */
    s->greeted = 0;
    s->state = UP_ST_CONNECT;
    up_hook_run(s, UPESI_HOOK_CONNECT, session_on_connect_done);
}
