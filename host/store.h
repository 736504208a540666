/*
 * store.h - the store: state shared by every worker of a host (lmdb) and
 * by every host of a fleet (redis), offered to plugins as api->store_*
 * (ABI 1.3, DESIGN.md section 12, docs/store.md).
 *
 * The front (store.c) namespaces keys per plugin, counts calls, enforces
 * the per-call deadline (smtp.ini store_timeout) and delivers answers on
 * the loop, never from inside a call.  A backend (store_lmdb.c,
 * store_redis.c) does the work.  The store lives in worker processes
 * only: it is opened after the fork (LMDB forbids carrying an environment
 * across fork, a Redis connection belongs to one loop).
 *
 * Fails: a call that cannot start returns NULL (bad key, no store here,
 * out of memory); every other failure is an answer with a negative errno
 * (see upesi_store_result), counted in SMTP.Store.Errors (and
 * SMTP.Store.Timeouts).  A backend that cannot open logs why and answers
 * every call with an error: mail keeps flowing.
 */
#ifndef UPESI_STORE_H
#define UPESI_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "upesi/plugin.h"

enum { UP_STORE_LMDB = 1, UP_STORE_REDIS };

/* smtp.ini `store`, parsed. */
typedef struct up_store_url {
    int kind;                   /* UP_STORE_*                            */
    char path[4096];            /* lmdb: the directory (absolute once the
                                   configuration is finished); redis: the
                                   unix socket, "" for TCP                */
    char host[256];             /* redis over TCP                        */
    int port;
    int db;                     /* SELECT, 0 = the default               */
    char user[128];             /* Redis 6 ACL user, "" = none           */
    char password[256];         /* "" = no AUTH                          */
} up_store_url;

/* What a worker's store needs from the configuration. */
typedef struct up_store_params {
    up_store_url url;
    uint64_t timeout_ms;        /* store_timeout                         */
    uint64_t size;              /* store_size (lmdb map size), bytes     */
    int worker_index;           /* 0 sweeps and reports SMTP.Store.Keys  */
} up_store_params;

/* Parse a `store` value: "lmdb:PATH", "redis://[[USER]:PASSWORD@]HOST
 * [:PORT][/DB]", "redis+unix://[[USER]:PASSWORD@]/PATH[?db=N]".  A
 * relative lmdb PATH is left as written (config_finish puts it under
 * spool_dir).  0, or -1 with a message in err. */
int up_store_url_parse(const char *value, up_store_url *out, char *err,
                       size_t errlen);
/* "lmdb:/var/spool/upesi/store", "redis://127.0.0.1:6379/0" (no
 * password), for logs. */
void up_store_url_text(const up_store_url *url, char *out, size_t len);

/* In a worker, once its loop exists: open the backend.  Never fails the
 * worker: a backend that cannot open has logged why and answers every
 * call with -EIO (lmdb) or keeps reconnecting (redis). */
void up_store_worker_start(uv_loop_t *loop, const up_store_params *p);
/* A reload: the new store_timeout applies to calls started from now on;
 * a changed store URL or store_size is logged as needing a restart. */
void up_store_reload(const up_store_params *p);
/* Worker stopping: calls in flight are answered -ECONNREFUSED and the
 * backend closes (Redis: QUIT). */
void up_store_worker_stop(void);

/* Before the workers start (and at -t): is a Redis store reachable?  A
 * warning when not (mail flows, the workers keep trying); nothing for
 * lmdb.  Blocks for at most timeout_ms. */
void up_store_probe(const up_store_params *p);

/* The api->store_* functions (plugin is the caller's name). */
upesi_store_op *up_store_get(const char *plugin, const char *key,
                             upesi_store_fn fn, void *arg);
upesi_store_op *up_store_mget(const char *plugin, const char *const *keys,
                              size_t n, upesi_store_fn fn, void *arg);
upesi_store_op *up_store_set(const char *plugin, const char *key,
                             const void *data, size_t len, long long ttl_ms,
                             upesi_store_fn fn, void *arg);
upesi_store_op *up_store_del(const char *plugin, const char *key,
                             upesi_store_fn fn, void *arg);
upesi_store_op *up_store_incr(const char *plugin, const char *key,
                              long long by, long long ttl_ms,
                              upesi_store_fn fn, void *arg);
upesi_store_op *up_store_mincr(const char *plugin, const char *const *keys,
                               const long long *by, size_t n,
                               long long ttl_ms, upesi_store_fn fn,
                               void *arg);
upesi_store_op *up_store_expire(const char *plugin, const char *key,
                                long long ttl_ms, upesi_store_fn fn,
                                void *arg);
upesi_store_op *up_store_ttl(const char *plugin, const char *key,
                             upesi_store_fn fn, void *arg);
upesi_store_op *up_store_count(const char *plugin, upesi_store_fn fn,
                               void *arg);
void up_store_cancel(upesi_store_op *op);

#endif
