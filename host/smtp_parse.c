/*
 * smtp_parse.c - SMTP verbs and MAIL/RCPT paths (RFC 5321 4.1.1, 4.1.2).
 *
 * The path is parsed by its grammar, not by searching for '>' or '@': a
 * quoted local part may hold both, and a domain literal may hold '@'.
 * Deviations that real clients make (no <>, a space after the colon) are
 * accepted and recorded in up_path so that strict821 can refuse them; all
 * else is refused with the reply that names the fault.  Non-ASCII bytes in
 * the mailbox are accepted where RFC 6531 puts them and flagged, because
 * whether they are allowed depends on SMTPUTF8, which is the session's call.
 *
 * Length limits are RFC 5321 4.5.3.1: local part 64, domain 255 (and a DNS
 * label 63, RFC 1035), path 256 octets counting "<", ">" and any source
 * route.  A path too long is "501 Path too long" as 4.5.3.1.10 lists it; a
 * well-formed mailbox whose part is over its limit is a mailbox name not
 * allowed, 553.
 *
 * Fails: never; a bad argument is reported through up_parse_error, whose
 * texts are static strings.
 */
#include <arpa/inet.h>
#include <string.h>

#include "smtp_parse.h"

#define UP_MAX_LOCAL_PART 64
#define UP_MAX_DOMAIN 255
#define UP_MAX_LABEL 63
#define UP_MAX_PATH 256

static const char *const up_verb_names[UP_VERB_COUNT] = {
    [UP_VERB_HELO] = "HELO", [UP_VERB_EHLO] = "EHLO",
    [UP_VERB_MAIL] = "MAIL", [UP_VERB_RCPT] = "RCPT",
    [UP_VERB_DATA] = "DATA", [UP_VERB_RSET] = "RSET",
    [UP_VERB_NOOP] = "NOOP", [UP_VERB_QUIT] = "QUIT",
    [UP_VERB_VRFY] = "VRFY", [UP_VERB_EXPN] = "EXPN",
    [UP_VERB_HELP] = "HELP", [UP_VERB_STARTTLS] = "STARTTLS",
    [UP_VERB_AUTH] = "AUTH", [UP_VERB_BDAT] = "BDAT",
    [UP_VERB_XCLIENT] = "XCLIENT",
};

/* ASCII only: the C library's versions follow the locale, SMTP does not. */
static int up__upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

static int up__ncaseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (up__upper((unsigned char)a[i]) != up__upper((unsigned char)b[i]))
            return 0;
    return 1;
}

static int up__alnum(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

const char *up_verb_name(up_verb verb)
{
    if ((int)verb <= UP_VERB_UNKNOWN || verb >= UP_VERB_COUNT)
        return NULL;
    return up_verb_names[verb];
}

void up_command_parse(const char *line, up_command *out)
{
    size_t n = strcspn(line, " ");
    size_t k;

    /* verb_text ends up in logs: anything but printable ASCII becomes '?'
     * so that a client cannot write control bytes into them. */
    for (k = 0; k < n && k < sizeof out->verb_text - 1; k++) {
        unsigned char c = (unsigned char)line[k];
        out->verb_text[k] = (char)(c > 0x20 && c < 0x7f ? up__upper(c) : '?');
    }
    out->verb_text[k] = '\0';

    out->verb = UP_VERB_UNKNOWN;
    for (int v = UP_VERB_UNKNOWN + 1; v < UP_VERB_COUNT; v++) {
        if (strlen(up_verb_names[v]) == n &&
            up__ncaseeq(line, up_verb_names[v], n)) {
            out->verb = (up_verb)v;
            break;
        }
    }
    out->arg = line[n] == ' ' ? line + n + 1 : line + n;
}

/* -- the pieces of a path; each returns the end of what it matched, or
 *    NULL.  *eightbit is set on a byte >= 0x80 (RFC 6531 UTF8-non-ascii). */

static int up__atext(unsigned char c)
{
    return up__alnum(c) || c >= 0x80 || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Dot-string = Atom *("." Atom) */
static const char *up__dot_string(const char *p, int *eightbit)
{
    for (;;) {
        const char *atom = p;
        while (up__atext((unsigned char)*p)) {
            if ((unsigned char)*p >= 0x80)
                *eightbit = 1;
            p++;
        }
        if (p == atom)
            return NULL;
        if (*p != '.')
            return p;
        p++;
    }
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE, kept with its quotes. */
static const char *up__quoted(const char *p, int *eightbit)
{
    for (p++;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            c = (unsigned char)*++p;
            if (c < 32 || c > 126)
                return NULL;
        } else if (c >= 0x80) {
            *eightbit = 1;
        } else if (c < 32 || c > 126) {
            return NULL;        /* controls, and the end of the line */
        }
    }
}

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str];
 * a U-label's bytes count as letters.  *long_label on a label over 63. */
static const char *up__domain(const char *p, int *eightbit, int *long_label)
{
    for (;;) {
        const char *label = p;
        unsigned char c = (unsigned char)*p;
        if (!up__alnum(c) && c < 0x80)
            return NULL;
        while (up__alnum(c = (unsigned char)*p) || c >= 0x80 || c == '-') {
            if (c >= 0x80)
                *eightbit = 1;
            p++;
        }
        if (p[-1] == '-')
            return NULL;
        if (p - label > UP_MAX_LABEL)
            *long_label = 1;
        if (*p != '.')
            return p;
        p++;
    }
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 / tag ":" 1*dcontent ) "]" */
static const char *up__address_literal(const char *p)
{
    const char *open = ++p;
    while ((unsigned char)*p >= 33 && (unsigned char)*p <= 126 &&
           *p != '[' && *p != ']' && *p != '\\')
        p++;
    if (*p != ']' || p == open)
        return NULL;
    size_t len = (size_t)(p - open);
    const char *close = p + 1;
    char addr[64];
    unsigned char bin[16];

    if (len > 5 && up__ncaseeq(open, "IPv6:", 5)) {
        if (len - 5 >= sizeof addr)
            return NULL;
        memcpy(addr, open + 5, len - 5);
        addr[len - 5] = '\0';
        return inet_pton(AF_INET6, addr, bin) == 1 ? close : NULL;
    }
    const char *colon = memchr(open, ':', len);
    if (colon == NULL) {
        if (len >= sizeof addr)
            return NULL;
        memcpy(addr, open, len);
        addr[len] = '\0';
        return inet_pton(AF_INET, addr, bin) == 1 ? close : NULL;
    }
    /* General-address-literal: Standardized-tag = Ldh-str */
    if (colon == open || colon + 1 == p || colon[-1] == '-')
        return NULL;
    for (const char *t = open; t < colon; t++)
        if (!up__alnum((unsigned char)*t) && *t != '-')
            return NULL;
    return close;
}

/* -- errors: MAIL's are about the sender (5.1.7), RCPT's the recipient */

static int up__fail(up_parse_error *err, int code, const char *enhanced,
                    const char *text)
{
    err->code = code;
    err->enhanced = enhanced;
    err->text = text;
    return -1;
}

/* The strict HELO name: Domain of RFC 5321 4.1.2 in ASCII, labels of at
 * most 63 octets, and "_" taken as a letter (Windows host names carry it;
 * refusing them refuses real mail for no gain). */
static const char *up__helo_domain(const char *p)
{
    for (;;) {
        const char *label = p;
        unsigned char c = (unsigned char)*p;
        if (!up__alnum(c) && c != '_')
            return NULL;
        while (up__alnum(c = (unsigned char)*p) || c == '-' || c == '_')
            p++;
        if (p[-1] == '-' || p - label > UP_MAX_LABEL)
            return NULL;
        if (*p != '.')
            return p;
        p++;
    }
}

int up_helo_check(const char *arg, int strict, up_parse_error *err)
{
    size_t len = strlen(arg);
    if (len == 0)
        return up__fail(err, 501, "5.5.2", "Error: HELO/EHLO needs a "
                        "domain name or address literal");
    if (len > UP_MAX_DOMAIN)
        return up__fail(err, 501, "5.5.2", "Error: HELO/EHLO argument "
                        "longer than 255 octets");
    for (const unsigned char *p = (const unsigned char *)arg; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return up__fail(err, 501, "5.5.2", "Error: HELO/EHLO argument "
                            "holds a control, space or non-ASCII byte");
    if (!strict)
        return 0;
    const char *end = arg[0] == '[' ? up__address_literal(arg)
                                    : up__helo_domain(arg);
    if (end == NULL || *end != '\0')
        return up__fail(err, 501, "5.5.2", "Error: HELO/EHLO argument is "
                        "not a domain name or address literal");
    return 0;
}

static int up__addr_fail(up_parse_error *err, int is_rcpt, int code,
                         const char *sender_text, const char *rcpt_text)
{
    return up__fail(err, code, is_rcpt ? "5.1.3" : "5.1.7",
                    is_rcpt ? rcpt_text : sender_text);
}

#define UP_BAD_ADDRESS(err, is_rcpt)                                      \
    up__addr_fail(err, is_rcpt, 501, "Bad sender address syntax",          \
                  "Bad recipient address syntax")

static int up__param_fail(up_parse_error *err, const char *text)
{
    return up__fail(err, 555, "5.5.4", text);
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value] ( SP esmtp-param )*.
 * The value is checked as RFC 5321's esmtp-value (RFC 6531 adds UTF-8 to
 * it), of which xtext (DSN's ENVID, ORCPT; AUTH=) is a subset: decoding
 * it is the extension's job. */
static int up__params(const char *p, up_path *out, up_parse_error *err)
{
    for (;;) {
        while (*p == ' ')       /* lenient: extra and trailing spaces */
            p++;
        if (*p == '\0')
            return 0;
        const char *kw = p;
        if (!up__alnum((unsigned char)*p))
            return up__param_fail(err, "Syntax error in parameters");
        while (up__alnum((unsigned char)*p) || *p == '-')
            p++;
        size_t kwlen = (size_t)(p - kw);
        const char *val = p;
        size_t vlen = 0;
        if (*p == '=') {
            val = ++p;
            while ((unsigned char)*p >= 33 && (unsigned char)*p != 127 &&
                   *p != '=')
                p++;
            vlen = (size_t)(p - val);
            if (vlen == 0)
                return up__param_fail(err, "Syntax error in parameters: "
                                      "empty value");
        }
        if (*p != ' ' && *p != '\0')
            return up__param_fail(err, "Syntax error in parameters");
        if (kwlen >= sizeof out->params[0].keyword)
            return up__param_fail(err, "Parameter keyword too long");
        if (vlen >= sizeof out->params[0].value)
            return up__param_fail(err, "Parameter value too long");
        for (int i = 0; i < out->nparams; i++)
            if (strlen(out->params[i].keyword) == kwlen &&
                up__ncaseeq(out->params[i].keyword, kw, kwlen))
                return up__param_fail(err, "Duplicate parameter");
        if (out->nparams == UP_MAX_PARAMS)
            return up__param_fail(err, "Too many parameters");
        up_param *param = &out->params[out->nparams++];
        for (size_t i = 0; i < kwlen; i++)
            param->keyword[i] = (char)up__upper((unsigned char)kw[i]);
        param->keyword[kwlen] = '\0';
        memcpy(param->value, val, vlen);
        param->value[vlen] = '\0';
    }
}

int up_path_parse(const char *arg, int is_rcpt, up_path *out,
                  up_parse_error *err)
{
    const char *kw = is_rcpt ? "TO:" : "FROM:";
    size_t kwlen = strlen(kw);
    int eightbit = 0, long_label = 0;

    memset(out, 0, sizeof *out);
    if (!up__ncaseeq(arg, kw, kwlen))
        return up__fail(err, 501, "5.5.4", is_rcpt ?
                        "Syntax: RCPT TO:<address>" :
                        "Syntax: MAIL FROM:<address>");
    const char *p = arg + kwlen;
    if (*p == ' ') {
        out->space_before_path = 1;
        while (*p == ' ')
            p++;
    }
    if (*p == '<') {
        out->bracketed = 1;
        p++;
    }
    const char *path = p;

    if (out->bracketed && *p == '>') {
        if (is_rcpt)
            return up__fail(err, 501, "5.1.3", "Bad recipient address "
                            "syntax: <> is for senders only");
        out->null_path = 1;
        p++;
        goto params;
    }
    if (*p == '\0' || *p == ' ')
        return up__addr_fail(err, is_rcpt, 501, "Missing sender address",
                             "Missing recipient address");

    /* A-d-l ":" (RFC 5321 4.1.2: accepted, and its hosts ignored) */
    if (*p == '@') {
        if (!out->bracketed)
            return UP_BAD_ADDRESS(err, is_rcpt);
        for (;;) {
            p = up__domain(p + 1, &eightbit, &long_label);
            if (p == NULL)
                return UP_BAD_ADDRESS(err, is_rcpt);
            if (*p == ':')
                break;
            if (p[0] != ',' || p[1] != '@')
                return UP_BAD_ADDRESS(err, is_rcpt);
            p++;
        }
        p++;
        out->had_source_route = 1;
        /* the route's hosts are not kept, so neither are their flags */
        eightbit = long_label = 0;
    }

    const char *mailbox = p;
    int local_8bit = 0;
    p = *p == '"' ? up__quoted(p, &local_8bit) : up__dot_string(p, &local_8bit);
    if (p == NULL)
        return UP_BAD_ADDRESS(err, is_rcpt);
    if (p - mailbox > UP_MAX_LOCAL_PART)
        return up__addr_fail(err, is_rcpt, 553,
                             "Local part of sender address longer than 64 "
                             "octets",
                             "Local part of recipient address longer than "
                             "64 octets");
    if (*p == '@') {
        const char *domain = ++p;
        p = *p == '[' ? up__address_literal(p)
                      : up__domain(p, &eightbit, &long_label);
        if (p == NULL)
            return UP_BAD_ADDRESS(err, is_rcpt);
        if (p - domain > UP_MAX_DOMAIN)
            return up__addr_fail(err, is_rcpt, 553,
                                 "Sender domain longer than 255 octets",
                                 "Recipient domain longer than 255 octets");
        if (long_label)
            return up__addr_fail(err, is_rcpt, 553,
                                 "Sender domain has a label longer than 63 "
                                 "octets",
                                 "Recipient domain has a label longer than "
                                 "63 octets");
    } else if (*p != (out->bracketed ? '>' : ' ') && *p != '\0') {
        return UP_BAD_ADDRESS(err, is_rcpt);
    } else if (!is_rcpt || p - mailbox != 10 ||
               !up__ncaseeq(mailbox, "postmaster", 10)) {
        /* RFC 5321 4.1.1.3: only RCPT may name "postmaster" alone */
        return up__addr_fail(err, is_rcpt, 501,
                             "Bad sender address syntax: domain missing",
                             "Bad recipient address syntax: domain missing");
    }
    size_t mailbox_len = (size_t)(p - mailbox);
    if (out->bracketed) {
        if (*p != '>' && *p != '\0')
            return UP_BAD_ADDRESS(err, is_rcpt);
        if (*p != '>')
            return up__addr_fail(err, is_rcpt, 501,
                                 "Bad sender address syntax: missing >",
                                 "Bad recipient address syntax: missing >");
        p++;
    }
    /* counted as if bracketed: the limit is on the path, however sent */
    if ((size_t)(p - path) + (out->bracketed ? 1 : 2) > UP_MAX_PATH)
        return up__addr_fail(err, is_rcpt, 501,
                             "Sender path longer than 256 octets",
                             "Recipient path longer than 256 octets");
    memcpy(out->mailbox, mailbox, mailbox_len);
    out->mailbox[mailbox_len] = '\0';
    out->local_8bit = local_8bit || eightbit;

params:
    if (*p != ' ' && *p != '\0') {
        if (!out->bracketed)    /* the unbracketed mailbox ends badly */
            return UP_BAD_ADDRESS(err, is_rcpt);
        return up__fail(err, 501, "5.5.4", "Syntax error in parameters");
    }
    return up__params(p, out, err);
}

const char *up_path_param(const up_path *path, const char *keyword)
{
    size_t len = strlen(keyword);
    for (int i = 0; i < path->nparams; i++)
        if (strlen(path->params[i].keyword) == len &&
            up__ncaseeq(path->params[i].keyword, keyword, len))
            return path->params[i].value;
    return NULL;
}

const char *up_mailbox_domain(const char *mailbox)
{
    const char *p = mailbox;
    if (*p == '"') {
        /* a quoted local part may hold '@' */
        for (p++; *p != '\0' && *p != '"'; p++)
            if (*p == '\\' && p[1] != '\0')
                p++;
    }
    p = strchr(p, '@');
    return p != NULL ? p + 1 : "";
}

int up_bdat_parse(const char *arg, unsigned long long *size, int *last,
                  up_parse_error *err)
{
    const char *p = arg;
    unsigned long long v = 0;
    *size = 0;
    *last = 0;
    if (*p < '0' || *p > '9')
        return up__fail(err, 501, "5.5.4", "Syntax: BDAT size [LAST]");
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (unsigned long long)(*p - '0');
        if (v > UP_BDAT_MAX_SIZE)
            return up__fail(err, 501, "5.5.4", "BDAT chunk size too "
                            "large");
    }
    if (*p == ' ' && up__ncaseeq(p + 1, "LAST", 4) && p[5] == '\0') {
        *last = 1;
        p += 5;
    }
    if (*p != '\0')
        return up__fail(err, 501, "5.5.4", "Syntax: BDAT size [LAST]");
    *size = v;
    return 0;
}
