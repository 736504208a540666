/*
 * hostmatch.h - host and domain lists as a Domino administrator writes them,
 * shared by the plugins that decide on the connecting host or on a domain
 * (relay, private_lists, connection_checks; sender uses its glob).
 *
 * An item of a list is one of:
 *   192.0.2.7, 2001:db8::7     an address (IPv6 compared as bytes, so any
 *                              spelling matches; [192.0.2.7] is accepted)
 *   192.0.2.0/24, 2001:db8::/32   a CIDR range
 *   192.168.*.*, 10.*          IPv4 with '*' for whole octets; a trailing
 *                              '*' covers the octets that follow
 *   mail.example.com           a host or domain name, case-insensitive
 *   *.example.com, mx*.example.com   a name with '*' wildcards ('*' matches
 *                              any run of characters, dots included)
 *   *                          everything
 * A value holds any number of items separated by commas or blanks.
 *
 * Names match only a name: the caller passes the connecting host's
 * forward-confirmed name (api->reverse_name), or NULL when it has none, and
 * then a list's name items match nothing (an address item still does).
 *
 * Not a plugin: plugins/common/ is compiled once into the static library
 * build/plugins/libupesi_common.a, which every plugin links (the linker
 * takes the objects it uses).  Functions are hidden like the rest of a
 * plugin (-fvisibility=hidden).
 *
 * Fails: hostmatch_add returns -1 with a message naming the bad item;
 * allocation failure is reported the same way.
 */
#ifndef UPESI_HOSTMATCH_H
#define UPESI_HOSTMATCH_H

#include <stddef.h>

#include "upesi/plugin.h"

/* What a list may hold. */
#define HOSTMATCH_ADDRESSES 1   /* addresses, CIDR, IPv4 wildcards */
#define HOSTMATCH_NAMES     2   /* names and name wildcards        */
#define HOSTMATCH_ANY       (HOSTMATCH_ADDRESSES | HOSTMATCH_NAMES)

typedef struct hostmatch_list hostmatch_list;

/* An empty list that accepts the kinds of items `kinds` says. */
hostmatch_list *hostmatch_new(int kinds);
void hostmatch_free(hostmatch_list *list);

/* Add every item of value (comma or blank separated).  Returns 0, or -1
 * with a message in err. */
int hostmatch_add(hostmatch_list *list, const char *value, char *err,
                  size_t errlen);

/* A host list split by form: each item of value goes to addrs when it is
 * an address, range, wildcard or '*' (matched against the client's
 * address), to names when it is a name (matched against its confirmed
 * name).  Returns 0, or -1 with a message in err naming the bad item. */
int hostmatch_add_hosts(hostmatch_list *addrs, hostmatch_list *names,
                        const char *value, char *err, size_t errlen);

/* Number of items. */
size_t hostmatch_count(const hostmatch_list *list);

/* Does an address (textual IPv4 or IPv6) match an address item or '*'?
 * An IPv4-mapped IPv6 address (::ffff:192.0.2.7) matches as IPv4. */
int hostmatch_ip(const hostmatch_list *list, const char *ip);

/* Does a name (host or domain; a trailing dot is ignored) match a name
 * item or '*'? */
int hostmatch_name(const hostmatch_list *list, const char *name);

/* Names with bytes over 127 (IDN U-labels), in lists and when matched,
 * are compared in their A-label form through api->domain_to_ascii (ABI
 * 2.3); a plugin calls this from init.  Without it (an older host) such
 * a name is refused in a list and matches nothing. */
void hostmatch_set_idna(const upesi_api *api);
/* A name (labels may be '*' patterns, but not mixed with bytes over 127)
 * in A-labels, lower case.  0, or -1 (not a valid IDN, no conversion, out
 * too small). */
int hostmatch_to_alabels(const char *in, char *out, size_t outlen);

/* Case-insensitive glob with '*' only ('*' matches any run of
 * characters); pat is lower case. */
int hostmatch_glob(const char *pat, const char *str);

/* The connecting host: its address, or its name when known (name may be
 * NULL). */
int hostmatch_host(const hostmatch_list *list, const char *ip,
                   const char *name);

/* Ask for the connecting host's forward-confirmed name
 * (api->reverse_name): done gets the answer once, on the loop, unless the
 * host gives up on the call first (the query is then cancelled).  Returns
 * 0 when asked (the hook answers UPESI_PENDING, done resumes the call),
 * -1 when the lookup could not start. */
int hostmatch_ask_name(const upesi_api *api, upesi_call *call,
                       void (*done)(upesi_call *call,
                                    const upesi_dns_answer *a));

#endif
