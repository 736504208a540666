/*
 * fwd_config.c - queue_forward.ini: where mail goes and how hard to try.
 *
 *   downstream = 127.0.0.1:10025 | [::1]:10025 | lmtp:127.0.0.1:24 |
 *                lmtp:/path/to/socket | unix:/path (SMTP over a socket)
 *   route = example.org lmtp:/var/run/dovecot/lmtp     (repeatable)
 *   mode = direct | spool
 *   downstream_tls = 0 | 1 | required, downstream_tls_verify = 0 | 1,
 *   downstream_tls_ca = FILE, downstream_tls_name = NAME (fwd_tls.c)
 *   ... timeouts, pool, retry (docs/plugins/queue_forward.md)
 *
 * Settings are reference counted: the background runner and jobs in
 * flight keep the generation they started with after a SIGHUP.
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
    cfg->connect_timeout_ms = 10000;
    cfg->greeting_timeout_ms = 20000;
    cfg->command_timeout_ms = 20000;
    cfg->data_timeout_ms = 60000;
    cfg->pool_size = 8;
    cfg->pool_idle_ms = 30000;
    cfg->retry_min_s = 300;
    cfg->retry_max_s = 4000;
    cfg->max_queue_time_s = 5 * 86400;
    cfg->scan_interval_ms = 10000;
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

/* "30", "30s", "5m", "2h", "5d" -> seconds (as unsigned); -1 if bad */
static int fwd_parse_duration(const char *value, unsigned long long *out_ms)
{
    char *end;
    errno = 0;
    double n = strtod(value, &end);
    if (errno || end == value || n < 0)
        return -1;
    double mult = 1000;
    if (*end == '\0' || !strcmp(end, "s"))
        mult = 1000;
    else if (!strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "m"))
        mult = 60000;
    else if (!strcmp(end, "h"))
        mult = 3600000;
    else if (!strcmp(end, "d"))
        mult = 86400000;
    else
        return -1;
    double ms = n * mult;
    if (ms > 4e12)
        return -1;
    *out_ms = (unsigned long long)ms;
    return 0;
}

static int fwd_add_route(fwd_config *cfg, const char *value, char *err,
                         size_t errlen)
{
    char domain[256];
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

int fwd_config_set(void *config, const char *section, const char *key,
                   const char *value, char *err, size_t errlen)
{
    fwd_config *cfg = config;
    unsigned long long ms;
    long n;

    if (section && section[0]) {
        if (strcasecmp(section, "routes") == 0) {
            /* [routes]  example.org = 127.0.0.1:10026 */
            char line[600];
            snprintf(line, sizeof line, "%s %s", key, value);
            return fwd_add_route(cfg, line, err, errlen);
        }
        snprintf(err, errlen, "unknown section [%s]", section);
        return -1;
    }
    if (!strcmp(key, "downstream")) {
        if (fwd_parse_target(value, &cfg->downstream, err, errlen) < 0)
            return -1;
        cfg->have_downstream = 1;
        return 0;
    }
    if (!strcmp(key, "route"))
        return fwd_add_route(cfg, value, err, errlen);
    if (!strcmp(key, "mode")) {
        if (!strcasecmp(value, "direct"))
            cfg->mode = FWD_MODE_DIRECT;
        else if (!strcasecmp(value, "spool"))
            cfg->mode = FWD_MODE_SPOOL;
        else {
            snprintf(err, errlen, "mode: '%s' is not direct or spool", value);
            return -1;
        }
        return 0;
    }
    struct { const char *key; unsigned *ms; unsigned *s; } durations[] = {
        { "connect_timeout", &cfg->connect_timeout_ms, NULL },
        { "greeting_timeout", &cfg->greeting_timeout_ms, NULL },
        { "command_timeout", &cfg->command_timeout_ms, NULL },
        { "data_timeout", &cfg->data_timeout_ms, NULL },
        { "pool_idle", &cfg->pool_idle_ms, NULL },
        { "scan_interval", &cfg->scan_interval_ms, NULL },
        { "retry_min", NULL, &cfg->retry_min_s },
        { "retry_max", NULL, &cfg->retry_max_s },
        { "max_queue_time", NULL, &cfg->max_queue_time_s },
    };
    for (size_t i = 0; i < sizeof durations / sizeof *durations; i++) {
        if (strcmp(key, durations[i].key))
            continue;
        if (fwd_parse_duration(value, &ms) < 0 || ms == 0 ||
            ms / 1000 > 400u * 86400) {
            snprintf(err, errlen, "%s: '%s' is not a duration (30, 30s, 5m, "
                     "2h, 5d; above zero)", key, value);
            return -1;
        }
        if (durations[i].ms)
            *durations[i].ms = (unsigned)(ms > 0xffffffffull ? 0xffffffffu
                                                              : ms);
        else if (durations[i].s)    /* each row sets one of the two */
            *durations[i].s = (unsigned)(ms < 1000 ? 1 : ms / 1000);
        return 0;
    }
    struct { const char *key; long lo, hi; int *out; } ints[] = {
        { "pool_size", 0, 1000, &cfg->pool_size },
        { "max_deliveries", 1, 10000, &cfg->max_deliveries },
        { "null_sender_dsn", 0, 2, &cfg->null_sender_dsn },
        { "fsync", 0, 1, &cfg->fsync },
        { "downstream_tls_verify", 0, 1, &cfg->tls_verify },
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        if (strcmp(key, ints[i].key))
            continue;
        if (settings_long(value, ints[i].lo, ints[i].hi, &n) != 0) {
            snprintf(err, errlen, "%s: '%s' is not a number from %ld to %ld",
                     key, value, ints[i].lo, ints[i].hi);
            return -1;
        }
        *ints[i].out = (int)n;
        return 0;
    }
    if (!strcmp(key, "downstream_tls")) {
        if (!strcmp(value, "0") || !strcasecmp(value, "no") ||
            !strcasecmp(value, "off"))
            cfg->tls = FWD_TLS_OFF;
        else if (!strcmp(value, "1") || !strcasecmp(value, "yes") ||
                 !strcasecmp(value, "on"))
            cfg->tls = FWD_TLS_MAY;
        else if (!strcasecmp(value, "required"))
            cfg->tls = FWD_TLS_REQUIRED;
        else {
            snprintf(err, errlen, "downstream_tls: '%s' is not 0, 1 or "
                     "required", value);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "downstream_tls_ca")) {
        char *path = value[0] ? fwd_api->config_path(value) : NULL;
        if (path == NULL) {
            snprintf(err, errlen, "downstream_tls_ca: '%s' is not a usable "
                     "path", value);
            return -1;
        }
        free(cfg->tls_ca);
        cfg->tls_ca = path;
        return 0;
    }
    if (!strcmp(key, "downstream_tls_name")) {
        if (strlen(value) >= sizeof cfg->tls_name ||
            strpbrk(value, " \t<>[]\r\n")) {
            snprintf(err, errlen, "downstream_tls_name: '%s' is not a host "
                     "name", value);
            return -1;
        }
        snprintf(cfg->tls_name, sizeof cfg->tls_name, "%s", value);
        return 0;
    }
    if (!strcmp(key, "postmaster") || !strcmp(key, "helo")) {
        char *dst = key[0] == 'p' ? cfg->postmaster : cfg->helo;
        if (strlen(value) >= sizeof cfg->helo || strpbrk(value, " \t<>\r\n")) {
            snprintf(err, errlen, "%s: '%s' is not usable", key, value);
            return -1;
        }
        snprintf(dst, sizeof cfg->helo, "%s", value);
        return 0;
    }
    snprintf(err, errlen, "unknown key '%s'", key);
    return -1;
}

int fwd_config_check(void *config, char *err, size_t errlen)
{
    fwd_config *cfg = config;
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
    const char *spool = fwd_api->spool_dir();
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
    fwd_config_unref(fwd_latest);
    fwd_latest = fwd_config_ref(cfg);
    return 0;
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
