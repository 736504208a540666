/*
 * fwd_dsn.c - delivery status notifications (RFC 3464): a
 * multipart/report with a human part, a message/delivery-status part (one
 * per-recipient block per failed recipient) and the headers of the
 * original message (text/rfc822-headers: a bounce never carries the whole
 * message back, which also keeps it small).
 *
 * Fails: NULL when memory runs out; an original whose headers cannot be
 * read gets a report without the third part's content.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
static void dsn_status(const fwd_rcpt *r, char *out, size_t len)
{
    if (r->enhanced[0] == '5')
        snprintf(out, len, "%s", r->enhanced);
    else if (r->code >= 500)
        snprintf(out, len, "5.0.0");
    else
        snprintf(out, len, "4.4.7");    /* temporary until it expired */
}

char *fwd_dsn_build(const fwd_env *orig, fwd_rcpt *const *failed,
                    size_t n_failed, const fwd_src *orig_msg,
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

    fprintf(f, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
               "To: <%s>\r\n"
               "Subject: Undelivered Mail Returned to Sender\r\n"
               "Date: %s\r\n"
               "Message-ID: <%s.dsn.%lld@%s>\r\n"
               "Auto-Submitted: auto-replied\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: multipart/report; report-type=delivery-status;"
               "\r\n\tboundary=\"%s\"\r\n"
               "\r\n"
               "This is a MIME-encapsulated message.\r\n"
               "\r\n"
               "--%s\r\n"
               "Content-Type: text/plain; charset=us-ascii\r\n"
               "Content-Description: Notification\r\n"
               "\r\n"
               "This is the mail system at host %s.\r\n"
               "\r\n"
               "I'm sorry to have to inform you that your message could not\r\n"
               "be delivered to one or more recipients.\r\n"
               "\r\n",
            hostname, to, date, orig->queue_id, (long long)now, hostname,
            boundary, boundary, hostname);
    for (size_t i = 0; i < n_failed; i++)
        fprintf(f, "<%s>: %s%s\r\n", failed[i]->addr,
                failed[i]->code >= 500 ? "" : "gave up after the maximal "
                                              "queue time; last error: ",
                failed[i]->text);
    fprintf(f, "\r\n--%s\r\n"
               "Content-Type: message/delivery-status\r\n"
               "Content-Description: Delivery report\r\n"
               "\r\n"
               "Reporting-MTA: dns; %s\r\n"
               "X-Upesi-Queue-ID: %s\r\n",
            boundary, hostname, orig->queue_id);
    if (strcmp(orig->sender, "<>"))
        fprintf(f, "X-Upesi-Sender: rfc822; %s\r\n", orig->sender);
    if (arrival[0])
        fprintf(f, "Arrival-Date: %s\r\n", arrival);
    for (size_t i = 0; i < n_failed; i++) {
        char status[16];
        dsn_status(failed[i], status, sizeof status);
        fprintf(f, "\r\nFinal-Recipient: rfc822; %s\r\n"
                   "Action: failed\r\n"
                   "Status: %s\r\n",
                failed[i]->addr, status);
        if (failed[i]->code)
            fprintf(f, "Diagnostic-Code: smtp; %s\r\n", failed[i]->text);
        else
            fprintf(f, "Diagnostic-Code: X-Upesi; %s\r\n", failed[i]->text);
        fprintf(f, "Last-Attempt-Date: %s\r\n", date);
    }
    fprintf(f, "\r\n--%s\r\n"
               "Content-Type: text/rfc822-headers\r\n"
               "Content-Description: Undelivered Message Headers\r\n"
               "\r\n", boundary);
    /* the headers: up to the first empty line */
    if (orig_msg && orig_msg->size > 0) {
        size_t want = orig_msg->size > FWD_DSN_HEADERS_MAX
                          ? FWD_DSN_HEADERS_MAX : (size_t)orig_msg->size;
        char *hdr = malloc(want + 1);
        ssize_t n = hdr ? orig_msg->read(orig_msg->arg, 0, hdr, want) : -1;
        if (n > 0) {
            hdr[n] = '\0';
            char *end = strstr(hdr, "\r\n\r\n");
            size_t hl = end ? (size_t)(end - hdr) + 2 : (size_t)n;
            fwrite(hdr, 1, hl, f);
            if (hl < 2 || hdr[hl - 1] != '\n')
                fputs("\r\n", f);
        }
        free(hdr);
    }
    fprintf(f, "\r\n--%s--\r\n", boundary);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}
