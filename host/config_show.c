/*
 * config_show.c - `upesi -c DIR config [KEY]`: the effective configuration,
 * as postconf shows Postfix's.  Every key of smtp.ini's table and of each
 * listed plugin's table, and every other key a plugin's ini holds (in its
 * sections, or of a plugin without a table), one line each:
 *
 *   max_sessions = 1000                      # default
 *   hostname = mx.example.org                # conf/smtp.ini:3
 *   workers = 4                              # -o
 *   queue_spool.fsync = 1                    # default
 *   private_lists.whitelist.hosts = 10.0.0.1 # conf/private_lists.ini:2
 *
 * The value is the text of the file (the last line of a key; the lines of
 * a list key joined by ", ", as they add up); a default is the table's
 * text.  The configuration is loaded and checked first, so what is shown
 * is what a start would run.
 *
 * Fails: 1 with a message for a KEY no file or table has; errors of the
 * configuration are logged by the load, before this runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_show.h"
#include "settings.h"

typedef struct shown_key {
    char *name;                  /* "key", "plugin.key", "plugin.sec.key" */
    char *value;
    char where[320];             /* "conf/smtp.ini:3", "-o"               */
    const upesi_setting *s;      /* NULL: a key of no table               */
} shown_key;

typedef struct shown {
    shown_key *keys;
    size_t n;
    const char *prefix;          /* NULL for smtp.ini, else plugin name   */
    const upesi_setting *table;
    const char *file;
} shown;

static shown_key *find(shown *sh, const char *name)
{
    for (size_t i = 0; i < sh->n; i++)
        if (!strcmp(sh->keys[i].name, name))
            return &sh->keys[i];
    return NULL;
}

static shown_key *add(shown *sh, const char *name, const upesi_setting *s)
{
    shown_key *grown = realloc(sh->keys, (sh->n + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    sh->keys = grown;
    shown_key *k = &sh->keys[sh->n];
    memset(k, 0, sizeof *k);
    if ((k->name = strdup(name)) == NULL)
        return NULL;
    k->s = s;
    sh->n++;
    return k;
}

/* A value set in a file or by -o: the last one wins, list lines add up. */
static void record(shown *sh, const char *name, const upesi_setting *s,
                   const char *value, const char *where)
{
    shown_key *k = find(sh, name);
    if (k == NULL && (k = add(sh, name, s)) == NULL)
        return;
    char *v;
    int joins = (s == NULL || s->type == UPESI_SETTING_LIST ||
                 !strcmp(s->name, "tls_sni")) && k->value && k->where[0];
    if (joins) {
        if (asprintf(&v, "%s, %s", k->value, value) < 0)
            return;
    } else if ((v = strdup(value)) == NULL) {
        return;
    }
    free(k->value);
    k->value = v;
    snprintf(k->where, sizeof k->where, "%s", where);
}

static int on_key(void *arg, const char *section, const char *key,
                  const char *value, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    shown *sh = arg;
    char name[512], where[320];
    const upesi_setting *s = section[0] ? NULL : up_setting_find(sh->table,
                                                                 key);
    if (sh->prefix == NULL)
        snprintf(name, sizeof name, "%s", key);
    else if (section[0])
        snprintf(name, sizeof name, "%s.%s.%s", sh->prefix, section, key);
    else
        snprintf(name, sizeof name, "%s.%s", sh->prefix, key);
    snprintf(where, sizeof where, "%s:%d", sh->file, up_ini_line());
    record(sh, name, s, value, where);
    return 0;
}

/* The table's keys first, in its order, with their defaults. */
static void table_defaults(shown *sh)
{
    for (const upesi_setting *s = sh->table; s && s->name; s++) {
        char name[512];
        if (sh->prefix)
            snprintf(name, sizeof name, "%s.%s", sh->prefix, s->name);
        else
            snprintf(name, sizeof name, "%s", s->name);
        shown_key *k = add(sh, name, s);
        if (k)
            k->value = strdup(s->def ? s->def : "");
    }
}

static void print_keys(const shown *sh, const char *only, int *found)
{
    for (size_t i = 0; i < sh->n; i++) {
        const shown_key *k = &sh->keys[i];
        if (only && strcmp(only, k->name))
            continue;
        (*found)++;
        char line[1024];
        snprintf(line, sizeof line, "%s = %s", k->name,
                 k->value ? k->value : "");
        printf("%-40s # %s\n", line, k->where[0] ? k->where : "default");
    }
}

static void free_keys(shown *sh)
{
    for (size_t i = 0; i < sh->n; i++) {
        free(sh->keys[i].name);
        free(sh->keys[i].value);
    }
    free(sh->keys);
}

int up_config_show(const up_config *cfg, const char *only)
{
    int found = 0;
    char *file = up_config_path(cfg->dir, "smtp.ini");
    shown sh = { NULL, 0, NULL, up_config_smtp_settings(), file };
    table_defaults(&sh);
    if (file)
        up_ini_parse(file, on_key, &sh);
    size_t n_o;
    const char *const *o = up_config_overrides(&n_o);
    for (size_t i = 0; i < n_o; i++) {
        const char *eq = strchr(o[i], '=');
        if (eq == NULL)
            continue;
        char key[128];
        size_t klen = (size_t)(eq - o[i]);
        while (klen && o[i][klen - 1] == ' ')
            klen--;
        snprintf(key, sizeof key, "%.*s", (int)klen, o[i]);
        const char *value = eq + 1;
        while (*value == ' ')
            value++;
        record(&sh, key, up_setting_find(sh.table, key), value, "-o");
    }
    print_keys(&sh, only, &found);
    free_keys(&sh);
    free(file);

    for (size_t i = 0; i < cfg->n_plugins; i++) {
        const upesi_plugin *d = cfg->plugins[i].mod->desc;
        char ini[600];
        snprintf(ini, sizeof ini, "%s/%s.ini", cfg->dir, d->name);
        shown p = { NULL, 0, d->name, up_plugin_settings(d), ini };
        table_defaults(&p);
        if (access(ini, F_OK) == 0)
            up_ini_parse(ini, on_key, &p);
        print_keys(&p, only, &found);
        free_keys(&p);
    }
    if (only && !found) {
        fprintf(stderr, "upesi: no key '%s' in smtp.ini or in the listed "
                "plugins' settings (a plugin's key is PLUGIN.KEY)\n", only);
        return 1;
    }
    return 0;
}
