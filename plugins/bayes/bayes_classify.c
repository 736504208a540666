/*
 * bayes_classify.c - Robinson-Fisher combining (see bayes_classify.h).
 *
 * The chi-square tail is summed in log space (terms exp(-m + i ln m -
 * ln i!)), so that a message with hundreds of strong features neither
 * underflows exp(-m) to 0 too early nor overflows a term.
 */
#include <math.h>
#include <stdlib.h>

#include "bayes_classify.h"

double bayes_feature_prob(const bayes_params *p, bayes_count c,
                          uint64_t nspam, uint64_t nham)
{
    double n = (double)c.spam + (double)c.ham;
    if (n == 0)
        return p->x;
    double rs = (double)c.spam / (double)(nspam ? nspam : 1);
    double rh = (double)c.ham / (double)(nham ? nham : 1);
    double pw = rs + rh > 0 ? rs / (rs + rh) : p->x;
    return (p->s * p->x + n * pw) / (p->s + n);
}

double bayes_chi2q(double x2, unsigned v)
{
    if (x2 <= 0)
        return 1.0;
    double m = x2 / 2.0, lm = log(m), sum = 0;
    for (unsigned i = 0; i < v / 2; i++)
        sum += exp(-m + i * lm - lgamma((double)i + 1.0));
    return sum < 1.0 ? sum : 1.0;
}

typedef struct clue {
    double f, dev;
} clue;

/* Put the k clues of largest deviation first (in no order): selection
 * with a three-way partition (many clues share a deviation: features seen
 * once in one class), linear on average; the combining does not care
 * about order. */
static void select_strongest(clue *c, size_t n, size_t k)
{
    size_t lo = 0, hi = n;       /* the boundary k lies in [lo, hi] */
    while (hi - lo > 1) {
        double pv = c[lo + (hi - lo) / 2].dev;
        /* [lo, lt) > pv, [lt, i) == pv, [gt, hi) < pv */
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            clue t = c[i];
            if (t.dev > pv) {
                c[i++] = c[lt];
                c[lt++] = t;
            } else if (t.dev < pv) {
                c[i] = c[--gt];
                c[gt] = t;
            } else {
                i++;
            }
        }
        if (k <= lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return;              /* k falls among equals: any will do */
    }
}

double bayes_combine(const bayes_params *p, const bayes_count *counts,
                     size_t n, uint64_t nspam, uint64_t nham, size_t *used)
{
    clue *clues = malloc((n ? n : 1) * sizeof *clues);
    size_t k = 0;
    if (clues) {
        for (size_t i = 0; i < n; i++) {
            double f = bayes_feature_prob(p, counts[i], nspam, nham);
            double dev = fabs(f - 0.5);
            if (dev >= p->min_dev)
                clues[k++] = (clue){f, dev};
        }
        if (k > p->max_tokens) {
            select_strongest(clues, k, p->max_tokens);
            k = p->max_tokens;
        }
    }
    if (used)
        *used = k;
    if (k == 0) {
        free(clues);
        return 0.5;
    }
    double ln_ham = 0, ln_spam = 0;
    for (size_t i = 0; i < k; i++) {
        ln_ham += log(clues[i].f);
        ln_spam += log(1.0 - clues[i].f);
    }
    free(clues);
    double sp = 1.0 - bayes_chi2q(-2.0 * ln_spam, 2 * (unsigned)k);
    double hm = 1.0 - bayes_chi2q(-2.0 * ln_ham, 2 * (unsigned)k);
    return (1.0 + sp - hm) / 2.0;
}
