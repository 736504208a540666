/*
 * mime_guard.c - unit test of plugins/common/mime_guard.c: which lines
 * count (those beginning with "--", a signature's "-- " as well; not a
 * "--" inside a line nor a single '-'), where the cut falls (the start of
 * the line past the limit, CRLF or LF), and that a message fed in pieces
 * of any size is cut where it is cut whole.
 *
 * Prints TAP (tap.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/common/mime_guard.h"
#include "tap.h"

/* the cut of msg fed in pieces of `piece` bytes (0: whole) */
static size_t cut_in_pieces(const char *msg, size_t max, size_t piece)
{
    size_t len = strlen(msg), cut;
    if (piece == 0)
        return mime_guard_cut(msg, len, max);
    mime_guard g;
    mime_guard_init(&g, max);
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (mime_guard_feed(&g, msg + off, n, &cut))
            return cut;
    }
    return len;
}

/* "--b%d" delimiters of n empty parts, with line end eol */
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

int main(void)
{
    plan(12);

    const char *m = "a\n--b\nx -- y\n-c\n-- sig\n--\n--d\n";
    is_int((long long)cut_in_pieces(m, 3, 0), (long long)(strstr(m, "--d") - m),
           "the 4th line beginning with \"--\" is cut at its start ('-- ' "
           "and a bare '--' count; '-c' and a '--' within a line do not)");
    is_int((long long)cut_in_pieces(m, 4, 0), (long long)strlen(m),
           "four such lines, four allowed: nothing cut");
    is_int((long long)cut_in_pieces("--a\n", 0, 0), 0,
           "the first line counts (the message's own start is a line start)");
    is_int((long long)cut_in_pieces("x\r\n--a\r\n--b\r\n", 1, 0),
           (long long)strlen("x\r\n--a\r\n"), "CRLF: the cut is where the line begins");
    is_int((long long)cut_in_pieces("x\n\n\n--a\n", 0, 0), 4,
           "empty lines before: the cut still at the line's start");

    char *small = parts(10, "\r\n"), *big = parts(3000, "\r\n");
    is_int((long long)cut_in_pieces(small, MIME_GUARD_MAX_LINES, 0),
           (long long)strlen(small), "10 parts: the whole message is parsed");
    size_t whole = cut_in_pieces(big, MIME_GUARD_MAX_LINES, 0);
    ok(whole < strlen(big) && strncmp(big + whole, "--b\r\n", 5) == 0 &&
           whole >= 2 && big[whole - 1] == '\n',
       "3,000 parts: cut at the start of a delimiter line");
    /* the parts before the cut: exactly the limit's delimiter lines */
    size_t count = 0;
    for (const char *p = big; p < big + whole; p++)
        if ((p == big || p[-1] == '\n') && p[0] == '-' && p[1] == '-')
            count++;
    is_int((long long)count, MIME_GUARD_MAX_LINES,
           "... with MIME_GUARD_MAX_LINES delimiter lines before it");

    int same = 1;
    size_t pieces[] = {1, 2, 3, 7, 64, 4096};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        same &= cut_in_pieces(big, MIME_GUARD_MAX_LINES, pieces[i]) == whole;
    ok(same, "fed in pieces of 1, 2, 3, 7, 64 and 4096 bytes: the same cut");
    same = 1;
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        same &= cut_in_pieces(m, 3, pieces[i]) == cut_in_pieces(m, 3, 0);
    ok(same, "... and for the short message, '-' split from '-'");

    char *lf = parts(3000, "\n");
    size_t lf_cut = cut_in_pieces(lf, MIME_GUARD_MAX_LINES, 0);
    ok(lf_cut < strlen(lf) && strncmp(lf + lf_cut, "--b\n", 4) == 0,
       "LF line ends: the same");
    is_int((long long)mime_guard_cut("", 0, 0), 0, "an empty message: 0");
    free(small);
    free(big);
    free(lf);
    return done_testing();
}
