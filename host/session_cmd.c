/*
 * session_cmd.c - the SMTP commands of a session (RFC 5321 4.1): EHLO and
 * HELO, MAIL, RCPT, DATA (and what follows the end of data: data_post,
 * message actions, queue), VRFY, and commands the host does not know.
 * Each runs its hook chain and answers from the verdict.  A client that
 * sends more after DATA before its reply is an improper pipeliner
 * (improper_pipelining_action), and what follows a refused DATA is read
 * to its end of data and thrown away, never run as commands.
 *
 * Fails: every bad command is answered (5xx/4xx) and counts towards
 * error_limit.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include "dns.h"
#include "hooks.h"
#include "log.h"
#include "session.h"
#include "session_int.h"
#include "smtp_ext.h"
#include "stats.h"
#include "tls.h"
#include "version.h"

/* A hard cap on recipients a transaction may hold (RFC 5321 4.5.3.1.8
 * asks for at least 100); max_rcpt is the policy, this is the guard. */
#define UP_MAX_RCPTS 1000

/* ---------------------------------------------------------------------- */
/* commands                                                                */

/* The AUTH line a plugin asked for, cut to the mechanisms the host speaks
 * (in the plugin's order) into out; the bits in *offered.  "" when none. */
static void ehlo_auth_line(const char *line, char *out, size_t outlen,
                           unsigned *offered)
{
    size_t n = (size_t)snprintf(out, outlen, "AUTH");
    const char *p = line + 4;
    *offered = 0;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        unsigned bit = len == 5 && !strncasecmp(p, "PLAIN", 5) ? UP_AUTH_PLAIN
                     : len == 5 && !strncasecmp(p, "LOGIN", 5) ? UP_AUTH_LOGIN
                                                               : 0;
        if (bit && !(*offered & bit) && n + 7 < outlen) {
            n += (size_t)snprintf(out + n, outlen - n, " %s",
                                  bit == UP_AUTH_PLAIN ? "PLAIN" : "LOGIN");
            *offered |= bit;
        }
        p += len;
    }
    if (*offered == 0)
        out[0] = '\0';
}

/* Plugins' EHLO lines (api->ehlo_extension), appended at text + n. */
static int ehlo_ext_append(up_session *s, char *text, size_t size, int n)
{
    s->auth_offered = 0;
    for (size_t i = 0; i < s->n_ehlo_ext; i++) {
        const char *line = s->ehlo_ext[i];
        char auth[64];
        if (!strncasecmp(line, "AUTH", 4) && (line[4] == ' ' ||
                                              line[4] == '\0')) {
            ehlo_auth_line(line, auth, sizeof auth, &s->auth_offered);
            if (auth[0] == '\0')
                continue;
            line = auth;
        }
        if ((size_t)n + strlen(line) + 2 >= size)
            break;
        n += snprintf(text + n, size - (size_t)n, "\n%s", line);
    }
    return n;
}

void session_ehlo_ext_clear(up_session *s)
{
    for (size_t i = 0; i < s->n_ehlo_ext; i++)
        free(s->ehlo_ext[i]);
    s->n_ehlo_ext = 0;
    s->auth_offered = 0;
}

static void ehlo_reply(up_session *s)
{
    char text[4096];
    int n = snprintf(text, sizeof text, "%s Hello %s [%s]", s->cfg->hostname,
                     s->helo, s->remote_ip);
    if (!s->info.esmtp) {
        up_session_reply(s, 250, NULL, text);
        return;
    }
    if (s->cfg->pipelining)
        n += snprintf(text + n, sizeof text - (size_t)n, "\nPIPELINING");
    if (s->cfg->max_message_size)
        n += snprintf(text + n, sizeof text - (size_t)n, "\nSIZE %llu",
                      (unsigned long long)s->cfg->max_message_size);
    else
        n += snprintf(text + n, sizeof text - (size_t)n, "\nSIZE");
    if (s->cfg->vrfy)
        n += snprintf(text + n, sizeof text - (size_t)n, "\nVRFY");
    if (s->cfg->tls && !s->tls)
        n += snprintf(text + n, sizeof text - (size_t)n, "\nSTARTTLS");
    if (s->xclient_ok)          /* only to hosts that may use it */
        n += snprintf(text + n, sizeof text - (size_t)n,
                      "\nXCLIENT NAME ADDR PORT PROTO HELO LOGIN");
    if (s->cfg->dsn)
        n += snprintf(text + n, sizeof text - (size_t)n, "\nDSN");
    n = ehlo_ext_append(s, text, sizeof text - 64, n);
    snprintf(text + n, sizeof text - (size_t)n,
             "\n8BITMIME\nENHANCEDSTATUSCODES\nCHUNKING\nBINARYMIME%s",
             s->cfg->smtputf8 ? "\nSMTPUTF8" : "");
    up_session_reply(s, 250, NULL, text);
}

static void on_helo_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (session_is_denial(v)) {
        free(s->helo);
        s->helo = NULL;
        s->info.helo = NULL;
        session_ehlo_ext_clear(s);
        session_reply_denial(s, UPESI_HOOK_HELO, v, r, "HELO");
    } else if (v == UPESI_OK && r->text) {
        session_reply_ok(s, r, 250, NULL, NULL);
    } else {
        ehlo_reply(s);
    }
    session_continue(s);
}

void session_cmd_helo(up_session *s, int esmtp)
{
    const char *name = s->cmd.arg;
    if (*name == '\0' || strchr(name, ' ')) {
        up_session_reply(s, 501, "5.5.4", esmtp ? "Syntax: EHLO hostname" :
                                                  "Syntax: HELO hostname");
        return;
    }
    up_parse_error err;
    if (up_helo_check(name, s->cfg->helo_strict, &err) != 0) {
        /* up_log writes control bytes as \xNN */
        up_log(s->id, UPESI_LOG_NOTICE, "%s refused: %s: %.300s",
               esmtp ? "EHLO" : "HELO", err.text, name);
        up_session_reply(s, err.code, err.enhanced, err.text);
        return;
    }
    session_txn_reset(s);
    session_ehlo_ext_clear(s);
    free(s->helo);
    s->helo = strdup(name);
    s->info.helo = s->helo;
    s->info.esmtp = esmtp;
    up_hook_run(s, UPESI_HOOK_HELO, on_helo_done);
}

static void on_mail_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (session_is_denial(v)) {
        session_reply_denial(s, UPESI_HOOK_MAIL, v, r, "sender");
    } else {
        /* BODY only when BINARYMIME: queue_forward must know it to pick
         * a downstream that can take it (docs/spool-format.md); 7BIT and
         * 8BITMIME leave the envelope at version 1 as before */
        static const char *const keep[] = { "SMTPUTF8", "RET", "ENVID",
                                            NULL };
        static const char *const keep_binary[] = { "SMTPUTF8", "RET",
                                                   "ENVID", "BODY", NULL };
        s->have_mail = 1;
        const char *body = up_path_param(&s->path, "BODY");
        s->body_binary = body && !strcasecmp(body, "BINARYMIME");
        if (body)               /* RFC 3030, RFC 6152: for the queue */
            up_notes_set(&s->txn_notes, "mail.body", s->body_binary
                         ? "BINARYMIME" : !strcasecmp(body, "8BITMIME")
                         ? "8BITMIME" : "7BIT");
        s->smtputf8 = up_path_param(&s->path, "SMTPUTF8") != NULL;
        s->sender = up_packed_new(s->path.mailbox, &s->path,
                                  s->body_binary ? keep_binary : keep);
        if (s->sender == NULL) {
            s->have_mail = 0;
            up_session_reply(s, 451, "4.3.0", "Out of memory");
        } else {
            char text[UP_MAX_ADDRESS + 32];
            up_str_join(text, sizeof text, "Sender <", s->sender, "> ok",
                             (const char *)NULL);
            session_reply_ok(s, r, 250, "2.1.0", text);
        }
    }
    session_continue(s);
}

/* Host-level checks of MAIL parameters we advertise. */
static int check_mail_params(up_session *s)
{
    const char *why = NULL;
    for (int i = 0; i < s->path.nparams; i++) {
        const up_param *p = &s->path.params[i];
        if (!strcmp(p->keyword, "SIZE")) {
            char *end;
            errno = 0;
            unsigned long long size = strtoull(p->value, &end, 10);
            if (errno || end == p->value || *end) {
                up_session_reply(s, 501, "5.5.4", "Bad SIZE parameter");
                return -1;
            }
            if (s->cfg->max_message_size &&
                size > s->cfg->max_message_size) {
                up_session_reply(s, 552, "5.3.4", "Message size exceeds "
                                 "fixed maximum message size");
                return -1;
            }
        } else if (!strcmp(p->keyword, "AUTH") && s->auth_offered) {
            /* RFC 4954 5: accepted; upesi does not pass it on, so its
             * value is not trusted either */
        } else if (!strcmp(p->keyword, "BODY")) {
            if (strcasecmp(p->value, "7BIT") &&
                strcasecmp(p->value, "8BITMIME") &&
                strcasecmp(p->value, "BINARYMIME")) {
                up_session_reply(s, 501, "5.5.4", "Unsupported BODY type");
                return -1;
            }
        } else if (!strcmp(p->keyword, "SMTPUTF8") && s->cfg->smtputf8) {
            if (p->value[0]) {  /* RFC 6531 3.4: no value */
                up_session_reply(s, 501, "5.5.4", "Bad SMTPUTF8 "
                                 "parameter: it takes no value");
                return -1;
            }
        } else if (!strcmp(p->keyword, "RET") && s->cfg->dsn) {
            if (up_dsn_ret(p->value, &why) != 0)
                goto bad_dsn;
        } else if (!strcmp(p->keyword, "ENVID") && s->cfg->dsn) {
            if (up_dsn_envid(p->value, &why) != 0)
                goto bad_dsn;
        } else {
            session_reply_fmt(s, 555, "5.5.4", "Unsupported parameter %s",
                              p->keyword);
            return -1;
        }
    }
    return 0;
bad_dsn:
    up_session_reply(s, 501, "5.5.4", why);
    return -1;
}

/* RCPT parameters: DSN's NOTIFY and ORCPT (RFC 3461 4.1, 4.2). */
static int check_rcpt_params(up_session *s)
{
    const char *why = NULL;
    if (!s->info.esmtp && s->path.nparams) {
        up_session_reply(s, 555, "5.5.4", "Parameters need EHLO");
        return -1;
    }
    for (int i = 0; i < s->path.nparams; i++) {
        const up_param *p = &s->path.params[i];
        unsigned bits;
        if (!strcmp(p->keyword, "NOTIFY") && s->cfg->dsn) {
            if (up_dsn_notify(p->value, &bits, &why) != 0)
                goto bad;
        } else if (!strcmp(p->keyword, "ORCPT") && s->cfg->dsn) {
            if (up_dsn_orcpt(p->value, s->smtputf8, &why) != 0)
                goto bad;
        } else {
            session_reply_fmt(s, 555, "5.5.4", "Unsupported parameter %s",
                              p->keyword);
            return -1;
        }
    }
    return 0;
bad:
    up_session_reply(s, 501, "5.5.4", why);
    return -1;
}

static int parse_path(up_session *s, int is_rcpt)
{
    up_parse_error err;
    if (up_path_parse(s->cmd.arg, is_rcpt, &s->path, &err) != 0) {
        up_session_reply(s, err.code, err.enhanced, err.text);
        return -1;
    }
    if (!s->path.local_8bit)
        return 0;
    /* RFC 6531 3.4: a UTF-8 address needs SMTPUTF8 on this MAIL (or the
     * transaction's) */
    int utf8 = s->cfg->smtputf8 && s->info.esmtp &&
               (is_rcpt ? s->smtputf8
                        : up_path_param(&s->path, "SMTPUTF8") != NULL);
    if (!utf8) {
        up_session_reply(s, 553, "5.6.7", s->cfg->smtputf8
                         ? "Non-ASCII address requires SMTPUTF8 on MAIL "
                           "FROM"
                         : "Non-ASCII address requires SMTPUTF8, which "
                           "this server does not offer");
        return -1;
    }
    const char *mb = s->path.mailbox;
    if (!up_utf8_valid(mb, strlen(mb))) {
        up_session_reply(s, 553, "5.6.7", is_rcpt
                         ? "Recipient address is not well-formed UTF-8"
                         : "Sender address is not well-formed UTF-8");
        return -1;
    }
    const char *domain = up_mailbox_domain(mb);
    char alabel[300];
    if (*domain && up_domain_to_ascii(domain, alabel, sizeof alabel) != 0) {
        up_session_reply(s, 553, is_rcpt ? "5.1.2" : "5.1.8", is_rcpt
                         ? "Recipient domain is not a valid "
                           "internationalized domain name (IDNA2008)"
                         : "Sender domain is not a valid "
                           "internationalized domain name (IDNA2008)");
        return -1;
    }
    return 0;
}

void session_cmd_mail(up_session *s)
{
    if (s->helo == NULL) {
        up_session_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
        return;
    }
    if (s->cfg->require_tls && !s->info.tls) {
        up_session_reply(s, 530, "5.7.0", "Must issue a STARTTLS command "
                         "first");
        return;
    }
    if (s->info.submission && !s->info.authenticated) {
        up_session_reply(s, 530, "5.7.0", "Authentication required");
        return;
    }
    if (s->have_mail) {
        up_session_reply(s, 503, "5.5.1", "Error: nested MAIL command");
        return;
    }
    if (parse_path(s, 0) != 0)
        return;
    if (!s->info.esmtp && s->path.nparams) {
        up_session_reply(s, 555, "5.5.4", "Parameters need EHLO");
        return;
    }
    if (check_mail_params(s) != 0)
        return;
    if (s->reject_code) {
        up_log(s->id, UPESI_LOG_INFO, "sender <%s> rejected: connection "
               "refused earlier: %d %s", s->path.mailbox, s->reject_code,
               s->reject_text ? s->reject_text : "");
        up_session_reply(s, s->reject_code, s->reject_enhanced,
                         s->reject_text ? s->reject_text : "Access denied");
        return;
    }
    up_hook_run(s, UPESI_HOOK_MAIL, on_mail_done);
}

static void on_rcpt_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (session_is_denial(v)) {
        session_note_count(s, "rcpt.rejected");
        session_reply_denial(s, UPESI_HOOK_RCPT, v, r, "recipient");
        session_continue(s);
        return;
    }
    if (v == UPESI_CONT && !up_config_is_local(s->cfg, s->path.mailbox)) {
        up_reply relay = { 550, "5.7.1", "Relaying denied", NULL };
        session_note_count(s, "rcpt.rejected");
        session_reply_denial(s, UPESI_HOOK_RCPT, UPESI_DENY, &relay,
                             "recipient");
        session_continue(s);
        return;
    }
    if (s->n_rcpts == s->cap_rcpts) {
        size_t cap = s->cap_rcpts ? s->cap_rcpts * 2 : 4;
        char **grown = realloc(s->rcpts, cap * sizeof *grown);
        if (grown == NULL) {
            up_session_reply(s, 451, "4.3.0", "Out of memory");
            session_continue(s);
            return;
        }
        s->rcpts = grown;
        s->cap_rcpts = cap;
    }
    static const char *const keep[] = { "NOTIFY", "ORCPT", NULL };
    s->rcpts[s->n_rcpts] = up_packed_new(s->path.mailbox, &s->path, keep);
    if (s->rcpts[s->n_rcpts] == NULL) {
        up_session_reply(s, 451, "4.3.0", "Out of memory");
    } else {
        s->n_rcpts++;
        char text[UP_MAX_ADDRESS + 32];
        up_str_join(text, sizeof text, "Recipient <", s->path.mailbox,
                         "> ok", (const char *)NULL);
        session_reply_ok(s, r, 250, "2.1.5", text);
    }
    session_continue(s);
}

void session_cmd_rcpt(up_session *s)
{
    if (!s->have_mail) {
        up_session_reply(s, 503, "5.5.1", "Error: need MAIL command");
        return;
    }
    if (parse_path(s, 1) != 0)
        return;
    if (check_rcpt_params(s) != 0)
        return;
    if (s->n_rcpts >= UP_MAX_RCPTS) {
        up_session_reply(s, 452, "4.5.3", "Error: too many recipients");
        return;
    }
    up_hook_run(s, UPESI_HOOK_RCPT, on_rcpt_done);
}

/* -- DATA */

static int data_sink(void *arg, const char *buf, size_t len)
{
    up_session *s = arg;
    if (s->data_too_big)
        return 0;
    if (s->cfg->max_message_size &&
        s->msg.data_len + len > s->cfg->max_message_size) {
        s->data_too_big = 1;
        return 0;
    }
    return up_message_append(&s->msg, buf, len);
}

static void add_received(up_session *s)
{
    char date[64];
    up_rfc5322_date(date, sizeof date);
    /* RFC 3848: ESMTPA / ESMTPSA after a successful AUTH */
    const char *proto = s->info.esmtp
        ? (s->info.tls ? (s->info.authenticated ? "ESMTPSA" : "ESMTPS")
                       : (s->info.authenticated ? "ESMTPA" : "ESMTP"))
        : (s->info.tls ? "SMTPS" : "SMTP");
    const char *version = s->cfg->received_version
                              ? " (upesi " UPESI_VERSION ")" : "";
    char tls[256] = "";
    if (s->info.tls && s->info.tls_version)
        snprintf(tls, sizeof tls, "\r\n\t(using %s with cipher %s)",
                 s->info.tls_version,
                 s->info.tls_cipher ? s->info.tls_cipher : "unknown");
    const char *helo = s->helo ? s->helo : "";
    const char *for_open = s->n_rcpts == 1 ? "\r\n\tfor <" : "";
    const char *for_rcpt = s->n_rcpts == 1 ? s->rcpts[0] : "";
    const char *for_close = s->n_rcpts == 1 ? ">" : "";
    /* "Received: from %s (unknown [%s])%s\r\n\tby %s%s with %s id %s%s;
     * %s\r\n", joined by hand: once a message, and asprintf was most of
     * the cost of the end of data */
    size_t size = strlen(helo) + strlen(s->remote_ip) + strlen(tls) +
                  strlen(s->cfg->hostname) + strlen(version) +
                  strlen(s->queue_id) + strlen(for_rcpt) + strlen(date) + 80;
    char *text = malloc(size);
    if (text == NULL)
        return;
    up_str_join(text, size, "Received: from ", helo, " (unknown [",
                     s->remote_ip, "])", tls, "\r\n\tby ", s->cfg->hostname,
                     version, " with ", proto, " id ", s->queue_id, for_open,
                     for_rcpt, for_close, "; ", date, "\r\n",
                     (const char *)NULL);
    if (up_message_set_received(&s->msg, text) != 0)
        s->msg.error = ENOMEM;
    free(text);
}

void session_message_done(up_session *s, int accepted)
{
    up_stats_add(accepted ? "SMTP.Messages.Accepted" :
                            "SMTP.Messages.Rejected", 1);
    if (accepted) {
        s->n_messages++;
        if (s->info.tls)
            up_stats_add("SMTP.Messages.TLS", 1);
    }
    session_txn_reset(s);
}

static void on_queue_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (v == UPESI_OK) {
        char text[128];
        up_str_join(text, sizeof text, "Ok: queued as ", s->queue_id,
                         (const char *)NULL);
        up_log(s->id, UPESI_LOG_INFO, "queued %s from=<%s> nrcpt=%zu "
               "size=%lld by %s", s->queue_id, s->sender, s->n_rcpts,
               (long long)up_message_size(&s->msg),
               r->plugin ? r->plugin : "host");
        session_reply_ok(s, r, 250, "2.0.0", text);
        session_message_done(s, 1);
    } else if (v == UPESI_CONT) {
        up_log(s->id, UPESI_LOG_ERR, "message %s not queued: no queue "
               "plugin accepted it (add queue_spool to conf/plugins)",
               s->queue_id);
        up_session_reply(s, 451, "4.3.0", "Error: no queue configured");
        session_message_done(s, 0);
    } else {
        session_reply_denial(s, UPESI_HOOK_QUEUE, v, r, "message");
        session_message_done(s, 0);
    }
    session_continue(s);
}

/* The message actions' files are written (host/actions.c): deliver,
 * or answer for a message that is not delivered. */
static void on_actions_done(up_session *s, int err)
{
    s->busy = 0;
    if (err) {
        int full = err == ENOSPC || err == EDQUOT;
        up_session_reply(s, full ? 452 : 451, full ? "4.3.1" : "4.3.0",
                         full ? "Insufficient system storage" :
                                "Error: local error in processing");
        session_message_done(s, 0);
    } else if (s->actions.disposition == UP_DISP_DELIVER) {
        up_hook_run(s, UPESI_HOOK_QUEUE, on_queue_done);
        return;
    } else {
        char text[128];
        up_str_join(text, sizeof text, "Ok: queued as ", s->queue_id,
                         (const char *)NULL);
        up_session_reply(s, 250, "2.0.0", text);
        session_message_done(s, 1);
    }
    session_continue(s);
}

static void on_data_post_done(up_session *s, upesi_verdict v,
                              const up_reply *r)
{
    if (session_is_denial(v)) {
        session_reply_denial(s, UPESI_HOOK_DATA_POST, v, r, "message");
        session_message_done(s, 0);
        session_continue(s);
        return;
    }
    if (s->actions.disposition == UP_DISP_REJECT) {
        up_reply reject = { 550, "5.7.1", s->actions.reason,
                            s->actions.by };
        session_reply_denial(s, UPESI_HOOK_DATA_POST, UPESI_DENY, &reject,
                             "message");
        session_message_done(s, 0);
        session_continue(s);
        return;
    }
    s->busy = 1;                /* until the actions' files are written */
    up_actions_run(s, on_actions_done);
}

void session_data_end(up_session *s)
{
    s->state = UP_ST_COMMAND;
    session_data_deadline(s, 0);
    if (s->data_discard) {
        s->data_discard = 0;
        up_log(s->id, UPESI_LOG_NOTICE, "improper pipelining: threw away "
               "%llu bytes sent as the content of a refused DATA",
               (unsigned long long)s->data.bytes_out);
        return;                 /* the refusal was the answer */
    }
    if (s->data.bare_lf || s->data.bare_cr)
        up_notes_set(&s->txn_notes, "data.bare_line_ends", "1");
    if (s->data_too_big) {
        session_message_end(s);         /* 552 */
        return;
    }
    if (s->data.nul_bytes && !s->cfg->allow_nul) {
        /* RFC 5321 4.5.2 and RFC 6152 allow no NUL in DATA; a downstream
         * that drops NULs could read "\0." as the end of data */
        up_stats_add("SMTP.Messages.NUL", 1);
        up_log(s->id, UPESI_LOG_NOTICE, "message %s rejected: %llu NUL "
               "bytes in the data (allow_nul = 0)", s->queue_id,
               (unsigned long long)s->data.nul_bytes);
        up_session_reply(s, 554, "5.6.0", "Error: message contains NUL "
                         "bytes");
        session_message_done(s, 0);
        return;
    }
    session_message_end(s);
}

/* The content is in (DATA's end of data, or BDAT LAST): refuse a message
 * that went over max_message_size, else the Received field, data_post,
 * the message actions and the queue. */
void session_message_end(up_session *s)
{
    if (s->data_too_big) {
        up_log(s->id, UPESI_LOG_INFO, "message %s rejected: larger than "
               "max_message_size %llu", s->queue_id,
               (unsigned long long)s->cfg->max_message_size);
        up_session_reply(s, 552, "5.3.4", "Message size exceeds fixed "
                         "maximum message size");
        session_message_done(s, 0);
        return;
    }
    add_received(s);
    if (s->msg.error) {
        up_log(s->id, UPESI_LOG_ERR, "message %s: cannot store: %s",
               s->queue_id, strerror(s->msg.error));
        up_session_reply(s, s->msg.error == ENOSPC ? 452 : 451,
                         s->msg.error == ENOSPC ? "4.3.1" : "4.3.0",
                         s->msg.error == ENOSPC ? "Insufficient system "
                         "storage" : "Error: local error in processing");
        session_message_done(s, 0);
        return;
    }
    up_hook_run(s, UPESI_HOOK_DATA_POST, on_data_post_done);
}

/* -- improper pipelining: RFC 2920 3.1, DATA ends a command group; the
 * client must wait for its reply (354 or a refusal) before it says more.
 * Bytes already waiting when DATA is answered were sent too early: as
 * content they must not become a message without a 354, and after a
 * refusal they must not run as commands (issue: a RCPT in them joined the
 * open transaction).  Postfix's smtpd_forbid_unauth_pipelining. */

static int data_discard_sink(void *arg, const char *buf, size_t len)
{
    (void)arg;
    (void)buf;
    (void)len;
    return 0;
}

/* DATA was refused: what the client pipelined after it is read up to its
 * end of data and thrown away, never run as commands. */
static void data_refused(up_session *s)
{
    if (!s->data_pipelined || s->state == UP_ST_CLOSING)
        return;
    s->data_discard = 1;
    s->state = UP_ST_DATA;
    session_data_deadline(s, 1);    /* thrown away, but not for ever */
    up_data_init(&s->data, data_discard_sink, s);
}

/* Before DATA is answered: 1 when improper_pipelining_action answered it
 * (refused, or closed the session); 0 to answer DATA as usual. */
static int data_sync(up_session *s)
{
    size_t pending;
    up_lines_pending(&s->lines, &pending);
    pending += s->stash_len;
    if (s->data_pipelined || pending == 0)
        return 0;
    s->data_pipelined = 1;
    up_stats_add("SMTP.Command.Invalid", 1);
    up_stats_add("SMTP.Sessions.ImproperPipelining", 1);
    up_notes_set(&s->conn_notes, "improper_pipelining", "1");
    up_log(s->id, UPESI_LOG_NOTICE, "improper pipelining: %zu bytes sent "
           "after DATA before its reply", pending);
    static const char text[] = "Error: SMTP protocol synchronization: "
                               "sent more after DATA before its reply";
    switch (s->cfg->improper_pipelining_action) {
    case UP_PIPELINING_DROP:
        up_session_reply(s, 554, "5.5.0", text);
        session_close(s, "improper pipelining");
        return 1;
    case UP_PIPELINING_REJECT:
        if (s->reject_code == 0) {      /* every later MAIL, too */
            s->reject_code = 554;
            snprintf(s->reject_enhanced, sizeof s->reject_enhanced, "5.5.0");
            s->reject_text = strdup(text);
        }
        session_txn_reset(s);
        up_session_reply(s, 554, "5.5.0", text);
        data_refused(s);
        return 1;
    default:
        return 0;
    }
}

static void on_data_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (data_sync(s)) {         /* sent more while the hook ran */
        session_continue(s);
        return;
    }
    if (session_is_denial(v)) {
        session_reply_denial(s, UPESI_HOOK_DATA, v, r, "DATA");
        data_refused(s);
    } else {
        up_session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
        s->state = UP_ST_DATA;
        session_data_deadline(s, 1);
        up_data_init(&s->data, data_sink, s);
    }
    session_continue(s);
}

void session_cmd_data(up_session *s)
{
    s->data_pipelined = 0;
    if (data_sync(s))
        return;
    if (!s->have_mail) {
        up_session_reply(s, 503, "5.5.1", "Error: need MAIL command");
        data_refused(s);
        return;
    }
    if (s->bdat_used || s->body_binary) {
        /* RFC 3030 2, 3: no DATA in a BDAT transaction, and BINARYMIME
         * content only in BDAT chunks */
        up_session_reply(s, 503, "5.5.1", s->bdat_used
                         ? "Error: DATA after BDAT in this transaction"
                         : "Error: BODY=BINARYMIME requires BDAT");
        data_refused(s);
        return;
    }
    if (s->n_rcpts == 0) {
        up_session_reply(s, 554, "5.5.1", "Error: no valid recipients");
        data_refused(s);
        return;
    }
    if (*s->cmd.arg) {
        up_session_reply(s, 501, "5.5.4", "Syntax: DATA");
        data_refused(s);
        return;
    }
    up_queue_id_make(s->queue_id, sizeof s->queue_id);
    up_hook_run(s, UPESI_HOOK_DATA, on_data_done);
}

/* -- the rest */

static void on_vrfy_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (session_is_denial(v))
        session_reply_denial(s, UPESI_HOOK_VRFY, v, r, "VRFY");
    else if (v == UPESI_OK)
        session_reply_ok(s, r, 250, "2.1.5", s->cmd.arg);
    else
        up_session_reply(s, 252, "2.5.2", "Cannot VRFY user, but will "
                         "accept message and attempt delivery");
    session_continue(s);
}

void session_cmd_vrfy(up_session *s)
{
    if (*s->cmd.arg == '\0') {
        up_session_reply(s, 501, "5.5.4", "Syntax: VRFY address");
        return;
    }
    if (!s->cfg->vrfy) {
        up_session_reply(s, 252, "2.5.2", "Cannot VRFY user, but will "
                         "accept message and attempt delivery");
        return;
    }
    up_hook_run(s, UPESI_HOOK_VRFY, on_vrfy_done);
}

void session_on_unrecognized_done(up_session *s, upesi_verdict v,
                                  const up_reply *r)
{
    if (v == UPESI_OK) {
        session_reply_ok(s, r, 250, "2.0.0", "Ok");
    } else if (session_is_denial(v)) {
        session_reply_denial(s, UPESI_HOOK_UNRECOGNIZED, v, r, "command");
    } else {
        up_stats_add("SMTP.Command.Invalid", 1);
        up_session_reply(s, 500, "5.5.1", "Error: command not recognized");
    }
    session_continue(s);
}
