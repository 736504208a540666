/*
 * fuzz_karma_score.c - libFuzzer target for plugins/karma/karma_table.c,
 * the parser of karma's [score] keys (`conn.NOTE = points`,
 * `txn.NOTE[VALUE] = points`).
 *
 * The input is the key, a NUL, then the points (no NUL: points empty);
 * the first byte chooses whether the pair goes through km_add_entry (the
 * ini file's way) or as one line "key = points" through km_add_line (the
 * default table's way).  An entry that parses has a scope, a non-empty
 * note without '[', a value only when the key has [VALUE] (then
 * non-empty), points in -1000..1000; the key printed back from the entry
 * parses to the same entry.  A refusal leaves the table as it was and
 * says why.  Any difference aborts.
 *
 * Build and run: make fuzz; build/fuzz/fuzz_karma_score fuzz/corpus/fuzz_karma_score
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/karma/karma_table.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int as_line = data[0] & 1;
    data++, size--;
    char *buf = malloc(size + 2);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = '\0';
    const char *key = buf, *points = buf + strlen(buf) + 1;
    if (points > buf + size)
        points = buf + size;     /* no NUL in the input: points empty */

    km_entry *table = NULL;
    size_t n = 0;
    char err[1024] = "";
    int rc;
    if (as_line) {
        char *line = malloc(strlen(key) + strlen(points) + 4);
        if (line == NULL) {
            free(buf);
            return 0;
        }
        sprintf(line, "%s = %s", key, points);
        rc = km_add_line(&table, &n, line, err, sizeof err);
        free(line);
    } else {
        rc = km_add_entry(&table, &n, key, points, err, sizeof err);
        /* the ini way: a refusal always says why */
        FZ_CHECK(rc == 0 || err[0] != '\0');
    }
    if (rc != 0) {
        FZ_CHECK(n == 0 && table == NULL);
        free(buf);
        return 0;
    }
    FZ_CHECK(n == 1 && table != NULL);
    const km_entry *e = &table[0];
    FZ_CHECK(e->scope == UPESI_SCOPE_CONN || e->scope == UPESI_SCOPE_TXN);
    FZ_CHECK(e->note && e->note[0] && strchr(e->note, '[') == NULL);
    FZ_CHECK(e->points >= -1000 && e->points <= 1000);
    FZ_CHECK((e->value != NULL) == (strchr(key, '[') != NULL));
    FZ_CHECK(e->value == NULL || e->value[0] != '\0');

    /* printed back, the key parses to the same entry */
    size_t klen = strlen(e->note) + (e->value ? strlen(e->value) : 0) + 8;
    char *again = malloc(klen), pts[32];
    FZ_CHECK(again != NULL);
    snprintf(again, klen, "%s.%s%s%s%s",
             e->scope == UPESI_SCOPE_CONN ? "conn" : "txn", e->note,
             e->value ? "[" : "", e->value ? e->value : "",
             e->value ? "]" : "");
    snprintf(pts, sizeof pts, "%ld", e->points);
    FZ_CHECK(km_add_entry(&table, &n, again, pts, err, sizeof err) == 0);
    FZ_CHECK(n == 2);
    const km_entry *f = &table[1];
    e = &table[0];
    FZ_CHECK(f->scope == e->scope && f->points == e->points &&
             !strcmp(f->note, e->note) &&
             (f->value == NULL) == (e->value == NULL) &&
             (f->value == NULL || !strcmp(f->value, e->value)));
    free(again);
    km_table_free(&table, &n);
    FZ_CHECK(table == NULL && n == 0);
    free(buf);
    return 0;
}
