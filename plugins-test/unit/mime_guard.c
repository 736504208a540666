/*
 * mime_guard.c - unit test of plugins/common/mime_guard.c: which lines
 * count (those beginning with "--", a signature's "-- " as well; not a
 * "--" inside a line nor a single '-'), where the cut falls (the start of
 * the line past the limit, CRLF or LF), the header section's limit (the
 * field that would pass it is cut, however long; the body does not count;
 * the empty line ends the section, CRLF or LF), and that a message fed in
 * pieces of any size is cut where it is cut whole.
 *
 * Prints TAP (tap.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/common/mime_guard.h"
#include "tap.h"

static int why;

/* the cut of msg fed in pieces of `piece` bytes (0: whole); why the cut */
static size_t cut_of(const char *msg, size_t max_lines, size_t max_header,
                     size_t piece)
{
    size_t len = strlen(msg), cut;
    if (piece == 0)
        piece = len ? len : 1;
    mime_guard g;
    mime_guard_init(&g, max_lines, max_header);
    why = MIME_GUARD_WHOLE;
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if ((why = mime_guard_feed(&g, msg + off, n, &cut)) != 0)
            return cut;
    }
    return len;
}

static size_t cut_lines(const char *msg, size_t max, size_t piece)
{
    return cut_of(msg, max, (size_t)-1, piece);
}

/* "--b" delimiters of n empty parts, with line end eol */
static char *parts(int n, const char *eol)
{
    size_t cap = (size_t)n * 32 + 256, len = 0;
    char *m = malloc(cap);
    len += (size_t)snprintf(m + len, cap - len,
                            "Content-Type: multipart/mixed; boundary=\"b\"%s%s",
                            eol, eol);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(m + len, cap - len, "--b%s%sw%d%s", eol, eol,
                                i, eol);
    snprintf(m + len, cap - len, "--b--%s", eol);
    return m;
}

/* a header section of n fields "X-N: <filler>" (each `width` bytes with
 * CRLF), an empty line, then `body` bytes of text lines */
static char *headed(int n, size_t width, size_t body)
{
    size_t cap = (size_t)n * width + body + 64, len = 0;
    char *m = malloc(cap);
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(m + len, cap - len, "X-%d: ", i);
        while (len % width != width - 2)
            m[len++] = 'a';
        m[len++] = '\r';
        m[len++] = '\n';
    }
    len += (size_t)snprintf(m + len, cap - len, "\r\n");
    while (body > 0) {
        size_t line = body < 100 ? body : 100;
        memset(m + len, 'b', line - 1);
        m[len + line - 1] = '\n';
        len += line;
        body -= line;
    }
    m[len] = '\0';
    return m;
}

int main(void)
{
    plan(20);

    const char *m = "a\n--b\nx -- y\n-c\n-- sig\n--\n--d\n";
    is_int((long long)cut_lines(m, 3, 0), (long long)(strstr(m, "--d") - m),
           "the 4th line beginning with \"--\" is cut at its start ('-- ' "
           "and a bare '--' count; '-c' and a '--' within a line do not)");
    ok(why == MIME_GUARD_LINES, "... and says why");
    is_int((long long)cut_lines(m, 4, 0), (long long)strlen(m),
           "four such lines, four allowed: nothing cut");
    ok(why == MIME_GUARD_WHOLE, "... and says so");
    is_int((long long)cut_lines("--a\n", 0, 0), 0,
           "the first line counts (the message's own start is a line start)");
    is_int((long long)cut_lines("x\r\n--a\r\n--b\r\n", 1, 0),
           (long long)strlen("x\r\n--a\r\n"), "CRLF: the cut is where the line begins");
    is_int((long long)cut_lines("x\n\n\n--a\n", 0, 0), 4,
           "empty lines before: the cut still at the line's start");

    char *small = parts(10, "\r\n"), *big = parts(3000, "\r\n");
    is_int((long long)mime_guard_cut(small, strlen(small), NULL),
           (long long)strlen(small), "10 parts: the whole message is parsed");
    size_t whole = mime_guard_cut(big, strlen(big), &why);
    ok(whole < strlen(big) && strncmp(big + whole, "--b\r\n", 5) == 0 &&
           whole >= 2 && big[whole - 1] == '\n' && why == MIME_GUARD_LINES,
       "3,000 parts: cut at the start of a delimiter line");
    size_t count = 0;
    for (const char *p = big; p < big + whole; p++)
        if ((p == big || p[-1] == '\n') && p[0] == '-' && p[1] == '-')
            count++;
    is_int((long long)count, MIME_GUARD_MAX_LINES,
           "... with MIME_GUARD_MAX_LINES delimiter lines before it");

    int same = 1;
    size_t pieces[] = {1, 2, 3, 7, 64, 4096};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        same &= cut_lines(big, MIME_GUARD_MAX_LINES, pieces[i]) == whole;
    ok(same, "fed in pieces of 1, 2, 3, 7, 64 and 4096 bytes: the same cut");
    same = 1;
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        same &= cut_lines(m, 3, pieces[i]) == cut_lines(m, 3, 0);
    ok(same, "... and for the short message, '-' split from '-'");

    char *lf = parts(3000, "\n");
    size_t lf_cut = mime_guard_cut(lf, strlen(lf), NULL);
    ok(lf_cut < strlen(lf) && strncmp(lf + lf_cut, "--b\n", 4) == 0,
       "LF line ends: the same");
    is_int((long long)mime_guard_cut("", 0, NULL), 0, "an empty message: 0");

    /* the header section */
    char *h1 = headed(100, 100, 500000);       /* 10 KB, then a body */
    is_int((long long)mime_guard_cut(h1, strlen(h1), &why),
           (long long)strlen(h1),
           "a 10 KB header section and 500 KB of body: nothing cut (the "
           "body does not count)");
    char *h2 = headed(3000, 100, 1000);        /* 300 KB of fields */
    size_t c2 = mime_guard_cut(h2, strlen(h2), &why);
    ok(c2 == MIME_GUARD_MAX_HEADER - MIME_GUARD_MAX_HEADER % 100 &&
           why == MIME_GUARD_HEADER && strncmp(h2 + c2, "X-", 2) == 0,
       "300 KB of fields: cut at the field that would pass %d bytes (%zu)",
       MIME_GUARD_MAX_HEADER, c2);
    same = 1;
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        same &= cut_of(h2, MIME_GUARD_MAX_LINES, MIME_GUARD_MAX_HEADER,
                       pieces[i]) == c2 && why == MIME_GUARD_HEADER;
    ok(same, "... fed in pieces, the same cut");

    char *one = malloc(2000000);               /* To: of 2 MB, one line */
    int n = snprintf(one, 2000000, "Subject: x\r\nTo: ");
    memset(one + n, 'u', 1999000 - (size_t)n);
    strcpy(one + 1999000, "\r\n\r\nbody\r\n");
    is_int((long long)mime_guard_cut(one, strlen(one), &why), 12,
           "one field of 2 MB: cut at its start, the fields before it kept");
    is_int((long long)cut_of("A: 1\n\n--x\n--y\n", 1, 6, 0), 10,
           "LF: the empty line ends the section (a line-count cut after it)");
    is_int((long long)cut_of("A: 1\r\nB: 2\r\n", 100, 6, 0), 6,
           "no empty line: the whole message is header section");

    free(small);
    free(big);
    free(lf);
    free(h1);
    free(h2);
    free(one);
    return done_testing();
}
