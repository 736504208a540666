/*
 * session_tls.c - TLS in a session: STARTTLS (RFC 3207) and implicit TLS
 * (RFC 8314) on top of host/tls.c.  Ciphertext from the socket goes to
 * wolfSSL, plain text from it to the line reader; replies are encrypted
 * on their way out.  After STARTTLS whatever the client sent in plain text
 * is discarded and the session starts over (CVE-2011-0411).
 *
 * Fails: a failed or stalled handshake is logged with its reason and the
 * connection closed; nothing is ever sent in plain text once TLS began.
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
#include "stats.h"
#include "tls.h"
#include "version.h"

/* ---------------------------------------------------------------------- */
/* TLS (RFC 3207 STARTTLS, RFC 8314 implicit TLS)                          */

/* Encrypt the queued replies and send every record wolfSSL produced.  No
 * plain text is ever sent once s->tls exists: replies queued before the
 * handshake ends (there should be none) are dropped. */
void session_tls_flush(up_session *s)
{
    if (s->out_len) {
        size_t len = s->out_len;
        s->out_len = 0;
        if (up_tls_established(s->tls) &&
            up_tls_write(s->tls, s->out, len) != 0 &&
            s->state != UP_ST_CLOSING) {
            up_log(s->id, UPESI_LOG_NOTICE, "TLS: %s", up_tls_error(s->tls));
            session_close(s, "TLS write failed");
        }
    }
    if (s->state == UP_ST_CLOSING)
        up_tls_close_notify(s->tls);
    size_t len;
    char *records = up_tls_take_output(s->tls, &len);
    if (len)
        session_send_raw(s, records, len);
    free(records);
}

static void on_tls_handshake_timeout(uv_timer_t *timer)
{
    up_session *s = timer->data;
    up_stats_add("SMTP.Sessions.TLSFailed", 1);
    up_log(s->id, UPESI_LOG_NOTICE, "TLS handshake failed: not done within "
           "%gs (tls_handshake_timeout)", s->cfg->tls_handshake_timeout);
    session_close(s, "TLS handshake timeout");
}

/* After the 220 to STARTTLS, or on accept on an smtps_listen address. */
void session_tls_begin(up_session *s)
{
    if (s->cfg->tls == NULL) {  /* a reload took tls_cert away */
        up_log(s->id, UPESI_LOG_ERR, "implicit TLS connection, but this "
               "configuration has no tls_cert");
        session_close(s, "no TLS configured");
        return;
    }
    s->tls = up_tls_new(s->cfg->tls);
    if (s->tls == NULL) {
        session_close(s, "out of memory");
        return;
    }
    s->state = UP_ST_TLS_HANDSHAKE;
    uv_timer_start(&s->timer, on_tls_handshake_timeout,
                   (uint64_t)(s->cfg->tls_handshake_timeout * 1000), 0);
}

/* The handshake is done: tell plugins, and start over (RFC 3207 4.2:
 * forget what the client said in plain text) or, on an smtps_listen
 * address, start the session. */
static void tls_established(up_session *s)
{
    char note[160];
    s->info.tls = 1;
    s->info.tls_version = up_tls_version(s->tls);
    s->info.tls_cipher = up_tls_cipher(s->tls);
    snprintf(note, sizeof note, "%s %s", s->info.tls_version,
             s->info.tls_cipher);
    up_notes_set(&s->conn_notes, "tls", note);
    up_stats_add("SMTP.Sessions.TLS", 1);
    int resumed = up_tls_resumed(s->tls);
    if (resumed)
        up_stats_add("SMTP.Sessions.TLSResumed", 1);
    const char *how = resumed ? ", resumed" : "";
    const char *sni = up_tls_server_name(s->tls);
    const char *match = up_tls_sni_match(s->tls);
    if (sni)                    /* which tls_sni certificate, if any */
        up_log(s->id, UPESI_LOG_INFO, "TLS established: %s with cipher "
               "%s%s, SNI %s: %s%s", s->info.tls_version,
               s->info.tls_cipher, how, sni,
               match ? "certificate of tls_sni " : "tls_cert",
               match ? match : "");
    else
        up_log(s->id, UPESI_LOG_INFO, "TLS established: %s with cipher %s%s",
               s->info.tls_version, s->info.tls_cipher, how);
    if (s->implicit_tls && !s->greeted) {
        s->state = UP_ST_CONNECT;
        session_arm_idle_timer(s);
        up_hook_run(s, UPESI_HOOK_CONNECT, session_on_connect_done);
        return;
    }
    session_txn_reset(s);
    free(s->helo);
    s->helo = NULL;
    s->info.helo = NULL;
    s->info.esmtp = 0;
    session_ehlo_ext_clear(s);  /* and an AUTH from before: RFC 3207 4.2 */
    free(s->auth_user);
    s->auth_user = NULL;
    s->info.auth_user = NULL;
    s->info.authenticated = 0;
    s->state = UP_ST_COMMAND;
    session_arm_idle_timer(s);
}

/* Drive the handshake, then decrypt what is buffered into the line reader
 * until it is used up or the line reader is full (the rest waits, as
 * plain text waits in the stash). */
void session_tls_pump(up_session *s)
{
    if (s->tls_pumping || s->state == UP_ST_CLOSING)
        return;
    s->tls_pumping = 1;
    if (!up_tls_established(s->tls)) {
        int rc = up_tls_handshake(s->tls);
        if (rc < 0) {
            up_stats_add("SMTP.Sessions.TLSFailed", 1);
            up_log(s->id, UPESI_LOG_NOTICE, "TLS %s",
                   up_tls_error(s->tls));
            session_close(s, "TLS handshake failed");
        } else if (rc > 0) {
            tls_established(s);
        }
    }
    char buf[16384];
    while (up_tls_established(s->tls) && s->state != UP_ST_CLOSING &&
           s->stash == NULL) {
        long n = up_tls_read(s->tls, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0) {
            if (n != UP_TLS_CLOSED)
                up_log(s->id, UPESI_LOG_NOTICE, "%s", up_tls_error(s->tls));
            session_close(s, n == UP_TLS_CLOSED ? "client closed TLS" :
                          "TLS error");
            break;
        }
        session_received(s, buf, (size_t)n);
    }
    s->tls_pumping = 0;
}

void session_cmd_starttls(up_session *s)
{
    if (s->tls) {
        up_session_reply(s, 503, "5.5.1", "Error: TLS already active");
        return;
    }
    if (s->cfg->tls == NULL) {
        up_session_reply(s, 502, "5.5.1", "Error: STARTTLS not implemented");
        return;
    }
    if (*s->cmd.arg) {
        up_session_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
        return;
    }
    if (s->have_mail) {
        up_session_reply(s, 503, "5.5.1", "Error: MAIL transaction in "
                         "progress");
        return;
    }
    up_session_reply(s, 220, "2.0.0", "Ready to start TLS");
    session_flush(s);           /* the last plain text we send */
    /* CVE-2011-0411: what the client sent after STARTTLS, before the
     * handshake, is dropped; session_input drops the rest of this read */
    size_t pending;
    up_lines_pending(&s->lines, &pending);
    if (pending || s->stash_len)
        up_log(s->id, UPESI_LOG_NOTICE, "discarded %zu bytes sent after "
               "STARTTLS in plain text", pending + s->stash_len);
    up_lines_discard(&s->lines);
    free(s->stash);
    s->stash = NULL;
    s->stash_len = 0;
    if (s->state != UP_ST_CLOSING)
        session_tls_begin(s);
}
