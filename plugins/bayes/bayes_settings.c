/*
 * bayes_settings.c - conf/bayes.ini (docs/plugins/bayes.md).
 *
 * The keys are a settings table (bayes_settings_table: the host parses,
 * applies defaults and documents them in docs/config.md); fractions and
 * one-line texts are the table's custom entries, with the same message
 * shape as the host's ("KEY: expected ..., got 'x'", after file:line).
 * The defaults of the custom entries are set in bayes_settings_new.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bayes.h"
#include "bayes_features.h"

void *bayes_settings_new(void)
{
    bayes_settings *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->spam_threshold = 0.60;
    s->ham_threshold = 0.20;
    /* min_learns, the actions, max_size, osb, store_failure: the host
     * applies the table's defaults */
    s->reject_text = strdup("Message rejected as spam");
    s->tempfail_text = strdup("Message looks like spam, try again later");
    s->tag_subject = strdup("");
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

/* A number from lo to hi (the table has no type for fractions); the
 * host puts "KEY: " before the message. */
static int set_double(const char *value, double lo, double hi, double *out,
                      char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double d = strtod(value, &end);
    if (errno || end == value || *end || !(d >= lo && d <= hi)) {
        snprintf(err, errlen, "expected a number from %g to %g, got '%s'",
                 lo, hi, value);
        return -1;
    }
    *out = d;
    return 0;
}

#define DOUBLE_SETTER(fn, field, lo, hi)                                    \
    static int fn(void *config, const char *value, char *err,              \
                  size_t errlen)                                           \
    {                                                                      \
        return set_double(value, lo, hi, &((bayes_settings *)config)->field, \
                          err, errlen);                                    \
    }
DOUBLE_SETTER(set_spam_threshold, spam_threshold, 0, 1)
DOUBLE_SETTER(set_ham_threshold, ham_threshold, 0, 1)
DOUBLE_SETTER(set_min_dev, params.min_dev, 0, 0.5)
DOUBLE_SETTER(set_robinson_s, params.s, 0.0001, 100)
DOUBLE_SETTER(set_robinson_x, params.x, 0.01, 0.99)
DOUBLE_SETTER(set_autolearn_balance, autolearn_balance, 1, 1000)

static int set_max_tokens(void *config, const char *value, char *err,
                          size_t errlen)
{
    double d;
    if (set_double(value, 1, 100000, &d, err, errlen) != 0 ||
        d != (double)(size_t)d) {
        snprintf(err, errlen, "expected a whole number from 1 to 100000, "
                 "got '%s'", value);
        return -1;
    }
    ((bayes_settings *)config)->params.max_tokens = (size_t)d;
    return 0;
}

/* one line of text, for an SMTP reply or a Subject */
static int set_text(char **slot, const char *value, int empty_ok, char *err,
                    size_t errlen)
{
    if ((!empty_ok && !*value) || strpbrk(value, "\r\n")) {
        snprintf(err, errlen, "expected one line of text, got '%s'", value);
        return -1;
    }
    char *c = strdup(value);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(*slot);
    *slot = c;
    return 0;
}

static int set_reject_text(void *config, const char *value, char *err,
                           size_t errlen)
{
    return set_text(&((bayes_settings *)config)->reject_text, value, 0, err,
                    errlen);
}

static int set_tempfail_text(void *config, const char *value, char *err,
                             size_t errlen)
{
    return set_text(&((bayes_settings *)config)->tempfail_text, value, 0, err,
                    errlen);
}

static int set_tag_subject(void *config, const char *value, char *err,
                           size_t errlen)
{
    return set_text(&((bayes_settings *)config)->tag_subject, value, 1, err,
                    errlen);
}

/* a list item: one more note name (repeated lines add) */
static int list_add(char ***list, const char *item, char *err, size_t errlen)
{
    size_t n = 0;
    while (*list && (*list)[n])
        n++;
    char **v = realloc(*list, (n + 2) * sizeof *v);
    if (v == NULL || (v[n] = strdup(item)) == NULL) {
        if (v)
            *list = v;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    v[n + 1] = NULL;
    *list = v;
    return 0;
}

static int add_autolearn_spam(void *config, const char *item, char *err,
                              size_t errlen)
{
    return list_add(&((bayes_settings *)config)->autolearn_spam, item, err,
                    errlen);
}

static int add_autolearn_ham(void *config, const char *item, char *err,
                             size_t errlen)
{
    return list_add(&((bayes_settings *)config)->autolearn_ham, item, err,
                    errlen);
}

static const char *const action_names[] = {"none", "tag", "quarantine",
                                           "reject", "tempfail", NULL};
static const char *const failure_names[] = {"accept", "tempfail", NULL};

#define OFF(f) offsetof(bayes_settings, f)
#define CUSTOM(name, fn, def, help)                                         \
    { name, UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, fn, def, help }

const upesi_setting bayes_settings_table[] = {
    CUSTOM("spam_threshold", set_spam_threshold, "0.60",
           "a probability at or above it is `spam` (0 to 1)"),
    CUSTOM("ham_threshold", set_ham_threshold, "0.20",
           "at or below it is `ham`; between the two, `unsure`; not above "
           "`spam_threshold`"),
    { "min_learns", UPESI_SETTING_INT, OFF(min_learns), 0, 1000000000, NULL,
      NULL, "200", "messages of each class to learn before any verdict" },
    { "spam_action", UPESI_SETTING_ENUM, OFF(action[BAYES_V_SPAM]), 0, 0,
      action_names, NULL, "none", "what to do with `spam`" },
    { "unsure_action", UPESI_SETTING_ENUM, OFF(action[BAYES_V_UNSURE]), 0, 0,
      action_names, NULL, "none", "what to do with `unsure`" },
    { "ham_action", UPESI_SETTING_ENUM, OFF(action[BAYES_V_HAM]), 0, 0,
      action_names, NULL, "none", "what to do with `ham`" },
    CUSTOM("reject_text", set_reject_text, "Message rejected as spam",
           "the text of `reject`'s 554 5.7.1 (one line)"),
    CUSTOM("tempfail_text", set_tempfail_text,
           "Message looks like spam, try again later",
           "the text of `tempfail`'s 451 4.7.1 (one line)"),
    CUSTOM("tag_subject", set_tag_subject, NULL,
           "with `tag`: a prefix for the Subject, like `[SPAM]`; empty leaves "
           "it alone"),
    { "max_size", UPESI_SETTING_SIZE, OFF(max_size), 1024, 64 << 20, NULL,
      NULL, "1M", "bytes of a message read; the rest is not judged" },
    { "osb", UPESI_SETTING_BOOL, OFF(osb), 0, 0, NULL, NULL, "yes",
      "pairs of words (orthogonal sparse bigrams) as features besides single "
      "words" },
    { "osb_window", UPESI_SETTING_INT, OFF(osb_window), 2, BAYES_OSB_WINDOW,
      NULL, NULL, "4",
      "with `osb`: a word is paired with each of the `osb_window - 1` words "
      "before it" },
    CUSTOM("min_dev", set_min_dev, "0.1",
           "features whose f(w) is closer than this to 0.5 are ignored "
           "(0 to 0.5)"),
    CUSTOM("max_tokens", set_max_tokens, "60",
           "features combined at most, the strongest (1 to 100000)"),
    { "max_features", UPESI_SETTING_INT, OFF(max_features), 100,
      UPESI_STORE_BATCH_MAX - 1, NULL, NULL, "2000",
      "features of a message looked up in the store at most; a longer "
      "message's are a sample (by their hash)" },
    CUSTOM("robinson_s", set_robinson_s, "0.1",
           "Robinson's strength of the prior (0.0001 to 100)"),
    CUSTOM("robinson_x", set_robinson_x, "0.5",
           "the f(w) of a feature never seen (0.01 to 0.99)"),
    { "store_failure", UPESI_SETTING_ENUM, OFF(store_failure), 0, 0,
      failure_names, NULL, "accept",
      "the store does not answer: `accept` (no verdict) or `tempfail` "
      "(451 4.3.0)" },
    { "autolearn_spam", UPESI_SETTING_LIST, 0, 0, 0, NULL,
      add_autolearn_spam, NULL,
      "note names that mark a message as spam: autolearn it as spam" },
    { "autolearn_ham", UPESI_SETTING_LIST, 0, 0, 0, NULL, add_autolearn_ham,
      NULL, "note names that mark a message as ham: autolearn it as ham" },
    CUSTOM("autolearn_balance", set_autolearn_balance, "3",
           "autolearn learns a class only while its count + 1 is at most "
           "this times the other's + 1"),
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

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
