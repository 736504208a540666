/*
 * store_num.c - the reader of a store value as an integer (what
 * store_incr writes: decimal, optional '-', no spaces), for the front
 * (store.c) and the lmdb backend.  It stands alone so that
 * fuzz/fuzz_store.c can link it.
 *
 * Fails: -EINVAL for anything but a whole decimal number within long long
 * (empty, a sign alone, another byte, 32 bytes or more, out of range).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>

#include "store_int.h"

int up_store_parse_num(const void *data, size_t len, long long *out)
{
    /* by hand: every value of a batch read is parsed, and strtoll's
     * copy, locale and errno were a tenth of a bayes lookup */
    const char *p = data, *e = p + len;
    int neg = p < e && *p == '-';
    p += neg;
    if (p == e || len >= 32)
        return -EINVAL;
    unsigned long long v = 0;
    const unsigned long long lim = neg ? (unsigned long long)LLONG_MAX + 1
                                       : (unsigned long long)LLONG_MAX;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *out = neg ? (v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN
                                                          : -(long long)v)
               : (long long)v;
    return 0;
}
