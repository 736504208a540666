/*
 * fwd_report.c - what is owed for recipients that were refused for good
 * (or, when their NOTIFY asks, delayed or relayed to a downstream without
 * DSN, RFC 3461): a delivery status notification (built by fwd_dsn.c)
 * queued as a new message to the sender.  NOTIFY=NEVER, or a NOTIFY
 * without FAILURE, means no failure report (logged).  For a failure from
 * the null sender, null_sender_dsn decides:
 * 1 the DSN goes to the postmaster, 0 the message is kept in dead/ with
 * the refused recipients (so is a report about a report to the
 * postmaster: no loop), 2 nothing but a log line.  Used by the queue
 * (fwd_delivery.c) and by direct mode (fwd_main.c).
 *
 * Fails: a negative errno when memory runs out or the store refuses the
 * write, with nothing pending; the caller keeps the message (a duplicate
 * later, never a loss).  An error while the file is committed comes to
 * the caller's done.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "forward.h"

/* ---------------------------------------------------------------------- */
/* reports: DSN, or dead/ for the null sender                             */

static int report(const fwd_config *cfg, const fwd_env *env,
                  fwd_rcpt *const *failed, size_t n_failed, int kind,
                  const fwd_src *msg, fwd_commit_fn done, void *arg,
                  int *pending);

typedef struct report_ctx {
    fwd_commit_fn done;
    void *arg;
} report_ctx;

static void report_committed(void *arg, int error)
{
    report_ctx *r = arg;
    r->done(r->arg, error);
    free(r);
}

/* Which of rcpts[] this kind of report is for (their NOTIFY). */
static size_t report_select(const fwd_env *env, fwd_rcpt *const *rcpts,
                           size_t n, int kind, fwd_rcpt **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned bits = fwd_notify_bits(rcpts[i]->params);
        int want = kind == FWD_DSN_FAILED ? (bits & FWD_NOTIFY_FAILURE) != 0
                 : kind == FWD_DSN_DELAYED ? (bits & FWD_NOTIFY_DELAY) != 0
                 : (bits & FWD_NOTIFY_SUCCESS) && !rcpts[i]->dsn_passed;
        if (want)
            out[k++] = rcpts[i];
        else if (kind == FWD_DSN_FAILED)
            fwd_api->log(fwd_ctx, UPESI_LOG_INFO, "%s: to=<%s> "
                         "no failure report: the sender asked NOTIFY=%s",
                         env->queue_id, rcpts[i]->addr,
                         bits & FWD_NOTIFY_NEVER ? "NEVER" : "without "
                                                             "FAILURE");
    }
    return k;
}

int fwd_report_failures(const fwd_config *cfg, const fwd_env *env,
                        fwd_rcpt *const *rcpts, size_t n_rcpts, int kind,
                        const fwd_src *msg, fwd_commit_fn done, void *arg,
                        int *pending)
{
    *pending = 0;
    fwd_rcpt **failed = calloc(n_rcpts + 1, sizeof *failed);
    if (failed == NULL)
        return -ENOMEM;
    size_t n_failed = report_select(env, rcpts, n_rcpts, kind, failed);
    int rc = n_failed ? report(cfg, env, failed, n_failed, kind, msg, done,
                               arg, pending)
                      : 0;
    free(failed);
    return rc;
}

static int report(const fwd_config *cfg, const fwd_env *env,
                  fwd_rcpt *const *failed, size_t n_failed, int kind,
                  const fwd_src *msg, fwd_commit_fn done, void *arg,
                  int *pending)
{
    const char *host = fwd_api->hostname(fwd_ctx);
    if (host == NULL || host[0] == '\0')
        host = "localhost";
    char postmaster[300];
    if (cfg->postmaster[0])
        snprintf(postmaster, sizeof postmaster, "%s", cfg->postmaster);
    else
        snprintf(postmaster, sizeof postmaster, "postmaster@%s", host);
    int null_sender = !strcmp(env->sender, "<>") || env->sender[0] == '\0';
    const char *to = env->sender;
    int dead = 0;
    if (null_sender && kind != FWD_DSN_FAILED)
        return 0;               /* only failures are ever reported for <> */
    if (null_sender) {
        int to_postmaster = 0;
        for (size_t i = 0; i < n_failed; i++)
            to_postmaster |= !strcasecmp(failed[i]->addr, postmaster);
        if (cfg->null_sender_dsn == 2) {
            fwd_api->log(fwd_ctx, UPESI_LOG_NOTICE, "%s: "
                         "undeliverable message from <>: no report "
                         "(null_sender_dsn = 2)", env->queue_id);
            return 0;
        }
        if (cfg->null_sender_dsn == 0 || to_postmaster)
            dead = 1;               /* a report to the postmaster about a
                                       report to the postmaster: no loop */
        to = postmaster;
    }
    report_ctx *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->done = done;
    r->arg = arg;
    int rc;
    if (dead) {
        size_t len;
        char *text = fwd_env_format_rcpts(env, failed, n_failed, &len);
        char id[80];
        snprintf(id, sizeof id, "%s", env->queue_id);
        rc = text ? fwd_store_write("dead", id, text, len, NULL, 0, msg,
                                    cfg->fsync, report_committed, r)
                  : -ENOMEM;
        free(text);
        if (rc == 0)
            fwd_api->log(fwd_ctx, UPESI_LOG_NOTICE, "%s: "
                         "undeliverable message from <>: kept in dead/ "
                         "(null_sender_dsn = %d)", env->queue_id,
                         cfg->null_sender_dsn);
    } else {
        char id[64];
        fwd_make_queue_id(id, sizeof id);
        size_t body_len, env_len;
        char *body = fwd_dsn_build(env, failed, n_failed, kind, msg, to,
                                   host, &body_len);
        fwd_env denv;
        char *etext = NULL;
        if (body && fwd_env_local(&denv, id, "", to) == 0) {
            /* a report to a UTF-8 address goes with SMTPUTF8 */
            for (const char *p = to; *p && !denv.mail_params; p++)
                if ((unsigned char)*p >= 0x80)
                    denv.mail_params = strdup("SMTPUTF8");
            etext = fwd_env_format(&denv, &env_len);
            fwd_env_free(&denv);
        }
        rc = etext ? fwd_store_write("queue", id, etext, env_len, body,
                                     body_len, NULL, cfg->fsync,
                                     report_committed, r)
                   : -ENOMEM;
        if (rc == 0) {
            fwd_api->log(fwd_ctx, UPESI_LOG_NOTICE, "%s: sender %s "
                         "notification: %s (to <%s>)", env->queue_id,
                         kind == FWD_DSN_FAILED ? "non-delivery"
                         : kind == FWD_DSN_DELAYED ? "delay" : "success",
                         id, to);
            fwd_api->stat_add(fwd_ctx, "SMTP.Forward.DSN", 1);
        }
        free(body);
        free(etext);
    }
    if (rc < 0) {
        free(r);
        return rc;
    }
    *pending = 1;
    return 1;
}
