/*
 * store_int.h - between the store's front (store.c) and its backends
 * (store_lmdb.c, store_redis.c).
 *
 * An operation is the front's; a backend gets it with submit and gives it
 * back exactly once with up_store_done (never from inside submit: use
 * up_store_done_later there).  The front may have answered the caller
 * already (deadline passed, cancelled): the backend does its work anyway
 * and the front then drops the result.  Values a backend fills point to
 * memory it gets with up_store_value_copy, freed with the operation.
 */
#ifndef UPESI_STORE_INT_H
#define UPESI_STORE_INT_H

#include "store.h"

typedef enum up_store_kind {
    UP_STORE_GET = 1,
    UP_STORE_MGET,
    UP_STORE_SET,
    UP_STORE_DEL,
    UP_STORE_INCR,
    UP_STORE_MINCR,
    UP_STORE_EXPIRE,
    UP_STORE_TTL,
    UP_STORE_COUNT
} up_store_kind;

struct upesi_store_op {
    up_store_kind kind;
    size_t n;                   /* keys (COUNT: 0, one answer)          */
    char **keys;                /* "plugin:key", NUL-terminated         */
    size_t *klens;
    char *prefix;               /* "plugin:" (COUNT)                    */
    long long *by;              /* INCR, MINCR                          */
    char *data;                 /* SET                                  */
    size_t len;
    long long ttl_ms;           /* SET, INCR, MINCR, EXPIRE; 0 = none   */

    upesi_store_fn fn;
    void *arg;
    int status;                 /* the backend's answer                 */
    upesi_store_value *values;  /* n entries (1 for COUNT)              */
    char *slots;                /* short values' bytes, UP_STORE_SLOT
                                   each, value i at slots + i * SLOT   */

    uint64_t deadline;          /* uv_now + store_timeout               */
    int answered;               /* the caller has had its callback      */
    int cancelled;
    int with_backend;           /* submitted, not yet done              */
    int backend_flags;          /* the backend's own                    */
    int sim_incr;               /* -bh: an incr sent as a read (answer) */
    struct upesi_store_op *prev, *next;     /* the front's waiting list */
    struct upesi_store_op *qnext;           /* a backend's own queue    */
};

typedef struct up_store_backend {
    const char *name;
    /* open (in the worker); 0, or -1 after logging (calls then fail) */
    int (*start)(uv_loop_t *loop, const up_store_params *p);
    void (*submit)(upesi_store_op *op);
    /* close; operations still with the backend come back done */
    void (*stop)(void);
} up_store_backend;

extern const up_store_backend up_store_lmdb;
extern const up_store_backend up_store_redis;

/* The backend is done with op (status: 0 or -errno).  Not from inside
 * submit. */
void up_store_done(upesi_store_op *op, int status);
/* The same, delivered from the loop shortly (for answers known inside
 * submit: the backend is down). */
void up_store_done_later(upesi_store_op *op, int status);
/* values[i].data = a copy of data (NUL-terminated); -ENOMEM.  A value
 * shorter than UP_STORE_SLOT goes in the operation's slots (one
 * allocation for all of a batch read's counters), a longer one in its own
 * allocation. */
#define UP_STORE_SLOT 32
int up_store_value_copy(upesi_store_op *op, size_t i, const void *data,
                        size_t len);
/* The whole decimal number in data[0..len), or -EINVAL. */
int up_store_parse_num(const void *data, size_t len, long long *out);
/* wall clock, milliseconds since the epoch (expiry shared across hosts
 * and restarts) */
uint64_t up_store_now_ms(void);
/* the store's timeout and the loop, for backends */
uint64_t up_store_timeout_ms(void);

#endif
