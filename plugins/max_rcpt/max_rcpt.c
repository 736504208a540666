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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upesi/plugin.h"
#include "../common/settings.h"

#define MAX_RCPT_DEFAULT 100
#define MAX_RCPT_LIMIT 1000000

static const upesi_api *mr_api;

typedef struct mr_config {
    long max;
    int code;
} mr_config;

static void *mr_config_new(void)
{
    mr_config *cfg = calloc(1, sizeof *cfg);
    if (cfg) {
        cfg->max = MAX_RCPT_DEFAULT;
        cfg->code = 552;
    }
    return cfg;
}

static void mr_config_free(void *config)
{
    free(config);
}

static int mr_config_set(void *config, const char *section, const char *key,
                         const char *value, char *err, size_t errlen)
{
    mr_config *cfg = config;
    if (settings_no_section("max_rcpt", section, err, errlen) != 0)
        return -1;
    long v;
    if (!strcmp(key, "max")) {
        if (settings_long(value, 1, MAX_RCPT_LIMIT, &v) != 0) {
            snprintf(err, errlen, "max: '%s' is not a whole number from 1 "
                     "to %d", value, MAX_RCPT_LIMIT);
            return -1;
        }
        cfg->max = v;
        return 0;
    }
    if (!strcmp(key, "code")) {
        if (settings_long(value, 452, 552, &v) != 0 ||
            (v != 552 && v != 452)) {
            snprintf(err, errlen, "code: '%s' is not 552 or 452", value);
            return -1;
        }
        cfg->code = (int)v;
        return 0;
    }
    snprintf(err, errlen, "unknown key '%s' (max_rcpt takes max, code)", key);
    return -1;
}

static upesi_verdict mr_rcpt(upesi_call *call)
{
    const mr_config *cfg = mr_api->config(call);
    if (cfg == NULL)
        return UPESI_CONT;
    size_t n = mr_api->rcpt_count(call);
    if (n < (size_t)cfg->max)
        return UPESI_CONT;
    mr_api->stat_add("SMTP.MaxRcpt.Refused", 1);
    mr_api->log(call, UPESI_LOG_INFO, "recipient <%s> refused: transaction "
                "already has %zu recipients (max = %ld)",
                mr_api->address(call) ? mr_api->address(call) : "",
                n, cfg->max);
    if (cfg->code == 452) {
        mr_api->reply(call, 452, "4.5.3", "Too many recipients (at most %ld "
                      "per message; send the rest in another)", cfg->max);
        return UPESI_DENYSOFT;
    }
    mr_api->reply(call, 552, "5.5.3", "Too many recipients (at most %ld per "
                  "message)", cfg->max);
    return UPESI_DENY;
}

static int mr_init(const upesi_api *api, upesi_plugin_ref *self, char *err,
                   size_t errlen)
{
    (void)self;
    (void)err;
    (void)errlen;
    mr_api = api;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "max_rcpt",
    .version = "1.0",
    .init = mr_init,
    .config_new = mr_config_new,
    .config_set = mr_config_set,
    .config_free = mr_config_free,
    .hooks = {
        [UPESI_HOOK_RCPT] = mr_rcpt,
    },
};
