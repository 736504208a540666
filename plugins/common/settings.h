/*
 * settings.h - small helpers for a plugin's custom setters and init.  The
 * keys themselves are described in the plugin's settings table
 * (upesi_setting, upesi/plugin.h), which the host reads.
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

/* A boolean as every settings table reads it (upesi/plugin.h, BOOL): 1,
 * yes, on, true -> 1; 0, no, off, false -> 0 (any case).  -1 for anything
 * else, *out untouched.  For a value that is a boolean or a word
 * (queue_forward's downstream_tls = required); plain booleans belong in
 * the plugin's settings table. */
int settings_bool(const char *value, int *out);

/* A whole decimal number from lo to hi (strtol, nothing after it). */
int settings_long(const char *value, long lo, long hi, long *out);

/* *slot becomes a copy of value (the old one freed); "out of memory" in
 * err if it cannot. */
int settings_string(char **slot, const char *value, char *err,
                    size_t errlen);

#endif
