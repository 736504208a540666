/*
 * smtp_parse.c - unit test of host/smtp_parse.c: verbs, MAIL/RCPT paths
 * (brackets, the space after the colon, quoted local parts, domain
 * literals, source routes, null path, postmaster, length limits, UTF-8)
 * and ESMTP parameters, with the exact reply for each refusal.  Prints TAP.
 *
 * Fails: a "not ok" line per broken expectation; exit status from
 * done_testing().
 */
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "tap.h"

static void t_verbs(void)
{
    static const struct {
        const char *line;
        up_verb verb;
        const char *text, *arg;
    } cases[] = {
        { "MAIL FROM:<a@b>", UP_VERB_MAIL, "MAIL", "FROM:<a@b>" },
        { "mail from:<a@b>", UP_VERB_MAIL, "MAIL", "from:<a@b>" },
        { "rCpT TO:<a@b>", UP_VERB_RCPT, "RCPT", "TO:<a@b>" },
        { "ehlo  x", UP_VERB_EHLO, "EHLO", " x" },
        { "DATA", UP_VERB_DATA, "DATA", "" },
        { "QUIT ", UP_VERB_QUIT, "QUIT", "" },
        { "StartTLS", UP_VERB_STARTTLS, "STARTTLS", "" },
        { "BDAT 10 LAST", UP_VERB_BDAT, "BDAT", "10 LAST" },
        { "MAILX FROM:<a@b>", UP_VERB_UNKNOWN, "MAILX", "FROM:<a@b>" },
        { "MAI", UP_VERB_UNKNOWN, "MAI", "" },
        { "", UP_VERB_UNKNOWN, "", "" },
        { " NOOP", UP_VERB_UNKNOWN, "", "NOOP" },
        { "NOOP\tx", UP_VERB_UNKNOWN, "NOOP?X", "" },
        { "GET / HTTP/1.1", UP_VERB_UNKNOWN, "GET", "/ HTTP/1.1" },
        { "ABCDEFGHIJKLMNOPQRSTUVWXYZ x", UP_VERB_UNKNOWN, "ABCDEFGHIJKLMNO",
          "x" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        up_command c;
        up_command_parse(cases[i].line, &c);
        ok(c.verb == cases[i].verb && !strcmp(c.verb_text, cases[i].text) &&
           c.arg != NULL && !strcmp(c.arg, cases[i].arg),
           "command '%s' -> %s '%s' arg '%s'", cases[i].line,
           up_verb_name(cases[i].verb) ? up_verb_name(cases[i].verb)
                                       : "UNKNOWN",
           cases[i].text, cases[i].arg);
    }
    int names_ok = up_verb_name(UP_VERB_UNKNOWN) == NULL &&
                   up_verb_name(UP_VERB_COUNT) == NULL;
    for (int v = UP_VERB_UNKNOWN + 1; v < UP_VERB_COUNT; v++) {
        up_command c;
        const char *name = up_verb_name((up_verb)v);
        if (name == NULL) {
            names_ok = 0;
            continue;
        }
        up_command_parse(name, &c);
        if (c.verb != (up_verb)v)
            names_ok = 0;
    }
    ok(names_ok, "every verb's name parses back to it; UNKNOWN has none");
}

/* Flags expected on success: B bracketed, S space before path, R source
 * route, N null path, 8 local_8bit. */
typedef struct t_ok_case {
    const char *arg;
    int rcpt;
    const char *mailbox;
    const char *flags;
    const char *domain;
} t_ok_case;

static void t_flags(const up_path *p, char *buf)
{
    char *f = buf;
    if (p->bracketed)
        *f++ = 'B';
    if (p->space_before_path)
        *f++ = 'S';
    if (p->had_source_route)
        *f++ = 'R';
    if (p->null_path)
        *f++ = 'N';
    if (p->local_8bit)
        *f++ = '8';
    *f = '\0';
}

static void t_paths_ok(void)
{
    static const t_ok_case cases[] = {
        { "FROM:<user@example.com>", 0, "user@example.com", "B",
          "example.com" },
        { "from:<User.Name+tag@Sub.Example.COM>", 0,
          "User.Name+tag@Sub.Example.COM", "B", "Sub.Example.COM" },
        { "FROM:user@example.com", 0, "user@example.com", "", "example.com" },
        { "FROM: <user@example.com>", 0, "user@example.com", "BS",
          "example.com" },
        { "FROM:   user@example.com  ", 0, "user@example.com", "S",
          "example.com" },
        { "FROM:<>", 0, "", "BN", "" },
        { "FROM: <>", 0, "", "BSN", "" },
        { "TO:<postmaster>", 1, "postmaster", "B", "" },
        { "TO:<PostMaster>", 1, "PostMaster", "B", "" },
        { "TO:postmaster", 1, "postmaster", "", "" },
        { "TO:<\"john doe\"@example.com>", 1, "\"john doe\"@example.com", "B",
          "example.com" },
        { "TO:<\"a@b>c\\\"d\"@example.com>", 1, "\"a@b>c\\\"d\"@example.com",
          "B", "example.com" },
        { "TO:<\"\"@example.com>", 1, "\"\"@example.com", "B", "example.com" },
        { "TO:<user@[192.0.2.1]>", 1, "user@[192.0.2.1]", "B", "[192.0.2.1]" },
        { "TO:<user@[IPv6:2001:db8::1]>", 1, "user@[IPv6:2001:db8::1]", "B",
          "[IPv6:2001:db8::1]" },
        { "TO:<user@[x-tag:a@b]>", 1, "user@[x-tag:a@b]", "B",
          "[x-tag:a@b]" },
        { "TO:<@relay.example:user@example.com>", 1, "user@example.com", "BR",
          "example.com" },
        { "TO:<@a.example,@b.example:user@example.com>", 1,
          "user@example.com", "BR", "example.com" },
        { "TO:<j\xc3\xb6rg@example.com>", 1, "j\xc3\xb6rg@example.com", "B8",
          "example.com" },
        { "TO:<\"j\xc3\xb6rg x\"@example.com>", 1,
          "\"j\xc3\xb6rg x\"@example.com", "B8", "example.com" },
        { "TO:<user@b\xc3\xbc" "cher.example>", 1,
          "user@b\xc3\xbc" "cher.example", "B8", "b\xc3\xbc" "cher.example" },
        { "TO:<a-b@x-y.example>", 1, "a-b@x-y.example", "B", "x-y.example" },
        { "TO:<!#$%&'*+-/=?^_`{|}~@example.com>", 1,
          "!#$%&'*+-/=?^_`{|}~@example.com", "B", "example.com" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const t_ok_case *c = &cases[i];
        up_path p;
        up_parse_error e = { 0, NULL, NULL };
        char flags[8];
        int rc = up_path_parse(c->arg, c->rcpt, &p, &e);
        t_flags(&p, flags);
        ok(rc == 0 && !strcmp(p.mailbox, c->mailbox) &&
           !strcmp(flags, c->flags) &&
           !strcmp(up_mailbox_domain(p.mailbox), c->domain),
           "%s %s -> <%s> flags '%s' domain '%s'", c->rcpt ? "RCPT" : "MAIL",
           c->arg, c->mailbox, c->flags, c->domain);
        if (rc != 0)
            diag("refused: %d %s %s", e.code, e.enhanced, e.text);
        else if (strcmp(p.mailbox, c->mailbox) || strcmp(flags, c->flags))
            diag("got <%s> flags '%s'", p.mailbox, flags);
    }
}

typedef struct t_bad_case {
    const char *arg;
    int rcpt;
    int code;
    const char *enhanced;
    const char *text;        /* a substring of the reply text */
} t_bad_case;

static void t_paths_bad(void)
{
    static const t_bad_case cases[] = {
        { "FROM <a@b.example>", 0, 501, "5.5.4", "Syntax: MAIL FROM:" },
        { "TO <a@b.example>", 1, 501, "5.5.4", "Syntax: RCPT TO:" },
        { "FROM:<a@b.example>", 1, 501, "5.5.4", "Syntax: RCPT TO:" },
        { "", 0, 501, "5.5.4", "Syntax: MAIL FROM:" },
        { "FROM:", 0, 501, "5.1.7", "Missing sender address" },
        { "TO: ", 1, 501, "5.1.3", "Missing recipient address" },
        { "TO:<>", 1, 501, "5.1.3", "<> is for senders only" },
        { "FROM:<postmaster>", 0, 501, "5.1.7", "domain missing" },
        { "TO:<user>", 1, 501, "5.1.3", "domain missing" },
        { "TO:<\"postmaster\">", 1, 501, "5.1.3", "domain missing" },
        { "FROM:<a@b.example", 0, 501, "5.1.7", "missing >" },
        { "FROM:<a b@c.example>", 0, 501, "5.1.7", "Bad sender address" },
        { "TO:<a@b.example", 1, 501, "5.1.3", "missing >" },
        { "TO:<a..b@c.example>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<.a@c.example>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a.@c.example>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a@-c.example>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a@c-.example>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a@c..example>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a@c.example.>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a@>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<@c.example>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a@b@c.example>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<\"unterminated@c.example>", 1, 501, "5.1.3",
          "Bad recipient address" },
        { "TO:<\"a\x01\"@c.example>", 1, 501, "5.1.3",
          "Bad recipient address" },
        { "TO:<a@[192.0.2.256]>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a@[IPv6:zz::1]>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a@[]>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:<a@[1.2.3.4>", 1, 501, "5.1.3", "Bad recipient address" },
        { "TO:@r.example:a@b.example", 1, 501, "5.1.3",
          "Bad recipient address" },
        { "TO:<@r.example,a@b.example>", 1, 501, "5.1.3",
          "Bad recipient address" },
        { "TO:<@r.example;a@b.example>", 1, 501, "5.1.3",
          "Bad recipient address" },
        { "TO:<<a@b.example>>", 1, 501, "5.1.3", "Bad recipient address" },
        { "FROM:\t<a@b.example>", 0, 501, "5.1.7", "Bad sender address" },
        { "FROM:<a@b.example>SIZE=10", 0, 501, "5.5.4",
          "Syntax error in parameters" },
        { "FROM:a@b.example>", 0, 501, "5.1.7", "Bad sender address" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const t_bad_case *c = &cases[i];
        up_path p;
        up_parse_error e = { 0, NULL, NULL };
        int rc = up_path_parse(c->arg, c->rcpt, &p, &e);
        int pass = ok(rc == -1 && e.code == c->code && e.enhanced &&
           !strcmp(e.enhanced, c->enhanced) && e.text &&
           strstr(e.text, c->text),
           "%s %s -> %d %s ...%s...", c->rcpt ? "RCPT" : "MAIL", c->arg,
           c->code, c->enhanced, c->text);
        if (!pass && rc == -1)
            diag("got %d %s %s", e.code, e.enhanced, e.text);
    }
}

/* Local part 64, domain 255 (label 63), path 256: at and over each. */
static void t_lengths(void)
{
    char arg[2048], local[1100], domain[400];
    up_path p;
    up_parse_error e;

    memset(local, 'l', 64);
    local[64] = '\0';
    snprintf(arg, sizeof arg, "TO:<%s@example.com>", local);
    ok(up_path_parse(arg, 1, &p, &e) == 0 && strlen(p.mailbox) == 76,
       "local part of 64 octets accepted");
    local[64] = 'l';
    local[65] = '\0';
    snprintf(arg, sizeof arg, "TO:<%s@example.com>", local);
    ok(up_path_parse(arg, 1, &p, &e) == -1 && e.code == 553 &&
       !strcmp(e.enhanced, "5.1.3") && strstr(e.text, "64"),
       "local part of 65 octets: 553 5.1.3 (%s)", e.text);

    memset(local, 'l', 1000);
    local[1000] = '\0';
    snprintf(arg, sizeof arg, "FROM:<%s@example.com> SIZE=1", local);
    ok(up_path_parse(arg, 0, &p, &e) == -1 && e.code == 553 &&
       !strcmp(e.enhanced, "5.1.7") && strstr(e.text, "Local part"),
       "local part of 1000 octets: 553 5.1.7 (%s)", e.text);
    snprintf(arg, sizeof arg, "TO:%s", local);
    ok(up_path_parse(arg, 1, &p, &e) == -1 && e.code == 553,
       "1000 octets, no brackets, no domain: refused for its length");

    /* quoted local part: the quotes count */
    memset(local, 'q', 62);
    local[62] = '\0';
    snprintf(arg, sizeof arg, "TO:<\"%s\"@example.com>", local);
    ok(up_path_parse(arg, 1, &p, &e) == 0, "quoted local part of 64 with "
       "its quotes accepted");
    snprintf(arg, sizeof arg, "TO:<\"%sq\"@example.com>", local);
    ok(up_path_parse(arg, 1, &p, &e) == -1 && e.code == 553,
       "quoted local part of 65 with its quotes refused");

    /* label 63 ok, 64 not */
    memset(domain, 'd', 63);
    strcpy(domain + 63, ".example");
    snprintf(arg, sizeof arg, "TO:<a@%s>", domain);
    ok(up_path_parse(arg, 1, &p, &e) == 0, "63-octet label accepted");
    memset(domain, 'd', 64);
    strcpy(domain + 64, ".example");
    snprintf(arg, sizeof arg, "TO:<a@%s>", domain);
    ok(up_path_parse(arg, 1, &p, &e) == -1 && e.code == 553 &&
       strstr(e.text, "label"), "64-octet label: 553 (%s)", e.text);

    /* domain of 255 (4 labels of 63 + 3 dots): fits; the path then is
     * "<" + "a@" + 255 + ">" = 259 > 256: path too long. */
    size_t d = 0;
    for (int k = 0; k < 4; k++) {
        if (k)
            domain[d++] = '.';
        memset(domain + d, 'a' + k, 63);
        d += 63;
    }
    domain[d] = '\0';
    snprintf(arg, sizeof arg, "TO:<a@%s>", domain);
    ok(d == 255 && up_path_parse(arg, 1, &p, &e) == -1 && e.code == 501 &&
       !strcmp(e.enhanced, "5.1.3") && strstr(e.text, "256"),
       "255-octet domain makes a 259-octet path: 501 5.1.3 (%s)", e.text);
    domain[d++] = '.';
    domain[d++] = 'x';
    domain[d] = '\0';
    snprintf(arg, sizeof arg, "TO:<a@%s>", domain);
    ok(up_path_parse(arg, 1, &p, &e) == -1 && e.code == 553 &&
       strstr(e.text, "255"), "257-octet domain: 553 (%s)", e.text);

    /* path of exactly 256: "<" + 64 + "@" + 189 + ">" */
    memset(local, 'l', 64);
    local[64] = '\0';
    d = 0;
    for (int k = 0; k < 3; k++) {
        if (k)
            domain[d++] = '.';
        memset(domain + d, 'a' + k, k < 2 ? 63 : 61);
        d += k < 2 ? 63 : 61;
    }
    domain[d] = '\0';
    snprintf(arg, sizeof arg, "TO:<%s@%s>", local, domain);
    ok(d == 189 && up_path_parse(arg, 1, &p, &e) == 0 &&
       strlen(p.mailbox) == 256 - 2,
       "path of 256 octets accepted");
    snprintf(arg, sizeof arg, "TO:<%s@%s.b>", local, domain);
    ok(up_path_parse(arg, 1, &p, &e) == -1 && e.code == 501 &&
       strstr(e.text, "path"), "path of 258 octets: 501 (%s)", e.text);
    /* unbracketed, the path is counted as if it had its brackets */
    snprintf(arg, sizeof arg, "TO:%s@%s", local, domain);
    ok(up_path_parse(arg, 1, &p, &e) == 0, "unbracketed 254-octet mailbox "
       "accepted");
    snprintf(arg, sizeof arg, "TO:%s@%sx", local, domain);
    ok(up_path_parse(arg, 1, &p, &e) == -1 && e.code == 501,
       "unbracketed 255-octet mailbox refused");
    /* a source route counts towards the path */
    snprintf(arg, sizeof arg, "TO:<@r:%s@%s>", local, domain);
    ok(up_path_parse(arg, 1, &p, &e) == -1 && e.code == 501,
       "a source route counts towards the 256 octets");
}

static void t_params(void)
{
    up_path p;
    up_parse_error e;
    int rc;

    rc = up_path_parse("FROM:<a@b.example> SIZE=123 BODY=8BITMIME", 0, &p, &e);
    ok(rc == 0 && p.nparams == 2 && !strcmp(p.params[0].keyword, "SIZE") &&
       !strcmp(p.params[0].value, "123") &&
       !strcmp(p.params[1].keyword, "BODY") &&
       !strcmp(p.params[1].value, "8BITMIME"), "SIZE=123 BODY=8BITMIME");
    ok(up_path_param(&p, "size") && !strcmp(up_path_param(&p, "size"), "123")
       && up_path_param(&p, "AUTH") == NULL,
       "up_path_param: case-insensitive, NULL when absent");

    rc = up_path_parse("FROM:<a@b.example> smtputf8  ret=HDRS "
                       "envid=QQ+2Bx ", 0, &p, &e);
    ok(rc == 0 && p.nparams == 3 && !strcmp(p.params[0].keyword, "SMTPUTF8")
       && !strcmp(p.params[0].value, "") &&
       !strcmp(up_path_param(&p, "SMTPUTF8"), "") &&
       !strcmp(p.params[1].keyword, "RET") &&
       !strcmp(p.params[2].value, "QQ+2Bx"),
       "bare keyword, upper-cased keywords, value kept as sent, extra spaces");

    rc = up_path_parse("FROM:<> AUTH=<>", 0, &p, &e);
    ok(rc == 0 && p.null_path && !strcmp(up_path_param(&p, "AUTH"), "<>"),
       "null path with AUTH=<>");
    rc = up_path_parse("FROM:a@b.example SIZE=5", 0, &p, &e);
    ok(rc == 0 && !p.bracketed && !strcmp(p.mailbox, "a@b.example") &&
       !strcmp(up_path_param(&p, "SIZE"), "5"),
       "unbracketed path, then parameters");
    rc = up_path_parse("TO:<a@b.example> NOTIFY=SUCCESS,FAILURE "
                       "ORCPT=rfc822;a+40b.example", 1, &p, &e);
    ok(rc == 0 && p.nparams == 2 &&
       !strcmp(up_path_param(&p, "ORCPT"), "rfc822;a+40b.example"),
       "RCPT NOTIFY and ORCPT");

    static const struct {
        const char *arg;
        const char *text;
    } bad[] = {
        { "FROM:<a@b.example> SIZE=", "empty value" },
        { "FROM:<a@b.example> =10", "Syntax error in parameters" },
        { "FROM:<a@b.example> -X=1", "Syntax error in parameters" },
        { "FROM:<a@b.example> SI_ZE=1", "Syntax error in parameters" },
        { "FROM:<a@b.example> SIZE=1=2", "Syntax error in parameters" },
        { "FROM:<a@b.example> BODY=8BIT\x7f", "Syntax error in parameters" },
        { "FROM:<a@b.example> X=a\tb", "Syntax error in parameters" },
        { "FROM:<a@b.example> SIZE=1 size=2", "Duplicate parameter" },
        { "FROM:<a@b.example> "
          "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG=1", "keyword too long" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = up_path_parse(bad[i].arg, 0, &p, &e);
        int pass = ok(rc == -1 && e.code == 555 && !strcmp(e.enhanced, "5.5.4") &&
           strstr(e.text, bad[i].text), "'%s' -> 555 5.5.4 ...%s...",
           bad[i].arg, bad[i].text);
        if (!pass && rc == -1)
            diag("got %d %s %s", e.code, e.enhanced, e.text);
    }

    char arg[2048];
    size_t n = (size_t)snprintf(arg, sizeof arg, "FROM:<a@b.example> X=");
    memset(arg + n, 'v', 511);
    arg[n + 511] = '\0';
    ok(up_path_parse(arg, 0, &p, &e) == 0 && strlen(p.params[0].value) == 511,
       "value of 511 octets kept (ORCPT may be 500)");
    strcat(arg, "v");
    ok(up_path_parse(arg, 0, &p, &e) == -1 && e.code == 555 &&
       strstr(e.text, "value too long"), "value of 512 octets: 555");
    ok(up_path_parse("TO:<a@b.example> ORCPT=utf-8;j\xc3\xb6rg@b.example",
                     1, &p, &e) == 0 &&
       !strcmp(up_path_param(&p, "ORCPT"), "utf-8;j\xc3\xb6rg@b.example"),
       "a UTF-8 value is kept (RFC 6531 esmtp-value; its check is the "
       "extension's)");

    n = (size_t)snprintf(arg, sizeof arg, "FROM:<a@b.example>");
    for (int i = 0; i < UP_MAX_PARAMS; i++)
        n += (size_t)snprintf(arg + n, sizeof arg - n, " P%d=%d", i, i);
    ok(up_path_parse(arg, 0, &p, &e) == 0 && p.nparams == UP_MAX_PARAMS &&
       !strcmp(up_path_param(&p, "P15"), "15"),
       "%d parameters accepted", UP_MAX_PARAMS);
    snprintf(arg + n, sizeof arg - n, " P%d", UP_MAX_PARAMS);
    ok(up_path_parse(arg, 0, &p, &e) == -1 && e.code == 555 &&
       strstr(e.text, "Too many"), "%d parameters: 555", UP_MAX_PARAMS + 1);
}

static void t_domain(void)
{
    is_str(up_mailbox_domain("a@b.example"), "b.example", "domain of a@b");
    is_str(up_mailbox_domain("postmaster"), "", "no domain: \"\"");
    is_str(up_mailbox_domain("\"x@y\\\"@z\"@real.example"), "real.example",
           "the '@' in a quoted local part is not the domain's");
    is_str(up_mailbox_domain("a@[tag:b@c]"), "[tag:b@c]",
           "a literal holding '@' is kept whole");
    is_str(up_mailbox_domain(""), "", "null path: \"\"");
}

static void t_helo(void)
{
    static const struct {
        const char *name;
        int strict, lenient;    /* 0 accepted, -1 refused */
    } cases[] = {
        { "mail.example.org", 0, 0 },
        { "win_host-1.example", 0, 0 },
        { "localhost", 0, 0 },
        { "192.0.2.1", 0, 0 },
        { "[192.0.2.1]", 0, 0 },
        { "[IPv6:2001:db8::1]", 0, 0 },
        { "[x-tag:anything]", 0, 0 },
        { "[192.0.2.300]", -1, 0 },
        { "bad!name", -1, 0 },
        { "-dash.example", -1, 0 },
        { "dash-.example", -1, 0 },
        { "a..b", -1, 0 },
        { "trailing.dot.", -1, 0 },
        { "evil\x1b[31m\x07.example", -1, -1 },
        { "b\xc3\xbc" "cher.example", -1, -1 },
        { "del\x7f", -1, -1 },
        { "tab\there", -1, -1 },
        { "", -1, -1 },
    };
    up_parse_error e;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int s = up_helo_check(cases[i].name, 1, &e);
        int l = up_helo_check(cases[i].name, 0, &e);
        ok(s == cases[i].strict && l == cases[i].lenient,
           "HELO name %zu: strict %s, lenient %s", i,
           cases[i].strict ? "refused" : "accepted",
           cases[i].lenient ? "refused" : "accepted");
    }
    char name[300];
    memset(name, 'a', 63);
    name[63] = '\0';
    ok(up_helo_check(name, 1, &e) == 0, "63-octet label accepted");
    strcat(name, "a");
    ok(up_helo_check(name, 1, &e) == -1 && up_helo_check(name, 0, &e) == 0,
       "64-octet label: strict refuses, lenient accepts");
    for (size_t i = 0; i < 255; i++)
        name[i] = (i % 10 == 9) ? '.' : 'a';
    name[255] = '\0';
    ok(up_helo_check(name, 1, &e) == 0, "255 octets accepted");
    strcat(name, "a");
    ok(up_helo_check(name, 0, &e) == -1 && e.code == 501 &&
       !strcmp(e.enhanced, "5.5.2") && strstr(e.text, "255"),
       "256 octets: 501 5.5.2, even lenient");
}

int main(void)
{
    plan(16 + 23 + 36 + 15 + 20 + 5 + 22);
    t_verbs();
    t_helo();
    t_paths_ok();
    t_paths_bad();
    t_lengths();
    t_params();
    t_domain();
    return done_testing();
}
