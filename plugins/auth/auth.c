/*
 * auth.c - SMTP AUTH accounts from the directory, and the policies of an
 * authenticated session (docs/auth.md, docs/plugins/auth.md; the host
 * speaks the AUTH exchange, RFC 4954).
 *
 * conf/auth.ini:
 *   file = directory        the directory file (docs/directory.md) whose
 *                           persons carry password= crypt(3) hashes; empty:
 *                           no accounts here (another plugin, a Lua script,
 *                           answers the auth hook)
 *   allow_plaintext = 0|1   offer AUTH outside TLS too (default 0)
 *   verify_sender = 0|1     SMTPVerifyAuthenticatedSender: MAIL FROM of an
 *                           authenticated session must be one of the
 *                           user's addresses, else 553 5.7.1
 *   require_auth_hosts = .. hosts (addresses, ranges, '*') that must
 *                           authenticate before MAIL: 530 5.7.0
 *                           (SMTPAllowConnectionsAnonymous = no for them)
 *
 * helo: offers "AUTH PLAIN LOGIN" (api->ehlo_extension) after EHLO inside
 * TLS, or anywhere with allow_plaintext = 1.
 * auth: the user is looked up like a VRFY subject (address, alias, short
 * name or full name; one person, with password=); the password is checked
 * with crypt_rn on a pool thread (yescrypt costs milliseconds: never on
 * the loop) and the result compared in constant time.  A user the
 * directory does not know costs the same crypt against a dummy hash, so
 * the answer's timing does not tell who exists; then CONT, so that a
 * later plugin may know the user.  Known user, wrong password: DENY.
 * mail: require_auth_hosts, then verify_sender.
 *
 * Nothing here logs a user name or a password above debug level.
 *
 * Fails: a bad file or hash is a configuration error (file:line); a pool
 * thread that cannot run answers DENYSOFT (454 4.7.0).
 */
#include <crypt.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upesi/plugin.h"
#include "../common/hostmatch.h"
#include "../common/settings.h"
#include "../common/dir_table.h"

static const upesi_api *auth_api;
static upesi_ctx *auth_ctx;

/* The credentials of one check, owned by the pool job. */
#define AUTH_MAX_FIELD 256

typedef struct auth_config {
    char *file;                  /* "" = no accounts                      */
    int allow_plaintext;
    int verify_sender;
    hostmatch_list *require_hosts;
    dir_table *table;            /* loaded by config_check                */
    char dummy[CRYPT_OUTPUT_SIZE]; /* hash checked for unknown users      */
} auth_config;

/* ---------------------------------------------------------------------- */
/* settings                                                               */

static void auth_config_free(void *config)
{
    auth_config *cfg = config;
    if (cfg == NULL)
        return;
    dir_table_free(cfg->table);
    hostmatch_free(cfg->require_hosts);
    auth_api->free(cfg->file);       /* the host's copy (a STRING setting) */
    free(cfg);
}

static void *auth_config_new(void)
{
    auth_config *cfg = calloc(1, sizeof *cfg);  /* the rest: auth_settings */
    if (cfg == NULL)
        return NULL;
    cfg->require_hosts = hostmatch_new(HOSTMATCH_ADDRESSES);
    if (cfg->require_hosts == NULL) {
        auth_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static int auth_require_hosts(void *config, const char *item, char *err,
                              size_t errlen)
{
    auth_config *cfg = config;
    return hostmatch_add(cfg->require_hosts, item, err, errlen);
}

static const upesi_setting auth_settings[] = {
    { "file", UPESI_SETTING_STRING, offsetof(auth_config, file), 0, 0, NULL,
      NULL, "directory", "the directory file (docs/directory.md) whose "
      "persons carry `password=`; empty: no accounts here, another plugin "
      "answers" },
    { "allow_plaintext", UPESI_SETTING_BOOL,
      offsetof(auth_config, allow_plaintext), 0, 0, NULL, NULL, "0",
      "on: offer AUTH outside TLS too (the password crosses the network in "
      "clear)" },
    { "verify_sender", UPESI_SETTING_BOOL,
      offsetof(auth_config, verify_sender), 0, 0, NULL, NULL, "0",
      "on: in an authenticated session MAIL FROM must be one of the user's "
      "addresses, else `553 5.7.1` (SMTPVerifyAuthenticatedSender)" },
    { "require_auth_hosts", UPESI_SETTING_LIST, 0, 0, 0, NULL,
      auth_require_hosts, NULL, "hosts (addresses, CIDR ranges, IPv4 "
      "wildcards, `*`) that must authenticate before MAIL "
      "(SMTPAllowConnectionsAnonymous)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

static int auth_config_check(void *config, char *err, size_t errlen)
{
    auth_config *cfg = config;
    /* the dummy: a hash of the default method, made once per generation */
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (cd == NULL || crypt_gensalt_rn(NULL, 0, NULL, 0, salt,
                                       sizeof salt) == NULL ||
        crypt_rn("upesi-no-such-user", salt, cd, sizeof *cd) == NULL) {
        free(cd);
        snprintf(err, errlen, "libcrypt cannot make a hash: %s",
                 strerror(errno ? errno : ENOMEM));
        return -1;
    }
    snprintf(cfg->dummy, sizeof cfg->dummy, "%s", cd->output);
    free(cd);
    if (cfg->file[0] == '\0')
        return 0;
    char *path;
    cfg->table = dir_table_load_config(auth_api, auth_ctx, cfg->file, &path,
                                       err, errlen);
    if (cfg->table == NULL)
        return -1;
    size_t accounts = 0;
    const dir_entry *e;
    for (size_t i = 0; (e = dir_table_entry(cfg->table, i)) != NULL; i++) {
        if (e->password == NULL)
            continue;
        if (crypt_checksalt(e->password) != CRYPT_SALT_OK) {
            snprintf(err, errlen, "%s:%d: password of \"%s\": not a hash "
                     "this libcrypt can check (use yescrypt $y$ or "
                     "SHA-512 $6$, e.g. from mkpasswd)", path, e->line,
                     e->name);
            auth_api->free(path);
            return -1;
        }
        accounts++;
    }
    auth_api->log(auth_ctx, UPESI_LOG_INFO, "%s: %zu account%s with a "
                  "password", path, accounts, accounts == 1 ? "" : "s");
    if (accounts == 0)
        auth_api->log(auth_ctx, UPESI_LOG_WARNING, "%s: no person has a "
                      "password=: nobody can authenticate from this file",
                      path);
    auth_api->free(path);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* the check, on a pool thread                                            */

typedef struct auth_job {
    upesi_call *call;
    int known;                   /* the user has a password in the file  */
    int ok;
    char password[AUTH_MAX_FIELD];
    char hash[CRYPT_OUTPUT_SIZE];
    struct crypt_data cd;
} auth_job;

/* Equal strings, in a time that depends on their lengths only. */
static int auth_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la > lb ? la : lb;
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < la ? (unsigned char)a[i] : 0;
        unsigned char y = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(x ^ y);
    }
    return diff == 0;
}

static void auth_work(void *arg)
{
    auth_job *j = arg;
    const char *out = crypt_rn(j->password, j->hash, &j->cd, sizeof j->cd);
    j->ok = j->known && out != NULL && out[0] != '*' &&
            auth_equal(out, j->hash);
    explicit_bzero(j->password, sizeof j->password);
    explicit_bzero(&j->cd, sizeof j->cd);
}

static void auth_done(void *arg, int status)
{
    auth_job *j = arg;
    upesi_verdict v;
    if (status < 0) {
        auth_api->reply(j->call, 454, "4.7.0", "Temporary authentication "
                        "failure");
        v = UPESI_DENYSOFT;
    } else if (j->ok) {
        v = UPESI_OK;
    } else {
        v = j->known ? UPESI_DENY : UPESI_CONT;
        auth_api->log_call(j->call, UPESI_LOG_DEBUG, "%s", j->known
                      ? "wrong password" : "no such account here");
    }
    upesi_call *call = j->call;
    explicit_bzero(j, sizeof *j);
    free(j);
    auth_api->resume(call, v);  /* harmless if the host gave up */
}

/* The person a user name names: one person with a password, or NULL. */
static const dir_entry *auth_account(const auth_config *cfg, const char *user)
{
    if (cfg->table == NULL || user == NULL)
        return NULL;
    dir_match m;
    dir_table_find(cfg->table, user, strlen(user), &m);
    if (m.entry == NULL || m.count != 1 || m.entry->kind != DIR_PERSON ||
        m.entry->password == NULL)
        return NULL;
    return m.entry;
}

static upesi_verdict auth_check(upesi_call *call)
{
    const auth_config *cfg = auth_api->config(call);
    const char *user = auth_api->auth_user(call);
    const char *password = auth_api->auth_password(call);
    if (cfg == NULL || cfg->table == NULL || user == NULL ||
        password == NULL || strlen(password) >= AUTH_MAX_FIELD)
        return UPESI_CONT;
    auth_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        auth_api->reply(call, 454, "4.7.0", "Temporary authentication "
                        "failure");
        return UPESI_DENYSOFT;
    }
    const dir_entry *e = auth_account(cfg, user);
    j->call = call;
    j->known = e != NULL;
    snprintf(j->password, sizeof j->password, "%s", password);
    snprintf(j->hash, sizeof j->hash, "%s", e ? e->password : cfg->dummy);
    int rc = auth_api->queue_work(auth_ctx, auth_work, auth_done, j);
    if (rc != 0) {
        explicit_bzero(j, sizeof *j);
        free(j);
        auth_api->reply(call, 454, "4.7.0", "Temporary authentication "
                        "failure");
        return UPESI_DENYSOFT;
    }
    return UPESI_PENDING;
}

/* ---------------------------------------------------------------------- */
/* EHLO and MAIL                                                          */

static upesi_verdict auth_helo(upesi_call *call)
{
    const auth_config *cfg = auth_api->config(call);
    const upesi_conn_info *conn = auth_api->conn(call);
    if (cfg == NULL || conn == NULL || !conn->esmtp)
        return UPESI_CONT;
    if (conn->tls || cfg->allow_plaintext)
        auth_api->ehlo_extension(call, "AUTH PLAIN LOGIN");
    return UPESI_CONT;
}

static upesi_verdict auth_mail(upesi_call *call)
{
    const auth_config *cfg = auth_api->config(call);
    const upesi_conn_info *conn = auth_api->conn(call);
    const char *sender = auth_api->address(call);
    if (cfg == NULL || conn == NULL || sender == NULL)
        return UPESI_CONT;
    if (!conn->authenticated) {
        if (hostmatch_count(cfg->require_hosts) &&
            hostmatch_ip(cfg->require_hosts, conn->remote_ip)) {
            auth_api->stat_add(auth_ctx, "SMTP.Auth.Required", 1);
            auth_api->log_call(call, UPESI_LOG_INFO, "MAIL before AUTH from %s "
                          "refused (require_auth_hosts)", conn->remote_ip);
            auth_api->reply(call, 530, "5.7.0", "Authentication required");
            return UPESI_DENY;
        }
        return UPESI_CONT;
    }
    if (!cfg->verify_sender)
        return UPESI_CONT;
    const dir_entry *user = auth_account(cfg, conn->auth_user);
    dir_match m = { 0 };
    if (user && sender[0])
        dir_table_find(cfg->table, sender, strlen(sender), &m);
    if (user && m.entry == user)
        return UPESI_CONT;
    auth_api->stat_add(auth_ctx, "SMTP.Auth.SenderRejected", 1);
    auth_api->log_call(call, UPESI_LOG_INFO, "sender <%s> refused: not an address "
                  "of the authenticated user (verify_sender = 1)", sender);
    auth_api->reply(call, 553, "5.7.1", "<%s>: Sender address rejected: not "
                    "owned by the authenticated user", sender);
    return UPESI_DENY;
}

static int auth_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                     size_t errlen)
{
    auth_ctx = ctx;
    auth_api = api;
    (void)err;
    (void)errlen;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "auth",
    .version = "1.0",
    .init = auth_init,
    .config_new = auth_config_new,
    .settings = auth_settings,
    .config_check = auth_config_check,
    .config_free = auth_config_free,
    .hooks = {
        [UPESI_HOOK_HELO] = auth_helo,
        [UPESI_HOOK_MAIL] = auth_mail,
        [UPESI_HOOK_AUTH] = auth_check,
    },
};
