/* hello.c - refuse recipients that start with a configured prefix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *hello_ctx;

typedef struct hello_settings {
    char prefix[64];
} hello_settings;

static int hello_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                      size_t errlen)
{
    hello_ctx = ctx;
    (void)err;
    (void)errlen;
    api = host;
    return 0;
}

static void *hello_config_new(void)
{
    hello_settings *s = calloc(1, sizeof *s);
    if (s)
        strcpy(s->prefix, "spam");          /* the default */
    return s;
}

static int hello_config_set(void *config, const char *section,
                            const char *key, const char *value,
                            char *err, size_t errlen)
{
    hello_settings *s = config;
    if (section[0] == '\0' && strcmp(key, "prefix") == 0 &&
        strlen(value) < sizeof s->prefix) {
        strcpy(s->prefix, value);
        return 0;
    }
    snprintf(err, errlen, "unknown key '%s'", key);  /* host adds file:line */
    return -1;
}

static void hello_config_free(void *config)
{
    free(config);
}

static upesi_verdict hello_rcpt(upesi_call *call)
{
    const hello_settings *s = api->config(call);
    const char *rcpt = api->address(call);
    api->stat_add(hello_ctx, "SMTP.Hello.Seen", 1);
    if (strncmp(rcpt, s->prefix, strlen(s->prefix)) == 0) {
        api->reply(call, 550, "5.7.1", "No thanks, <%s>", rcpt);
        return UPESI_DENY;
    }
    return UPESI_CONT;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "hello",
    .version = "1.0",
    .init = hello_init,
    .config_new = hello_config_new,
    .config_set = hello_config_set,
    .config_free = hello_config_free,
    .hooks = { [UPESI_HOOK_RCPT] = hello_rcpt },
};
