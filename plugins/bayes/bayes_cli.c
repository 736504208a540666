/*
 * bayes_cli.c - teaching and asking the filter by hand:
 *
 *   upesi -c DIR bayes learn spam|ham FILE|DIR...
 *   upesi -c DIR bayes unlearn spam|ham FILE|DIR...
 *   upesi -c DIR bayes classify FILE|DIR...
 *   upesi -c DIR bayes stats
 *
 * and the same learn/unlearn as the control command "bayes" of a running
 * server.  A FILE is one message, or an mbox (it begins with "From "),
 * split on its "From " lines; a DIR is a Maildir (cur/ and new/) or any
 * folder of message files, walked recursively (names beginning with '.'
 * skipped).
 *
 * How it fails: a file that cannot be read or is empty is counted as
 * unreadable, named on stderr, and the rest goes on; a message the store
 * did not take (a timeout) likewise, counted as failed; the exit status
 * is then 1.  Out of memory, a full store, or ten store failures in a row
 * stop the run (exit 1).  Usage errors exit 2.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bayes.h"
#include "bayes_features.h"

#define MAX_PATH_DEPTH 16

typedef struct learn_out {
    volatile int done;
    int status;
    bayes_learn_result result;
} learn_out;

static void learn_done(int status, bayes_learn_result result, void *arg)
{
    learn_out *o = arg;
    o->status = status;
    o->result = result;
    o->done = 1;
}

/* Wait for a store call of the command line: the host's store answers
 * while the host's loop runs. */
static int wait_for(volatile int *done)
{
    if (*done)
        return 0;
    return bayes_api->cli_wait(done);
}

int bayes_learn_message(bayes_store *st, const bayes_settings *s,
                        const char *msg, size_t len, bayes_class cls,
                        int unlearn, bayes_learn_result *result)
{
    bayes_features f;
    bayes_features_init(&f, bayes_osb_window(s));
    int rc = bayes_features_message(&f, msg, len);
    if (rc == 0) {
        unsigned char digest[BAYES_DIGEST_LEN];
        bayes_message_digest(msg, len, digest);
        learn_out o = {0, -EIO, BAYES_NOT_LEARNED};
        rc = bayes_store_learn(st, f.ids, f.n, digest, cls, unlearn,
                               learn_done, &o);
        if (rc == 0)
            rc = wait_for(&o.done);
        if (rc == 0) {
            rc = o.status;
            *result = o.result;
        }
    }
    bayes_features_free(&f);
    return rc;
}

typedef struct classify_out {
    volatile int done;
    const bayes_settings *s;
    int status;
    double prob;
    bayes_totals totals;
} classify_out;

static void classify_done(int status, const bayes_count *counts, size_t n,
                          bayes_totals totals, void *arg)
{
    classify_out *o = arg;
    o->status = status;
    o->totals = totals;
    if (status == 0)
        o->prob = bayes_combine(&o->s->params, counts, n, totals.spam,
                                totals.ham, NULL);
    o->done = 1;
}

int bayes_classify_message(bayes_store *st, const bayes_settings *s,
                           const char *msg, size_t len, double *prob,
                           bayes_totals *totals)
{
    bayes_features f;
    bayes_features_init(&f, bayes_osb_window(s));
    int rc = bayes_features_message(&f, msg, len);
    if (rc == 0) {
        classify_out o = {.s = s, .status = -EIO, .prob = 0.5};
        rc = bayes_lookup(st, s, f.ids, f.n, classify_done, &o);
        if (rc == 0)
            rc = wait_for(&o.done);
        if (rc == 0) {
            rc = o.status;
            *prob = o.prob;
            *totals = o.totals;
        }
    }
    bayes_features_free(&f);
    return rc;
}

/* Learning over the control socket of a server on the host's store: the
 * answer cannot wait for the store, so the learns go on in the
 * background and the log tells the outcome. */
typedef struct bg_job {
    size_t pending, learned, moved, already, not_learned, failed;
    int issued_all;
    bayes_class cls;
    int unlearn;
} bg_job;

static void bg_report(bg_job *j)
{
    const char *cls = j->cls == BAYES_SPAM ? "spam" : "ham";
    bayes_api->log(bayes_ctx, UPESI_LOG_NOTICE, "%s as %s done: %zu %s, %zu "
                   "moved, %zu skipped, %zu failed",
                   j->unlearn ? "unlearning" : "learning", cls,
                   j->learned + j->moved, j->unlearn ? "unlearned" : "learned",
                   j->moved, j->already + j->not_learned, j->failed);
    free(j);
}

static void bg_done(int status, bayes_learn_result result, void *arg)
{
    bg_job *j = arg;
    j->pending--;
    if (status != 0)
        j->failed++;
    else if (result == BAYES_LEARNED || result == BAYES_UNLEARNED)
        j->learned++;
    else if (result == BAYES_MOVED)
        j->moved++;
    else if (result == BAYES_ALREADY)
        j->already++;
    else
        j->not_learned++;
    if (j->issued_all && j->pending == 0)
        bg_report(j);
}

/* ---------------------------------------------------------------------- */
/* walking files, Maildirs and mboxes                                      */

typedef struct run run;
/* one message; a negative errno stops the walk */
typedef int (*message_fn)(run *r, const char *msg, size_t len,
                          const char *name);

struct run {
    const bayes_settings *s;
    bayes_store *st;
    message_fn fn;
    bayes_class cls;
    int unlearn;
    size_t learned, moved, already, not_learned, unreadable, seen;
    size_t failed, fail_streak;  /* the store did not answer or refused  */
    int progress;                /* stderr is a terminal                 */
    upesi_control *out;          /* control socket: answers go there    */
    bg_job *bg;                  /* control socket, host's store         */
    /* the command line learns in batches (bayes_store_learn_batch) */
    bayes_learn_item *batch;
    char **names;
    size_t nbatch, batch_ids;
};

static void say(run *r, FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(run *r, FILE *f, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (r->out)
        bayes_api->control_write(r->out, "%s", buf);
    else
        fputs(buf, f);
}

static void unreadable(run *r, const char *name, const char *why)
{
    r->unreadable++;
    if (r->progress)
        fputc('\n', stderr);
    say(r, stderr, "bayes: %s: %s\n", name, why);
}

/* One message: its first max_size bytes, as data_post reads it, so that
 * the command line learns and judges a message by the features a server
 * would (and a message without a Message-ID by the same digest). */
static int one_message(run *r, const char *data, size_t len,
                       const char *name)
{
    if (r->s->max_size > 0 && len > (size_t)r->s->max_size)
        len = (size_t)r->s->max_size;
    return r->fn(r, data, len, name);
}

/* An mbox: messages begin at "From " lines at the start of the file or
 * after an empty line; the "From " line itself is not part of them. */
static int walk_mbox(run *r, const char *data, size_t len, const char *name)
{
    size_t i = 0, n = 0;
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t start = nl ? (size_t)(nl - data) + 1 : len, end = start;
        for (;;) {               /* find the next separator */
            const char *p = end < len ? memmem(data + end, len - end,
                                                "\nFrom ", 6) : NULL;
            if (p == NULL) {
                end = len;
                break;
            }
            size_t at = (size_t)(p - data);
            if (at > 0 && (data[at - 1] == '\n' ||
                           (data[at - 1] == '\r' && at > 1 &&
                            data[at - 2] == '\n'))) {
                end = at + 1;
                break;
            }
            end = at + 1;
        }
        char label[4200];
        n++;
        snprintf(label, sizeof label, "%s", name);
        if (end < len || n > 1)
            snprintf(label, sizeof label, "%s:%zu", name, n);
        if (end > start) {
            int rc = one_message(r, data + start, end - start, label);
            if (rc < 0)
                return rc;
        }
        i = end;
    }
    return 0;
}

static int walk_file(run *r, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        unreadable(r, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 0;
    }
    if (sb.st_size == 0) {
        close(fd);
        unreadable(r, path, "empty");
        return 0;
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        unreadable(r, path, strerror(errno));
        return 0;
    }
    const char *data = map;
    size_t len = (size_t)sb.st_size;
    int rc = len > 5 && memcmp(data, "From ", 5) == 0
                 ? walk_mbox(r, data, len, path)
                 : one_message(r, data, len, path);
    munmap(map, len);
    return rc;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk_path(run *r, const char *path, int depth);

/* A folder's entries in name order (so runs are repeatable). */
static int walk_dir(run *r, const char *path, int depth)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        unreadable(r, path, strerror(errno));
        return 0;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        /* a Maildir's tmp/ holds messages being written */
        if (strcmp(e->d_name, "tmp") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (nn == NULL) {
                rc = -ENOMEM;
                break;
            }
            names = nn;
        }
        if (asprintf(&names[n], "%s/%s", path, e->d_name) < 0) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n > 1)        /* names is NULL for an empty folder */
        qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = walk_path(r, names[i], depth + 1);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int walk_path(run *r, const char *path, int depth)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        unreadable(r, path, strerror(errno));
        return 0;
    }
    if (S_ISDIR(sb.st_mode)) {
        if (depth >= MAX_PATH_DEPTH) {
            unreadable(r, path, "folders nested too deep");
            return 0;
        }
        return walk_dir(r, path, depth);
    }
    if (!S_ISREG(sb.st_mode)) {
        unreadable(r, path, "not a file");
        return 0;
    }
    return walk_file(r, path);
}

/* ---------------------------------------------------------------------- */
/* the commands                                                            */

static void progress(run *r)
{
    if (r->progress && r->seen % 50 == 0)
        fprintf(stderr, "\r%zu messages: %zu learned, %zu skipped, "
                "%zu unreadable", r->seen, r->learned + r->moved,
                r->already + r->not_learned, r->unreadable);
}

/* A message the store did not take (a timeout, Redis down, a full
 * store): counted and named; the run stops when memory or room is out,
 * or after MAX_FAIL_STREAK failures in a row (the store is down, not
 * slow). */
#define MAX_FAIL_STREAK 10
static int store_failed(run *r, const char *name, int rc)
{
    r->failed++;
    r->fail_streak++;
    if (r->progress)
        fputc('\n', stderr);
    say(r, stderr, "bayes: %s: the store: %s\n", name, strerror(-rc));
    if (rc == -ENOMEM || rc == -ENOSPC)
        return rc;
    if (r->fail_streak >= MAX_FAIL_STREAK) {
        say(r, stderr, "bayes: the store failed %d times in a row: "
            "stopping\n", MAX_FAIL_STREAK);
        return rc;
    }
    return 0;
}

/* Over the control socket the worker that answers reads and tokenizes
 * the files itself (about 1 ms a message), and serves no session
 * meanwhile: a command takes at most this many messages (about 0.1 s of
 * that worker); a folder is for the command line, a process of its own. */
#define CONTROL_MAX_MESSAGES 100

static int learn_background(run *r, const char *msg, size_t len,
                            const char *name)
{
    if (r->seen + r->unreadable >= CONTROL_MAX_MESSAGES)
        return -E2BIG;           /* stops the walk; said by the caller */
    bayes_features f;
    bayes_features_init(&f, bayes_osb_window(r->s));
    int rc = bayes_features_message(&f, msg, len);
    if (rc == 0) {
        unsigned char digest[BAYES_DIGEST_LEN];
        bayes_message_digest(msg, len, digest);
        r->bg->pending++;
        rc = bayes_store_learn(r->st, f.ids, f.n, digest, r->cls, r->unlearn,
                               bg_done, r->bg);
        if (rc != 0)
            r->bg->pending--;
    }
    bayes_features_free(&f);
    if (rc != 0) {
        unreadable(r, name, strerror(-rc));
        return 0;
    }
    r->seen++;
    return 0;
}

/* Messages learned together: one store_mget of their records, one
 * increment per distinct feature of the whole batch, their records.  On
 * an LMDB of a trained filter a message's ~1,000 increments each copy a
 * different page; a batch shares the pages (and Redis the round trips). */
#define LEARN_BATCH 256          /* messages                              */
#define LEARN_BATCH_IDS 300000   /* features, summed over the messages    */

static void batch_clear(run *r)
{
    for (size_t i = 0; i < r->nbatch; i++) {
        free((void *)r->batch[i].ids);
        free(r->names[i]);
    }
    r->nbatch = r->batch_ids = 0;
}

typedef struct batch_out {
    volatile int done;
    int status;
} batch_out;

static void batch_done(int status, void *arg)
{
    batch_out *o = arg;
    o->status = status;
    o->done = 1;
}

/* Learn what is batched; a negative errno stops the walk. */
static int learn_flush(run *r)
{
    if (r->nbatch == 0)
        return 0;
    batch_out o = {0, -EIO};
    int rc = bayes_store_learn_batch(r->st, r->batch, r->nbatch, r->cls,
                                     r->unlearn, batch_done, &o);
    if (rc == 0)
        rc = wait_for(&o.done);
    if (rc == 0)
        rc = o.status;
    if (rc < 0) {
        /* the batch failed as one: one failure in the streak */
        char label[4200];
        if (r->nbatch > 1)
            snprintf(label, sizeof label, "%zu messages (%s ... %s)",
                     r->nbatch, r->names[0], r->names[r->nbatch - 1]);
        else
            snprintf(label, sizeof label, "%s", r->names[0]);
        size_t n = r->nbatch;
        batch_clear(r);
        r->failed += n - 1;
        return store_failed(r, label, rc);
    }
    r->fail_streak = 0;
    for (size_t i = 0; i < r->nbatch; i++) {
        r->seen++;
        switch (r->batch[i].result) {
        case BAYES_LEARNED:
        case BAYES_UNLEARNED:
            r->learned++;
            break;
        case BAYES_MOVED:
            r->moved++;
            break;
        case BAYES_ALREADY:
            r->already++;
            break;
        case BAYES_NOT_LEARNED:
            r->not_learned++;
            break;
        }
        progress(r);
    }
    batch_clear(r);
    return 0;
}

static int learn_one(run *r, const char *msg, size_t len, const char *name)
{
    if (r->bg)
        return learn_background(r, msg, len, name);
    if (r->batch == NULL &&
        ((r->batch = calloc(LEARN_BATCH, sizeof *r->batch)) == NULL ||
         (r->names = calloc(LEARN_BATCH, sizeof *r->names)) == NULL))
        return store_failed(r, name, -ENOMEM);
    bayes_features f;
    bayes_features_init(&f, bayes_osb_window(r->s));
    int rc = bayes_features_message(&f, msg, len);
    char *label = rc == 0 ? strdup(name) : NULL;
    if (rc == 0 && label == NULL)
        rc = -ENOMEM;
    if (rc < 0) {
        bayes_features_free(&f);
        return store_failed(r, name, rc);
    }
    bayes_learn_item *it = &r->batch[r->nbatch];
    *it = (bayes_learn_item){.ids = f.ids, .n = f.n};
    bayes_message_digest(msg, len, it->digest);
    r->names[r->nbatch++] = label;
    r->batch_ids += f.n;
    if (r->nbatch == LEARN_BATCH || r->batch_ids >= LEARN_BATCH_IDS)
        return learn_flush(r);
    return 0;
}

static int classify_one(run *r, const char *msg, size_t len,
                        const char *name)
{
    double prob = 0.5;
    bayes_totals t;
    int rc = bayes_classify_message(r->st, r->s, msg, len, &prob, &t);
    if (rc < 0)
        return store_failed(r, name, rc);
    r->fail_streak = 0;
    if (r->seen++ == 0 && ((long long)t.spam < r->s->min_learns ||
                           (long long)t.ham < r->s->min_learns))
        fprintf(stderr, "bayes: only %llu spam and %llu ham learned, "
                "min_learns is %d: the server gives no verdict yet\n",
                (unsigned long long)t.spam, (unsigned long long)t.ham,
                r->s->min_learns);
    printf("%.4f %s %s\n", prob,
           bayes_class_name(bayes_class_of(r->s, prob)), name);
    return 0;
}

static int parse_class(const char *word, bayes_class *cls)
{
    if (strcmp(word, "spam") == 0)
        return *cls = BAYES_SPAM, 0;
    if (strcmp(word, "ham") == 0)
        return *cls = BAYES_HAM, 0;
    return -1;
}

static void learn_summary(run *r)
{
    if (r->progress)
        fputc('\n', stderr);
    const char *cls = r->cls == BAYES_SPAM ? "spam" : "ham";
    if (r->unlearn)
        say(r, stdout, "unlearned %zu as %s, %zu skipped as not learned as "
            "%s, %zu unreadable\n", r->learned, cls, r->not_learned, cls,
            r->unreadable);
    else
        say(r, stdout, "learned %zu as %s (%zu of them moved from %s), "
            "%zu skipped as already learned, %zu unreadable\n",
            r->learned + r->moved, cls, r->moved,
            r->cls == BAYES_SPAM ? "ham" : "spam", r->already,
            r->unreadable);
    if (r->failed)
        say(r, stdout, "%zu not learned: the store failed (see above)\n",
            r->failed);
}

typedef struct stats_out {
    volatile int done;
    int status;
    bayes_totals t;
} stats_out;

static void stats_done(int status, bayes_totals t, void *arg)
{
    stats_out *o = arg;
    o->status = status;
    o->t = t;
    o->done = 1;
}

static int stats(run *r)
{
    if (r->out) {
        say(r, stdout, "bayes stats: ask the command line, `upesi -c DIR "
            "bayes stats`\n");
        return 2;
    }
    stats_out o = {.status = -EIO};
    int rc = bayes_store_stats(r->st, stats_done, &o);
    if (rc == 0)
        rc = wait_for(&o.done);
    if (rc == 0)
        rc = o.status;
    if (rc != 0) {
        say(r, stderr, "bayes: the store: %s\n", strerror(-rc));
        return 1;
    }
    bayes_totals t = o.t;
    char features[32];
    if (t.tokens == BAYES_TOKENS_UNKNOWN)
        snprintf(features, sizeof features, "unknown (redis)");
    else
        snprintf(features, sizeof features, "%llu",
                 (unsigned long long)t.tokens);
    say(r, stdout, "spam learned: %llu\nham learned: %llu\nfeatures: %s\n"
        "min_learns: %d (%s)\nstore: %s\n",
        (unsigned long long)t.spam, (unsigned long long)t.ham, features,
        r->s->min_learns,
        (long long)t.spam >= r->s->min_learns &&
                (long long)t.ham >= r->s->min_learns
            ? "verdicts given" : "no verdict yet",
        "the host's store (smtp.ini store)");
    if (t.old_spam || t.old_ham)
        say(r, stdout, "earlier format: %llu spam, %llu ham learned by an "
            "older bayes, unused: learn them again (docs/plugins/bayes.md, "
            "\"Upgrading\"); features counts both formats\n",
            (unsigned long long)t.old_spam, (unsigned long long)t.old_ham);
    return 0;
}

static const char usage[] =
    "usage: upesi [-c DIR] bayes learn spam|ham FILE|DIR...\n"
    "       upesi [-c DIR] bayes unlearn spam|ham FILE|DIR...\n"
    "       upesi [-c DIR] bayes classify FILE|DIR...\n"
    "       upesi [-c DIR] bayes stats\n";

/* The work of both entries; argv[0] is the subcommand. */
static int run_command(run *r, int argc, char **argv)
{
    if (argc < 1) {
        say(r, stderr, "%s", usage);
        return 2;
    }
    const char *cmd = argv[0];
    int first = 1;
    if (strcmp(cmd, "learn") == 0 || strcmp(cmd, "unlearn") == 0) {
        if (argc < 3 || parse_class(argv[1], &r->cls) != 0) {
            say(r, stderr, "%s", usage);
            return 2;
        }
        r->unlearn = cmd[0] == 'u';
        r->fn = learn_one;
        first = 2;
    } else if (strcmp(cmd, "classify") == 0 && !r->out) {
        if (argc < 2) {
            say(r, stderr, "%s", usage);
            return 2;
        }
        r->fn = classify_one;
    } else if (strcmp(cmd, "stats") == 0 && argc == 1) {
        return stats(r);
    } else {
        say(r, stderr, "%s", usage);
        return 2;
    }
    if (r->fn == learn_one && r->out) {
        if ((r->bg = calloc(1, sizeof *r->bg)) == NULL) {
            say(r, stderr, "bayes: out of memory\n");
            return 1;
        }
        r->bg->cls = r->cls;
        r->bg->unlearn = r->unlearn;
        int rc = 0;
        for (int i = first; i < argc && rc == 0; i++)
            rc = walk_path(r, argv[i], 0);
        if (rc == -E2BIG)
            say(r, stdout, "bayes: stopped after %d messages: over the "
                "control socket a worker reads them and serves no session "
                "meanwhile; teach more with the command line (upesi -c DIR "
                "bayes %s ...)\n", CONTROL_MAX_MESSAGES,
                r->unlearn ? "unlearn" : "learn");
        say(r, stdout, "%s %zu messages as %s in the background (%zu "
            "unreadable); the log says when it is done\n",
            r->unlearn ? "unlearning" : "learning", r->seen,
            r->cls == BAYES_SPAM ? "spam" : "ham", r->unreadable);
        r->bg->issued_all = 1;
        if (r->bg->pending == 0)
            bg_report(r->bg);
        return r->unreadable || rc != 0 ? 1 : 0;
    }
    int rc = 0;
    for (int i = first; i < argc && rc == 0; i++)
        rc = walk_path(r, argv[i], 0);
    if (r->fn == learn_one) {
        if (rc == 0)
            rc = learn_flush(r);
        batch_clear(r);
        free(r->batch);
        free(r->names);
        learn_summary(r);
    }
    return rc < 0 || r->unreadable || r->failed ? 1 : 0;
}

int bayes_cli(void *config, int argc, char **argv, void *arg)
{
    (void)arg;
    const bayes_settings *s = config;
    char err[512];
    if (s == NULL) {
        fprintf(stderr, "bayes: no settings\n");
        return 1;
    }
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    bayes_store *st = bayes_store_for(s, err, sizeof err);
    if (st == NULL) {
        fprintf(stderr, "bayes: %s\n", err);
        return 1;
    }
    run r = {.s = s, .st = st, .progress = isatty(STDERR_FILENO)};
    int rc = run_command(&r, argc - 1, argv + 1);
    fflush(stdout);
    return rc;
}

/* "bayes learn spam /path ...": paths separated by white space. */
void bayes_control(const char *args, upesi_control *out, void *arg)
{
    (void)arg;
    const bayes_settings *s = bayes_current_settings;
    char err[512];
    if (s == NULL) {
        bayes_api->control_write(out, "bayes: no configuration\n");
        return;
    }
    char *copy = strdup(args ? args : "");
    char *argv[64];
    int argc = 0;
    char *save = NULL;
    char *t = copy ? strtok_r(copy, " \t\r\n", &save) : NULL;
    for (; t && argc < 64; t = strtok_r(NULL, " \t\r\n", &save))
        argv[argc++] = t;
    bayes_store *st = bayes_store_for(s, err, sizeof err);
    if (copy == NULL) {
        bayes_api->control_write(out, "bayes: out of memory\n");
    } else if (t != NULL) {      /* a word past the 64th: nothing done */
        bayes_api->control_write(out, "bayes: at most 62 paths a command "
                                 "over the control socket (a folder counts "
                                 "as one)\n");
    } else if (st == NULL) {
        bayes_api->control_write(out, "bayes: %s\n", err);
    } else {
        run r = {.s = s, .st = st, .out = out};
        run_command(&r, argc, argv);
    }
    free(copy);
}
