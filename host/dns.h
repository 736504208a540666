/*
 * dns.h - asynchronous DNS for plugins: c-ares driven by the libuv loop,
 * a TTL cache, queries tied to sessions (DESIGN.md 2, issue 4).
 *
 * One resolver per worker loop.  c-ares sockets are watched with uv_poll,
 * its retransmissions run from a uv_timer; nothing blocks and there are no
 * threads.  Every answer reaches its callback from the loop's check phase,
 * never from inside up_dns_lookup, so a plugin never sees its callback
 * before it has the query handle.
 *
 * Sessions are opaque keys here (the host passes its up_session pointer):
 * up_dns_session_end cancels what a session still has in flight, and holds
 * the session's reverse name, looked up once.
 *
 * Fails: a lookup that cannot start returns NULL; a server that does not
 * answer within dns_timeout gives UPESI_DNS_TIMEOUT; an answer that does
 * not parse gives UPESI_DNS_ERROR.  Nothing here exits the process.
 */
#ifndef UPESI_DNS_H
#define UPESI_DNS_H

#include <stddef.h>
#include <uv.h>

#include "upesi/plugin.h"

typedef struct up_dns_settings {
    const char *servers;        /* c-ares CSV ("127.0.0.1:5353,[::1]:53"),
                                   NULL = /etc/resolv.conf               */
    double timeout;             /* seconds a lookup may take            */
    size_t cache_size;          /* answers kept; 0 = no cache, and no
                                   sharing of identical lookups in flight */
} up_dns_settings;

/* Start the resolver on loop.  0, or -1 (logged). */
int up_dns_init(uv_loop_t *loop, const up_dns_settings *settings);
/* New settings (SIGHUP): lookups in flight finish on the old servers; the
 * cache is dropped when the servers change.  0, or -1 (logged; the old
 * settings stay). */
int up_dns_configure(const up_dns_settings *settings);
/* Stop: no callback runs after this. */
void up_dns_shutdown(void);

upesi_dns_query *up_dns_lookup(void *session, int type, const char *name,
                               upesi_dns_fn fn, void *arg);
/* The session's client name (see api->reverse_name); ip is the client's. */
upesi_dns_query *up_dns_reverse(void *session, const char *ip,
                                upesi_dns_fn fn, void *arg);
void up_dns_cancel(upesi_dns_query *query);
/* The session is closing: cancel its queries, forget its reverse name. */
void up_dns_session_end(void *session);

/* Lookups in flight (c-ares queries), for tests and stats. */
size_t up_dns_pending(void);

/* Check and normalise an smtp.ini dns_servers item ("IP", "IP:port",
 * "[IPv6]:port", "IPv6") to the c-ares CSV form.  0, or -1 with err. */
int up_dns_server_item(const char *item, char *out, size_t outlen,
                       char *err, size_t errlen);

#endif
