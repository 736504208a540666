/*
 * fwd_conn.c - one client connection's plumbing: a non-blocking socket
 * the host watches for us (api->fd_watch), in clear or through wolfSSL
 * (fwd_tls.c: WANT_READ/WANT_WRITE become the events it waits for); an
 * output buffer written as the socket takes it; input read into c->in
 * and handed to the conversation (fwd_smtp.c) one reply at a time; the
 * timer of the stage it is in; closing (QUIT without waiting for the
 * answer; closing a TLS connection sends close_notify).
 *
 * Freeing waits for the way out of the event: fwd_conn_free inside
 * fwd_conn_on_event only marks the connection dead, so nothing below the
 * event touches freed memory.
 *
 * Fails: every failure that is not a reply (connect refused, a timeout, a
 * reply that is no SMTP, the downstream closing) makes the recipients
 * still open FWD_RCPT_TEMP with a text that names the downstream and the
 * stage (fwd_conn_fail); replies keep their own code.  A failure after
 * the end of data went out is TEMP too: the message may have arrived, and
 * a duplicate is better than a loss (RFC 5321 6.1).  A pooled connection
 * that dies before it answered anything costs the job nothing: it is
 * retried once on a fresh one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fwd_client.h"

/* ---------------------------------------------------------------------- */
/* plumbing                                                               */

static void conn_timer_fired(void *arg)
{
    fwd_conn *c = arg;
    c->timer = NULL;
    static const char *const stage[] = {
        "connect", "greeting", "EHLO", "HELO", "MAIL/RCPT", "DATA",
        "sending the message", "end of data", "RSET", "idle", "QUIT",
        "STARTTLS", "TLS handshake", "BDAT chunk"
    };
    if (c->state == ST_IDLE || c->state == ST_QUIT) {
        fwd_conn_fail(c, "idle");
        return;
    }
    fwd_conn_fail(c, "timeout (%s)", stage[c->state]);
}

void fwd_conn_timer(fwd_conn *c, unsigned ms)
{
    if (c->timer)
        fwd_api->timer_stop(c->timer);
    c->timer = ms ? fwd_api->timer_start(fwd_ctx, ms, conn_timer_fired, c) : NULL;
}

void fwd_conn_watch(fwd_conn *c)
{
    int want = UPESI_WATCH_READ;
    /* ST_BODY: the rest of the message is not in the output yet, and
     * room on the socket is what brings the next chunk (the output may
     * well be empty now) */
    if (c->state == ST_CONNECTING || c->out_off < c->out_len ||
        c->state == ST_BODY)
        want |= UPESI_WATCH_WRITE;
    want |= c->tls_want;            /* what wolfSSL waits for */
    if (c->state == ST_CONNECTING)
        want = UPESI_WATCH_WRITE;
    if (c->state == ST_HANDSHAKE)
        want = UPESI_WATCH_READ | c->tls_want;
    if (want != c->watching) {
        fwd_api->fd_watch_update(c->watch, want);
        c->watching = want;
    }
}

void fwd_conn_free(fwd_conn *c)
{
    if (c->timer)
        fwd_api->timer_stop(c->timer);
    c->timer = NULL;
    if (c->watch)
        fwd_api->fd_unwatch(c->watch);
    c->watch = NULL;
    fwd_tls_free(c->tls);           /* close_notify first */
    c->tls = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->in_event) {              /* fwd_conn_on_event frees it */
        c->dead = 1;
        return;
    }
    fwd_config_unref(c->cfg);
    free(c->out);
    free(c->chunk);
    free(c);
}

int fwd_out_reserve(fwd_conn *c, size_t more)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + more <= c->out_cap)
        return 0;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + more <= c->out_cap)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more)
        cap *= 2;
    char *p = realloc(c->out, cap);
    if (p == NULL)
        return -1;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

int fwd_out_append(fwd_conn *c, const char *data, size_t len)
{
    if (fwd_out_reserve(c, len) < 0)
        return -1;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

int fwd_out_printf(fwd_conn *c, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    return fwd_out_append(c, line, (size_t)n);
}

/* Write what can be written.  0, or -1 after fwd_conn_fail. */
int fwd_conn_flush(fwd_conn *c)
{
    int progress = 0;
    while (c->out_off < c->out_len) {
        if (c->tls) {
            char err[300];
            int want;
            ssize_t n = fwd_tls_write(c->tls, c->out + c->out_off,
                                      c->out_len - c->out_off, &want, err,
                                      sizeof err);
            if (n == -1)        /* room (WRITE is watched while output
                                   waits) or a record to read (READ is
                                   always watched) */
                break;
            if (n < 0) {
                fwd_conn_fail(c, "TLS write: %s", err);
                return -1;
            }
            c->out_off += (size_t)n;
            progress = 1;
            continue;
        }
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            fwd_conn_fail(c, "write: %s", strerror(errno));
            return -1;
        }
        c->out_off += (size_t)n;
        progress = 1;
    }
    /* data_timeout is for each write of the message, not for all of it */
    if (progress && c->state == ST_BODY)
        fwd_conn_timer(c, c->cfg->data_timeout_ms);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* closing and failing                                                    */

/* QUIT without waiting for room or the answer.  0 when it went out
 * whole. */
int fwd_send_quit(fwd_conn *c)
{
    static const char quit[] = "QUIT\r\n";
    if (c->out_off < c->out_len || c->fd < 0)
        return -1;                  /* something else is half-sent */
    ssize_t n;
    if (c->tls) {
        char err[200];
        int want;
        n = fwd_tls_write(c->tls, quit, sizeof quit - 1, &want, err,
                          sizeof err);
    } else {
        n = send(c->fd, quit, sizeof quit - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    return n == (ssize_t)(sizeof quit - 1) ? 0 : -1;
}

void fwd_conn_fail(fwd_conn *c, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    fwd_job *job = c->job;
    if (job == NULL) {              /* idle in the pool */
        fwd_pool_remove(c);
        fwd_conn_free(c);
        return;
    }
    /* a pooled connection that died before it answered anything: the
     * job has lost nothing, try once more on a fresh one */
    if (c->reused && !job->retried && c->state == ST_ENVELOPE &&
        c->replies == 0) {
        job->retried = 1;
        c->job = NULL;
        job->conn = NULL;
        fwd_conn_free(c);
        fwd_job_start(job);
        return;
    }
    char text[512];
    snprintf(text, sizeof text, "downstream %s: %s%s", c->target.name, why,
             job->dot_sent ? " after the end of data (the message may "
                             "have arrived)" : "");
    fwd_log(job->call, UPESI_LOG_WARNING, "%s: %s", job->id, text);
    fwd_api->stat_add(fwd_ctx, "SMTP.Forward.ConnectionErrors", 1);
    for (size_t i = 0; i < job->n_rcpts; i++)
        if (job->rcpts[i]->state == FWD_RCPT_PENDING)
            fwd_rcpt_set(job->rcpts[i], FWD_RCPT_TEMP, 0, "4.4.1", text);
    fwd_job_finish(c, 0);
}

/* ---------------------------------------------------------------------- */
/* events                                                                 */

static void conn_event(fwd_conn *c, int events);

void fwd_conn_on_event(upesi_watch *w, int events, void *arg)
{
    fwd_conn *c = arg;
    (void)w;
    c->in_event = 1;
    conn_event(c, events);
    c->in_event = 0;
    if (c->dead)
        fwd_conn_free(c);
}

static void conn_event(fwd_conn *c, int events)
{
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err == 0 && (events & UPESI_WATCH_ERROR))
            err = ECONNREFUSED;
        if (err) {
            fwd_conn_fail(c, "connect: %s", strerror(err));
            return;
        }
        c->state = ST_GREETING;
        fwd_conn_timer(c, c->cfg->greeting_timeout_ms);
        fwd_conn_watch(c);
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        fwd_starttls_step(c);
        return;
    }
    if ((events & (UPESI_WATCH_READ | UPESI_WATCH_ERROR)) ||
        (c->tls && (c->tls_want & UPESI_WATCH_WRITE))) {
        c->tls_want = 0;
        for (;;) {
            ssize_t n;
            if (c->tls) {
                char err[300];
                int want;
                n = fwd_tls_read(c->tls, c->in + c->in_len,
                                 sizeof c->in - 1 - c->in_len, &want, err,
                                 sizeof err);
                if (n == -1) {          /* nothing (more) to read yet */
                    c->tls_want = want;
                    break;
                }
                if (n == -2) {
                    fwd_conn_fail(c, "TLS read: %s", err);
                    return;
                }
            } else {
                n = recv(c->fd, c->in + c->in_len,
                         sizeof c->in - 1 - c->in_len, 0);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
            }
            if (n <= 0) {
                fwd_conn_fail(c,
                              n == 0 ? "connection closed by the downstream"
                                     : "read: %s",
                              n == 0 ? "" : strerror(errno));
                return;
            }
            c->in_len += (size_t)n;
            /* replies one at a time: after each, the connection may have
             * been finished, pooled or freed; a job that was handed its
             * result is never touched here again */
            for (;;) {
                fwd_job *job = c->job;
                int rc = fwd_parse_input(c);
                if (rc < 0 || c->dead)
                    return;
                if (rc == 0)
                    break;
                /* the 220 to STARTTLS: from here on the socket is
                 * wolfSSL's (fwd_starttls_step watches it) */
                if (c->state == ST_HANDSHAKE)
                    return;
                /* the job ended: c is pooled, or already serves the
                 * next job, whose own timer drives it */
                if (job == NULL || c->job != job)
                    return;
            }
            if (c->in_len >= sizeof c->in - 1)
                break;
        }
    }
    if (c->state == ST_BODY) {
        if (fwd_body_fill(c) < 0)
            return;
    }
    if (fwd_conn_flush(c) < 0)
        return;
    if (c->state == ST_BODY && c->out_off == c->out_len) {
        if (fwd_body_fill(c) < 0 || fwd_conn_flush(c) < 0)
            return;
    }
    fwd_conn_watch(c);
}
