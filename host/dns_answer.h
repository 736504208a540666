/*
 * dns_answer.h - DNS answers as plugins see them (upesi_dns_answer), and the
 * parser that makes one from a response on the wire.
 *
 * An answer is built once and shared: the cache holds a reference, every
 * query it is delivered to holds one.  All of it (records, strings) lives
 * in one allocation.
 *
 * The parser trusts nothing in the packet: every length is checked against
 * the buffer, names are expanded by c-ares (which bounds pointer loops),
 * and whatever does not parse makes the answer UPESI_DNS_ERROR.
 */
#ifndef UPESI_DNS_ANSWER_H
#define UPESI_DNS_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "upesi/plugin.h"

/* TTL limits in seconds: positive answers are kept at most a day; a
 * negative answer without an SOA to size it (RFC 2308) a short while. */
#define UP_DNS_MAX_TTL 86400
#define UP_DNS_MAX_NEG_TTL 10800
#define UP_DNS_DEFAULT_NEG_TTL 60
/* At most this many records are kept from one answer. */
#define UP_DNS_MAX_RECORDS 64

typedef struct up_dns_result {
    int refs;
    upesi_dns_answer answer;
    upesi_dns_record records[];  /* then the strings */
} up_dns_result;

/* A result with no records: status NXDOMAIN, TIMEOUT, ERROR, NODATA. */
up_dns_result *up_dns_result_status(int type, const char *name,
                                    upesi_dns_status status, uint32_t ttl);

/* A result with records (texts are copied). */
up_dns_result *up_dns_result_new(int type, const char *name,
                                 upesi_dns_status status, uint32_t ttl,
                                 const upesi_dns_record *records,
                                 size_t count);

up_dns_result *up_dns_result_ref(up_dns_result *r);
void up_dns_result_unref(up_dns_result *r);

/* Parse the response buf[0..len) to a query of `type` for `name`.  Never
 * NULL except out of memory.  Records come from the answer section when
 * their owner is the name asked or an alias of it (CNAME chain); the TTL is
 * the smallest on that chain; a negative answer takes its TTL from the SOA
 * in the authority section. */
up_dns_result *up_dns_parse(const unsigned char *buf, size_t len, int type,
                            const char *name);

/* The lower-case form of a query name without its trailing dot, checked:
 * 1..253 characters, labels of 1..63 printable non-blank characters.
 * 0, or -1 if it is not a name. */
int up_dns_name_normalize(const char *name, char *out, size_t outlen);

/* "192.0.2.7" + zone -> "7.2.0.192.zone"; IPv6 as nibbles; zone NULL =
 * in-addr.arpa / ip6.arpa.  0, -EINVAL (not an address) or -ENOSPC. */
int up_dns_ip_name(const char *ip, const char *zone, char *out,
                   size_t outlen);

#endif
