/*
 * api_probe.c - a plugin built against a header one minor newer than the
 * host's, as a third-party plugin would be: its view of the API table has
 * one more call at the end (future_call), and its descriptor one more
 * field.  It declares it needs only this major's first minor, tests the
 * newer call with UPESI_API_SUPPORTED before using it (false here: the
 * host's table ends before it), tests a call the host has (true), and
 * logs what it found.  Its connect hook logs which path it took.
 */
#include <errno.h>
#include <stddef.h>

#include "upesi/plugin.h"

/* struct upesi_api as a newer minor declares it: appended, never moved */
typedef struct probe_api {
    struct upesi_api base;
    int (*future_call)(upesi_ctx *ctx, const char *what);
} probe_api;

/* the descriptor as a newer minor declares it */
typedef struct probe_descriptor {
    struct upesi_plugin base;
    void (*future_callback)(upesi_ctx *ctx);
} probe_descriptor;

static const probe_api *probe;
static upesi_ctx *probe_ctx;
static int probe_has_future;

static int probe_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                      size_t errlen)
{
    (void)err;
    (void)errlen;
    probe = (const probe_api *)api;
    probe_ctx = ctx;
    int has_strerror = UPESI_API_SUPPORTED(&probe->base, strerror);
    probe_has_future = UPESI_API_SUPPORTED(probe, future_call);
    api->log(ctx, UPESI_LOG_NOTICE, "strerror %s (%s), future_call %s",
             has_strerror ? "supported" : "missing",
             has_strerror ? api->strerror(-ENOENT) : "-",
             probe_has_future ? "supported" : "missing");
    return 0;
}

static upesi_verdict probe_connect(upesi_call *call)
{
    if (probe_has_future)
        probe->future_call(probe_ctx, "connect");
    else
        probe->base.log_call(call, UPESI_LOG_NOTICE, "future_call missing: "
                             "fallback taken");
    return UPESI_CONT;
}

/* a host that knows future_callback would call it; this one must not */
static void probe_future_callback(upesi_ctx *ctx)
{
    probe->base.log(ctx, UPESI_LOG_CRIT, "future_callback called by a host "
                    "that does not know it");
}

__attribute__((visibility("default")))
const probe_descriptor upesi_plugin_descriptor = {
    .base = {
        .magic = UPESI_PLUGIN_MAGIC,
        .abi_major = UPESI_ABI_MAJOR,
        .abi_minor = 0,
        .size = sizeof(probe_descriptor),
        .name = "api_probe",
        .version = "1.0",
        .init = probe_init,
        .hooks = { [UPESI_HOOK_CONNECT] = probe_connect },
    },
    .future_callback = probe_future_callback,
};
