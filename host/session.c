/*
 * session.c - the SMTP state machine of one connection (RFC 5321).
 *
 * Input flows one way: libuv read -> line reader -> one command at a time
 * -> the command's hook chain -> a verdict -> a reply.  While a chain waits
 * on a plugin (PENDING), nothing more is parsed: later input stays buffered,
 * and replies to pipelined commands therefore come out in order (RFC 2920).
 * Replies are collected and written once the buffered input is used up, so
 * a pipelined group is answered in one write.
 *
 * In DATA the raw bytes go through the data reader (dot-unstuffing, end of
 * data only at CRLF.CRLF) into the message store.
 *
 * A session is freed only from the close callback of its last libuv
 * handle, never while a hook chain or a callback is on the stack.
 *
 * Fails: every bad input is answered (5xx/4xx) and counted towards
 * error_limit; allocation failure closes the session with 421.
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
#include "stats.h"
#include "tls.h"
#include "version.h"


/* RFC 5321 4.5.3.2.7: the server waits 5 minutes for a command or data. */
#define UP_SERVER_TIMEOUT_MS 300000.0
/* A hard cap on recipients a transaction may hold (RFC 5321 4.5.3.1.8
 * asks for at least 100); max_rcpt is the policy, this is the guard. */
#define UP_MAX_RCPTS 1000
/* Stop reading while this much output waits for a client that does not
 * read its replies. */
#define UP_MAX_PENDING_OUTPUT (256 * 1024)

static void session_process(up_session *s);
static void session_close(up_session *s, const char *why);
static void session_flush(up_session *s);
static void txn_reset(up_session *s);
static void read_resume(up_session *s);
static void tls_flush(up_session *s);
static void tls_pump(up_session *s);
static void auth_forget(up_session *s);
static void ehlo_ext_clear(up_session *s);

/* ---------------------------------------------------------------------- */
/* small helpers                                                           */

/* The date of the greeting and the Received field.  Formatted once a
 * second: localtime_r and strftime cost more than the rest of a greeting.
 * Only the loop thread calls it. */
static void rfc5322_date(char *buf, size_t len)
{
    static time_t cached_at = (time_t)-1;
    static char cached[64];
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        localtime_r(&now, &tm);
        if (strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S %z",
                     &tm) == 0)
            cached[0] = '\0';
        cached_at = now;
    }
    size_t n = strlen(cached);
    if (len == 0)
        return;
    if (n >= len)
        n = len - 1;
    memcpy(buf, cached, n);
    buf[n] = '\0';
}

/* Append the n low hex digits of v (upper case). */
static char *put_hex(char *o, unsigned long v, int n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int i = n - 1; i >= 0; i--)
        o[i] = hex[(v >> (4 * (n - 1 - i))) & 15];
    return o + n;
}

/* Join the strings of a NULL-terminated list into buf, cut to fit and
 * always terminated; returns the length.  The per-message replies and the
 * Received field are built with it: snprintf cost more than the rest. */
static size_t str_join(char *buf, size_t size, ...)
{
    va_list ap;
    size_t len = 0;
    const char *part;
    if (size == 0)
        return 0;
    va_start(ap, size);
    while ((part = va_arg(ap, const char *)) != NULL) {
        size_t n = strlen(part);
        if (n > size - 1 - len)
            n = size - 1 - len;
        memcpy(buf + len, part, n);
        len += n;
    }
    va_end(ap);
    buf[len] = '\0';
    return len;
}

/* This process's id, asked once: getpid is a system call, and session and
 * queue ids want it for every session and message.  Sessions live only in
 * workers, forked by a supervisor that never calls this, and a worker
 * forks nothing that accepts sessions: the cached value is always ours. */
static unsigned long session_pid(void)
{
    static unsigned long pid;
    if (pid == 0)
        pid = (unsigned long)getpid();
    return pid;
}

/* 8 hex digits of seconds, 5 of microseconds, 5 of the pid, 2 of a
 * counter: "%08lX%05lX%05X%02X", formatted by hand (once a message). */
static void make_queue_id(char *out, size_t len)
{
    static unsigned counter;
    char id[21], *o = id;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long sec = (unsigned long)tv.tv_sec;
    int digits = 8;
    while (digits < 16 && (sec >> (4 * digits)) != 0)
        digits++;               /* %08lX: at least 8 digits */
    o = put_hex(o, sec, digits);
    o = put_hex(o, (unsigned long)tv.tv_usec, 5);
    o = put_hex(o, session_pid() & 0xFFFFF, 5);
    o = put_hex(o, counter++ & 0xFF, 2);
    *o = '\0';
    str_join(out, len, id, (const char *)NULL);
}

static uint64_t timeout_ms(const up_session *s)
{
    double ms = UP_SERVER_TIMEOUT_MS * s->cfg->timeout_multiplier;
    return ms < 1 ? 1 : (uint64_t)ms;
}

/* ---------------------------------------------------------------------- */
/* output                                                                  */

static int out_append(up_session *s, const char *buf, size_t len)
{
    if (s->out_len + len > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 512;
        while (cap < s->out_len + len)
            cap *= 2;
        char *grown = realloc(s->out, cap);
        if (grown == NULL)
            return -1;
        s->out = grown;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, buf, len);
    s->out_len += len;
    return 0;
}

/* Replies are built by hand, not with snprintf: one per command, and the
 * formatting was the largest cost of a reply (bench/README.md, profile). */
static void reply_lines(up_session *s, int code, const char *enhanced,
                        const char *text)
{
    char line[1100];
    const char *p = text ? text : "";
    size_t elen = enhanced ? strnlen(enhanced, 180) : 0;
    if (code < 0 || code > 999)
        code = 451;             /* never sent: callers pass SMTP codes */
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 900)          /* RFC 5321 4.5.3.1.5: 512 octets a line */
            len = 900;
        char *o = line;
        *o++ = (char)('0' + code / 100);
        *o++ = (char)('0' + code / 10 % 10);
        *o++ = (char)('0' + code % 10);
        *o++ = nl ? '-' : ' ';
        if (enhanced) {
            memcpy(o, enhanced, elen);
            o += elen;
            *o++ = ' ';
        }
        memcpy(o, p, len);
        o += len;
        *o++ = '\r';
        *o++ = '\n';
        if (out_append(s, line, (size_t)(o - line)) != 0)
            break;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
}

void up_session_reply(up_session *s, int code, const char *enhanced,
                      const char *text)
{
    if (s->state == UP_ST_CLOSING && code != 421 && code != 221)
        return;
    reply_lines(s, code, enhanced, text);
    if (code < 400 || code == 421 || s->state == UP_ST_CLOSING)
        return;
    if (++s->errors > s->cfg->error_limit) {
        up_log(s->id, UPESI_LOG_NOTICE, "error limit %d exceeded",
               s->cfg->error_limit);
        up_stats_add("SMTP.Sessions.ErrorLimit", 1);
        char text421[300];
        snprintf(text421, sizeof text421, "%s Error: too many errors, "
                 "closing connection", s->cfg->hostname);
        reply_lines(s, 421, "4.7.0", text421);
        session_close(s, "error limit");
    }
}

static void reply_fmt(up_session *s, int code, const char *enhanced,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reply_fmt(up_session *s, int code, const char *enhanced,
                      const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    up_session_reply(s, code, enhanced, text);
}

static void on_close(uv_handle_t *handle)
{
    up_session *s = handle->data;
    if (--s->handles_open > 0)
        return;
    s->server->sessions--;
    up_stats_add("SMTP.Sessions.Current", -1);
    up_stats_add(s->server->sessions_stat, -1);
    up_message_free(&s->msg);
    up_lines_free(&s->lines);
    up_notes_clear(&s->conn_notes);
    up_notes_clear(&s->txn_notes);
    for (size_t i = 0; i < s->n_rcpts; i++)
        free(s->rcpts[i]);
    free(s->rcpts);
    free(s->sender);
    free(s->helo);
    free(s->line);
    free(s->stash);
    free(s->out);
    free(s->reject_text);
    auth_forget(s);
    ehlo_ext_clear(s);
    free(s->auth_user);
    free(s->auth_fail_text);
    up_tls_free(s->tls);
    up_config_unref(s->cfg);
    free(s);
}

static void close_handles(up_session *s)
{
    s->handles_open = 4;
    uv_close((uv_handle_t *)&s->timer, on_close);
    uv_close((uv_handle_t *)&s->hook_timer, on_close);
    uv_close((uv_handle_t *)&s->auth_timer, on_close);
    uv_close((uv_handle_t *)&s->tcp, on_close);
}

typedef struct write_req {
    uv_write_t req;
    up_session *session;
    char data[];
} write_req;

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    up_session *s = w->session;
    free(w);
    s->writes_in_flight--;
    if (status < 0 && s->state != UP_ST_CLOSING)
        session_close(s, uv_strerror(status));
    if (s->writes_in_flight == 0 && s->close_after_write) {
        s->close_after_write = 0;
        close_handles(s);
        return;
    }
    if (s->state != UP_ST_CLOSING &&
        uv_stream_get_write_queue_size((uv_stream_t *)&s->tcp) <
            UP_MAX_PENDING_OUTPUT / 2)
        read_resume(s);
}

/* Write bytes as they are: replies in plain text, or TLS records. */
static void send_raw(up_session *s, const char *data, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    int n = s->writes_in_flight ? 0 : uv_try_write((uv_stream_t *)&s->tcp,
                                                   &buf, 1);
    if (n < 0 && n != UV_EAGAIN) {
        if (s->state != UP_ST_CLOSING)
            session_close(s, uv_strerror(n));
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    if (done < len) {
        size_t rest = len - done;
        write_req *w = malloc(sizeof *w + rest);
        if (w == NULL) {
            session_close(s, "out of memory");
            return;
        }
        memcpy(w->data, data + done, rest);
        w->session = s;
        buf = uv_buf_init(w->data, (unsigned)rest);
        if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &buf, 1, on_write)) {
            free(w);
            if (s->state != UP_ST_CLOSING)
                session_close(s, "write failed");
            return;
        }
        s->writes_in_flight++;
    }
}

static void session_flush(up_session *s)
{
    if (s->tls) {
        tls_flush(s);
        return;
    }
    if (s->out_len == 0)
        return;
    size_t len = s->out_len;
    s->out_len = 0;             /* before: a failed write closes, and
                                   session_close flushes again */
    send_raw(s, s->out, len);
}

/* ---------------------------------------------------------------------- */
/* input                                                                   */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    up_session *s = handle->data;
    buf->base = s->server->read_buf;
    buf->len = sizeof s->server->read_buf;
}

static void on_idle_timeout(uv_timer_t *timer)
{
    up_session *s = timer->data;
    up_stats_add("SMTP.Sessions.Timeout", 1);
    reply_fmt(s, 421, "4.4.2", "%s Error: timeout exceeded",
              s->cfg->hostname);
    session_close(s, "timeout");
}

static void arm_idle_timer(up_session *s)
{
    /* a handshake has its own deadline, which input does not extend */
    if (s->state != UP_ST_CLOSING && s->state != UP_ST_TLS_HANDSHAKE)
        uv_timer_start(&s->timer, on_idle_timeout, timeout_ms(s), 0);
}

/* Give input to the line reader; what does not fit waits in the stash. */
static void session_input(up_session *s, const char *buf, size_t len)
{
    while (len > 0 && s->state != UP_ST_CLOSING &&
           s->state != UP_ST_TLS_HANDSHAKE) {
        long n = up_lines_feed(&s->lines, buf, len);
        if (n < 0) {
            reply_fmt(s, 421, "4.3.0", "%s Error: out of memory",
                      s->cfg->hostname);
            session_close(s, "out of memory");
            return;
        }
        buf += n;
        len -= (size_t)n;
        size_t before, after;
        up_lines_pending(&s->lines, &before);
        session_process(s);
        up_lines_pending(&s->lines, &after);
        if (n == 0 && after == before)
            break;              /* no room and no progress: wait */
    }
    /* input used up: a buffer grown by a long line or DATA goes back */
    up_lines_release(&s->lines);
    if (len > 0 && s->state == UP_ST_TLS_HANDSHAKE) {
        /* sent with STARTTLS, before the handshake: CVE-2011-0411 */
        up_log(s->id, UPESI_LOG_NOTICE, "discarded %zu bytes sent after "
               "STARTTLS in plain text", len);
        return;
    }
    if (len > 0 && s->state != UP_ST_CLOSING) {
        char *stash = malloc(len);
        if (stash == NULL) {
            session_close(s, "out of memory");
            return;
        }
        memcpy(stash, buf, len);
        free(s->stash);
        s->stash = stash;
        s->stash_len = len;
        if (s->reading) {
            uv_read_stop((uv_stream_t *)&s->tcp);
            s->reading = 0;
        }
    }
}

/* A client that talks out of turn (postscreen's pregreet test, and
 * pipelining that was not offered): noted for plugins, counted, and per
 * early_talker_action refused at MAIL (Domino-style, like a connect DENY)
 * or dropped at once. */
static void early_talker(up_session *s, const char *why)
{
    s->info.early_talker = 1;
    up_notes_set(&s->conn_notes, "early_talker", "1");
    up_stats_add("SMTP.Sessions.EarlyTalker", 1);
    up_log(s->id, UPESI_LOG_NOTICE, "early talker: %s", why);
    static const char text[] = "Protocol error: talked out of turn";
    switch (s->cfg->early_talker_action) {
    case UP_EARLY_TALKER_REJECT:
        if (s->reject_code == 0) {
            s->reject_code = 554;
            snprintf(s->reject_enhanced, sizeof s->reject_enhanced, "5.5.1");
            s->reject_text = strdup(text);
        }
        break;
    case UP_EARLY_TALKER_DROP:
        up_session_reply(s, 554, "5.5.1", text);
        session_close(s, "early talker");
        break;
    default:
        break;
    }
}

/* Input in plain text, as the client sent it or as TLS decrypted it. */
static void session_received(up_session *s, const char *buf, size_t len)
{
    if (!s->greeted && !s->info.early_talker)
        early_talker(s, "sent data before the greeting");
    if (s->greeted)             /* before it, the timer is the delay's */
        arm_idle_timer(s);
    session_input(s, buf, len);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    up_session *s = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        session_close(s, nread == UV_EOF ? "client closed" :
                                           uv_strerror((int)nread));
        return;
    }
    up_stats_add("SMTP.Bytes.Received", nread);
    if (s->tls) {               /* ciphertext: tls_pump decrypts it */
        if (up_tls_feed(s->tls, buf->base, (size_t)nread) != 0) {
            up_log(s->id, UPESI_LOG_NOTICE, "TLS: %s",
                   up_tls_error(s->tls));
            session_close(s, "TLS input overflow");
            return;
        }
        tls_pump(s);
    } else {
        session_received(s, buf->base, (size_t)nread);
    }
    session_flush(s);
    if (s->reading && uv_stream_get_write_queue_size(stream) >
                          UP_MAX_PENDING_OUTPUT) {
        uv_read_stop(stream);
        s->reading = 0;
    }
}

static void read_resume(up_session *s)
{
    if (s->stash) {
        char *stash = s->stash;
        size_t len = s->stash_len;
        s->stash = NULL;
        s->stash_len = 0;
        session_input(s, stash, len);
        free(stash);
        if (s->stash)
            return;
    }
    if (s->tls && s->state != UP_ST_CLOSING) {
        tls_pump(s);            /* records buffered while we waited */
        if (s->stash)
            return;
    }
    if (!s->reading && s->state != UP_ST_CLOSING && !s->busy) {
        if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
            s->reading = 1;
    }
}

/* A hook chain ended asynchronously: answer, then go on with input. */
static void session_continue(up_session *s)
{
    if (s->state == UP_ST_CLOSING) {
        session_flush(s);
        return;
    }
    session_process(s);
    read_resume(s);
    session_flush(s);
    arm_idle_timer(s);
}

/* ---------------------------------------------------------------------- */
/* verdicts to replies                                                     */

typedef struct hook_reply_defaults {
    int deny;
    const char *deny_enhanced, *deny_text;
    int soft;
    const char *soft_enhanced, *soft_text;
} hook_reply_defaults;

static const hook_reply_defaults reply_defaults[UPESI_HOOK_COUNT] = {
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
static int code_fits(upesi_verdict v, int code)
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
static void reply_denial(up_session *s, upesi_hook hook, upesi_verdict v,
                         const up_reply *r, const char *what)
{
    const hook_reply_defaults *d = &reply_defaults[hook];
    int soft = v == UPESI_DENYSOFT || v == UPESI_DENYSOFTDISCONNECT;
    int code = soft ? d->soft : d->deny;
    const char *enhanced = soft ? d->soft_enhanced : d->deny_enhanced;
    const char *text = soft ? d->soft_text : d->deny_text;
    if (v == UPESI_DENYSOFTDISCONNECT)
        code = 421;
    if (r && r->code && code_fits(v, r->code)) {
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

static int is_denial(upesi_verdict v)
{
    return v == UPESI_DENY || v == UPESI_DENYSOFT ||
           v == UPESI_DENYDISCONNECT || v == UPESI_DENYSOFTDISCONNECT;
}

/* An OK verdict's reply: the plugin's when it gave one. */
static void reply_ok(up_session *s, const up_reply *r, int code,
                     const char *enhanced, const char *text)
{
    if (r && r->code && code_fits(UPESI_OK, r->code)) {
        code = r->code;
        enhanced = r->enhanced ? r->enhanced : enhanced;
    }
    up_session_reply(s, code, enhanced, r && r->text ? r->text : text);
}

/* ---------------------------------------------------------------------- */
/* the transaction                                                         */

static void txn_clear(up_session *s)
{
    s->have_mail = 0;
    free(s->sender);
    s->sender = NULL;
    for (size_t i = 0; i < s->n_rcpts; i++)
        free(s->rcpts[i]);
    s->n_rcpts = 0;
    s->queue_id[0] = '\0';
    s->data_too_big = 0;
    up_message_free(&s->msg);
    up_notes_clear(&s->txn_notes);
    up_actions_clear(&s->actions);
}

static void notify_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    (void)s;
    (void)v;
    (void)r;
}

/* End of a transaction: tell plugins, forget it. */
static void txn_reset(up_session *s)
{
    if (s->have_mail) {
        up_hook_run(s, UPESI_HOOK_RESET, notify_done);
        txn_clear(s);
    }
}

/* ---------------------------------------------------------------------- */
/* connect and greeting                                                    */

static void send_greeting(up_session *s)
{
    char date[64], text[600];
    rfc5322_date(date, sizeof date);
    const char *g = s->cfg->greeting;
    const char *pct = strstr(g, "%s");
    if (pct)
        snprintf(text, sizeof text, "%.*s%s%s", (int)(pct - g), g, date,
                 pct + 2);
    else
        snprintf(text, sizeof text, "%s", g);
    s->greeted = 1;
    s->state = UP_ST_COMMAND;
    up_session_reply(s, 220, NULL, text);
    session_continue(s);
}

static void on_greeting_delay(uv_timer_t *timer)
{
    send_greeting(timer->data);
}

static void on_connect_done(up_session *s, upesi_verdict v,
                            const up_reply *r)
{
    if (v == UPESI_DENYDISCONNECT || v == UPESI_DENYSOFTDISCONNECT) {
        reply_denial(s, UPESI_HOOK_CONNECT, v, r, "connection");
        session_flush(s);
        return;
    }
    if (v == UPESI_DENY || v == UPESI_DENYSOFT) {
        /* Domino's way: greet, then refuse every MAIL FROM. */
        const hook_reply_defaults *d = &reply_defaults[UPESI_HOOK_CONNECT];
        int soft = v == UPESI_DENYSOFT;
        s->reject_code = soft ? d->soft : d->deny;
        snprintf(s->reject_enhanced, sizeof s->reject_enhanced, "%s",
                 soft ? d->soft_enhanced : d->deny_enhanced);
        if (r->code && code_fits(v, r->code)) {
            s->reject_code = r->code;
            if (r->enhanced)
                snprintf(s->reject_enhanced, sizeof s->reject_enhanced, "%s",
                         r->enhanced);
        }
        s->reject_text = strdup(r->text ? r->text :
                                soft ? d->soft_text : d->deny_text);
        up_log(s->id, UPESI_LOG_INFO, "connection marked for rejection by "
               "%s: %d %s %s", r->plugin ? r->plugin : "host",
               s->reject_code, s->reject_enhanced,
               s->reject_text ? s->reject_text : "");
    }
    if (s->cfg->greeting_delay > 0) {
        uv_timer_start(&s->timer, on_greeting_delay,
                       (uint64_t)(s->cfg->greeting_delay * 1000), 0);
        return;
    }
    send_greeting(s);
}

static void tls_begin(up_session *s);

static void session_start(up_session *s)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    s->info.session_id = s->id;
    s->info.remote_ip = s->remote_ip;
    s->info.local_ip = s->local_ip;
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, s->remote_ip, sizeof s->remote_ip);
            s->info.remote_port = ntohs(a->sin6_port);
            s->info.remote_is_ipv6 = 1;
            /* an IPv4 client on a dual-stack socket is an IPv4 client */
            if (!strncmp(s->remote_ip, "::ffff:", 7) &&
                strchr(s->remote_ip, '.')) {
                memmove(s->remote_ip, s->remote_ip + 7,
                        strlen(s->remote_ip + 7) + 1);
                s->info.remote_is_ipv6 = 0;
            }
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, s->remote_ip, sizeof s->remote_ip);
            s->info.remote_port = ntohs(a->sin_port);
        }
    }
    len = sizeof ss;
    if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, s->local_ip, sizeof s->local_ip);
            s->info.local_port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, s->local_ip, sizeof s->local_ip);
            s->info.local_port = ntohs(a->sin_port);
        }
    }
    up_log(s->id, UPESI_LOG_INFO, "connect %s port %d", s->remote_ip,
           s->info.remote_port);
    if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
        s->reading = 1;
    if (s->implicit_tls) {      /* RFC 8314: the handshake comes first */
        tls_begin(s);
        return;
    }
    arm_idle_timer(s);
    up_hook_run(s, UPESI_HOOK_CONNECT, on_connect_done);
}

void up_session_accept(up_server *srv, uv_stream_t *listener, int kind)
{
    int implicit_tls = kind == UP_LISTEN_SMTPS;
    up_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        up_err("accept: out of memory");
        return;
    }
    s->server = srv;
    s->cfg = up_config_ref(srv->config);
    s->state = UP_ST_CONNECT;
    s->implicit_tls = implicit_tls;
    s->info.submission = kind == UP_LISTEN_SUBMISSION;
    snprintf(s->id, sizeof s->id, "%05X%05lX",
             (unsigned)session_pid() & 0xFFFFF, ++srv->next_session & 0xFFFFF);
    up_message_init(&s->msg, s->cfg->spool_dir);
    s->tcp.data = s->timer.data = s->hook_timer.data = s;
    s->auth_timer.data = s;
    uv_tcp_init(srv->loop, &s->tcp);
    uv_timer_init(srv->loop, &s->timer);
    uv_timer_init(srv->loop, &s->hook_timer);
    uv_timer_init(srv->loop, &s->auth_timer);
    srv->sessions++;
    up_stats_add("SMTP.Sessions.Current", 1);
    up_stats_add(srv->sessions_stat, 1);
    if (uv_accept(listener, (uv_stream_t *)&s->tcp) != 0 ||
        up_lines_init(&s->lines, s->cfg->max_command_length) != 0) {
        s->state = UP_ST_CLOSING;
        close_handles(s);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    if (srv->sessions > s->cfg->max_sessions) {
        up_stats_add("SMTP.Sessions.Refused", 1);
        up_log(NULL, UPESI_LOG_NOTICE, "refused connection: max_sessions %d "
               "reached", s->cfg->max_sessions);
        if (!implicit_tls)      /* a TLS client cannot read plain text */
            reply_fmt(s, 421, "4.7.0", "%s Too many sessions, try again later",
                  s->cfg->hostname);
        s->state = UP_ST_CLOSING;
        session_flush(s);
        if (s->writes_in_flight)
            s->close_after_write = 1;
        else
            close_handles(s);
        return;
    }
    up_stats_add("SMTP.Sessions.Accepted", 1);
    up_stats_max("SMTP.Sessions.Peak", up_stats_get("SMTP.Sessions.Current"));
    session_start(s);
}

/* ---------------------------------------------------------------------- */
/* closing                                                                 */

static void session_close(up_session *s, const char *why)
{
    if (s->state == UP_ST_CLOSING)
        return;
    s->state = UP_ST_CLOSING;
    up_hook_cancel(s);
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
    uv_timer_stop(&s->timer);
    uv_timer_stop(&s->auth_timer);
    txn_reset(s);
    up_hook_run(s, UPESI_HOOK_DISCONNECT, notify_done);
    up_dns_session_end(s);      /* no DNS callback runs for s after this */
    up_log(s->id, UPESI_LOG_INFO, "disconnect %s (%s) commands=%llu "
           "messages=%llu errors=%d", s->remote_ip, why,
           (unsigned long long)s->n_commands,
           (unsigned long long)s->n_messages, s->errors);
    session_flush(s);
    if (s->writes_in_flight)
        s->close_after_write = 1;
    else
        close_handles(s);
}

/* ---------------------------------------------------------------------- */
/* TLS (RFC 3207 STARTTLS, RFC 8314 implicit TLS)                          */

/* Encrypt the queued replies and send every record wolfSSL produced.  No
 * plain text is ever sent once s->tls exists: replies queued before the
 * handshake ends (there should be none) are dropped. */
static void tls_flush(up_session *s)
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
        send_raw(s, records, len);
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
static void tls_begin(up_session *s)
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
    up_log(s->id, UPESI_LOG_INFO, "TLS established: %s with cipher %s",
           s->info.tls_version, s->info.tls_cipher);
    if (s->implicit_tls && !s->greeted) {
        s->state = UP_ST_CONNECT;
        arm_idle_timer(s);
        up_hook_run(s, UPESI_HOOK_CONNECT, on_connect_done);
        return;
    }
    txn_reset(s);
    free(s->helo);
    s->helo = NULL;
    s->info.helo = NULL;
    s->info.esmtp = 0;
    ehlo_ext_clear(s);          /* and an AUTH from before: RFC 3207 4.2 */
    free(s->auth_user);
    s->auth_user = NULL;
    s->info.auth_user = NULL;
    s->info.authenticated = 0;
    s->state = UP_ST_COMMAND;
    arm_idle_timer(s);
}

/* Drive the handshake, then decrypt what is buffered into the line reader
 * until it is used up or the line reader is full (the rest waits, as
 * plain text waits in the stash). */
static void tls_pump(up_session *s)
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

static void cmd_starttls(up_session *s)
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
        tls_begin(s);
}

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

static void ehlo_ext_clear(up_session *s)
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
    n = ehlo_ext_append(s, text, sizeof text - 32, n);
    snprintf(text + n, sizeof text - (size_t)n,
             "\n8BITMIME\nENHANCEDSTATUSCODES");
    up_session_reply(s, 250, NULL, text);
}

static void on_helo_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (is_denial(v)) {
        free(s->helo);
        s->helo = NULL;
        s->info.helo = NULL;
        ehlo_ext_clear(s);
        reply_denial(s, UPESI_HOOK_HELO, v, r, "HELO");
    } else if (v == UPESI_OK && r->text) {
        reply_ok(s, r, 250, NULL, NULL);
    } else {
        ehlo_reply(s);
    }
    session_continue(s);
}

static void cmd_helo(up_session *s, int esmtp)
{
    const char *name = s->cmd.arg;
    if (*name == '\0' || strchr(name, ' ')) {
        up_session_reply(s, 501, "5.5.4", esmtp ? "Syntax: EHLO hostname" :
                                                  "Syntax: HELO hostname");
        return;
    }
    txn_reset(s);
    ehlo_ext_clear(s);
    free(s->helo);
    s->helo = strdup(name);
    s->info.helo = s->helo;
    s->info.esmtp = esmtp;
    up_hook_run(s, UPESI_HOOK_HELO, on_helo_done);
}

static void on_mail_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (is_denial(v)) {
        reply_denial(s, UPESI_HOOK_MAIL, v, r, "sender");
    } else {
        s->have_mail = 1;
        s->sender = strdup(s->path.mailbox);
        if (s->sender == NULL) {
            s->have_mail = 0;
            up_session_reply(s, 451, "4.3.0", "Out of memory");
        } else {
            char text[UP_MAX_ADDRESS + 32];
            str_join(text, sizeof text, "Sender <", s->sender, "> ok",
                     (const char *)NULL);
            reply_ok(s, r, 250, "2.1.0", text);
        }
    }
    session_continue(s);
}

/* Host-level checks of MAIL and RCPT parameters we advertise. */
static int check_mail_params(up_session *s)
{
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
                strcasecmp(p->value, "8BITMIME")) {
                up_session_reply(s, 501, "5.5.4", "Unsupported BODY type");
                return -1;
            }
        } else {
            reply_fmt(s, 555, "5.5.4", "Unsupported parameter %s",
                      p->keyword);
            return -1;
        }
    }
    return 0;
}

static int parse_path(up_session *s, int is_rcpt)
{
    up_parse_error err;
    if (up_path_parse(s->cmd.arg, is_rcpt, &s->path, &err) != 0) {
        up_session_reply(s, err.code, err.enhanced, err.text);
        return -1;
    }
    if (s->path.local_8bit) {
        up_session_reply(s, 553, "5.6.7", "Non-ASCII address requires "
                         "SMTPUTF8, which this server does not offer");
        return -1;
    }
    return 0;
}

static void cmd_mail(up_session *s)
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
    if (is_denial(v)) {
        reply_denial(s, UPESI_HOOK_RCPT, v, r, "recipient");
        session_continue(s);
        return;
    }
    if (v == UPESI_CONT && !up_config_is_local(s->cfg, s->path.mailbox)) {
        up_reply relay = { 550, "5.7.1", "Relaying denied", NULL };
        reply_denial(s, UPESI_HOOK_RCPT, UPESI_DENY, &relay, "recipient");
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
    s->rcpts[s->n_rcpts] = strdup(s->path.mailbox);
    if (s->rcpts[s->n_rcpts] == NULL) {
        up_session_reply(s, 451, "4.3.0", "Out of memory");
    } else {
        s->n_rcpts++;
        char text[UP_MAX_ADDRESS + 32];
        str_join(text, sizeof text, "Recipient <", s->path.mailbox, "> ok",
                 (const char *)NULL);
        reply_ok(s, r, 250, "2.1.5", text);
    }
    session_continue(s);
}

static void cmd_rcpt(up_session *s)
{
    if (!s->have_mail) {
        up_session_reply(s, 503, "5.5.1", "Error: need MAIL command");
        return;
    }
    if (parse_path(s, 1) != 0)
        return;
    if (s->path.nparams) {
        reply_fmt(s, 555, "5.5.4", "Unsupported parameter %s",
                  s->path.params[0].keyword);
        return;
    }
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
    rfc5322_date(date, sizeof date);
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
    str_join(text, size, "Received: from ", helo, " (unknown [",
             s->remote_ip, "])", tls, "\r\n\tby ", s->cfg->hostname,
             version, " with ", proto, " id ", s->queue_id, for_open,
             for_rcpt, for_close, "; ", date, "\r\n", (const char *)NULL);
    if (up_message_set_received(&s->msg, text) != 0)
        s->msg.error = ENOMEM;
    free(text);
}

static void message_done(up_session *s, int accepted)
{
    up_stats_add(accepted ? "SMTP.Messages.Accepted" :
                            "SMTP.Messages.Rejected", 1);
    if (accepted) {
        s->n_messages++;
        if (s->info.tls)
            up_stats_add("SMTP.Messages.TLS", 1);
    }
    txn_reset(s);
}

static void on_queue_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (v == UPESI_OK) {
        char text[128];
        str_join(text, sizeof text, "Ok: queued as ", s->queue_id,
                 (const char *)NULL);
        up_log(s->id, UPESI_LOG_INFO, "queued %s from=<%s> nrcpt=%zu "
               "size=%lld by %s", s->queue_id, s->sender, s->n_rcpts,
               (long long)up_message_size(&s->msg),
               r->plugin ? r->plugin : "host");
        reply_ok(s, r, 250, "2.0.0", text);
        message_done(s, 1);
    } else if (v == UPESI_CONT) {
        up_log(s->id, UPESI_LOG_ERR, "message %s not queued: no queue "
               "plugin accepted it (add queue_spool to conf/plugins)",
               s->queue_id);
        up_session_reply(s, 451, "4.3.0", "Error: no queue configured");
        message_done(s, 0);
    } else {
        reply_denial(s, UPESI_HOOK_QUEUE, v, r, "message");
        message_done(s, 0);
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
        message_done(s, 0);
    } else if (s->actions.disposition == UP_DISP_DELIVER) {
        up_hook_run(s, UPESI_HOOK_QUEUE, on_queue_done);
        return;
    } else {
        char text[128];
        str_join(text, sizeof text, "Ok: queued as ", s->queue_id,
                 (const char *)NULL);
        up_session_reply(s, 250, "2.0.0", text);
        message_done(s, 1);
    }
    session_continue(s);
}

static void on_data_post_done(up_session *s, upesi_verdict v,
                              const up_reply *r)
{
    if (is_denial(v)) {
        reply_denial(s, UPESI_HOOK_DATA_POST, v, r, "message");
        message_done(s, 0);
        session_continue(s);
        return;
    }
    if (s->actions.disposition == UP_DISP_REJECT) {
        up_reply reject = { 550, "5.7.1", s->actions.reason,
                            s->actions.by };
        reply_denial(s, UPESI_HOOK_DATA_POST, UPESI_DENY, &reject,
                     "message");
        message_done(s, 0);
        session_continue(s);
        return;
    }
    s->busy = 1;                /* until the actions' files are written */
    up_actions_run(s, on_actions_done);
}

static void data_end(up_session *s)
{
    s->state = UP_ST_COMMAND;
    if (s->data.bare_lf || s->data.bare_cr)
        up_notes_set(&s->txn_notes, "data.bare_line_ends", "1");
    if (s->data_too_big) {
        up_log(s->id, UPESI_LOG_INFO, "message %s rejected: larger than "
               "max_message_size %llu", s->queue_id,
               (unsigned long long)s->cfg->max_message_size);
        up_session_reply(s, 552, "5.3.4", "Message size exceeds fixed "
                         "maximum message size");
        message_done(s, 0);
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
        message_done(s, 0);
        return;
    }
    up_hook_run(s, UPESI_HOOK_DATA_POST, on_data_post_done);
}

static void on_data_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (is_denial(v)) {
        reply_denial(s, UPESI_HOOK_DATA, v, r, "DATA");
    } else {
        up_session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
        s->state = UP_ST_DATA;
        up_data_init(&s->data, data_sink, s);
    }
    session_continue(s);
}

static void cmd_data(up_session *s)
{
    if (!s->have_mail) {
        up_session_reply(s, 503, "5.5.1", "Error: need MAIL command");
        return;
    }
    if (s->n_rcpts == 0) {
        up_session_reply(s, 554, "5.5.1", "Error: no valid recipients");
        return;
    }
    if (*s->cmd.arg) {
        up_session_reply(s, 501, "5.5.4", "Syntax: DATA");
        return;
    }
    make_queue_id(s->queue_id, sizeof s->queue_id);
    up_hook_run(s, UPESI_HOOK_DATA, on_data_done);
}

/* -- the rest */

static void on_vrfy_done(up_session *s, upesi_verdict v, const up_reply *r)
{
    if (is_denial(v))
        reply_denial(s, UPESI_HOOK_VRFY, v, r, "VRFY");
    else if (v == UPESI_OK)
        reply_ok(s, r, 250, "2.1.5", s->cmd.arg);
    else
        up_session_reply(s, 252, "2.5.2", "Cannot VRFY user, but will "
                         "accept message and attempt delivery");
    session_continue(s);
}

static void cmd_vrfy(up_session *s)
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

static void on_unrecognized_done(up_session *s, upesi_verdict v,
                                 const up_reply *r)
{
    if (v == UPESI_OK) {
        reply_ok(s, r, 250, "2.0.0", "Ok");
    } else if (is_denial(v)) {
        reply_denial(s, UPESI_HOOK_UNRECOGNIZED, v, r, "command");
    } else {
        up_stats_add("SMTP.Command.Invalid", 1);
        up_session_reply(s, 500, "5.5.1", "Error: command not recognized");
    }
    session_continue(s);
}

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

static void auth_forget(up_session *s)
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
    s->auth_fail_code = 535;
    snprintf(s->auth_fail_enhanced, sizeof s->auth_fail_enhanced, "5.7.8");
    if (r && r->code && code_fits(UPESI_DENY, r->code)) {
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
    auth_forget(s);
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
        auth_forget(s);
        up_stats_add("SMTP.Auth.Success", 1);
        up_log(s->id, UPESI_LOG_INFO, "AUTH %s succeeded (by %s)", mech, by);
        up_log(s->id, UPESI_LOG_DEBUG, "AUTH %s: user %s", mech,
               s->auth_user);
        reply_ok(s, r, 235, "2.7.0", "Authentication successful");
        session_continue(s);
        return;
    }
    if (v == UPESI_DENYSOFT || v == UPESI_DENYSOFTDISCONNECT) {
        auth_forget(s);
        up_stats_add("SMTP.Auth.Deferred", 1);
        reply_denial(s, UPESI_HOOK_AUTH, v, r, "AUTH");
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
    auth_forget(s);
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
            auth_forget(s);
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
            auth_forget(s);
            up_session_reply(s, 454, "4.3.0", "Out of memory");
        } else {
            auth_malformed(s, "malformed base64");
        }
        return;
    }
    auth_step(s, data, dlen);
}

/* A line while an exchange waits for the client's response to a 334. */
static void auth_response(up_session *s, up_line *line)
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
        auth_forget(s);
        up_session_reply(s, 501, "5.0.0", "Authentication cancelled");
        return;
    }
    auth_input(s, line->text, line->len);
}

static void cmd_auth(up_session *s, up_line *line)
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

/* The per-command counters, by verb: no name is formatted per command
 * (a verb added without an entry here gets its name formatted). */
static const char *const command_stat[UP_VERB_COUNT] = {
    [UP_VERB_HELO] = "SMTP.Command.HELO", [UP_VERB_EHLO] = "SMTP.Command.EHLO",
    [UP_VERB_MAIL] = "SMTP.Command.MAIL", [UP_VERB_RCPT] = "SMTP.Command.RCPT",
    [UP_VERB_DATA] = "SMTP.Command.DATA", [UP_VERB_RSET] = "SMTP.Command.RSET",
    [UP_VERB_NOOP] = "SMTP.Command.NOOP", [UP_VERB_QUIT] = "SMTP.Command.QUIT",
    [UP_VERB_VRFY] = "SMTP.Command.VRFY", [UP_VERB_EXPN] = "SMTP.Command.EXPN",
    [UP_VERB_HELP] = "SMTP.Command.HELP",
    [UP_VERB_STARTTLS] = "SMTP.Command.STARTTLS",
    [UP_VERB_AUTH] = "SMTP.Command.AUTH", [UP_VERB_BDAT] = "SMTP.Command.BDAT",
};

static void handle_command(up_session *s, up_line *line)
{
    s->n_commands++;
    if (s->auth_state != UP_AUTH_IDLE) {        /* an AUTH exchange */
        auth_response(s, line);
        return;
    }
    if (line->status == UP_LINE_TOO_LONG) {
        up_stats_add("SMTP.Command.Invalid", 1);
        up_log(s->id, UPESI_LOG_NOTICE, "command longer than %zu bytes",
               s->cfg->max_command_length);
        up_session_reply(s, 500, "5.5.2", "Error: line too long");
        return;
    }
    if (line->has_nul) {
        up_stats_add("SMTP.Command.Invalid", 1);
        up_session_reply(s, 500, "5.5.2", "Error: NUL byte in command");
        return;
    }
    free(s->line);
    s->line = strdup(line->text);
    if (s->line == NULL) {
        up_session_reply(s, 421, "4.3.0", "Out of memory");
        session_close(s, "out of memory");
        return;
    }
    s->line_end = line->end;
    up_command_parse(s->line, &s->cmd);
    if (s->cmd.verb == UP_VERB_UNKNOWN) {
        up_hook_run(s, UPESI_HOOK_UNRECOGNIZED, on_unrecognized_done);
        return;
    }
    if (command_stat[s->cmd.verb] != NULL) {
        up_stats_add(command_stat[s->cmd.verb], 1);
    } else {
        char stat[48];
        snprintf(stat, sizeof stat, "SMTP.Command.%s",
                 up_verb_name(s->cmd.verb));
        up_stats_add(stat, 1);
    }
    switch (s->cmd.verb) {
    case UP_VERB_HELO:
        cmd_helo(s, 0);
        break;
    case UP_VERB_EHLO:
        cmd_helo(s, 1);
        break;
    case UP_VERB_MAIL:
        cmd_mail(s);
        break;
    case UP_VERB_RCPT:
        cmd_rcpt(s);
        break;
    case UP_VERB_DATA:
        cmd_data(s);
        break;
    case UP_VERB_RSET:
        txn_reset(s);
        up_session_reply(s, 250, "2.0.0", "Ok");
        break;
    case UP_VERB_NOOP:
        up_session_reply(s, 250, "2.0.0", "Ok");
        break;
    case UP_VERB_QUIT:
        reply_fmt(s, 221, "2.0.0", "%s Bye", s->cfg->hostname);
        session_close(s, "QUIT");
        break;
    case UP_VERB_VRFY:
        cmd_vrfy(s);
        break;
    case UP_VERB_HELP:
        up_session_reply(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT "
                         "DATA RSET NOOP QUIT VRFY HELP");
        break;
    case UP_VERB_STARTTLS:
        cmd_starttls(s);
        break;
    case UP_VERB_AUTH:
        cmd_auth(s, line);
        break;
    default: /* known, not offered: EXPN, BDAT */
        reply_fmt(s, 502, "5.5.1", "Error: %s not implemented",
                  up_verb_name(s->cmd.verb));
        break;
    }
}

static void session_process(up_session *s)
{
    while (s->state != UP_ST_CLOSING && s->state != UP_ST_TLS_HANDSHAKE &&
           !s->busy && s->greeted) {
        if (s->state == UP_ST_DATA) {
            size_t len, used = 0;
            const char *p = up_lines_pending(&s->lines, &len);
            if (len == 0)
                break;
            int done = up_data_feed(&s->data, p, len, &used);
            up_lines_consume(&s->lines, used);
            if (done)
                data_end(s);
            continue;
        }
        up_line line;
        if (!up_lines_next(&s->lines, &line))
            break;
        if (!s->cfg->pipelining && !s->info.early_talker) {
            size_t pending;
            up_lines_pending(&s->lines, &pending);
            if (pending) {
                early_talker(s, "pipelined without PIPELINING");
                if (s->state == UP_ST_CLOSING)
                    break;
            }
        }
        handle_command(s, &line);
    }
}
