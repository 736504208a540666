/*
 * connection_checks.c - Domino's "Inbound Connection Controls" (DESIGN.md
 * 6, issue 5, docs/plugins/connection_checks.md): verify the connecting
 * host's name in DNS, and allow / deny lists of connecting hosts.
 *
 * conf/connection_checks.ini:
 *   verify_host_name = 0|1     the client must have a forward-confirmed
 *                              name: a PTR whose name has an A (AAAA for
 *                              IPv6) holding the client's address
 *   temp_fail_action = defer|accept   when that lookup times out or fails
 *                              (default defer)
 *   allow_hosts = items        exempt from deny_hosts and verify_host_name
 *   deny_hosts = items         refused
 * Items (plugins/common/hostmatch.h): addresses, CIDR ranges, IPv4
 * wildcards, host names and name wildcards; a name matches the client's
 * confirmed name (none when the lookup failed).  A host on both lists is
 * allowed (Allow wins, as in Domino's relay and sender controls).
 *
 * Everything is decided at connect, and a refusal is a connect verdict:
 * the host greets, then answers every MAIL FROM with it (Domino's way):
 *   deny_hosts                  554 5.7.1 Client host [IP] rejected:
 *                                         Access denied
 *   no confirmed name           550 5.7.25 Client host rejected: cannot
 *                                         find your hostname, [IP]
 *   lookup failed, defer        450 4.7.25 (the same text)
 * The 5.7.25 code is RFC 7372's "reverse DNS validation failed".
 *
 * The confirmed name, when the plugin looked it up, is the connection
 * note "remote.name" (queue_spool's Client-Name).
 *
 * Statistics: SMTP.ConnectionChecks.Denied, .Allowed, .Verified,
 * .Rejected, .Deferred, .TempFailAccepted.
 *
 * Fails: as configured (temp_fail_action); a lookup that cannot even be
 * started counts as a failed lookup.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/hostmatch.h"
#include "../common/settings.h"
#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *cc_ctx;

#define CC_NOTE_NAME "remote.name"

enum { CC_DEFER, CC_ACCEPT };

typedef struct cc_list {
    hostmatch_list *addrs;      /* addresses, ranges, wildcards, '*' */
    hostmatch_list *names;      /* names, matched against the PTR name */
} cc_list;

typedef struct cc_config {
    int verify_host_name;
    int temp_fail_action;
    cc_list allow, deny;
} cc_config;

/* ---------------------------------------------------------------------- */
/* settings                                                                */

static void cc_config_free(void *p)
{
    cc_config *c = p;
    if (c == NULL)
        return;
    hostmatch_free(c->allow.addrs);
    hostmatch_free(c->allow.names);
    hostmatch_free(c->deny.addrs);
    hostmatch_free(c->deny.names);
    free(c);
}

static void *cc_config_new(void)
{
    cc_config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->temp_fail_action = CC_DEFER;
    c->allow.addrs = hostmatch_new(HOSTMATCH_ADDRESSES);
    c->allow.names = hostmatch_new(HOSTMATCH_NAMES);
    c->deny.addrs = hostmatch_new(HOSTMATCH_ADDRESSES);
    c->deny.names = hostmatch_new(HOSTMATCH_NAMES);
    if (!c->allow.addrs || !c->allow.names || !c->deny.addrs ||
        !c->deny.names) {
        cc_config_free(c);
        return NULL;
    }
    return c;
}

static int cc_allow_hosts(void *p, const char *item, char *err,
                          size_t errlen)
{
    cc_config *c = p;
    return hostmatch_add_hosts(c->allow.addrs, c->allow.names, item, err,
                               errlen);
}

static int cc_deny_hosts(void *p, const char *item, char *err,
                         size_t errlen)
{
    cc_config *c = p;
    return hostmatch_add_hosts(c->deny.addrs, c->deny.names, item, err,
                               errlen);
}

/* in the order of CC_DEFER, CC_ACCEPT */
static const char *const cc_temp_fail_actions[] = { "defer", "accept",
                                                    NULL };

static const upesi_setting cc_settings[] = {
    { "verify_host_name", UPESI_SETTING_BOOL,
      offsetof(cc_config, verify_host_name), 0, 0, NULL, NULL, "0",
      "on: the client must have a forward-confirmed host name" },
    { "temp_fail_action", UPESI_SETTING_ENUM,
      offsetof(cc_config, temp_fail_action), 0, 0, cc_temp_fail_actions,
      NULL, "defer", "when that lookup times out or fails" },
    { "allow_hosts", UPESI_SETTING_LIST, 0, 0, 0, NULL, cc_allow_hosts, NULL,
      "hosts exempt from `deny_hosts` and from `verify_host_name`" },
    { "deny_hosts", UPESI_SETTING_LIST, 0, 0, 0, NULL, cc_deny_hosts, NULL,
      "hosts refused" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

/* ---------------------------------------------------------------------- */
/* the decision                                                            */

/* What the client's name lookup said. */
typedef enum cc_name {
    CC_NAME_UNKNOWN,            /* not looked up */
    CC_NAME_CONFIRMED,
    CC_NAME_NONE,               /* no PTR, or none that points back */
    CC_NAME_FAILED              /* timeout, DNS error */
} cc_name;

static upesi_verdict cc_denied(upesi_call *call, const char *ip,
                               const char *by)
{
    api->stat_add(cc_ctx, "SMTP.ConnectionChecks.Denied", 1);
    api->log_call(call, UPESI_LOG_NOTICE, "%s%s%s in deny_hosts: refused at MAIL",
             ip, by ? " " : "", by ? by : "");
    api->reply(call, 554, "5.7.1", "Client host [%s] rejected: Access "
               "denied", ip);
    return UPESI_DENY;
}

/* Decide with what is known.  name is the confirmed name, or NULL. */
static upesi_verdict cc_decide(upesi_call *call, const cc_config *c,
                               const char *ip, cc_name state,
                               const char *name)
{
    if (hostmatch_ip(c->allow.addrs, ip) ||
        (name && hostmatch_name(c->allow.names, name))) {
        api->stat_add(cc_ctx, "SMTP.ConnectionChecks.Allowed", 1);
        api->log_call(call, UPESI_LOG_DEBUG, "%s%s%s in allow_hosts", ip,
                 name ? " " : "", name ? name : "");
        return UPESI_CONT;
    }
    if (hostmatch_ip(c->deny.addrs, ip))
        return cc_denied(call, ip, NULL);
    if (name && hostmatch_name(c->deny.names, name))
        return cc_denied(call, ip, name);
    if (!c->verify_host_name)
        return UPESI_CONT;
    switch (state) {
    case CC_NAME_CONFIRMED:
        api->stat_add(cc_ctx, "SMTP.ConnectionChecks.Verified", 1);
        return UPESI_CONT;
    case CC_NAME_NONE:
        api->stat_add(cc_ctx, "SMTP.ConnectionChecks.Rejected", 1);
        api->log_call(call, UPESI_LOG_NOTICE, "%s has no confirmed host name: "
                 "refused at MAIL", ip);
        api->reply(call, 550, "5.7.25", "Client host rejected: cannot find "
                   "your hostname, [%s]", ip);
        return UPESI_DENY;
    case CC_NAME_UNKNOWN:
    case CC_NAME_FAILED:
        break;
    }
    if (c->temp_fail_action == CC_ACCEPT) {
        api->stat_add(cc_ctx, "SMTP.ConnectionChecks.TempFailAccepted", 1);
        api->log_call(call, UPESI_LOG_NOTICE, "%s: host name lookup failed: "
                 "accepted (temp_fail_action = accept)", ip);
        return UPESI_CONT;
    }
    api->stat_add(cc_ctx, "SMTP.ConnectionChecks.Deferred", 1);
    api->log_call(call, UPESI_LOG_NOTICE, "%s: host name lookup failed: deferred "
             "at MAIL", ip);
    api->reply(call, 450, "4.7.25", "Client host rejected: cannot find your "
               "hostname, [%s]", ip);
    return UPESI_DENYSOFT;
}

static void cc_on_name(upesi_call *call, const upesi_dns_answer *a)
{
    const cc_config *c = api->config(call);
    const upesi_conn_info *conn = api->conn(call);
    cc_name state = CC_NAME_FAILED;
    const char *name = NULL;
    if (a->status == UPESI_DNS_OK && a->count > 0) {
        state = CC_NAME_CONFIRMED;
        name = a->records[0].text;
        api->note_set(call, UPESI_SCOPE_CONN, CC_NOTE_NAME, name);
        api->log_call(call, UPESI_LOG_DEBUG, "%s is %s (confirmed)",
                 conn->remote_ip, name);
    } else if (a->status == UPESI_DNS_NXDOMAIN ||
               a->status == UPESI_DNS_NODATA) {
        state = CC_NAME_NONE;
    }
    api->resume(call, cc_decide(call, c, conn->remote_ip, state, name));
}

static upesi_verdict cc_connect(upesi_call *call)
{
    const cc_config *c = api->config(call);
    const upesi_conn_info *conn = api->conn(call);
    if (c == NULL || conn == NULL)
        return UPESI_CONT;
    const char *ip = conn->remote_ip;
    /* the name is needed unless address items decide first */
    int need_name = !hostmatch_ip(c->allow.addrs, ip) &&
                    (c->verify_host_name ||
                     hostmatch_count(c->deny.names) > 0 ||
                     (hostmatch_count(c->allow.names) > 0 &&
                      hostmatch_ip(c->deny.addrs, ip)));
    if (!need_name)
        return cc_decide(call, c, ip, CC_NAME_UNKNOWN, NULL);
    if (hostmatch_ask_name(api, call, cc_on_name) != 0)
        return cc_decide(call, c, ip, CC_NAME_FAILED, NULL);
    return UPESI_PENDING;
}

static int cc_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                   size_t errlen)
{
    cc_ctx = ctx;
    (void)err;
    (void)errlen;
    api = host;
    hostmatch_set_idna(host);
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "connection_checks",
    .version = "1.0",
    .init = cc_init,
    .config_new = cc_config_new,
    .settings = cc_settings,
    .config_free = cc_config_free,
    .hooks = {
        [UPESI_HOOK_CONNECT] = cc_connect,
    },
};
