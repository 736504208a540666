/*
 * fuzz_smtp_parse.c - libFuzzer target for host/smtp_parse.c.
 *
 * The input (up to its first NUL) is parsed as a command line, and its
 * argument and the whole line as MAIL and as RCPT arguments.  Every answer
 * must be well formed: a refusal has a 501/553/555 reply with an enhanced
 * code and a text; an accepted path obeys RFC 5321's limits, and its
 * mailbox, sent again as <mailbox>, parses to the same mailbox (the parser
 * accepts what it produces).  The argument is also checked as a HELO name,
 * strict and lenient: a name accepted is at most 255 octets of printable
 * ASCII (it goes into the Received field as is), and strict accepts only
 * what lenient accepts.  The argument is also parsed as BDAT's (RFC 3030):
 * an accepted chunk size is at most UP_BDAT_MAX_SIZE and printed again
 * (with " LAST" when it was there) gives the same size and flag; a
 * refusal is a 501 5.5.4.  Any violation aborts.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ihost \
 *     fuzz/fuzz_smtp_parse.c host/smtp_parse.c -o build/fuzz_smtp_parse
 *   mkdir -p build/fuzz-work/smtp_parse
 *   ./build/fuzz_smtp_parse -max_total_time=60 build/fuzz-work/smtp_parse \
 *     fuzz/corpus/fuzz_smtp_parse
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void fz_path(const char *arg, int is_rcpt, int depth)
{
    up_path p;
    up_parse_error e = { 0, NULL, NULL };

    if (up_path_parse(arg, is_rcpt, &p, &e) != 0) {
        FZ_CHECK(e.code == 501 || e.code == 553 || e.code == 555);
        FZ_CHECK(e.enhanced != NULL && e.enhanced[0] == '5');
        FZ_CHECK(e.text != NULL && e.text[0] != '\0');
        FZ_CHECK(depth == 0);   /* a re-sent mailbox is never refused */
        return;
    }
    size_t len = strlen(p.mailbox);
    FZ_CHECK(len <= 254);
    FZ_CHECK(p.null_path == (len == 0));
    FZ_CHECK(!p.null_path || (!is_rcpt && p.bracketed));
    FZ_CHECK(p.nparams >= 0 && p.nparams <= UP_MAX_PARAMS);
    for (int i = 0; i < p.nparams; i++) {
        const char *k = p.params[i].keyword;
        FZ_CHECK(k[0] != '\0' && strlen(k) < sizeof p.params[i].keyword);
        for (; *k; k++)
            FZ_CHECK((*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
                     *k == '-');
        for (const char *v = p.params[i].value; *v; v++)
            FZ_CHECK((unsigned char)*v > ' ' && *v != 127 && *v != '=');
        FZ_CHECK(up_path_param(&p, p.params[i].keyword) != NULL);
    }
    const char *dom = up_mailbox_domain(p.mailbox);
    FZ_CHECK(*dom == '\0' ||
             (dom > p.mailbox && dom <= p.mailbox + len && dom[-1] == '@'));
    FZ_CHECK(strlen(dom) <= 255);
    if (*dom == '\0' && !p.null_path)
        FZ_CHECK(is_rcpt && !strcasecmp(p.mailbox, "postmaster"));
    if (p.null_path || depth > 0)
        return;

    char again[UP_MAX_ADDRESS + 16];
    snprintf(again, sizeof again, "%s<%s>", is_rcpt ? "TO:" : "FROM:",
             p.mailbox);
    up_path q;
    if (up_path_parse(again, is_rcpt, &q, &e) != 0)
        abort();
    FZ_CHECK(strcmp(q.mailbox, p.mailbox) == 0);
    FZ_CHECK(q.local_8bit == p.local_8bit && !q.had_source_route);
    fz_path(again, is_rcpt, depth + 1);
}

static void fz_helo(const char *arg)
{
    up_parse_error e = { 0, NULL, NULL };
    int lenient = up_helo_check(arg, 0, &e);
    if (lenient != 0)
        FZ_CHECK(e.code == 501 && e.enhanced && e.text && e.text[0]);
    int strict = up_helo_check(arg, 1, &e);
    if (strict == 0)
        FZ_CHECK(lenient == 0);
    if (lenient == 0) {
        size_t len = strlen(arg);
        FZ_CHECK(len >= 1 && len <= 255);
        for (const unsigned char *p = (const unsigned char *)arg; *p; p++)
            FZ_CHECK(*p > ' ' && *p < 127);
    }
}

/* BDAT's argument: what is accepted survives printing and parsing. */
static void fz_bdat(const char *arg)
{
    unsigned long long n, n2;
    int last, last2;
    up_parse_error e = { 0, NULL, NULL };
    if (up_bdat_parse(arg, &n, &last, &e) != 0) {
        FZ_CHECK(e.code == 501 && e.enhanced && !strcmp(e.enhanced, "5.5.4"));
        FZ_CHECK(e.text != NULL && e.text[0] != '\0');
        return;
    }
    FZ_CHECK(n <= UP_BDAT_MAX_SIZE && (last == 0 || last == 1));
    FZ_CHECK(arg[0] >= '0' && arg[0] <= '9');
    char again[64];
    snprintf(again, sizeof again, "%llu%s", n, last ? " LAST" : "");
    FZ_CHECK(up_bdat_parse(again, &n2, &last2, &e) == 0);
    FZ_CHECK(n2 == n && last2 == last);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    if (line == NULL)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';

    up_command c;
    up_command_parse(line, &c);
    FZ_CHECK(c.arg != NULL && c.arg >= line && c.arg <= line + size);
    FZ_CHECK(strlen(c.verb_text) < sizeof c.verb_text);
    if (c.verb != UP_VERB_UNKNOWN)
        FZ_CHECK(strcmp(up_verb_name(c.verb), c.verb_text) == 0);
    fz_helo(c.arg);
    fz_bdat(c.arg);
    fz_path(c.arg, 0, 0);
    fz_path(c.arg, 1, 0);
    fz_path(line, 0, 0);
    fz_path(line, 1, 0);
    free(line);
    return 0;
}
