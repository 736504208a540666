/*
 * bayes.h - what the parts of the bayes plugin share: its settings, the
 * host API, the store of this process, and the verdict of one message.
 */
#ifndef BAYES_H
#define BAYES_H

#include <stddef.h>
#include <stdint.h>

#include "upesi/plugin.h"

#include "bayes_classify.h"
#include "bayes_store.h"

typedef enum bayes_action {
    BAYES_ACT_NONE = 0,
    BAYES_ACT_TAG,               /* X-Spam-Flag: YES, subject prefix      */
    BAYES_ACT_QUARANTINE,        /* the host's quarantine                 */
    BAYES_ACT_REJECT,            /* 554 5.7.1 reject_text                 */
    BAYES_ACT_TEMPFAIL           /* 451 4.7.1 tempfail_text               */
} bayes_action;

#define BAYES_CLASSES 3          /* spam, unsure, ham: actions by class  */
typedef enum bayes_verdict_class {
    BAYES_V_SPAM = 0,
    BAYES_V_UNSURE,
    BAYES_V_HAM
} bayes_verdict_class;

typedef struct bayes_settings {
    double spam_threshold, ham_threshold;
    int min_learns;
    int action[BAYES_CLASSES];   /* bayes_action, by verdict class      */
    char *reject_text, *tempfail_text, *tag_subject;
    uint64_t max_size;           /* bytes of a message read              */
    int max_features;            /* looked up a message, at most         */
    int osb;
    int osb_window;              /* with osb: tokens a pair spans (2-5)  */
    bayes_params params;
    int store_failure;           /* STORE_FAILURE_ACCEPT | _TEMPFAIL     */
    char **autolearn_spam, **autolearn_ham;  /* note names, NULL-ended   */
    double autolearn_balance;
} bayes_settings;

extern const upesi_api *bayes_api;
extern upesi_ctx *bayes_ctx;    /* for the host's store calls */
/* The settings of the configuration the server runs (for the control
 * command, which has no call to ask): those of the last message judged,
 * or else the last ones checked. */
extern const bayes_settings *bayes_current_settings;

/* bayes_settings.c: the plugin's config_new/check/free (the host applies the table) */
void *bayes_settings_new(void);
extern const upesi_setting bayes_settings_table[];
int bayes_settings_check(void *config, char *err, size_t errlen);
void bayes_settings_free(void *config);

/* The store of this process: the host's store service (smtp.ini
 * `store`).  NULL with a sentence in err. */
bayes_store *bayes_store_for(const bayes_settings *s, char *err,
                             size_t errlen);

const char *bayes_class_name(bayes_verdict_class c);
bayes_verdict_class bayes_class_of(const bayes_settings *s, double prob);
/* The window bayes_features_init takes: osb_window, or 1 without osb. */
int bayes_osb_window(const bayes_settings *s);
/* Look up a message's n sorted feature ids, or max_features of them (a
 * sample), as bayes_store_lookup. */
int bayes_lookup(bayes_store *st, const bayes_settings *s,
                 const uint64_t *ids, size_t n, bayes_lookup_fn fn,
                 void *arg);

/* Tokenize, hash and learn or unlearn one message (bayes_cli.c): the
 * store's answer in *result.  0 or a negative errno. */
int bayes_learn_message(bayes_store *st, const bayes_settings *s,
                        const char *msg, size_t len, bayes_class cls,
                        int unlearn, bayes_learn_result *result);
/* Classify one message, waiting for the store's answer (command line
 * only: cli_wait).  0 or a negative errno. */
int bayes_classify_message(bayes_store *st, const bayes_settings *s,
                           const char *msg, size_t len, double *prob,
                           bayes_totals *totals);

/* bayes_cli.c: `upesi -c DIR bayes ...` */
int bayes_cli(void *config, int argc, char **argv, void *arg);
/* bayes_cli.c: the control-socket command "bayes learn|unlearn spam|ham
 * PATH..." of a running server */
void bayes_control(const char *args, upesi_control *out, void *arg);

#endif
