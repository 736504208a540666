/*
 * fuzz_metrics.c - libFuzzer target for host/metrics.c: a statistic's name
 * mapped to its Prometheus family, labels and type, and the exposition
 * text of a table holding it.
 *
 * Any name a plugin may create must give a family name of [a-z0-9_]
 * starting "upesi_", labels of the form name="value" with '\', '"' and
 * newline escaped (no raw newline anywhere), and an exposition whose lines
 * are "# HELP", "# TYPE" or "family[{labels}] value".  Any difference
 * aborts.
 *
 * Input: the name (cut at the first NUL and at UP_STAT_NAME_MAX bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "stats.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void check_labels(const char *l)
{
    while (*l) {
        while (*l >= 'a' && *l <= 'z')
            l++;
        FZ_CHECK(l[0] == '=' && l[1] == '"');
        l += 2;
        while (*l && *l != '"') {
            FZ_CHECK(*l != '\n');
            if (*l == '\\') {
                FZ_CHECK(l[1] == '\\' || l[1] == '"' || l[1] == 'n');
                l++;
            }
            l++;
        }
        FZ_CHECK(*l == '"');
        l++;
        if (*l == ',')
            l++;
        else
            FZ_CHECK(*l == '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a fresh small table each run: the exposition holds this name and
     * a few fixed ones (a table that grew over runs would make every run
     * slower) */
    up_stats_free();
    FZ_CHECK(up_stats_init(64) == 0);
    up_stats_add("SMTP.Command.EHLO", 3);
    up_stats_set("SMTP.Sessions.Current", 2);
    char name[UP_STAT_NAME_MAX + 1];
    size_t n = size < UP_STAT_NAME_MAX ? size : UP_STAT_NAME_MAX;
    memcpy(name, data, n);
    name[n] = '\0';
    if (name[0] == '\0')
        return 0;
    char family[160], labels[512], help[160];
    int gauge;
    if (up_metrics_map(name, family, sizeof family, labels, sizeof labels,
                       &gauge, help, sizeof help) == 0) {
        FZ_CHECK(!strncmp(family, "upesi_", 6));
        for (const char *p = family; *p; p++)
            FZ_CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                     *p == '_');
        check_labels(labels);
        FZ_CHECK(gauge == 0 || gauge == 1);
    }
    up_stats_add(name, 1);
    size_t len = 0;
    char *text = up_metrics_render(&len);
    FZ_CHECK(text != NULL);
    FZ_CHECK(len == strlen(text));
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        FZ_CHECK(nl != NULL);
        *nl = '\0';
        if (line[0] == '#')
            FZ_CHECK(!strncmp(line, "# HELP upesi_", 13) ||
                     !strncmp(line, "# TYPE upesi_", 13));
        else
            FZ_CHECK(!strncmp(line, "upesi_", 6) && strrchr(line, ' '));
        line = nl + 1;
    }
    free(text);
    return 0;
}
