/*
 * session_reply.c - from a hook's verdict to the SMTP reply: each hook's
 * default codes and texts, and the checks that keep a plugin's reply
 * sane (a DENY must not go out as 250).  Logs every denial with the name
 * of the plugin that decided.
 *
 * Fails: never; a reply that does not fit its verdict is replaced by the
 * hook's default.
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
/* verdicts to replies                                                     */

const hook_reply_defaults session_reply_defaults[UPESI_HOOK_COUNT] = {
    [UPESI_HOOK_CONNECT] = { 554, "5.7.1", "Access denied",
                             451, "4.7.1", "Service temporarily unavailable" },
    [UPESI_HOOK_HELO] = { 550, "5.7.1", "HELO/EHLO rejected",
                          450, "4.7.1", "HELO/EHLO temporarily rejected" },
    [UPESI_HOOK_MAIL] = { 550, "5.7.1", "Sender rejected",
                          450, "4.7.1", "Sender temporarily rejected" },
    [UPESI_HOOK_RCPT] = { 550, "5.7.1", "Recipient rejected",
                          450, "4.7.1", "Recipient temporarily rejected" },
    [UPESI_HOOK_DATA] = { 554, "5.7.1", "Transaction rejected",
                          451, "4.7.1", "Transaction temporarily rejected" },
    [UPESI_HOOK_DATA_POST] = { 550, "5.7.1", "Message rejected",
                               451, "4.7.1",
                               "Message temporarily rejected" },
    [UPESI_HOOK_QUEUE] = { 554, "5.3.0", "Message refused by the queue",
                           451, "4.3.0", "Queue temporarily unavailable" },
    [UPESI_HOOK_UNRECOGNIZED] = { 500, "5.5.1", "Command unrecognized",
                                  450, "4.5.1",
                                  "Command temporarily refused" },
    [UPESI_HOOK_VRFY] = { 550, "5.1.1", "User unknown",
                          450, "4.3.0", "Cannot verify now" },
    [UPESI_HOOK_AUTH] = { 535, "5.7.8", "Authentication credentials invalid",
                          454, "4.7.0", "Temporary authentication failure" },
};

/* Is the code a sane match for the verdict?  A plugin's DENY with 250
 * would confuse the client; the hook's default is used instead. */
int session_code_fits(upesi_verdict v, int code)
{
    switch (v) {
    case UPESI_OK:
        return code >= 200 && code < 400;
    case UPESI_DENY:
    case UPESI_DENYDISCONNECT:
        return code >= 500 && code < 600;
    case UPESI_DENYSOFT:
        return code >= 400 && code < 500;
    case UPESI_DENYSOFTDISCONNECT:
        return code == 421;
    default:
        return 0;
    }
}

/* Answer a denying verdict (DENY, DENYSOFT and the DISCONNECT forms),
 * log it with the plugin's name and close if it says so. */
void session_reply_denial(up_session *s, upesi_hook hook, upesi_verdict v,
                          const up_reply *r, const char *what)
{
    const hook_reply_defaults *d = &session_reply_defaults[hook];
    int soft = v == UPESI_DENYSOFT || v == UPESI_DENYSOFTDISCONNECT;
    int code = soft ? d->soft : d->deny;
    const char *enhanced = soft ? d->soft_enhanced : d->deny_enhanced;
    const char *text = soft ? d->soft_text : d->deny_text;
    if (v == UPESI_DENYSOFTDISCONNECT)
        code = 421;
    if (r && r->code && session_code_fits(v, r->code)) {
        code = r->code;
        if (r->enhanced)
            enhanced = r->enhanced;
    }
    if (r && r->text)
        text = r->text;
    if (enhanced && enhanced[0] != (code >= 500 ? '5' : '4'))
        enhanced = code >= 500 ? "5.0.0" : "4.0.0";
    up_log(s->id, UPESI_LOG_INFO, "%s %s by %s: %d %s %s", what,
           soft ? "deferred" : "rejected",
           r && r->plugin ? r->plugin : "host", code, enhanced ? enhanced : "",
           text);
    up_session_reply(s, code, enhanced, text);
    if (v == UPESI_DENYDISCONNECT || v == UPESI_DENYSOFTDISCONNECT)
        session_close(s, "plugin disconnect");
}

void session_note_count(up_session *s, const char *key)
{
    const char *old = up_notes_get(&s->conn_notes, key);
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (old ? atoll(old) : 0) + 1);
    up_notes_set(&s->conn_notes, key, buf);
}

int session_is_denial(upesi_verdict v)
{
    return v == UPESI_DENY || v == UPESI_DENYSOFT ||
           v == UPESI_DENYDISCONNECT || v == UPESI_DENYSOFTDISCONNECT;
}

/* An OK verdict's reply: the plugin's when it gave one. */
void session_reply_ok(up_session *s, const up_reply *r, int code,
                      const char *enhanced, const char *text)
{
    if (r && r->code && session_code_fits(UPESI_OK, r->code)) {
        code = r->code;
        enhanced = r->enhanced ? r->enhanced : enhanced;
    }
    up_session_reply(s, code, enhanced, r && r->text ? r->text : text);
}
