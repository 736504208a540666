/*
 * lines.c - the command line reader (see lines.h for the contract).
 *
 * One buffer per session, allocated at the first feed (UP_LINES_MIN bytes:
 * a command or a pipelined group fits) and doubled when input does not fit,
 * up to `limit`; up_lines_release frees a grown one once it is empty, so
 * idle sessions cost no buffer or a small one.  up_lines_feed only appends
 * raw bytes; all line work happens in up_lines_next, so input after DATA or
 * STARTTLS is handed to the next reader untouched.  An overlong line is cut
 * to max + 1 bytes in place (the extra byte is how up_lines_next later
 * knows the line was too long, without a side table of cut lines) and
 * whatever follows, up to its terminator, is dropped as it arrives: memory
 * stays at `limit` whatever the client sends.
 *
 * Fails: up_lines_feed returns -ENOMEM when the buffer cannot be allocated
 * or grown; nothing else allocates.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lines.h"

/* Room beyond `max` for pipelined command groups (PIPELINING clients send
 * MAIL, several RCPT and DATA in one write) and for the cut line's extra
 * byte plus CRLF. */
#define UP_LINES_SLACK 4096

int up_lines_init(up_lines *lr, size_t max)
{
    memset(lr, 0, sizeof *lr);
    if (max > (SIZE_MAX >> 2))
        return -ENOMEM;
    lr->limit = max + UP_LINES_SLACK;
    lr->max = max;
    return 0;
}

void up_lines_free(up_lines *lr)
{
    free(lr->buf);
    memset(lr, 0, sizeof *lr);
}

void up_lines_release(up_lines *lr)
{
    if (lr->buf == NULL || lr->start != lr->len || lr->cap <= UP_LINES_MIN)
        return;
    free(lr->buf);
    lr->buf = NULL;
    lr->cap = lr->len = lr->start = lr->scanned = 0;
    lr->skipping = 0;
}

/* Make room for `want` more bytes after the buffered ones if the limit
 * allows (less otherwise).  0, or -ENOMEM with the buffer unchanged. */
static int lines_grow(up_lines *lr, size_t want)
{
    size_t need = lr->len + want;
    if (need <= lr->cap || lr->cap >= lr->limit)
        return 0;
    size_t cap = lr->cap ? lr->cap : UP_LINES_MIN;
    while (cap < need && cap < lr->limit)
        cap *= 2;
    if (cap > lr->limit)
        cap = lr->limit;
    char *grown = realloc(lr->buf, cap);
    if (grown == NULL)
        return -ENOMEM;
    lr->buf = grown;
    lr->cap = cap;
    return 0;
}

long up_lines_feed(up_lines *lr, const char *data, size_t len)
{
    if (lr->limit == 0)
        return -ENOMEM;
    if (lr->start == lr->len) {
        lr->start = lr->len = 0;
    } else if (lr->start > 0 && lr->cap - lr->len < len) {
        /* Bounded by cap per call, and only when the tail would not fit:
         * cheaper than a ring buffer's split lines everywhere else. */
        memmove(lr->buf, lr->buf + lr->start, lr->len - lr->start);
        lr->len -= lr->start;
        lr->start = 0;
    }
    if (len > 0 && lines_grow(lr, len) != 0)
        return -ENOMEM;
    size_t n = lr->cap - lr->len;
    if (n > len)
        n = len;
    if (n > LONG_MAX)
        n = LONG_MAX;
    if (n > 0)
        memcpy(lr->buf + lr->len, data, n);
    lr->len += n;
    return (long)n;
}

/* Cut the incomplete line at `line` (keep bytes of it so far, then the
 * `tail` bytes at `from`) down to max + 1 bytes followed by the tail. */
static void lines_cut(up_lines *lr, char *line, const char *from, size_t tail)
{
    memmove(line + lr->max + 1, from, tail);
    lr->len = (size_t)(line - lr->buf) + lr->max + 1 + tail;
    lr->scanned = lr->max + 1;
    lr->skipping = 1;
}

int up_lines_next(up_lines *lr, up_line *out)
{
    if (lr->buf == NULL)
        return 0;
    char *line = lr->buf + lr->start;
    size_t avail = lr->len - lr->start;
    size_t i = lr->scanned;

    while (i < avail && line[i] != '\r' && line[i] != '\n')
        i++;
    if (i == avail) {
        /* No line end yet: drop what is beyond the cut. */
        if (avail > lr->max + 1)
            lines_cut(lr, line, line + avail, 0);
        else
            lr->scanned = avail;
        return 0;
    }

    size_t term = 1;
    upesi_line_end end = UPESI_LINE_LF;
    if (line[i] == '\r') {
        if (i + 1 == avail) {
            /* CR or CRLF?  The next byte tells; keep the CR, drop the
             * overlong tail before it. */
            if (i > lr->max + 1)
                lines_cut(lr, line, line + i, 1);
            else
                lr->scanned = i;
            return 0;
        }
        if (line[i + 1] == '\n') {
            end = UPESI_LINE_CRLF;
            term = 2;
        } else {
            end = UPESI_LINE_CR;
        }
    }

    out->status = i > lr->max ? UP_LINE_TOO_LONG : UP_LINE_OK;
    out->len = i > lr->max ? lr->max : i;
    out->has_nul = memchr(line, '\0', out->len) != NULL;
    out->end = end;
    line[out->len] = '\0';
    out->text = line;

    lr->start += i + term;
    lr->scanned = 0;
    lr->skipping = 0;
    return 1;
}

const char *up_lines_pending(const up_lines *lr, size_t *len)
{
    if (lr->buf == NULL) {
        *len = 0;
        return "";
    }
    *len = lr->len - lr->start;
    return lr->buf + lr->start;
}

void up_lines_consume(up_lines *lr, size_t n)
{
    size_t avail = lr->len - lr->start;
    lr->start += n < avail ? n : avail;
    lr->scanned = 0;
    lr->skipping = 0;
}

void up_lines_discard(up_lines *lr)
{
    lr->start = lr->len = 0;
    lr->scanned = 0;
    lr->skipping = 0;
}
