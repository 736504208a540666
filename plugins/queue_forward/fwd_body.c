/*
 * fwd_body.c - the message on the wire to the downstream, one piece at a
 * time as the socket takes it (fwd_conn.c calls fwd_body_fill when the
 * output drains).
 *
 * DATA: the message goes out dot-stuffed (a line that starts with "."
 * gets another one, and so does one whose first byte that is no control
 * byte is a "."), 64 KiB at a time, then ".".  Line ends go out as CRLF
 * whatever the stored message holds: a message received by DATA is CRLF
 * already, but one received in BDAT chunks is stored as sent and may hold
 * a bare LF or CR; sent as they are, a downstream that takes a bare LF or
 * CR for a line end could find an end of data inside it ("\n.\n").  So
 * each bare LF or CR becomes CRLF (and the line after it is dot-stuffed
 * like any line): the DATA downstream gets what a DATA client would have
 * sent.
 *
 * BDAT (the downstream offers CHUNKING, RFC 3030): the stored bytes as
 * they are, never stuffed or rewritten, "BDAT <n>" before each 64 KiB
 * read and "BDAT <n> LAST" before the last (an empty message: "BDAT 0
 * LAST").
 *
 * Fails: a read of the message that fails or comes short, or no memory,
 * fails the connection (fwd_conn_fail: temporary).
 */
#include <stdlib.h>
#include <string.h>

#include "fwd_client.h"

/* A byte a downstream might drop: a control byte (NUL above all), not
 * the CR or LF that end a line. */
static int fwd_droppable(unsigned char ch)
{
    return (ch < 0x20 && ch != '\n' && ch != '\r') || ch == 0x7f;
}

/* Whether the line that starts at p needs a leading dot: it starts with
 * one, or its first byte that is not a control byte is one ("\0.", "\1."),
 * which a downstream that drops such bytes would read as a "." line, the
 * end of data (smuggling through us).  A dot added in front of any line is
 * transparent: the downstream removes it (RFC 5321 4.5.2).  A run of
 * control bytes that goes past this chunk (end of it at file offset
 * end_off) is followed in the file. */
static int fwd_line_needs_dot(const fwd_src *src, const char *p,
                              const char *end, off_t end_off)
{
    while (p < end && fwd_droppable((unsigned char)*p))
        p++;
    if (p < end)
        return *p == '.';
    char peek[512];
    for (off_t off = end_off; off < src->size;) {
        size_t want = sizeof peek;
        if ((off_t)want > src->size - off)
            want = (size_t)(src->size - off);
        ssize_t n = src->read(src->arg, off, peek, want);
        if (n <= 0)
            return 0;       /* the next read fails the connection first */
        for (ssize_t i = 0; i < n; i++)
            if (!fwd_droppable((unsigned char)peek[i]))
                return peek[i] == '.';
        off += n;
    }
    return 0;
}

/* The next BDAT chunk: a 64 KiB read of the message as it is stored,
 * after "BDAT <n>", the last one "BDAT <n> LAST" (an empty message is
 * "BDAT 0 LAST").  With PIPELINING the chunks follow each other as fast
 * as the socket takes them (RFC 3030 4.2); without, each waits for the
 * reply to the one before (ST_BDAT_WAIT). */
static int bdat_fill(fwd_conn *c)
{
    fwd_job *job = c->job;
    while (c->state == ST_BODY && c->out_len - c->out_off < FWD_BODY_CHUNK) {
        size_t want = FWD_BODY_CHUNK;
        if ((off_t)want > job->src.size - c->body_off)
            want = (size_t)(job->src.size - c->body_off);
        ssize_t n = want ? job->src.read(job->src.arg, c->body_off, c->chunk,
                                         want)
                         : 0;
        if (want && n <= 0) {
            fwd_conn_fail(c, "cannot read the message: %s",
                          n < 0 ? strerror((int)-n) : "shorter than its size");
            return -1;
        }
        c->body_off += n;
        int last = c->body_off >= job->src.size;
        if (fwd_out_printf(c, "BDAT %zd%s\r\n", n, last ? " LAST" : "") < 0 ||
            fwd_out_append(c, c->chunk, (size_t)n) < 0) {
            fwd_conn_fail(c, "out of memory");
            return -1;
        }
        c->bdat_sent++;
        if (last) {
            c->state = ST_DOT;
            job->dot_sent = 1;
            fwd_conn_timer(c, c->cfg->data_timeout_ms);
        } else if (!c->pipelining) {
            c->state = ST_BDAT_WAIT;
            fwd_conn_timer(c, c->cfg->data_timeout_ms);
        }
    }
    return 0;
}

/* Dot-stuff the next chunk of the message into the output (or, to a
 * downstream with CHUNKING, the next BDAT chunk). */
int fwd_body_fill(fwd_conn *c)
{
    fwd_job *job = c->job;
    if (c->chunk == NULL && (c->chunk = malloc(FWD_BODY_CHUNK)) == NULL) {
        fwd_conn_fail(c, "out of memory");
        return -1;
    }
    if (c->bdat)
        return bdat_fill(c);
    while (c->out_len - c->out_off < FWD_BODY_CHUNK &&
           c->body_off < job->src.size) {
        size_t want = FWD_BODY_CHUNK;
        if ((off_t)want > job->src.size - c->body_off)
            want = (size_t)(job->src.size - c->body_off);
        ssize_t n = job->src.read(job->src.arg, c->body_off, c->chunk, want);
        if (n <= 0) {
            fwd_conn_fail(c, "cannot read the message: %s",
                          n < 0 ? strerror((int)-n) : "shorter than its size");
            return -1;
        }
        c->body_off += n;
        /* worst case: every byte a bare line end (CRLF) after a dot */
        if (fwd_out_reserve(c, 3 * (size_t)n + 2) < 0) {
            fwd_conn_fail(c, "out of memory");
            return -1;
        }
        char *o = c->out + c->out_len;
        for (const char *p = c->chunk, *end = c->chunk + n; p < end;) {
            if (c->pending_cr) {        /* a CR ended the last chunk */
                c->pending_cr = 0;
                *o++ = '\r';
                *o++ = '\n';
                c->at_line_start = 1;
                if (*p == '\n') {
                    p++;
                    continue;
                }
            }
            if (c->at_line_start &&
                (*p == '.' || (fwd_droppable((unsigned char)*p) &&
                               fwd_line_needs_dot(&job->src, p, end,
                                                  c->body_off))))
                *o++ = '.';
            const char *q = p;
            while (q < end && *q != '\r' && *q != '\n')
                q++;
            memcpy(o, p, (size_t)(q - p));
            o += q - p;
            if (q == end) {
                c->at_line_start = 0;
                p = q;
            } else if (*q == '\n' || q + 1 < end) {
                /* CRLF, or a bare LF or CR: each becomes CRLF */
                *o++ = '\r';
                *o++ = '\n';
                c->at_line_start = 1;
                p = q + 1 + (*q == '\r' && q[1] == '\n');
            } else {
                c->pending_cr = 1;      /* CRLF or bare CR: the next read */
                c->at_line_start = 0;
                p = q + 1;
            }
        }
        c->out_len = (size_t)(o - c->out);
    }
    if (c->body_off >= job->src.size && c->pending_cr) {
        c->pending_cr = 0;
        if (fwd_out_append(c, "\r\n", 2) < 0) {
            fwd_conn_fail(c, "out of memory");
            return -1;
        }
        c->at_line_start = 1;
    }
    if (c->body_off >= job->src.size && c->state == ST_BODY) {
        /* the stored message ends with CRLF; if it somehow did not, the
         * end of data must still start on a line of its own */
        int rc = (job->src.size > 0 && !c->at_line_start)
                     ? fwd_out_append(c, "\r\n.\r\n", 5)
                     : fwd_out_append(c, ".\r\n", 3);
        if (rc < 0) {
            fwd_conn_fail(c, "out of memory");
            return -1;
        }
        c->state = ST_DOT;
        job->dot_sent = 1;
        fwd_conn_timer(c, c->cfg->data_timeout_ms);
    }
    return 0;
}
