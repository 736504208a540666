/*
 * bayes_store.h - where the filter's knowledge lives: per-feature counts,
 * the two message totals, and the learned-message records, behind a small
 * interface so the backend can change without the filter noticing.
 *
 * Calls are asynchronous in shape: each takes a callback that is told
 * the outcome exactly once.  Two backends: the host's store service
 * (bayes_store_host.c), whose answers come later, on the loop, and where
 * a fleet on one Redis learns together; and, for a host without it, an
 * LMDB file the plugin opens itself (bayes_store_lmdb.c), whose answers
 * are ready at once (its callbacks run before the call returns).  Callers
 * handle both.
 *
 * A message is looked up with one batched read (all its features and the
 * totals).  Learning is one write: the learned record of the message's
 * digest says whether it was learned before, and as what, so that a
 * message learned twice counts once, and learned as the other class
 * moves its counts.
 *
 * Errors are 0 or a negative errno (-EIO, -ENOSPC, -ENOMEM, -EINVAL).
 */
#ifndef BAYES_STORE_H
#define BAYES_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "bayes_classify.h"

typedef enum bayes_class {
    BAYES_HAM = 0,
    BAYES_SPAM = 1
} bayes_class;

typedef struct bayes_totals {
    uint64_t spam, ham;          /* messages learned as each class        */
    uint64_t tokens;             /* features with a count (stats only)    */
} bayes_totals;

typedef enum bayes_learn_result {
    BAYES_LEARNED = 0,           /* counted now                           */
    BAYES_ALREADY,               /* learned as this class before: nothing */
    BAYES_MOVED,                 /* was the other class: moved            */
    BAYES_UNLEARNED,             /* unlearn: its counts taken back        */
    BAYES_NOT_LEARNED            /* unlearn of a message never learned    */
} bayes_learn_result;

#define BAYES_DIGEST_LEN 16

typedef struct bayes_store bayes_store;

/* counts[i] belongs to ids[i]; both valid during the callback only. */
typedef void (*bayes_lookup_fn)(int status, const bayes_count *counts,
                                size_t n, bayes_totals totals, void *arg);
typedef void (*bayes_learn_fn)(int status, bayes_learn_result result,
                               void *arg);
/* totals.tokens is BAYES_TOKENS_UNKNOWN when the backend cannot count */
typedef void (*bayes_stats_fn)(int status, bayes_totals totals, void *arg);
#define BAYES_TOKENS_UNKNOWN UINT64_MAX

/* A backend.  Each call returns 0 when fn runs (or ran: the LMDB file
 * answers before the call returns, the host's store later, on the loop),
 * or a negative errno, and then fn never runs. */
typedef struct bayes_store_ops {
    int async;                   /* answers come later, on the loop       */
    void (*close)(bayes_store *st);
    int (*sync)(bayes_store *st);
    int (*batch)(bayes_store *st, int on);
    int (*lookup)(bayes_store *st, const uint64_t *ids, size_t n,
                  bayes_lookup_fn fn, void *arg);
    int (*learn)(bayes_store *st, const uint64_t *ids, size_t n,
                 const unsigned char *digest, bayes_class cls, int unlearn,
                 bayes_learn_fn fn, void *arg);
    int (*stats)(bayes_store *st, bayes_stats_fn fn, void *arg);
} bayes_store_ops;

struct bayes_store {
    const bayes_store_ops *ops;  /* first member of every backend's struct */
};

/* The plugin's own LMDB file at path (a directory, created if missing):
 * for a host without the store service.  0 or a negative errno, with a
 * sentence in err. */
int bayes_store_open_lmdb(const char *path, bayes_store **out, char *err,
                          size_t errlen);
/* The host's store service (smtp.ini `store`: LMDB shared by the workers,
 * or one Redis for a fleet), keys under "bayes:".  NULL when the host has
 * none or out of memory. */
bayes_store *bayes_store_open_host(void);

static inline void bayes_store_close(bayes_store *st)
{
    if (st)
        st->ops->close(st);
}
/* Make learned counts durable now (the CLI, at its end; it commits an
 * open batch). */
static inline int bayes_store_sync(bayes_store *st)
{
    return st->ops->sync(st);
}
/* Batch mode on (1) or off (0): learns are grouped (the CLI learning a
 * mailbox); turning it off or bayes_store_sync commits.  Lookups do not
 * see a batch's learns until it is committed. */
static inline int bayes_store_batch(bayes_store *st, int on)
{
    return st->ops->batch(st, on);
}
static inline int bayes_store_lookup(bayes_store *st, const uint64_t *ids,
                                     size_t n, bayes_lookup_fn fn, void *arg)
{
    return st->ops->lookup(st, ids, n, fn, arg);
}
/* Learn (unlearn 0) or unlearn (1) a message as cls. */
static inline int bayes_store_learn(bayes_store *st, const uint64_t *ids,
                                    size_t n, const unsigned char *digest,
                                    bayes_class cls, int unlearn,
                                    bayes_learn_fn fn, void *arg)
{
    return st->ops->learn(st, ids, n, digest, cls, unlearn, fn, arg);
}
static inline int bayes_store_stats(bayes_store *st, bayes_stats_fn fn,
                                    void *arg)
{
    return st->ops->stats(st, fn, arg);
}
static inline int bayes_store_async(const bayes_store *st)
{
    return st->ops->async;
}

#endif
