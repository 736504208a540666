/*
 * bayes_features.c - OSB features and their ids (see bayes_features.h).
 *
 * The hash is a 64-bit multiply-xorshift over 8-byte words (the
 * finalizer of MurmurHash3): fast on short tokens, and collisions among a
 * few million features are rare enough (birthday bound ~ 2^-40 a pair
 * set) not to matter to a statistical filter.
 *
 * How it fails: past BAYES_MAX_FEATURES ids a message's further tokens
 * are ignored; out of memory, the ids stop growing and
 * bayes_features_message says -ENOMEM.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/mime_guard.h"
#include "bayes_features.h"
#include "bayes_tokenize.h"

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t bayes_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h = mix64(h ^ k) + 0x9e3779b97f4a7c15ULL;
        p += 8;
        len -= 8;
    }
    uint64_t k = 0;
    for (size_t i = 0; i < len; i++)
        k |= (uint64_t)p[i] << (8 * i);
    return mix64(h ^ k ^ 0x2545f4914f6cdd1dULL);
}

void bayes_features_init(bayes_features *f, int osb_window)
{
    memset(f, 0, sizeof *f);
    f->osb_window = osb_window > BAYES_OSB_WINDOW ? BAYES_OSB_WINDOW
                                                  : osb_window;
}

void bayes_features_free(bayes_features *f)
{
    free(f->ids);
    f->ids = NULL;
    f->n = f->cap = 0;
}

static void add_id(bayes_features *f, uint64_t id)
{
    if (f->n == f->cap) {
        if (f->cap >= BAYES_MAX_FEATURES || f->oom)
            return;
        size_t cap = f->cap ? f->cap * 2 : 512;
        if (cap > BAYES_MAX_FEATURES)
            cap = BAYES_MAX_FEATURES;
        uint64_t *ids = realloc(f->ids, cap * sizeof *ids);
        if (ids == NULL) {
            f->oom = 1;                 /* keep what fits: -ENOMEM later */
            return;
        }
        f->ids = ids;
        f->cap = cap;
    }
    f->ids[f->n++] = id;
}

void bayes_features_token(const char *tok, size_t len, void *arg)
{
    bayes_features *f = arg;
    if (tok == NULL) {           /* end of a field: no pair crosses it */
        f->in_window = 0;
        return;
    }
    uint64_t h = bayes_hash64(tok, len, 0);
    add_id(f, h);
    if (f->osb_window < 2)
        return;
    size_t span = (size_t)f->osb_window - 1;
    size_t have = f->in_window < span ? f->in_window : span;
    /* window[0] is the token just before this one.  A pair's id begins
     * with its later token's top 32 bits, so that in the store's sorted
     * keys a token's pairs sit beside it, and a message's lookups, sorted,
     * land on pages the lookup before just read; the rest is the pair's
     * own hash (32 bits: two pairs of one token share an id about once in
     * 2^32 pairs of that token). */
    for (size_t d = 0; d < have; d++)
        add_id(f, (h & 0xffffffff00000000ULL) |
                  (mix64(f->window[d] * 0x9e3779b97f4a7c15ULL ^
                         (h + (uint64_t)(d + 1) * 0x632be59bd9b4e019ULL)) &
                   0xffffffffULL));
    memmove(f->window + 1, f->window,
            (BAYES_OSB_WINDOW - 1) * sizeof f->window[0]);
    f->window[0] = h;
    if (f->in_window < BAYES_OSB_WINDOW)
        f->in_window++;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Most significant digit first: a counting pass on up to 11 bits just
 * below the bits every id of the range shares, then each bucket alike,
 * and insertion sort for the small ones.  Sample ranks are hashes, spread
 * evenly: one pass leaves buckets of about one.  Feature ids are not: a
 * pair's id begins with its later token's top 32 bits
 * (bayes_features_token), so a common word and its pairs crowd one
 * bucket, where the next pass looks at the pair hash's own bits (a single
 * pass and insertion sort was quadratic there: a message of one word said
 * 60,000 times took 86 ms).  Equal ids (a word said twice) end a bucket
 * at once. */
#define SORT_SMALL 24
#define SORT_DIGIT_BITS 11

static void insertion_sort(uint64_t *ids, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint64_t v = ids[i];
        size_t j = i;
        while (j > 0 && ids[j - 1] > v) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = v;
    }
}

static void radix_sort(uint64_t *ids, uint64_t *tmp, size_t n)
{
    if (n <= SORT_SMALL) {
        insertion_sort(ids, n);
        return;
    }
    uint64_t diff = 0;
    for (size_t i = 1; i < n; i++)
        diff |= ids[i] ^ ids[0];
    if (diff == 0)
        return;                               /* all equal */
    unsigned top = 63 - (unsigned)__builtin_clzll(diff);
    unsigned bits = 1;
    while (((size_t)1 << bits) < n && bits < SORT_DIGIT_BITS)
        bits++;
    if (bits > top + 1)
        bits = top + 1;
    unsigned shift = top + 1 - bits;
    size_t nb = (size_t)1 << bits;
    uint64_t mask = nb - 1;
    size_t *end = calloc(nb + 1, sizeof *end);
    if (end == NULL) {
        qsort(ids, n, sizeof *ids, cmp_u64);
        return;
    }
    for (size_t i = 0; i < n; i++)
        end[((ids[i] >> shift) & mask) + 1]++;
    for (size_t b = 0; b < nb; b++)
        end[b + 1] += end[b];
    memcpy(tmp, ids, n * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        ids[end[(tmp[i] >> shift) & mask]++] = tmp[i];
    /* end[b] is now where bucket b ends; tmp is free for the buckets */
    for (size_t b = 0, from = 0; b < nb; from = end[b], b++)
        if (end[b] - from > 1)
            radix_sort(ids + from, tmp + from, end[b] - from);
    free(end);
}

static void sort_ids(uint64_t *ids, size_t n)
{
    if (n < 2)
        return;
    uint64_t *tmp = malloc(n * sizeof *tmp);
    if (tmp == NULL) {
        qsort(ids, n, sizeof *ids, cmp_u64);
        return;
    }
    radix_sort(ids, tmp, n);
    free(tmp);
}

void bayes_features_finish(bayes_features *f)
{
    if (f->n == 0)
        return;
    sort_ids(f->ids, f->n);
    size_t out = 1;
    for (size_t i = 1; i < f->n; i++)
        if (f->ids[i] != f->ids[out - 1])
            f->ids[out++] = f->ids[i];
    f->n = out;
}

/* The rank of an id in the sample: a second hash, so that a sample is
 * spread over the message's features whatever their ids' layout (a
 * pair's id begins with its token's bits: the lowest ids would be a few
 * whole tokens with all their pairs). */
static uint64_t sample_rank(uint64_t id)
{
    return mix64(id ^ 0x5851f42d4c957f2dULL);
}

size_t bayes_features_sample(const uint64_t *ids, size_t n, size_t k,
                             uint64_t *out)
{
    if (k >= n) {
        memmove(out, ids, n * sizeof *ids);
        return n;
    }
    uint64_t *rank = malloc(n * sizeof *rank);
    if (rank == NULL) {           /* the lowest ids: a sample still */
        memmove(out, ids, k * sizeof *ids);
        return k;
    }
    for (size_t i = 0; i < n; i++)
        rank[i] = sample_rank(ids[i]);
    sort_ids(rank, n);
    uint64_t last = rank[k - 1];
    free(rank);
    size_t m = 0;
    for (size_t i = 0; i < n && m < k; i++)
        if (sample_rank(ids[i]) <= last)
            out[m++] = ids[i];
    return m;
}

int bayes_features_message(bayes_features *f, const char *msg, size_t len)
{
    size_t parse = mime_guard_cut(msg, len, &f->cut);
    int rc = bayes_tokenize(msg, parse, bayes_features_token, f);
    bayes_features_finish(f);
    if (rc == 0 && f->oom)
        rc = -ENOMEM;
    return rc;
}

/* The value of the first Message-ID field of the header section, or NULL;
 * *vlen its length without surrounding white space. */
static const char *find_message_id(const char *msg, size_t len, size_t *vlen)
{
    size_t i = 0;
    while (i < len) {
        const char *line = msg + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - line) : len - i;
        if (ll == 0 || (ll == 1 && line[0] == '\r'))
            return NULL;             /* end of the header section */
        if (ll > 11 && strncasecmp(line, "Message-ID:", 11) == 0) {
            const char *v = line + 11, *e = line + ll;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e > v) {
                *vlen = (size_t)(e - v);
                return v;
            }
        }
        i += ll + 1;
    }
    return NULL;
}

static const char *find_body(const char *msg, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (msg[i] == '\n' &&
            (msg[i + 1] == '\n' ||
             (msg[i + 1] == '\r' && i + 2 < len && msg[i + 2] == '\n')))
            return msg + i + 1;
    return msg;
}

void bayes_message_digest(const char *msg, size_t len, unsigned char *out)
{
    size_t vlen = 0;
    const char *id = find_message_id(msg, len, &vlen);
    uint64_t a, b;
    if (id) {
        a = bayes_hash64(id, vlen, 0x6d6964);
        b = bayes_hash64(id, vlen, 0x6d69642b);
    } else {
        const char *body = find_body(msg, len);
        /* line ends as stored (CRLF) or as in a file (LF) are one body */
        uint64_t h1 = 0x626f6479, h2 = 0x626f64792b;
        const char *p = body, *end = msg + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *e = nl ? nl : end;
            size_t ll = (size_t)(e - p);
            if (ll && p[ll - 1] == '\r')
                ll--;
            h1 = bayes_hash64(p, ll, h1);
            h2 = bayes_hash64(p, ll, h2);
            p = nl ? nl + 1 : end;
        }
        a = h1;
        b = h2;
    }
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}
