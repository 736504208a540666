/*
 * directory.c - the role of the Domino Directory for inbound mail: "verify
 * that local domain recipients exist", SMTPDenyNotUniqueRCPT, and VRFY
 * answered the way Domino answers it (DESIGN.md 6, docs/plugins/directory.md,
 * the file format in docs/directory.md).
 *
 * conf/directory.ini:
 *   file = directory        the directory file, relative to the conf dir
 *   deny_not_unique = 0|1   1: a recipient that names more than one entry
 *                           gets 553 5.1.4 (SMTPDenyNotUniqueRCPT)
 *
 * RCPT to an address in local_domains is looked up by its address (aliases
 * included), then by its local part as a name: short name, full name or
 * group name, with '.' and '_' read as blanks ("bob.example" finds "Bob
 * Example").  Case never matters.  Unknown: 550 5.1.1.  Not unique, with
 * deny_not_unique = 1: 553 5.1.4.  Known: the transaction note
 * "rcpt.kind.<address>" = "person" or "group" (group when any of the
 * entries it names is one), and CONT, so that later plugins (deny_groups,
 * relay) still run; the host accepts a local recipient when all say CONT.
 * "postmaster" at a local domain is always let through (RFC 5321 4.5.1).
 * Recipients outside local_domains are not the directory's business: CONT.
 *
 * VRFY (the host runs the hook only with smtp.ini vrfy = 1), Domino style:
 *   250 2.1.5 Full Name <address>       one person
 *   550 5.7.1 <address> is a group      one group
 *   553 5.1.4 ... not unique            more than one entry
 *   550 5.1.1 ... not a valid user      nothing
 *   252 (the host's)                    an address outside local_domains
 *                                       that the directory does not hold
 *
 * The file is loaded at every configuration generation (start, SIGHUP), in
 * config_check: a bad file fails `upesi -t` and a reload with "file:line:"
 * messages, and the running generation keeps its directory.
 *
 * Fails: loading errors are configuration errors; lookups cannot fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <strings.h>
#include <time.h>

#include "upesi/plugin.h"
#include "../common/dir_table.h"
#include "../common/settings.h"

static const upesi_api *dir_api;
static upesi_ctx *dir_ctx;

typedef struct dir_config {
    char *file;                  /* as written in directory.ini          */
    int deny_not_unique;
    dir_table *table;            /* loaded by config_check               */
} dir_config;

/* ---------------------------------------------------------------------- */
/* settings                                                               */

static void *dir_config_new(void)
{
    dir_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return NULL;
    if ((cfg->file = strdup("directory")) == NULL) {
        free(cfg);
        return NULL;
    }
    return cfg;
}

static void dir_config_free(void *config)
{
    dir_config *cfg = config;
    if (cfg == NULL)
        return;
    dir_table_free(cfg->table);
    free(cfg->file);
    free(cfg);
}

static int dir_set_file(void *config, const char *value, char *err,
                        size_t errlen)
{
    dir_config *cfg = config;
    if (*value == '\0') {
        snprintf(err, errlen, "empty (default: directory)");
        return -1;
    }
    return settings_string(&cfg->file, value, err, errlen);
}

static const upesi_setting dir_settings[] = {
    { "file", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, dir_set_file, "directory",
      "the directory file, relative to the configuration directory; format "
      "in docs/directory.md (the Domino Directory)" },
    { "deny_not_unique", UPESI_SETTING_BOOL,
      offsetof(dir_config, deny_not_unique), 0, 0, NULL, NULL, "0",
      "on: a recipient that names more than one entry gets 553 5.1.4 "
      "(SMTPDenyNotUniqueRCPT)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

static int dir_config_check(void *config, char *err, size_t errlen)
{
    dir_config *cfg = config;
    char *path;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cfg->table = dir_table_load_config(dir_api, dir_ctx, cfg->file,
                                       &path, err, errlen);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (cfg->table == NULL)
        return -1;
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    dir_api->log(dir_ctx, UPESI_LOG_INFO, "%s: %zu persons, %zu "
                 "groups, %zu names not unique, loaded in %.1f ms", path,
                 dir_table_persons(cfg->table), dir_table_groups(cfg->table),
                 dir_table_not_unique(cfg->table), ms);
    dir_api->free(path);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* lookups                                                                */

/* The local part without its quotes ("a b"@x -> a b), into buf.  Returns
 * its length, or -1 if it does not fit. */
static long dir_unquote(const char *local, size_t len, char *buf,
                        size_t buflen)
{
    size_t n = 0;
    int quoted = 0;
    for (size_t i = 0; i < len; i++) {
        char c = local[i];
        if (c == '"') {
            quoted = !quoted;
            continue;
        }
        if (quoted && c == '\\' && i + 1 < len)
            c = local[++i];
        if (n + 1 >= buflen)
            return -1;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return (long)n;
}

/* Look an address up: whole (quotes removed), then its local part as a
 * name.  local_ok: also try the local part (only for local domains). */
static void dir_lookup_address(const dir_table *t, const char *address,
                               int local_ok, dir_match *m)
{
    memset(m, 0, sizeof *m);
    const char *at = strrchr(address, '@');
    if (at == NULL)
        return;
    char buf[1100];
    long llen = dir_unquote(address, (size_t)(at - address), buf,
                            sizeof buf - 300);
    size_t dlen = strlen(at);
    if (llen < 0 || (size_t)llen + dlen >= sizeof buf)
        return;
    memcpy(buf + llen, at, dlen + 1);
    dir_table_find(t, buf, (size_t)llen + dlen, m);
    int eight = 0;
    for (const char *p = at + 1; *p; p++)
        eight |= (unsigned char)*p >= 0x80;
    char alabels[300];
    if (m->entry == NULL && eight &&
        UPESI_API_SUPPORTED(dir_api, domain_to_ascii) &&
        dir_api->domain_to_ascii(at + 1, alabels, sizeof alabels) == 0 &&
        (size_t)llen + 1 + strlen(alabels) < sizeof buf) {
        /* an IDN domain (SMTPUTF8): the directory's entry may name it by
         * its A-labels */
        snprintf(buf + llen, sizeof buf - (size_t)llen, "@%s", alabels);
        dir_table_find(t, buf, strlen(buf), m);
        if (m->entry)
            return;
    }
    if (m->entry || !local_ok || llen == 0)
        return;
    dir_table_find(t, buf, (size_t)llen, m);
    if (m->entry)
        return;
    int changed = 0;
    for (long i = 0; i < llen; i++)
        if (buf[i] == '.' || buf[i] == '_') {
            buf[i] = ' ';
            changed = 1;
        }
    if (changed)
        dir_table_find(t, buf, (size_t)llen, m);
}

static int dir_is_postmaster(const char *address)
{
    const char *at = strrchr(address, '@');
    size_t len = at ? (size_t)(at - address) : strlen(address);
    return len == 10 && !strncasecmp(address, "postmaster", 10);
}

/* ---------------------------------------------------------------------- */
/* hooks                                                                  */

static upesi_verdict dir_rcpt(upesi_call *call)
{
    const dir_config *cfg = dir_api->config(call);
    const char *rcpt = dir_api->address(call);
    if (cfg == NULL || cfg->table == NULL || rcpt == NULL ||
        strchr(rcpt, '@') == NULL || !dir_api->is_local_domain(call, rcpt))
        return UPESI_CONT;
    dir_match m;
    dir_lookup_address(cfg->table, rcpt, 1, &m);
    if (m.entry == NULL) {
        if (dir_is_postmaster(rcpt))
            return UPESI_CONT;
        dir_api->stat_add(dir_ctx, "SMTP.Directory.Unknown", 1);
        dir_api->log_call(call, UPESI_LOG_INFO, "recipient <%s> refused: not in "
                     "the directory", rcpt);
        dir_api->reply(call, 550, "5.1.1", "<%s>: Recipient address "
                       "rejected: no such user here", rcpt);
        return UPESI_DENY;
    }
    if (m.count > 1) {
        dir_api->stat_add(dir_ctx, "SMTP.Directory.NotUnique", 1);
        if (cfg->deny_not_unique) {
            dir_api->log_call(call, UPESI_LOG_INFO, "recipient <%s> refused: "
                         "names %zu entries (deny_not_unique = 1)", rcpt,
                         m.count);
            dir_api->reply(call, 553, "5.1.4", "<%s>: Recipient address "
                           "rejected: ambiguous, more than one entry in the "
                           "directory matches", rcpt);
            return UPESI_DENY;
        }
        dir_api->log_call(call, UPESI_LOG_INFO, "recipient <%s> names %zu entries; "
                     "accepted (deny_not_unique = 0)", rcpt, m.count);
    }
    const char *kind = m.any_group || m.entry->kind == DIR_GROUP ? "group"
                                                                 : "person";
    char key[1100];
    snprintf(key, sizeof key, "rcpt.kind.%s", rcpt);
    dir_api->note_set(call, UPESI_SCOPE_TXN, key, kind);
    return UPESI_CONT;
}

/* VRFY's argument: "bob", "Bob Example", "<bob@example.com>",
 * "Bob Example <bob@example.com>".  Trimmed, the <> part if any. */
static size_t dir_vrfy_subject(const char *arg, char *buf, size_t buflen)
{
    const char *lt = strchr(arg, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    const char *a = arg, *b = arg + strlen(arg);
    if (lt && gt) {
        a = lt + 1;
        b = gt;
    }
    while (a < b && (*a == ' ' || *a == '\t'))
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    size_t len = (size_t)(b - a);
    if (len >= buflen)
        len = buflen - 1;
    memcpy(buf, a, len);
    buf[len] = '\0';
    return len;
}

static upesi_verdict dir_vrfy(upesi_call *call)
{
    const dir_config *cfg = dir_api->config(call);
    const char *arg = dir_api->address(call);
    if (cfg == NULL || cfg->table == NULL || arg == NULL)
        return UPESI_CONT;
    char subject[1024];
    size_t len = dir_vrfy_subject(arg, subject, sizeof subject);
    if (len == 0)
        return UPESI_CONT;
    dir_match m;
    int local = 1;
    if (strchr(subject, '@')) {
        local = dir_api->is_local_domain(call, subject);
        dir_lookup_address(cfg->table, subject, local, &m);
    } else {
        dir_table_find(cfg->table, subject, len, &m);
    }
    if (m.entry == NULL) {
        if (!local)
            return UPESI_CONT;          /* the host's 252 */
        dir_api->reply(call, 550, "5.1.1", "%s... not a valid user", subject);
        return UPESI_DENY;
    }
    if (m.count > 1) {
        dir_api->reply(call, 553, "5.1.4", "%s... not unique: %zu entries "
                       "in the directory match", subject, m.count);
        return UPESI_DENY;
    }
    if (m.entry->kind == DIR_GROUP) {
        if (m.entry->address)
            dir_api->reply(call, 550, "5.7.1", "<%s> is a group",
                           m.entry->address);
        else
            dir_api->reply(call, 550, "5.7.1", "%s is a group", m.entry->name);
        return UPESI_DENY;
    }
    dir_api->reply(call, 250, "2.1.5", "%s <%s>", m.entry->name,
                   m.entry->address);
    return UPESI_OK;
}

static int dir_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                    size_t errlen)
{
    dir_ctx = ctx;
    (void)err;
    (void)errlen;
    dir_api = api;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "directory",
    .version = "1.0",
    .init = dir_init,
    .config_new = dir_config_new,
    .settings = dir_settings,
    .config_check = dir_config_check,
    .config_free = dir_config_free,
    .hooks = {
        [UPESI_HOOK_RCPT] = dir_rcpt,
        [UPESI_HOOK_VRFY] = dir_vrfy,
    },
};
