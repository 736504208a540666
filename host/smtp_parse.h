/*
 * smtp_parse.h - SMTP command and address parsing (RFC 5321 4.1, 4.1.2).
 *
 * Pure functions over one command line: no I/O, no allocation beyond the
 * caller's structs.  Every failure comes back as a reply the session can
 * send as is (code, enhanced code, text), so a bad input is always answered
 * with a precise reason.
 */
#ifndef UPESI_SMTP_PARSE_H
#define UPESI_SMTP_PARSE_H

#include <stddef.h>

typedef enum up_verb {
    UP_VERB_UNKNOWN = 0,
    UP_VERB_HELO, UP_VERB_EHLO, UP_VERB_MAIL, UP_VERB_RCPT, UP_VERB_DATA,
    UP_VERB_RSET, UP_VERB_NOOP, UP_VERB_QUIT, UP_VERB_VRFY, UP_VERB_EXPN,
    UP_VERB_HELP, UP_VERB_STARTTLS, UP_VERB_AUTH, UP_VERB_BDAT,
    UP_VERB_XCLIENT,
    UP_VERB_COUNT
} up_verb;

/* Canonical upper-case name of a verb ("MAIL"); NULL for UNKNOWN. */
const char *up_verb_name(up_verb verb);

typedef struct up_command {
    up_verb verb;
    char verb_text[16];      /* the verb as sent, upper-cased, truncated    */
    const char *arg;         /* points into the line: text after the verb
                                and one space, or "" (never NULL)           */
} up_command;

/* Split a command line (no terminator) into verb and argument. */
void up_command_parse(const char *line, up_command *out);

/* A parse failure, as an SMTP reply. */
typedef struct up_parse_error {
    int code;                /* 501, 553, 555 ...                          */
    const char *enhanced;    /* "5.5.4"                                    */
    const char *text;        /* "Syntax error in parameters"               */
} up_parse_error;

#define UP_MAX_PARAMS 16
#define UP_MAX_ADDRESS 512   /* > RFC 5321's 256-octet path limit           */

typedef struct up_param {
    char keyword[32];        /* upper-cased                                */
    char value[512];         /* "" for a bare keyword; bytes over 127 are
                                kept (RFC 6531 esmtp-value under SMTPUTF8:
                                ORCPT=utf-8;...), their check is the
                                extension's                               */
} up_param;

typedef struct up_path {
    char mailbox[UP_MAX_ADDRESS]; /* local@domain without <>, "" = null path,
                                     source route removed                 */
    int null_path;           /* <> (MAIL only)                             */
    int bracketed;           /* the path was inside <>                     */
    int space_before_path;   /* "FROM: <a@b>" (RFC 821 forbids the space)  */
    int had_source_route;    /* <@a,@b:u@d>                                 */
    int local_8bit;          /* non-ASCII bytes in the local part (or in
                                the domain: a U-label); both need SMTPUTF8 */
    int nparams;
    up_param params[UP_MAX_PARAMS];
} up_path;

/* Parse the argument of MAIL ("FROM:<a@b> SIZE=10") or RCPT ("TO:<a@b>").
 * Lenient about the missing <> and a space after the colon (policy belongs
 * to strict821), strict about everything else: quoted local parts are
 * accepted and kept quoted, domain literals [1.2.3.4] accepted, "postmaster"
 * without a domain accepted for RCPT.  Returns 0, or -1 with *err set. */
int up_path_parse(const char *arg, int is_rcpt, up_path *out,
                  up_parse_error *err);

/* A parameter's value, "" for a bare keyword, NULL if absent. */
const char *up_path_param(const up_path *path, const char *keyword);

/* Domain part of a mailbox ("" if none). */
const char *up_mailbox_domain(const char *mailbox);

/* Check the argument of HELO/EHLO (no space in it: the caller splits).
 * Never admitted: more than 255 octets, a control byte, a space, DEL or a
 * byte over 127, so the name can go into a header or a log as it is.
 * strict also wants RFC 5321's Domain (labels of letters, digits, "-" and
 * "_", at most 63 octets each) or an address literal ([192.0.2.1],
 * [IPv6:...], tag:...); lenient takes any other printable ASCII (Domino's
 * way).  Returns 0, or -1 with *err set (501 5.5.2). */
int up_helo_check(const char *arg, int strict, up_parse_error *err);

/* The largest BDAT chunk size the parser takes (RFC 3030 allows any
 * 1*DIGIT; a size this large is refused before a byte of it is read). */
#define UP_BDAT_MAX_SIZE 0xFFFFFFFFFFFFull

/* Parse the argument of BDAT (RFC 3030 2): chunk-size, one space, and an
 * optional "LAST" (any case).  Digits only (no sign, no blank, at most
 * UP_BDAT_MAX_SIZE); nothing after LAST.  Returns 0 with *size and *last,
 * or -1 with *err set (501 5.5.4). */
int up_bdat_parse(const char *arg, unsigned long long *size, int *last,
                  up_parse_error *err);

#endif
