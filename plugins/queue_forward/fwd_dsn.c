/*
 * fwd_dsn.c - delivery status notifications (RFC 3464): a
 * multipart/report with a human part, a message/delivery-status part (one
 * per-recipient block per recipient: Action failed, delayed or relayed)
 * and the original: the whole message (message/rfc822) when the sender
 * asked RET=FULL on a failure and it is at most FWD_DSN_FULL_MAX, else its
 * headers (text/rfc822-headers).  DSN's ENVID and ORCPT (RFC 3461 6.3)
 * come back as Original-Envelope-Id and Original-Recipient, decoded from
 * xtext.  A report about UTF-8 addresses (SMTPUTF8) is a
 * message/global-delivery-status with utf-8 address types (RFC 6533).
 *
 * Fails: NULL when memory runs out; an original that cannot be read gets
 * a report without the third part's content.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "forward.h"

#define FWD_DSN_HEADERS_MAX (64 * 1024)

static void rfc5322_date(time_t t, char *buf, size_t len)
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* The status for a recipient: its enhanced code, else one from the
 * reply's class (RFC 3463: x.0.0), 4.4.7 for an expired message. */
static void dsn_status(const fwd_rcpt *r, int kind, char *out, size_t len)
{
    if (kind == FWD_DSN_RELAYED)
        snprintf(out, len, "2.0.0");
    else if (kind == FWD_DSN_DELAYED)
        snprintf(out, len, "%s", r->enhanced[0] == '4' ? r->enhanced
                                                       : "4.0.0");
    else if (r->enhanced[0] == '5')
        snprintf(out, len, "%s", r->enhanced);
    else if (r->code >= 500)
        snprintf(out, len, "5.0.0");
    else
        snprintf(out, len, "4.4.7");    /* temporary until it expired */
}

/* xtext (already checked by the host) decoded; a bad escape is kept */
static void xtext_decode(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *p = in; *p && n + 1 < outlen; p++) {
        unsigned v;
        if (*p == '+' && sscanf(p + 1, "%2x", &v) == 1 && v >= 32 &&
            v < 127) {
            out[n++] = (char)v;
            p += 2;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

static int has_8bit(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

/* Copy the original: the headers only (up to the empty line), or all of
 * it.  A message the size of the limit or over gets its headers. */
static void copy_original(FILE *f, const fwd_src *m, int full)
{
    if (m == NULL || m->size <= 0)
        return;
    size_t want = full ? (size_t)m->size
                : m->size > FWD_DSN_HEADERS_MAX ? FWD_DSN_HEADERS_MAX
                                                : (size_t)m->size;
    char *buf = malloc(want + 1);
    size_t got = 0;
    while (buf && got < want) {
        ssize_t n = m->read(m->arg, (off_t)got, buf + got, want - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (buf && got > 0) {
        buf[got] = '\0';
        size_t len = got;
        if (!full) {
            char *end = memmem(buf, got, "\r\n\r\n", 4);
            len = end ? (size_t)(end - buf) + 2 : got;
        }
        fwrite(buf, 1, len, f);
        if (len < 2 || buf[len - 1] != '\n')
            fputs("\r\n", f);
    }
    free(buf);
}

char *fwd_dsn_build(const fwd_env *orig, fwd_rcpt *const *rcpts,
                    size_t n, int kind, const fwd_src *orig_msg,
                    const char *to, const char *hostname, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (f == NULL)
        return NULL;
    time_t now = time(NULL);
    char date[64], arrival[64] = "";
    rfc5322_date(now, date, sizeof date);
    long long arr = fwd_parse_arrival(orig->arrival);
    if (arr > 0)
        rfc5322_date((time_t)arr, arrival, sizeof arrival);
    char boundary[96];
    snprintf(boundary, sizeof boundary, "%s/%lld/%s", orig->queue_id,
             (long long)now, hostname);
    char ret[16], envid[512];
    int full = kind == FWD_DSN_FAILED &&
               fwd_param_get(orig->mail_params, "RET", ret, sizeof ret) &&
               !strcasecmp(ret, "FULL") && orig_msg &&
               orig_msg->size < FWD_DSN_FULL_MAX;
    int global = has_8bit(orig->sender) || has_8bit(to);
    for (size_t i = 0; i < n; i++)
        global |= has_8bit(rcpts[i]->addr);
    const char *atype = global ? "utf-8" : "rfc822";
    static const char *const subject[] = {
        [FWD_DSN_FAILED] = "Undelivered Mail Returned to Sender",
        [FWD_DSN_DELAYED] = "Delayed Mail (still being retried)",
        [FWD_DSN_RELAYED] = "Successful Mail Delivery Report",
    };
    static const char *const intro[] = {
        [FWD_DSN_FAILED] = "I'm sorry to have to inform you that your "
                           "message could not\r\nbe delivered to one or "
                           "more recipients.",
        [FWD_DSN_DELAYED] = "Your message could not be delivered yet to "
                            "the recipients below.\r\nIt is still queued: "
                            "delivery will be tried again, you need\r\n"
                            "not send it again.",
        [FWD_DSN_RELAYED] = "Your message was delivered to the recipients "
                            "below, or relayed\r\nto a system that does not "
                            "report delivery status: no further\r\nreport "
                            "will come for them.",
    };
    static const char *const action[] = {
        [FWD_DSN_FAILED] = "failed", [FWD_DSN_DELAYED] = "delayed",
        [FWD_DSN_RELAYED] = "relayed",
    };

    fprintf(f, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
               "To: <%s>\r\n"
               "Subject: %s\r\n"
               "Date: %s\r\n"
               "Message-ID: <%s.dsn.%lld@%s>\r\n"
               "Auto-Submitted: auto-replied\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: multipart/report; report-type=%s;"
               "\r\n\tboundary=\"%s\"\r\n"
               "\r\n"
               "This is a MIME-encapsulated message.\r\n"
               "\r\n"
               "--%s\r\n"
               "Content-Type: text/plain; charset=%s\r\n"
               "Content-Description: Notification\r\n"
               "\r\n"
               "This is the mail system at host %s.\r\n"
               "\r\n"
               "%s\r\n"
               "\r\n",
            hostname, to, subject[kind], date, orig->queue_id,
            (long long)now, hostname,
            global ? "global-delivery-status" : "delivery-status",
            boundary, boundary, global ? "utf-8" : "us-ascii", hostname,
            intro[kind]);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "<%s>: %s%s\r\n", rcpts[i]->addr,
                kind == FWD_DSN_FAILED && rcpts[i]->code < 500
                    ? "gave up after the maximal queue time; last error: "
                    : "",
                rcpts[i]->text);
    fprintf(f, "\r\n--%s\r\n"
               "Content-Type: message/%s\r\n"
               "Content-Description: Delivery report\r\n"
               "\r\n"
               "Reporting-MTA: dns; %s\r\n"
               "X-Upesi-Queue-ID: %s\r\n",
            boundary, global ? "global-delivery-status" : "delivery-status",
            hostname, orig->queue_id);
    if (fwd_param_get(orig->mail_params, "ENVID", envid, sizeof envid)) {
        char dec[512];
        xtext_decode(envid, dec, sizeof dec);
        fprintf(f, "Original-Envelope-Id: %s\r\n", dec);
    }
    if (strcmp(orig->sender, "<>"))
        fprintf(f, "X-Upesi-Sender: %s; %s\r\n", atype, orig->sender);
    if (arrival[0])
        fprintf(f, "Arrival-Date: %s\r\n", arrival);
    for (size_t i = 0; i < n; i++) {
        char status[16], orcpt[512];
        dsn_status(rcpts[i], kind, status, sizeof status);
        fputs("\r\n", f);
        if (fwd_param_get(rcpts[i]->params, "ORCPT", orcpt, sizeof orcpt)) {
            char *semi = strchr(orcpt, ';');
            if (semi && semi - orcpt == 6 && !strncasecmp(orcpt, "rfc822", 6)) {
                char dec[512];
                xtext_decode(semi + 1, dec, sizeof dec);
                fprintf(f, "Original-Recipient: rfc822;%s\r\n", dec);
            } else {
                fprintf(f, "Original-Recipient: %s\r\n", orcpt);
            }
        }
        fprintf(f, "Final-Recipient: %s; %s\r\n"
                   "Action: %s\r\n"
                   "Status: %s\r\n",
                has_8bit(rcpts[i]->addr) ? "utf-8" : "rfc822",
                rcpts[i]->addr,
                kind == FWD_DSN_RELAYED && rcpts[i]->final_hop
                    ? "delivered" : action[kind], status);
        if (rcpts[i]->code)
            fprintf(f, "Diagnostic-Code: smtp; %s\r\n", rcpts[i]->text);
        else if (kind != FWD_DSN_RELAYED)
            fprintf(f, "Diagnostic-Code: X-Upesi; %s\r\n", rcpts[i]->text);
        fprintf(f, "Last-Attempt-Date: %s\r\n", date);
    }
    if (full)
        fprintf(f, "\r\n--%s\r\n"
                   "Content-Type: message/%s\r\n"
                   "Content-Description: Undelivered Message\r\n"
                   "\r\n", boundary, global ? "global" : "rfc822");
    else
        fprintf(f, "\r\n--%s\r\n"
                   "Content-Type: text/%s\r\n"
                   "Content-Description: %s\r\n"
                   "\r\n", boundary,
                global ? "global-headers" : "rfc822-headers",
                kind == FWD_DSN_FAILED ? "Undelivered Message Headers"
                                       : "Message Headers");
    copy_original(f, orig_msg, full);
    fprintf(f, "\r\n--%s--\r\n", boundary);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}
