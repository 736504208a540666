/*
 * fwd_smtp.c - the SMTP/LMTP client's conversation: one job is one
 * transaction (MAIL, RCPTs, DATA, the message) to one downstream.  This
 * file says the commands and reads what each reply means for the
 * recipients; the socket under it is fwd_conn.c's, and which connection a
 * job runs on is fwd_pool.c's.
 *
 * A connection says EHLO (LHLO for LMTP; HELO when EHLO is refused), and
 * with PIPELINING sends MAIL and every RCPT in one write (RFC 2920),
 * otherwise one command per reply.  DATA waits until every RCPT reply is
 * in: a job with defer_all_on_temp (direct mode) sends RSET instead of
 * DATA when any recipient got a 4xx, so nothing is half-sent.  Then the
 * message (fwd_body.c): after DATA's 354 dot-stuffed, then "."; to a
 * downstream whose EHLO offers CHUNKING (RFC 3030) in BDAT chunks instead,
 * no 354 to wait for, the last "BDAT <n> LAST", pipelined when it offers
 * PIPELINING, else each chunk after the 250 to the one before
 * (ST_BDAT_WAIT).  A refused chunk ends the transaction and the
 * connection.  After the end of data (or LAST) SMTP has one final reply
 * for all accepted recipients, LMTP one per accepted recipient (RFC 2033
 * 4.2).  A BODY=BINARYMIME message goes only in BDAT, with
 * BODY=BINARYMIME, to a downstream that offers CHUNKING and BINARYMIME;
 * to any other its recipients are refused 554 5.6.3 before MAIL.
 *
 * STARTTLS (downstream_tls, RFC 3207): after EHLO, when the downstream
 * offers STARTTLS (1) or always (required), the client says STARTTLS and,
 * after the 220, runs the TLS handshake on its own socket (fwd_tls.c,
 * WANT_READ/WANT_WRITE become the events it waits for), then says EHLO
 * again and forgets what the first EHLO offered.  A downstream that does
 * not offer STARTTLS under required, or a handshake that fails (either
 * setting), fails the connection like any other error: temporary.  Unix
 * sockets are local and never use TLS.
 *
 * Fails: a reply keeps its own code for the recipients it answers (2xx
 * delivered, 5xx refused, anything else temporary; a DATA reply that is
 * 3xx but not 354 is temporary).  Input that is no SMTP reply, a
 * malformed multi-line reply or a line too long fails the connection
 * (fwd_conn_fail: temporary, naming the downstream and the stage).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "fwd_client.h"

#define FWD_REPLY_LINES_MAX 100

/* ---------------------------------------------------------------------- */
/* what a reply means for a recipient                                     */

void fwd_rcpt_set(fwd_rcpt *r, int state, int code,
                  const char *enhanced, const char *text)
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
/* ---------------------------------------------------------------------- */
/* sending                                                                */

/* MAIL FROM with what the downstream offers: SIZE, SMTPUTF8 (the job
 * never gets here without it when it needs it), DSN's RET and ENVID. */
static int put_mail(fwd_conn *c)
{
    fwd_job *job = c->job;
    char size[32] = "", ret[16], envid[512];
    /* " BODY=BINARYMIME" when the message is binary (the job never gets
     * this far without CHUNKING and BINARYMIME downstream) */
    const char *body = c->bdat && job->binarymime ? " BODY=BINARYMIME" : "";
    if (c->size_ext)
        snprintf(size, sizeof size, " SIZE=%lld", (long long)job->src.size);
    int utf8 = fwd_param_get(job->mail_params, "SMTPUTF8", ret, sizeof ret);
    int has_ret = c->dsn_ext &&
                  fwd_param_get(job->mail_params, "RET", ret, sizeof ret);
    int has_envid = c->dsn_ext && fwd_param_get(job->mail_params, "ENVID",
                                                envid, sizeof envid);
    return fwd_out_printf(c, "MAIL FROM:<%s>%s%s%s%s%s%s%s\r\n",
                          job->sender, size, body, utf8 ? " SMTPUTF8" : "",
                          has_ret ? " RET=" : "", has_ret ? ret : "",
                          has_envid ? " ENVID=" : "",
                          has_envid ? envid : "");
}

/* RCPT TO, with NOTIFY and ORCPT when the downstream offers DSN (then the
 * reports after its 250 are its to make, RFC 3461 4.1). */
static int put_rcpt(fwd_conn *c, fwd_rcpt *r)
{
    char notify[64], orcpt[512];
    int has_notify = c->dsn_ext &&
                     fwd_param_get(r->params, "NOTIFY", notify, sizeof notify);
    int has_orcpt = c->dsn_ext &&
                    fwd_param_get(r->params, "ORCPT", orcpt, sizeof orcpt);
    r->dsn_passed = c->dsn_ext;
    r->final_hop = c->target.lmtp;
    return fwd_out_printf(c, "RCPT TO:<%s>%s%s%s%s\r\n", r->addr,
                          has_notify ? " NOTIFY=" : "",
                          has_notify ? notify : "",
                          has_orcpt ? " ORCPT=" : "", has_orcpt ? orcpt : "");
}

int fwd_send_envelope(fwd_conn *c)
{
    fwd_job *job = c->job;
    char v[8];
    if (fwd_param_get(job->mail_params, "SMTPUTF8", v, sizeof v) &&
        !c->smtputf8_ext) {
        /* RFC 6531 3.2: never downgrade a message that needs SMTPUTF8;
         * nothing was said yet, the connection stays clean */
        fwd_log(job->call, UPESI_LOG_NOTICE, "%s: downstream %s does not "
                "offer SMTPUTF8: the message is not sent", job->id,
                c->target.name);
        for (size_t i = 0; i < job->n_rcpts; i++)
            if (job->rcpts[i]->state == FWD_RCPT_PENDING)
                fwd_rcpt_set(job->rcpts[i], FWD_RCPT_PERM, 550, "5.6.7",
                             "550 5.6.7 the downstream does not offer "
                             "SMTPUTF8, which this message needs");
        fwd_job_finish(c, 1);
        return -1;
    }
    /* RFC 3030: with CHUNKING the message goes byte for byte in BDAT
     * chunks, whatever line ends it holds */
    c->bdat = c->chunking;
    if (job->binarymime && !(c->chunking && c->binarymime_ext)) {
        /* RFC 3030 3: binary content only in BDAT chunks to a server that
         * offers BINARYMIME; DATA would mangle it.  Nothing was said yet,
         * the connection stays clean. */
        fwd_log(job->call, UPESI_LOG_NOTICE, "%s: downstream %s does not "
                "offer CHUNKING and BINARYMIME: the message is not sent",
                job->id, c->target.name);
        for (size_t i = 0; i < job->n_rcpts; i++)
            if (job->rcpts[i]->state == FWD_RCPT_PENDING)
                fwd_rcpt_set(job->rcpts[i], FWD_RCPT_PERM, 554, "5.6.3",
                             "554 5.6.3 the downstream does not offer "
                             "BINARYMIME, which this message needs");
        fwd_job_finish(c, 1);
        return -1;
    }
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
            rc = fwd_out_printf(c, "RSET\r\n");
        else if (k == 0)
            rc = put_mail(c);
        else
            rc = put_rcpt(c, job->rcpts[k - 1]);
        if (rc < 0) {
            fwd_conn_fail(c, "out of memory or address too long");
            return -1;
        }
    }
    fwd_conn_timer(c, c->cfg->command_timeout_ms);
    return fwd_conn_flush(c);
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
                    fwd_rcpt_set(job->rcpts[i], FWD_RCPT_TEMP, why->code,
                                 why->enhanced, text);
        }
        /* the transaction is open downstream: close it before reuse */
        if (fwd_out_printf(c, "RSET\r\n") < 0) {
            fwd_conn_fail(c, "out of memory");
            return;
        }
        c->state = ST_RSET_AFTER;
        fwd_conn_timer(c, c->cfg->command_timeout_ms);
        if (fwd_conn_flush(c) == 0)
            fwd_conn_watch(c);
        return;
    }
    if (c->bdat) {                  /* no 354 to wait for */
        c->state = ST_BODY;
        job->data_started = 1;
        c->body_off = 0;
        c->bdat_sent = c->bdat_acked = 0;
        fwd_conn_timer(c, c->cfg->data_timeout_ms);
        if (fwd_body_fill(c) < 0 || fwd_conn_flush(c) < 0)
            return;
        fwd_conn_watch(c);
        return;
    }
    if (fwd_out_printf(c, "DATA\r\n") < 0) {
        fwd_conn_fail(c, "out of memory");
        return;
    }
    c->state = ST_DATA;
    fwd_conn_timer(c, c->cfg->command_timeout_ms);
    if (fwd_conn_flush(c) == 0)
        fwd_conn_watch(c);
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
            fwd_conn_fail(c, "RSET refused: %s", text);
            return;
        }
    } else {
        size_t k = idx - (size_t)c->has_rset;
        if (k == 0) {                       /* MAIL */
            if (c->reply_code / 100 != 2) {
                for (size_t i = 0; i < job->n_rcpts; i++)
                    fwd_rcpt_set(job->rcpts[i], state_of_code(c->reply_code),
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
                    fwd_rcpt_set(r, state_of_code(c->reply_code),
                                 c->reply_code, enh, text);
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
        int rc;
        if (k > 0)
            rc = put_rcpt(c, job->rcpts[k - 1]);
        else
            rc = put_mail(c);
        if (rc < 0) {
            fwd_conn_fail(c, "out of memory");
            return;
        }
        fwd_conn_timer(c, c->cfg->command_timeout_ms);
        if (fwd_conn_flush(c) == 0)
            fwd_conn_watch(c);
    }
}

/* A reply to a BDAT chunk that is not the last.  1 when it was one (c
 * may be gone), 0 when this reply is for the LAST chunk.  A refused chunk
 * fails the transaction (RFC 3030 2: no more chunks may follow); the
 * connection is closed rather than reused, the downstream's view of the
 * transaction being unknown. */
static int on_chunk_reply(fwd_conn *c)
{
    if (c->bdat_acked + 1 >= c->bdat_sent && c->state == ST_DOT)
        return 0;
    c->bdat_acked++;
    if (c->reply_code / 100 == 2) {
        if (c->state == ST_BDAT_WAIT) {
            c->state = ST_BODY;
            fwd_conn_timer(c, c->cfg->data_timeout_ms);
            if (fwd_body_fill(c) < 0 || fwd_conn_flush(c) < 0)
                return 1;
        }
        fwd_conn_watch(c);
        return 1;
    }
    fwd_job *job = c->job;
    char enh[16], text[FWD_REPLY_TEXT + 16];
    split_enhanced(c->reply_code, c->reply_text, enh, sizeof enh);
    snprintf(text, sizeof text, "%d %s", c->reply_code, c->reply_text);
    for (size_t i = 0; i < job->n_rcpts; i++)
        if (job->rcpts[i]->state == FWD_RCPT_PENDING)
            fwd_rcpt_set(job->rcpts[i], state_of_code(c->reply_code),
                         c->reply_code, enh, text);
    fwd_job_finish(c, 0);
    return 1;
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
                fwd_rcpt_set(job->rcpts[i], st, c->reply_code, enh, text);
        c->final_seen = c->n_accepted;
    } else {
        /* LMTP: one reply per accepted recipient, in RCPT order */
        size_t seen = 0;
        for (size_t i = 0; i < job->n_rcpts; i++) {
            fwd_rcpt *r = job->rcpts[i];
            if (!r->accepted)
                continue;
            if (seen++ == c->final_seen) {
                fwd_rcpt_set(r, st, c->reply_code, enh, text);
                break;
            }
        }
        c->final_seen++;
    }
    if (c->final_seen < c->n_accepted) {
        fwd_conn_timer(c, c->cfg->data_timeout_ms);
        return;
    }
    fwd_api->stat_add(fwd_ctx, "SMTP.Forward.Transactions", 1);
    fwd_job_finish(c, 1);
}

static void send_hello(fwd_conn *c, int helo)
{
    const char *name = c->cfg->helo[0] ? c->cfg->helo : fwd_api->hostname(fwd_ctx);
    if (name == NULL || name[0] == '\0')
        name = "localhost";
    fwd_out_printf(c, "%s %s\r\n", c->target.lmtp ? "LHLO" : helo ? "HELO"
                                                                   : "EHLO",
                   name);
    /* what the downstream offers comes with this reply (after STARTTLS
     * the earlier offer is forgotten, RFC 3207 4.2) */
    c->pipelining = c->size_ext = c->starttls = 0;
    c->smtputf8_ext = c->dsn_ext = 0;
    c->chunking = c->binarymime_ext = 0;
    c->state = helo ? ST_HELO : ST_EHLO;
    fwd_conn_timer(c, c->cfg->command_timeout_ms);
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
    return fwd_send_envelope(c);
}

/* No TLS where it must be, or a STARTTLS reply that makes no sense: QUIT,
 * then a temporary failure. */
static void tls_refuse(fwd_conn *c, const char *why)
{
    fwd_send_quit(c);
    fwd_conn_fail(c, "%s%s", why, c->cfg->tls == FWD_TLS_REQUIRED
                                      ? " (downstream_tls = required)" : "");
}

/* Drive the handshake.  When it is done: log, EHLO again.  -1 if c
 * failed. */
int fwd_starttls_step(fwd_conn *c)
{
    char err[300];
    int want;
    int rc = fwd_tls_handshake(c->tls, &want, err, sizeof err);
    if (rc < 0) {
        fwd_conn_fail(c, "TLS handshake: %s", err);
        return -1;
    }
    if (rc == 0) {
        c->tls_want = want;
        fwd_conn_watch(c);
        return 0;
    }
    c->tls_want = 0;
    c->tls_verified = c->cfg->tls_verify;
    fwd_job *job = c->job;
    fwd_log(job ? job->call : NULL, UPESI_LOG_INFO,
                 "%s: downstream %s: TLS %s %s (%s%s)",
                 job ? job->id : "-", c->target.name, fwd_tls_version(c->tls),
                 fwd_tls_cipher(c->tls),
                 c->tls_verified ? "certificate verified for "
                                 : "certificate not verified",
                 c->tls_verified ? c->cfg->tls_name : "");
    fwd_api->stat_add(fwd_ctx, "SMTP.Forward.TLS", 1);
    send_hello(c, 0);
    if (fwd_conn_flush(c) < 0)
        return -1;
    fwd_conn_watch(c);
    return 0;
}

/* One complete reply is in c->reply_code / reply_text. */
static void on_reply(fwd_conn *c)
{
    switch (c->state) {
    case ST_GREETING:
        if (c->reply_code != 220) {
            fwd_conn_fail(c, "greeting: %d %s", c->reply_code, c->reply_text);
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
            fwd_conn_fail(c, "%s refused: %d %s", c->state == ST_EHLO
                              ? (c->target.lmtp ? "LHLO" : "EHLO") : "HELO",
                          c->reply_code, c->reply_text);
            return;
        }
        if (tls_wanted(c)) {
            if (c->state == ST_EHLO && c->starttls) {
                fwd_out_printf(c, "STARTTLS\r\n");
                c->state = ST_STARTTLS;
                fwd_conn_timer(c, c->cfg->command_timeout_ms);
                if (fwd_conn_flush(c) < 0)
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
            fwd_log(c->job ? c->job->call : NULL, UPESI_LOG_NOTICE,
                         "%s: downstream %s: %s; going on without TLS",
                         c->job ? c->job->id : "-", c->target.name, why);
            if (after_hello(c) < 0)
                return;
            break;
        }
        if (c->in_len > 0) {
            /* plain text after the 220 would be taken as if it came
             * inside TLS (CVE-2011-0411, the client side) */
            fwd_conn_fail(c, "the downstream sent more after its 220 to "
                          "STARTTLS");
            return;
        }
        {
            char err[300];
            c->tls = fwd_tls_new(c->cfg->tls_ctx, c->fd, c->cfg->tls_name,
                                 c->cfg->tls_verify, err, sizeof err);
            if (c->tls == NULL) {
                fwd_conn_fail(c, "TLS: %s", err);
                return;
            }
        }
        c->state = ST_HANDSHAKE;
        fwd_conn_timer(c, c->cfg->command_timeout_ms);
        fwd_starttls_step(c);
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
                    fwd_rcpt_set(c->job->rcpts[i], st, c->reply_code, enh,
                                 text);
            fwd_job_finish(c, c->reply_code / 100 != 3);
            return;
        }
        c->state = ST_BODY;
        c->job->data_started = 1;
        c->body_off = 0;
        c->at_line_start = 1;
        c->pending_cr = 0;
        fwd_conn_timer(c, c->cfg->data_timeout_ms);
        if (fwd_body_fill(c) < 0 || fwd_conn_flush(c) < 0)
            return;
        break;
    case ST_BODY:
    case ST_BDAT_WAIT:
        if (c->bdat && c->bdat_acked < c->bdat_sent) {
            on_chunk_reply(c);
            return;
        }
        fwd_conn_fail(c, "reply before the end of data: %d %s",
                      c->reply_code, c->reply_text);
        return;
    case ST_DOT:
        if (c->bdat && on_chunk_reply(c))
            return;
        on_final_reply(c);
        return;
    case ST_RSET_AFTER:
        fwd_job_finish(c, c->reply_code / 100 == 2);
        return;
    case ST_IDLE:
        fwd_conn_fail(c, "idle");           /* 421 or junk: drop it */
        return;
    case ST_QUIT:                           /* the 221 (fwd_pool_stop) */
        fwd_conn_free(c);
        return;
    default:
        fwd_conn_fail(c, "unexpected reply %d", c->reply_code);
        return;
    }
    fwd_conn_watch(c);
}

/* Take complete reply lines out of c->in.  Returns -1 if c is gone. */
int fwd_parse_input(fwd_conn *c)
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
            fwd_conn_fail(c, "not an SMTP reply: '%.80s'", line);
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
            fwd_conn_fail(c, "malformed multi-line reply");
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
            else if (!strcasecmp(text, "SMTPUTF8"))
                c->smtputf8_ext = 1;
            else if (!strcasecmp(text, "DSN"))
                c->dsn_ext = 1;
            else if (!strcasecmp(text, "CHUNKING"))
                c->chunking = 1;
            else if (!strcasecmp(text, "BINARYMIME"))
                c->binarymime_ext = 1;
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
        on_reply(c);
        return 1;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (c->in_len >= sizeof c->in - 1) {
        fwd_conn_fail(c, "reply line too long");
        return -1;
    }
    return 0;
}
