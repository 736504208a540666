/*
 * settings.c - the settings engine (see settings.h): the value parsers of
 * every settings table, defaults, and the generated key reference.
 *
 * Fails: as settings.h says; nothing is logged here.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "settings.h"

#define FIELD(obj, s, type) ((type *)(void *)((char *)(obj) + (s)->offset))

/* A part of a sectioned name written in capitals ("ZONE", "DOMAIN") is a
 * placeholder: it matches any name. */
static int placeholder(const char *part, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(part[i] >= 'A' && part[i] <= 'Z') && part[i] != '_')
            return 0;
    return 1;
}

static int part_matches(const char *part, size_t len, const char *name,
                        int nocase)
{
    if (placeholder(part, len))
        return 1;
    if (strlen(name) != len)
        return 0;
    return nocase ? !strncasecmp(part, name, len) : !strncmp(part, name, len);
}

const upesi_setting *up_setting_find(const upesi_setting *table,
                                     const char *key)
{
    for (const upesi_setting *s = table; s && s->name; s++)
        if (!strchr(s->name, '.') && !strcmp(s->name, key))
            return s;
    return NULL;
}

/* "whitelist.action" or "ZONE.answers": the entry for key in [section];
 * a named section or key wins over a placeholder (the first such entry). */
const upesi_setting *up_setting_find_in(const upesi_setting *table,
                                        const char *section, const char *key,
                                        int *section_known)
{
    const upesi_setting *best = NULL;
    int best_rank = -1;
    *section_known = 0;
    for (const upesi_setting *s = table; s && s->name; s++) {
        const char *dot = strchr(s->name, '.');
        if (dot == NULL)
            continue;
        size_t slen = (size_t)(dot - s->name);
        /* section names are case-insensitive in every ini ([Whitelist]) */
        if (!part_matches(s->name, slen, section, 1))
            continue;
        *section_known = 1;
        if (!part_matches(dot + 1, strlen(dot + 1), key, 0))
            continue;
        int rank = !placeholder(s->name, slen) * 2 +
                   !placeholder(dot + 1, strlen(dot + 1));
        if (rank > best_rank) {
            best = s;
            best_rank = rank;
        }
    }
    return best;
}

int up_setting_sections_of(const upesi_setting *table, const char *key,
                           char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const upesi_setting *s = table; s && s->name; s++) {
        const char *dot = strchr(s->name, '.');
        if (dot == NULL || strcmp(dot + 1, key) || used >= len)
            continue;
        int n = snprintf(buf + used, len - used, "%s[%.*s]",
                         used ? ", " : "", (int)(dot - s->name), s->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return used > 0;
}

int up_settings_sectioned(const upesi_setting *table)
{
    for (const upesi_setting *s = table; s && s->name; s++)
        if (strchr(s->name, '.'))
            return 1;
    return 0;
}

int up_setting_bool(const char *value, int *out)
{
    return upesi_bool_word(value, out);
}

int up_list_each(const char *value,
                 int (*fn)(void *arg, const char *item, char *err,
                           size_t errlen),
                 void *arg, char *err, size_t errlen)
{
    const char *pos = value, *item;
    size_t len;
    char buf[1024];
    while ((item = upesi_list_next(&pos, &len)) != NULL) {
        if (len >= sizeof buf) {
            snprintf(err, errlen, "'%.40s...' is too long for a list item",
                     item);
            return -1;
        }
        memcpy(buf, item, len);
        buf[len] = '\0';
        if (fn(arg, buf, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* "30", "1.5", "30s", "500ms", "2m", "1h", "5d" -> seconds */
static int parse_duration(const char *value, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || v != v || isinf(v))
        return -1;
    if (*end == '\0' || !strcmp(end, "s"))
        ;
    else if (!strcmp(end, "ms"))
        v /= 1000;
    else if (!strcmp(end, "m"))
        v *= 60;
    else if (!strcmp(end, "h"))
        v *= 3600;
    else if (!strcmp(end, "d"))
        v *= 86400;
    else
        return -1;
    *out = v;
    return 0;
}

/* "26214400", "25M", "512k" -> bytes (K, M, G: times 1024) */
static int parse_size(const char *value, double *out)
{
    char *end;
    errno = 0;
    if (value[0] == '-' || value[0] == '+')
        return -1;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value)
        return -1;
    double mult = 1;
    if (*end != '\0') {
        switch (*end) {
        case 'k': case 'K': mult = 1024.0; break;
        case 'm': case 'M': mult = 1024.0 * 1024; break;
        case 'g': case 'G': mult = 1024.0 * 1024 * 1024; break;
        default: return -1;
        }
        if (end[1] != '\0')
            return -1;
    }
    *out = (double)v * mult;
    return 0;
}

/* "2000000", "2M", "500k" -> a count (k, M, G: times 1000) */
static int parse_count(const char *value, double *out)
{
    char *end;
    errno = 0;
    if (value[0] == '-' || value[0] == '+')
        return -1;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value)
        return -1;
    double mult = 1;
    if (*end != '\0') {
        switch (*end) {
        case 'k': case 'K': mult = 1e3; break;
        case 'm': case 'M': mult = 1e6; break;
        case 'g': case 'G': mult = 1e9; break;
        default: return -1;
        }
        if (end[1] != '\0')
            return -1;
    }
    *out = (double)v * mult;
    return 0;
}

static int parse_whole(const char *value, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static void choices_text(const upesi_setting *s, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const char *const *c = s->choices; c && *c && used < len; c++) {
        int n = snprintf(buf + used, len - used, "%s%s",
                         c == s->choices ? "" : ", ", *c);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* What a value of this type is, in words: the message after "expected",
 * and the reference's "type" column. */
static void expected_text(const upesi_setting *s, char *buf, size_t len)
{
    char choices[256];
    switch (s->type) {
    case UPESI_SETTING_BOOL:
        snprintf(buf, len, "a boolean (0/1, yes/no, on/off, true/false)");
        break;
    case UPESI_SETTING_INT:
        snprintf(buf, len, "a whole number from %.0f to %.0f", s->min,
                 s->max);
        break;
    case UPESI_SETTING_COUNT:
        snprintf(buf, len, "a count from %.0f to %.0f (suffixes k, M, G: "
                 "thousands, millions, billions)", s->min, s->max);
        break;
    case UPESI_SETTING_SIZE:
        snprintf(buf, len, "a size in bytes from %.0f to %.0f (suffixes K, "
                 "M, G)", s->min, s->max);
        break;
    case UPESI_SETTING_DURATION:
        snprintf(buf, len, "a duration from %.15g to %.15g seconds (30, 1.5, "
                 "500ms, 2m, 1h, 5d)", s->min, s->max);
        break;
    case UPESI_SETTING_ENUM:
        choices_text(s, choices, sizeof choices);
        snprintf(buf, len, "one of %s", choices);
        break;
    case UPESI_SETTING_STRING:
        snprintf(buf, len, "text");
        break;
    case UPESI_SETTING_PATH:
        snprintf(buf, len, "a path");
        break;
    case UPESI_SETTING_LIST:
        snprintf(buf, len, "a list");
        break;
    default:
        snprintf(buf, len, "see meaning");
        break;
    }
}

/* "(the system's host name)": a default that only describes */
static int def_describes(const upesi_setting *s)
{
    return s->def && s->def[0] == '(';
}

/* How errors name a key: "max_rcpt", or "[whitelist] action" */
static const char *key_name(const upesi_setting *s, char *buf, size_t len)
{
    const char *dot = strchr(s->name, '.');
    if (dot == NULL)
        return s->name;
    snprintf(buf, len, "[%.*s] %s", (int)(dot - s->name), s->name, dot + 1);
    return buf;
}

static int expected(const upesi_setting *s, const char *value, char *err,
                    size_t errlen)
{
    char what[320], nb[160];
    expected_text(s, what, sizeof what);
    snprintf(err, errlen, "%s: expected %s, got '%s'",
             key_name(s, nb, sizeof nb), what, value);
    return -1;
}

static int set_text(char **slot, const char *value, const char *dir,
                    int is_path)
{
    char *copy = is_path ? up_config_path(dir, value) : strdup(value);
    if (copy == NULL)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

int up_setting_apply(const upesi_setting *s, void *obj, const char *dir,
                     const char *value, char *err, size_t errlen)
{
    long long whole;
    double d;
    int b;
    char why[512] = "", nb[160];
    const char *name = key_name(s, nb, sizeof nb);
    switch (s->type) {
    case UPESI_SETTING_BOOL:
        if (up_setting_bool(value, &b) != 0)
            return expected(s, value, err, errlen);
        *FIELD(obj, s, int) = b;
        return 0;
    case UPESI_SETTING_INT:
        if (parse_whole(value, &whole) != 0 || whole < s->min ||
            whole > s->max)
            return expected(s, value, err, errlen);
        *FIELD(obj, s, int) = (int)whole;
        return 0;
    case UPESI_SETTING_COUNT:
        if (parse_count(value, &d) != 0 || d < s->min || d > s->max)
            return expected(s, value, err, errlen);
        *FIELD(obj, s, long long) = (long long)d;
        return 0;
    case UPESI_SETTING_SIZE:
        if (parse_size(value, &d) != 0 || d < s->min || d > s->max)
            return expected(s, value, err, errlen);
        *FIELD(obj, s, uint64_t) = (uint64_t)d;
        return 0;
    case UPESI_SETTING_DURATION:
        if (parse_duration(value, &d) != 0 || d < s->min || d > s->max)
            return expected(s, value, err, errlen);
        *FIELD(obj, s, double) = d;
        return 0;
    case UPESI_SETTING_ENUM:
        for (int i = 0; s->choices && s->choices[i]; i++)
            if (!strcasecmp(value, s->choices[i])) {
                *FIELD(obj, s, int) = i;
                return 0;
            }
        return expected(s, value, err, errlen);
    case UPESI_SETTING_STRING:
    case UPESI_SETTING_PATH:
        if (set_text(FIELD(obj, s, char *), value, dir,
                     s->type == UPESI_SETTING_PATH) != 0) {
            snprintf(err, errlen, "%s: out of memory", name);
            return -1;
        }
        return 0;
    case UPESI_SETTING_LIST: {
        const char *pos = value, *item;
        size_t len;
        char buf[1024];
        while ((item = upesi_list_next(&pos, &len)) != NULL) {
            if (len >= sizeof buf) {
                snprintf(err, errlen, "%s: '%.40s...' is too long for a list "
                         "item", name, item);
                return -1;
            }
            memcpy(buf, item, len);
            buf[len] = '\0';
            if (s->set(obj, buf, why, sizeof why) != 0) {
                snprintf(err, errlen, "%s: %s", name,
                         why[0] ? why : "bad item");
                return -1;
            }
        }
        return 0;
    }
    case UPESI_SETTING_CUSTOM:
        if (s->set == NULL) {
            snprintf(err, errlen, "%s: the settings table has no setter for "
                     "this key (a bug in its plugin)", name);
            return -1;
        }
        if (s->set(obj, value, why, sizeof why) != 0) {
            /* a message that already starts with the key ("tls_sni NAME:
             * key ... does not belong") is not named twice */
            size_t n = strlen(s->name);
            if (!strncmp(why, s->name, n) && (why[n] == ' ' || why[n] == ':'))
                snprintf(err, errlen, "%s", why);
            else
                snprintf(err, errlen, "%s: %s", name,
                         why[0] ? why : "bad value");
            return -1;
        }
        return 0;
    default:
        snprintf(err, errlen, "%s: the settings table has no type for this "
                 "key (a bug in its plugin)", name);
        return -1;
    }
}

int up_settings_defaults(const upesi_setting *table, void *obj,
                         const char *dir, char *err, size_t errlen)
{
    for (const upesi_setting *s = table; s && s->name; s++) {
        if (s->def == NULL || def_describes(s) ||
            s->type == UPESI_SETTING_LIST || s->type == UPESI_SETTING_CUSTOM)
            continue;
        if (up_setting_apply(s, obj, dir, s->def, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* Markdown cell text: '|' would end the cell */
static void cell(FILE *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '|')
            fputc('\\', out);
        fputc(*p, out);
    }
}

void up_settings_doc(FILE *out, const char *file,
                     const upesi_setting *table)
{
    fprintf(out, "<!-- begin settings %s (generated by `upesi "
            "--dump-settings`; edit the table in the code) -->\n", file);
    fprintf(out, "| key | value | default | meaning |\n|---|---|---|---|\n");
    for (const upesi_setting *s = table; s && s->name; s++) {
        char what[320];
        expected_text(s, what, sizeof what);
        const char *dot = strchr(s->name, '.');
        if (dot)
            fprintf(out, "| `[%.*s] %s` | ", (int)(dot - s->name), s->name,
                    dot + 1);
        else
            fprintf(out, "| `%s` | ", s->name);
        cell(out, what);
        fputs(" | ", out);
        if (def_describes(s)) {
            char text[256];
            size_t n = strlen(s->def + 1);
            if (n && s->def[n] == ')')
                n--;
            snprintf(text, sizeof text, "%.*s", (int)n, s->def + 1);
            cell(out, text);
        } else if (s->def && s->def[0]) {
            fputc('`', out);
            cell(out, s->def);
            fputc('`', out);
        } else {
            fputs("none", out);
        }
        fputs(" | ", out);
        cell(out, s->help ? s->help : "");
        fputs(" |\n", out);
    }
    fprintf(out, "<!-- end settings %s -->\n", file);
}
