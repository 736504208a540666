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
 * This file holds the connection's life (accept, greeting, input, output,
 * close) and the command dispatch; session_cmd.c the commands,
 * session_reply.c verdicts to replies, session_tls.c STARTTLS and
 * implicit TLS, session_auth.c SMTP AUTH (shared: session_int.h).
 *
 * Timeouts: the idle timeout (5 minutes x timeout_multiplier) restarts
 * with every read; a command line must also be complete within
 * command_deadline of its first byte, and the message content within
 * data_deadline of the 354 (both x timeout_multiplier), so that a client
 * sending a byte now and then cannot keep a session for ever.  One timer
 * runs to whichever comes first.
 *
 * Stopping (SIGTERM, worker.c): a session with no transaction in progress
 * gets 421 4.3.2 and is closed, at once or as soon as its transaction
 * ends; stop_timeout cuts the rest (up_session_stop_cut).
 *
 * Fails: every bad input is answered (5xx/4xx) and counted towards
 * error_limit; allocation failure closes the session with 421; a client
 * past the idle timeout or a deadline gets 421 4.4.2 and is closed.
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
#include "simulate.h"
#include "session.h"
#include "session_int.h"
#include "stats.h"
#include "tls.h"
#include "version.h"

static void session_process(up_session *s);
static void read_resume(up_session *s);

static uint64_t timeout_ms(const up_session *s)
{
    double ms = UP_SERVER_TIMEOUT_MS * s->cfg->timeout_multiplier;
    return ms < 1 ? 1 : (uint64_t)ms;
}

/* command_deadline or data_deadline, in ms, 0 = none */
static uint64_t deadline_ms(const up_session *s, double seconds)
{
    double ms = seconds * 1000 * s->cfg->timeout_multiplier;
    return seconds <= 0 ? 0 : ms < 1 ? 1 : (uint64_t)ms;
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

void session_reply_fmt(up_session *s, int code, const char *enhanced,
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
    if (s->srv_prev)
        s->srv_prev->srv_next = s->srv_next;
    else
        s->server->session_list = s->srv_next;
    if (s->srv_next)
        s->srv_next->srv_prev = s->srv_prev;
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
    free(s->proxy_buf);
    free(s->out);
    free(s->reject_text);
    session_auth_forget(s);
    session_ehlo_ext_clear(s);
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

/* A closed session whose last replies its client does not read goes all
 * the same this long (times timeout_multiplier) after: a client that
 * never reads would otherwise keep its slot (max_sessions), its socket
 * and its buffers for as long as it stays connected. */
#define UP_CLOSE_LINGER_S 10.0

static void close_linger_expired(uv_timer_t *t)
{
    up_session *s = t->data;
    if (!s->close_after_write)
        return;
    s->close_after_write = 0;   /* the cancelled writes must not close again */
    close_handles(s);
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
            UP_MAX_PENDING_OUTPUT / 2) {
        read_resume(s);
        if (s->eof && !s->busy && !s->stash && s->state != UP_ST_CLOSING)
            session_close(s, "client closed");  /* all it sent answered */
    }
}

/* Write bytes as they are: replies in plain text, or TLS records. */
void session_send_raw(up_session *s, const char *data, size_t len)
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

void session_flush(up_session *s)
{
    if (s->tls) {
        session_tls_flush(s);
        return;
    }
    if (s->out_len == 0)
        return;
    size_t len = s->out_len;
    s->out_len = 0;             /* before: a failed write closes, and
                                   session_close flushes again */
    session_send_raw(s, s->out, len);
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
    if (s->timer_for_deadline &&
        (s->deadline_at == 0 || s->deadline_at > uv_now(timer->loop))) {
        session_arm_idle_timer(s);  /* that deadline ended meanwhile */
        return;
    }
    if (s->timer_for_deadline) {
        const char *what = s->deadline_data ? "message content"
                                            : "command line";
        up_stats_add("SMTP.Sessions.Deadline", 1);
        up_log(s->id, UPESI_LOG_NOTICE, "%s not complete within %gs "
               "(%s x timeout_multiplier)", what,
               (s->deadline_data ? s->cfg->data_deadline
                                 : s->cfg->command_deadline) *
                   s->cfg->timeout_multiplier,
               s->deadline_data ? "data_deadline" : "command_deadline");
        session_reply_fmt(s, 421, "4.4.2", "%s Error: %s not complete "
                          "within its deadline", s->cfg->hostname, what);
        session_close(s, s->deadline_data ? "data deadline"
                                          : "command deadline");
        return;
    }
    up_stats_add("SMTP.Sessions.Timeout", 1);
    session_reply_fmt(s, 421, "4.4.2", "%s Error: timeout exceeded",
                      s->cfg->hostname);
    session_close(s, "timeout");
}

/* The idle timeout from now, or the running deadline if that comes
 * first (a tie is an idle timeout: the client was silent throughout). */
void session_arm_idle_timer(up_session *s)
{
    /* a handshake has its own deadline, which input does not extend */
    if (s->state == UP_ST_CLOSING || s->state == UP_ST_TLS_HANDSHAKE)
        return;
    uint64_t now = uv_now(s->server->loop);
    uint64_t ms = timeout_ms(s);
    s->timer_for_deadline = s->deadline_at && s->deadline_at < now + ms;
    if (s->timer_for_deadline)
        ms = s->deadline_at > now ? s->deadline_at - now : 0;
    uv_timer_start(&s->timer, on_idle_timeout, ms, 0);
}

/* The message content's deadline starts with the 354 (session_cmd.c);
 * 0 stops it at the end of data. */
void session_data_deadline(up_session *s, int start)
{
    uint64_t ms = start ? deadline_ms(s, s->cfg->data_deadline) : 0;
    s->deadline_at = ms ? uv_now(s->server->loop) + ms : 0;
    s->deadline_data = start;
}

/* After input in command state: a command line that has begun and is not
 * complete runs against command_deadline from the read that brought its
 * first byte (session_process stops it when the line is taken).  Not
 * while a hook chain runs: what is buffered then is pipelined input the
 * server has not taken yet (whole lines, or a BDAT chunk's bytes), not a
 * slow client; session_continue looks again when the chain ends. */
static void command_deadline_update(up_session *s)
{
    if (s->state != UP_ST_COMMAND || s->deadline_data || s->busy)
        return;
    size_t pending;
    up_lines_pending(&s->lines, &pending);
    uint64_t ms = deadline_ms(s, s->cfg->command_deadline);
    if ((pending == 0 && s->stash_len == 0) || ms == 0)
        s->deadline_at = 0;
    else if (s->deadline_at == 0)
        s->deadline_at = uv_now(s->server->loop) + ms;
}

/* Give input to the line reader; what does not fit waits in the stash. */
void session_input(up_session *s, const char *buf, size_t len)
{
    while (len > 0 && s->state != UP_ST_CLOSING &&
           s->state != UP_ST_TLS_HANDSHAKE) {
        long n = up_lines_feed(&s->lines, buf, len);
        if (n < 0) {
            session_reply_fmt(s, 421, "4.3.0", "%s Error: out of memory",
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
void session_received(up_session *s, const char *buf, size_t len)
{
    if (!s->greeted && !s->info.early_talker)
        early_talker(s, "sent data before the greeting");
    session_input(s, buf, len);
    if (s->greeted) {           /* before it, the timer is the delay's */
        command_deadline_update(s);
        session_arm_idle_timer(s);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    up_session *s = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* A client may send the end of its message (and QUIT) and
         * half-close (shutdown SHUT_WR) while the message is being
         * judged or made durable: it is answered before the session ends,
         * or a message queued meanwhile would get no 250 and be sent
         * again.  Any other pending call is cancelled at once, as for a
         * client that went away: holding the session to finish it would
         * let a client that connects and leaves keep sessions busy. */
        if (nread == UV_EOF && s->busy && s->state != UP_ST_CLOSING &&
            (s->hook == UPESI_HOOK_DATA_POST || s->hook == UPESI_HOOK_QUEUE)) {
            s->eof = 1;
            uv_read_stop(stream);
            s->reading = 0;
            return;
        }
        session_close(s, nread == UV_EOF ? "client closed" :
                      uv_strerror((int)nread));
        return;
    }
    up_stats_add("SMTP.Bytes.Received", nread);
    if (s->state == UP_ST_PROXY) {
        session_proxy_input(s, buf->base, (size_t)nread);
    } else if (s->tls) {               /* ciphertext: session_tls_pump decrypts it */
        if (up_tls_feed(s->tls, buf->base, (size_t)nread) != 0) {
            up_log(s->id, UPESI_LOG_NOTICE, "TLS: %s",
                   up_tls_error(s->tls));
            session_close(s, "TLS input overflow");
            return;
        }
        session_tls_pump(s);
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
        session_tls_pump(s);            /* records buffered while we waited */
        if (s->stash)
            return;
    }
    if (!s->reading && s->state != UP_ST_CLOSING && !s->busy && !s->eof) {
        if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
            s->reading = 1;
    }
}

/* A hook chain ended asynchronously: answer, then go on with input. */
void session_continue(up_session *s)
{
    if (s->state == UP_ST_CLOSING) {
        session_flush(s);
        return;
    }
    session_process(s);
    command_deadline_update(s);
    read_resume(s);
    if (s->eof && !s->busy && !s->stash && s->state != UP_ST_CLOSING) {
        session_close(s, "client closed");  /* all it sent is answered */
        return;
    }
    session_flush(s);
    session_arm_idle_timer(s);
}

/* ---------------------------------------------------------------------- */
/* the transaction                                                         */

static void txn_clear(up_session *s)
{
    s->have_mail = 0;
    s->smtputf8 = 0;
    free(s->sender);
    s->sender = NULL;
    for (size_t i = 0; i < s->n_rcpts; i++)
        free(s->rcpts[i]);
    s->n_rcpts = 0;
    s->queue_id[0] = '\0';
    s->data_too_big = 0;
    s->bdat_used = 0;
    s->body_binary = 0;
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
void session_txn_reset(up_session *s)
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
    up_rfc5322_date(date, sizeof date);
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

void session_on_connect_done(up_session *s, upesi_verdict v,
                             const up_reply *r)
{
    if (v == UPESI_DENYDISCONNECT || v == UPESI_DENYSOFTDISCONNECT) {
        session_reply_denial(s, UPESI_HOOK_CONNECT, v, r, "connection");
        session_flush(s);
        return;
    }
    if (v == UPESI_DENY || v == UPESI_DENYSOFT) {
        /* Domino's way: greet, then refuse every MAIL FROM. */
        const hook_reply_defaults *d =
            &session_reply_defaults[UPESI_HOOK_CONNECT];
        int soft = v == UPESI_DENYSOFT;
        s->reject_code = soft ? d->soft : d->deny;
        snprintf(s->reject_enhanced, sizeof s->reject_enhanced, "%s",
                 soft ? d->soft_enhanced : d->deny_enhanced);
        if (r->code && session_code_fits(v, r->code)) {
            s->reject_code = r->code;
            if (r->enhanced)
                snprintf(s->reject_enhanced, sizeof s->reject_enhanced, "%s",
                         r->enhanced);
        }
        free(s->reject_text);   /* an early talker's, set before the greeting */
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


static void session_start(up_session *s, int proxy)
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
    if (up_simulate_ip()) {     /* -bh IP: the client it pretends to be */
        snprintf(s->remote_ip, sizeof s->remote_ip, "%s", up_simulate_ip());
        s->info.remote_is_ipv6 = strchr(s->remote_ip, ':') != NULL;
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
    if (proxy) {                /* the client's address comes first */
        session_proxy_start(s);
        return;
    }
    session_begin(s);
}

/* The connection is the client's (after the PROXY header, if any). */
void session_begin(up_session *s)
{
    /* the client as the connection (or its PROXY header) says: XCLIENT
     * later does not change who may send XCLIENT */
    s->xclient_ok = session_xclient_allowed(s);
    memcpy(s->xclient_peer, s->remote_ip, sizeof s->xclient_peer);
    if (s->implicit_tls) {      /* RFC 8314: the handshake comes first */
        session_tls_begin(s);
        return;
    }
    session_arm_idle_timer(s);
    up_hook_run(s, UPESI_HOOK_CONNECT, session_on_connect_done);
}

void up_session_accept(up_server *srv, uv_stream_t *listener, int kind)
{
    int implicit_tls = (kind & UP_LISTEN_KIND) == UP_LISTEN_SMTPS;
    up_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        up_err("accept: out of memory");
        return;
    }
    s->server = srv;
    s->cfg = up_config_ref(srv->config);
    s->state = UP_ST_CONNECT;
    s->implicit_tls = implicit_tls;
    s->info.submission = (kind & UP_LISTEN_KIND) == UP_LISTEN_SUBMISSION;
    up_session_id_make(s->id, sizeof s->id, ++srv->next_session);
    up_message_init(&s->msg, s->cfg->spool_dir);
    s->tcp.data = s->timer.data = s->hook_timer.data = s;
    s->auth_timer.data = s;
    s->srv_next = srv->session_list;
    if (srv->session_list)
        srv->session_list->srv_prev = s;
    srv->session_list = s;
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
            session_reply_fmt(s, 421, "4.7.0", "%s Too many sessions, try "
                              "again later", s->cfg->hostname);
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
    session_start(s, (kind & UP_LISTEN_PROXY) != 0);
}

/* ---------------------------------------------------------------------- */
/* closing                                                                 */

void session_close(up_session *s, const char *why)
{
    if (s->state == UP_ST_CLOSING)
        return;
    int began = s->state != UP_ST_PROXY;    /* the connect hook ran */
    s->state = UP_ST_CLOSING;
    up_hook_cancel(s);
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
    uv_timer_stop(&s->timer);
    uv_timer_stop(&s->auth_timer);
    session_txn_reset(s);
    if (began)
        up_hook_run(s, UPESI_HOOK_DISCONNECT, notify_done);
    up_dns_session_end(s);      /* no DNS callback runs for s after this */
    up_log(s->id, UPESI_LOG_INFO, "disconnect %s (%s) commands=%llu "
           "messages=%llu errors=%d", s->remote_ip, why,
           (unsigned long long)s->n_commands,
           (unsigned long long)s->n_messages, s->errors);
    session_flush(s);
    if (s->writes_in_flight) {
        s->close_after_write = 1;
        uv_timer_start(&s->timer, close_linger_expired,
                       deadline_ms(s, UP_CLOSE_LINGER_S), 0);
    } else {
        close_handles(s);
    }
}

/* ---------------------------------------------------------------------- */
/* stopping (SIGTERM)                                                      */

static void stop_close(up_session *s, const char *why)
{
    /* no plain text into a TLS handshake: the client could not read it */
    if (s->state != UP_ST_TLS_HANDSHAKE)
        session_reply_fmt(s, 421, "4.3.2", "%s Service shutting down, "
                          "closing connection", s->cfg->hostname);
    session_close(s, why);
}

/* The worker stops and s has no transaction in progress (no MAIL accepted
 * and not being finished): 421 4.3.2 and close.  1 if it did.  A MAIL
 * whose hook chain still runs is no transaction yet: it is cancelled. */
static int stop_if_idle(up_session *s)
{
    if (!s->server->stopping || s->state == UP_ST_CLOSING || s->have_mail)
        return 0;
    stop_close(s, "shutting down");
    return 1;
}

void up_session_stop(up_session *s)
{
    stop_if_idle(s);
}

void up_session_stop_cut(up_session *s)
{
    if (s->state == UP_ST_CLOSING)
        return;
    up_log(s->id, UPESI_LOG_NOTICE, "transaction still in progress after "
           "stop_timeout %gs; closing", s->server->config->stop_timeout);
    stop_close(s, "stop_timeout");
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
    [UP_VERB_XCLIENT] = "SMTP.Command.XCLIENT",
};

static void handle_command(up_session *s, up_line *line)
{
    s->n_commands++;
    if (s->auth_state != UP_AUTH_IDLE) {        /* an AUTH exchange */
        session_auth_response(s, line);
        return;
    }
    if (line->status == UP_LINE_TOO_LONG) {
        up_stats_add("SMTP.Command.Invalid", 1);
        up_log(s->id, UPESI_LOG_NOTICE, "command longer than %d bytes",
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
        up_hook_run(s, UPESI_HOOK_UNRECOGNIZED, session_on_unrecognized_done);
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
        session_cmd_helo(s, 0);
        break;
    case UP_VERB_EHLO:
        session_cmd_helo(s, 1);
        break;
    case UP_VERB_MAIL:
        session_cmd_mail(s);
        break;
    case UP_VERB_RCPT:
        session_cmd_rcpt(s);
        break;
    case UP_VERB_DATA:
        session_cmd_data(s);
        break;
    case UP_VERB_RSET:
        session_txn_reset(s);
        up_session_reply(s, 250, "2.0.0", "Ok");
        break;
    case UP_VERB_NOOP:
        up_session_reply(s, 250, "2.0.0", "Ok");
        break;
    case UP_VERB_QUIT:
        session_reply_fmt(s, 221, "2.0.0", "%s Bye", s->cfg->hostname);
        session_close(s, "QUIT");
        break;
    case UP_VERB_VRFY:
        session_cmd_vrfy(s);
        break;
    case UP_VERB_HELP:
        up_session_reply(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT "
                         "DATA BDAT RSET NOOP QUIT VRFY HELP");
        break;
    case UP_VERB_STARTTLS:
        session_cmd_starttls(s);
        break;
    case UP_VERB_AUTH:
        session_cmd_auth(s, line);
        break;
    case UP_VERB_BDAT:
        session_cmd_bdat(s);
        break;
    case UP_VERB_XCLIENT:
        session_cmd_xclient(s);
        break;
    default: /* known, not offered: EXPN */
        session_reply_fmt(s, 502, "5.5.1", "Error: %s not implemented",
                          up_verb_name(s->cmd.verb));
        break;
    }
}

static void session_process(up_session *s)
{
    while (s->state != UP_ST_CLOSING && s->state != UP_ST_TLS_HANDSHAKE &&
           !s->busy && s->greeted) {
        if (stop_if_idle(s))
            return;             /* a stop: no new transaction */
        if (s->state == UP_ST_DATA) {
            size_t len, used = 0;
            const char *p = up_lines_pending(&s->lines, &len);
            if (len == 0)
                break;
            int done = up_data_feed(&s->data, p, len, &used);
            up_lines_consume(&s->lines, used);
            if (done)
                session_data_end(s);
            continue;
        }
        if (s->state == UP_ST_BDAT) {
            if (!session_bdat_feed(s))
                break;          /* the rest of the chunk is not here yet */
            continue;
        }
        up_line line;
        if (!up_lines_next(&s->lines, &line))
            break;
        s->deadline_at = 0;     /* the line is complete */
        if (!s->cfg->pipelining && !s->info.early_talker &&
            strncasecmp(line.text, "BDAT ", 5) != 0) {
            /* (a BDAT chunk's bytes follow its command at once) */
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
    stop_if_idle(s);
}
