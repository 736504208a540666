/*
 * store_failure.c - a plugin's answer to a failed store call (see
 * store_failure.h).
 *
 * Fails: never; the log line is rate-limited so that a store down under
 * load writes one line a minute, not one per message.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store_failure.h"

#define STORE_FAILURE_LOG_SECONDS 60

static time_t last_logged;
static long long unlogged;

int store_failure_parse(const char *value, int *policy, char *err,
                        size_t errlen)
{
    if (!strcmp(value, "accept")) {
        *policy = STORE_FAILURE_ACCEPT;
        return 0;
    }
    if (!strcmp(value, "tempfail")) {
        *policy = STORE_FAILURE_TEMPFAIL;
        return 0;
    }
    snprintf(err, errlen, "store_failure: '%s' is not accept or tempfail",
             value);
    return -1;
}

upesi_verdict store_failure_note(const upesi_api *api, upesi_ctx *ctx,
                                 upesi_call *call, int policy, int status,
                                 const char *stat, const char *what)
{
    api->stat_add(ctx, stat, 1);
    unlogged++;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (last_logged == 0 ||
        now.tv_sec - last_logged >= STORE_FAILURE_LOG_SECONDS) {
        const char *why = api->strerror(status);
        const char *pol = policy == STORE_FAILURE_TEMPFAIL ? "tempfail"
                                                           : "accept";
        if (call)
            api->log_call(call, UPESI_LOG_WARNING, "store: %s failed: %s "
                          "(%lld failures since the last line); "
                          "store_failure = %s", what, why, unlogged, pol);
        else
            api->log(ctx, UPESI_LOG_WARNING, "store: %s failed: %s (%lld "
                     "failures since the last line); store_failure = %s",
                     what, why, unlogged, pol);
        last_logged = now.tv_sec ? now.tv_sec : 1;
        unlogged = 0;
    }
    if (policy != STORE_FAILURE_TEMPFAIL)
        return UPESI_CONT;
    if (call)
        api->reply(call, 451, "4.3.0", "Temporary failure (state store "
                   "unavailable), try again later");
    return UPESI_DENYSOFT;
}
