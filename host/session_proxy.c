/*
 * session_proxy.c - the PROXY protocol (v1 and v2) on a listener marked
 * "proxy" (listen = 127.0.0.1:2525 proxy): a load balancer in front of
 * upesi sends the client's address before the client's first byte.
 *
 * The session waits for the header (UP_ST_PROXY) before anything else:
 * no greeting, no connect hook, no TLS handshake.  With the header in,
 * the client's address and port (and the address it connected to) become
 * the session's, so every plugin (conn info), the log and the Received
 * field see the client, not the balancer; the balancer's own address is
 * kept in the conn note "proxy.peer".  A v2 LOCAL header (the balancer's
 * health check) or a v1 UNKNOWN one keeps the real peer.  Bytes after the
 * header go on as the client's first input (a TLS ClientHello, or an
 * early talker's command).
 *
 * Only marked listeners parse it: elsewhere a "PROXY ..." line is an
 * unknown command like any other, so a client cannot claim an address.
 *
 * Fails: no valid header within proxy_timeout (5 s), or bytes that
 * are not one: 421 4.7.0 (in plain text; on an smtps address nothing,
 * the client speaks TLS) and the connection is closed, counted in
 * SMTP.Sessions.ProxyRefused.  No plugin hears of such a connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy.h"
#include "session.h"
#include "session_int.h"
#include "stats.h"
#include "tls.h"

static void proxy_refuse(up_session *s, const char *why)
{
    up_stats_add("SMTP.Sessions.ProxyRefused", 1);
    up_log(s->id, UPESI_LOG_NOTICE, "PROXY protocol: %s from %s", why,
           s->remote_ip);
    if (!s->implicit_tls)
        session_reply_fmt(s, 421, "4.7.0", "%s Error: %s",
                          s->cfg->hostname, why);
    session_close(s, "no valid PROXY header");
}

static void on_proxy_timeout(uv_timer_t *timer)
{
    proxy_refuse(timer->data, "no PROXY protocol header in time");
}

void session_proxy_start(up_session *s)
{
    s->state = UP_ST_PROXY;
    uv_timer_start(&s->timer, on_proxy_timeout,
                   (uint64_t)(s->cfg->proxy_timeout * 1000), 0);
}

/* The header's addresses become the session's. */
static void proxy_apply(up_session *s, const up_proxy_header *h)
{
    if (h->local) {
        up_log(s->id, UPESI_LOG_INFO, "PROXY v%d: %s, the peer %s is "
               "the client", h->version, h->version == 2 ? "LOCAL" :
               "UNKNOWN", s->remote_ip);
        return;
    }
    up_notes_set(&s->conn_notes, "proxy.peer", s->remote_ip);
    up_log(s->id, UPESI_LOG_INFO, "PROXY v%d: client %s port %d (to %s "
           "port %d) via %s", h->version, h->src_ip, h->src_port,
           h->dst_ip, h->dst_port, s->remote_ip);
    const char *src = h->src_ip;
    int v6 = h->is_ipv6;
    /* an IPv4 client written as IPv4-mapped IPv6 is an IPv4 client */
    if (v6 && !strncmp(src, "::ffff:", 7) && strchr(src, '.')) {
        src += 7;
        v6 = 0;
    }
    snprintf(s->remote_ip, sizeof s->remote_ip, "%s", src);
    s->info.remote_port = h->src_port;
    s->info.remote_is_ipv6 = v6;
    snprintf(s->local_ip, sizeof s->local_ip, "%s", h->dst_ip);
    s->info.local_port = h->dst_port;
}

void session_proxy_input(up_session *s, const char *buf, size_t len)
{
    if (s->proxy_buf == NULL &&
        (s->proxy_buf = malloc(UP_PROXY_MAX)) == NULL) {
        session_close(s, "out of memory");
        return;
    }
    size_t room = UP_PROXY_MAX - s->proxy_len;
    size_t take = len < room ? len : room;
    memcpy(s->proxy_buf + s->proxy_len, buf, take);
    s->proxy_len += take;
    up_proxy_header h;
    int n = up_proxy_parse(s->proxy_buf, s->proxy_len, &h);
    if (n == 0 && s->proxy_len < UP_PROXY_MAX)
        return;                 /* a valid beginning: wait for the rest */
    if (n <= 0) {
        proxy_refuse(s, "invalid PROXY protocol header");
        return;
    }
    uv_timer_stop(&s->timer);
    proxy_apply(s, &h);
    /* what followed the header: the client's own first bytes */
    size_t rest = s->proxy_len - (size_t)n + (len - take);
    char *more = rest ? malloc(rest) : NULL;
    if (rest && more == NULL) {
        session_close(s, "out of memory");
        return;
    }
    if (rest) {
        memcpy(more, s->proxy_buf + n, s->proxy_len - (size_t)n);
        memcpy(more + (s->proxy_len - (size_t)n), buf + take, len - take);
    }
    free(s->proxy_buf);
    s->proxy_buf = NULL;
    s->proxy_len = 0;
    s->state = UP_ST_CONNECT;
    session_begin(s);
    if (rest && s->state != UP_ST_CLOSING) {
        if (s->tls) {
            if (up_tls_feed(s->tls, more, rest) != 0)
                session_close(s, "TLS input overflow");
            else
                session_tls_pump(s);
        } else {
            session_received(s, more, rest);
        }
    }
    free(more);
}
