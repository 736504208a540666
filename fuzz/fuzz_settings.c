/*
 * fuzz_settings.c - libFuzzer target for host/settings.c: every value
 * parser of the settings tables (BOOL, INT, COUNT, SIZE, DURATION, ENUM,
 * LIST, STRING), and the sectioned lookup ("section.key", capitals as
 * placeholders) a plugin's ini goes through.
 *
 * The input is "SECTION\nKEY\nVALUE": the lookup runs on SECTION and KEY,
 * then VALUE is applied to every entry of a table that has one key of
 * each type.  Checked, aborting on a violation:
 *   - an accepted value lies within the entry's bounds (an ENUM index
 *     within its choices, a BOOL 0 or 1, a DURATION finite);
 *   - a refused value leaves a message that names the key;
 *   - the lookup returns an entry whose section and key match (a named
 *     part exactly, in any case for the section; a capital part anything).
 *
 * Build and run (from the repository root): make fuzz, then
 *   ./build/fuzz/fuzz_settings -max_total_time=60 fuzz/corpus/fuzz_settings
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "settings.h"

/* settings.c resolves PATH values with this; no PATH entry here */
char *up_config_path(const char *dir, const char *path)
{
    (void)dir;
    return strdup(path);
}

typedef struct fz_obj {
    int b, i, e;
    long long count;
    uint64_t size;
    double dur;
    char *str;
    size_t items;
} fz_obj;

static int fz_item(void *config, const char *item, char *err, size_t errlen)
{
    fz_obj *o = config;
    if (item[0] == '\0' || strpbrk(item, ", \t\r\n")) {
        snprintf(err, errlen, "the splitter gave '%s'", item);
        abort();
    }
    o->items++;
    return 0;
}

static const char *const fz_choices[] = { "direct", "spool", NULL };
static const upesi_setting fz_table[] = {
    { "b", UPESI_SETTING_BOOL, offsetof(fz_obj, b), 0, 0, NULL, NULL, "1", "" },
    { "i", UPESI_SETTING_INT, offsetof(fz_obj, i), -5, 1000, NULL, NULL, "1", "" },
    { "count", UPESI_SETTING_COUNT, offsetof(fz_obj, count), 1000, 1e12, NULL,
      NULL, "1M", "" },
    { "size", UPESI_SETTING_SIZE, offsetof(fz_obj, size), 1024,
      1099511627776.0, NULL, NULL, "64M", "" },
    { "dur", UPESI_SETTING_DURATION, offsetof(fz_obj, dur), 0.001,
      400.0 * 86400, NULL, NULL, "10s", "" },
    { "whitelist.e", UPESI_SETTING_ENUM, offsetof(fz_obj, e), 0, 0,
      fz_choices, NULL, "direct", "" },
    { "ZONE.list", UPESI_SETTING_LIST, 0, 0, 0, NULL, fz_item, NULL, "" },
    { "routes.DOMAIN", UPESI_SETTING_STRING, offsetof(fz_obj, str), 0, 0,
      NULL, NULL, NULL, "" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

static int fz_part(const char *part, size_t len, const char *name, int nocase)
{
    int caps = len > 0;
    for (size_t k = 0; k < len; k++)
        if (!((part[k] >= 'A' && part[k] <= 'Z') || part[k] == '_'))
            caps = 0;
    if (caps)
        return 1;
    return strlen(name) == len &&
           (nocase ? !strncasecmp(part, name, len) : !strncmp(part, name, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *section = buf, *key = "", *value = "";
    char *nl = strchr(section, '\n');
    if (nl) {
        *nl = '\0';
        key = nl + 1;
        if ((nl = strchr(key, '\n')) != NULL) {
            *nl = '\0';
            value = nl + 1;
        }
    }
    int known;
    const upesi_setting *s = up_setting_find_in(fz_table, section, key,
                                                &known);
    if (s) {
        const char *dot = strchr(s->name, '.');
        if (dot == NULL || !known ||
            !fz_part(s->name, (size_t)(dot - s->name), section, 1) ||
            !fz_part(dot + 1, strlen(dot + 1), key, 0))
            abort();
    }
    const upesi_setting *top = up_setting_find(fz_table, key);
    if (top && (strchr(top->name, '.') || strcmp(top->name, key)))
        abort();

    fz_obj o = { 0 };
    char err[512];
    for (const upesi_setting *e = fz_table; e->name; e++) {
        err[0] = '\0';
        if (up_setting_apply(e, &o, "/", value, err, sizeof err) != 0) {
            const char *dot = strchr(e->name, '.');
            const char *shown = dot ? dot + 1 : e->name;
            if (strstr(err, shown) == NULL)
                abort();
            continue;
        }
        switch (e->type) {
        case UPESI_SETTING_BOOL:
            if (o.b != 0 && o.b != 1)
                abort();
            break;
        case UPESI_SETTING_INT:
            if (o.i < e->min || o.i > e->max)
                abort();
            break;
        case UPESI_SETTING_COUNT:
            if (o.count < e->min || o.count > e->max)
                abort();
            break;
        case UPESI_SETTING_SIZE:
            if (o.size < e->min || o.size > e->max)
                abort();
            break;
        case UPESI_SETTING_DURATION:
            if (!isfinite(o.dur) || o.dur < e->min || o.dur > e->max)
                abort();
            break;
        case UPESI_SETTING_ENUM:
            if (o.e < 0 || o.e > 1)
                abort();
            break;
        case UPESI_SETTING_STRING:
            if (o.str == NULL || strcmp(o.str, value))
                abort();
            break;
        default:
            break;
        }
    }
    free(o.str);
    free(buf);
    return 0;
}
