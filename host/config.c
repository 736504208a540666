/*
 * config.c - the life of a configuration generation (see config.h): load
 * it (smtp.ini, -o overrides, conf/plugins, each plugin's ini), share it by
 * reference count, free it when the last holder lets go, and answer
 * questions about it (up_config_is_local).
 *
 * The parts live beside this file: config_file.c reads ini files and
 * checks paths, config_smtp.c knows smtp.ini's keys, config_plugins.c
 * reads conf/plugins and the plugins' own settings.
 *
 * Fails: never exits; every problem is logged as "file:line: message" and
 * the load returns NULL, leaving the running generation untouched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config.h"
#include "../plugins/common/hostmatch.h"
#include "config_int.h"
#include "log.h"
#include "smtp_ext.h"
#include "tls.h"

static const up_config *loading;
static up_config *committed;

/* -o key=value from the command line (main.c) */
#define UP_MAX_OVERRIDES 32
static const char *overrides[UP_MAX_OVERRIDES];
static size_t n_overrides;

void up_config_override(const char *key_value)
{
    if (n_overrides < UP_MAX_OVERRIDES)
        overrides[n_overrides++] = key_value;
    else
        up_log(NULL, UPESI_LOG_WARNING, "-o %s: more than %d -o options; "
               "ignored", key_value, UP_MAX_OVERRIDES);
}

const char *const *up_config_overrides(size_t *n)
{
    *n = n_overrides;
    return overrides;
}

static int apply_overrides(up_config *cfg)
{
    int errors = 0;
    for (size_t i = 0; i < n_overrides; i++) {
        char key[64], err[512] = "";
        const char *eq = strchr(overrides[i], '=');
        size_t klen = eq ? (size_t)(eq - overrides[i]) : 0;
        while (klen && overrides[i][klen - 1] == ' ')
            klen--;
        if (eq == NULL || klen == 0 || klen >= sizeof key) {
            up_log(NULL, UPESI_LOG_ERR, "-o %s: expected key=value",
                   overrides[i]);
            errors++;
            continue;
        }
        memcpy(key, overrides[i], klen);
        key[klen] = '\0';
        const char *value = eq + 1;
        while (*value == ' ')
            value++;
        if (config_smtp_ini_key(cfg, "", key, value, err, sizeof err) != 0) {
            up_log(NULL, UPESI_LOG_ERR, "-o %s: %s", overrides[i],
                   err[0] ? err : "bad setting");
            errors++;
        }
    }
    return errors ? -1 : 0;
}

const up_config *up_config_loading(void)
{
    return loading;
}

up_config *up_config_load(const char *dir)
{
    up_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return NULL;
    loading = cfg;
    cfg->refs = 1;
    char *smtp_ini = NULL;
    int failed = (cfg->dir = strdup(dir)) == NULL ||
                 (smtp_ini = up_config_path(dir, "smtp.ini")) == NULL ||
                 config_defaults(cfg) != 0;
    struct stat dst;
    if (!failed && stat(dir, &dst) != 0) {
        /* said of the directory, not as "smtp.ini:0": the usual cause
         * is a mistyped -c */
        up_log(NULL, UPESI_LOG_ERR, "configuration directory %s: %s", dir,
               strerror(errno));
        failed = 1;
    } else if (!failed && !S_ISDIR(dst.st_mode)) {
        up_log(NULL, UPESI_LOG_ERR, "configuration directory %s: not a "
               "directory", dir);
        failed = 1;
    }
    if (!failed && up_config_check_not_world_writable(dir, "configuration "
                                                      "directory") != 0)
        failed = 1;
    if (!failed && up_ini_parse(smtp_ini, config_smtp_ini_key, cfg) != 0)
        failed = 1;
    if (!failed && apply_overrides(cfg) != 0)
        failed = 1;
    if (!failed && config_finish(cfg, smtp_ini) != 0)
        failed = 1;
    if (!failed && config_load_plugin_list(cfg) != 0)
        failed = 1;
    for (size_t i = 0; !failed && i < cfg->n_plugins; i++)
        if (config_load_plugin_settings(cfg, &cfg->plugins[i]) != 0)
            failed = 1;
    free(smtp_ini);
    loading = NULL;
    if (failed) {
        up_config_unref(cfg);
        return NULL;
    }
    return cfg;
}

/* Every plugin accepted cfg: it becomes the one plugins work with outside
 * sessions.  Plugins adopt it in order (config_commit), then those whose
 * background work has not started in this worker start it: a plugin a
 * reload added runs its queue like one loaded at start (DESIGN.md 3). */
void up_config_commit(up_config *cfg)
{
    up_config_ref(cfg);
    up_config_unref(committed);
    committed = cfg;
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        up_plugin_mod *mod = cfg->plugins[i].mod;
        mod->settings = cfg->plugins[i].settings;
        if (mod->desc->config_commit)
            mod->desc->config_commit(mod, mod->settings);
    }
    for (size_t i = 0; i < cfg->n_plugins; i++)
        up_plugin_start(cfg->plugins[i].mod);
}

const up_config *up_config_committed(void)
{
    return committed;
}

void up_config_release_committed(void)
{
    for (up_plugin_mod *m = up_plugin_first(); m; m = m->next)
        m->settings = NULL;
    up_config_unref(committed);
    committed = NULL;
}

up_config *up_config_ref(up_config *cfg)
{
    cfg->refs++;
    return cfg;
}

void up_config_unref(up_config *cfg)
{
    if (cfg == NULL || --cfg->refs > 0)
        return;
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        const upesi_plugin *d = cfg->plugins[i].mod->desc;
        if (cfg->plugins[i].settings && d->config_free)
            d->config_free(cfg->plugins[i].settings);
    }
    free(cfg->plugins);
    for (size_t i = 0; i < cfg->n_local_domains; i++)
        free(cfg->local_domains[i]);
    free(cfg->local_domains);
    free(cfg->listen);
    hostmatch_free(cfg->xclient_hosts);
    free(cfg->dir);
    free(cfg->hostname);
    free(cfg->greeting);
    free(cfg->spool_dir);
    free(cfg->control_socket);
    free(cfg->plugin_dir);
    free(cfg->user);
    free(cfg->group);
    free(cfg->dns_servers);
    up_tls_ctx_free(cfg->tls);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_ciphers);
    free(cfg->tls_ticket_key_file);
    for (size_t i = 0; i < cfg->n_tls_sni; i++) {
        free(cfg->tls_sni[i].name);
        free(cfg->tls_sni[i].cert);
        free(cfg->tls_sni[i].key);
    }
    free(cfg->tls_sni);
    free(cfg->smtps_listen);
    free(cfg->submission_listen);
    free(cfg);
}

int up_config_is_local(const up_config *cfg, const char *address)
{
    const char *at = strrchr(address, '@');
    if (at == NULL)             /* RFC 5321 4.5.1: <postmaster> is ours */
        return !strcasecmp(address, "postmaster");
    const char *domain = at + 1;
    for (size_t i = 0; i < cfg->n_local_domains; i++)
        if (!strcasecmp(domain, cfg->local_domains[i]))
            return 1;
    /* a U-label and its A-label are the same domain (RFC 6531) */
    char alabel[300], local[300];
    if (up_domain_to_ascii(domain, alabel, sizeof alabel) != 0)
        return 0;
    for (size_t i = 0; i < cfg->n_local_domains; i++)
        if (up_domain_to_ascii(cfg->local_domains[i], local,
                               sizeof local) == 0 && !strcmp(alabel, local))
            return 1;
    return 0;
}
