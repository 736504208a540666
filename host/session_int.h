/*
 * session_int.h - what the parts of a session (session.c, session_cmd.c,
 * session_reply.c, session_tls.c, session_auth.c) share; nothing outside
 * host/session*.c includes it.
 */
#ifndef UPESI_SESSION_INT_H
#define UPESI_SESSION_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "session.h"

/* RFC 5321 4.5.3.2.7: the server waits 5 minutes for a command or data. */
#define UP_SERVER_TIMEOUT_MS 300000.0
/* Stop reading while this much output waits for a client that does not
 * read its replies. */
#define UP_MAX_PENDING_OUTPUT (256 * 1024)

/* each hook's default replies (session_reply.c) */
typedef struct hook_reply_defaults {
    int deny;
    const char *deny_enhanced, *deny_text;
    int soft;
    const char *soft_enhanced, *soft_text;
} hook_reply_defaults;
extern const hook_reply_defaults session_reply_defaults[UPESI_HOOK_COUNT];

/* session.c */
void session_arm_idle_timer(up_session *s);
void session_begin(up_session *s);
void session_data_deadline(up_session *s, int start);
void session_on_connect_done(up_session *s, upesi_verdict v,
                             const up_reply *r);
void session_reply_fmt(up_session *s, int code, const char *enhanced,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void session_send_raw(up_session *s, const char *data, size_t len);
void session_close(up_session *s, const char *why);
void session_continue(up_session *s);
void session_flush(up_session *s);
void session_input(up_session *s, const char *buf, size_t len);
void session_received(up_session *s, const char *buf, size_t len);
void session_txn_reset(up_session *s);
/* Add one to the integer conn note key (absent counts as 0): what the host
 * tells plugins about refusals ("rcpt.rejected", "auth.failures"). */
void session_note_count(up_session *s, const char *key);

/* session_reply.c */
int session_code_fits(upesi_verdict v, int code);
int session_is_denial(upesi_verdict v);
void session_reply_denial(up_session *s, upesi_hook hook, upesi_verdict v,
                          const up_reply *r, const char *what);
void session_reply_ok(up_session *s, const up_reply *r, int code,
                      const char *enhanced, const char *text);

/* session_cmd.c */
void session_cmd_data(up_session *s);
void session_cmd_helo(up_session *s, int esmtp);
void session_cmd_mail(up_session *s);
void session_cmd_rcpt(up_session *s);
void session_cmd_vrfy(up_session *s);
void session_data_end(up_session *s);
void session_ehlo_ext_clear(up_session *s);
void session_message_done(up_session *s, int accepted);
void session_message_end(up_session *s);
void session_on_unrecognized_done(up_session *s, upesi_verdict v,
                                  const up_reply *r);

/* session_bdat.c */
void session_cmd_bdat(up_session *s);
int session_bdat_feed(up_session *s);

/* session_proxy.c */
void session_proxy_start(up_session *s);
void session_proxy_input(up_session *s, const char *buf, size_t len);

/* session_xclient.c */
void session_cmd_xclient(up_session *s);
int session_xclient_allowed(const up_session *s);

/* session_tls.c */
void session_cmd_starttls(up_session *s);
void session_tls_begin(up_session *s);
void session_tls_flush(up_session *s);
void session_tls_pump(up_session *s);

/* session_auth.c */
void session_auth_forget(up_session *s);
void session_auth_response(up_session *s, up_line *line);
void session_cmd_auth(up_session *s, up_line *line);

#endif
