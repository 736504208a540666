/*
 * plugin_loader.h - loading plugins with libltdl and checking their ABI.
 *
 * A plugin is loaded once per process, by name, from plugin_dir; its
 * descriptor must carry the right magic, the host's ABI major and a minor no
 * newer than the host's.  Every refusal names the file, the plugin's ABI and
 * the host's, so the admin can tell a stale build from a typo.
 */
#ifndef UPESI_PLUGIN_LOADER_H
#define UPESI_PLUGIN_LOADER_H

#include <stddef.h>

#include "upesi/plugin.h"

typedef struct up_plugin_mod {
    char *name;
    char *path;                      /* the file it came from             */
    const upesi_plugin *desc;
    void *handle;                    /* lt_dlhandle                        */
    struct up_plugin_mod *next;
} up_plugin_mod;

/* Find or load plugin `name` from dir.  NULL with a message in err. */
up_plugin_mod *up_plugin_get(const char *dir, const char *name, char *err,
                             size_t errlen);
/* The descriptor of plugin `name` in dir, checked but not initialised
 * (for documentation: `upesi --dump-settings`).  NULL with err. */
const upesi_plugin *up_plugin_peek(const char *dir, const char *name,
                                   char *err, size_t errlen);
/* A descriptor's settings table, or NULL (none, or a plugin older than
 * ABI 1.3 whose descriptor ends before the field). */
const upesi_setting *up_plugin_settings(const upesi_plugin *d);
/* Call every loaded plugin's fini and unload it. */
void up_plugin_unload_all(void);
/* Iterate loaded modules (load order). */
up_plugin_mod *up_plugin_first(void);

#endif
