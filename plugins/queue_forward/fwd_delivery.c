/*
 * fwd_delivery.c - one claimed message (active/<pid>/<id>, fwd_queue.c):
 * deliver it, then decide what becomes of it.
 *
 * A delivery groups the recipients by route, runs one job per downstream
 * (the client, fwd_smtp.c), then: delivered recipients are done; refused
 * ones (5xx, or 4xx past max_queue_time) get a DSN, or for the null
 * sender what null_sender_dsn says (fwd_report.c); the rest stay queued.
 * When the set of recipients changed, the file is rewritten (durably)
 * with those left.  The retry state (fwd_retry.c) counts the attempt and
 * sets the next one: retry_min doubling up to retry_max.
 *
 * Fails: a file that cannot be read or parsed is moved to dead/ with a
 * log line.  An error while reporting keeps the message queued as it
 * was, and a rewrite that fails puts the old file back whole: a
 * duplicate later, never a loss.  No memory to start a delivery leaves
 * the file in active/ until it is recovered (fwd_queue.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fwd_queue.h"

#define FWD_ENV_MAX (4 << 20)

int fwd_running;                    /* deliveries in flight here */

/* ---------------------------------------------------------------------- */
/* one delivery                                                           */

typedef struct fwd_delivery {
    fwd_config *cfg;
    char *spool;
    char id[64];
    char path[4300];
    int fd;
    off_t msg_off;
    fwd_env env;
    fwd_state state;
    fwd_rcpt *rcpts;
    fwd_rcpt **ptrs;
    size_t n;
    fwd_job *jobs;
    size_t n_jobs, jobs_left;
    fwd_rcpt **temp;                /* what is left, for the rewrite */
    size_t n_temp;
    int remaining_changed;
    int reports_left, report_error;
} fwd_delivery;

static ssize_t delivery_read(void *arg, off_t off, void *buf, size_t len)
{
    fwd_delivery *d = arg;
    for (;;) {
        ssize_t n = pread(d->fd, buf, len, d->msg_off + off);
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : n;
    }
}

static void delivery_free(fwd_delivery *d)
{
    if (d->fd >= 0)
        close(d->fd);
    fwd_env_free(&d->env);
    free(d->rcpts);
    free(d->ptrs);
    free(d->temp);
    free(d->jobs);
    free(d->spool);
    fwd_config_unref(d->cfg);
    free(d);
    fwd_running--;
    fwd_scan_schedule(0);       /* a slot is free: more may be due */
}

/* Move the claimed file somewhere (queue/ or dead/), or remove it. */
static void delivery_release(fwd_delivery *d, const char *where)
{
    if (where == NULL) {
        unlink(d->path);
        fwd_state_remove(d->spool, d->id);
        return;
    }
    char to[4300];
    snprintf(to, sizeof to, "%s/%s/%s", d->spool, where, d->id);
    if (rename(d->path, to) < 0)
        fwd_api->log(fwd_ctx, UPESI_LOG_ERR, "%s: rename to "
                     "%s: %s", d->id, to, strerror(errno));
}

static void delivery_rewritten(void *arg, int error)
{
    fwd_delivery *d = arg;
    if (error) {
        /* the old file goes back whole: delivered recipients will get it
         * again, which beats losing the others */
        fwd_api->log(fwd_ctx, UPESI_LOG_ERR, "%s: rewriting the "
                     "queue file failed (%s); requeued with all recipients",
                     d->id, strerror(error));
        delivery_release(d, "queue");
    } else {
        unlink(d->path);
    }
    delivery_free(d);
}

/* The refusals are reported (or could not be): keep what is left. */
static void delivery_reported(void *arg, int error)
{
    fwd_delivery *d = arg;
    if (error) {
        fwd_api->log(fwd_ctx, UPESI_LOG_ERR, "%s: cannot write "
                     "the delivery report (%s); the message stays queued",
                     d->id, strerror(error));
        d->state.next_ms = fwd_now_ms() + 1000LL * d->cfg->retry_min_s;
        fwd_state_write(d->spool, d->id, &d->state);
        delivery_release(d, "queue");
        delivery_free(d);
        return;
    }
    if (d->n_temp == 0) {
        delivery_release(d, NULL);
        delivery_free(d);
        return;
    }
    fwd_state_write(d->spool, d->id, &d->state);
    if (!d->remaining_changed) {
        delivery_release(d, "queue");
        delivery_free(d);
        return;
    }
    /* rewrite with the recipients left: tmp/<id> -> queue/<id>, then the
     * claimed copy goes */
    size_t len;
    char *text = fwd_env_format_rcpts(&d->env, d->temp, d->n_temp, &len);
    struct stat st;
    int rc = text == NULL ? -ENOMEM
           : fstat(d->fd, &st) < 0 ? -errno : 0;
    if (rc == 0) {
        fwd_src src = { delivery_read, d, st.st_size - d->msg_off };
        rc = fwd_store_write("queue", d->id, text, len, NULL, 0, &src,
                             d->cfg->fsync, delivery_rewritten, d);
    }
    free(text);
    if (rc < 0)
        delivery_rewritten(d, -rc);
}

/* One of the reports is durable (or failed); the last one decides. */
static void delivery_one_reported(void *arg, int error)
{
    fwd_delivery *d = arg;
    if (error && !d->report_error)
        d->report_error = error;
    if (--d->reports_left > 0)
        return;
    delivery_reported(d, d->report_error);
}

static void delivery_finish(fwd_delivery *d)
{
    long long now = fwd_now_ms();
    long long arrival = fwd_parse_arrival(d->env.arrival);
    int expired = arrival > 0 &&
                  now / 1000 - arrival > (long long)d->cfg->max_queue_time_s;
    fwd_rcpt **failed = calloc(d->n + 1, sizeof *failed);
    d->temp = calloc(d->n + 1, sizeof *d->temp);
    if (failed == NULL || d->temp == NULL) {
        free(failed);
        delivery_reported(d, ENOMEM);
        return;
    }
    size_t n_failed = 0, n_ok = 0;
    const char *last_error = NULL;
    for (size_t i = 0; i < d->n; i++) {
        fwd_rcpt *r = &d->rcpts[i];
        const char *relay = fwd_route_for(d->cfg, r->addr)
                                ? fwd_route_for(d->cfg, r->addr)->name : "none";
        const char *what = r->state == FWD_RCPT_OK ? "sent"
                         : r->state == FWD_RCPT_PERM ? "bounced"
                         : expired ? "expired" : "deferred";
        fwd_api->log(fwd_ctx, r->state == FWD_RCPT_OK ? UPESI_LOG_INFO
                                                   : UPESI_LOG_NOTICE,
                     "%s: to=<%s> relay=%s status=%s (%s)",
                     d->id, r->addr, relay, what, r->text);
        if (r->state == FWD_RCPT_OK) {
            n_ok++;
            fwd_api->stat_add(fwd_ctx, "SMTP.Forward.Delivered", 1);
        } else if (r->state == FWD_RCPT_PERM || expired) {
            failed[n_failed++] = r;
            fwd_api->stat_add(fwd_ctx, "SMTP.Forward.Bounced", 1);
        } else {
            d->temp[d->n_temp++] = r;
            last_error = r->text;
            fwd_api->stat_add(fwd_ctx, "SMTP.Forward.Deferred", 1);
        }
    }
    d->remaining_changed = d->n_temp != d->n;
    d->state.attempts++;
    d->state.last_ms = now;
    unsigned long long delay = d->cfg->retry_min_s;
    for (long i = 1; i < d->state.attempts && delay < d->cfg->retry_max_s;
         i++)
        delay *= 2;
    if (delay > d->cfg->retry_max_s)
        delay = d->cfg->retry_max_s;
    d->state.next_ms = now + (long long)delay * 1000;
    if (last_error)
        snprintf(d->state.error, sizeof d->state.error, "%s", last_error);
    /* the reports owed: failures, successes relayed to a downstream
     * without DSN, and once per message a delay (NOTIFY=DELAY) after
     * delay_warning; all durable before the file moves on */
    fwd_rcpt **ok = calloc(d->n + 1, sizeof *ok);
    if (ok == NULL) {
        free(failed);
        delivery_reported(d, ENOMEM);
        return;
    }
    size_t n_ok_list = 0;
    for (size_t i = 0; i < d->n; i++)
        if (d->rcpts[i].state == FWD_RCPT_OK)
            ok[n_ok_list++] = &d->rcpts[i];
    int delay_due = d->n_temp && !d->state.delay_notified && arrival > 0 &&
                    now / 1000 - arrival >= (long long)d->cfg->delay_warning_s;
    fwd_src src = { delivery_read, d, 0 };
    struct stat st;
    if (fstat(d->fd, &st) == 0)
        src.size = st.st_size - d->msg_off;
    struct { fwd_rcpt **list; size_t n; int kind; } reports[] = {
        { failed, n_failed, FWD_DSN_FAILED },
        { ok, n_ok_list, FWD_DSN_RELAYED },
        { d->temp, delay_due ? d->n_temp : 0, FWD_DSN_DELAYED },
    };
    d->reports_left = 1;
    for (size_t i = 0; i < sizeof reports / sizeof *reports; i++) {
        if (reports[i].n == 0)
            continue;
        int pending = 0;
        int rc = fwd_report_failures(d->cfg, &d->env, reports[i].list,
                                     reports[i].n, reports[i].kind, &src,
                                     delivery_one_reported, d, &pending);
        if (rc < 0 && !d->report_error)
            d->report_error = -rc;
        if (pending)
            d->reports_left++;
        if (rc > 0 && reports[i].kind == FWD_DSN_DELAYED)
            d->state.delay_notified = 1;
    }
    if (delay_due)              /* asked for or not: this was the moment */
        d->state.delay_notified = 1;
    free(failed);
    free(ok);
    delivery_one_reported(d, 0);
}

static void delivery_job_done(fwd_job *job, void *arg)
{
    fwd_delivery *d = arg;
    (void)job;
    if (--d->jobs_left == 0)
        delivery_finish(d);
}

/* Read the envelope of the claimed file.  0 or -1. */
static int delivery_load(fwd_delivery *d)
{
    d->fd = open(d->path, O_RDONLY | O_CLOEXEC);
    if (d->fd < 0)
        return -1;
    size_t cap = 16384, len = 0;
    char *buf = NULL;
    for (;;) {
        char *nb = realloc(buf, cap);
        if (nb == NULL)
            break;
        buf = nb;
        ssize_t n = pread(d->fd, buf + len, cap - len, (off_t)len);
        if (n <= 0)
            break;
        len += (size_t)n;
        char *end = memmem(buf, len, "\n\n", 2);
        if (end) {
            d->msg_off = (off_t)(end - buf) + 2;
            int rc = fwd_env_parse(buf, (size_t)(end - buf) + 1, &d->env);
            free(buf);
            return rc;
        }
        if (len < cap)
            break;
        if (cap >= FWD_ENV_MAX)
            break;
        cap *= 2;
    }
    free(buf);
    return -1;
}

void fwd_deliver_start(const char *spool, const char *id)
{
    fwd_delivery *d = calloc(1, sizeof *d);
    if (d == NULL)
        return;                     /* stays in active/: recovered later */
    fwd_running++;
    d->fd = -1;
    d->cfg = fwd_config_ref(fwd_config_latest());
    d->spool = strdup(spool);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->path, sizeof d->path, "%s/active/%d/%s", spool,
             (int)getpid(), id);
    if (d->spool == NULL || d->cfg == NULL) {
        delivery_free(d);
        return;
    }
    if (delivery_load(d) < 0) {
        fwd_api->log(fwd_ctx, UPESI_LOG_ERR, "%s: not a "
                     "readable spool file; moved to dead/", id);
        delivery_release(d, "dead");
        delivery_free(d);
        return;
    }
    fwd_state_read(spool, id, &d->state);
    d->n = d->env.n_rcpts;
    d->rcpts = calloc(d->n + 1, sizeof *d->rcpts);
    d->ptrs = calloc(d->n + 1, sizeof *d->ptrs);
    d->jobs = calloc(d->n + 1, sizeof *d->jobs);
    if (d->rcpts == NULL || d->ptrs == NULL || d->jobs == NULL) {
        delivery_release(d, "queue");
        delivery_free(d);
        return;
    }
    struct stat st;
    off_t size = fstat(d->fd, &st) == 0 ? st.st_size - d->msg_off : 0;
    const char *sender = strcmp(d->env.sender, "<>") ? d->env.sender : "";

    /* group by downstream: recipients of one target are contiguous in
     * ptrs, one job each */
    const fwd_target **targets = calloc(d->n + 1, sizeof *targets);
    if (targets == NULL) {
        delivery_release(d, "queue");
        delivery_free(d);
        return;
    }
    size_t placed = 0;
    for (size_t i = 0; i < d->n; i++) {
        d->rcpts[i].addr = d->env.rcpts[i];
        d->rcpts[i].params = d->env.rcpt_params ? d->env.rcpt_params[i]
                                                : NULL;
        targets[i] = fwd_route_for(d->cfg, d->rcpts[i].addr);
        if (targets[i] == NULL) {
            d->rcpts[i].state = FWD_RCPT_PERM;
            d->rcpts[i].code = 550;
            snprintf(d->rcpts[i].enhanced, sizeof d->rcpts[i].enhanced,
                     "5.4.4");
            snprintf(d->rcpts[i].text, sizeof d->rcpts[i].text,
                     "550 5.4.4 no route for this domain");
        }
    }
    for (size_t i = 0; i < d->n; i++) {
        if (targets[i] == NULL)
            continue;
        size_t j;
        for (j = 0; j < i; j++)
            if (targets[j] && fwd_same_job(targets[j], d->rcpts[j].addr, targets[i],
                                        d->rcpts[i].addr))
                break;
        if (j < i)
            continue;               /* its job exists */
        fwd_job *job = &d->jobs[d->n_jobs++];
        job->cfg = d->cfg;
        job->target = targets[i];
        job->sender = sender;
        job->mail_params = d->env.mail_params;
        job->binarymime = fwd_binarymime(job->mail_params);
        job->rcpts = d->ptrs + placed;
        for (size_t k = i; k < d->n; k++)
            if (targets[k] && fwd_same_job(targets[k], d->rcpts[k].addr, targets[i],
                                        d->rcpts[i].addr))
                d->ptrs[placed++] = &d->rcpts[k];
        job->n_rcpts = (size_t)(d->ptrs + placed - job->rcpts);
        job->src = (fwd_src){ delivery_read, d, size };
        snprintf(job->id, sizeof job->id, "%s", d->id);
        job->done = delivery_job_done;
        job->done_arg = d;
    }
    free(targets);
    d->jobs_left = d->n_jobs;
    if (d->n_jobs == 0) {
        delivery_finish(d);
        return;
    }
    size_t n_jobs = d->n_jobs;
    for (size_t i = 0; i < n_jobs; i++)
        fwd_job_start(&d->jobs[i]);
}
