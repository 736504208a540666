/*
 * proxy.h - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer sends before the client's first
 * byte, telling the real client's address.
 *
 * A pure parser over the bytes received so far: no I/O, no allocation.
 * It says "need more", "invalid" or "complete after N bytes", so the
 * session can feed it a read at a time and hand the bytes after the
 * header (a TLS ClientHello, an early talker's command) on unchanged.
 *
 * Fails: any deviation from the spec is invalid (the session closes the
 * connection): a v1 line longer than 107 bytes or not ending in CRLF,
 * ports or addresses that do not parse, a v2 version other than 2, a
 * command other than LOCAL or PROXY, a length too short for its family.
 */
#ifndef UPESI_PROXY_H
#define UPESI_PROXY_H

#include <stddef.h>

/* The longest header taken: v1 is at most 107 bytes; v2 is 16 bytes and
 * a length of up to 65535, but what HAProxy sends (addresses and a few
 * TLVs) fits far below this. */
#define UP_PROXY_MAX 1024

typedef struct up_proxy_header {
    int version;            /* 1 or 2                                      */
    int local;              /* v2 LOCAL, or v1 UNKNOWN / v2 UNSPEC, UNIX:
                               no client address; keep the real peer      */
    int is_ipv6;
    char src_ip[46], dst_ip[46];
    int src_port, dst_port;
} up_proxy_header;

/* Parse the start of a connection's input.  Returns the header's length
 * (> 0) with *out filled, 0 when more bytes are needed (len is short of a
 * complete header, and what is there is a valid beginning), -1 when it is
 * not a valid header. */
int up_proxy_parse(const unsigned char *buf, size_t len,
                   up_proxy_header *out);

#endif
