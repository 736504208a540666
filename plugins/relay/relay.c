/*
 * relay.c - inbound relay controls, Domino's "SMTP Inbound Controls: Inbound
 * Relay Controls" (DESIGN.md 6).  The host refuses every recipient outside
 * local_domains unless a plugin returns OK for it (550 5.7.1 Relaying
 * denied): this plugin is the one that returns OK, so upesi is no open
 * relay unless the administrator says so.
 *
 * conf/relay.ini (docs/plugins/relay.md):
 *   allow_hosts   hosts that may relay to any domain
 *   deny_hosts    hosts that may not relay
 *   allow_domains external domains anyone may relay to
 *   deny_domains  external domains nobody may relay to
 *   deny_wins     0: an Allow entry wins a conflict with a Deny entry
 *                 (Domino's default); 1: Deny wins (SMTPRelayHostsandDomain)
 *
 * At RCPT, for a recipient outside local_domains: an authenticated session
 * relays (OK).  Otherwise "allowed" is (host in allow_hosts or domain in
 * allow_domains) and "denied" is (host in deny_hosts or domain in
 * deny_domains); the conflict rule picks between them.  Allowed: OK.
 * Denied: DENY 550 5.7.1 naming the reason.  Neither: CONT, and the host
 * refuses with its own 550 5.7.1 Relaying denied.  Local recipients: CONT,
 * always (the directory decides about them).
 *
 * Host items may be names: they match the client's forward-confirmed name
 * (api->reverse_name), looked up only when a host list holds names and the
 * address items do not decide alone.  The lookup is made once per
 * connection: at connect, or at MAIL or the first RCPT when an earlier
 * plugin's OK skipped this one's handler (PENDING meanwhile).  When it
 * failed (timeout, DNS error) and a name could have changed the decision,
 * the recipient gets 451 4.4.3, not a permanent refusal.
 *
 * At connect (and again at MAIL, in case an earlier plugin answered OK at
 * connect and skipped this one) the plugin sets the connection note
 * "relay.allowed" = "1" when the connecting host may relay by the host
 * lists.  deny_groups reads it to tell internal hosts from external ones.
 *
 * Fails: a bad list item is a configuration error naming the item.  A
 * failed name lookup matches no name item.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upesi/plugin.h"
#include "../common/hostmatch.h"
#include "../common/settings.h"

static const upesi_api *relay_api;
static upesi_ctx *relay_ctx;

#define RELAY_NOTE_ALLOWED "relay.allowed"
/* the host lists' verdict on this connection, once known: "allow" and
 * "deny" each "0", "1", or "?" (a name item could match, the name lookup
 * failed) */
#define RELAY_NOTE_HOST_ALLOW "relay.host_allow"
#define RELAY_NOTE_HOST_DENY "relay.host_deny"
#define RELAY_NOTE_NAME "remote.name"

typedef struct relay_config {
    hostmatch_list *allow_hosts;     /* addresses, ranges, wildcards, '*' */
    hostmatch_list *allow_names;     /* host names: the confirmed name    */
    hostmatch_list *deny_hosts;
    hostmatch_list *deny_names;
    hostmatch_list *allow_domains;
    hostmatch_list *deny_domains;
    int deny_wins;
} relay_config;

/* ---------------------------------------------------------------------- */
/* settings                                                               */

static void relay_config_free(void *config)
{
    relay_config *cfg = config;
    if (cfg == NULL)
        return;
    hostmatch_free(cfg->allow_hosts);
    hostmatch_free(cfg->allow_names);
    hostmatch_free(cfg->deny_hosts);
    hostmatch_free(cfg->deny_names);
    hostmatch_free(cfg->allow_domains);
    hostmatch_free(cfg->deny_domains);
    free(cfg);
}

static void *relay_config_new(void)
{
    relay_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return NULL;
    cfg->allow_hosts = hostmatch_new(HOSTMATCH_ADDRESSES);
    cfg->allow_names = hostmatch_new(HOSTMATCH_NAMES);
    cfg->deny_hosts = hostmatch_new(HOSTMATCH_ADDRESSES);
    cfg->deny_names = hostmatch_new(HOSTMATCH_NAMES);
    cfg->allow_domains = hostmatch_new(HOSTMATCH_NAMES);
    cfg->deny_domains = hostmatch_new(HOSTMATCH_NAMES);
    if (!cfg->allow_hosts || !cfg->allow_names || !cfg->deny_hosts ||
        !cfg->deny_names || !cfg->allow_domains || !cfg->deny_domains) {
        relay_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* List keys (one item per call: upesi_list_next split the line); a key
 * may appear more than once and its items add up. */
static int relay_allow_hosts(void *config, const char *item, char *err,
                             size_t errlen)
{
    relay_config *cfg = config;
    return hostmatch_add_hosts(cfg->allow_hosts, cfg->allow_names, item, err,
                               errlen);
}

static int relay_deny_hosts(void *config, const char *item, char *err,
                            size_t errlen)
{
    relay_config *cfg = config;
    return hostmatch_add_hosts(cfg->deny_hosts, cfg->deny_names, item, err,
                               errlen);
}

static int relay_allow_domains(void *config, const char *item, char *err,
                               size_t errlen)
{
    relay_config *cfg = config;
    return hostmatch_add(cfg->allow_domains, item, err, errlen);
}

static int relay_deny_domains(void *config, const char *item, char *err,
                              size_t errlen)
{
    relay_config *cfg = config;
    return hostmatch_add(cfg->deny_domains, item, err, errlen);
}

static const upesi_setting relay_settings[] = {
    { "allow_hosts", UPESI_SETTING_LIST, 0, 0, 0, NULL, relay_allow_hosts,
      NULL, "hosts that may relay to any domain: addresses, CIDR ranges, "
      "IPv4 wildcards, names, `*.domain`, `*`" },
    { "deny_hosts", UPESI_SETTING_LIST, 0, 0, 0, NULL, relay_deny_hosts,
      NULL, "hosts that may not relay" },
    { "allow_domains", UPESI_SETTING_LIST, 0, 0, 0, NULL,
      relay_allow_domains, NULL, "external domains anyone may relay to" },
    { "deny_domains", UPESI_SETTING_LIST, 0, 0, 0, NULL, relay_deny_domains,
      NULL, "external domains nobody may relay to" },
    { "deny_wins", UPESI_SETTING_BOOL, offsetof(relay_config, deny_wins), 0,
      0, NULL, NULL, "0", "off: Allow wins a conflict; on: Deny wins "
      "(SMTPRelayHostsandDomain)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

/* ---------------------------------------------------------------------- */
/* decisions                                                              */

/* The host lists' verdict, one of them: 0 no, 1 yes, -1 unknown (a name
 * item could match but the name lookup failed). */
typedef struct relay_host {
    int allow, deny;
} relay_host;

/* Is the name needed: does a name item stand between the address items
 * and a decision? */
static int relay_need_name(const relay_config *cfg, const char *ip)
{
    int allow_ip = hostmatch_ip(cfg->allow_hosts, ip);
    int deny_ip = hostmatch_ip(cfg->deny_hosts, ip);
    /* with deny_wins = 0, an allowed host's denial cannot matter */
    return (!allow_ip && hostmatch_count(cfg->allow_names) > 0) ||
           (!deny_ip && hostmatch_count(cfg->deny_names) > 0 &&
            (cfg->deny_wins || !allow_ip));
}

/* name: the confirmed name, or NULL; failed: the lookup failed */
static relay_host relay_host_match(const relay_config *cfg, const char *ip,
                                   const char *name, int failed)
{
    relay_host h;
    h.allow = hostmatch_ip(cfg->allow_hosts, ip) ||
              (name && hostmatch_name(cfg->allow_names, name));
    h.deny = hostmatch_ip(cfg->deny_hosts, ip) ||
             (name && hostmatch_name(cfg->deny_names, name));
    if (failed && !h.allow && hostmatch_count(cfg->allow_names) > 0)
        h.allow = -1;
    if (failed && !h.deny && hostmatch_count(cfg->deny_names) > 0)
        h.deny = -1;
    return h;
}

static const char *relay_tri(int v)
{
    return v < 0 ? "?" : v ? "1" : "0";
}

static int relay_tri_of(const char *s)
{
    return s[0] == '?' ? -1 : s[0] == '1';
}

/* Remember the host lists' verdict and set relay.allowed. */
static void relay_store(upesi_call *call, const relay_config *cfg,
                        relay_host h)
{
    relay_api->note_set(call, UPESI_SCOPE_CONN, RELAY_NOTE_HOST_ALLOW,
                        relay_tri(h.allow));
    relay_api->note_set(call, UPESI_SCOPE_CONN, RELAY_NOTE_HOST_DENY,
                        relay_tri(h.deny));
    int allowed = h.allow == 1 && !(cfg->deny_wins && h.deny != 0);
    if (!relay_api->note_get(call, UPESI_SCOPE_CONN, RELAY_NOTE_ALLOWED))
        relay_api->note_set(call, UPESI_SCOPE_CONN, RELAY_NOTE_ALLOWED,
                            allowed ? "1" : "0");
}

/* The stored verdict: 0 when known, -1 when not looked at yet. */
static int relay_stored(upesi_call *call, relay_host *h)
{
    const char *a = relay_api->note_get(call, UPESI_SCOPE_CONN,
                                        RELAY_NOTE_HOST_ALLOW);
    const char *d = relay_api->note_get(call, UPESI_SCOPE_CONN,
                                        RELAY_NOTE_HOST_DENY);
    if (a == NULL || d == NULL)
        return -1;
    h->allow = relay_tri_of(a);
    h->deny = relay_tri_of(d);
    return 0;
}

static upesi_verdict relay_rcpt_decide(upesi_call *call, relay_host h);

static void relay_on_name(upesi_call *call, const upesi_dns_answer *a)
{
    const relay_config *cfg = relay_api->config(call);
    const upesi_conn_info *conn = relay_api->conn(call);
    const char *name = NULL;
    int failed = 0;
    if (a->status == UPESI_DNS_OK && a->count > 0) {
        name = a->records[0].text;
        if (!relay_api->note_get(call, UPESI_SCOPE_CONN, RELAY_NOTE_NAME))
            relay_api->note_set(call, UPESI_SCOPE_CONN, RELAY_NOTE_NAME,
                                name);
    } else if (a->status == UPESI_DNS_TIMEOUT ||
               a->status == UPESI_DNS_ERROR) {
        failed = 1;
        relay_api->log_call(call, UPESI_LOG_NOTICE, "%s: host name lookup "
                       "failed: name items in the host lists cannot match",
                       conn->remote_ip);
    }
    relay_host h = relay_host_match(cfg, conn->remote_ip, name, failed);
    relay_store(call, cfg, h);
    if (relay_api->hook(call) == UPESI_HOOK_RCPT)
        relay_api->resume(call, relay_rcpt_decide(call, h));
    else
        relay_api->resume(call, UPESI_CONT);
}

/* Make sure the host lists' verdict is known: CONT when it is (stored in
 * *h), PENDING when the name is being looked up (relay_on_name goes on). */
static upesi_verdict relay_host_known(upesi_call *call, relay_host *h)
{
    const relay_config *cfg = relay_api->config(call);
    const upesi_conn_info *conn = relay_api->conn(call);
    if (relay_stored(call, h) == 0)
        return UPESI_CONT;
    if (relay_need_name(cfg, conn->remote_ip)) {
        if (hostmatch_ask_name(relay_api, call, relay_on_name) == 0)
            return UPESI_PENDING;
        *h = relay_host_match(cfg, conn->remote_ip, NULL, 1);
    } else {
        *h = relay_host_match(cfg, conn->remote_ip, NULL, 0);
    }
    relay_store(call, cfg, *h);
    return UPESI_CONT;
}

static upesi_verdict relay_connect(upesi_call *call)
{
    relay_host h;
    if (relay_api->config(call) == NULL || relay_api->conn(call) == NULL)
        return UPESI_CONT;
    return relay_host_known(call, &h);
}

static upesi_verdict relay_mail(upesi_call *call)
{
    return relay_connect(call);
}

/* The recipient's verdict, given the host lists' (rcpt is not local). */
static upesi_verdict relay_rcpt_decide(upesi_call *call, relay_host h)
{
    const relay_config *cfg = relay_api->config(call);
    const upesi_conn_info *conn = relay_api->conn(call);
    const char *rcpt = relay_api->address(call);
    const char *at = strrchr(rcpt, '@');
    const char *domain = at ? at + 1 : "";
    const char *name = relay_api->note_get(call, UPESI_SCOPE_CONN,
                                           RELAY_NOTE_NAME);
    int dom_allow = *domain && hostmatch_name(cfg->allow_domains, domain);
    int dom_deny = *domain && hostmatch_name(cfg->deny_domains, domain);

    /* outcome for each way the unknown host items could have gone:
     * 1 relay, -1 explicit denial, 0 the host's refusal */
    int outcome[4], n = 0;
    for (int a = 0; a <= 1; a++)
        for (int d = 0; d <= 1; d++) {
            if ((h.allow >= 0 && a != h.allow) ||
                (h.deny >= 0 && d != h.deny))
                continue;
            int allowed = a || dom_allow, denied = d || dom_deny;
            outcome[n++] = allowed && !(denied && cfg->deny_wins) ? 1
                         : denied ? -1 : 0;
        }
    for (int i = 1; i < n; i++)
        if (outcome[i] != outcome[0]) {
            relay_api->stat_add(relay_ctx, "SMTP.Relay.Deferred", 1);
            relay_api->log_call(call, UPESI_LOG_INFO, "relay to <%s> deferred: "
                           "the host lists name hosts and the name of %s "
                           "could not be looked up", rcpt, conn->remote_ip);
            relay_api->reply(call, 451, "4.4.3", "Relaying temporarily "
                             "denied: cannot look up the name of host %s",
                             conn->remote_ip);
            return UPESI_DENYSOFT;
        }
    int host_allow = h.allow == 1, host_deny = h.deny == 1;
    char who[320];
    snprintf(who, sizeof who, "%s%s%s%s", conn->remote_ip,
             name ? " (" : "", name ? name : "", name ? ")" : "");

    if (outcome[0] == 1) {
        relay_api->stat_add(relay_ctx, "SMTP.Relay.Allowed", 1);
        relay_api->log_call(call, UPESI_LOG_INFO, "relay to <%s> allowed: %s in "
                       "%s", rcpt, host_allow ? who : domain,
                       host_allow ? "allow_hosts" : "allow_domains");
        return UPESI_OK;
    }
    relay_api->stat_add(relay_ctx, "SMTP.Relay.Denied", 1);
    if (outcome[0] == -1) {
        int allowed = host_allow || dom_allow;
        relay_api->log_call(call, UPESI_LOG_INFO, "relay to <%s> denied: %s in "
                       "%s%s", rcpt, host_deny ? who : domain,
                       host_deny ? "deny_hosts" : "deny_domains",
                       allowed ? " (deny_wins = 1)" : "");
        if (host_deny)
            relay_api->reply(call, 550, "5.7.1", "Relaying denied: host %s "
                             "may not relay", conn->remote_ip);
        else
            relay_api->reply(call, 550, "5.7.1", "Relaying denied: relaying "
                             "to %s is not allowed", domain);
        return UPESI_DENY;
    }
    return UPESI_CONT;          /* the host's 550 5.7.1 Relaying denied */
}

static upesi_verdict relay_rcpt(upesi_call *call)
{
    const relay_config *cfg = relay_api->config(call);
    const upesi_conn_info *conn = relay_api->conn(call);
    const char *rcpt = relay_api->address(call);
    if (cfg == NULL || conn == NULL || rcpt == NULL)
        return UPESI_CONT;
    if (relay_api->is_local_domain(call, rcpt))
        return UPESI_CONT;

    if (conn->authenticated) {
        relay_api->stat_add(relay_ctx, "SMTP.Relay.Allowed", 1);
        /* the user name only at debug (docs/auth.md) */
        relay_api->log_call(call, UPESI_LOG_INFO, "relay to <%s> allowed: "
                       "authenticated session", rcpt);
        relay_api->log_call(call, UPESI_LOG_DEBUG, "relay to <%s>: user %s", rcpt,
                       conn->auth_user ? conn->auth_user : "?");
        return UPESI_OK;
    }
    relay_host h;
    upesi_verdict v = relay_host_known(call, &h);
    if (v == UPESI_PENDING)
        return v;
    return relay_rcpt_decide(call, h);
}

/* ---------------------------------------------------------------------- */

static int relay_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                      size_t errlen)
{
    relay_ctx = ctx;
    (void)err;
    (void)errlen;
    relay_api = api;
    hostmatch_set_idna(api);
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "relay",
    .version = "1.0",
    .init = relay_init,
    .config_new = relay_config_new,
    .settings = relay_settings,
    .config_free = relay_config_free,
    .hooks = {
        [UPESI_HOOK_CONNECT] = relay_connect,
        [UPESI_HOOK_MAIL] = relay_mail,
        [UPESI_HOOK_RCPT] = relay_rcpt,
    },
};
