/*
 * fuzz_directory.c - libFuzzer target for plugins/common/dir_table.c, the
 * directory file parser (docs/directory.md).
 *
 * The input is the file.  It is loaded through dir_table_load (from a
 * memfd, by its /proc/self/fd path: the parser's own file reading runs
 * too).  Checked, aborting on any violation:
 *   - a refused file reports at least one error, each with the path, a
 *     line within the file and a non-empty message, and never more than
 *     the loader's cap (20, plus its "too many errors" line);
 *   - a loaded file reports no error and holds at least one entry;
 *   - every word of the input is looked up: any entry found has a valid
 *     kind, a line within the file and a name; a person has an address,
 *     lower case, with exactly one '@'; the entry's own name and address
 *     find an entry again; lookups do not depend on ASCII case.
 *
 * Build and run (from the repository root): make fuzz, then
 *   ./build/fuzz/fuzz_directory -max_total_time=60 build/fuzz/work/x \
 *     fuzz/corpus/fuzz_directory
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../plugins/common/dir_table.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static int fz_fd = -1;
static char fz_path[64];

typedef struct fz_errors {
    int count;
    int lines;                   /* lines in the input */
} fz_errors;

static void fz_on_error(void *arg, const char *path, int line,
                        const char *message)
{
    fz_errors *e = arg;
    FZ_CHECK(path != NULL && strcmp(path, fz_path) == 0);
    FZ_CHECK(line >= 0 && line <= e->lines);
    FZ_CHECK(message != NULL && message[0] != '\0');
    FZ_CHECK(strlen(message) < 600);
    e->count++;
}

static void fz_check_entry(const dir_table *t, const dir_entry *e, int lines)
{
    FZ_CHECK(e->kind == DIR_PERSON || e->kind == DIR_GROUP);
    FZ_CHECK(e->line >= 1 && e->line <= lines);
    FZ_CHECK(e->name != NULL && e->name[0] != '\0');
    if (e->kind == DIR_PERSON)
        FZ_CHECK(e->address != NULL);
    dir_match m;
    dir_table_find(t, e->name, strlen(e->name), &m);
    FZ_CHECK(m.entry != NULL && m.count >= 1);
    if (e->address) {
        const char *at = strchr(e->address, '@');
        FZ_CHECK(at != NULL && at != e->address && at[1] != '\0' &&
                 strchr(at + 1, '@') == NULL);
        for (const char *p = e->address; *p; p++)
            FZ_CHECK(!isupper((unsigned char)*p));
        dir_table_find(t, e->address, strlen(e->address), &m);
        FZ_CHECK(m.entry != NULL && m.count >= 1);
    }
}

static void fz_lookup(const dir_table *t, const char *key, size_t len,
                      int lines)
{
    dir_match m, up;
    dir_table_find(t, key, len, &m);
    FZ_CHECK((m.entry == NULL) == (m.count == 0));
    if (m.entry)
        fz_check_entry(t, m.entry, lines);
    char buf[1100];
    if (len >= sizeof buf)
        return;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)toupper((unsigned char)key[i]);
    dir_table_find(t, buf, len, &up);
    FZ_CHECK(up.entry == m.entry && up.count == m.count &&
             up.any_group == m.any_group);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_fd = memfd_create("fuzz_directory", 0);
    FZ_CHECK(fz_fd >= 0);
    snprintf(fz_path, sizeof fz_path, "/proc/self/fd/%d", fz_fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    FZ_CHECK(ftruncate(fz_fd, 0) == 0);
    FZ_CHECK(pwrite(fz_fd, data, size, 0) == (ssize_t)size);

    fz_errors e = { 0, 1 };
    for (size_t i = 0; i < size; i++)
        e.lines += data[i] == '\n';
    dir_table *t = dir_table_load(fz_path, fz_on_error, &e);
    if (t == NULL) {
        FZ_CHECK(e.count >= 1 && e.count <= 21);
        return 0;
    }
    FZ_CHECK(e.count == 0);
    FZ_CHECK(dir_table_persons(t) + dir_table_groups(t) >= 1);

    /* every word of the input, split at blanks, quotes, '=' and ',' */
    size_t i = 0;
    while (i < size) {
        while (i < size && (isspace(data[i]) || strchr("\"=,", data[i]) ||
                            data[i] == '\0'))
            i++;
        size_t start = i;
        while (i < size && !isspace(data[i]) && !strchr("\"=,", data[i]) &&
               data[i] != '\0')
            i++;
        if (i > start)
            fz_lookup(t, (const char *)data + start, i - start, e.lines);
    }
    /* and every quoted string whole (full names hold blanks) */
    for (i = 0; i < size; i++) {
        if (data[i] != '"')
            continue;
        size_t end = i + 1;
        while (end < size && data[end] != '"' && data[end] != '\n' &&
               data[end] != '\0')
            end++;
        fz_lookup(t, (const char *)data + i + 1, end - i - 1, e.lines);
        i = end;
    }
    fz_lookup(t, "", 0, e.lines);
    dir_table_free(t);
    return 0;
}
