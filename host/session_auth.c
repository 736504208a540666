/*
 * session_auth.c - SMTP AUTH in a session (RFC 4954): the PLAIN and LOGIN
 * exchanges, their base64, and the auth hook that judges the credentials.
 *
 * Fails: malformed input gets 501, refused credentials 535 after a growing
 * delay; the password never reaches a log line.
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

/* -- AUTH (RFC 4954; PLAIN RFC 4616, LOGIN; docs/auth.md)
 *
 * A plugin offers AUTH in EHLO (api->ehlo_extension); the host speaks the
 * exchange, decodes it, and asks the auth hook chain.  The credentials
 * live in the session only while the chain runs: the password is wiped
 * (explicit_bzero) when it ends, and so are the base64 lines it came in.
 * A failure is answered after a delay that doubles with each failure of
 * the session (auth_failure_delay, at most 8 times it), during which
 * nothing else the client sent is read.  Nothing here logs a user name
 * or password at a level above debug (the user name) and never (the
 * password). */

#define UP_AUTH_MAX_FIELD 255           /* RFC 4616 2: authcid, passwd */

static const char *auth_mech_name(unsigned mech)
{
    return mech == UP_AUTH_LOGIN ? "LOGIN" : "PLAIN";
}

void session_auth_forget(up_session *s)
{
    if (s->auth_secret) {
        explicit_bzero(s->auth_secret, s->auth_secret_len);
        free(s->auth_secret);
    }
    s->auth_secret = NULL;
    s->auth_secret_len = 0;
    free(s->auth_try_user);
    s->auth_try_user = NULL;
    s->auth_state = UP_AUTH_IDLE;
}

/* Standard base64 with its padding (RFC 4648 4).  wolfSSL's decoder is
 * lenient (it skips blanks and drops a partial group), so the form is
 * checked before it decodes. */
static int auth_b64_valid(const char *p, size_t len)
{
    size_t pad = 0;
    if (len == 0 || len % 4 != 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad)
            return 0;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return 0;
    }
    return pad <= 2;
}

/* A client response decoded (NUL-terminated, *outlen bytes before the
 * NUL).  "=" is the empty response (RFC 4954 4).  NULL when malformed,
 * or out of memory (*oom). */
static char *auth_b64_decode(const char *p, size_t len, size_t *outlen,
                             int *oom)
{
    *oom = 0;
    *outlen = 0;
    if (len == 1 && p[0] == '=') {
        char *empty = calloc(1, 1);
        *oom = empty == NULL;
        return empty;
    }
    if (!auth_b64_valid(p, len) || len > 65536)
        return NULL;
    word32 cap = (word32)(len / 4 * 3 + 1), got = cap;
    byte *out = malloc(cap);
    if (out == NULL) {
        *oom = 1;
        return NULL;
    }
    if (Base64_Decode((const byte *)p, (word32)len, out, &got) != 0 ||
        got >= cap) {
        explicit_bzero(out, cap);
        free(out);
        return NULL;
    }
    out[got] = '\0';
    *outlen = got;
    return (char *)out;
}

/* A user name: 1 to 255 bytes, no control characters (it may reach a
 * debug log line and a spool envelope). */
static int auth_user_ok(const char *u, size_t len)
{
    if (len == 0 || len > UP_AUTH_MAX_FIELD)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f)
            return 0;
    return 1;
}

static void on_auth_delay(uv_timer_t *timer)
{
    up_session *s = timer->data;
    if (s->state == UP_ST_CLOSING)
        return;
    s->busy = 0;
    up_session_reply(s, s->auth_fail_code, s->auth_fail_enhanced,
                     s->auth_fail_text ? s->auth_fail_text
                                       : "Authentication credentials invalid");
    free(s->auth_fail_text);
    s->auth_fail_text = NULL;
    if (s->auth_fail_close)
        session_close(s, "AUTH failed, plugin disconnect");
    session_continue(s);
}

/* Credentials refused (DENY, or nobody knew them): 535 after the delay. */
static void auth_fail(up_session *s, upesi_verdict v, const up_reply *r,
                      const char *why)
{
    unsigned n = ++s->auth_failures;
    double factor = n >= 4 ? 8 : (double)(1u << (n - 1));
    uint64_t ms = (uint64_t)(s->cfg->auth_failure_delay * factor * 1000);
    up_stats_add("SMTP.Auth.Failure", 1);
    /* for plugins that count failures across sessions (limit, karma):
     * conn notes "auth.failures" and "auth.failed_user" (ABI 2.1) */
    session_note_count(s, "auth.failures");
    up_notes_set(&s->conn_notes, "auth.failed_user",
                 s->auth_try_user ? s->auth_try_user : "");
    s->auth_fail_code = 535;
    snprintf(s->auth_fail_enhanced, sizeof s->auth_fail_enhanced, "5.7.8");
    if (r && r->code && session_code_fits(UPESI_DENY, r->code)) {
        s->auth_fail_code = r->code;
        if (r->enhanced && r->enhanced[0] == '5')
            snprintf(s->auth_fail_enhanced, sizeof s->auth_fail_enhanced,
                     "%s", r->enhanced);
    }
    free(s->auth_fail_text);
    s->auth_fail_text = r && r->text ? strdup(r->text) : NULL;
    s->auth_fail_close = v == UPESI_DENYDISCONNECT;
    up_log(s->id, UPESI_LOG_INFO, "AUTH %s failed (%s; failure %u of this "
           "session): %d %s in %.3gs", auth_mech_name(s->auth_mech), why, n,
           s->auth_fail_code, s->auth_fail_enhanced, (double)ms / 1000);
    session_auth_forget(s);
    s->busy = 1;                /* nothing is read until the answer */
    uv_timer_start(&s->auth_timer, on_auth_delay, ms, 0);
}

static void on_auth_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    const char *mech = auth_mech_name(s->auth_mech);
    const char *by = r && r->plugin ? r->plugin : "host";
    if (v == UPESI_OK) {
        free(s->auth_user);
        s->auth_user = s->auth_try_user;
        s->auth_try_user = NULL;
        s->info.authenticated = 1;
        s->info.auth_user = s->auth_user;
        session_auth_forget(s);
        up_stats_add("SMTP.Auth.Success", 1);
        up_log(s->id, UPESI_LOG_INFO, "AUTH %s succeeded (by %s)", mech, by);
        up_log(s->id, UPESI_LOG_DEBUG, "AUTH %s: user %s", mech,
               s->auth_user);
        session_reply_ok(s, r, 235, "2.7.0", "Authentication successful");
        session_continue(s);
        return;
    }
    if (v == UPESI_DENYSOFT || v == UPESI_DENYSOFTDISCONNECT) {
        session_auth_forget(s);
        up_stats_add("SMTP.Auth.Deferred", 1);
        session_reply_denial(s, UPESI_HOOK_AUTH, v, r, "AUTH");
        session_continue(s);
        return;
    }
    if (s->cfg->log_level >= UPESI_LOG_DEBUG && s->auth_try_user)
        up_log(s->id, UPESI_LOG_DEBUG, "AUTH %s: user %s refused", mech,
               s->auth_try_user);
    auth_fail(s, v, r, v == UPESI_CONT ? "no plugin accepted the "
              "credentials" : by);
}

/* The exchange is complete: ask the plugins. */
static void auth_run(up_session *s)
{
    s->auth_state = UP_AUTH_IDLE;
    up_hook_run(s, UPESI_HOOK_AUTH, on_auth_done);
}

static void auth_malformed(up_session *s, const char *what)
{
    up_log(s->id, UPESI_LOG_INFO, "AUTH %s refused: %s",
           auth_mech_name(s->auth_mech), what);
    session_auth_forget(s);
    up_session_reply(s, 501, "5.5.2", "Error: malformed authentication "
                     "data");
}

/* One decoded response (or initial response), data[len] is NUL; data is
 * wiped and freed here. */
static void auth_step(up_session *s, char *data, size_t len)
{
    if (s->auth_mech == UP_AUTH_PLAIN) {
        /* authzid NUL authcid NUL passwd */
        char *nul1 = memchr(data, '\0', len);
        char *nul2 = nul1 ? memchr(nul1 + 1, '\0',
                                   len - (size_t)(nul1 + 1 - data)) : NULL;
        size_t ulen = nul2 ? (size_t)(nul2 - nul1 - 1) : 0;
        size_t plen = nul2 ? len - (size_t)(nul2 + 1 - data) : 0;
        if (nul2 == NULL || !auth_user_ok(nul1 + 1, ulen) || plen == 0 ||
            plen > UP_AUTH_MAX_FIELD || memchr(nul2 + 1, '\0', plen)) {
            explicit_bzero(data, len);
            free(data);
            auth_malformed(s, "not authzid NUL user NUL password");
            return;
        }
        int other_authz = nul1 != data &&
                          ((size_t)(nul1 - data) != ulen ||
                           memcmp(data, nul1 + 1, ulen) != 0);
        s->auth_try_user = strndup(nul1 + 1, ulen);
        s->auth_secret = malloc(plen + 1);
        if (s->auth_secret) {
            memcpy(s->auth_secret, nul2 + 1, plen);
            s->auth_secret[plen] = '\0';
            s->auth_secret_len = plen;
        }
        explicit_bzero(data, len);
        free(data);
        if (s->auth_try_user == NULL || s->auth_secret == NULL) {
            session_auth_forget(s);
            up_session_reply(s, 454, "4.3.0", "Out of memory");
            return;
        }
        if (other_authz) {      /* acting for someone else: not offered */
            auth_fail(s, UPESI_DENY, NULL, "authorization identity differs "
                      "from the user");
            return;
        }
        auth_run(s);
        return;
    }
    if (s->auth_state != UP_AUTH_WAIT_PASS) {   /* LOGIN: the user name */
        if (!auth_user_ok(data, len) || memchr(data, '\0', len)) {
            explicit_bzero(data, len);
            free(data);
            auth_malformed(s, "bad user name");
            return;
        }
        s->auth_try_user = data;
        s->auth_state = UP_AUTH_WAIT_PASS;
        up_session_reply(s, 334, NULL, "UGFzc3dvcmQ6");    /* Password: */
        return;
    }
    if (len == 0 || len > UP_AUTH_MAX_FIELD || memchr(data, '\0', len)) {
        explicit_bzero(data, len);
        free(data);
        auth_malformed(s, "bad password");
        return;
    }
    s->auth_secret = data;
    s->auth_secret_len = len;
    auth_run(s);
}

/* Decode base64 from the client, wipe it, and go on with the exchange. */
static void auth_input(up_session *s, char *b64, size_t len)
{
    int oom;
    size_t dlen;
    char *data = auth_b64_decode(b64, len, &dlen, &oom);
    explicit_bzero(b64, len);
    if (data == NULL) {
        if (oom) {
            session_auth_forget(s);
            up_session_reply(s, 454, "4.3.0", "Out of memory");
        } else {
            auth_malformed(s, "malformed base64");
        }
        return;
    }
    auth_step(s, data, dlen);
}

/* A line while an exchange waits for the client's response to a 334. */
void session_auth_response(up_session *s, up_line *line)
{
    if (line->status == UP_LINE_TOO_LONG || line->has_nul) {
        explicit_bzero(line->text, strlen(line->text));
        auth_malformed(s, line->has_nul ? "NUL byte in the response"
                                        : "response line too long");
        return;
    }
    if (line->len == 1 && line->text[0] == '*') {       /* RFC 4954 4 */
        up_log(s->id, UPESI_LOG_INFO, "AUTH %s cancelled by the client",
               auth_mech_name(s->auth_mech));
        session_auth_forget(s);
        up_session_reply(s, 501, "5.0.0", "Authentication cancelled");
        return;
    }
    auth_input(s, line->text, line->len);
}

void session_cmd_auth(up_session *s, up_line *line)
{
    char *arg = (char *)s->cmd.arg;     /* points into s->line */
    size_t mlen = strcspn(arg, " ");
    char *ir = arg + mlen;
    while (*ir == ' ')
        ir++;
    size_t irlen = strlen(ir);
    /* the initial response is no business of the log or of plugins'
     * command_line: keep a copy to decode, and wipe the line's */
    char *copy = irlen ? strndup(ir, irlen) : NULL;
    size_t off = (size_t)(ir - s->line);        /* s->line copies the line */
    if (irlen && off < line->len)
        explicit_bzero(line->text + off, line->len - off);
    explicit_bzero(ir, irlen);
    arg[mlen] = '\0';
    unsigned mech = mlen == 5 && !strncasecmp(arg, "PLAIN", 5) ? UP_AUTH_PLAIN
                  : mlen == 5 && !strncasecmp(arg, "LOGIN", 5) ? UP_AUTH_LOGIN
                                                               : 0;
    if (!s->auth_offered) {
        up_session_reply(s, 503, "5.5.1", "Error: authentication not "
                         "enabled");
    } else if (s->info.authenticated) {
        up_session_reply(s, 503, "5.5.1", "Error: already authenticated");
    } else if (s->have_mail) {
        up_session_reply(s, 503, "5.5.1", "Error: MAIL transaction in "
                         "progress");
    } else if (mlen == 0) {
        up_session_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism "
                         "[initial-response]");
    } else if (!(mech & s->auth_offered)) {
        up_session_reply(s, 504, "5.5.4", "Unrecognized authentication "
                         "type");
    } else if (irlen && copy == NULL) {
        up_session_reply(s, 454, "4.3.0", "Out of memory");
    } else {
        s->auth_mech = mech;
        s->auth_state = mech == UP_AUTH_PLAIN ? UP_AUTH_WAIT_PLAIN
                                              : UP_AUTH_WAIT_USER;
        if (irlen) {
            auth_input(s, copy, irlen);
        } else if (mech == UP_AUTH_PLAIN) {
            up_session_reply(s, 334, NULL, "");
        } else {
            up_session_reply(s, 334, NULL, "VXNlcm5hbWU6");   /* Username: */
        }
    }
    if (copy) {
        explicit_bzero(copy, irlen);
        free(copy);
    }
}
