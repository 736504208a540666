/*
 * private_lists.c - Domino's private whitelist and private blacklist
 * filters, at connect (DESIGN.md 6, issue 4).  Runs before dnswl and dnsbl.
 *
 * Order, as Domino: the private whitelist first; a hit there skips the
 * private blacklist, the DNS whitelists and the DNS blacklists (conn note
 * "whitelisted").  Then the private blacklist; a hit there is decided
 * before any DNS list is asked (conn note "blacklisted": dnswl and dnsbl
 * skip).  Whitelisted hosts remain subject to relay, sender and recipient
 * controls.
 *
 * Hosts are IPv4 / IPv6 addresses, CIDR ranges, IPv4 wildcards
 * (192.168.*.*), host names and name wildcards (*.example.net); a name
 * matches the client's forward-confirmed PTR name, looked up only when a
 * list holds names and no address item decided first.
 *
 * private_lists.ini:
 *   [whitelist]
 *   hosts = 192.0.2.0/24, *.partner.example
 *   action = skip | log | tag          (default skip: silently)
 *   [blacklist]
 *   hosts = 198.51.100.*, spammer.example
 *   action = log | tag | reject        (default log)
 *   message = Your host %s was blacklisted       (%s: the IP)
 *
 * Tags: X-DNSWL-Site: PrivateWhitelist / X-DNSBL-Site: PrivateBlacklist on
 * each message, txn notes "dnswl.site" / "dnsbl.site".  A reject is a
 * connect DENY: the host greets, then answers every MAIL FROM with 554
 * 5.7.1 and `message`.
 *
 * Statistics: SMTP.PrivateWL.TotalHits, SMTP.PrivateBL.TotalHits.
 *
 * Fails: a host name that cannot be looked up does not match (an address
 * item still does).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/hostmatch.h"
#include "../common/settings.h"
#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *pl_ctx;

enum { WL_SKIP, WL_LOG, WL_TAG };
enum { BL_LOG, BL_TAG, BL_REJECT };

#define PL_WHITELIST "PrivateWhitelist"
#define PL_BLACKLIST "PrivateBlacklist"
#define PL_DEFAULT_MESSAGE "Your host %s was blacklisted"

typedef struct pl_list {
    hostmatch_list *addrs;      /* addresses, ranges, wildcards, '*' */
    hostmatch_list *names;      /* names, matched against the PTR name */
    int action;
} pl_list;

typedef struct pl_config {
    pl_list wl, bl;
    char *message;
} pl_config;

/* ---------------------------------------------------------------------- */
/* settings                                                                */

static void pl_config_free(void *p)
{
    pl_config *c = p;
    if (c == NULL)
        return;
    hostmatch_free(c->wl.addrs);
    hostmatch_free(c->wl.names);
    hostmatch_free(c->bl.addrs);
    hostmatch_free(c->bl.names);
    free(c->message);
    free(c);
}

static void *pl_config_new(void)
{
    pl_config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->wl.action = WL_SKIP;
    c->bl.action = BL_LOG;
    c->wl.addrs = hostmatch_new(HOSTMATCH_ADDRESSES);
    c->wl.names = hostmatch_new(HOSTMATCH_NAMES);
    c->bl.addrs = hostmatch_new(HOSTMATCH_ADDRESSES);
    c->bl.names = hostmatch_new(HOSTMATCH_NAMES);
    c->message = strdup(PL_DEFAULT_MESSAGE);
    if (!c->wl.addrs || !c->wl.names || !c->bl.addrs || !c->bl.names ||
        !c->message) {
        pl_config_free(c);
        return NULL;
    }
    return c;
}

static int pl_set_hosts(pl_list *l, const char *value, char *err,
                        size_t errlen)
{
    return hostmatch_add_hosts(l->addrs, l->names, value, err, errlen);
}

static int pl_set_wl_hosts(void *p, const char *value, char *err,
                           size_t errlen)
{
    return pl_set_hosts(&((pl_config *)p)->wl, value, err, errlen);
}

static int pl_set_bl_hosts(void *p, const char *value, char *err,
                           size_t errlen)
{
    return pl_set_hosts(&((pl_config *)p)->bl, value, err, errlen);
}

static int pl_set_message(void *p, const char *value, char *err,
                          size_t errlen)
{
    pl_config *c = p;
    int n = 0, bad = strpbrk(value, "\r\n") != NULL;
    for (const char *q = value; *q && !bad; q++)
        if (*q == '%') {
            if (q[1] == '%' || (q[1] == 's' && ++n == 1))
                q++;
            else
                bad = 1;
        }
    if (bad) {
        snprintf(err, errlen, "one line, at most one %%s (the IP), %%%% for "
                 "a percent sign");
        return -1;
    }
    return settings_string(&c->message, value, err, errlen);
}

static const char *const pl_wl_actions[] = { "skip", "log", "tag", NULL };
static const char *const pl_bl_actions[] = { "log", "tag", "reject", NULL };

/* Every key lives in a section ([whitelist], [blacklist]); the host reads
 * them all through this table. */
static const upesi_setting pl_settings[] = {
    { "whitelist.hosts", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,
      pl_set_wl_hosts, "", "clients never blacklisted here nor by DNS "
      "lists: addresses, CIDR ranges, 192.168.*.*, names and *.names "
      "(the forward-confirmed PTR name); repeated lines add" },
    { "whitelist.action", UPESI_SETTING_ENUM, offsetof(pl_config, wl.action),
      0, 0, pl_wl_actions, NULL, "skip", "on a hit: `skip` silently, `log` "
      "it, or `tag` each message (X-DNSWL-Site: PrivateWhitelist)" },
    { "blacklist.hosts", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,
      pl_set_bl_hosts, "", "clients refused or tagged (the same forms as "
      "[whitelist] hosts)" },
    { "blacklist.action", UPESI_SETTING_ENUM, offsetof(pl_config, bl.action),
      0, 0, pl_bl_actions, NULL, "log", "on a hit: `log` it, `tag` each "
      "message (X-DNSBL-Site: PrivateBlacklist), or `reject` every MAIL "
      "FROM with 554 5.7.1 and `message`" },
    { "blacklist.message", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,
      pl_set_message, PL_DEFAULT_MESSAGE, "the reject text: one line, "
      "`%s` is the client's IP" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

/* ---------------------------------------------------------------------- */
/* the decision                                                            */

static void whitelisted(upesi_call *call, const pl_config *c, const char *ip,
                        const char *by)
{
    api->stat_add(pl_ctx, "SMTP.PrivateWL.TotalHits", 1);
    api->note_set(call, UPESI_SCOPE_CONN, "whitelisted", PL_WHITELIST);
    if (c->wl.action != WL_SKIP)
        api->log_call(call, UPESI_LOG_NOTICE, "%s%s%s in the private whitelist%s",
                 ip, by ? " " : "", by ? by : "",
                 c->wl.action == WL_TAG ? ": tagged" : "");
    if (c->wl.action == WL_TAG)
        api->note_set(call, UPESI_SCOPE_CONN, "private_lists.wl_tag",
                      PL_WHITELIST);
}

static upesi_verdict blacklisted(upesi_call *call, const pl_config *c,
                                 const char *ip, const char *by)
{
    static const char *const what[] = { "logged", "tagged", "rejected" };
    api->stat_add(pl_ctx, "SMTP.PrivateBL.TotalHits", 1);
    api->note_set(call, UPESI_SCOPE_CONN, "blacklisted", PL_BLACKLIST);
    api->log_call(call, UPESI_LOG_NOTICE, "%s%s%s in the private blacklist: %s",
             ip, by ? " " : "", by ? by : "", what[c->bl.action]);
    if (c->bl.action == BL_TAG)
        api->note_set(call, UPESI_SCOPE_CONN, "private_lists.bl_tag",
                      PL_BLACKLIST);
    if (c->bl.action != BL_REJECT)
        return UPESI_CONT;
    char msg[512];
    size_t n = 0;
    for (const char *p = c->message; *p && n + 1 < sizeof msg; p++) {
        if (p[0] == '%' && (p[1] == '%' || p[1] == 's')) {
            n += (size_t)snprintf(msg + n, sizeof msg - n, "%s",
                                  p[1] == 's' ? ip : "%");
            if (n >= sizeof msg)
                n = sizeof msg - 1;
            p++;
        } else {
            msg[n++] = *p;
        }
    }
    msg[n] = '\0';
    api->reply(call, 554, "5.7.1", "%s", msg);
    return UPESI_DENY;
}

/* Decide with what is known: name is the client's confirmed name or NULL
 * (not looked up, or none). */
static upesi_verdict decide(upesi_call *call, const pl_config *c,
                            const char *ip, const char *name)
{
    if (hostmatch_ip(c->wl.addrs, ip)) {
        whitelisted(call, c, ip, NULL);
        return UPESI_CONT;
    }
    if (name && hostmatch_name(c->wl.names, name)) {
        whitelisted(call, c, ip, name);
        return UPESI_CONT;
    }
    if (hostmatch_ip(c->bl.addrs, ip))
        return blacklisted(call, c, ip, NULL);
    if (name && hostmatch_name(c->bl.names, name))
        return blacklisted(call, c, ip, name);
    return UPESI_CONT;
}

static void on_name(upesi_call *call, const upesi_dns_answer *a)
{
    const pl_config *c = api->config(call);
    const upesi_conn_info *conn = api->conn(call);
    const char *name = a->status == UPESI_DNS_OK ? a->records[0].text : NULL;
    if (name == NULL)
        api->log_call(call, UPESI_LOG_DEBUG, "%s has no confirmed name (%s): "
                 "only address items can match", conn->remote_ip,
                 a->status == UPESI_DNS_TIMEOUT ? "timeout" :
                 a->status == UPESI_DNS_ERROR ? "DNS error" : "no PTR");
    api->resume(call, decide(call, c, conn->remote_ip, name));
}

static upesi_verdict pl_connect(upesi_call *call)
{
    const pl_config *c = api->config(call);
    const upesi_conn_info *conn = api->conn(call);
    if (c == NULL || conn == NULL)
        return UPESI_CONT;
    const char *ip = conn->remote_ip;
    /* a name is needed unless an address item decides first */
    int need_name = hostmatch_count(c->wl.names) > 0 ||
                    (hostmatch_count(c->bl.names) > 0 &&
                     !hostmatch_ip(c->bl.addrs, ip));
    if (!need_name || hostmatch_ip(c->wl.addrs, ip))
        return decide(call, c, ip, NULL);
    if (hostmatch_ask_name(api, call, on_name) != 0)
        return decide(call, c, ip, NULL);
    return UPESI_PENDING;
}

/* Tags: the connection's tag goes on each transaction and message. */
static upesi_verdict pl_mail(upesi_call *call)
{
    if (api->note_get(call, UPESI_SCOPE_CONN, "private_lists.wl_tag"))
        api->note_set(call, UPESI_SCOPE_TXN, "dnswl.site", PL_WHITELIST);
    if (api->note_get(call, UPESI_SCOPE_CONN, "private_lists.bl_tag"))
        api->note_set(call, UPESI_SCOPE_TXN, "dnsbl.site", PL_BLACKLIST);
    return UPESI_CONT;
}

static upesi_verdict pl_data_post(upesi_call *call)
{
    if (api->note_get(call, UPESI_SCOPE_CONN, "private_lists.wl_tag"))
        api->header_add(call, "X-DNSWL-Site", PL_WHITELIST);
    if (api->note_get(call, UPESI_SCOPE_CONN, "private_lists.bl_tag"))
        api->header_add(call, "X-DNSBL-Site", PL_BLACKLIST);
    return UPESI_CONT;
}

static int pl_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                   size_t errlen)
{
    pl_ctx = ctx;
    (void)err;
    (void)errlen;
    api = host;
    hostmatch_set_idna(host);
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "private_lists",
    .version = "1.0",
    .init = pl_init,
    .config_new = pl_config_new,
    .settings = pl_settings,
    .config_free = pl_config_free,
    .hooks = {
        [UPESI_HOOK_CONNECT] = pl_connect,
        [UPESI_HOOK_MAIL] = pl_mail,
        [UPESI_HOOK_DATA_POST] = pl_data_post,
    },
};
