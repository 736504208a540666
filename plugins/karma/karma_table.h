/*
 * karma_table.h - one entry of karma's scoring table and its parser
 * (karma_table.c).
 */
#ifndef KARMA_TABLE_H
#define KARMA_TABLE_H

#include <stddef.h>

#include "upesi/plugin.h"

typedef struct km_entry {
    upesi_scope scope;
    char *note;
    char *value;                 /* NULL: any value (integer: times it) */
    long points;
} km_entry;

/* Frees every entry and the array; *table NULL and *ntable 0 after. */
void km_table_free(km_entry **table, size_t *ntable);

/* Appends the entry key ("conn.NOTE", "txn.NOTE[VALUE]") = points to
 * *table.  0, or -1 (with the reason in err, unless out of memory). */
int km_add_entry(km_entry **table, size_t *ntable, const char *key,
                 const char *points, char *err, size_t errlen);

/* The same from one line "key = points" (the spacing exactly so, as the
 * default table writes it).  -1 without a message when " = " is missing. */
int km_add_line(km_entry **table, size_t *ntable, const char *line,
                char *err, size_t errlen);

#endif
