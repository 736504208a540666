/*
 * config_plugins.c - conf/plugins (which plugins run, in which order) and
 * each listed plugin's own <name>.ini, handed key by key to the plugin's
 * config_set and checked as a whole by its config_check.
 *
 * A plugin's module is loaded once per process (up_plugin_get); only its
 * settings belong to a generation, so a reload re-reads every .ini without
 * reloading any code.
 *
 * Fails: never exits; a bad name, a duplicate, a plugin that will not load
 * or a setting the plugin refuses is logged as "file:line: message" (every
 * bad line in one run) and the caller gets -1.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_int.h"
#include "log.h"
#include "settings.h"

typedef struct plugin_ini {
    up_plugin_inst *inst;
    const char *dir;
} plugin_ini;

/* A key of <name>.ini: the plugin's settings table first (keys at the top
 * of the file), then its config_set for the rest and for sections. */
static int plugin_ini_key(void *arg, const char *section, const char *key,
                          const char *value, char *err, size_t errlen)
{
    plugin_ini *pi = arg;
    up_plugin_inst *inst = pi->inst;
    const upesi_plugin *d = inst->mod->desc;
    const upesi_setting *table = up_plugin_settings(d);
    char where[200];
    if (section[0] == '\0') {
        const upesi_setting *s = up_setting_find(table, key);
        if (s)
            return up_setting_apply(s, inst->settings, pi->dir, value, err,
                                    errlen);
    } else if (up_settings_sectioned(table)) {
        /* a table that names sections owns them all: the same words for
         * an unknown section or key in every plugin */
        int known;
        const upesi_setting *s = up_setting_find_in(table, section, key,
                                                    &known);
        if (s == NULL) {
            if (known)
                snprintf(err, errlen, "unknown key '%s' in [%s]", key,
                         section);
            else
                snprintf(err, errlen, "unknown section [%s]", section);
            return -1;
        }
        /* CUSTOM without a setter: the value's meaning depends on the
         * section's or the key's name ([ZONE], [routes] DOMAIN), which
         * config_set receives */
        if (!(s->type == UPESI_SETTING_CUSTOM && s->set == NULL) ||
            d->config_set == NULL)
            return up_setting_apply(s, inst->settings, pi->dir, value, err,
                                    errlen);
    }
    if (section[0] == '\0' && up_settings_sectioned(table) &&
        up_setting_sections_of(table, key, where, sizeof where)) {
        snprintf(err, errlen, "'%s' belongs in a section (%s)", key, where);
        return -1;
    }
    if (d->config_set == NULL) {
        if (section[0] != '\0')
            snprintf(err, errlen, "unknown section [%s] (%s.ini keys live "
                     "at the top of the file)", section, d->name);
        else if (table)
            snprintf(err, errlen, "unknown key '%s'", key);
        else
            snprintf(err, errlen, "unknown key '%s' (plugin %s takes no "
                     "settings)", key, d->name);
        return -1;
    }
    return d->config_set(inst->settings, section, key, value, err, errlen);
}

int config_load_plugin_settings(up_config *cfg, up_plugin_inst *inst)
{
    const upesi_plugin *d = inst->mod->desc;
    if (d->config_new) {
        inst->settings = d->config_new();
        if (inst->settings == NULL) {
            up_log(NULL, UPESI_LOG_ERR, "plugin %s: out of memory", d->name);
            return -1;
        }
    }
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/%s.ini", cfg->dir, d->name);
    const upesi_setting *table = up_plugin_settings(d);
    if (table) {
        char err[512] = "";
        if (inst->settings == NULL) {
            up_log(NULL, UPESI_LOG_ERR, "plugin %s: a settings table needs "
                   "config_new", d->name);
            return -1;
        }
        if (up_settings_defaults(table, inst->settings, cfg->dir, err,
                                 sizeof err) != 0) {
            up_log(NULL, UPESI_LOG_ERR, "plugin %s: default %s", d->name,
                   err);
            return -1;
        }
    }
    int rc = 0;
    plugin_ini pi = { inst, cfg->dir };
    if (access(file, F_OK) == 0)
        rc = up_ini_parse(file, plugin_ini_key, &pi);
    if (rc == 0 && d->config_check) {
        char err[512] = "";
        if (d->config_check(inst->settings, err, sizeof err) != 0) {
            up_log(NULL, UPESI_LOG_ERR, "%s: %s", file,
                   err[0] ? err : "invalid settings");
            rc = -1;
        }
    }
    return rc;
}

int config_load_plugin_list(up_config *cfg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/plugins", cfg->dir);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        up_log(NULL, UPESI_LOG_ERR, "%s:0: cannot open: %s", path,
               strerror(errno));
        return -1;
    }
    if (up_config_check_not_world_writable(path, "plugin list") != 0 ||
        up_config_check_not_world_writable(cfg->plugin_dir,
                                           "plugin directory") != 0) {
        fclose(fp);
        return -1;
    }
    char line[512];
    int lineno = 0, errors = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *name = line;
        while (isspace((unsigned char)*name))
            name++;
        char *end = name + strlen(name);
        while (end > name && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*name == '\0')
            continue;
        if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
            strlen(name)) {
            up_log(NULL, UPESI_LOG_ERR, "%s:%d: '%s' is not a plugin name "
                   "(lower-case letters, digits, _ and -)", path, lineno, name);
            errors++;
            continue;
        }
        for (size_t i = 0; i < cfg->n_plugins; i++)
            if (!strcmp(cfg->plugins[i].mod->name, name)) {
                up_log(NULL, UPESI_LOG_ERR, "%s:%d: plugin %s is listed "
                       "twice", path, lineno, name);
                errors++;
                goto next;
            }
        char err[512];
        up_plugin_mod *mod = up_plugin_get(cfg->plugin_dir, name, err,
                                           sizeof err);
        if (mod == NULL) {
            up_log(NULL, UPESI_LOG_ERR, "%s:%d: %s", path, lineno, err);
            errors++;
            continue;
        }
        up_plugin_inst *grown = realloc(cfg->plugins,
                                        (cfg->n_plugins + 1) * sizeof *grown);
        if (grown == NULL) {
            errors++;
            break;
        }
        cfg->plugins = grown;
        cfg->plugins[cfg->n_plugins++] = (up_plugin_inst){ .mod = mod };
    next:;
    }
    fclose(fp);
    return errors ? -1 : 0;
}
