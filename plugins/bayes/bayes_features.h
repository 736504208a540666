/*
 * bayes_features.h - tokens into the 64-bit feature ids the filter counts.
 *
 * Each token is a feature, and so is each orthogonal sparse bigram (OSB,
 * Siefkes et al. 2004, as rspamd): the token paired with each of the
 * window - 1 tokens before it in the same field (bayes.ini osb_window,
 * at most BAYES_OSB_WINDOW), with the distance between them as part of
 * the pair ("free ... money @2").  A pair's id does not depend on the
 * window: a smaller window reads a subset of what a larger one learned.
 * Ids are a 64-bit hash, so a count store never sees the words; a
 * pair's id begins with its later token's top 32 bits (locality in the
 * store's sorted keys: docs/plugins/bayes.md; the store's keys are format
 * 2 for that reason, bayes_store_host.c).  A
 * message's ids are sorted and unique: a word said ten times counts once
 * (Graham, Robinson, bogofilter).
 *
 * Fails only for want of memory (-ENOMEM).
 */
#ifndef BAYES_FEATURES_H
#define BAYES_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#define BAYES_OSB_WINDOW 5      /* the largest window                */
/* raw ids a message (before duplicates go; the array doubles from 512 up
 * to this), the rest is ignored: ~6,500 tokens of text with OSB */
#define BAYES_MAX_FEATURES 32768

typedef struct bayes_features {
    uint64_t *ids;
    size_t n, cap;
    /* the sliding window of the current field: hashes of the last tokens */
    uint64_t window[BAYES_OSB_WINDOW];
    size_t in_window;
    int osb_window;                  /* tokens a pair spans; 1: no pairs  */
    int oom;                         /* the array could not grow          */
    int cut;                         /* why the parse stopped short, or 0 */
} bayes_features;

/* osb_window: 1 (or less) single tokens only, else 2 to BAYES_OSB_WINDOW
 * (more is BAYES_OSB_WINDOW) */
void bayes_features_init(bayes_features *f, int osb_window);
void bayes_features_free(bayes_features *f);
/* A bayes_token_fn: arg is the bayes_features. */
void bayes_features_token(const char *tok, size_t len, void *arg);
/* Sort and unique the ids; after it f->ids[0..n) is the message. */
void bayes_features_finish(bayes_features *f);
/* A sample of k of the sorted ids[0..n) into out (room for min(k, n);
 * out may be ids itself), still sorted, the same for the same ids: those
 * whose second hash is among the k lowest.  Returns how many. */
size_t bayes_features_sample(const uint64_t *ids, size_t n, size_t k,
                             uint64_t *out);
/* The whole path: message bytes to ids.  0 or -ENOMEM.  GMime parses the
 * message up to mime_guard's cut (plugins/common/mime_guard.h: a thousand
 * lines beginning with "--", a header section of 256K); f->cut says why
 * the rest was left out (MIME_GUARD_LINES, _HEADER), 0 if it was not. */
int bayes_features_message(bayes_features *f, const char *msg, size_t len);
/* The 64-bit hash of bytes (for message digests of the learned record
 * as well: two different seeds give a 128-bit digest). */
uint64_t bayes_hash64(const void *data, size_t len, uint64_t seed);

/* A message's identity for the learned record (16 bytes): its
 * Message-ID when it has one, else its body (what follows the header
 * section), so that headers added in transit (Received, X-Spam-Bayes) do
 * not make it another message. */
void bayes_message_digest(const char *msg, size_t len, unsigned char *out);

#endif
