/*
 * netprefix.c - a client address cut to its network (see netprefix.h).
 *
 * Fails: -1 for a string that is not an IPv4 or IPv6 address.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "netprefix.h"

static void netprefix_mask(unsigned char *a, size_t len, int bits)
{
    for (size_t i = 0; i < len; i++) {
        int keep = bits - (int)i * 8;
        if (keep >= 8)
            continue;
        a[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
}

int netprefix(const char *ip, int v4_bits, int v6_bits, char *out,
              size_t outlen)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN];
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    int bits = family == AF_INET6 ? v6_bits : v4_bits;
    if (inet_pton(family, ip, a) != 1)
        return -1;
    netprefix_mask(a, family == AF_INET6 ? 16 : 4, bits);
    if (inet_ntop(family, a, text, sizeof text) == NULL)
        return -1;
    snprintf(out, outlen, "%s/%d", text, bits);
    return 0;
}
