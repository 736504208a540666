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
 * At connect (and again at MAIL, in case an earlier plugin answered OK at
 * connect and skipped this one) the plugin sets the connection note
 * "relay.allowed" = "1" when the connecting host may relay by the host
 * lists.  deny_groups reads it to tell internal hosts from external ones.
 *
 * Fails: a bad list item is a configuration error naming the item.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upesi/plugin.h"
#include "../common/hostmatch.h"

static const upesi_api *relay_api;

#define RELAY_NOTE_ALLOWED "relay.allowed"

typedef struct relay_config {
    hostmatch_list *allow_hosts;
    hostmatch_list *deny_hosts;
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
    hostmatch_free(cfg->deny_hosts);
    hostmatch_free(cfg->allow_domains);
    hostmatch_free(cfg->deny_domains);
    free(cfg);
}

static void *relay_config_new(void)
{
    relay_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return NULL;
    cfg->allow_hosts = hostmatch_new(HOSTMATCH_ANY);
    cfg->deny_hosts = hostmatch_new(HOSTMATCH_ANY);
    cfg->allow_domains = hostmatch_new(HOSTMATCH_NAMES);
    cfg->deny_domains = hostmatch_new(HOSTMATCH_NAMES);
    if (!cfg->allow_hosts || !cfg->deny_hosts || !cfg->allow_domains ||
        !cfg->deny_domains) {
        relay_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static int relay_parse_bool(const char *value, int *out)
{
    if (!strcmp(value, "1") || !strcasecmp(value, "yes") ||
        !strcasecmp(value, "on") || !strcasecmp(value, "true")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(value, "0") || !strcasecmp(value, "no") ||
        !strcasecmp(value, "off") || !strcasecmp(value, "false")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* A list key may appear more than once: its items add up. */
static int relay_config_set(void *config, const char *section,
                            const char *key, const char *value, char *err,
                            size_t errlen)
{
    relay_config *cfg = config;
    if (section && *section) {
        snprintf(err, errlen, "unknown section [%s] (relay.ini keys live at "
                 "the top of the file)", section);
        return -1;
    }
    hostmatch_list *list = NULL;
    if (!strcmp(key, "allow_hosts"))
        list = cfg->allow_hosts;
    else if (!strcmp(key, "deny_hosts"))
        list = cfg->deny_hosts;
    else if (!strcmp(key, "allow_domains"))
        list = cfg->allow_domains;
    else if (!strcmp(key, "deny_domains"))
        list = cfg->deny_domains;
    else if (!strcmp(key, "deny_wins")) {
        if (relay_parse_bool(value, &cfg->deny_wins) != 0) {
            snprintf(err, errlen, "deny_wins: '%s' is not 0 or 1", value);
            return -1;
        }
        return 0;
    } else {
        snprintf(err, errlen, "unknown key '%s' (relay takes allow_hosts, "
                 "deny_hosts, allow_domains, deny_domains, deny_wins)", key);
        return -1;
    }
    char why[256];
    if (hostmatch_add(list, value, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", key, why);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* decisions                                                              */

/* May the connecting host relay by the host lists alone? */
static int relay_host_allowed(const relay_config *cfg,
                              const upesi_conn_info *conn)
{
    /* no PTR name in the ABI yet: name items match once it comes */
    int allowed = hostmatch_host(cfg->allow_hosts, conn->remote_ip, NULL);
    if (allowed && cfg->deny_wins &&
        hostmatch_host(cfg->deny_hosts, conn->remote_ip, NULL))
        return 0;
    return allowed;
}

static void relay_mark_connection(upesi_call *call)
{
    const relay_config *cfg = relay_api->config(call);
    const upesi_conn_info *conn = relay_api->conn(call);
    if (cfg == NULL || conn == NULL)
        return;
    if (relay_api->note_get(call, UPESI_SCOPE_CONN, RELAY_NOTE_ALLOWED))
        return;
    relay_api->note_set(call, UPESI_SCOPE_CONN, RELAY_NOTE_ALLOWED,
                        relay_host_allowed(cfg, conn) ? "1" : "0");
}

static upesi_verdict relay_connect(upesi_call *call)
{
    relay_mark_connection(call);
    return UPESI_CONT;
}

static upesi_verdict relay_mail(upesi_call *call)
{
    relay_mark_connection(call);
    return UPESI_CONT;
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
    const char *at = strrchr(rcpt, '@');
    const char *domain = at ? at + 1 : "";

    if (conn->authenticated) {
        relay_api->stat_add("SMTP.Relay.Allowed", 1);
        relay_api->log(call, UPESI_LOG_INFO, "relay to <%s> allowed: "
                       "authenticated as %s", rcpt,
                       conn->auth_user ? conn->auth_user : "?");
        return UPESI_OK;
    }

    int host_allow = hostmatch_host(cfg->allow_hosts, conn->remote_ip, NULL);
    int host_deny = hostmatch_host(cfg->deny_hosts, conn->remote_ip, NULL);
    int dom_allow = *domain && hostmatch_name(cfg->allow_domains, domain);
    int dom_deny = *domain && hostmatch_name(cfg->deny_domains, domain);
    int allowed = host_allow || dom_allow;
    int denied = host_deny || dom_deny;

    if (allowed && !(denied && cfg->deny_wins)) {
        relay_api->stat_add("SMTP.Relay.Allowed", 1);
        relay_api->log(call, UPESI_LOG_INFO, "relay to <%s> allowed: %s in "
                       "%s", rcpt, host_allow ? conn->remote_ip : domain,
                       host_allow ? "allow_hosts" : "allow_domains");
        return UPESI_OK;
    }
    relay_api->stat_add("SMTP.Relay.Denied", 1);
    if (denied) {
        relay_api->log(call, UPESI_LOG_INFO, "relay to <%s> denied: %s in "
                       "%s%s", rcpt, host_deny ? conn->remote_ip : domain,
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

/* ---------------------------------------------------------------------- */

static int relay_init(const upesi_api *api, upesi_plugin_ref *self, char *err,
                      size_t errlen)
{
    (void)self;
    (void)err;
    (void)errlen;
    relay_api = api;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "relay",
    .version = "1.0",
    .init = relay_init,
    .config_new = relay_config_new,
    .config_set = relay_config_set,
    .config_free = relay_config_free,
    .hooks = {
        [UPESI_HOOK_CONNECT] = relay_connect,
        [UPESI_HOOK_MAIL] = relay_mail,
        [UPESI_HOOK_RCPT] = relay_rcpt,
    },
};
