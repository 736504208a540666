/*
 * settings.h - the settings engine: one reading of every key that a table
 * (struct upesi_setting, upesi/plugin.h) describes, for smtp.ini and for
 * every plugin's ini.  The same value parsers, the same defaults applied
 * the same way, the same message for the same mistake, and the key
 * reference in docs/config.md printed from the same tables.
 *
 * Fails: every function returns 0, or -1 with "KEY: expected ..., got
 * 'VALUE'" (or "KEY: " and the setter's message) in err, which the ini
 * reader prints after "file:line: ".  The field is untouched on failure.
 */
#ifndef UPESI_HOST_SETTINGS_H
#define UPESI_HOST_SETTINGS_H

#include <stdio.h>

#include "upesi/plugin.h"

/* The entry of table named key, or NULL (table NULL: none). */
const upesi_setting *up_setting_find(const upesi_setting *table,
                                     const char *key);

/* The entry for key inside [section] ("whitelist.action", "ZONE.answers":
 * a part in capitals matches any name), or NULL; *section_known says
 * whether the table names that section at all (for the error text). */
const upesi_setting *up_setting_find_in(const upesi_setting *table,
                                        const char *section, const char *key,
                                        int *section_known);

/* The sections whose entries name key ("[whitelist], [blacklist]") in
 * buf; 0 if none does. */
int up_setting_sections_of(const upesi_setting *table, const char *key,
                           char *buf, size_t len);

/* 1 if the table describes keys inside sections. */
int up_settings_sectioned(const upesi_setting *table);

/* Parse value as s says and set the field of obj; dir is the
 * configuration directory (PATH values are relative to it). */
int up_setting_apply(const upesi_setting *s, void *obj, const char *dir,
                     const char *value, char *err, size_t errlen);

/* The defaults of every field the table types (see plugin.h), applied to a
 * new settings object before its file is read. */
int up_settings_defaults(const upesi_setting *table, void *obj,
                         const char *dir, char *err, size_t errlen);

/* 1/yes/on/true -> 1, 0/no/off/false -> 0 (any case); -1 otherwise. */
int up_setting_bool(const char *value, int *out);

/* Call fn for each item of a list value (upesi_list_next: commas and/or
 * blanks), stopping at the first failure. */
int up_list_each(const char *value,
                 int (*fn)(void *arg, const char *item, char *err,
                           size_t errlen),
                 void *arg, char *err, size_t errlen);

/* The reference of one file's keys, as a Markdown table between
 * "<!-- begin settings FILE -->" and "<!-- end settings FILE -->" lines
 * (docs/config.md holds these blocks; a test compares them). */
void up_settings_doc(FILE *out, const char *file,
                     const upesi_setting *table);

#endif
