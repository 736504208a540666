/*
 * fwd_pool.c - which connection a job runs on, and where the connection
 * goes after.  fwd_job_start takes an idle connection to the same
 * downstream from the pool (the next job on it starts with RSET) or
 * opens a new one; fwd_job_finish puts a connection in a clean state
 * back in the pool (pool_size per downstream, at most pool_idle idle) or
 * closes it with QUIT.
 *
 * A pooled connection keeps its TLS session; one in clear is not reused
 * for a configuration that requires TLS now, nor one whose certificate
 * was not verified against what this generation verifies against (it
 * expires in the pool).
 *
 * When the worker stops (fwd_pool_stop, from the descriptor's worker_stop)
 * every pooled connection says QUIT and closes on the 221, the
 * downstream's close or FWD_QUIT_WAIT_MS, whichever comes first (a TLS one
 * sends close_notify then, fwd_tls_free); the host runs the loop until
 * the last of them is unwatched.  A connection busy with a job is left to
 * it (its own timers apply), and is closed with QUIT, not pooled, when
 * the job ends.
 *
 * The owner's done never runs from inside fwd_job_start: the envelope on
 * a pooled connection and the report of a failed connect go out from the
 * loop on a zero timer.  Only when memory runs out (for the connection,
 * or for that timer) does it run at once.
 *
 * Fails: a connection that cannot be opened (socket, connect, the watch)
 * fails the job like any connection error (fwd_conn_fail: temporary); no
 * memory for a connection makes every recipient TEMP 4.3.0.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fwd_client.h"

/* ---------------------------------------------------------------------- */
/* the pool                                                               */

static fwd_conn *fwd_pool;
static int fwd_pool_count;
static int fwd_pool_stopping;       /* the worker stops: pool nothing */

void fwd_pool_remove(fwd_conn *c)
{
    for (fwd_conn **p = &fwd_pool; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            fwd_pool_count--;
            return;
        }
}

/* ---------------------------------------------------------------------- */
/* finishing a job                                                        */

/* The job is over: hand the connection to the pool or close it, then
 * tell the owner.  keep: the connection is in a clean state. */
void fwd_job_finish(fwd_conn *c, int keep)
{
    fwd_job *job = c->job;
    c->job = NULL;
    if (job)
        job->conn = NULL;
    if (keep && !fwd_pool_stopping && c->cfg->pool_size > 0 &&
        fwd_pool_count < c->cfg->pool_size * 4) {
        int same = 0;
        for (fwd_conn *p = fwd_pool; p; p = p->next)
            same += !strcmp(p->target.name, c->target.name);
        if (same < c->cfg->pool_size) {
            c->state = ST_IDLE;
            c->next = fwd_pool;
            fwd_pool = c;
            fwd_pool_count++;
            fwd_conn_timer(c, c->cfg->pool_idle_ms);
            fwd_conn_watch(c);
            keep = 2;
        }
    }
    if (keep != 2) {
        if (keep)               /* polite, and no waiting for the answer */
            fwd_send_quit(c);
        fwd_conn_free(c);
    }
    if (job)
        job->done(job, job->done_arg);
}

/* ---------------------------------------------------------------------- */
/* starting                                                               */

static void job_start_later(void *arg)
{
    fwd_job *job = arg;
    fwd_conn *c = job->conn;
    c->timer = NULL;
    /* c was set up in fwd_job_start, the start is deferred so that done
     * never runs from inside fwd_job_start */
    if (c->state == ST_ENVELOPE) {
        if (fwd_send_envelope(c) == 0)
            fwd_conn_watch(c);
        return;
    }
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void connect_failed_later(void *arg)
{
    fwd_conn *c = arg;
    c->timer = NULL;
    fwd_conn_fail(c, "connect: %s", strerror(c->reply_code));
}

/* A pooled connection opened under other TLS settings (a SIGHUP since)
 * is not used where this generation wants more: TLS, or a certificate
 * verified against other settings.  It expires in the pool. */
static int pool_fits(const fwd_conn *p, const fwd_config *cfg)
{
    if (p->target.family == AF_UNIX || p->cfg == cfg)
        return 1;
    if (cfg->tls == FWD_TLS_REQUIRED && p->tls == NULL)
        return 0;
    if (cfg->tls_verify && p->tls &&
        (!p->tls_verified || strcmp(p->cfg->tls_name, cfg->tls_name) ||
         strcmp(p->cfg->tls_ca ? p->cfg->tls_ca : "",
                cfg->tls_ca ? cfg->tls_ca : "")))
        return 0;
    return 1;
}

void fwd_job_start(fwd_job *job)
{
    fwd_config *cfg = job->cfg;
    if (job->target->mx) {      /* the hosts first (fwd_mx.c) */
        fwd_mx_start(job);
        return;
    }
    for (size_t i = 0; i < job->n_rcpts; i++)
        job->rcpts[i]->accepted = 0;
    job->data_started = job->dot_sent = 0;
    job->last_reply[0] = '\0';

    /* a pooled connection to the same downstream */
    for (fwd_conn *p = fwd_pool; p; p = p->next) {
        if (strcmp(p->target.name, job->target->name))
            continue;
        if (!pool_fits(p, cfg))
            continue;
        fwd_pool_remove(p);
        p->job = job;
        job->conn = p;
        p->reused = 1;
        fwd_config_unref(p->cfg);
        p->cfg = fwd_config_ref(cfg);
        p->tls_verified &= cfg->tls_verify;    /* against p->cfg's */
        p->state = ST_ENVELOPE;
        fwd_conn_timer(p, 0);
        /* a zero timer: the envelope goes out from the loop */
        p->timer = fwd_api->timer_start(fwd_ctx, 0, job_start_later, job);
        if (p->timer == NULL)
            job_start_later(job);
        return;
    }

    fwd_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        for (size_t i = 0; i < job->n_rcpts; i++)
            fwd_rcpt_set(job->rcpts[i], FWD_RCPT_TEMP, 0, "4.3.0",
                         "out of memory");
        job->done(job, job->done_arg);  /* rare: synchronous */
        return;
    }
    c->fd = -1;
    c->cfg = fwd_config_ref(cfg);
    c->target = *job->target;
    c->job = job;
    job->conn = c;
    c->state = ST_CONNECTING;
    fwd_api->stat_add(fwd_ctx, "SMTP.Forward.Connections", 1);

    c->fd = socket(c->target.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = c->fd < 0 ? errno : 0;
    if (!err && set_nonblock(c->fd) < 0)
        err = errno;
    if (!err && connect(c->fd, (struct sockaddr *)&c->target.addr,
                        c->target.addrlen) < 0 && errno != EINPROGRESS)
        err = errno;
    if (!err && (c->watch = fwd_api->fd_watch(fwd_ctx, c->fd, UPESI_WATCH_WRITE,
                                              fwd_conn_on_event, c)) == NULL)
        err = ENOMEM;
    if (err) {
        /* report from the loop, not from inside fwd_job_start */
        c->reply_code = err;
        c->timer = fwd_api->timer_start(fwd_ctx, 0, connect_failed_later, c);
        if (c->timer == NULL)
            fwd_conn_fail(c, "connect: %s", strerror(err));
        return;
    }
    c->watching = UPESI_WATCH_WRITE;
    fwd_conn_timer(c, cfg->connect_timeout_ms);
}

void fwd_job_abort(fwd_job *job)
{
    fwd_mx_abort(job);
    fwd_conn *c = job->conn;
    if (c == NULL)
        return;
    c->job = NULL;
    job->conn = NULL;
    fwd_conn_free(c);       /* no end of data went out, or it did: either way
                           the connection is closed without more */
}

void fwd_pool_stop(void)
{
    fwd_pool_stopping = 1;
    while (fwd_pool) {
        fwd_conn *c = fwd_pool;
        fwd_pool = c->next;
        fwd_pool_count--;
        c->next = NULL;
        if (fwd_send_quit(c) < 0) {
            fwd_conn_free(c);
            continue;
        }
        /* the 221 (on_reply), the downstream's close or the timer
         * (fwd_conn_fail of a connection without a job) frees it */
        c->state = ST_QUIT;
        fwd_conn_timer(c, FWD_QUIT_WAIT_MS);
        fwd_conn_watch(c);
    }
}

void fwd_pool_drain(void)
{
    while (fwd_pool) {
        fwd_conn *c = fwd_pool;
        fwd_pool = c->next;
        fwd_pool_count--;
        fwd_conn_free(c);
    }
}
