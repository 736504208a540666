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
#include <stddef.h>
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
#include "../plugins/common/hostmatch.h"
#include "dns.h"
#include "log.h"
#include "settings.h"
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

static int set_string(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

/* "127.0.0.1:2525", "[::1]:2525", "*:25" (all IPv4), "[::]:25", each
 * optionally followed by " proxy" (the PROXY protocol on that address) */
static int parse_listen_one(const char *item, up_listen_addr *out, char *err,
                            size_t errlen)
{
    char host[64], addr[80];
    int proxy = 0;
    const char *blank = strpbrk(item, " \t");
    if (blank) {
        const char *word = blank + strspn(blank, " \t");
        if (strcmp(word, "proxy") != 0) {
            snprintf(err, errlen, "'%s': after the address only 'proxy' "
                     "may follow", item);
            return -1;
        }
        if ((size_t)(blank - item) >= sizeof addr) {
            snprintf(err, errlen, "'%s': expected address:port", item);
            return -1;
        }
        memcpy(addr, item, (size_t)(blank - item));
        addr[blank - item] = '\0';
        item = addr;
        proxy = 1;
    }
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
    /* item fits: it was checked against sizeof addr (= sizeof text) */
    size_t tl = strnlen(item, sizeof out->text - 7);
    memcpy(out->text, item, tl);
    memcpy(out->text + tl, proxy ? " proxy" : "", proxy ? 7 : 1);
    out->proxy = proxy;
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

/* The list splitter gives "127.0.0.1:2525 proxy" as two items: the word
 * "proxy" marks the address before it.  1 when item was that word (0 or
 * -1 in *rc), 0 when it is an address to add. */
static int listen_proxy_word(const char *item, up_listen_addr *list, size_t n,
                             int *rc, char *err, size_t errlen)
{
    if (strcmp(item, "proxy") != 0)
        return 0;
    if (n == 0 || list[n - 1].proxy) {
        snprintf(err, errlen, "'proxy' must follow an address "
                 "(addr:port proxy)");
        *rc = -1;
        return 1;
    }
    up_listen_addr *la = &list[n - 1];
    size_t tl = strnlen(la->text, sizeof la->text - 7);
    memcpy(la->text + tl, " proxy", 7);
    la->proxy = 1;
    *rc = 0;
    return 1;
}

static int add_listen(void *arg, const char *item, char *err, size_t errlen)
{
    up_config *cfg = arg;
    int rc;
    if (listen_proxy_word(item, cfg->listen, cfg->n_listen, &rc, err, errlen))
        return rc;
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
    int rc;
    if (listen_proxy_word(item, cfg->smtps_listen, cfg->n_smtps_listen, &rc,
                          err, errlen))
        return rc;
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
    int rc;
    if (listen_proxy_word(item, cfg->submission_listen,
                          cfg->n_submission_listen, &rc, err, errlen))
        return rc;
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
        snprintf(err, errlen, "expected three words, 'name "
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
            snprintf(err, errlen, "'%s' is named twice", word[0]);
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
/* the keys that need more than a type                                     */

/* store = lmdb:PATH | redis://... | redis+unix://... (host/store_url.c) */
static int set_store(void *arg, const char *value, char *err, size_t errlen)
{
    up_config *cfg = arg;
    return up_store_url_parse(value, &cfg->store, err, errlen);
}

static int set_hostname(void *arg, const char *value, char *err,
                        size_t errlen)
{
    up_config *cfg = arg;
    if (!valid_domain(value)) {
        snprintf(err, errlen, "'%s' is not a host name", value);
        return -1;
    }
    return set_string(&cfg->hostname, value);
}

static int set_greeting(void *arg, const char *value, char *err,
                        size_t errlen)
{
    up_config *cfg = arg;
    const char *pct = strchr(value, '%');
    if (pct && (pct[1] != 's' || strchr(pct + 2, '%'))) {
        snprintf(err, errlen, "may hold one %%s (the date and time) and no "
                 "other %%");
        return -1;
    }
    if (strpbrk(value, "\r\n")) {
        snprintf(err, errlen, "must be one line");
        return -1;
    }
    return set_string(&cfg->greeting, value);
}

static int set_timeout_multiplier(void *arg, const char *value, char *err,
                                  size_t errlen)
{
    up_config *cfg = arg;
    return parse_double(value, 0.001, 100, &cfg->timeout_multiplier, err,
                        errlen);
}

static int set_user(void *arg, const char *value, char *err, size_t errlen)
{
    up_config *cfg = arg;
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

static int set_group(void *arg, const char *value, char *err, size_t errlen)
{
    up_config *cfg = arg;
    struct group *gr = getgrnam(value);
    if (gr == NULL) {
        snprintf(err, errlen, "no such group '%s'", value);
        return -1;
    }
    cfg->gid = gr->gr_gid;
    return set_string(&cfg->group, value);
}

static int set_workers(void *arg, const char *value, char *err,
                       size_t errlen)
{
    up_config *cfg = arg;
    if (!strcasecmp(value, "auto")) {
        cfg->workers = 0;
        return 0;
    }
    return parse_int(value, 1, 256, &cfg->workers, err, errlen);
}

/* metrics_listen = ADDR:PORT (one address; empty: off) */
static int set_metrics_listen(void *arg, const char *value, char *err,
                              size_t errlen)
{
    up_config *cfg = arg;
    cfg->has_metrics = 0;
    if (*value == '\0')
        return 0;
    if (parse_listen_one(value, &cfg->metrics_listen, err, errlen) != 0)
        return -1;
    cfg->has_metrics = 1;
    return 0;
}

/* a line replaces the list (unlike listen, which adds up) */
static int set_dns_servers(void *arg, const char *value, char *err,
                           size_t errlen)
{
    up_config *cfg = arg;
    free(cfg->dns_servers);
    cfg->dns_servers = NULL;
    return up_list_each(value, add_dns_server, cfg, err, errlen);
}

static int set_tls_cert(void *arg, const char *value, char *err,
                        size_t errlen)
{
    up_config *cfg = arg;
    return set_tls_file(cfg, &cfg->tls_cert, value, up_tls_check_cert, err,
                        errlen);
}

static int set_tls_key(void *arg, const char *value, char *err,
                       size_t errlen)
{
    up_config *cfg = arg;
    return set_tls_file(cfg, &cfg->tls_key, value, up_tls_check_key, err,
                        errlen);
}

static int set_tls_ticket_key_file(void *arg, const char *value, char *err,
                                   size_t errlen)
{
    up_config *cfg = arg;
    return set_tls_file(cfg, &cfg->tls_ticket_key_file, value,
                        up_tls_check_ticket_key_file, err, errlen);
}

static int set_tls_sni(void *arg, const char *value, char *err,
                       size_t errlen)
{
    return add_tls_sni(arg, value, err, errlen);
}

static int set_tls_ciphers(void *arg, const char *value, char *err,
                           size_t errlen)
{
    up_config *cfg = arg;
    if (up_tls_check_ciphers(value, err, errlen) != 0)
        return -1;
    return set_string(&cfg->tls_ciphers, value);
}

/* several lines add up; addresses only (the right is decided before
 * any DNS lookup) */
static int set_xclient_hosts(void *arg, const char *value, char *err,
                             size_t errlen)
{
    up_config *cfg = arg;
    if (cfg->xclient_hosts == NULL &&
        (cfg->xclient_hosts = hostmatch_new(HOSTMATCH_ADDRESSES)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return hostmatch_add(cfg->xclient_hosts, value, err, errlen);
}

static int set_log_level(void *arg, const char *value, char *err,
                         size_t errlen)
{
    up_config *cfg = arg;
    int level = up_log_level_parse(value);
    if (level < 0) {
        snprintf(err, errlen, "expected one of crit, err, warning, notice, "
                 "info, debug, got '%s'", value);
        return -1;
    }
    cfg->log_level = level;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* smtp.ini                                                                */

#define CFG(field) offsetof(up_config, field)
static const char *const early_talker_actions[] = { "ignore", "reject",
                                                    "drop", NULL };
/* in the order of UP_PIPELINING_IGNORE, _REJECT, _DROP */
static const char *const improper_pipelining_actions[] = { "ignore",
                                                           "reject", "drop",
                                                           NULL };

/* Every key of smtp.ini, in the order of docs/config.md.  Key names and
 * defaults are a contract: tests outside the project rely on them. */
static const upesi_setting smtp_settings[] = {
    { "listen", UPESI_SETTING_LIST, 0, 0, 0, NULL, add_listen,
      "127.0.0.1:2525", "addresses to listen on, `addr:port`; IPv6 as "
      "`[::1]:2525`; `*:25` = all IPv4; repeated lines add. An address "
      "followed by the word `proxy` (`127.0.0.1:2525 proxy`) expects the "
      "PROXY protocol (v1 or v2) first, within `proxy_timeout` (see admin.md, "
      "\"Behind a load balancer\"); so do `smtps_listen` and "
      "`submission_listen` addresses. Bound once by the supervisor for all "
      "its workers; an address another program listens on stops the start "
      "with `cannot listen on ADDR: Address already in use` (admin.md, "
      "\"One server per address\")" },
    { "hostname", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_hostname,
      "(the system's host name)", "used in replies and the Received header" },
    { "greeting", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_greeting,
      "<hostname> ESMTP upesi ready at %s", "text of the 220 greeting; `%s` "
      "= date and time (SMTPGreeting)" },
    { "greeting_delay", UPESI_SETTING_DURATION, CFG(greeting_delay), 0, 60,
      NULL, NULL, "0", "wait before the greeting; a client that talks "
      "meanwhile is an early talker (postscreen's pregreet test)" },
    { "early_talker_action", UPESI_SETTING_ENUM, CFG(early_talker_action),
      0, 0, early_talker_actions, NULL, "ignore", "a client that talks "
      "before the greeting or pipelines without PIPELINING is always noted "
      "(conn note `early_talker`) and counted (`SMTP.Sessions.EarlyTalker`); "
      "`reject`: every MAIL of the session gets `554 5.5.1`; `drop`: `554 "
      "5.5.1` and close at once" },
    { "improper_pipelining_action", UPESI_SETTING_ENUM,
      CFG(improper_pipelining_action), 0, 0, improper_pipelining_actions,
      NULL, "drop", "a client that sends anything after DATA before DATA's "
      "reply (RFC 2920 3.1; what Postfix's "
      "`smtpd_forbid_unauth_pipelining` stops) is always logged, noted "
      "(conn note `improper_pipelining`) and counted "
      "(`SMTP.Sessions.ImproperPipelining`, `SMTP.Command.Invalid`). "
      "`drop`: `554 5.5.0` to that DATA and the connection closed; "
      "`reject`: `554 5.5.0` to that DATA, its content read and thrown "
      "away, every later MAIL refused; `ignore`: DATA answered as usual. "
      "After a refused DATA the content pipelined behind it is never run "
      "as commands; the check is on DATA only, never on BDAT" },
    { "allow_nul", UPESI_SETTING_BOOL, CFG(allow_nul), 0, 0, NULL, NULL, "0",
      "off: a message whose data holds a NUL byte is refused whole with "
      "`554 5.6.0` after its end of data (counted in "
      "`SMTP.Messages.NUL`); on keeps NUL bytes.  DATA only: BDAT content "
      "is counted, never scanned (see CHUNKING below)" },
    { "helo_strict", UPESI_SETTING_BOOL, CFG(helo_strict), 0, 0, NULL, NULL,
      "1", "the EHLO/HELO argument is never over 255 octets nor holds a "
      "control byte, space, DEL or 8-bit byte (`501 5.5.2`); on: it must "
      "also be an RFC 5321 Domain (`_` allowed, labels of at most 63 "
      "octets, no trailing dot) or an address literal; off: other printable "
      "ASCII is taken (Domino's leniency)" },
    { "local_domains", UPESI_SETTING_LIST, 0, 0, 0, NULL, add_local_domain,
      NULL, "domains whose recipients are accepted when no plugin decides; "
      "repeated lines add" },
    { "spool_dir", UPESI_SETTING_PATH, CFG(spool_dir), 0, 0, NULL, NULL,
      "spool", "where queue plugins keep mail; large messages being "
      "received spill here too" },
    { "control_socket", UPESI_SETTING_PATH, CFG(control_socket), 0, 0, NULL,
      NULL, "upesi.sock", "unix socket for `upesi stat` (mode 0600); a "
      "server already answering on it stops the start of another; released "
      "at once on SIGTERM" },
    { "plugin_dir", UPESI_SETTING_PATH, CFG(plugin_dir), 0, 0, NULL, NULL,
      "(the install's plugin directory)", "where `<name>.so` files are "
      "looked up" },
    { "max_command_length", UPESI_SETTING_INT, CFG(max_command_length),
      512, 65536, NULL, NULL, "1200", "longest command line; longer gets "
      "`500 5.5.2` (SMTPMaxCommandLength); at least 512 (RFC 5321)" },
    { "max_message_size", UPESI_SETTING_SIZE, CFG(max_message_size), 0,
      1099511627776.0, NULL, NULL, "26214400", "advertised in EHLO SIZE; "
      "larger gets `552 5.3.4` at MAIL SIZE=, at end of data or at the "
      "BDAT chunk that goes over it; `0` = no limit" },
    { "max_sessions", UPESI_SETTING_INT, CFG(max_sessions), 1, 1000000, NULL,
      NULL, "1000", "concurrent sessions per worker; more get `421 4.7.0` "
      "and are closed (SMTPMaxSessions)" },
    { "error_limit", UPESI_SETTING_INT, CFG(error_limit), 1, 100000, NULL,
      NULL, "20", "rejected or invalid commands a session may send; one "
      "more gets `421 4.7.0` and the session is closed (SMTPErrorLimit)" },
    { "timeout_multiplier", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,
      set_timeout_multiplier, "1", "a number from 0.001 to 100: the RFC "
      "5321 4.5.3.2 server timeout (5 minutes, restarted by every read) "
      "times this, and `command_deadline` and `data_deadline` too "
      "(SMTPTimeoutMultiplier); past the timeout `421 4.4.2`, closed, "
      "counted in `SMTP.Sessions.Timeout`" },
    { "command_deadline", UPESI_SETTING_DURATION, CFG(command_deadline), 0,
      86400, NULL, NULL, "300", "times `timeout_multiplier`: a command line "
      "must be complete this long after its first byte, however often "
      "bytes come; past it `421 4.4.2`, the session is closed, counted in "
      "`SMTP.Sessions.Deadline`; `0` = no deadline (admin.md, \"Slow "
      "clients\")" },
    { "data_deadline", UPESI_SETTING_DURATION, CFG(data_deadline), 0, 86400,
      NULL, NULL, "600", "times `timeout_multiplier`: the message content "
      "must be complete this long after the `354` (a BDAT chunk: after its "
      "command; RFC 5321 4.5.3.2's 10 minutes as the scale); past it `421 4.4.2`, closed, counted in "
      "`SMTP.Sessions.Deadline`; `0` = no deadline. 25 MB in 10 minutes "
      "needs about 350 kbit/s: raise it if large messages come over slow "
      "links" },
    { "stop_timeout", UPESI_SETTING_DURATION, CFG(stop_timeout), 0, 3600,
      NULL, NULL, "30", "after SIGTERM, transactions in progress may take "
      "this long to finish; then `421 4.3.2` and closed. Sessions without "
      "a transaction are closed at once (admin.md, \"Stopping\")" },
    { "proxy_timeout", UPESI_SETTING_DURATION, CFG(proxy_timeout), 0.1,
      3600, NULL, NULL, "5", "on an address marked `proxy`, the PROXY "
      "protocol header must arrive this long after the connection; past "
      "it `421 4.7.0`, closed, counted in `SMTP.Sessions.ProxyRefused` "
      "(as Postfix's smtpd_upstream_proxy_timeout; not times "
      "`timeout_multiplier`: the balancer, not the client, sends it)" },
    { "plugin_timeout", UPESI_SETTING_DURATION, CFG(plugin_timeout), 0.01,
      3600, NULL, NULL, "30", "time a plugin may take to answer a hook; "
      "then `451 4.3.0`" },
    { "pipelining", UPESI_SETTING_BOOL, CFG(pipelining), 0, 0, NULL, NULL,
      "1", "advertise PIPELINING (RFC 2920); without it, a client that "
      "sends ahead is noted as an early talker" },
    { "smtputf8", UPESI_SETTING_BOOL, CFG(smtputf8), 0, 0, NULL, NULL, "1",
      "advertise SMTPUTF8 (RFC 6531/6532): `MAIL FROM:<...> SMTPUTF8` allows "
      "UTF-8 local parts and internationalized domains in that transaction, "
      "checked as well-formed UTF-8 and, for a domain, as IDNA2008 "
      "(libidn2): else `553 5.6.7` or `553 5.1.2`/`5.1.8`. Without the "
      "parameter a non-ASCII address is `553 5.6.7`. Kept in the spool "
      "envelope (`Mail-Params`). off: not offered, the parameter is "
      "`555 5.5.4`" },
    { "dsn", UPESI_SETTING_BOOL, CFG(dsn), 0, 0, NULL, NULL, "1",
      "advertise DSN (RFC 3461): `RET=FULL|HDRS` and `ENVID=` (xtext, at "
      "most 100 characters) on MAIL, `NOTIFY=NEVER` or a list of "
      "`SUCCESS,FAILURE,DELAY` and `ORCPT=type;xtext` (`rfc822`, or "
      "`utf-8` per RFC 6533) on RCPT; a malformed value is `501 5.5.4`. "
      "Kept in the spool envelope (`Mail-Params`, `Rcpt-Params`) and "
      "honoured by queue_forward. off: not offered, `555 5.5.4`" },
    { "vrfy", UPESI_SETTING_BOOL, CFG(vrfy), 0, 0, NULL, NULL, "0",
      "off: VRFY answers `252 2.5.2`; on: the `vrfy` hook answers (the "
      "directory plugin)" },
    { "received_version", UPESI_SETTING_BOOL, CFG(received_version), 0, 0,
      NULL, NULL, "1", "off leaves the version out of the Received header "
      "(SMTPNoVersionInRcvdHdr)" },
    { "workers", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_workers, "1",
      "worker processes, 1 to 256; `auto` = one per core" },
    { "log_level", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_log_level,
      "info", "one of `crit`, `err`, `warning`, `notice`, `info`, `debug`" },
    { "metrics_listen", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,
      set_metrics_listen, "(off)", "`ADDR:PORT` where the supervisor serves "
      "every statistic at `/metrics` in the Prometheus text format, summed "
      "over workers (docs/admin.md, Monitoring); keep it on loopback or "
      "behind a firewall: it has no authentication" },
    { "log_syslog", UPESI_SETTING_BOOL, CFG(log_syslog), 0, 0, NULL, NULL,
      "0", "also log to syslog (mail facility)" },
    { "user", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_user, NULL,
      "started as root, workers drop to this account after binding; the "
      "spool and the control socket are handed to it" },
    { "group", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_group,
      "(the user's group)", "the group workers drop to" },
    { "dns_servers", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_dns_servers,
      "(/etc/resolv.conf)", "a list of `addr[:port]`, IPv6 as `[::1]:5353` "
      "(see dns.md); a line replaces the list" },
    { "dns_timeout", UPESI_SETTING_DURATION, CFG(dns_timeout), 0.001, 300,
      NULL, NULL, "5", "per DNS query; keep it below `plugin_timeout`" },
    { "dns_cache_size", UPESI_SETTING_INT, CFG(dns_cache_size), 0, 10000000,
      NULL, NULL, "10000", "answers cached (TTL honoured, negative answers "
      "too); `0` = no cache" },
    { "tls_cert", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_tls_cert, NULL,
      "PEM certificate file; with `tls_key`, EHLO offers STARTTLS (see "
      "tls.md)" },
    { "tls_key", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_tls_key, NULL,
      "PEM key file of `tls_cert`" },
    { "tls_ciphers", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_tls_ciphers,
      "(a TLS 1.2/1.3 AEAD list)", "OpenSSL-style cipher list" },
    { "tls_sni", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_tls_sni, NULL,
      "repeatable: `NAME CERT KEY`, a certificate for clients whose SNI is "
      "`NAME` (`*.domain` for one label); others get `tls_cert` (see "
      "tls.md)" },
    { "smtps_listen", UPESI_SETTING_LIST, 0, 0, 0, NULL, add_smtps_listen,
      NULL, "implicit-TLS listeners (RFC 8314, port 465 style)" },
    { "require_tls", UPESI_SETTING_BOOL, CFG(require_tls), 0, 0, NULL, NULL,
      "0", "on: MAIL before STARTTLS gets `530 5.7.0`" },
    { "tls_handshake_timeout", UPESI_SETTING_DURATION,
      CFG(tls_handshake_timeout), 0.1, 3600, NULL, NULL, "30",
      "time a TLS handshake may take" },
    { "tls_session_timeout", UPESI_SETTING_INT, CFG(tls_session_timeout),
      60, 604800, NULL, NULL, "3600", "seconds a TLS session may be resumed; "
      "the ticket key changes as often (see tls.md)" },
    { "tls_session_tickets", UPESI_SETTING_BOOL, CFG(tls_session_tickets),
      0, 0, NULL, NULL, "yes", "issue and accept TLS session tickets (TLS "
      "1.2 and 1.3)" },
    { "tls_ticket_key_file", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,
      set_tls_ticket_key_file, NULL, "file of 32 to 65536 secret bytes the "
      "ticket keys come from: tickets outlive restarts and work on every "
      "host with the same file; none = a random secret per start" },
    { "tls_session_cache_size", UPESI_SETTING_INT,
      CFG(tls_session_cache_size), 0, 1000000, NULL, NULL, "10000",
      "TLS sessions the workers share for resumption by session ID (about "
      "530 bytes each; `0` = wolfSSL's own 33 per worker); read at start "
      "only" },
    { "submission_listen", UPESI_SETTING_LIST, 0, 0, 0, NULL,
      add_submission_listen, NULL, "submission listeners (RFC 6409, port "
      "587 style): MAIL before AUTH gets `530 5.7.0` (see auth.md)" },
    { "xclient_hosts", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,
      set_xclient_hosts, NULL, "hosts that may send XCLIENT (Postfix's: "
      "`NAME ADDR PORT PROTO HELO LOGIN`) and see it in EHLO: addresses, "
      "CIDR ranges, IPv4 wildcards; lines add up; decided on the address "
      "the session began with (after a PROXY header); others get `550 "
      "5.7.0`, counted in `SMTP.Command.Invalid` (see admin.md, \"Behind a "
      "load balancer\")" },
    { "auth_failure_delay", UPESI_SETTING_DURATION, CFG(auth_failure_delay),
      0, 60, NULL, NULL, "1", "wait before a failed AUTH's `535`; doubles "
      "with each failure of the session, at most 8 times this (see "
      "auth.md)" },
    { "store", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, set_store,
      "lmdb:store", "where plugins keep shared state (rate limits, "
      "greylisting, `upesi.kv`, Bayes tokens): `lmdb:PATH` (a relative path "
      "is under `spool_dir`), `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` "
      "or `redis+unix://[[USER]:PASSWORD@]/PATH[?db=N]` (see store.md); "
      "read at start only" },
    { "store_timeout", UPESI_SETTING_INT, CFG(store_timeout), 10, 60000,
      NULL, NULL, "1000", "milliseconds a store call may take; then the "
      "plugin gets an error and its `store_failure` decides; keep it below "
      "`plugin_timeout`" },
    { "store_size", UPESI_SETTING_SIZE, CFG(store_size), 1048576,
      1099511627776.0, NULL, NULL, "1G", "the LMDB file's limit; when "
      "full, writes fail with a log line naming this key; read at start "
      "only (see store.md)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};
#undef CFG

const upesi_setting *up_config_smtp_settings(void)
{
    return smtp_settings;
}

int config_smtp_ini_key(void *arg, const char *section, const char *key,
                        const char *value, char *err, size_t errlen)
{
    up_config *cfg = arg;
    if (section[0] != '\0') {
        snprintf(err, errlen, "unknown section [%s] (smtp.ini keys live "
                 "at the top of the file)", section);
        return -1;
    }
    const upesi_setting *s = up_setting_find(smtp_settings, key);
    if (s == NULL) {
        snprintf(err, errlen, "unknown key '%s'", key);
        return -1;
    }
    return up_setting_apply(s, cfg, cfg->dir, value, err, errlen);
}

int config_defaults(up_config *cfg)
{
    cfg->workers = 1;
    cfg->log_level = UPESI_LOG_INFO;
    cfg->timeout_multiplier = 1;
    cfg->uid = (uid_t)-1;
    cfg->gid = (gid_t)-1;
    char err[512] = "";
    if (up_settings_defaults(smtp_settings, cfg, cfg->dir, err,
                             sizeof err) != 0) {
        up_log(NULL, UPESI_LOG_ERR, "smtp.ini defaults: %s", err);
        return -1;
    }
    return 0;
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
    if ((double)cfg->store_timeout >= cfg->plugin_timeout * 1000)
        up_log(NULL, UPESI_LOG_WARNING, "%s: store_timeout (%d ms) is not "
               "below plugin_timeout (%gs): a slow store will make plugins "
               "time out instead of applying their store_failure", file,
               cfg->store_timeout, cfg->plugin_timeout);
    if (cfg->n_local_domains == 0)
        up_log(NULL, UPESI_LOG_WARNING, "%s: no local_domains: every "
               "recipient will be refused unless a plugin accepts it", file);
    /* hiredis resolves a host name with the system's resolver, which
     * blocks: at each connect attempt, every 2 s while Redis is down, the
     * worker would wait for it (and a cut network cuts DNS too) */
    unsigned char addr[sizeof(struct in6_addr)];
    if (cfg->store.kind == UP_STORE_REDIS && cfg->store.host[0] &&
        inet_pton(AF_INET, cfg->store.host, addr) != 1 &&
        inet_pton(AF_INET6, cfg->store.host, addr) != 1)
        up_log(NULL, UPESI_LOG_WARNING, "%s: store names the host %s: it is "
               "looked up, blocking the worker, at each connect attempt; "
               "give its address (or a unix socket) where DNS may be slow "
               "or down with Redis", file, cfg->store.host);
    /* spool_dir, control_socket, plugin_dir: PATH settings, resolved
     * against the configuration directory when set (defaults included);
     * plugin_dir's default is where the build installs plugins */
    if (cfg->plugin_dir == NULL &&
        (cfg->plugin_dir = strdup(UPESI_PLUGIN_DIR)) == NULL)
        return -1;
    /* the store: lmdb:store under spool_dir by default; a relative lmdb
     * path is under spool_dir too (state lives beside the spool) */
    if (cfg->store.kind == 0) {
        cfg->store.kind = UP_STORE_LMDB;
        strcpy(cfg->store.path, "store");
    }
    if (cfg->store.kind == UP_STORE_LMDB && cfg->store.path[0] != '/') {
        char abs[sizeof cfg->store.path];
        int n = snprintf(abs, sizeof abs, "%s/%s", cfg->spool_dir,
                         cfg->store.path);
        if (n < 0 || (size_t)n >= sizeof abs) {
            up_log(NULL, UPESI_LOG_ERR, "%s: store: the path is too long",
                   file);
            return -1;
        }
        strcpy(cfg->store.path, abs);
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
