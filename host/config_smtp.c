/*
 * config_smtp.c - smtp.ini: the value parsers (numbers, booleans, listen
 * addresses, comma lists, domains), the table of keys that sets a
 * generation's fields, the defaults before the file and what is resolved
 * and cross-checked after it (paths, hostname, greeting, TLS).  Also the
 * narrow reader of control_socket alone, for the command line's client.
 *
 * The key table is one handler (config_smtp_ini_key) so that smtp.ini and
 * -o key=value (config.c) accept exactly the same keys and values.
 *
 * Fails: never exits; a bad key or value fills err for up_ini_parse to log
 * at its line, a failed cross-check is logged against smtp.ini, and the
 * generation is not loaded.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "config.h"
#include "config_int.h"
#include "dns.h"
#include "log.h"
#include "tls.h"

#ifndef UPESI_PLUGIN_DIR
#define UPESI_PLUGIN_DIR "/usr/local/lib/upesi/plugins"
#endif

/* ---------------------------------------------------------------------- */
/* values                                                                  */

static int parse_long(const char *value, long min, long max, long *out,
                      char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0') {
        snprintf(err, errlen, "'%s' is not a whole number", value);
        return -1;
    }
    if (v < min || v > max) {
        snprintf(err, errlen, "%ld is out of range (%ld to %ld)", v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_int(const char *value, int min, int max, int *out, char *err,
                     size_t errlen)
{
    long v;
    if (parse_long(value, min, max, &v, err, errlen) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *value, double min, double max,
                        double *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0' || v != v) {
        snprintf(err, errlen, "'%s' is not a number", value);
        return -1;
    }
    if (v < min || v > max) {
        snprintf(err, errlen, "%g is out of range (%g to %g)", v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *value, int *out, char *err, size_t errlen)
{
    if (!strcmp(value, "1") || !strcasecmp(value, "yes") ||
        !strcasecmp(value, "on") || !strcasecmp(value, "true")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(value, "0") || !strcasecmp(value, "no") ||
        !strcasecmp(value, "off") || !strcasecmp(value, "false")) {
        *out = 0;
        return 0;
    }
    snprintf(err, errlen, "'%s' is not a boolean (use 1 or 0)", value);
    return -1;
}

static int set_string(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

/* "127.0.0.1:2525", "[::1]:2525", "*:25" (all IPv4), "[::]:25" */
static int parse_listen_one(const char *item, up_listen_addr *out, char *err,
                            size_t errlen)
{
    char host[64];
    const char *colon;
    if (item[0] == '[') {
        const char *close = strchr(item, ']');
        if (close == NULL || close[1] != ':' ||
            (size_t)(close - item - 1) >= sizeof host) {
            snprintf(err, errlen, "'%s': expected [IPv6]:port", item);
            return -1;
        }
        memcpy(host, item + 1, (size_t)(close - item - 1));
        host[close - item - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(item, ':');
        if (colon == NULL || (size_t)(colon - item) >= sizeof host) {
            snprintf(err, errlen, "'%s': expected address:port", item);
            return -1;
        }
        memcpy(host, item, (size_t)(colon - item));
        host[colon - item] = '\0';
    }
    long port;
    if (parse_long(colon + 1, 1, 65535, &port, err, errlen) != 0)
        return -1;
    memset(out, 0, sizeof *out);
    snprintf(out->text, sizeof out->text, "%s", item);
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
    if (!strcmp(host, "*"))
        strcpy(host, "0.0.0.0");
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->addrlen = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->addrlen = sizeof *sin6;
    } else {
        snprintf(err, errlen, "'%s' is not an IP address (listen takes "
                 "addresses, not names)", host);
        return -1;
    }
    return 0;
}

/* Split a comma list, trimming blanks; calls fn for each non-empty item. */
static int each_item(const char *value, int (*fn)(void *, const char *, char *,
                                                  size_t),
                     void *arg, char *err, size_t errlen)
{
    char *copy = strdup(value), *save = NULL;
    if (copy == NULL)
        return -1;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok)
            rc = fn(arg, tok, err, errlen);
    }
    free(copy);
    return rc;
}

static int add_listen(void *arg, const char *item, char *err, size_t errlen)
{
    up_config *cfg = arg;
    up_listen_addr *grown = realloc(cfg->listen,
                                    (cfg->n_listen + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    cfg->listen = grown;
    if (parse_listen_one(item, &cfg->listen[cfg->n_listen], err, errlen))
        return -1;
    cfg->n_listen++;
    return 0;
}

static int add_smtps_listen(void *arg, const char *item, char *err,
                            size_t errlen)
{
    up_config *cfg = arg;
    up_listen_addr *grown = realloc(cfg->smtps_listen,
                                    (cfg->n_smtps_listen + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    cfg->smtps_listen = grown;
    if (parse_listen_one(item, &cfg->smtps_listen[cfg->n_smtps_listen], err,
                         errlen))
        return -1;
    cfg->n_smtps_listen++;
    return 0;
}

static int add_submission_listen(void *arg, const char *item, char *err,
                                 size_t errlen)
{
    up_config *cfg = arg;
    up_listen_addr *grown = realloc(cfg->submission_listen,
                                    (cfg->n_submission_listen + 1) *
                                        sizeof *grown);
    if (grown == NULL)
        return -1;
    cfg->submission_listen = grown;
    if (parse_listen_one(item,
                         &cfg->submission_listen[cfg->n_submission_listen],
                         err, errlen))
        return -1;
    cfg->n_submission_listen++;
    return 0;
}

/* tls_cert, tls_key, tls_ticket_key_file: relative to the conf dir, checked here so that a bad
 * file is reported at its line. */
static int set_tls_file(up_config *cfg, char **slot, const char *value,
                        int (*check)(const char *, char *, size_t),
                        char *err, size_t errlen)
{
    char *path = up_config_path(cfg->dir, value);
    if (path == NULL)
        return -1;
    if (check(path, err, errlen) != 0) {
        free(path);
        return -1;
    }
    free(*slot);
    *slot = path;
    return 0;
}

/* tls_sni = NAME CERT KEY: the three checked at this line, the
 * certificate and key loaded together so that a mismatch names the line.
 * Paths with blanks are not supported (none of the three may hold one). */
static int add_tls_sni(up_config *cfg, const char *value, char *err,
                       size_t errlen)
{
    char *copy = strdup(value), *save = NULL, *word[4] = { NULL };
    if (copy == NULL)
        return -1;
    size_t n = 0;
    for (char *tok = strtok_r(copy, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save))
        if (n < 4)
            word[n++] = tok;
    up_tls_sni sni = { NULL, NULL, NULL };
    int rc = -1;
    if (n != 3) {
        snprintf(err, errlen, "tls_sni: expected three words, 'name "
                 "certificate.pem key.pem'%s", n > 3 ? " (no blanks in "
                 "paths)" : "");
        goto out;
    }
    if (up_tls_check_sni_name(word[0], err, errlen) != 0)
        goto out;
    for (char *p = word[0]; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    for (size_t i = 0; i < cfg->n_tls_sni; i++)
        if (!strcmp(cfg->tls_sni[i].name, word[0])) {
            snprintf(err, errlen, "tls_sni: '%s' is named twice", word[0]);
            goto out;
        }
    if ((sni.name = strdup(word[0])) == NULL ||
        (sni.cert = up_config_path(cfg->dir, word[1])) == NULL ||
        (sni.key = up_config_path(cfg->dir, word[2])) == NULL)
        goto out;
    if (up_tls_check_sni(sni.name, sni.cert, sni.key, err, errlen) != 0)
        goto out;
    up_tls_sni *grown = realloc(cfg->tls_sni,
                                (cfg->n_tls_sni + 1) * sizeof *grown);
    if (grown == NULL)
        goto out;
    cfg->tls_sni = grown;
    cfg->tls_sni[cfg->n_tls_sni++] = sni;
    sni.name = sni.cert = sni.key = NULL;
    rc = 0;
out:
    free(sni.name);
    free(sni.cert);
    free(sni.key);
    free(copy);
    return rc;
}

static int valid_domain(const char *d)
{
    size_t len = strlen(d);
    if (len == 0 || len > 253)
        return 0;
    for (const char *p = d; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return 0;
    return d[0] != '.' && d[0] != '-';
}

static int add_local_domain(void *arg, const char *item, char *err,
                            size_t errlen)
{
    up_config *cfg = arg;
    if (!valid_domain(item)) {
        snprintf(err, errlen, "'%s' is not a domain name", item);
        return -1;
    }
    char **grown = realloc(cfg->local_domains,
                           (cfg->n_local_domains + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    cfg->local_domains = grown;
    if ((grown[cfg->n_local_domains] = strdup(item)) == NULL)
        return -1;
    for (char *p = grown[cfg->n_local_domains]; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    cfg->n_local_domains++;
    return 0;
}

/* "127.0.0.1:5353, [::1]:5353" -> the c-ares CSV form */
static int add_dns_server(void *arg, const char *item, char *err,
                          size_t errlen)
{
    up_config *cfg = arg;
    char one[96], *joined;
    if (up_dns_server_item(item, one, sizeof one, err, errlen) != 0)
        return -1;
    if (asprintf(&joined, "%s%s%s", cfg->dns_servers ? cfg->dns_servers : "",
                 cfg->dns_servers ? "," : "", one) < 0)
        return -1;
    free(cfg->dns_servers);
    cfg->dns_servers = joined;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* smtp.ini                                                                */

int config_smtp_ini_key(void *arg, const char *section, const char *key,
                        const char *value, char *err, size_t errlen)
{
    up_config *cfg = arg;
    if (section[0] != '\0') {
        snprintf(err, errlen, "unknown section [%s] (smtp.ini keys live "
                 "at the top of the file)", section);
        return -1;
    }
#define IS(name) (!strcmp(key, name))
    if (IS("listen"))
        return each_item(value, add_listen, cfg, err, errlen);
    if (IS("local_domains"))
        return each_item(value, add_local_domain, cfg, err, errlen);
    if (IS("hostname")) {
        if (!valid_domain(value)) {
            snprintf(err, errlen, "'%s' is not a host name", value);
            return -1;
        }
        return set_string(&cfg->hostname, value);
    }
    if (IS("greeting")) {
        const char *pct = strchr(value, '%');
        if (pct && (pct[1] != 's' || strchr(pct + 2, '%'))) {
            snprintf(err, errlen, "greeting may hold one %%s (the date and "
                     "time) and no other %%");
            return -1;
        }
        if (strpbrk(value, "\r\n")) {
            snprintf(err, errlen, "greeting must be one line");
            return -1;
        }
        return set_string(&cfg->greeting, value);
    }
    if (IS("spool_dir"))
        return set_string(&cfg->spool_dir, value);
    if (IS("control_socket"))
        return set_string(&cfg->control_socket, value);
    if (IS("plugin_dir"))
        return set_string(&cfg->plugin_dir, value);
    if (IS("max_command_length")) {
        long v;
        /* RFC 5321 4.5.3.1.4: at least 512 */
        if (parse_long(value, 512, 65536, &v, err, errlen))
            return -1;
        cfg->max_command_length = (size_t)v;
        return 0;
    }
    if (IS("max_message_size")) {
        long v;
        if (parse_long(value, 0, LONG_MAX, &v, err, errlen))
            return -1;
        cfg->max_message_size = (uint64_t)v;
        return 0;
    }
    if (IS("max_sessions"))
        return parse_int(value, 1, 1000000, &cfg->max_sessions, err, errlen);
    if (IS("error_limit"))
        return parse_int(value, 1, 100000, &cfg->error_limit, err, errlen);
    if (IS("timeout_multiplier"))
        return parse_double(value, 0.001, 100, &cfg->timeout_multiplier,
                            err, errlen);
    if (IS("plugin_timeout"))
        return parse_double(value, 0.01, 3600, &cfg->plugin_timeout, err,
                            errlen);
    if (IS("early_talker_action")) {
        static const char *const names[] = { "ignore", "reject", "drop" };
        for (int i = 0; i < 3; i++)
            if (!strcmp(value, names[i])) {
                cfg->early_talker_action = i;
                return 0;
            }
        snprintf(err, errlen, "'%s' is not an early_talker_action (ignore, "
                 "reject, drop)", value);
        return -1;
    }
    if (IS("improper_pipelining_action")) {
        static const char *const names[] = { "ignore", "reject", "drop" };
        for (int i = 0; i < 3; i++)
            if (!strcmp(value, names[i])) {
                cfg->improper_pipelining_action = i;
                return 0;
            }
        snprintf(err, errlen, "'%s' is not an improper_pipelining_action "
                 "(ignore, reject, drop)", value);
        return -1;
    }
    if (IS("allow_nul"))
        return parse_bool(value, &cfg->allow_nul, err, errlen);
    if (IS("helo_strict"))
        return parse_bool(value, &cfg->helo_strict, err, errlen);
    if (IS("greeting_delay"))
        return parse_double(value, 0, 60, &cfg->greeting_delay, err, errlen);
    if (IS("pipelining"))
        return parse_bool(value, &cfg->pipelining, err, errlen);
    if (IS("vrfy"))
        return parse_bool(value, &cfg->vrfy, err, errlen);
    if (IS("received_version"))
        return parse_bool(value, &cfg->received_version, err, errlen);
    if (IS("user")) {
        struct passwd *pw = getpwnam(value);
        if (pw == NULL) {
            snprintf(err, errlen, "no such user '%s'", value);
            return -1;
        }
        cfg->uid = pw->pw_uid;
        if (cfg->group == NULL)
            cfg->gid = pw->pw_gid;
        return set_string(&cfg->user, value);
    }
    if (IS("group")) {
        struct group *gr = getgrnam(value);
        if (gr == NULL) {
            snprintf(err, errlen, "no such group '%s'", value);
            return -1;
        }
        cfg->gid = gr->gr_gid;
        return set_string(&cfg->group, value);
    }
    if (IS("log_syslog"))
        return parse_bool(value, &cfg->log_syslog, err, errlen);
    if (IS("workers")) {
        if (!strcmp(value, "auto")) {
            cfg->workers = 0;
            return 0;
        }
        return parse_int(value, 1, 256, &cfg->workers, err, errlen);
    }
    if (IS("dns_servers")) {
        free(cfg->dns_servers);
        cfg->dns_servers = NULL;
        return each_item(value, add_dns_server, cfg, err, errlen);
    }
    if (IS("dns_timeout"))
        return parse_double(value, 0.001, 300, &cfg->dns_timeout, err,
                            errlen);
    if (IS("dns_cache_size")) {
        long v;
        if (parse_long(value, 0, 10000000, &v, err, errlen))
            return -1;
        cfg->dns_cache_size = (size_t)v;
        return 0;
    }
    if (IS("tls_cert"))
        return set_tls_file(cfg, &cfg->tls_cert, value, up_tls_check_cert,
                            err, errlen);
    if (IS("tls_key"))
        return set_tls_file(cfg, &cfg->tls_key, value, up_tls_check_key, err,
                            errlen);
    if (IS("tls_sni"))
        return add_tls_sni(cfg, value, err, errlen);
    if (IS("tls_ciphers")) {
        if (up_tls_check_ciphers(value, err, errlen) != 0)
            return -1;
        return set_string(&cfg->tls_ciphers, value);
    }
    if (IS("smtps_listen"))
        return each_item(value, add_smtps_listen, cfg, err, errlen);
    if (IS("require_tls"))
        return parse_bool(value, &cfg->require_tls, err, errlen);
    if (IS("submission_listen"))
        return each_item(value, add_submission_listen, cfg, err, errlen);
    if (IS("auth_failure_delay"))
        return parse_double(value, 0, 60, &cfg->auth_failure_delay, err,
                            errlen);
    if (IS("tls_session_tickets"))
        return parse_bool(value, &cfg->tls_session_tickets, err, errlen);
    if (IS("tls_ticket_key_file"))
        return set_tls_file(cfg, &cfg->tls_ticket_key_file, value,
                            up_tls_check_ticket_key_file, err, errlen);
    if (IS("tls_session_cache_size"))
        return parse_long(value, 0, 1000000, &cfg->tls_session_cache_size,
                          err, errlen);
    if (IS("tls_session_timeout"))
        return parse_long(value, 60, 604800, &cfg->tls_session_timeout, err,
                          errlen);
    if (IS("tls_handshake_timeout"))
        return parse_double(value, 0.1, 3600, &cfg->tls_handshake_timeout,
                            err, errlen);
    if (IS("log_level")) {
        int level = up_log_level_parse(value);
        if (level < 0) {
            snprintf(err, errlen, "'%s' is not a log level (crit, err, "
                     "warning, notice, info, debug)", value);
            return -1;
        }
        cfg->log_level = level;
        return 0;
    }
#undef IS
    snprintf(err, errlen, "unknown key '%s'", key);
    return -1;
}

void config_defaults(up_config *cfg)
{
    cfg->max_command_length = 1200;          /* Domino's SMTPMaxCommandLength */
    cfg->max_message_size = 26214400;
    cfg->max_sessions = 1000;
    cfg->error_limit = 20;
    cfg->timeout_multiplier = 1;
    cfg->plugin_timeout = 30;
    cfg->pipelining = 1;
    cfg->improper_pipelining_action = UP_PIPELINING_DROP;
    cfg->allow_nul = 0;
    cfg->helo_strict = 1;
    cfg->vrfy = 0;
    cfg->received_version = 1;
    cfg->workers = 1;
    cfg->log_level = UPESI_LOG_INFO;
    cfg->uid = (uid_t)-1;
    cfg->gid = (gid_t)-1;
    cfg->dns_timeout = 5;
    cfg->dns_cache_size = 10000;
    cfg->tls_handshake_timeout = 30;
    cfg->tls_session_tickets = 1;
    cfg->tls_session_timeout = 3600;           /* Postfix's default */
    cfg->tls_session_cache_size = 10000;
    cfg->auth_failure_delay = 1;
}

/* The TLS context of this generation, once cert and key are known. */
static int config_finish_tls(up_config *cfg, const char *file)
{
    const char *need = NULL;
    if (cfg->tls_cert && !cfg->tls_key)
        need = "tls_cert is set but tls_key is not";
    else if (cfg->tls_key && !cfg->tls_cert)
        need = "tls_key is set but tls_cert is not";
    else if (!cfg->tls_cert && cfg->n_smtps_listen)
        need = "smtps_listen needs tls_cert and tls_key";
    else if (!cfg->tls_cert && cfg->require_tls)
        need = "require_tls = 1 needs tls_cert and tls_key (no client "
               "could send mail)";
    else if (!cfg->tls_cert && cfg->n_tls_sni)
        need = "tls_sni needs tls_cert and tls_key (the certificate for "
               "clients that send no server name, or one not listed)";
    if (need) {
        up_log(NULL, UPESI_LOG_ERR, "%s: %s", file, need);
        return -1;
    }
    if (cfg->tls_cert == NULL)
        return 0;
    char err[512];
    up_tls_resume resume = { cfg->tls_session_tickets,
                             cfg->tls_ticket_key_file,
                             cfg->tls_session_timeout,
                             (size_t)cfg->tls_session_cache_size };
    cfg->tls = up_tls_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ciphers,
                              cfg->tls_sni, cfg->n_tls_sni, &resume, err,
                              sizeof err);
    if (cfg->tls == NULL) {
        up_log(NULL, UPESI_LOG_ERR, "%s: %s", file, err);
        return -1;
    }
    return 0;
}

/* Resolve relative paths and fill what was left unset. */
int config_finish(up_config *cfg, const char *file)
{
    char name[256];
    if (cfg->hostname == NULL) {
        if (gethostname(name, sizeof name) != 0)
            strcpy(name, "localhost");
        name[sizeof name - 1] = '\0';
        if ((cfg->hostname = strdup(name)) == NULL)
            return -1;
    }
    if (cfg->greeting == NULL &&
        asprintf(&cfg->greeting, "%s ESMTP upesi ready at %%s",
                 cfg->hostname) < 0)
        return -1;
    if (cfg->n_listen == 0 && add_listen(cfg, "127.0.0.1:2525", name,
                                         sizeof name) != 0)
        return -1;
    if (cfg->dns_timeout >= cfg->plugin_timeout)
        up_log(NULL, UPESI_LOG_WARNING, "%s: dns_timeout (%gs) is not below "
               "plugin_timeout (%gs): a slow DNS server will make plugins "
               "time out instead of failing open", file, cfg->dns_timeout,
               cfg->plugin_timeout);
    if (cfg->n_local_domains == 0)
        up_log(NULL, UPESI_LOG_WARNING, "%s: no local_domains: every "
               "recipient will be refused unless a plugin accepts it", file);
    const char *defaults[][2] = {
        { "spool_dir", "spool" }, { "control_socket", "upesi.sock" },
        { "plugin_dir", UPESI_PLUGIN_DIR },
    };
    char **slots[] = { &cfg->spool_dir, &cfg->control_socket,
                       &cfg->plugin_dir };
    for (size_t i = 0; i < sizeof slots / sizeof *slots; i++) {
        const char *v = *slots[i] ? *slots[i] : defaults[i][1];
        char *abs = up_config_path(cfg->dir, v);
        if (abs == NULL)
            return -1;
        free(*slots[i]);
        *slots[i] = abs;
    }
    return config_finish_tls(cfg, file);
}

/* ---------------------------------------------------------------------- */
/* control_socket alone                                                    */

static int control_socket_key(void *arg, const char *section,
                              const char *key, const char *value, char *err,
                              size_t errlen)
{
    (void)err;
    (void)errlen;
    if (section[0] == '\0' && !strcmp(key, "control_socket"))
        return set_string(arg, value);
    return 0;
}

char *up_config_control_socket(const char *dir)
{
    char *value = NULL, *path = NULL;
    char *smtp_ini = up_config_path(dir, "smtp.ini");
    if (smtp_ini && up_ini_parse(smtp_ini, control_socket_key, &value) == 0)
        path = up_config_path(dir, value ? value : "upesi.sock");
    free(smtp_ini);
    free(value);
    return path;
}
