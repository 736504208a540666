/*
 * bayes_classify.h - the arithmetic of the verdict: Gary Robinson's f(w)
 * for each feature, combined with Fisher's inverse chi-square (as
 * SpamBayes, bogofilter and SpamAssassin).
 *
 *   p(w) = (s_w / S) / (s_w / S + h_w / H)      S, H: messages learned
 *   f(w) = (s * x + n * p(w)) / (s + n)         n = s_w + h_w
 *
 * Only features with |f(w) - 0.5| >= min_dev count, the max_tokens
 * farthest from 0.5 at most.  Then
 *   Sp = 1 - Q(-2 sum ln(1 - f), 2N),  Hm = 1 - Q(-2 sum ln f, 2N)
 *   prob = (1 + Sp - Hm) / 2
 * where Q is the chi-square survival function.  No evidence at all gives
 * 0.5.  Pure functions: nothing fails.
 */
#ifndef BAYES_CLASSIFY_H
#define BAYES_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

typedef struct bayes_params {
    double s;                    /* strength of the prior (0.1)           */
    double x;                    /* the prior for a feature never seen    */
    double min_dev;              /* |f - 0.5| below this is noise         */
    size_t max_tokens;           /* features combined at most             */
} bayes_params;

#define BAYES_PARAMS_DEFAULT {.s = 0.1, .x = 0.5, .min_dev = 0.1, \
                              .max_tokens = 60}

typedef struct bayes_count {
    uint32_t spam, ham;          /* messages learned that had the feature */
} bayes_count;

double bayes_feature_prob(const bayes_params *p, bayes_count c,
                          uint64_t nspam, uint64_t nham);
/* Q(x2, v): the probability that chi-square with v (even) degrees of
 * freedom exceeds x2. */
double bayes_chi2q(double x2, unsigned v);
/* The message's probability of being spam, from its features' counts;
 * *used (may be NULL) says how many features counted. */
double bayes_combine(const bayes_params *p, const bayes_count *counts,
                     size_t n, uint64_t nspam, uint64_t nham, size_t *used);

#endif
