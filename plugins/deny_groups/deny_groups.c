/*
 * deny_groups.c - refuse mail addressed to a group, Domino's
 * SMTPDenyMailToGroups (DESIGN.md 6, docs/plugins/deny_groups.md).
 *
 * conf/deny_groups.ini:
 *   mode = 0   off (the default, as in Domino)
 *   mode = 1   refuse group recipients from external hosts
 *   mode = 2   refuse group recipients from every host
 * The refusal comes right after RCPT TO, permanent:
 *   550 5.7.1 <staff@example.com>: mail to groups is rejected for policy
 *   reasons
 *
 * What is a group: the directory plugin says so in the transaction note
 * "rcpt.kind.<address>" = "group", so directory must come before
 * deny_groups in conf/plugins (Domino likewise needs "Verify that local
 * domain recipients exist").  What is external: a session that is not
 * authenticated and whose host may not relay, as the relay plugin tells in
 * the connection note "relay.allowed" = "1" (no relay plugin: every host
 * is external).
 *
 * The order is checked at `upesi -t` and at every reload
 * (api->plugin_position).  Should a recipient still arrive without a kind
 * note while mode is 1 or 2, it logs a CRIT line once per configuration
 * generation, and mail goes on: a server that defers everything over a
 * configuration slip would be worse.
 *
 * Fails: never; a misordered configuration is reported as above.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upesi/plugin.h"

static const upesi_api *dg_api;
static upesi_ctx *dg_ctx;

typedef struct dg_config {
    int mode;
    int warned;                  /* the CRIT about plugin order was logged */
} dg_config;

static void *dg_config_new(void)
{
    return calloc(1, sizeof(dg_config));
}

static void dg_config_free(void *config)
{
    free(config);
}

static const upesi_setting dg_settings[] = {
    { "mode", UPESI_SETTING_INT, offsetof(dg_config, mode), 0, 2, NULL, NULL,
      "0", "0 off; 1 refuse group recipients from external hosts; 2 from "
      "every host (SMTPDenyGroups)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

/* directory must be listed before deny_groups when mode is not 0. */
static int dg_config_check(void *config, char *err, size_t errlen)
{
    dg_config *cfg = config;
    if (cfg->mode == 0)
        return 0;
    int self = dg_api->plugin_position(dg_ctx, "deny_groups");
    int dir = dg_api->plugin_position(dg_ctx, "directory");
    if (dir < 0 || (self >= 0 && dir > self)) {
        snprintf(err, errlen, "mode = %d needs the directory plugin before "
                 "deny_groups in conf/plugins (%s)", cfg->mode,
                 dir < 0 ? "directory is not listed"
                         : "directory is listed after deny_groups");
        return -1;
    }
    return 0;
}

static int dg_is_postmaster(const char *address)
{
    const char *at = strrchr(address, '@');
    size_t len = at ? (size_t)(at - address) : strlen(address);
    return len == 10 && !strncasecmp(address, "postmaster", 10);
}

static upesi_verdict dg_rcpt(upesi_call *call)
{
    dg_config *cfg = dg_api->config(call);
    const char *rcpt = dg_api->address(call);
    if (cfg == NULL || cfg->mode == 0 || rcpt == NULL)
        return UPESI_CONT;
    char key[1100];
    snprintf(key, sizeof key, "rcpt.kind.%s", rcpt);
    const char *kind = dg_api->note_get(call, UPESI_SCOPE_TXN, key);
    if (kind == NULL) {
        if (!cfg->warned && strchr(rcpt, '@') && !dg_is_postmaster(rcpt) &&
            dg_api->is_local_domain(call, rcpt)) {
            cfg->warned = 1;
            dg_api->log_call(call, UPESI_LOG_CRIT, "deny_groups needs directory "
                        "before it in conf/plugins: local recipient <%s> "
                        "came without a rcpt.kind note, so mail to groups "
                        "cannot be recognised and is not refused", rcpt);
        }
        return UPESI_CONT;
    }
    if (strcmp(kind, "group") != 0)
        return UPESI_CONT;

    const upesi_conn_info *conn = dg_api->conn(call);
    const char *relay = dg_api->note_get(call, UPESI_SCOPE_CONN,
                                         "relay.allowed");
    int internal = (conn && conn->authenticated) ||
                   (relay && !strcmp(relay, "1"));
    if (cfg->mode == 1 && internal)
        return UPESI_CONT;
    dg_api->stat_add(dg_ctx, "SMTP.DenyGroups.Refused", 1);
    dg_api->log_call(call, UPESI_LOG_INFO, "recipient <%s> refused: a group "
                "(mode = %d, %s host)", rcpt, cfg->mode,
                internal ? "internal" : "external");
    dg_api->reply(call, 550, "5.7.1", "<%s>: mail to groups is rejected for "
                  "policy reasons", rcpt);
    return UPESI_DENY;
}

static int dg_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                   size_t errlen)
{
    dg_ctx = ctx;
    (void)err;
    (void)errlen;
    dg_api = api;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "deny_groups",
    .version = "1.0",
    .init = dg_init,
    .config_new = dg_config_new,
    .settings = dg_settings,
    .config_check = dg_config_check,
    .config_free = dg_config_free,
    .hooks = {
        [UPESI_HOOK_RCPT] = dg_rcpt,
    },
};
