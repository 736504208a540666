/*
 * fwd_smtp.c - the SMTP/LMTP client: one job is one transaction (MAIL,
 * RCPTs, DATA, the message) to one downstream, over a non-blocking socket
 * the host watches for us (api->fd_watch).
 *
 * A connection says EHLO (LHLO for LMTP; HELO when EHLO is refused), and
 * with PIPELINING sends MAIL and every RCPT in one write (RFC 2920),
 * otherwise one command per reply.  DATA waits until every RCPT reply is
 * in: a job with defer_all_on_temp (direct mode) sends RSET instead of
 * DATA when any recipient got a 4xx, so nothing is half-sent.  The message
 * goes out dot-stuffed (a line that starts with "." gets another one),
 * 64 KiB at a time, then ".".  SMTP has one final reply for all accepted
 * recipients, LMTP one per accepted recipient (RFC 2033 4.2).
 *
 * After a job the connection joins a pool per downstream (pool_size, at
 * most pool_idle idle); the next job on it starts with RSET.  A pooled
 * connection that turns out dead before the RSET reply is retried once on
 * a fresh one.
 *
 * STARTTLS (downstream_tls, RFC 3207): after EHLO, when the downstream
 * offers STARTTLS (1) or always (required), the client says STARTTLS and,
 * after the 220, runs the TLS handshake on its own socket (fwd_tls.c,
 * WANT_READ/WANT_WRITE become the events it waits for), then says EHLO
 * again and forgets what the first EHLO offered.  A downstream that does
 * not offer STARTTLS under required, or a handshake that fails (either
 * setting), fails the connection like any other error: temporary.  Unix
 * sockets are local and never use TLS.  A pooled connection keeps its TLS
 * session; one in clear is not reused for a configuration that requires
 * TLS now.  Closing a TLS connection sends close_notify.
 *
 * Fails: every failure that is not a reply (connect refused, a timeout, a
 * reply that is no SMTP, the downstream closing) makes the recipients
 * still open FWD_RCPT_TEMP with a text that names the downstream and the
 * stage; replies keep their own code.  A failure after the end of data
 * went out is TEMP too: the message may have arrived, and a duplicate is
 * better than a loss (RFC 5321 6.1).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forward.h"

#define FWD_IN_MAX 8192             /* one reply line, and then some */
#define FWD_REPLY_TEXT 512
#define FWD_BODY_CHUNK (64 * 1024)
#define FWD_REPLY_LINES_MAX 100

enum {
    ST_CONNECTING, ST_GREETING, ST_EHLO, ST_HELO, ST_ENVELOPE, ST_DATA,
    ST_BODY, ST_DOT, ST_RSET_AFTER, ST_IDLE, ST_QUIT, ST_STARTTLS,
    ST_HANDSHAKE
};

typedef struct fwd_conn {
    int fd;
    upesi_watch *watch;
    upesi_timer *timer;
    int watching;                   /* events asked for */
    int state;
    fwd_target target;
    fwd_config *cfg;                /* a reference */
    fwd_job *job;
    int reused;                     /* came from the pool */
    int pipelining, size_ext;
    int starttls;                   /* the last EHLO offered STARTTLS */
    fwd_tls *tls;                   /* NULL: in clear */
    int tls_verified;               /* the certificate was verified */
    int tls_want;                   /* handshake: what wolfSSL waits for;
                                       later WRITE when a read needs it */
    /* input */
    char in[FWD_IN_MAX];
    size_t in_len;
    int reply_code, reply_lines;
    char reply_text[FWD_REPLY_TEXT];
    /* output */
    char *out;
    size_t out_len, out_off, out_cap;
    /* envelope bookkeeping */
    size_t n_cmds, cmds_sent, replies;  /* [RSET] MAIL RCPT... */
    int has_rset;
    size_t n_accepted, final_seen;
    /* body */
    off_t body_off;
    int at_line_start;
    int last_was_lf;
    char *chunk;
    int in_event;                   /* inside conn_on_event: free later */
    int dead;
    struct fwd_conn *next;          /* pool */
} fwd_conn;

static fwd_conn *fwd_pool;
static int fwd_pool_count;

static void conn_on_event(upesi_watch *w, int events, void *arg);
static void conn_fail(fwd_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------------- */
/* plumbing                                                               */

static void conn_timer_fired(void *arg)
{
    fwd_conn *c = arg;
    c->timer = NULL;
    static const char *const stage[] = {
        "connect", "greeting", "EHLO", "HELO", "MAIL/RCPT", "DATA",
        "sending the message", "end of data", "RSET", "idle", "QUIT",
        "STARTTLS", "TLS handshake"
    };
    if (c->state == ST_IDLE || c->state == ST_QUIT) {
        conn_fail(c, "idle");
        return;
    }
    conn_fail(c, "timeout (%s)", stage[c->state]);
}

static void conn_timer(fwd_conn *c, unsigned ms)
{
    if (c->timer)
        fwd_api->timer_stop(c->timer);
    c->timer = ms ? fwd_api->timer_start(ms, conn_timer_fired, c) : NULL;
}

static void conn_watch(fwd_conn *c)
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

static void conn_free(fwd_conn *c)
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
    if (c->in_event) {              /* conn_on_event frees it */
        c->dead = 1;
        return;
    }
    fwd_config_unref(c->cfg);
    free(c->out);
    free(c->chunk);
    free(c);
}

static void pool_remove(fwd_conn *c)
{
    for (fwd_conn **p = &fwd_pool; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            fwd_pool_count--;
            return;
        }
}

static int out_reserve(fwd_conn *c, size_t more)
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

static int out_append(fwd_conn *c, const char *data, size_t len)
{
    if (out_reserve(c, len) < 0)
        return -1;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

static int out_printf(fwd_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int out_printf(fwd_conn *c, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    return out_append(c, line, (size_t)n);
}

/* Write what can be written.  0, or -1 after conn_fail. */
static int conn_flush(fwd_conn *c)
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
                conn_fail(c, "TLS write: %s", err);
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
            conn_fail(c, "write: %s", strerror(errno));
            return -1;
        }
        c->out_off += (size_t)n;
        progress = 1;
    }
    /* data_timeout is for each write of the message, not for all of it */
    if (progress && c->state == ST_BODY)
        conn_timer(c, c->cfg->data_timeout_ms);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* finishing a job                                                        */

static void rcpt_set(fwd_rcpt *r, int state, int code, const char *enhanced,
                     const char *text)
{
    r->state = state;
    r->code = code;
    snprintf(r->enhanced, sizeof r->enhanced, "%s", enhanced ? enhanced : "");
    snprintf(r->text, sizeof r->text, "%s", text ? text : "");
}

static int state_of_code(int code)
{
    return code >= 200 && code < 300 ? FWD_RCPT_OK
         : code >= 500 ? FWD_RCPT_PERM : FWD_RCPT_TEMP;
}

/* "5.1.1 text" -> enhanced "5.1.1" when it matches the code's class */
static void split_enhanced(int code, const char *text, char *enh,
                           size_t enhlen)
{
    enh[0] = '\0';
    int a, b, c, n = 0;
    if (sscanf(text, "%1d.%3d.%3d%n", &a, &b, &c, &n) == 3 &&
        (text[n] == ' ' || text[n] == '\0') && a == code / 100)
        snprintf(enh, enhlen, "%d.%d.%d", a, b, c);
}

/* QUIT without waiting for room or the answer (the connection closes). */
static void send_quit(fwd_conn *c)
{
    static const char quit[] = "QUIT\r\n";
    if (c->out_off < c->out_len || c->fd < 0)
        return;                     /* something else is half-sent */
    if (c->tls) {
        char err[200];
        int want;
        ssize_t n = fwd_tls_write(c->tls, quit, sizeof quit - 1, &want, err,
                                  sizeof err);
        (void)n;
        return;
    }
    ssize_t n = send(c->fd, quit, sizeof quit - 1,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
}

/* The job is over: hand the connection to the pool or close it, then
 * tell the owner.  keep: the connection is in a clean state. */
static void job_finish(fwd_conn *c, int keep)
{
    fwd_job *job = c->job;
    c->job = NULL;
    if (job)
        job->conn = NULL;
    if (keep && c->cfg->pool_size > 0 &&
        fwd_pool_count < c->cfg->pool_size * 4) {
        int same = 0;
        for (fwd_conn *p = fwd_pool; p; p = p->next)
            same += !strcmp(p->target.name, c->target.name);
        if (same < c->cfg->pool_size) {
            c->state = ST_IDLE;
            c->next = fwd_pool;
            fwd_pool = c;
            fwd_pool_count++;
            conn_timer(c, c->cfg->pool_idle_ms);
            conn_watch(c);
            keep = 2;
        }
    }
    if (keep != 2) {
        if (keep)               /* polite, and no waiting for the answer */
            send_quit(c);
        conn_free(c);
    }
    if (job)
        job->done(job, job->done_arg);
}

static void conn_fail(fwd_conn *c, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    fwd_job *job = c->job;
    if (job == NULL) {              /* idle in the pool */
        pool_remove(c);
        conn_free(c);
        return;
    }
    /* a pooled connection that died before it answered anything: the
     * job has lost nothing, try once more on a fresh one */
    if (c->reused && !job->retried && c->state == ST_ENVELOPE &&
        c->replies == 0) {
        job->retried = 1;
        c->job = NULL;
        job->conn = NULL;
        conn_free(c);
        fwd_job_start(job);
        return;
    }
    char text[512];
    snprintf(text, sizeof text, "downstream %s: %s%s", c->target.name, why,
             job->dot_sent ? " after the end of data (the message may "
                             "have arrived)" : "");
    fwd_api->log(job->call, UPESI_LOG_WARNING, "%s%s: %s",
                 job->call ? "" : "queue_forward: ", job->id, text);
    fwd_api->stat_add("SMTP.Forward.ConnectionErrors", 1);
    for (size_t i = 0; i < job->n_rcpts; i++)
        if (job->rcpts[i]->state == FWD_RCPT_PENDING)
            rcpt_set(job->rcpts[i], FWD_RCPT_TEMP, 0, "4.4.1", text);
    job_finish(c, 0);
}

/* ---------------------------------------------------------------------- */
/* sending                                                                */

static int send_envelope(fwd_conn *c)
{
    fwd_job *job = c->job;
    c->state = ST_ENVELOPE;
    c->has_rset = c->reused;
    c->n_cmds = (size_t)c->has_rset + 1 + job->n_rcpts;
    c->cmds_sent = c->replies = 0;
    c->n_accepted = c->final_seen = 0;
    size_t upto = c->pipelining ? c->n_cmds : 1;
    for (; c->cmds_sent < upto; c->cmds_sent++) {
        size_t k = c->cmds_sent - (size_t)c->has_rset;
        int rc;
        if (c->has_rset && c->cmds_sent == 0)
            rc = out_printf(c, "RSET\r\n");
        else if (k == 0 && c->size_ext)
            rc = out_printf(c, "MAIL FROM:<%s> SIZE=%lld\r\n", job->sender,
                            (long long)job->src.size);
        else if (k == 0)
            rc = out_printf(c, "MAIL FROM:<%s>\r\n", job->sender);
        else
            rc = out_printf(c, "RCPT TO:<%s>\r\n", job->rcpts[k - 1]->addr);
        if (rc < 0) {
            conn_fail(c, "out of memory or address too long");
            return -1;
        }
    }
    conn_timer(c, c->cfg->command_timeout_ms);
    return conn_flush(c);
}

/* Dot-stuff the next chunk of the message into the output. */
static int body_fill(fwd_conn *c)
{
    fwd_job *job = c->job;
    if (c->chunk == NULL && (c->chunk = malloc(FWD_BODY_CHUNK)) == NULL) {
        conn_fail(c, "out of memory");
        return -1;
    }
    while (c->out_len - c->out_off < FWD_BODY_CHUNK &&
           c->body_off < job->src.size) {
        size_t want = FWD_BODY_CHUNK;
        if ((off_t)want > job->src.size - c->body_off)
            want = (size_t)(job->src.size - c->body_off);
        ssize_t n = job->src.read(job->src.arg, c->body_off, c->chunk, want);
        if (n <= 0) {
            conn_fail(c, "cannot read the message: %s",
                      n < 0 ? strerror((int)-n) : "shorter than its size");
            return -1;
        }
        c->body_off += n;
        /* worst case every byte is a line-leading dot */
        if (out_reserve(c, 2 * (size_t)n) < 0) {
            conn_fail(c, "out of memory");
            return -1;
        }
        char *o = c->out + c->out_len;
        for (const char *p = c->chunk, *end = c->chunk + n; p < end;) {
            if (c->at_line_start && *p == '.')
                *o++ = '.';
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl + 1 : end;
            memcpy(o, p, (size_t)(stop - p));
            o += stop - p;
            c->at_line_start = nl != NULL;
            p = stop;
        }
        c->last_was_lf = c->chunk[n - 1] == '\n';
        c->out_len = (size_t)(o - c->out);
    }
    if (c->body_off >= job->src.size && c->state == ST_BODY) {
        /* the stored message ends with CRLF; if it somehow did not, the
         * end of data must still start on a line of its own */
        int rc = (job->src.size > 0 && !c->last_was_lf)
                     ? out_append(c, "\r\n.\r\n", 5)
                     : out_append(c, ".\r\n", 3);
        if (rc < 0) {
            conn_fail(c, "out of memory");
            return -1;
        }
        c->state = ST_DOT;
        job->dot_sent = 1;
        conn_timer(c, c->cfg->data_timeout_ms);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* replies                                                                */

static void after_envelope(fwd_conn *c)
{
    fwd_job *job = c->job;
    int any_temp = 0;
    for (size_t i = 0; i < job->n_rcpts; i++)
        any_temp |= job->rcpts[i]->state == FWD_RCPT_TEMP;
    if (c->n_accepted == 0 || (any_temp && job->defer_all_on_temp)) {
        if (c->n_accepted) {
            const fwd_rcpt *why = NULL;
            for (size_t i = 0; i < job->n_rcpts && !why; i++)
                if (job->rcpts[i]->state == FWD_RCPT_TEMP)
                    why = job->rcpts[i];
            char text[512];
            snprintf(text, sizeof text, "not sent: <%s> was deferred (%s)",
                     why->addr, why->text);
            for (size_t i = 0; i < job->n_rcpts; i++)
                if (job->rcpts[i]->state == FWD_RCPT_PENDING)
                    rcpt_set(job->rcpts[i], FWD_RCPT_TEMP, why->code,
                             why->enhanced, text);
        }
        /* the transaction is open downstream: close it before reuse */
        if (out_printf(c, "RSET\r\n") < 0) {
            conn_fail(c, "out of memory");
            return;
        }
        c->state = ST_RSET_AFTER;
        conn_timer(c, c->cfg->command_timeout_ms);
        if (conn_flush(c) == 0)
            conn_watch(c);
        return;
    }
    if (out_printf(c, "DATA\r\n") < 0) {
        conn_fail(c, "out of memory");
        return;
    }
    c->state = ST_DATA;
    conn_timer(c, c->cfg->command_timeout_ms);
    if (conn_flush(c) == 0)
        conn_watch(c);
}

static void on_envelope_reply(fwd_conn *c)
{
    fwd_job *job = c->job;
    size_t idx = c->replies++;
    char enh[16];
    split_enhanced(c->reply_code, c->reply_text, enh, sizeof enh);
    char text[FWD_REPLY_TEXT + 16];
    snprintf(text, sizeof text, "%d %s", c->reply_code, c->reply_text);

    if (c->has_rset && idx == 0) {
        if (c->reply_code / 100 != 2) {
            conn_fail(c, "RSET refused: %s", text);
            return;
        }
    } else {
        size_t k = idx - (size_t)c->has_rset;
        if (k == 0) {                       /* MAIL */
            if (c->reply_code / 100 != 2) {
                for (size_t i = 0; i < job->n_rcpts; i++)
                    rcpt_set(job->rcpts[i], state_of_code(c->reply_code),
                             c->reply_code, enh, text);
                if (!c->pipelining) {       /* no RCPT went out */
                    c->replies = c->n_cmds;
                    after_envelope(c);
                    return;
                }
            }
        } else {
            fwd_rcpt *r = job->rcpts[k - 1];
            if (r->state == FWD_RCPT_PENDING) {
                if (c->reply_code / 100 == 2) {
                    r->accepted = 1;
                    c->n_accepted++;
                } else {
                    rcpt_set(r, state_of_code(c->reply_code), c->reply_code,
                             enh, text);
                }
            }
        }
    }
    if (c->replies == c->n_cmds) {
        after_envelope(c);
        return;
    }
    if (!c->pipelining && c->cmds_sent == c->replies) {
        size_t k = c->cmds_sent++ - (size_t)c->has_rset;
        int rc = k == 0 && c->size_ext
                     ? out_printf(c, "MAIL FROM:<%s> SIZE=%lld\r\n",
                                  job->sender, (long long)job->src.size)
                 : k == 0 ? out_printf(c, "MAIL FROM:<%s>\r\n", job->sender)
                          : out_printf(c, "RCPT TO:<%s>\r\n",
                                       job->rcpts[k - 1]->addr);
        if (rc < 0) {
            conn_fail(c, "out of memory");
            return;
        }
        conn_timer(c, c->cfg->command_timeout_ms);
        if (conn_flush(c) == 0)
            conn_watch(c);
    }
}

static void on_final_reply(fwd_conn *c)
{
    fwd_job *job = c->job;
    char enh[16];
    split_enhanced(c->reply_code, c->reply_text, enh, sizeof enh);
    char text[FWD_REPLY_TEXT + 16];
    snprintf(text, sizeof text, "%d %s", c->reply_code, c->reply_text);
    snprintf(job->last_reply, sizeof job->last_reply, "%s", text);
    int st = state_of_code(c->reply_code);
    if (!c->target.lmtp) {
        for (size_t i = 0; i < job->n_rcpts; i++)
            if (job->rcpts[i]->accepted &&
                job->rcpts[i]->state == FWD_RCPT_PENDING)
                rcpt_set(job->rcpts[i], st, c->reply_code, enh, text);
        c->final_seen = c->n_accepted;
    } else {
        /* LMTP: one reply per accepted recipient, in RCPT order */
        size_t seen = 0;
        for (size_t i = 0; i < job->n_rcpts; i++) {
            fwd_rcpt *r = job->rcpts[i];
            if (!r->accepted)
                continue;
            if (seen++ == c->final_seen) {
                rcpt_set(r, st, c->reply_code, enh, text);
                break;
            }
        }
        c->final_seen++;
    }
    if (c->final_seen < c->n_accepted) {
        conn_timer(c, c->cfg->data_timeout_ms);
        return;
    }
    fwd_api->stat_add("SMTP.Forward.Transactions", 1);
    job_finish(c, 1);
}

static void send_hello(fwd_conn *c, int helo)
{
    const char *name = c->cfg->helo[0] ? c->cfg->helo : fwd_api->hostname();
    if (name == NULL || name[0] == '\0')
        name = "localhost";
    out_printf(c, "%s %s\r\n", c->target.lmtp ? "LHLO" : helo ? "HELO"
                                                               : "EHLO", name);
    /* what the downstream offers comes with this reply (after STARTTLS
     * the earlier offer is forgotten, RFC 3207 4.2) */
    c->pipelining = c->size_ext = c->starttls = 0;
    c->state = helo ? ST_HELO : ST_EHLO;
    conn_timer(c, c->cfg->command_timeout_ms);
}

/* STARTTLS applies to this connection: configured, not over a unix
 * socket, not done yet. */
static int tls_wanted(const fwd_conn *c)
{
    return c->cfg->tls != FWD_TLS_OFF && c->cfg->tls_ctx != NULL &&
           c->target.family != AF_UNIX && c->tls == NULL;
}

/* The greeting and hello are done (and TLS, if any): the transaction. */
static int after_hello(fwd_conn *c)
{
    if (c->target.lmtp)
        c->pipelining = 1;          /* RFC 2033 4.2: required */
    return send_envelope(c);
}

/* No TLS where it must be, or a STARTTLS reply that makes no sense: QUIT,
 * then a temporary failure. */
static void tls_refuse(fwd_conn *c, const char *why)
{
    send_quit(c);
    conn_fail(c, "%s%s", why, c->cfg->tls == FWD_TLS_REQUIRED
                                  ? " (downstream_tls = required)" : "");
}

/* Drive the handshake.  When it is done: log, EHLO again.  -1 if c
 * failed. */
static int tls_step(fwd_conn *c)
{
    char err[300];
    int want;
    int rc = fwd_tls_handshake(c->tls, &want, err, sizeof err);
    if (rc < 0) {
        conn_fail(c, "TLS handshake: %s", err);
        return -1;
    }
    if (rc == 0) {
        c->tls_want = want;
        conn_watch(c);
        return 0;
    }
    c->tls_want = 0;
    c->tls_verified = c->cfg->tls_verify;
    fwd_job *job = c->job;
    fwd_api->log(job ? job->call : NULL, UPESI_LOG_INFO,
                 "%s%s: downstream %s: TLS %s %s (%s%s)",
                 job && job->call ? "" : "queue_forward: ",
                 job ? job->id : "-", c->target.name, fwd_tls_version(c->tls),
                 fwd_tls_cipher(c->tls),
                 c->tls_verified ? "certificate verified for "
                                 : "certificate not verified",
                 c->tls_verified ? c->cfg->tls_name : "");
    fwd_api->stat_add("SMTP.Forward.TLS", 1);
    send_hello(c, 0);
    if (conn_flush(c) < 0)
        return -1;
    conn_watch(c);
    return 0;
}

/* One complete reply is in c->reply_code / reply_text. */
static void on_reply(fwd_conn *c)
{
    switch (c->state) {
    case ST_GREETING:
        if (c->reply_code != 220) {
            conn_fail(c, "greeting: %d %s", c->reply_code, c->reply_text);
            return;
        }
        send_hello(c, 0);
        break;
    case ST_EHLO:
    case ST_HELO:
        if (c->reply_code / 100 != 2) {
            if (c->state == ST_EHLO && !c->target.lmtp) {
                send_hello(c, 1);
                break;
            }
            conn_fail(c, "%s refused: %d %s", c->state == ST_EHLO
                          ? (c->target.lmtp ? "LHLO" : "EHLO") : "HELO",
                      c->reply_code, c->reply_text);
            return;
        }
        if (tls_wanted(c)) {
            if (c->state == ST_EHLO && c->starttls) {
                out_printf(c, "STARTTLS\r\n");
                c->state = ST_STARTTLS;
                conn_timer(c, c->cfg->command_timeout_ms);
                if (conn_flush(c) < 0)
                    return;
                break;
            }
            if (c->cfg->tls == FWD_TLS_REQUIRED) {
                tls_refuse(c, "STARTTLS is not offered");
                return;
            }
        }
        if (after_hello(c) < 0)
            return;
        break;
    case ST_STARTTLS:
        if (c->reply_code != 220) {
            char why[FWD_REPLY_TEXT + 40];
            snprintf(why, sizeof why, "STARTTLS refused: %d %s",
                     c->reply_code, c->reply_text);
            if (c->cfg->tls == FWD_TLS_REQUIRED ||
                (c->reply_code / 100 != 4 && c->reply_code / 100 != 5)) {
                tls_refuse(c, why);
                return;
            }
            /* downstream_tls = 1: in clear, as if it had not offered */
            fwd_api->log(c->job ? c->job->call : NULL, UPESI_LOG_NOTICE,
                         "%s%s: downstream %s: %s; going on without TLS",
                         c->job && c->job->call ? "" : "queue_forward: ",
                         c->job ? c->job->id : "-", c->target.name, why);
            if (after_hello(c) < 0)
                return;
            break;
        }
        if (c->in_len > 0) {
            /* plain text after the 220 would be taken as if it came
             * inside TLS (CVE-2011-0411, the client side) */
            conn_fail(c, "the downstream sent more after its 220 to "
                      "STARTTLS");
            return;
        }
        {
            char err[300];
            c->tls = fwd_tls_new(c->cfg->tls_ctx, c->fd, c->cfg->tls_name,
                                 c->cfg->tls_verify, err, sizeof err);
            if (c->tls == NULL) {
                conn_fail(c, "TLS: %s", err);
                return;
            }
        }
        c->state = ST_HANDSHAKE;
        conn_timer(c, c->cfg->command_timeout_ms);
        tls_step(c);
        return;
    case ST_ENVELOPE:
        on_envelope_reply(c);
        return;
    case ST_DATA:
        if (c->reply_code != 354) {
            char enh[16], text[FWD_REPLY_TEXT + 16];
            split_enhanced(c->reply_code, c->reply_text, enh, sizeof enh);
            snprintf(text, sizeof text, "%d %s", c->reply_code,
                     c->reply_text);
            int st = c->reply_code / 100 == 3 ? FWD_RCPT_TEMP
                                              : state_of_code(c->reply_code);
            for (size_t i = 0; i < c->job->n_rcpts; i++)
                if (c->job->rcpts[i]->state == FWD_RCPT_PENDING)
                    rcpt_set(c->job->rcpts[i], st, c->reply_code, enh, text);
            job_finish(c, c->reply_code / 100 != 3);
            return;
        }
        c->state = ST_BODY;
        c->job->data_started = 1;
        c->body_off = 0;
        c->at_line_start = 1;
        c->last_was_lf = 1;
        conn_timer(c, c->cfg->data_timeout_ms);
        if (body_fill(c) < 0 || conn_flush(c) < 0)
            return;
        break;
    case ST_BODY:
        conn_fail(c, "reply before the end of data: %d %s", c->reply_code,
                  c->reply_text);
        return;
    case ST_DOT:
        on_final_reply(c);
        return;
    case ST_RSET_AFTER:
        job_finish(c, c->reply_code / 100 == 2);
        return;
    case ST_IDLE:
        conn_fail(c, "idle");           /* 421 or junk: drop it */
        return;
    default:
        conn_fail(c, "unexpected reply %d", c->reply_code);
        return;
    }
    conn_watch(c);
}

/* Take complete reply lines out of c->in.  Returns -1 if c is gone. */
static int parse_input(fwd_conn *c)
{
    size_t off = 0;
    while (off < c->in_len) {
        char *line = c->in + off;
        char *nl = memchr(line, '\n', c->in_len - off);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - line);
        off += len + 1;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        line[len] = '\0';
        if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
            line[1] > '9' || line[2] < '0' || line[2] > '9' ||
            (len > 3 && line[3] != ' ' && line[3] != '-')) {
            conn_fail(c, "not an SMTP reply: '%.80s'", line);
            return -1;
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
                   (line[2] - '0');
        const char *text = len > 4 ? line + 4 : "";
        if (c->reply_lines == 0) {
            c->reply_code = code;
            snprintf(c->reply_text, sizeof c->reply_text, "%s", text);
        } else if (code != c->reply_code ||
                   c->reply_lines > FWD_REPLY_LINES_MAX) {
            conn_fail(c, "malformed multi-line reply");
            return -1;
        } else if (c->state != ST_EHLO) {
            size_t tl = strlen(c->reply_text);
            snprintf(c->reply_text + tl, sizeof c->reply_text - tl, " %s",
                     text);
        }
        if (c->state == ST_EHLO) {
            if (!strcasecmp(text, "PIPELINING"))
                c->pipelining = 1;
            else if (!strcasecmp(text, "STARTTLS"))
                c->starttls = 1;
            else if (!strncasecmp(text, "SIZE", 4) &&
                     (text[4] == '\0' || text[4] == ' '))
                c->size_ext = 1;
        }
        c->reply_lines++;
        if (len > 3 && line[3] == '-')
            continue;
        c->reply_lines = 0;
        /* on_reply may free c: keep what is left first */
        size_t rest = c->in_len - off;
        memmove(c->in, c->in + off, rest);
        c->in_len = rest;
        off = 0;
        on_reply(c);
        return 1;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (c->in_len >= sizeof c->in - 1) {
        conn_fail(c, "reply line too long");
        return -1;
    }
    return 0;
}

static void conn_event(fwd_conn *c, int events);

static void conn_on_event(upesi_watch *w, int events, void *arg)
{
    fwd_conn *c = arg;
    (void)w;
    c->in_event = 1;
    conn_event(c, events);
    c->in_event = 0;
    if (c->dead)
        conn_free(c);
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
            conn_fail(c, "connect: %s", strerror(err));
            return;
        }
        c->state = ST_GREETING;
        conn_timer(c, c->cfg->greeting_timeout_ms);
        conn_watch(c);
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        tls_step(c);
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
                    conn_fail(c, "TLS read: %s", err);
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
                conn_fail(c, n == 0 ? "connection closed by the downstream"
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
                int rc = parse_input(c);
                if (rc < 0 || c->dead)
                    return;
                if (rc == 0)
                    break;
                /* the 220 to STARTTLS: from here on the socket is
                 * wolfSSL's (tls_step watches it) */
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
        if (body_fill(c) < 0)
            return;
    }
    if (conn_flush(c) < 0)
        return;
    if (c->state == ST_BODY && c->out_off == c->out_len) {
        if (body_fill(c) < 0 || conn_flush(c) < 0)
            return;
    }
    conn_watch(c);
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
        if (send_envelope(c) == 0)
            conn_watch(c);
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
    conn_fail(c, "connect: %s", strerror(c->reply_code));
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
        pool_remove(p);
        p->job = job;
        job->conn = p;
        p->reused = 1;
        fwd_config_unref(p->cfg);
        p->cfg = fwd_config_ref(cfg);
        p->tls_verified &= cfg->tls_verify;    /* against p->cfg's */
        p->state = ST_ENVELOPE;
        conn_timer(p, 0);
        /* a zero timer: the envelope goes out from the loop */
        p->timer = fwd_api->timer_start(0, job_start_later, job);
        if (p->timer == NULL)
            job_start_later(job);
        return;
    }

    fwd_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        for (size_t i = 0; i < job->n_rcpts; i++)
            rcpt_set(job->rcpts[i], FWD_RCPT_TEMP, 0, "4.3.0",
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
    fwd_api->stat_add("SMTP.Forward.Connections", 1);

    c->fd = socket(c->target.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = c->fd < 0 ? errno : 0;
    if (!err && set_nonblock(c->fd) < 0)
        err = errno;
    if (!err && connect(c->fd, (struct sockaddr *)&c->target.addr,
                        c->target.addrlen) < 0 && errno != EINPROGRESS)
        err = errno;
    if (!err && (c->watch = fwd_api->fd_watch(c->fd, UPESI_WATCH_WRITE,
                                              conn_on_event, c)) == NULL)
        err = ENOMEM;
    if (err) {
        /* report from the loop, not from inside fwd_job_start */
        c->reply_code = err;
        c->timer = fwd_api->timer_start(0, connect_failed_later, c);
        if (c->timer == NULL)
            conn_fail(c, "connect: %s", strerror(err));
        return;
    }
    c->watching = UPESI_WATCH_WRITE;
    conn_timer(c, cfg->connect_timeout_ms);
}

void fwd_job_abort(fwd_job *job)
{
    fwd_conn *c = job->conn;
    if (c == NULL)
        return;
    c->job = NULL;
    job->conn = NULL;
    conn_free(c);       /* no end of data went out, or it did: either way
                           the connection is closed without more */
}

void fwd_pool_drain(void)
{
    while (fwd_pool) {
        fwd_conn *c = fwd_pool;
        fwd_pool = c->next;
        fwd_pool_count--;
        conn_free(c);
    }
}
