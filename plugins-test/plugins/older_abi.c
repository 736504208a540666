/*
 * older_abi.c - a plugin that declares the lowest minor of this major (it
 * needs only what ABI 2.0 had) and whose descriptor is exactly the 2.0
 * size: a host of this or any later 2.x minor loads it, and reads the
 * descriptor fields a later minor appended as zero.  It refuses every
 * recipient whose local part is "older", so a test can see it ran.
 */
#include <string.h>

#include "upesi/plugin.h"

static const upesi_api *older_api;

static int older_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                      size_t errlen)
{
    (void)err;
    (void)errlen;
    older_api = api;
    api->log(ctx, UPESI_LOG_NOTICE, "loaded: needs ABI 2.0, host ABI %u.%u",
             api->abi_major, api->abi_minor);
    return 0;
}

static upesi_verdict older_rcpt(upesi_call *call)
{
    const char *rcpt = older_api->address(call);
    if (rcpt && strncmp(rcpt, "older@", 6) == 0) {
        older_api->reply(call, 550, "5.7.1", "refused by the 2.0 plugin");
        return UPESI_DENY;
    }
    return UPESI_CONT;
}

/* the 2.0 descriptor, its 2.0 size whatever this header's is */
UPESI_PLUGIN = {
    .magic = UPESI_PLUGIN_MAGIC,
    .abi_major = UPESI_ABI_MAJOR,
    .abi_minor = 0,
    .size = UPESI_PLUGIN_SIZE_2_0,
    .name = "older_abi",
    .version = "1.0",
    .init = older_init,
    .hooks = { [UPESI_HOOK_RCPT] = older_rcpt },
};
