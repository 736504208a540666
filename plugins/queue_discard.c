/*
 * queue_discard.c - a queue hook that accepts every message and stores
 * nothing (DESIGN.md 7).  It exists for benchmarks, where it measures the
 * host without a disk, and says so in its log: a server configured with it
 * answers 250 and throws the mail away.
 *
 * Log: one NOTICE line per second at most, naming the message that caused
 * it and counting every message discarded since the previous line, so a
 * benchmark is not bound by its own logging.  The statistic
 * SMTP.Discard.Messages counts them all.
 *
 * Fails: never; there is nothing to fail.
 */
#include <stdio.h>
#include <time.h>

#include "upesi/plugin.h"

static const upesi_api *discard_api;
static upesi_ctx *discard_ctx;

/* ---------------------------------------------------------------------- */
/* Rate-limited logging: one loop per worker process, so no locking.      */

static time_t discard_logged_at;        /* second of the last log line */
static long long discard_unlogged;      /* discarded since that line   */

/* ---------------------------------------------------------------------- */
/* The queue hook                                                         */

static upesi_verdict discard_queue(upesi_call *call)
{
    const char *queue_id = discard_api->queue_id(call);
    if (queue_id == NULL)
        queue_id = "(none)";

    discard_api->stat_add(discard_ctx, "SMTP.Discard.Messages", 1);
    discard_unlogged++;
    time_t now = time(NULL);
    if (now != discard_logged_at) {
        discard_api->log_call(call, UPESI_LOG_NOTICE, "%s discarded, not "
                         "stored (benchmark plugin); %lld message%s "
                         "discarded since the last such line",
                         queue_id, discard_unlogged,
                         discard_unlogged == 1 ? "" : "s");
        discard_logged_at = now;
        discard_unlogged = 0;
    }

    discard_api->reply(call, 250, "2.0.0", "Ok: discarded as %s", queue_id);
    return UPESI_OK;
}

/* ---------------------------------------------------------------------- */

static int discard_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                        size_t errlen)
{
    discard_ctx = ctx;
    (void)err;
    (void)errlen;
    discard_api = api;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "queue_discard",
    .version = "1.0",
    .init = discard_init,
    .hooks = {
        [UPESI_HOOK_QUEUE] = discard_queue,
    },
};
