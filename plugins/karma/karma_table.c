/*
 * karma_table.c - the scoring table of plugins/karma ([score] in
 * karma.ini, docs/plugins/karma.md): keys `conn.NOTE` or `txn.NOTE`,
 * optionally `[VALUE]` after the note, and whole points -1000..1000.
 * It stands alone so that fuzz/fuzz_karma_score.c can link it.
 *
 * Fails: -1 with a message in err naming the key (out of memory: -1 and
 * err untouched); the table is left as it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "karma_table.h"

void km_table_free(km_entry **table, size_t *ntable)
{
    for (size_t i = 0; i < *ntable; i++) {
        free((*table)[i].note);
        free((*table)[i].value);
    }
    free(*table);
    *table = NULL;
    *ntable = 0;
}

/* "conn.NOTE[VALUE]" (or txn.) and points */
int km_add_entry(km_entry **table, size_t *ntable, const char *key,
                 const char *points, char *err, size_t errlen)
{
    km_entry e = { 0 };
    if (!strncmp(key, "conn.", 5))
        e.scope = UPESI_SCOPE_CONN;
    else if (!strncmp(key, "txn.", 4))
        e.scope = UPESI_SCOPE_TXN;
    else {
        snprintf(err, errlen, "[score] %s: a key is conn.NOTE or txn.NOTE, "
                 "[VALUE] after it optionally", key);
        return -1;
    }
    const char *name = key + (e.scope == UPESI_SCOPE_CONN ? 5 : 4);
    const char *eq = strchr(name, '[');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    size_t vlen = eq ? strlen(eq + 1) : 0;
    if (nlen == 0 || (eq && (vlen < 2 || eq[vlen] != ']'))) {
        snprintf(err, errlen, "[score] %s: a key is conn.NOTE or txn.NOTE, "
                 "[VALUE] after it optionally", key);
        return -1;
    }
    char *end;
    e.points = strtol(points, &end, 10);
    if (end == points || *end || e.points < -1000 || e.points > 1000) {
        snprintf(err, errlen, "[score] %s: points are a whole number from "
                 "-1000 to 1000, got '%s'", key, points);
        return -1;
    }
    e.note = strndup(name, nlen);
    e.value = eq ? strndup(eq + 1, vlen - 1) : NULL;
    km_entry *grown = realloc(*table, (*ntable + 1) * sizeof *grown);
    if (e.note == NULL || (eq && e.value == NULL) || grown == NULL) {
        free(e.note);
        free(e.value);
        if (grown)
            *table = grown;
        return -1;
    }
    *table = grown;
    (*table)[(*ntable)++] = e;
    return 0;
}

/* "key = points", as the default table writes it */
int km_add_line(km_entry **table, size_t *ntable, const char *line,
                char *err, size_t errlen)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", line);
    char *eq = strstr(buf, " = ");
    if (eq == NULL)
        return -1;
    *eq = '\0';
    return km_add_entry(table, ntable, buf, eq + 3, err, errlen);
}
