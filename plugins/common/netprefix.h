/*
 * netprefix.h - a client's network as the fleet plugins key it (greylist,
 * karma): an IPv4 address cut to its /N (default 24), an IPv6 address to
 * its /M (default 64), written "192.0.2.0/24" or "2001:db8:1:2::/64".
 *
 * Not a plugin: part of build/plugins/libupesi_common.a.
 *
 * Fails: -1 when ip is not an address (nothing is written to out).
 */
#ifndef UPESI_NETPREFIX_H
#define UPESI_NETPREFIX_H

#include <stddef.h>

int netprefix(const char *ip, int v4_bits, int v6_bits, char *out,
              size_t outlen);

#endif
