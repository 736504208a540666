/*
 * settings.h - small helpers for a plugin's config_set and init: the
 * values and messages every plugin's .ini shares (booleans, whole numbers,
 * strings, "keys live at the top of the file").
 *
 * Not a plugin: plugins/common/ is compiled once into the static library
 * build/plugins/libupesi_common.a, which every plugin links (the linker
 * takes the objects it uses).  Functions are hidden like the rest of a
 * plugin (-fvisibility=hidden).
 *
 * Fails: each returns 0, or -1; those that take err write the message the
 * host shows after "file: key:" there.
 */
#ifndef UPESI_SETTINGS_H
#define UPESI_SETTINGS_H

#include <stddef.h>

#include "upesi/plugin.h"

/* A plugin whose keys all live at the top of its .ini: 0 for no section,
 * else -1 with "unknown section [S] (PLUGIN.ini keys live at the top of
 * the file)". */
int settings_no_section(const char *plugin, const char *section, char *err,
                        size_t errlen);

/* A boolean: 1, yes, on, true -> 1; 0, no, off, false -> 0 (words in any
 * case).  -1 for anything else, *out untouched. */
int settings_bool(const char *value, int *out);

/* settings_bool, with "KEY: 'VALUE' is not 0 or 1" in err when it fails. */
int settings_bool_key(const char *key, const char *value, int *out,
                      char *err, size_t errlen);

/* Exactly "0" or "1" (no words), with "KEY: 'VALUE' is not 0 or 1" in err
 * when it is neither. */
int settings_0_or_1(const char *key, const char *value, int *out, char *err,
                    size_t errlen);

/* A whole decimal number from lo to hi (strtol, nothing after it). */
int settings_long(const char *value, long lo, long hi, long *out);

/* *slot becomes a copy of value (the old one freed); "out of memory" in
 * err if it cannot. */
int settings_string(char **slot, const char *value, char *err,
                    size_t errlen);

/* For init: a host with DNS (ABI 1.1), else "needs a host with DNS
 * (ABI 1.1)" in err. */
int settings_need_dns(const upesi_api *host, char *err, size_t errlen);

#endif
