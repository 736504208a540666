/*
 * plugin_loader.h - loading plugins with libltdl, checking their ABI, and
 * each plugin's context (struct upesi_ctx) for the life of the process.
 *
 * A plugin is loaded once per process, by name, from plugin_dir; its
 * descriptor must carry the right magic, the host's ABI major and a needed
 * minor no newer than the host's.  Every refusal names the file, the
 * plugin's ABI and the host's, so the admin can tell a stale build from a
 * typo.  The loader knows no API table of its own: main hands it in
 * (up_plugin_loader_init), so the loader does not depend on api.c.
 */
#ifndef UPESI_PLUGIN_LOADER_H
#define UPESI_PLUGIN_LOADER_H

#include <stddef.h>

#include "upesi/plugin.h"

/* A loaded plugin: what the ABI calls its context. */
struct upesi_ctx {
    char *name;
    char *path;                      /* the file it came from             */
    const upesi_plugin *desc;        /* = &copy                           */
    upesi_plugin copy;               /* the plugin's descriptor, its size
                                        bytes, zero-filled past them      */
    void *handle;                    /* lt_dlhandle                        */
    void *settings;                  /* of the committed generation       */
    int started;                     /* worker_start ran in this process  */
    struct upesi_ctx *next;
};
typedef struct upesi_ctx up_plugin_mod;

/* The API table init hands every plugin; before any up_plugin_get. */
void up_plugin_loader_init(const upesi_api *api);
/* Find or load plugin `name` from dir.  NULL with a message in err. */
up_plugin_mod *up_plugin_get(const char *dir, const char *name, char *err,
                             size_t errlen);
/* The descriptor of plugin `name` in dir, checked but not initialised
 * (for documentation: `upesi --dump-settings`).  NULL with err. */
const upesi_plugin *up_plugin_peek(const char *dir, const char *name,
                                   char *err, size_t errlen);
/* A descriptor's settings table, or NULL (none). */
const upesi_setting *up_plugin_settings(const upesi_plugin *d);
/* Call every loaded plugin's fini and unload it. */
void up_plugin_unload_all(void);
/* Iterate loaded modules (load order). */
up_plugin_mod *up_plugin_first(void);

/* The descriptor check alone, for a descriptor found in `file` that
 * conf/plugins calls `name`: 0, or -1 with the refusal in err.  On success
 * *out is the descriptor as this host reads it. */
int up_plugin_check_descriptor(const char *file, const char *name,
                               const upesi_plugin *d, upesi_plugin *out,
                               char *err, size_t errlen);

/* The loop runs in this worker: from now on worker_start runs for every
 * plugin as its generation is committed (up_plugin_start). */
void up_plugin_set_running(void);
/* worker_start for mod, once per process, if the loop runs. */
void up_plugin_start(up_plugin_mod *mod);
/* worker_stop for every plugin that started, in load order; how many
 * ran. */
int up_plugin_stop_all(void);

#endif
