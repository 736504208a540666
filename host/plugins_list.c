/*
 * plugins_list.c - the plugin chain as text (see plugins_list.h).
 *
 * Fails: never; a plugin file that does not load is listed with the
 * loader's reason and makes `--available` exit 1.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "plugin_loader.h"
#include "plugins_list.h"

int up_plugins_is_queue(const up_config *cfg, size_t i)
{
    return cfg->plugins[i].mod->desc->hooks[UPESI_HOOK_QUEUE] != NULL;
}

static const char *hooks_text(const upesi_plugin *d, char *hooks, size_t n)
{
    size_t len = 0;
    hooks[0] = '\0';
    for (int h = 0; h < UPESI_HOOK_COUNT; h++)
        if (d->hooks[h] && len < n)
            len += (size_t)snprintf(hooks + len, n - len, "%s%s",
                                    len ? "," : "",
                                    up_hook_name((upesi_hook)h));
    return len ? hooks : "-";
}

void up_plugins_list(const up_config *cfg,
                     void (*line)(const char *text, void *arg), void *arg)
{
    char text[512];
    /* "needs": the ABI the plugin declares it needs (docs/plugins.md) */
    snprintf(text, sizeof text, "%-3s %-16s %-10s %-5s %s", "#", "plugin",
             "version", "needs", "hooks");
    line(text, arg);
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        const upesi_plugin *d = cfg->plugins[i].mod->desc;
        char hooks[256];
        snprintf(text, sizeof text, "%-3zu %-16s %-10s %u.%-3u %s", i + 1,
                 d->name, d->version ? d->version : "-", d->abi_major,
                 d->abi_minor, hooks_text(d, hooks, sizeof hooks));
        line(text, arg);
    }
}

static int is_plugin_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 3 && !strcmp(e->d_name + n - 3, ".so");
}

int up_plugins_available(const char *dir, FILE *out)
{
    struct dirent **names;
    int n = scandir(dir, &names, is_plugin_file, alphasort);
    if (n < 0) {
        fprintf(stderr, "upesi: plugin_dir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int rc = 0;
    fprintf(out, "%-16s %-10s %-5s %s\n", "plugin", "version", "needs",
            "hooks");
    for (int i = 0; i < n; i++) {
        char name[256], err[512];
        snprintf(name, sizeof name, "%.*s",
                 (int)(strlen(names[i]->d_name) - 3), names[i]->d_name);
        const upesi_plugin *d = up_plugin_peek(dir, name, err, sizeof err);
        if (d == NULL) {
            fprintf(out, "%-16s %-10s %-5s (does not load: %s)\n", name, "-",
                    "-", err);
            rc = 1;
        } else {
            char hooks[256];
            fprintf(out, "%-16s %-10s %u.%-3u %s\n", d->name,
                    d->version ? d->version : "-", d->abi_major,
                    d->abi_minor, hooks_text(d, hooks, sizeof hooks));
        }
        free(names[i]);
    }
    free(names);
    return rc;
}
