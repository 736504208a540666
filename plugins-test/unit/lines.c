/*
 * lines.c - unit test of host/lines.c, the command line reader: line ends,
 * overlong lines, NUL, back-pressure, byte-at-a-time input and the raw
 * pending/consume/discard switch used by DATA and STARTTLS.  Prints TAP.
 *
 * Fails: a "not ok" line per broken expectation; exit status from
 * done_testing().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lines.h"
#include "tap.h"

#define T_MAX 1200

/* Feed all of `in` (must fit), then read every line into a text log:
 * "text|END|status|nul\n" per line, END one of CRLF LF CR. */
static void t_drain(up_lines *lr, char *log, size_t logsize)
{
    up_line l;
    size_t used = strlen(log);
    while (up_lines_next(lr, &l)) {
        static const char *const ends[] = { "CRLF", "LF", "CR" };
        int n = snprintf(log + used, logsize - used, "%.*s|%s|%s|%d\n",
                         (int)(l.len > 40 ? 40 : l.len), l.text, ends[l.end],
                         l.status == UP_LINE_TOO_LONG ? "long" : "ok",
                         l.has_nul);
        if (n > 0 && (size_t)n < logsize - used)
            used += (size_t)n;
    }
}

static void t_feed_all(up_lines *lr, const char *in, size_t len)
{
    if (up_lines_feed(lr, in, len) != (long)len)
        diag("feed did not take all %zu bytes", len);
}

/* Feed `in` split at `split` (and then one byte at a time if bytewise). */
static void t_run(const char *in, size_t len, size_t split, int bytewise,
                  char *log, size_t logsize)
{
    up_lines lr;
    log[0] = '\0';
    if (up_lines_init(&lr, T_MAX) != 0) {
        diag("init failed");
        return;
    }
    if (bytewise) {
        for (size_t i = 0; i < len; i++) {
            t_feed_all(&lr, in + i, 1);
            t_drain(&lr, log, logsize);
        }
    } else {
        t_feed_all(&lr, in, split);
        t_drain(&lr, log, logsize);
        t_feed_all(&lr, in + split, len - split);
        t_drain(&lr, log, logsize);
    }
    up_lines_free(&lr);
}

static void t_basic(void)
{
    char log[2048];
    const char in[] = "EHLO a\r\nMAIL FROM:<x@y>\nNOOP\rRSET\r\n\r\nQUIT\r";
    t_run(in, sizeof in - 1, sizeof in - 1, 0, log, sizeof log);
    is_str(log, "EHLO a|CRLF|ok|0\nMAIL FROM:<x@y>|LF|ok|0\nNOOP|CR|ok|0\n"
                "RSET|CRLF|ok|0\n|CRLF|ok|0\n",
           "pipelined CRLF, bare LF, bare CR, empty line in one feed; "
           "a trailing CR waits");

    /* The trailing CR above is not a line until the next byte arrives. */
    up_lines lr;
    up_line l;
    up_lines_init(&lr, T_MAX);
    t_feed_all(&lr, "QUIT\r", 5);
    ok(!up_lines_next(&lr, &l), "CR as the last byte buffered: no line yet");
    t_feed_all(&lr, "\n", 1);
    ok(up_lines_next(&lr, &l) && l.end == UPESI_LINE_CRLF &&
       !strcmp(l.text, "QUIT") && l.len == 4,
       "CR then LF in the next feed is one CRLF");
    ok(!up_lines_next(&lr, &l), "and no empty bare-LF line after it");
    t_feed_all(&lr, "NOOP\r", 5);
    ok(!up_lines_next(&lr, &l), "CR at the end again");
    t_feed_all(&lr, "X", 1);
    ok(up_lines_next(&lr, &l) && l.end == UPESI_LINE_CR &&
       !strcmp(l.text, "NOOP"), "CR then another byte: a bare CR line");
    size_t plen;
    const char *p = up_lines_pending(&lr, &plen);
    ok(plen == 1 && p[0] == 'X', "the byte after a bare CR stays pending");
    t_feed_all(&lr, "\r\r\n", 3);
    ok(up_lines_next(&lr, &l) && l.end == UPESI_LINE_CR &&
       !strcmp(l.text, "X"), "CR CR: the first is a bare CR");
    ok(up_lines_next(&lr, &l) && l.end == UPESI_LINE_CRLF && l.len == 0,
       "then an empty CRLF line");
    up_lines_free(&lr);
}

static void t_long(void)
{
    up_lines lr;
    up_line l;
    char *big = malloc(T_MAX + 64);
    up_lines_init(&lr, T_MAX);

    memset(big, 'a', T_MAX);
    memcpy(big + T_MAX, "\r\n", 2);
    t_feed_all(&lr, big, T_MAX + 2);
    ok(up_lines_next(&lr, &l) && l.status == UP_LINE_OK && l.len == T_MAX,
       "a line of exactly max (%d) bytes is fine", T_MAX);

    memset(big, 'b', T_MAX + 1);
    memcpy(big + T_MAX + 1, "\r\nNOOP\r\n", 8);
    t_feed_all(&lr, big, T_MAX + 9);
    ok(up_lines_next(&lr, &l) && l.status == UP_LINE_TOO_LONG &&
       l.len == T_MAX && strlen(l.text) == T_MAX && l.text[0] == 'b',
       "max + 1 bytes: TOO_LONG, text holds the first max bytes");
    ok(up_lines_next(&lr, &l) && l.status == UP_LINE_OK &&
       !strcmp(l.text, "NOOP"), "the next line is fine");
    ok(!up_lines_next(&lr, &l), "and reported once");

    /* 1 MB line with no line end, fed in pieces: constant memory, then
     * the line is reported once when its end arrives. */
    size_t cap = lr.limit;  /* the buffer grows up to it, never past */
    int refused = 0;
    for (int i = 0; i < 1024; i++) {
        char kb[1024];
        memset(kb, i & 1 ? 'c' : 'C', sizeof kb);
        size_t off = 0;
        while (off < sizeof kb) {
            long n = up_lines_feed(&lr, kb + off, sizeof kb - off);
            if (n <= 0) {
                refused = 1;
                break;
            }
            off += (size_t)n;
            if (up_lines_next(&lr, &l))
                refused = 2;
        }
        if (refused)
            break;
    }
    ok(!refused && lr.cap <= cap && lr.len - lr.start <= T_MAX + 8,
       "1 MiB without a line end: all taken, nothing returned, buffer "
       "bounded (%zu bytes held)", lr.len - lr.start);
    t_feed_all(&lr, "\nQUIT\r\n", 7);
    ok(up_lines_next(&lr, &l) && l.status == UP_LINE_TOO_LONG &&
       l.end == UPESI_LINE_LF && l.len == T_MAX && l.text[0] == 'C',
       "its end arrives: reported as TOO_LONG with its first bytes");
    ok(up_lines_next(&lr, &l) && l.status == UP_LINE_OK &&
       !strcmp(l.text, "QUIT") && !up_lines_next(&lr, &l),
       "then the next command, once");

    /* An overlong line whose CR arrives last, its LF in the next feed. */
    memset(big, 'd', T_MAX + 50);
    big[T_MAX + 50] = '\r';
    t_feed_all(&lr, big, T_MAX + 51);
    ok(!up_lines_next(&lr, &l), "overlong line ending in CR: waits");
    t_feed_all(&lr, "\n", 1);
    ok(up_lines_next(&lr, &l) && l.status == UP_LINE_TOO_LONG &&
       l.end == UPESI_LINE_CRLF && !up_lines_next(&lr, &l),
       "its LF makes it one CRLF line, TOO_LONG");
    up_lines_free(&lr);
    free(big);
}

static void t_nul(void)
{
    up_lines lr;
    up_line l;
    up_lines_init(&lr, T_MAX);
    t_feed_all(&lr, "NO\0OP\r\nNOOP\r\n", 13);
    ok(up_lines_next(&lr, &l) && l.has_nul && l.len == 5 &&
       !memcmp(l.text, "NO\0OP", 6), "NUL inside a line: kept and flagged");
    ok(up_lines_next(&lr, &l) && !l.has_nul && !strcmp(l.text, "NOOP"),
       "the next line is not flagged");
    up_lines_free(&lr);
}

/* The same multi-line input split at every byte, and byte by byte, gives
 * the same lines. */
static void t_splits(void)
{
    static const char in[] =
        "EHLO client.example\r\nMAIL FROM:<a@b> SIZE=10\r\n"
        "RCPT TO:<c@d>\nRCPT TO:<e@f>\rDATA\r\n\r\r\n\n\nX\0Y\r\nQUIT\r\n";
    size_t len = sizeof in - 1;
    char want[2048], got[2048];
    int bad = -1;

    t_run(in, len, len, 0, want, sizeof want);
    ok(strstr(want, "RCPT TO:<c@d>|LF|ok|0\n") != NULL &&
       strstr(want, "X|CRLF|ok|1\n") != NULL &&
       strstr(want, "QUIT|CRLF|ok|0\n") != NULL,
       "reference run has the bare LF, NUL and last lines");
    for (size_t split = 0; split <= len && bad < 0; split++) {
        t_run(in, len, split, 0, got, sizeof got);
        if (strcmp(got, want) != 0)
            bad = (int)split;
    }
    ok(bad < 0, "identical lines for every split point (first bad: %d)",
       bad);
    t_run(in, len, 0, 1, got, sizeof got);
    is_str(got, want, "identical lines when fed byte by byte");
}

/* Complete lines count against the buffer: feed refuses, then takes more
 * once they are consumed. */
static void t_backpressure(void)
{
    up_lines lr;
    up_line l;
    up_lines_init(&lr, T_MAX);
    size_t cap = lr.limit;
    long total = 0, n;
    while ((n = up_lines_feed(&lr, "NOOP\r\n", 6)) > 0)
        total += n;
    ok(n == 0 && (size_t)total <= cap && (size_t)total > cap - 6,
       "feed refuses when the buffer is full of complete lines "
       "(%ld of %zu)", total, cap);
    int lines = 0;
    while (up_lines_next(&lr, &l))
        lines++;
    is_int(lines, total / 6, "every complete line was kept");
    /* the last feed took part of a line: complete it */
    size_t part = (size_t)total % 6;
    n = up_lines_feed(&lr, "NOOP\r\n" + part, 6 - part);
    ok(part > 0 && n == (long)(6 - part) && up_lines_next(&lr, &l) &&
       !strcmp(l.text, "NOOP"),
       "after consuming, feed takes the rest of the cut line");
    up_lines_free(&lr);
}

/* DATA and STARTTLS take the bytes after the command raw. */
static void t_pending(void)
{
    up_lines lr;
    up_line l;
    size_t plen;
    const char *p;
    static const char body[] = "Subject: x\r\n..dot\n" "12345678901234567890";
    char in[8192];
    size_t inlen = 0;

    up_lines_init(&lr, 16);
    memcpy(in, "DATA\r\n", 6);
    inlen = 6;
    memcpy(in + inlen, body, sizeof body - 1);
    inlen += sizeof body - 1;
    t_feed_all(&lr, in, inlen);
    ok(up_lines_next(&lr, &l) && !strcmp(l.text, "DATA"), "DATA line");
    p = up_lines_pending(&lr, &plen);
    ok(plen == sizeof body - 1 && !memcmp(p, body, plen),
       "pending: the body bytes as sent (a line longer than max is not cut)");
    up_lines_consume(&lr, 12);
    p = up_lines_pending(&lr, &plen);
    ok(plen == sizeof body - 13 && !memcmp(p, body + 12, plen),
       "consume drops exactly n bytes");
    up_lines_consume(&lr, plen);
    t_feed_all(&lr, "QUIT\r\n", 6);
    ok(up_lines_next(&lr, &l) && !strcmp(l.text, "QUIT"),
       "lines again after consuming all pending");

    t_feed_all(&lr, "STARTTLS\r\nMAIL FROM:<evil@x>\r\n", 30);
    ok(up_lines_next(&lr, &l) && !strcmp(l.text, "STARTTLS"), "STARTTLS");
    up_lines_discard(&lr);
    p = up_lines_pending(&lr, &plen);
    ok(plen == 0 && !up_lines_next(&lr, &l),
       "discard drops the plaintext sent after STARTTLS");
    t_feed_all(&lr, "EHLO x\r\n", 8);
    ok(up_lines_next(&lr, &l) && !strcmp(l.text, "EHLO x"),
       "and the reader works after it");
    up_lines_free(&lr);
    p = up_lines_pending(&lr, &plen);
    ok(plen == 0 && up_lines_feed(&lr, "x", 1) < 0 &&
       !up_lines_next(&lr, &l), "a freed reader is inert");
}

/* Memory: nothing until input arrives, a small buffer for commands, a
 * grown one given back by up_lines_release once empty. */
static void t_lazy(void)
{
    up_lines lr;
    up_line l;
    up_lines_init(&lr, T_MAX);
    ok(lr.buf == NULL && lr.cap == 0 && lr.limit == T_MAX + 4096,
       "init allocates nothing; the limit is max + 4096");
    size_t plen = 1;
    up_lines_pending(&lr, &plen);
    ok(!up_lines_next(&lr, &l) && plen == 0,
       "an unallocated reader has no line and nothing pending");
    t_feed_all(&lr, "NOOP\r\n", 6);
    ok(lr.cap == UP_LINES_MIN && up_lines_next(&lr, &l) &&
       !strcmp(l.text, "NOOP"), "a command: a buffer of UP_LINES_MIN");
    up_lines_release(&lr);
    ok(lr.buf != NULL, "release keeps a small buffer (no malloc per command)");
    char *big = malloc(T_MAX + 2);
    memset(big, 'x', T_MAX);
    memcpy(big + T_MAX, "\r\n", 2);
    t_feed_all(&lr, big, 100);
    ok(lr.cap == UP_LINES_MIN, "part of a long line: no growth yet");
    t_feed_all(&lr, big + 100, T_MAX + 2 - 100);
    ok(lr.cap > UP_LINES_MIN && lr.cap <= lr.limit,
       "the rest: grown (%zu), within the limit", lr.cap);
    up_lines_release(&lr);
    ok(lr.buf != NULL, "release keeps a buffer that holds input");
    ok(up_lines_next(&lr, &l) && l.len == T_MAX && l.text[0] == 'x',
       "the long line survives growth");
    up_lines_release(&lr);
    ok(lr.buf == NULL && lr.cap == 0, "empty and grown: released");
    t_feed_all(&lr, "QUIT\r\n", 6);
    ok(up_lines_next(&lr, &l) && !strcmp(l.text, "QUIT") &&
       lr.cap == UP_LINES_MIN, "then small again");
    free(big);
    up_lines_free(&lr);
    ok(up_lines_feed(&lr, "x", 1) == -ENOMEM, "a freed reader refuses input");
}

int main(void)
{
    plan(45);
    t_lazy();
    t_basic();
    t_long();
    t_nul();
    t_splits();
    t_backpressure();
    t_pending();
    return done_testing();
}
