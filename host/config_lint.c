/*
 * config_lint.c - `upesi -t`'s checks of a loaded configuration
 * (config_lint.h).
 *
 *   - no queue plugin in the chain: an error.  A queue plugin is one with
 *     a queue hook handler; without one every message gets 451.
 *   - a queue plugin that is not last: a warning (the plugins after it
 *     never see a message it took).
 *   - NAME.ini in the configuration directory for a plugin that is not in
 *     the chain: a warning naming it (its settings are not used; the usual
 *     cause is a plugin name mistyped in plugins).  A name written alone on
 *     a comment line of plugins ("#   dnsbl") is taken as switched off on
 *     purpose and not reported.
 *
 * Fails: an unreadable directory is reported as a warning, never fatal.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_lint.h"
#include "log.h"
#include "plugins_list.h"

static int in_chain(const up_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (!strcmp(cfg->plugins[i].mod->desc->name, name))
            return 1;
    return 0;
}

/* "#   name" alone on a line of the plugins file */
static int commented_out(const char *plugins_file, const char *name)
{
    FILE *f = fopen(plugins_file, "r");
    if (f == NULL)
        return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '#')
            continue;
        p++;
        while (isspace((unsigned char)*p))
            p++;
        size_t n = strlen(name);
        if (!strncmp(p, name, n)) {
            p += n;
            while (isspace((unsigned char)*p))
                p++;
            found = *p == '\0';
        }
    }
    fclose(f);
    return found;
}

static void lint_ini_files(const up_config *cfg)
{
    DIR *d = opendir(cfg->dir);
    if (d == NULL) {
        up_log(NULL, UPESI_LOG_WARNING, "%s: cannot list: %s", cfg->dir,
               strerror(errno));
        return;
    }
    char *plugins_file = up_config_path(cfg->dir, "plugins");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= 4 || strcmp(e->d_name + n - 4, ".ini") != 0 ||
            !strcmp(e->d_name, "smtp.ini"))
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n - 4), e->d_name);
        if (in_chain(cfg, name) ||
            (plugins_file && commented_out(plugins_file, name)))
            continue;
        up_log(NULL, UPESI_LOG_WARNING, "%s/%s: plugin '%s' is not in %s: "
               "these settings are not used (a mistyped name in plugins?)",
               cfg->dir, e->d_name, name,
               plugins_file ? plugins_file : "plugins");
    }
    free(plugins_file);
    closedir(d);
}

int up_config_lint(const up_config *cfg)
{
    int rc = 0;
    char *plugins_file = up_config_path(cfg->dir, "plugins");
    const char *pf = plugins_file ? plugins_file : "plugins";
    size_t last_queue = cfg->n_plugins;
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (up_plugins_is_queue(cfg, i))
            last_queue = i;
    if (last_queue == cfg->n_plugins) {
        up_log(NULL, UPESI_LOG_ERR, "%s: no queue plugin in the chain (none "
               "has a queue hook): every message would be answered 451; add "
               "queue_spool or queue_forward", pf);
        rc = 1;
    }
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (up_plugins_is_queue(cfg, i) && i + 1 < cfg->n_plugins)
            up_log(NULL, UPESI_LOG_WARNING, "%s: queue plugin '%s' is not "
                   "last: the plugins after it (from '%s') never see a "
                   "message it takes", pf, cfg->plugins[i].mod->desc->name,
                   cfg->plugins[i + 1].mod->desc->name);
    free(plugins_file);
    lint_ini_files(cfg);
    return rc;
}
