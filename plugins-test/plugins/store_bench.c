/*
 * store_bench.c - a bench plugin (bench/store.sh): once its worker runs, it
 * fills KEYS counters with one store_mincr, then makes CALLS store_mget
 * calls of those KEYS keys, DEPTH of them in flight at a time, and logs
 * "store_bench: N mget of K keys in S s: R calls/s".  Settings from the
 * environment of the upesi it runs in: UPESI_STORE_BENCH_CALLS (2000),
 * UPESI_STORE_BENCH_KEYS (500), UPESI_STORE_BENCH_DEPTH (1).
 *
 * Fails: a store call that fails is logged (ERR "store_bench: failed")
 * and the run stops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *me;
static long calls = 2000, nkeys = 500, depth = 1;
static long started, finished;
static char (*names)[24];
static const char **keys;
static long long *ones;
static struct timespec t0;

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && atol(v) > 0 ? atol(v) : def;
}

static void got(const upesi_store_result *r, void *arg);

static void next_call(void)
{
    while (started < calls && started - finished < depth) {
        started++;
        if (api->store_mget(me, keys, (size_t)nkeys, got, NULL) == NULL) {
            api->log(me, UPESI_LOG_ERR, "store_bench: failed to start");
            return;
        }
    }
}

static void got(const upesi_store_result *r, void *arg)
{
    (void)arg;
    if (r->status != 0 || r->count != (size_t)nkeys ||
        !r->values[nkeys - 1].found) {
        api->log(me, UPESI_LOG_ERR, "store_bench: failed (%d)", r->status);
        started = finished = calls;
        return;
    }
    if (++finished == calls) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) +
                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        api->log(me, UPESI_LOG_NOTICE, "store_bench: %ld mget of %ld keys "
                 "in %.3f s: %.0f calls/s", calls, nkeys, s,
                 (double)calls / s);
        return;
    }
    next_call();
}

static void filled(const upesi_store_result *r, void *arg)
{
    (void)arg;
    if (r->status != 0) {
        api->log(me, UPESI_LOG_ERR, "store_bench: failed to fill (%d)",
                 r->status);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    next_call();
}

static void worker_started(upesi_ctx *ctx)
{
    (void)ctx;
    calls = env_long("UPESI_STORE_BENCH_CALLS", calls);
    nkeys = env_long("UPESI_STORE_BENCH_KEYS", nkeys);
    depth = env_long("UPESI_STORE_BENCH_DEPTH", depth);
    names = calloc((size_t)nkeys, sizeof *names);
    keys = calloc((size_t)nkeys, sizeof *keys);
    ones = calloc((size_t)nkeys, sizeof *ones);
    if (!names || !keys || !ones)
        return;
    for (long i = 0; i < nkeys; i++) {
        snprintf(names[i], sizeof names[i], "tok%ld", i);
        keys[i] = names[i];
        ones[i] = 1;
    }
    if (api->store_mincr(me, keys, ones, (size_t)nkeys, 0, filled, NULL) ==
        NULL)
        api->log(me, UPESI_LOG_ERR, "store_bench: failed to start");
}

static int sb_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                   size_t errlen)
{
    (void)err;
    (void)errlen;
    api = host;
    me = ctx;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER_NEEDS(UPESI_API_STORE_MINOR),
    .name = "store_bench",
    .version = "1.0",
    .init = sb_init,
    .worker_start = worker_started,
};
