/*
 * bayes.c - the bayes plugin: a learning content filter at data_post
 * (DESIGN.md 13, docs/plugins/bayes.md).
 *
 * For each message: the client's own X-Spam-Bayes fields are removed, the
 * message (its first max_size bytes) is tokenized and hashed to features,
 * their counts are read from the store in one batch, and the verdict is
 * written down: notes bayes.prob and bayes.class, a header
 * "X-Spam-Bayes: 0.9931 spam", and the action configured for the class.
 * Until min_learns messages of each class are learned there is no
 * verdict, and the header says so.  Autolearn (off by default) learns the
 * message when other plugins' notes say what it is.
 *
 * How it fails: a store that cannot answer follows store_failure (accept:
 * the message goes on without a verdict, logged and counted in
 * SMTP.Bayes.Store.Failures; tempfail: 451 4.3.0).  A message that cannot be read
 * is let through without a verdict, logged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bayes.h"
#include "bayes_features.h"
#include "bayes_tokenize.h"
#include "../common/mime_guard.h"
#include "../common/store_failure.h"

#define BAYES_HEADER "X-Spam-Bayes"

const upesi_api *bayes_api;
upesi_ctx *bayes_ctx;
const bayes_settings *bayes_current_settings;

/* ---------------------------------------------------------------------- */
/* shared helpers                                                          */

const char *bayes_class_name(bayes_verdict_class c)
{
    return c == BAYES_V_SPAM ? "spam" : c == BAYES_V_HAM ? "ham" : "unsure";
}

/* At most max_features of a message's features are looked up, a sample
 * that does not depend on where in the message they stand (by a hash,
 * bayes_features_sample).  Measured on the 10 folds (bench/README.md):
 * 2,000 keeps the ranking and spares a quarter of the lookups, the
 * verdict's main cost; 1,500 doubles 1-AUC. */
int bayes_lookup(bayes_store *st, const bayes_settings *s,
                 const uint64_t *ids, size_t n, bayes_lookup_fn fn,
                 void *arg)
{
    if (s->max_features <= 0 || n <= (size_t)s->max_features)
        return bayes_store_lookup(st, ids, n, fn, arg);
    size_t k = (size_t)s->max_features;
    uint64_t *sample = malloc(k * sizeof *sample);
    if (sample == NULL)
        return -ENOMEM;
    k = bayes_features_sample(ids, n, k, sample);
    int rc = bayes_store_lookup(st, sample, k, fn, arg);  /* copies them */
    free(sample);
    return rc;
}

int bayes_osb_window(const bayes_settings *s)
{
    return s->osb ? s->osb_window : 1;
}

bayes_verdict_class bayes_class_of(const bayes_settings *s, double prob)
{
    if (prob >= s->spam_threshold)
        return BAYES_V_SPAM;
    if (prob <= s->ham_threshold)
        return BAYES_V_HAM;
    return BAYES_V_UNSURE;
}

/* The host's store, asked through this process's handle (made on
 * first use). */
static bayes_store *host_store;

bayes_store *bayes_store_for(const bayes_settings *s, char *err,
                             size_t errlen)
{
    (void)s;
    if (host_store == NULL && (host_store = bayes_store_open_host()) == NULL)
        snprintf(err, errlen, "out of memory");
    return host_store;
}

/* ---------------------------------------------------------------------- */
/* the verdict                                                             */

typedef struct verdict_ctx {
    upesi_call *call;
    const bayes_settings *s;
    bayes_features f;
    unsigned char digest[BAYES_DIGEST_LEN];  /* for autolearn            */
    int in_call;                 /* the hook has not returned yet        */
    int done;
    int cancelled;
    upesi_verdict verdict;
} verdict_ctx;

static void ctx_free(verdict_ctx *v)
{
    bayes_features_free(&v->f);
    free(v);
}

static int note_present(upesi_call *call, char **names)
{
    for (size_t i = 0; names && names[i]; i++) {
        const char *t = bayes_api->note_get(call, UPESI_SCOPE_TXN, names[i]);
        const char *c = bayes_api->note_get(call, UPESI_SCOPE_CONN, names[i]);
        if ((t && *t && strcmp(t, "0") != 0) ||
            (c && *c && strcmp(c, "0") != 0))
            return 1;
    }
    return 0;
}

/* may run after the call is gone (the host's store answers later) */
static void autolearn_done(int status, bayes_learn_result result, void *arg)
{
    (void)arg;
    if (status != 0) {
        bayes_api->log(bayes_ctx, UPESI_LOG_WARNING, "autolearn failed: %s",
                       strerror(-status));
        bayes_api->stat_add(bayes_ctx, "SMTP.Bayes.Store.Failures", 1);
    } else if (result == BAYES_LEARNED || result == BAYES_MOVED) {
        bayes_api->stat_add(bayes_ctx, "SMTP.Bayes.Autolearned", 1);
    }
}

/* Learn the message when another plugin's note says what it is; the
 * balance guard keeps one class from running away: a class is learned
 * only while its count + 1 <= autolearn_balance x (the other's + 1). */
static void autolearn(verdict_ctx *v, const bayes_totals *t)
{
    const bayes_settings *s = v->s;
    int spam = note_present(v->call, s->autolearn_spam);
    int ham = note_present(v->call, s->autolearn_ham);
    if (spam == ham)             /* neither, or both: no one knows */
        return;
    bayes_class cls = spam ? BAYES_SPAM : BAYES_HAM;
    double mine = (double)(spam ? t->spam : t->ham);
    double other = (double)(spam ? t->ham : t->spam);
    if (mine + 1 > s->autolearn_balance * (other + 1)) {
        bayes_api->stat_add(bayes_ctx, "SMTP.Bayes.AutolearnSkipped", 1);
        return;
    }
    char err[256];
    bayes_store *st = bayes_store_for(s, err, sizeof err);
    if (st == NULL)
        return;
    bayes_store_learn(st, v->f.ids, v->f.n, v->digest, cls, 0,
                      autolearn_done, NULL);
}

static upesi_verdict apply_action(verdict_ctx *v, bayes_verdict_class c,
                                  const char *reason)
{
    const bayes_settings *s = v->s;
    upesi_call *call = v->call;
    switch (s->action[c]) {
    case BAYES_ACT_NONE:
        return UPESI_CONT;
    case BAYES_ACT_TAG: {
        bayes_api->header_add(call, "X-Spam-Flag", "YES");
        const char *subject = bayes_api->header_get(call, "Subject", 0);
        if (*s->tag_subject) {
            char *ns = NULL;
            if (asprintf(&ns, "%s %s", s->tag_subject,
                         subject ? subject : "") >= 0) {
                bayes_api->header_remove(call, "Subject");
                bayes_api->header_add(call, "Subject", ns);
                free(ns);
            }
        }
        return UPESI_CONT;
    }
    case BAYES_ACT_QUARANTINE:
        bayes_api->message_action(call, UPESI_ACTION_QUARANTINE, reason);
        return UPESI_CONT;
    case BAYES_ACT_REJECT:
        bayes_api->reply(call, 554, "5.7.1", "%s", s->reject_text);
        return UPESI_DENY;
    case BAYES_ACT_TEMPFAIL:
        bayes_api->reply(call, 451, "4.7.1", "%s", s->tempfail_text);
        return UPESI_DENYSOFT;
    }
    return UPESI_CONT;
}

/* store_failure (plugins/common/store_failure.c): logged at most once a
 * minute, counted, and accept (no verdict) or 451 4.3.0 */
static upesi_verdict store_failed(verdict_ctx *v, int status)
{
    return store_failure_note(bayes_api, bayes_ctx, v->call,
                              v->s->store_failure, status,
                              "SMTP.Bayes.Store.Failures", "lookup");
}

static upesi_verdict judge(verdict_ctx *v, const bayes_count *counts,
                           size_t n, bayes_totals totals)
{
    const bayes_settings *s = v->s;
    upesi_call *call = v->call;
    char value[128];
    if ((long long)totals.spam < s->min_learns ||
        (long long)totals.ham < s->min_learns) {
        snprintf(value, sizeof value,
                 "not enough learned (%llu spam, %llu ham of %d each)",
                 (unsigned long long)totals.spam,
                 (unsigned long long)totals.ham, s->min_learns);
        bayes_api->header_add(call, BAYES_HEADER, value);
        bayes_api->stat_add(bayes_ctx, "SMTP.Bayes.Untrained", 1);
        autolearn(v, &totals);
        return UPESI_CONT;
    }
    size_t used = 0;
    double prob = bayes_combine(&s->params, counts, n, totals.spam,
                                totals.ham, &used);
    bayes_verdict_class c = bayes_class_of(s, prob);
    char p[16];
    snprintf(p, sizeof p, "%.4f", prob);
    bayes_api->note_set(call, UPESI_SCOPE_TXN, "bayes.prob", p);
    bayes_api->note_set(call, UPESI_SCOPE_TXN, "bayes.class",
                        bayes_class_name(c));
    snprintf(value, sizeof value, "%s %s", p, bayes_class_name(c));
    bayes_api->header_add(call, BAYES_HEADER, value);
    bayes_api->stat_add(bayes_ctx, c == BAYES_V_SPAM   ? "SMTP.Bayes.Spam"
                        : c == BAYES_V_HAM ? "SMTP.Bayes.Ham"
                                           : "SMTP.Bayes.Unsure",
                        1);
    bayes_api->log_call(call, UPESI_LOG_INFO, "%s %s (%zu of %zu features)",
                   p, bayes_class_name(c), used, n);
    autolearn(v, &totals);
    char reason[64];
    snprintf(reason, sizeof reason, "bayes %s %s", p, bayes_class_name(c));
    return apply_action(v, c, reason);
}

static void lookup_done(int status, const bayes_count *counts, size_t n,
                        bayes_totals totals, void *arg)
{
    verdict_ctx *v = arg;
    if (v->cancelled) {
        ctx_free(v);
        return;
    }
    v->verdict = status ? store_failed(v, status)
                        : judge(v, counts, n, totals);
    v->done = 1;
    if (!v->in_call) {
        bayes_api->resume(v->call, v->verdict);
        ctx_free(v);
    }
}

static void on_cancel(upesi_call *call, void *arg)
{
    (void)call;
    verdict_ctx *v = arg;
    v->cancelled = 1;            /* the store's answer frees it */
}

/* The message's first max bytes, in a buffer the caller frees; NULL on a
 * read error (logged). */
static char *read_message(upesi_call *call, size_t max, size_t *len)
{
    off_t size = bayes_api->message_size(call);
    size_t want = size > 0 && (size_t)size < max ? (size_t)size : max;
    char *buf = malloc(want + 1);
    size_t got = 0;
    while (buf && got < want) {
        ssize_t n = bayes_api->message_read(call, (off_t)got, buf + got,
                                            want - got);
        if (n < 0) {
            bayes_api->log_call(call, UPESI_LOG_WARNING,
                           "cannot read the message: %s",
                           strerror((int)-n));
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    *len = got;
    return buf;
}

static upesi_verdict bayes_data_post(upesi_call *call)
{
    const bayes_settings *s = bayes_api->config(call);
    bayes_current_settings = s;
    /* a client's own verdict is never believed, nor passed on */
    bayes_api->header_remove(call, BAYES_HEADER);
    verdict_ctx *v = calloc(1, sizeof *v);
    if (v == NULL)
        return UPESI_CONT;
    v->call = call;
    v->s = s;
    bayes_features_init(&v->f, bayes_osb_window(s));
    size_t len = 0;
    char *msg = read_message(call, s->max_size, &len);
    if (msg == NULL) {
        ctx_free(v);
        return UPESI_CONT;
    }
    int rc = bayes_features_message(&v->f, msg, len);
    bayes_message_digest(msg, len, v->digest);
    free(msg);
    if (v->f.cut == MIME_GUARD_LINES)
        bayes_api->log_call(call, UPESI_LOG_NOTICE,
                            "more than %d lines begin with \"--\": judged "
                            "on the MIME parts before them",
                            MIME_GUARD_MAX_LINES);
    else if (v->f.cut == MIME_GUARD_HEADER)
        bayes_api->log_call(call, UPESI_LOG_NOTICE,
                            "header section longer than %dK: judged on the "
                            "fields before that, not the body",
                            MIME_GUARD_MAX_HEADER / 1024);
    if (rc != 0) {
        bayes_api->log_call(call, UPESI_LOG_WARNING, "%s, no verdict",
                       strerror(-rc));
        ctx_free(v);
        return UPESI_CONT;
    }
    char err[256];
    bayes_store *st = bayes_store_for(s, err, sizeof err);
    if (st == NULL) {
        bayes_api->log_call(call, UPESI_LOG_WARNING, "%s, no verdict", err);
        upesi_verdict r = store_failed(v, -ENOMEM);
        ctx_free(v);
        return r;
    }
    v->in_call = 1;
    rc = bayes_lookup(st, s, v->f.ids, v->f.n, lookup_done, v);
    v->in_call = 0;
    if (rc != 0) {
        upesi_verdict r = store_failed(v, rc);
        ctx_free(v);
        return r;
    }
    if (v->done) {
        upesi_verdict r = v->verdict;
        ctx_free(v);
        return r;
    }
    bayes_api->on_cancel(call, on_cancel, v);
    return UPESI_PENDING;
}

/* ---------------------------------------------------------------------- */
/* votes: a mail rule (vote spam) or a Lua script (txn:bayes_vote) set the
 * note bayes.vote during data_post; at the end of the transaction, after
 * every filter, the message is learned as that class. */

/* may run after the transaction is gone (the host's store answers later):
 * arg is the queue id, copied */
static void vote_done(int status, bayes_learn_result result, void *arg)
{
    char *qid = arg;
    if (status != 0) {
        bayes_api->log(bayes_ctx, UPESI_LOG_WARNING, "vote on %s not learned: %s",
                       qid, strerror(-status));
        bayes_api->stat_add(bayes_ctx, "SMTP.Bayes.Store.Failures", 1);
        free(qid);
        return;
    }
    bayes_api->stat_add(bayes_ctx, "SMTP.Bayes.Votes", 1);
    bayes_api->log(bayes_ctx, UPESI_LOG_INFO, "vote on %s learned: %s", qid,
                   result == BAYES_ALREADY ? "already learned as that"
                   : result == BAYES_MOVED ? "moved from the other class"
                                           : "learned");
    free(qid);
}

static upesi_verdict bayes_reset(upesi_call *call)
{
    const char *vote = bayes_api->note_get(call, UPESI_SCOPE_TXN,
                                           "bayes.vote");
    if (vote == NULL || bayes_api->message_size(call) <= 0)
        return UPESI_CONT;
    bayes_class cls;
    if (strcmp(vote, "spam") == 0)
        cls = BAYES_SPAM;
    else if (strcmp(vote, "ham") == 0)
        cls = BAYES_HAM;
    else {
        bayes_api->log_call(call, UPESI_LOG_WARNING, "vote \"%s\" ignored: spam "
                       "or ham", vote);
        return UPESI_CONT;
    }
    const bayes_settings *s = bayes_api->config(call);
    char err[256];
    bayes_store *st = bayes_store_for(s, err, sizeof err);
    size_t len = 0;
    char *msg = st ? read_message(call, s->max_size, &len) : NULL;
    if (msg == NULL) {
        if (st == NULL)
            bayes_api->log_call(call, UPESI_LOG_WARNING, "vote not learned: %s",
                           err);
        return UPESI_CONT;
    }
    bayes_features f;
    bayes_features_init(&f, bayes_osb_window(s));
    int rc = bayes_features_message(&f, msg, len);
    if (rc == 0) {
        unsigned char digest[BAYES_DIGEST_LEN];
        bayes_message_digest(msg, len, digest);
        const char *q = bayes_api->queue_id(call);
        char *qid = strdup(q ? q : "-");
        rc = qid ? bayes_store_learn(st, f.ids, f.n, digest, cls, 0,
                                     vote_done, qid)
                 : -ENOMEM;
        if (rc != 0)
            free(qid);
    }
    if (rc != 0)
        bayes_api->log_call(call, UPESI_LOG_WARNING, "vote not learned: %s",
                            strerror(-rc));
    bayes_features_free(&f);
    free(msg);
    return UPESI_CONT;
}

/* ---------------------------------------------------------------------- */
/* the plugin                                                              */

static int bayes_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                      size_t errlen)
{
    bayes_api = api;
    bayes_ctx = ctx;
    bayes_tokenize_init();
    int rc = api->cli_register(ctx, "bayes", bayes_cli,
                               "bayes learn|unlearn spam|ham FILE|DIR... | "
                               "classify FILE... | stats",
                               NULL);
    if (rc == 0)
        rc = api->control_register(ctx, "bayes", bayes_control, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot register the bayes command: %s",
                 strerror(-rc));
        return -1;
    }
    return 0;
}

static void bayes_fini(void)
{
    bayes_store_close(host_store);
    host_store = NULL;
    bayes_tokenize_shutdown();
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER_NEEDS(UPESI_API_CLI_MINOR), /* the store (2.1),
                                                      cli_register (2.2) */
    .name = "bayes",
    .version = "1.0",
    .init = bayes_init,
    .fini = bayes_fini,
    .config_new = bayes_settings_new,
    .settings = bayes_settings_table,
    .config_check = bayes_settings_check,
    .config_free = bayes_settings_free,
    .hooks = {[UPESI_HOOK_DATA_POST] = bayes_data_post,
              [UPESI_HOOK_RESET] = bayes_reset},
};
