/*
 * fwd_report.c - what is owed for recipients that were refused for good:
 * a delivery status notification (built by fwd_dsn.c) queued as a new
 * message to the sender.  For the null sender, null_sender_dsn decides:
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

int fwd_report_failures(const fwd_config *cfg, const fwd_env *env,
                        fwd_rcpt *const *failed, size_t n_failed,
                        const fwd_src *msg, fwd_commit_fn done, void *arg,
                        int *pending)
{
    *pending = 0;
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
        fwd_env copy = *env;
        char **addrs = calloc(n_failed, sizeof *addrs);
        if (addrs == NULL) {
            free(r);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n_failed; i++)
            addrs[i] = failed[i]->addr;
        copy.rcpts = addrs;
        copy.n_rcpts = n_failed;
        size_t len;
        char *text = fwd_env_format(&copy, &len);
        free(addrs);
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
        char *body = fwd_dsn_build(env, failed, n_failed, msg, to, host,
                                   &body_len);
        fwd_env denv;
        char *etext = NULL;
        if (body && fwd_env_local(&denv, id, "", to) == 0) {
            etext = fwd_env_format(&denv, &env_len);
            fwd_env_free(&denv);
        }
        rc = etext ? fwd_store_write("queue", id, etext, env_len, body,
                                     body_len, NULL, cfg->fsync,
                                     report_committed, r)
                   : -ENOMEM;
        if (rc == 0) {
            fwd_api->log(fwd_ctx, UPESI_LOG_NOTICE, "%s: "
                         "sender non-delivery notification: %s (to <%s>)",
                         env->queue_id, id, to);
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
