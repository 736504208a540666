/*
 * dir_table.h - the directory file, loaded into a hash table
 * (docs/directory.md describes the file).
 *
 * A loaded directory is read-only: every session of a configuration
 * generation shares it, and SIGHUP loads a new one beside it.
 */
#ifndef UPESI_DIR_TABLE_H
#define UPESI_DIR_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef enum dir_kind {
    DIR_PERSON = 0,
    DIR_GROUP
} dir_kind;

typedef struct dir_entry {
    dir_kind kind;
    int line;                    /* where it is defined                 */
    const char *name;            /* full name or group name, as written */
    const char *address;         /* internet address, lower case; NULL
                                    for a group without one             */
    const char *password;        /* password=: a crypt(3) hash for the
                                    auth plugin, NULL if none (the
                                    directory plugin ignores it)        */
} dir_entry;

typedef struct dir_table dir_table;

/* What a name or address is. */
typedef struct dir_match {
    const dir_entry *entry;      /* NULL: not in the directory          */
    size_t count;                /* entries it names (> 1: not unique)  */
    int any_group;               /* one of them is a group              */
} dir_match;

/* A loading error: "path:line: message".  Called for every error; the
 * loader stops after max_errors of them. */
typedef void (*dir_error_fn)(void *arg, const char *path, int line,
                             const char *message);

/* Load path.  Returns the table, or NULL after reporting every error
 * through on_error (line 0: the file as a whole). */
dir_table *dir_table_load(const char *path, dir_error_fn on_error,
                          void *arg);
void dir_table_free(dir_table *table);

/* Load a plugin's directory file (file as its .ini names it, through
 * api->config_path) in config_check: the first error goes back in err as
 * "path:line: message" (the host prefixes the ini file), the others are
 * logged as they come ("PLUGIN: path:line: message", through the
 * plugin's context), and err then ends with " (and N more errors above)".
 * Returns the table and the full path in *path (the caller frees it with
 * api->free), or NULL. */
struct upesi_api;
struct upesi_ctx;
dir_table *dir_table_load_config(const struct upesi_api *api,
                                 struct upesi_ctx *ctx, const char *file,
                                 char **path, char *err, size_t errlen);

size_t dir_table_persons(const dir_table *table);
size_t dir_table_groups(const dir_table *table);
/* names that point at more than one entry */
size_t dir_table_not_unique(const dir_table *table);

/* Look up a key: an address ("bob@example.com"), a short name, a full name
 * or a group name.  Case-insensitive (ASCII). */
void dir_table_find(const dir_table *table, const char *key, size_t len,
                    dir_match *out);

/* The index'th entry in file order, NULL past the last. */
const dir_entry *dir_table_entry(const dir_table *table, size_t index);

#endif
