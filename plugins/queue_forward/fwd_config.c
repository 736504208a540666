/*
 * fwd_config.c - queue_forward.ini: where mail goes and how hard to try.
 *
 *   downstream = 127.0.0.1:10025 | [::1]:10025 | lmtp:127.0.0.1:24 |
 *                lmtp:/path/to/socket | unix:/path (SMTP over a socket)
 *   route = example.org lmtp:/var/run/dovecot/lmtp     (repeatable)
 *   route = mx | route = example.org mx   (MX lookups, fwd_mx.c; mx_port)
 *   mode = direct | spool
 *   downstream_tls = 0 | 1 | required, downstream_tls_verify = 0 | 1,
 *   downstream_tls_ca = FILE, downstream_tls_name = NAME (fwd_tls.c)
 *   ... timeouts, pool, retry (docs/plugins/queue_forward.md)
 *
 * Settings are reference counted: the background runner and jobs in
 * flight keep the generation they started with after a SIGHUP.  The
 * runner's generation is the one the host committed last
 * (fwd_config_commit), never one a config_check merely accepted.
 *
 * Fails: a bad key or value is refused with a message (the host adds file
 * and line); config_check refuses a configuration without any downstream,
 * downstream_tls_verify without downstream_tls, a CA file or a name, and
 * a CA file wolfSSL cannot load.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "forward.h"
#include "../common/settings.h"

static fwd_config *fwd_latest;

void *fwd_config_new(void)
{
    fwd_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return NULL;
    cfg->refs = 1;
    cfg->mode = FWD_MODE_DIRECT;
    cfg->pool_size = 8;
    cfg->mx_port = 25;
    cfg->max_deliveries = 20;
    cfg->null_sender_dsn = 0;
    cfg->fsync = 1;
    return cfg;
}

fwd_config *fwd_config_ref(fwd_config *cfg)
{
    if (cfg)
        cfg->refs++;
    return cfg;
}

void fwd_config_unref(fwd_config *cfg)
{
    if (cfg == NULL || --cfg->refs > 0)
        return;
    for (size_t i = 0; i < cfg->n_routes; i++)
        free(cfg->routes[i].domain);
    free(cfg->routes);
    free(cfg->tls_ca);
    fwd_tls_ctx_free(cfg->tls_ctx);
    free(cfg);
}

void fwd_config_free(void *config)
{
    fwd_config_unref(config);
}

fwd_config *fwd_config_latest(void)
{
    return fwd_latest;
}

void fwd_config_release_latest(void)
{
    fwd_config_unref(fwd_latest);
    fwd_latest = NULL;
}

/* "127.0.0.1:25", "[::1]:25", "lmtp:...", "unix:/path", "lmtp:/path" */
static int fwd_parse_target(const char *value, fwd_target *t, char *err,
                            size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (strlen(value) >= sizeof t->name) {
        snprintf(err, errlen, "'%s': too long", value);
        return -1;
    }
    snprintf(t->name, sizeof t->name, "%s", value);
    if (!strcasecmp(value, "mx")) {
        /* the recipient's domain's MX hosts (fwd_mx.c), mx_port */
        t->mx = 1;
        snprintf(t->name, sizeof t->name, "mx");
        return 0;
    }
    const char *p = value;
    int is_unix = 0;
    if (strncasecmp(p, "lmtp:", 5) == 0) {
        t->lmtp = 1;
        p += 5;
    } else if (strncasecmp(p, "smtp:", 5) == 0) {
        p += 5;
    }
    if (strncasecmp(p, "unix:", 5) == 0) {
        is_unix = 1;
        p += 5;
    } else if (p[0] == '/') {
        is_unix = 1;
    }
    if (is_unix) {
        struct sockaddr_un *sa = (struct sockaddr_un *)&t->addr;
        if (p[0] != '/' || strlen(p) >= sizeof sa->sun_path) {
            snprintf(err, errlen, "'%s': a socket path must be absolute and "
                     "shorter than %zu bytes", value, sizeof sa->sun_path);
            return -1;
        }
        sa->sun_family = AF_UNIX;
        memcpy(sa->sun_path, p, strlen(p) + 1);
        t->family = AF_UNIX;
        t->addrlen = sizeof *sa;
        return 0;
    }
    char host[64];
    const char *port;
    if (p[0] == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL || close[1] != ':' ||
            (size_t)(close - p - 1) >= sizeof host)
            goto bad;
        memcpy(host, p + 1, (size_t)(close - p - 1));
        host[close - p - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(p, ':');
        if (colon == NULL || (size_t)(colon - p) >= sizeof host ||
            strchr(p, ':') != colon)
            goto bad;
        memcpy(host, p, (size_t)(colon - p));
        host[colon - p] = '\0';
        port = colon + 1;
    }
    long n;
    if (settings_long(port, 1, 65535, &n) != 0)
        goto bad;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&t->addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->addr;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)n);
        t->family = AF_INET;
        t->addrlen = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)n);
        t->family = AF_INET6;
        t->addrlen = sizeof *s6;
        return 0;
    }
bad:
    snprintf(err, errlen, "'%s' is not ADDRESS:PORT, [IPv6]:PORT, "
             "lmtp:ADDRESS:PORT, lmtp:/socket or unix:/socket (addresses "
             "are IP literals: no DNS)", value);
    return -1;
}

static int fwd_add_route(fwd_config *cfg, const char *value, char *err,
                         size_t errlen)
{
    char domain[256];
    if (!strcasecmp(value, "mx")) {
        /* route = mx: every domain no other route names goes by its MX */
        if (cfg->have_downstream) {
            snprintf(err, errlen, "route = mx and downstream both say where "
                     "the other domains go: keep one");
            return -1;
        }
        cfg->have_downstream = 1;
        return fwd_parse_target(value, &cfg->downstream, err, errlen);
    }
    const char *sp = value + strcspn(value, " \t");
    size_t dlen = (size_t)(sp - value);
    if (dlen == 0 || dlen >= sizeof domain || *sp == '\0') {
        snprintf(err, errlen, "route: '%s' is not 'DOMAIN DOWNSTREAM'",
                 value);
        return -1;
    }
    for (size_t i = 0; i < dlen; i++)
        domain[i] = (char)tolower((unsigned char)value[i]);
    domain[dlen] = '\0';
    if (domain[0] == '@')
        memmove(domain, domain + 1, dlen);
    sp += strspn(sp, " \t");
    fwd_route r = { 0 };
    if (fwd_parse_target(sp, &r.target, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (!strcmp(cfg->routes[i].domain, domain)) {
            snprintf(err, errlen, "route: domain %s listed twice", domain);
            return -1;
        }
    fwd_route *routes = realloc(cfg->routes,
                                (cfg->n_routes + 1) * sizeof *routes);
    if (routes == NULL || (r.domain = strdup(domain)) == NULL) {
        if (routes)
            cfg->routes = routes;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cfg->routes = routes;
    cfg->routes[cfg->n_routes++] = r;
    return 0;
}

/* [routes]  example.org = 127.0.0.1:10026  (the keys at the top of the
 * file: fwd_settings) */
int fwd_config_set(void *config, const char *section, const char *key,
                   const char *value, char *err, size_t errlen)
{
    fwd_config *cfg = config;
    if (section && strcasecmp(section, "routes") == 0) {
        char line[600];
        snprintf(line, sizeof line, "%s %s", key, value);
        return fwd_add_route(cfg, line, err, errlen);
    }
    if (section && section[0])
        snprintf(err, errlen, "unknown section [%s]", section);
    else
        snprintf(err, errlen, "unknown key '%s'", key);
    return -1;
}

static int fwd_set_downstream(void *config, const char *value, char *err,
                              size_t errlen)
{
    fwd_config *cfg = config;
    if (cfg->have_downstream && cfg->downstream.mx) {
        snprintf(err, errlen, "route = mx and downstream both say where the "
                 "other domains go: keep one");
        return -1;
    }
    if (fwd_parse_target(value, &cfg->downstream, err, errlen) < 0)
        return -1;
    cfg->have_downstream = 1;
    return 0;
}

static int fwd_set_route(void *config, const char *value, char *err,
                         size_t errlen)
{
    return fwd_add_route(config, value, err, errlen);
}


/* a boolean (0/1, yes/no, on/off, true/false), or required */
static int fwd_set_tls(void *config, const char *value, char *err,
                       size_t errlen)
{
    fwd_config *cfg = config;
    int on;
    if (!strcasecmp(value, "required"))
        cfg->tls = FWD_TLS_REQUIRED;
    else if (settings_bool(value, &on) == 0)
        cfg->tls = on ? FWD_TLS_MAY : FWD_TLS_OFF;
    else {
        snprintf(err, errlen, "expected a boolean (0/1, yes/no, on/off, "
                 "true/false) or required, got '%s'", value);
        return -1;
    }
    return 0;
}

static int fwd_set_tls_ca(void *config, const char *value, char *err,
                          size_t errlen)
{
    fwd_config *cfg = config;
    char *host_path = value[0] ? fwd_api->config_path(fwd_ctx, value) : NULL;
    char *path = host_path ? strdup(host_path) : NULL;
    fwd_api->free(host_path);
    if (path == NULL) {
        snprintf(err, errlen, "'%s' is not a usable path", value);
        return -1;
    }
    free(cfg->tls_ca);
    cfg->tls_ca = path;
    return 0;
}

static int fwd_set_tls_name(void *config, const char *value, char *err,
                            size_t errlen)
{
    fwd_config *cfg = config;
    if (strlen(value) >= sizeof cfg->tls_name ||
        strpbrk(value, " \t<>[]\r\n")) {
        snprintf(err, errlen, "'%s' is not a host name", value);
        return -1;
    }
    snprintf(cfg->tls_name, sizeof cfg->tls_name, "%s", value);
    return 0;
}

static int fwd_set_name(char *dst, size_t len, const char *value, char *err,
                        size_t errlen)
{
    if (strlen(value) >= len || strpbrk(value, " \t<>\r\n")) {
        snprintf(err, errlen, "'%s' is not usable", value);
        return -1;
    }
    snprintf(dst, len, "%s", value);
    return 0;
}

static int fwd_set_postmaster(void *config, const char *value, char *err,
                              size_t errlen)
{
    fwd_config *cfg = config;
    return fwd_set_name(cfg->postmaster, sizeof cfg->postmaster, value, err,
                        errlen);
}

static int fwd_set_helo(void *config, const char *value, char *err,
                        size_t errlen)
{
    fwd_config *cfg = config;
    return fwd_set_name(cfg->helo, sizeof cfg->helo, value, err, errlen);
}

#define FWD(field) offsetof(fwd_config, field)
#define FWD_CUSTOM(key, fn, def, help)                                       \
    { key, UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, fn, def, help }
static const char *const fwd_modes[] = { "direct", "spool", NULL };

/* Durations: above zero, at most 400 days (the retry and queue times are
 * kept in whole seconds, at least one). */
#define FWD_DUR(key, def, help)                                              \
    { #key, UPESI_SETTING_DURATION, FWD(key), 0.001, 400.0 * 86400, NULL,    \
      NULL, def, help }
const upesi_setting fwd_settings[] = {
    FWD_CUSTOM("downstream", fwd_set_downstream, NULL, "where mail goes: "
               "`127.0.0.1:10025`, `[::1]:10025`, `lmtp:127.0.0.1:24`, "
               "`lmtp:/run/dovecot/lmtp`, `unix:/path`; IP literals, or `mx` "
               "(as `route = mx`)"),
    FWD_CUSTOM("route", fwd_set_route, NULL, "`DOMAIN DOWNSTREAM`, "
               "repeatable: recipients in DOMAIN go there instead "
               "(`.example.org`: every subdomain); also a `[routes]` "
               "section of `DOMAIN = DOWNSTREAM` lines. DOWNSTREAM `mx`: by "
               "the domain's MX hosts; `route = mx` alone: every domain no "
               "other route names (instead of `downstream`)"),
    { "routes.DOMAIN", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, NULL, NULL,
      "`DOMAIN = DOWNSTREAM`, one line per domain: as `route`" },
    { "mx_port", UPESI_SETTING_INT, FWD(mx_port), 1, 65535, NULL, NULL,
      "25", "the port of MX hosts (tests, which cannot bind 25)" },
    { "mode", UPESI_SETTING_ENUM, FWD(mode), 0, 0, fwd_modes, NULL,
      "direct", "`direct`: 250 only after the downstream's 250; `spool`: "
      "queue first, deliver in the background" },
    FWD_DUR(connect_timeout, "10s",
               "TCP/unix connect"),
    FWD_DUR(greeting_timeout, "20s",
               "the downstream's 220"),
    FWD_DUR(command_timeout, "20s",
               "each reply to EHLO, MAIL, RCPT, DATA, RSET"),
    FWD_DUR(data_timeout, "60s", "each write "
               "of the message, and the reply(ies) after the end of data"),
    { "pool_size", UPESI_SETTING_INT, FWD(pool_size), 0, 1000, NULL, NULL,
      "8", "idle connections kept per downstream (0: a connection per "
      "message)" },
    FWD_DUR(pool_idle, "30s", "an idle pooled "
               "connection is closed after this"),
    FWD_DUR(retry_min, "300s", "spool: first "
               "retry after a temporary failure; doubles each attempt"),
    FWD_DUR(retry_max, "4000s", "... up to this "
               "(Postfix's maximal_backoff_time)"),
    FWD_DUR(max_queue_time, "5d", "spool: "
               "after this since arrival, a temporary failure becomes a "
               "bounce (status 4.4.7)"),
    { "delay_warning", UPESI_SETTING_DURATION, FWD(delay_warning), 0,
      400.0 * 86400, NULL, NULL, "4h", "spool: a recipient that asked "
      "`NOTIFY=...DELAY` gets one delay report once its message has been "
      "queued this long and is still deferred; 0: at the first deferral" },
    FWD_DUR(scan_interval, "10s", "how often "
               "each worker looks for due messages in `queue/`"),
    { "max_deliveries", UPESI_SETTING_INT, FWD(max_deliveries), 1, 10000,
      NULL, NULL, "20", "background deliveries at once per worker" },
    { "null_sender_dsn", UPESI_SETTING_INT, FWD(null_sender_dsn), 0, 2,
      NULL, NULL, "0", "for a refused message from `<>`: 0 keep it in "
      "`<spool_dir>/dead/`, 1 send the DSN to the postmaster, 2 none "
      "(RouterDSNForNULLReversePath)" },
    FWD_CUSTOM("postmaster", fwd_set_postmaster, "(postmaster@<hostname>)",
               "where `null_sender_dsn = 1` sends"),
    FWD_CUSTOM("helo", fwd_set_helo, "(smtp.ini hostname)", "the name in "
               "EHLO/LHLO"),
    { "fsync", UPESI_SETTING_BOOL, FWD(fsync), 0, 0, NULL, NULL, "1",
      "off skips fsyncs of spool writes (tests only: breaks the promise of "
      "the 250)" },
    FWD_CUSTOM("downstream_tls", fwd_set_tls, "0", "STARTTLS to the "
               "downstream: off never, on when its EHLO offers it, "
               "`required` never send in clear"),
    { "downstream_tls_verify", UPESI_SETTING_BOOL, FWD(tls_verify), 0, 0,
      NULL, NULL, "0", "on: the downstream's certificate must chain to "
      "`downstream_tls_ca` and name `downstream_tls_name`" },
    FWD_CUSTOM("downstream_tls_ca", fwd_set_tls_ca, NULL, "PEM file with "
               "the CA certificate(s) to verify against"),
    FWD_CUSTOM("downstream_tls_name", fwd_set_tls_name, NULL, "the "
               "downstream's host name: sent as SNI, and the name its "
               "certificate must carry"),
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};
#undef FWD
#undef FWD_CUSTOM
#undef FWD_DUR

static unsigned fwd_ms(double s)
{
    double ms = s * 1000;
    return ms > 0xffffffffu ? 0xffffffffu : ms < 1 ? 1 : (unsigned)ms;
}

static unsigned fwd_s(double s)
{
    return s < 1 ? 1 : (unsigned)s;
}

int fwd_config_check(void *config, char *err, size_t errlen)
{
    fwd_config *cfg = config;
    cfg->connect_timeout_ms = fwd_ms(cfg->connect_timeout);
    cfg->greeting_timeout_ms = fwd_ms(cfg->greeting_timeout);
    cfg->command_timeout_ms = fwd_ms(cfg->command_timeout);
    cfg->data_timeout_ms = fwd_ms(cfg->data_timeout);
    cfg->pool_idle_ms = fwd_ms(cfg->pool_idle);
    cfg->scan_interval_ms = fwd_ms(cfg->scan_interval);
    cfg->retry_min_s = fwd_s(cfg->retry_min);
    cfg->retry_max_s = fwd_s(cfg->retry_max);
    cfg->max_queue_time_s = fwd_s(cfg->max_queue_time);
    cfg->delay_warning_s = (unsigned)cfg->delay_warning;  /* 0 allowed */
    if (!cfg->have_downstream && cfg->n_routes == 0) {
        snprintf(err, errlen, "no downstream: set downstream = ADDRESS:PORT "
                 "(or route = DOMAIN ADDRESS:PORT)");
        return -1;
    }
    if (cfg->retry_max_s < cfg->retry_min_s) {
        snprintf(err, errlen, "retry_max (%us) is below retry_min (%us)",
                 cfg->retry_max_s, cfg->retry_min_s);
        return -1;
    }
    const char *spool = fwd_api->spool_dir(fwd_ctx);
    if (spool == NULL || spool[0] == '\0') {
        snprintf(err, errlen, "smtp.ini has no spool_dir");
        return -1;
    }
    if (fwd_store_make_dirs(spool, err, errlen) < 0)
        return -1;
    if (cfg->tls_verify) {
        if (cfg->tls == FWD_TLS_OFF) {
            snprintf(err, errlen, "downstream_tls_verify = 1 needs "
                     "downstream_tls = 1 or required");
            return -1;
        }
        if (cfg->tls_ca == NULL || cfg->tls_name[0] == '\0') {
            snprintf(err, errlen, "downstream_tls_verify = 1 needs "
                     "downstream_tls_ca (the CA file) and "
                     "downstream_tls_name (the name in the downstream's "
                     "certificate)");
            return -1;
        }
    }
    if (cfg->tls != FWD_TLS_OFF && cfg->tls_ctx == NULL &&
        (cfg->tls_ctx = fwd_tls_ctx_new(cfg->tls_ca, cfg->tls_verify, err,
                                        errlen)) == NULL)
        return -1;
    return 0;
}

/* The host committed a generation: from now on the runner and new jobs
 * use it.  Never in config_check: a later plugin may still refuse the
 * generation, and the runner would deliver by settings that never ran. */
void fwd_config_commit(upesi_ctx *ctx, void *config)
{
    fwd_config *cfg = fwd_config_ref(config);
    fwd_config_unref(fwd_latest);
    fwd_latest = cfg;
    if (cfg)
        fwd_api->log(ctx, UPESI_LOG_DEBUG, "settings committed: mode %s, "
                     "%zu routes", cfg->mode == FWD_MODE_SPOOL ? "spool"
                                                               : "direct",
                     cfg->n_routes);
}

const fwd_target *fwd_route_for(const fwd_config *cfg, const char *address)
{
    const char *at = address ? strrchr(address, '@') : NULL;
    if (at && cfg->n_routes) {
        const char *domain = at + 1;
        /* exact domain first, then parent domains (".example.org" style
         * entries are not needed: "example.org" covers sub.example.org
         * only when listed as ".example.org") */
        for (size_t i = 0; i < cfg->n_routes; i++)
            if (!strcasecmp(cfg->routes[i].domain, domain))
                return &cfg->routes[i].target;
        for (size_t i = 0; i < cfg->n_routes; i++) {
            const char *d = cfg->routes[i].domain;
            size_t dl = strlen(d), al = strlen(domain);
            if (d[0] == '.' && al > dl &&
                !strcasecmp(domain + al - dl, d))
                return &cfg->routes[i].target;
        }
    }
    return cfg->have_downstream ? &cfg->downstream : NULL;
}

int fwd_same_job(const fwd_target *a, const char *addr_a,
                 const fwd_target *b, const char *addr_b)
{
    if (strcmp(a->name, b->name))
        return 0;
    if (!a->mx)
        return 1;
    const char *da = strrchr(addr_a, '@'), *db = strrchr(addr_b, '@');
    return !strcasecmp(da ? da + 1 : "", db ? db + 1 : "");
}
