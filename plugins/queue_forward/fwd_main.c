/*
 * fwd_main.c - queue_forward: the queue hook that hands each accepted
 * message to a downstream SMTP or LMTP server (DESIGN.md 7: "queue_forward
 * answers 250 only after the downstream server said 250").
 *
 * mode = direct: the hook returns PENDING, forwards the transaction
 *   (fwd_smtp.c) and answers with what the downstream said:
 *     every recipient delivered            250
 *     none delivered, any 4xx or no answer 451 4.4.1 (the client retries)
 *     none delivered, all 5xx              the downstream's 5xx
 *     some delivered                       250, after a DSN for the 5xx
 *                                          ones and the 4xx ones (LMTP
 *                                          after DATA) are durably in the
 *                                          spool queue
 *   With SMTP a 4xx to any RCPT means no DATA at all (RSET): nothing is
 *   half-sent, the client keeps the whole message.
 * mode = spool: the message is written to <spool_dir>/queue/ in
 *   queue_spool's format (fsync, rename, fsync of the directory, group
 *   commit) before the 250, and delivered in the background
 *   (fwd_queue.c).
 *
 * Fails: see the table above; a client that goes away (or plugin_timeout)
 * while a downstream has the message but not its end of data closes that
 * connection, so the downstream throws it away; after the end of data the
 * result is only logged (the client will send again: a duplicate).
 */
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"

const upesi_api *fwd_api;
upesi_ctx *fwd_ctx;

void fwd_log(upesi_call *call, upesi_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (call)
        fwd_api->vlog_call(call, level, fmt, ap);
    else
        fwd_api->vlog(fwd_ctx, level, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------- */
/* the envelope of the session's transaction                              */

/* The transaction's envelope, as the host writes it for every spool file
 * (api->spool_envelope); parsed into fields where the plugin needs them
 * (the recipients of a DSN, those left to retry).  0 or -1. */
static int env_from_call(upesi_call *call, fwd_env *env)
{
    char *text;
    size_t len;
    const char *bad_key;
    if (fwd_api->spool_envelope(call, &text, &len, &bad_key) < 0)
        return -1;
    int rc = fwd_env_parse(text, len, env);
    fwd_api->free(text);
    return rc;
}

static int id_usable(const char *id)
{
    if (id == NULL || id[0] == '\0' || id[0] == '.' || strlen(id) >= 64)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
              *p == '.'))
            return 0;
    return 1;
}

static void reply_store_error(upesi_call *call, int err)
{
    if (err == ENOSPC || err == EDQUOT)
        fwd_api->reply(call, 452, "4.3.1", "Insufficient system storage");
    else
        fwd_api->reply(call, 451, "4.3.0", "Error: queue file write error");
}

/* ---------------------------------------------------------------------- */
/* spool mode                                                             */

typedef struct fwd_spooled {
    upesi_call *call;               /* NULL once the host gave up */
    char id[64];
} fwd_spooled;

static void spooled_cancel(upesi_call *call, void *arg)
{
    (void)call;
    fwd_spooled *s = arg;
    s->call = NULL;
}

static void spooled_committed(void *arg, int error)
{
    fwd_spooled *s = arg;
    if (error == 0) {
        fwd_api->stat_add(fwd_ctx, "SMTP.Forward.Queued", 1);
        if (s->call) {
            fwd_api->reply(s->call, 250, "2.0.0", "Ok: queued as %s", s->id);
            fwd_api->resume(s->call, UPESI_OK);
        } else {
            fwd_api->log(fwd_ctx, UPESI_LOG_WARNING, "%s "
                         "committed after its session gave up on it; the "
                         "client may send it again", s->id);
        }
        fwd_queue_kick(s->id);
    } else {
        fwd_log(s->call, UPESI_LOG_ERR, "%s: commit failed: %s", s->id,
                strerror(error));
        if (s->call) {
            reply_store_error(s->call, error);
            fwd_api->resume(s->call, UPESI_DENYSOFT);
        }
    }
    free(s);
}

static ssize_t call_read(void *arg, off_t off, void *buf, size_t len);

static upesi_verdict spool_mode(upesi_call *call, fwd_config *cfg)
{
    const char *id = fwd_api->queue_id(call);
    if (!id_usable(id)) {
        fwd_api->log_call(call, UPESI_LOG_ERR, "unusable queue id '%s'",
                     id ? id : "(none)");
        reply_store_error(call, EINVAL);
        return UPESI_DENYSOFT;
    }
    char *text = NULL;
    size_t len;
    const char *bad_key = NULL;
    int erc = fwd_api->spool_envelope(call, &text, &len, &bad_key);
    fwd_spooled *s = erc == 0 ? calloc(1, sizeof *s) : NULL;
    if (s == NULL) {
        if (bad_key)
            fwd_api->log_call(call, UPESI_LOG_ERR, "%s: refused: CR or LF in "
                         "the %s envelope field", id, bad_key);
        else
            fwd_api->log_call(call, UPESI_LOG_ERR, "%s: out of memory", id);
        fwd_api->free(text);
        reply_store_error(call, EINVAL);
        return UPESI_DENYSOFT;
    }
    s->call = call;
    snprintf(s->id, sizeof s->id, "%s", id);
    fwd_src src = { call_read, call, fwd_api->message_size(call) };
    int rc = fwd_store_write("queue", id, text, len, NULL, 0, &src,
                             cfg->fsync, spooled_committed, s);
    fwd_api->free(text);
    if (rc < 0) {
        fwd_api->log_call(call, UPESI_LOG_ERR, "%s: write: %s", id,
                     strerror(-rc));
        free(s);
        reply_store_error(call, -rc);
        return UPESI_DENYSOFT;
    }
    fwd_api->on_cancel(call, spooled_cancel, s);
    return UPESI_PENDING;
}

static ssize_t call_read(void *arg, off_t off, void *buf, size_t len)
{
    return fwd_api->message_read(arg, off, buf, len);
}

/* ---------------------------------------------------------------------- */
/* direct mode                                                            */

typedef struct fwd_direct {
    upesi_call *call;               /* NULL once the host gave up */
    fwd_config *cfg;
    char id[64];
    fwd_rcpt *rcpts;
    fwd_rcpt **ptrs;
    size_t n;
    fwd_job *jobs;
    size_t n_jobs, jobs_left;
    int *job_live;                  /* job i still running */
    int writes_left, write_error;
    size_t n_ok;
    fwd_env env;
} fwd_direct;

static void direct_free(fwd_direct *d)
{
    fwd_env_free(&d->env);
    free(d->rcpts);
    free(d->ptrs);
    free(d->jobs);
    free(d->job_live);
    fwd_config_unref(d->cfg);
    free(d);
}

static ssize_t direct_read(void *arg, off_t off, void *buf, size_t len)
{
    fwd_direct *d = arg;
    if (d->call == NULL)
        return -ECANCELED;
    return fwd_api->message_read(d->call, off, buf, len);
}

static void direct_answer(fwd_direct *d)
{
    upesi_call *call = d->call;
    if (d->write_error) {
        fwd_api->log_call(call, UPESI_LOG_ERR, "%s: delivered to some "
                     "recipients, but what is owed for the others could not "
                     "be queued (%s); answering 451: the client will send "
                     "again", d->id, strerror(d->write_error));
        fwd_api->reply(call, 451, "4.3.0", "Error: queue file write error");
        fwd_api->resume(call, UPESI_DENYSOFT);
        return;
    }
    if (d->n_jobs == 1 && d->jobs[0].last_reply[0] && d->n_ok == d->n)
        fwd_api->reply(call, 250, "2.0.0", "Ok: queued as %s (%s said: %s)",
                       d->id, d->jobs[0].target->name, d->jobs[0].last_reply);
    else
        fwd_api->reply(call, 250, "2.0.0", "Ok: queued as %s", d->id);
    fwd_api->stat_add(fwd_ctx, "SMTP.Forward.Accepted", 1);
    fwd_api->resume(call, UPESI_OK);
}

static void direct_written(void *arg, int error)
{
    fwd_direct *d = arg;
    if (error && !d->write_error)
        d->write_error = error;
    if (--d->writes_left > 0)
        return;
    if (d->call)
        direct_answer(d);
    else
        fwd_api->log(fwd_ctx, UPESI_LOG_WARNING, "%s: forwarded "
                     "after its session gave up on it; the client may send "
                     "it again", d->id);
    direct_free(d);
}

static void direct_collate(fwd_direct *d)
{
    upesi_call *call = d->call;
    size_t n_temp = 0, n_perm = 0;
    const fwd_rcpt *first_temp = NULL, *first_perm = NULL;
    d->n_ok = 0;
    for (size_t i = 0; i < d->n; i++) {
        fwd_rcpt *r = &d->rcpts[i];
        if (r->state == FWD_RCPT_OK)
            d->n_ok++;
        else if (r->state == FWD_RCPT_PERM) {
            n_perm++;
            first_perm = first_perm ? first_perm : r;
        } else {
            n_temp++;
            first_temp = first_temp ? first_temp : r;
        }
    }
    if (call == NULL) {
        if (d->n_ok)
            fwd_api->log(fwd_ctx, UPESI_LOG_WARNING, "%s: the "
                         "downstream took it after the session gave up; the "
                         "client may send it again", d->id);
        direct_free(d);
        return;
    }
    for (size_t i = 0; i < d->n; i++) {
        fwd_rcpt *r = &d->rcpts[i];
        if (r->state != FWD_RCPT_OK)
            fwd_api->log_call(call, UPESI_LOG_INFO, "%s: to=<%s> %s (%s)", d->id,
                         r->addr, r->state == FWD_RCPT_PERM ? "refused"
                                                            : "deferred",
                         r->text);
    }
    if (d->n_ok == 0) {
        fwd_api->stat_add(fwd_ctx, "SMTP.Forward.Refused", 1);
        if (n_temp) {
            fwd_api->reply(call, 451, "4.4.1", "%s", first_temp->text);
            fwd_api->resume(call, UPESI_DENYSOFT);
        } else {
            fwd_api->reply(call, first_perm->code >= 500 ? first_perm->code
                                                         : 554,
                           first_perm->enhanced[0] ? first_perm->enhanced
                                                   : "5.0.0",
                           "%s", first_perm->text);
            fwd_api->resume(call, UPESI_DENY);
        }
        direct_free(d);
        return;
    }
    int success_owed = 0;
    for (size_t i = 0; i < d->n; i++)
        success_owed |= d->rcpts[i].state == FWD_RCPT_OK &&
                        !d->rcpts[i].dsn_passed &&
                        (fwd_notify_bits(d->rcpts[i].params) &
                         FWD_NOTIFY_SUCCESS);
    if (n_temp == 0 && n_perm == 0 && !success_owed) {
        direct_answer(d);
        direct_free(d);
        return;
    }
    /* some delivered: we own the rest now.  A DSN for the refused (and
     * for the delivered whose sender asked NOTIFY=SUCCESS of a downstream
     * without DSN), the deferred ones into the queue; the 250 once all
     * are durable. */
    fwd_src src = { call_read, call, fwd_api->message_size(call) };
    d->writes_left = 1;             /* ours, dropped at the end */
    static const struct { int state, kind; } owed[] = {
        { FWD_RCPT_PERM, FWD_DSN_FAILED }, { FWD_RCPT_OK, FWD_DSN_RELAYED },
    };
    for (size_t o = 0; o < sizeof owed / sizeof *owed; o++) {
        fwd_rcpt **list = calloc(d->n, sizeof *list);
        size_t k = 0;
        for (size_t i = 0; list && i < d->n; i++)
            if (d->rcpts[i].state == owed[o].state)
                list[k++] = &d->rcpts[i];
        if (list && k == 0) {
            free(list);
            continue;
        }
        int pending = 0;
        int rc = list ? fwd_report_failures(d->cfg, &d->env, list, k,
                                            owed[o].kind, &src,
                                            direct_written, d, &pending)
                      : -ENOMEM;
        free(list);
        if (rc < 0)
            d->write_error = -rc;
        if (pending)
            d->writes_left++;
    }
    if (n_temp) {
        fwd_env rest = d->env;
        fwd_rcpt **left = calloc(n_temp, sizeof *left);
        size_t k = 0;
        for (size_t i = 0; left && i < d->n; i++)
            if (d->rcpts[i].state == FWD_RCPT_TEMP)
                left[k++] = &d->rcpts[i];
        char id[64];
        fwd_make_queue_id(id, sizeof id);
        rest.queue_id = id;
        size_t len;
        char *text = left ? fwd_env_format_rcpts(&rest, left, k, &len)
                          : NULL;
        free(left);
        int rc = text ? fwd_store_write("queue", id, text, len, NULL, 0, &src,
                                        d->cfg->fsync, direct_written, d)
                      : -ENOMEM;
        free(text);
        if (rc < 0)
            d->write_error = -rc;
        else {
            d->writes_left++;
            fwd_api->log_call(call, UPESI_LOG_NOTICE, "%s: %zu deferred "
                         "recipient%s queued as %s", d->id, n_temp,
                         n_temp == 1 ? "" : "s", id);
        }
    }
    direct_written(d, 0);
}

static void direct_job_done(fwd_job *job, void *arg)
{
    fwd_direct *d = arg;
    d->job_live[job - d->jobs] = 0;
    if (--d->jobs_left == 0)
        direct_collate(d);
}

static void direct_cancel(upesi_call *call, void *arg)
{
    (void)call;
    fwd_direct *d = arg;
    d->call = NULL;
    if (d->jobs_left == 0)
        return;                     /* writes in flight finish it */
    for (size_t i = 0; i < d->n_jobs; i++) {
        if (!d->job_live[i] || d->jobs[i].dot_sent)
            continue;
        fwd_job_abort(&d->jobs[i]);     /* no end of data: nothing sent */
        d->job_live[i] = 0;
        d->jobs_left--;
    }
    if (d->jobs_left == 0)
        direct_free(d);
}

static upesi_verdict direct_mode(upesi_call *call, fwd_config *cfg)
{
    fwd_direct *d = calloc(1, sizeof *d);
    size_t n = fwd_api->rcpt_count(call);
    const char *id = fwd_api->queue_id(call);
    if (d == NULL || n == 0) {
        free(d);
        fwd_api->reply(call, 451, "4.3.0", "Error: out of memory");
        return UPESI_DENYSOFT;
    }
    d->call = call;
    d->cfg = fwd_config_ref(cfg);
    snprintf(d->id, sizeof d->id, "%s", id ? id : "?");
    d->n = n;
    d->rcpts = calloc(n, sizeof *d->rcpts);
    d->ptrs = calloc(n, sizeof *d->ptrs);
    d->jobs = calloc(n, sizeof *d->jobs);
    d->job_live = calloc(n, sizeof *d->job_live);
    const fwd_target **targets = calloc(n, sizeof *targets);
    if (!d->rcpts || !d->ptrs || !d->jobs || !d->job_live || !targets) {
        free(targets);
        direct_free(d);
        fwd_api->reply(call, 451, "4.3.0", "Error: out of memory");
        return UPESI_DENYSOFT;
    }
    /* the envelope as the spool would have it: the DSN and SMTPUTF8
     * parameters to pass on, and the fields of any report or requeue */
    if (env_from_call(call, &d->env) < 0) {
        free(targets);
        direct_free(d);
        fwd_api->reply(call, 451, "4.3.0", "Error: out of memory");
        return UPESI_DENYSOFT;
    }
    const char *sender = fwd_api->sender(call);
    off_t size = fwd_api->message_size(call);
    for (size_t i = 0; i < n; i++) {
        /* the host keeps its recipient strings for the transaction, and
         * the transaction outlives the call's PENDING */
        d->rcpts[i].addr = (char *)fwd_api->rcpt(call, i);
        d->rcpts[i].params = d->env.n_rcpts == n && d->env.rcpt_params
                                 ? d->env.rcpt_params[i] : NULL;
        targets[i] = fwd_route_for(cfg, d->rcpts[i].addr);
        if (targets[i] == NULL) {
            d->rcpts[i].state = FWD_RCPT_PERM;
            d->rcpts[i].code = 550;
            snprintf(d->rcpts[i].enhanced, sizeof d->rcpts[i].enhanced,
                     "5.4.4");
            snprintf(d->rcpts[i].text, sizeof d->rcpts[i].text,
                     "550 5.4.4 no route for this domain");
        }
    }
    size_t placed = 0;
    for (size_t i = 0; i < n; i++) {
        if (targets[i] == NULL)
            continue;
        size_t j;
        for (j = 0; j < i; j++)
            if (targets[j] && fwd_same_job(targets[j], d->rcpts[j].addr, targets[i],
                                        d->rcpts[i].addr))
                break;
        if (j < i)
            continue;
        fwd_job *job = &d->jobs[d->n_jobs];
        d->job_live[d->n_jobs++] = 1;
        job->cfg = d->cfg;
        job->target = targets[i];
        job->sender = sender ? sender : "";
        job->mail_params = d->env.mail_params;
        job->rcpts = d->ptrs + placed;
        for (size_t k = i; k < n; k++)
            if (targets[k] && fwd_same_job(targets[k], d->rcpts[k].addr, targets[i],
                                        d->rcpts[i].addr))
                d->ptrs[placed++] = &d->rcpts[k];
        job->n_rcpts = (size_t)(d->ptrs + placed - job->rcpts);
        job->src = (fwd_src){ direct_read, d, size };
        job->call = call;
        job->defer_all_on_temp = 1;
        job->binarymime = fwd_binarymime(job->mail_params);
        snprintf(job->id, sizeof job->id, "%s", d->id);
        job->done = direct_job_done;
        job->done_arg = d;
    }
    free(targets);
    d->jobs_left = d->n_jobs;
    if (d->n_jobs == 0) {       /* no recipient has a route */
        fwd_rcpt *r = &d->rcpts[0];
        fwd_api->reply(call, r->code, r->enhanced, "%s", r->text);
        direct_free(d);
        return UPESI_DENY;
    }
    fwd_api->on_cancel(call, direct_cancel, d);
    for (size_t i = 0; i < d->n_jobs; i++)
        fwd_job_start(&d->jobs[i]);
    return UPESI_PENDING;
}

/* ---------------------------------------------------------------------- */

static upesi_verdict fwd_queue_hook(upesi_call *call)
{
    fwd_config *cfg = fwd_api->config(call);
    if (cfg == NULL)
        return UPESI_DENYSOFT;
    return cfg->mode == FWD_MODE_SPOOL ? spool_mode(call, cfg)
                                       : direct_mode(call, cfg);
}

/* The worker stops: the runner starts nothing new, the pooled
 * connections say QUIT. */
static void fwd_worker_stop(upesi_ctx *ctx)
{
    fwd_api->log(ctx, UPESI_LOG_DEBUG, "worker stops: runner stopped, "
                 "pooled connections closing");
    fwd_queue_worker_stop();
    fwd_pool_stop();
}

static int fwd_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                    size_t errlen)
{
    fwd_ctx = ctx;
    fwd_api = api;
    if (fwd_queue_register_commands() < 0) {
        snprintf(err, errlen, "cannot register the queue/flush commands");
        return -1;
    }
    return 0;
}

static void fwd_fini(void)
{
    fwd_pool_drain();
    fwd_config_release_latest();
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER_NEEDS(UPESI_API_SMTPUTF8_DSN_MINOR),
    .name = "queue_forward",
    .version = "1.0",
    .init = fwd_init,
    .fini = fwd_fini,
    .config_new = fwd_config_new,
    .config_set = fwd_config_set,
    .settings = fwd_settings,
    .config_check = fwd_config_check,
    .config_free = fwd_config_free,
    .config_commit = fwd_config_commit,
    .worker_start = fwd_queue_worker_start,
    .worker_stop = fwd_worker_stop,
    .hooks = {
        [UPESI_HOOK_QUEUE] = fwd_queue_hook,
    },
};
