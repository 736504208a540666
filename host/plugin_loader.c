/*
 * plugin_loader.c - find, open and check plugins (see plugin_loader.h).
 *
 * A plugin is the file "<plugin_dir>/<name>.so", opened by that exact path
 * with libltdl: the file whose owner and mode were checked is the file
 * loaded.  (lt_dlopenext on "<name>" would prefer a libtool "name.la"
 * beside it and load whatever library the .la names, unchecked; libtool
 * archives are not plugins.)  The descriptor is checked before any of
 * its function pointers is trusted: magic first (is this an upesi plugin at
 * all?), then ABI major and minor, then the size the minor promises, then
 * the name.  Model: nginx's NGX_MODULE_V1 signature, Redis' APIVER.
 *
 * Fails: returns NULL with a message; a loaded plugin is never unloaded
 * before exit, so handlers stay valid for sessions of old generations.
 */
#include <errno.h>
#include <ltdl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "plugin_loader.h"

static up_plugin_mod *loaded;
static int ltdl_ready;

up_plugin_mod *up_plugin_first(void)
{
    return loaded;
}

static int check_descriptor(const char *file, const char *name,
                            const upesi_plugin *d, char *err, size_t errlen)
{
    if (d->magic != UPESI_PLUGIN_MAGIC) {
        snprintf(err, errlen, "%s: symbol %s is not an upesi plugin "
                 "descriptor (bad magic)", file, UPESI_PLUGIN_SYMBOL);
        return -1;
    }
    if (d->abi_major != UPESI_ABI_MAJOR || d->abi_minor > UPESI_ABI_MINOR) {
        snprintf(err, errlen, "%s: plugin ABI %u.%u, host ABI %d.%d: %s",
                 file, d->abi_major, d->abi_minor, UPESI_ABI_MAJOR,
                 UPESI_ABI_MINOR,
                 d->abi_major != UPESI_ABI_MAJOR
                     ? "a different major version; rebuild the plugin "
                       "against this host's upesi/plugin.h"
                     : "the plugin needs a newer host");
        return -1;
    }
    /* the 1.0 layout, which every minor shares; 1.3 appended settings,
     * read only from a descriptor that has it (up_plugin_settings) */
    size_t need = d->abi_minor >= 3 ? sizeof(upesi_plugin)
                                    : offsetof(upesi_plugin, settings);
    if (d->size < need) {
        snprintf(err, errlen, "%s: descriptor is %u bytes, ABI %u.%u "
                 "needs %zu", file, d->size, d->abi_major, d->abi_minor,
                 need);
        return -1;
    }
    if (d->name == NULL || strcmp(d->name, name) != 0) {
        snprintf(err, errlen, "%s: descriptor names plugin '%s', expected "
                 "'%s'", file, d->name ? d->name : "(null)", name);
        return -1;
    }
    return 0;
}

const upesi_setting *up_plugin_settings(const upesi_plugin *d)
{
    if (d->abi_minor < 3 ||
        d->size < offsetof(upesi_plugin, settings) + sizeof d->settings)
        return NULL;
    return d->settings;
}

/* Open <dir>/<name>.so and check its descriptor; no init. */
static lt_dlhandle open_checked(const char *dir, const char *name,
                                const upesi_plugin **out, char *file,
                                size_t filelen, char *err, size_t errlen)
{
    if (!ltdl_ready) {
        if (lt_dlinit() != 0) {
            snprintf(err, errlen, "libltdl: %s", lt_dlerror());
            return NULL;
        }
        ltdl_ready = 1;
    }
    snprintf(file, filelen, "%s/%s.so", dir, name);
    struct stat st;
    if (stat(file, &st) != 0) {
        snprintf(err, errlen, "unknown plugin '%s': %s: %s", name, file,
                 strerror(errno));
        return NULL;
    }
    if (st.st_mode & S_IWOTH) {
        snprintf(err, errlen, "%s is world-writable: refused (anyone could "
                 "change what upesi runs; chmod o-w %s)", file, file);
        return NULL;
    }
    lt_dlhandle h = lt_dlopen(file);
    if (h == NULL) {
        snprintf(err, errlen, "%s: cannot load: %s", file, lt_dlerror());
        return NULL;
    }
    const upesi_plugin *d = lt_dlsym(h, UPESI_PLUGIN_SYMBOL);
    if (d == NULL) {
        snprintf(err, errlen, "%s: no symbol '%s' (not an upesi plugin, or "
                 "built without UPESI_PLUGIN)", file, UPESI_PLUGIN_SYMBOL);
        lt_dlclose(h);
        return NULL;
    }
    if (check_descriptor(file, name, d, err, errlen) != 0) {
        lt_dlclose(h);
        return NULL;
    }
    *out = d;
    return h;
}

const upesi_plugin *up_plugin_peek(const char *dir, const char *name,
                                   char *err, size_t errlen)
{
    for (up_plugin_mod *m = loaded; m; m = m->next)
        if (!strcmp(m->name, name))
            return m->desc;
    char file[4200];
    const upesi_plugin *d = NULL;
    /* never closed: the descriptor points into the library */
    if (open_checked(dir, name, &d, file, sizeof file, err, errlen) == NULL)
        return NULL;
    return d;
}

up_plugin_mod *up_plugin_get(const char *dir, const char *name, char *err,
                             size_t errlen)
{
    for (up_plugin_mod *m = loaded; m; m = m->next)
        if (!strcmp(m->name, name))
            return m;

    char file[4200];
    const upesi_plugin *d = NULL;
    lt_dlhandle h = open_checked(dir, name, &d, file, sizeof file, err,
                                 errlen);
    if (h == NULL)
        return NULL;
    up_plugin_mod *m = calloc(1, sizeof *m);
    if (m == NULL || (m->name = strdup(name)) == NULL ||
        (m->path = strdup(file)) == NULL) {
        if (m)
            free(m->name);
        free(m);
        lt_dlclose(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->desc = d;
    m->handle = h;
    if (d->init) {
        char ierr[512] = "";
        if (d->init(up_api_table(), (upesi_plugin_ref *)m, ierr,
                    sizeof ierr) != 0) {
            snprintf(err, errlen, "%s: init failed: %s", file,
                     ierr[0] ? ierr : "(no reason given)");
            free(m->path);
            free(m->name);
            free(m);
            lt_dlclose(h);
            return NULL;
        }
    }
    up_plugin_mod **tail = &loaded;
    while (*tail)
        tail = &(*tail)->next;
    *tail = m;
    return m;
}

void up_plugin_unload_all(void)
{
    while (loaded) {
        up_plugin_mod *m = loaded;
        loaded = m->next;
        if (m->desc->fini)
            m->desc->fini();
        lt_dlclose(m->handle);
        free(m->path);
        free(m->name);
        free(m);
    }
    if (ltdl_ready)
        lt_dlexit();
    ltdl_ready = 0;
}
