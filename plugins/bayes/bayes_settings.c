/*
 * bayes_settings.c - conf/bayes.ini (docs/plugins/bayes.md).
 *
 * Every key has a default; a bad value is refused with the key, the value
 * and what is allowed (the host adds file and line).  Booleans take
 * 0/1/yes/no/on/off/true/false and lists are comma or space separated, as
 * everywhere in upesi.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bayes.h"
#include "../common/store_failure.h"

void *bayes_settings_new(void)
{
    bayes_settings *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->spam_threshold = 0.95;
    s->ham_threshold = 0.20;
    s->min_learns = 200;
    s->action[BAYES_V_SPAM] = BAYES_ACT_NONE;
    s->action[BAYES_V_UNSURE] = BAYES_ACT_NONE;
    s->action[BAYES_V_HAM] = BAYES_ACT_NONE;
    s->reject_text = strdup("Message rejected as spam");
    s->tempfail_text = strdup("Message looks like spam, try again later");
    s->tag_subject = strdup("");
    s->max_size = 1024 * 1024;
    s->osb = 1;
    s->params = (bayes_params)BAYES_PARAMS_DEFAULT;
    s->autolearn_balance = 3.0;
    if (!s->reject_text || !s->tempfail_text || !s->tag_subject) {
        bayes_settings_free(s);
        return NULL;
    }
    return s;
}

static void free_list(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void bayes_settings_free(void *config)
{
    bayes_settings *s = config;
    if (s == NULL)
        return;
    if (bayes_current_settings == s)
        bayes_current_settings = NULL;
    free(s->reject_text);
    free(s->tempfail_text);
    free(s->tag_subject);
    free_list(s->autolearn_spam);
    free_list(s->autolearn_ham);
    free(s);
}

static int parse_double(const char *value, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(value, &end);
    if (errno || end == value || *end || d < lo || d > hi)
        return -1;
    *out = d;
    return 0;
}

static int parse_long(const char *value, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "yes", "on", "true", NULL};
    static const char *const no[] = {"0", "no", "off", "false", NULL};
    for (int i = 0; yes[i]; i++)
        if (strcasecmp(v, yes[i]) == 0)
            return *out = 1, 0;
    for (int i = 0; no[i]; i++)
        if (strcasecmp(v, no[i]) == 0)
            return *out = 0, 0;
    return -1;
}

static int parse_action(const char *v, bayes_action *out)
{
    static const char *const names[] = {"none", "tag", "quarantine", "reject",
                                        "tempfail", NULL};
    for (int i = 0; names[i]; i++)
        if (strcasecmp(v, names[i]) == 0)
            return *out = (bayes_action)i, 0;
    return -1;
}

static int set_string(char **slot, const char *value)
{
    char *c = strdup(value);
    if (c == NULL)
        return -1;
    free(*slot);
    *slot = c;
    return 0;
}

static int parse_list(const char *value, char ***out)
{
    size_t n = 0;
    char **v = calloc(strlen(value) / 2 + 2, sizeof *v);
    char *copy = strdup(value);
    if (v == NULL || copy == NULL) {
        free(v);
        free(copy);
        return -1;
    }
    char *save = NULL;
    for (char *t = strtok_r(copy, ", \t", &save); t;
         t = strtok_r(NULL, ", \t", &save))
        if ((v[n++] = strdup(t)) == NULL) {
            free(copy);
            free_list(v);
            return -1;
        }
    free(copy);
    free_list(*out);
    *out = n ? v : (free(v), NULL);
    return 0;
}

int bayes_settings_set(void *config, const char *section, const char *key,
                       const char *value, char *err, size_t errlen)
{
    bayes_settings *s = config;
    long l;
    int b;
    if (section && *section) {
        snprintf(err, errlen, "unknown section [%s]", section);
        return -1;
    }
    if (strcmp(key, "spam_threshold") == 0) {
        if (parse_double(value, 0, 1, &s->spam_threshold) == 0)
            return 0;
    } else if (strcmp(key, "ham_threshold") == 0) {
        if (parse_double(value, 0, 1, &s->ham_threshold) == 0)
            return 0;
    } else if (strcmp(key, "min_learns") == 0) {
        if (parse_long(value, 0, 1000000000L, &s->min_learns) == 0)
            return 0;
    } else if (strcmp(key, "spam_action") == 0 ||
               strcmp(key, "unsure_action") == 0 ||
               strcmp(key, "ham_action") == 0) {
        int c = key[0] == 's' ? BAYES_V_SPAM : key[0] == 'u' ? BAYES_V_UNSURE
                                                              : BAYES_V_HAM;
        if (parse_action(value, &s->action[c]) == 0)
            return 0;
        snprintf(err, errlen, "%s = %s: none, tag, quarantine, reject or "
                 "tempfail", key, value);
        return -1;
    } else if (strcmp(key, "reject_text") == 0 ||
               strcmp(key, "tempfail_text") == 0) {
        if (!*value || strpbrk(value, "\r\n")) {
            snprintf(err, errlen, "%s: one line of text", key);
            return -1;
        }
        return set_string(key[0] == 'r' ? &s->reject_text
                                        : &s->tempfail_text, value);
    } else if (strcmp(key, "tag_subject") == 0) {
        return set_string(&s->tag_subject, value);
    } else if (strcmp(key, "max_size") == 0) {
        if (parse_long(value, 1024, 64L * 1024 * 1024, &l) == 0)
            return s->max_size = (size_t)l, 0;
    } else if (strcmp(key, "osb") == 0) {
        if (parse_bool(value, &b) == 0)
            return s->osb = b, 0;
    } else if (strcmp(key, "min_dev") == 0) {
        if (parse_double(value, 0, 0.5, &s->params.min_dev) == 0)
            return 0;
    } else if (strcmp(key, "max_tokens") == 0) {
        if (parse_long(value, 1, 100000, &l) == 0)
            return s->params.max_tokens = (size_t)l, 0;
    } else if (strcmp(key, "robinson_s") == 0) {
        if (parse_double(value, 0.0001, 100, &s->params.s) == 0)
            return 0;
    } else if (strcmp(key, "robinson_x") == 0) {
        if (parse_double(value, 0.01, 0.99, &s->params.x) == 0)
            return 0;
    } else if (strcmp(key, "store_failure") == 0) {
        return store_failure_parse(value, &s->store_failure, err, errlen);
    } else if (strcmp(key, "autolearn_spam") == 0 ||
               strcmp(key, "autolearn_ham") == 0) {
        if (parse_list(value, key[10] == 's' ? &s->autolearn_spam
                                             : &s->autolearn_ham) == 0)
            return 0;
        snprintf(err, errlen, "out of memory");
        return -1;
    } else if (strcmp(key, "autolearn_balance") == 0) {
        if (parse_double(value, 1, 1000, &s->autolearn_balance) == 0)
            return 0;
    } else {
        snprintf(err, errlen, "unknown key %s", key);
        return -1;
    }
    snprintf(err, errlen, "%s = %s: not a valid value", key, value);
    return -1;
}

int bayes_settings_check(void *config, char *err, size_t errlen)
{
    bayes_settings *s = config;
    if (s->ham_threshold > s->spam_threshold) {
        snprintf(err, errlen, "ham_threshold (%g) is above spam_threshold "
                 "(%g)", s->ham_threshold, s->spam_threshold);
        return -1;
    }
    bayes_current_settings = s;
    return 0;
}
