/*
 * plugin_loader.c - find, open and check plugins (see plugin_loader.h).
 *
 * A plugin is the file "<plugin_dir>/<name>.so", opened by that exact path
 * with libltdl: the file whose owner and mode were checked is the file
 * loaded.  (lt_dlopenext on "<name>" would prefer a libtool "name.la"
 * beside it and load whatever library the .la names, unchecked; libtool
 * archives are not plugins.)  The descriptor is checked before any of its
 * function pointers is trusted: magic first (is this an upesi plugin at
 * all?), then ABI major and the minor the plugin needs, then the size (at
 * least ABI 2.0's), then the name.  The host keeps a copy of the
 * descriptor, the plugin's `size` bytes and zeros past them, so a
 * descriptor from an older minor reads as one whose newer fields are NULL.
 * Model: nginx's NGX_MODULE_V1 signature, Redis' APIVER.
 *
 * Fails: returns NULL with a message; a loaded plugin is never unloaded
 * before exit, so handlers stay valid for sessions of old generations.
 */
#include <errno.h>
#include <ltdl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin_loader.h"

static up_plugin_mod *loaded;
static int ltdl_ready;
static const upesi_api *plugin_api;
static int loop_running;

void up_plugin_loader_init(const upesi_api *api)
{
    plugin_api = api;
}

up_plugin_mod *up_plugin_first(void)
{
    return loaded;
}

int up_plugin_check_descriptor(const char *file, const char *name,
                               const upesi_plugin *d, upesi_plugin *out,
                               char *err, size_t errlen)
{
    if (d->magic != UPESI_PLUGIN_MAGIC) {
        snprintf(err, errlen, "%s: symbol %s is not an upesi plugin "
                 "descriptor (bad magic)", file, UPESI_PLUGIN_SYMBOL);
        return -1;
    }
    if (d->abi_major != UPESI_ABI_MAJOR) {
        snprintf(err, errlen, "%s: plugin ABI %u.%u, host ABI %d.%d: a "
                 "different major version; rebuild the plugin against this "
                 "host's upesi/plugin.h", file, d->abi_major, d->abi_minor,
                 UPESI_ABI_MAJOR, UPESI_ABI_MINOR);
        return -1;
    }
    if (d->abi_minor > UPESI_ABI_MINOR) {
        snprintf(err, errlen, "%s: plugin needs ABI %u.%u, host ABI %d.%d: "
                 "the plugin needs a newer host", file, d->abi_major,
                 d->abi_minor, UPESI_ABI_MAJOR, UPESI_ABI_MINOR);
        return -1;
    }
    if (d->size < UPESI_PLUGIN_SIZE_2_0) {
        snprintf(err, errlen, "%s: descriptor is %u bytes, ABI %u.%u needs "
                 "at least %zu", file, d->size, d->abi_major, d->abi_minor,
                 (size_t)UPESI_PLUGIN_SIZE_2_0);
        return -1;
    }
    if (d->name == NULL || strcmp(d->name, name) != 0) {
        snprintf(err, errlen, "%s: descriptor names plugin '%s', expected "
                 "'%s'", file, d->name ? d->name : "(null)", name);
        return -1;
    }
    /* a newer minor's descriptor may be larger: what we know of it; an
     * older one smaller: its fields, the rest NULL */
    memset(out, 0, sizeof *out);
    memcpy(out, d, d->size < sizeof *out ? d->size : sizeof *out);
    return 0;
}

static void mod_free(up_plugin_mod *m)
{
    if (m == NULL)
        return;
    free(m->path);
    free(m->name);
    free(m);
}

const upesi_setting *up_plugin_settings(const upesi_plugin *d)
{
    return d->settings;         /* part of every ABI 2 descriptor */
}

/* Open <dir>/<name>.so and check its descriptor into *copy; no init. */
static lt_dlhandle open_checked(const char *dir, const char *name,
                                upesi_plugin *copy, char *file,
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
    /* libltdl says "file not found" of a file that is there but is no
     * shared object (a text file, a script): say what is wrong */
    char magic[4] = { 0 };
    FILE *f = fopen(file, "rb");
    size_t got = f ? fread(magic, 1, sizeof magic, f) : 0;
    if (f)
        fclose(f);
    if (S_ISREG(st.st_mode) && (got != sizeof magic ||
                                memcmp(magic, "\x7f" "ELF", 4) != 0)) {
        snprintf(err, errlen, "%s: not a shared object (no ELF header; "
                 "plugins are built with `make`)", file);
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
    if (up_plugin_check_descriptor(file, name, d, copy, err, errlen) != 0) {
        lt_dlclose(h);
        return NULL;
    }
    return h;
}

/* Descriptors looked at but not loaded (up_plugin_peek): kept, like their
 * libraries, until exit. */
typedef struct peeked {
    upesi_plugin copy;
    char *name;
    struct peeked *next;
} peeked;
static peeked *peeks;

const upesi_plugin *up_plugin_peek(const char *dir, const char *name,
                                   char *err, size_t errlen)
{
    for (up_plugin_mod *m = loaded; m; m = m->next)
        if (!strcmp(m->name, name))
            return m->desc;
    for (peeked *p = peeks; p; p = p->next)
        if (!strcmp(p->name, name))
            return &p->copy;
    peeked *p = calloc(1, sizeof *p);
    if (p == NULL || (p->name = strdup(name)) == NULL) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char file[4200];
    /* never closed: the descriptor's pointers point into the library */
    if (open_checked(dir, name, &p->copy, file, sizeof file, err,
                     errlen) == NULL) {
        free(p->name);
        free(p);
        return NULL;
    }
    p->next = peeks;
    peeks = p;
    return &p->copy;
}

up_plugin_mod *up_plugin_get(const char *dir, const char *name, char *err,
                             size_t errlen)
{
    for (up_plugin_mod *m = loaded; m; m = m->next)
        if (!strcmp(m->name, name))
            return m;

    up_plugin_mod *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char file[4200];
    lt_dlhandle h = open_checked(dir, name, &m->copy, file, sizeof file, err,
                                 errlen);
    if (h == NULL) {
        free(m);
        return NULL;
    }
    if ((m->name = strdup(name)) == NULL || (m->path = strdup(file)) == NULL) {
        mod_free(m);
        lt_dlclose(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->desc = &m->copy;
    m->handle = h;
    if (m->desc->init) {
        char ierr[512] = "";
        if (m->desc->init(m, plugin_api, ierr, sizeof ierr) != 0) {
            snprintf(err, errlen, "%s: init failed: %s", file,
                     ierr[0] ? ierr : "(no reason given)");
            mod_free(m);
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

void up_plugin_set_running(void)
{
    loop_running = 1;
}

void up_plugin_start(up_plugin_mod *mod)
{
    if (!loop_running || mod->started)
        return;
    mod->started = 1;
    if (mod->desc->worker_start)
        mod->desc->worker_start(mod);
}

int up_plugin_stop_all(void)
{
    int n = 0;
    for (up_plugin_mod *m = loaded; m; m = m->next)
        if (m->started && m->desc->worker_stop) {
            m->desc->worker_stop(m);
            n++;
        }
    return n;
}

void up_plugin_unload_all(void)
{
    while (loaded) {
        up_plugin_mod *m = loaded;
        loaded = m->next;
        if (m->desc->fini)
            m->desc->fini();
        lt_dlclose(m->handle);
        mod_free(m);
    }
    while (peeks) {
        peeked *p = peeks;
        peeks = p->next;
        free(p->name);
        free(p);
    }
    if (ltdl_ready)
        lt_dlexit();
    ltdl_ready = 0;
}
