/*
 * max_rcpt.c - a cap on recipients per transaction, Domino's
 * SMTPMaxRecipientCount (DESIGN.md 6, docs/plugins/max_rcpt.md).
 *
 * conf/max_rcpt.ini:
 *   max = N        recipients one transaction may hold (default 100, the
 *                  least RFC 5321 4.5.3.1.8 lets a server accept)
 *   code = 552     the reply past N: 552 5.5.3 like Domino, or 452 4.5.3,
 *                  the code RFC 5321 4.5.3.1.10 asks for (a client then
 *                  sends the other recipients in a later transaction)
 *
 * The first N accepted recipients go on to the next plugin; every RCPT
 * after them gets the code.  Recipients refused for other reasons do not
 * count: api->rcpt_count is the number accepted so far.  The host holds at
 * most 1000 recipients per transaction whatever max says.
 *
 * Fails: never.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upesi/plugin.h"


static const upesi_api *maxrcpt_api;
static upesi_ctx *maxrcpt_ctx;

typedef struct maxrcpt_config {
    int max;
    int code;
} maxrcpt_config;

static void *maxrcpt_config_new(void)
{
    maxrcpt_config *cfg = calloc(1, sizeof *cfg); /* max: maxrcpt_settings */
    if (cfg)
        cfg->code = 552;
    return cfg;
}

static void maxrcpt_config_free(void *config)
{
    free(config);
}

/* 552 (RFC 5321's "too many recipients", permanent) or 452 (RFC 5321
 * 4.5.3.1.10: try the rest later) */
static int maxrcpt_set_code(void *config, const char *value, char *err,
                       size_t errlen)
{
    maxrcpt_config *cfg = config;
    if (strcmp(value, "552") && strcmp(value, "452")) {
        snprintf(err, errlen, "expected 552 or 452, got '%s'", value);
        return -1;
    }
    cfg->code = atoi(value);
    return 0;
}

static const upesi_setting maxrcpt_settings[] = {
    { "max", UPESI_SETTING_INT, offsetof(maxrcpt_config, max), 1, 1000000, NULL,
      NULL, "100", "recipients one transaction may hold" },
    { "code", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, maxrcpt_set_code, "552",
      "the reply past `max`: `552` (5.5.3) or `452` (4.5.3, the client "
      "sends the rest in another transaction)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

static upesi_verdict maxrcpt_rcpt(upesi_call *call)
{
    const maxrcpt_config *cfg = maxrcpt_api->config(call);
    if (cfg == NULL)
        return UPESI_CONT;
    size_t n = maxrcpt_api->rcpt_count(call);
    if (n < (size_t)cfg->max)
        return UPESI_CONT;
    maxrcpt_api->stat_add(maxrcpt_ctx, "SMTP.MaxRcpt.Refused", 1);
    maxrcpt_api->log_call(call, UPESI_LOG_INFO, "recipient <%s> refused: transaction "
                "already has %zu recipients (max = %d)",
                maxrcpt_api->address(call) ? maxrcpt_api->address(call) : "",
                n, cfg->max);
    if (cfg->code == 452) {
        maxrcpt_api->reply(call, 452, "4.5.3", "Too many recipients (at most %d "
                      "per message; send the rest in another)", cfg->max);
        return UPESI_DENYSOFT;
    }
    maxrcpt_api->reply(call, 552, "5.5.3", "Too many recipients (at most %d per "
                  "message)", cfg->max);
    return UPESI_DENY;
}

static int maxrcpt_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                        size_t errlen)
{
    maxrcpt_ctx = ctx;
    (void)err;
    (void)errlen;
    maxrcpt_api = api;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "max_rcpt",
    .version = "1.0",
    .init = maxrcpt_init,
    .config_new = maxrcpt_config_new,
    .settings = maxrcpt_settings,
    .config_free = maxrcpt_config_free,
    .hooks = {
        [UPESI_HOOK_RCPT] = maxrcpt_rcpt,
    },
};
