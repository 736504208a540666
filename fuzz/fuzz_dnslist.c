/*
 * fuzz_dnslist.c - libFuzzer target for the zone lists of dnsbl.ini and
 * dnswl.ini (plugins/common/dnslist.c): zone names, answer ranges
 * (127.0.0.2-127.0.0.11;127.0.0.20, CIDR), weights (zone*weight) and
 * postscreen's reply filters (zone=127.0.[0..255].[2;3]*weight).
 *
 * Every line of the input is one item of a `zones` value, handed to
 * dnslist_set_zone as the settings table would.  Checked, aborting on any
 * difference:
 *   - an item is accepted, or refused with a NUL-terminated message;
 *   - each accepted zone has a lower-case name without a trailing dot, a
 *     weight from -1000 to 1000 that is not 0, and ranges inside
 *     127.0.0.0/8 with lo <= hi (at most 4096 from one filter, plus what
 *     the semicolon form adds);
 *   - the config is weighted exactly when an accepted item had a '*';
 *   - dnslist_config_check answers (0 or -1 with a message), and freeing
 *     the config frees everything (ASan).
 *
 * Build and run (from the repository root): make fuzz, then
 *   ./build/fuzz/fuzz_dnslist -max_total_time=60 build/fuzz/work/x \
 *     fuzz/corpus/fuzz_dnslist
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/common/dnslist.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    FZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    dnslist_config c;
    memset(&c, 0, sizeof c);
    int starred = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char err[256];
        memset(err, 'x', sizeof err);
        size_t before = c.nzones;
        if (dnslist_set_zone(&c, line, err, sizeof err) == 0) {
            FZ_CHECK(c.nzones == before + 1);
            starred |= strchr(line, '*') != NULL;
        } else {
            FZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
            if (c.nzones > before)       /* the zone went in, its answers
                                            did not: it stays, as before */
                starred |= strchr(line, '*') != NULL;
        }
    }
    for (size_t i = 0; i < c.nzones; i++) {
        const dnslist_zone *z = &c.zones[i];
        size_t n = strlen(z->name);
        FZ_CHECK(n > 0 && z->name[n - 1] != '.');
        for (const char *p = z->name; *p; p++)
            FZ_CHECK(!isupper((unsigned char)*p));
        FZ_CHECK(z->weight != 0 && z->weight >= -1000 && z->weight <= 1000);
        for (size_t k = 0; k < z->nranges; k++) {
            FZ_CHECK(z->ranges[k].lo <= z->ranges[k].hi);
            FZ_CHECK(z->ranges[k].lo >> 24 == 127);
            FZ_CHECK(z->ranges[k].hi >> 24 == 127);
        }
    }
    FZ_CHECK(!c.weighted || starred);
    char err[256];
    memset(err, 'x', sizeof err);
    if (dnslist_config_check(&c, err, sizeof err) != 0)
        FZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
    dnslist_config_done(&c);
    free(text);
    return 0;
}
