/*
 * bayes_store.h - where the filter's knowledge lives: per-feature counts,
 * the two message totals, and the learned-message records, behind a small
 * interface so the backend can change without the filter noticing.
 *
 * The counts are in the host's store (smtp.ini `store`: LMDB shared by
 * the workers of a host by default, or one Redis for a fleet, which then
 * learns together); bayes_store_host.c speaks to it.  Calls are
 * asynchronous: each takes a callback that is told the outcome exactly
 * once, later, on the loop.
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
    uint64_t old_spam, old_ham;  /* learned in format 1 (stats only)      */
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

/* The store of this process (the host's store service; keys under
 * "bayes:").  NULL when out of memory. */
bayes_store *bayes_store_open_host(void);
void bayes_store_close(bayes_store *st);

/* Each call returns 0 when fn will run (later, on the loop, exactly
 * once), or a negative errno, and then fn never runs. */
int bayes_store_lookup(bayes_store *st, const uint64_t *ids, size_t n,
                       bayes_lookup_fn fn, void *arg);
/* Learn (unlearn 0) or unlearn (1) a message as cls. */
int bayes_store_learn(bayes_store *st, const uint64_t *ids, size_t n,
                      const unsigned char *digest, bayes_class cls,
                      int unlearn, bayes_learn_fn fn, void *arg);
int bayes_store_stats(bayes_store *st, bayes_stats_fn fn, void *arg);

/* Learning many messages at once (the command line): one read of their
 * learned records, their counts summed by feature and written with one
 * increment per distinct feature (in calls of at most
 * UPESI_STORE_BATCH_MAX keys, all issued together: one transaction on
 * LMDB, one pipeline on Redis), then their records.  A message's copies
 * in one batch are judged in order, as if learned one after the other
 * (the second is BAYES_ALREADY, an unlearn's second BAYES_NOT_LEARNED).
 * items[i].result is set before fn runs with status 0; items and their
 * ids stay the caller's and must live until fn has run.  On a store error
 * every message of the batch counts as failed, and some of its counts
 * may have been written (as when a single learn fails between its counts
 * and its record). */
typedef struct bayes_learn_item {
    uint64_t *ids;               /* sorted, unique (bayes_features); past
                                    the store's batch, sampled in place  */
    size_t n;
    unsigned char digest[BAYES_DIGEST_LEN];
    bayes_learn_result result;   /* out                                  */
} bayes_learn_item;
typedef void (*bayes_batch_fn)(int status, void *arg);
#define BAYES_BATCH_MAX 1024     /* messages a batch                     */
int bayes_store_learn_batch(bayes_store *st, bayes_learn_item *items,
                            size_t count, bayes_class cls, int unlearn,
                            bayes_batch_fn fn, void *arg);

#endif
