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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/common/hostmatch.h"
#include "dns.h"
#include "hooks.h"
#include "log.h"
#include "session.h"
#include "session_int.h"
#include "stats.h"
#include "xclient_parse.h"

int session_xclient_allowed(const up_session *s)
{
    return s->cfg->xclient_hosts != NULL &&
           hostmatch_ip(s->cfg->xclient_hosts, s->remote_ip);
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
    up_xclient_attrs a;
    const char *bad = up_xclient_parse(s->cmd.arg, &a);
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
