/*
 * rules.c - lexer and recursive-descent parser of the mail rules language
 * (grammar in docs/mail-rules.md):
 *
 *   file    := rule*
 *   rule    := 'rule' STRING ( 'when' expr | 'unless' expr | 'do' actions )+
 *   actions := action ( ';' action )*
 *   expr    := and ( 'or' and )*
 *   and     := unary ( 'and' unary )*
 *   unary   := 'not' unary | '(' expr ')' | 'all' | field op value
 *   field   := NAME | 'header' STRING
 *   op      := contains | not contains | does not contain | is | is not
 *            | '<' | '>' | is less than | is greater than
 *
 * Keywords are case-insensitive; '#' starts a comment to the end of the
 * line; strings are "double quoted" with \" and \\ escapes.
 *
 * Fails: the first error stops the parse with "FILE:LINE: what was
 * expected, what was found"; nothing is allocated that is not freed.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <glib.h>

#include "rules.h"

static const char *const field_names[MR_F_COUNT] = {
    [MR_F_ALL] = "all", [MR_F_SENDER] = "sender", [MR_F_SUBJECT] = "subject",
    [MR_F_BODY] = "body", [MR_F_IMPORTANCE] = "importance",
    [MR_F_DELIVERY_PRIORITY] = "delivery_priority", [MR_F_TO] = "to",
    [MR_F_CC] = "cc", [MR_F_BCC] = "bcc", [MR_F_TO_OR_CC] = "to_or_cc",
    [MR_F_BODY_OR_SUBJECT] = "body_or_subject",
    [MR_F_INTERNET_DOMAIN] = "internet_domain", [MR_F_SIZE] = "size",
    [MR_F_ATTACHMENT_NAME] = "attachment_name",
    [MR_F_ATTACHMENT_COUNT] = "attachment_count",
    [MR_F_RECIPIENT_COUNT] = "recipient_count",
    [MR_F_ANY_RECIPIENT] = "any_recipient",
    [MR_F_BLACKLIST_TAG] = "blacklist_tag",
    [MR_F_WHITELIST_TAG] = "whitelist_tag", [MR_F_HEADER] = "header",
    [MR_F_BAYES_CLASS] = "bayes_class",
    [MR_F_BAYES_PROBABILITY] = "bayes_probability",
    [MR_F_KARMA_SCORE] = "karma_score", [MR_F_DNS_SCORE] = "dns_score",
};

static const char *const action_names[MR_A_COUNT] = {
    [MR_A_QUARANTINE] = "quarantine", [MR_A_JOURNAL] = "journal",
    [MR_A_REJECT] = "reject", [MR_A_DROP] = "drop", [MR_A_HOLD] = "hold",
    [MR_A_COPY_TO] = "copy_to", [MR_A_TAG] = "tag", [MR_A_STOP] = "stop",
    [MR_A_VOTE] = "vote",
};

static const char *const action_stats[MR_A_COUNT] = {
    [MR_A_QUARANTINE] = "SMTP.Rules.Action.Quarantine",
    [MR_A_JOURNAL] = "SMTP.Rules.Action.Journal",
    [MR_A_REJECT] = "SMTP.Rules.Action.Reject",
    [MR_A_DROP] = "SMTP.Rules.Action.Drop",
    [MR_A_HOLD] = "SMTP.Rules.Action.Hold",
    [MR_A_COPY_TO] = "SMTP.Rules.Action.CopyTo",
    [MR_A_TAG] = "SMTP.Rules.Action.Tag",
    [MR_A_STOP] = "SMTP.Rules.Action.Stop",
    [MR_A_VOTE] = "SMTP.Rules.Action.Vote",
};

const char *mr_field_name(mr_field field)
{
    return (unsigned)field < MR_F_COUNT ? field_names[field] : "?";
}

const char *mr_action_name(mr_action_kind kind)
{
    return (unsigned)kind < MR_A_COUNT ? action_names[kind] : "?";
}

const char *mr_action_stat(mr_action_kind kind)
{
    return (unsigned)kind < MR_A_COUNT ? action_stats[kind] : "?";
}

int mr_field_is_number(mr_field field)
{
    return field == MR_F_SIZE || field == MR_F_ATTACHMENT_COUNT ||
           field == MR_F_RECIPIENT_COUNT || field == MR_F_BAYES_PROBABILITY ||
           field == MR_F_KARMA_SCORE || field == MR_F_DNS_SCORE;
}

char *mr_fold(const char *s, size_t len)
{
    size_t ascii = 0;
    while (ascii < len && (unsigned char)s[ascii] < 0x80 && s[ascii])
        ascii++;
    if (ascii < len && g_utf8_validate(s, (gssize)len, NULL)) {
        gchar *g = g_utf8_casefold(s, (gssize)len);
        char *out = g ? strdup(g) : NULL;
        g_free(g);
        return out;
    }
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[len] = '\0';
    return out;
}

/* ---------------------------------------------------------------------- */
/* lexer                                                                   */

typedef enum tok_kind {
    T_EOF, T_WORD, T_STRING, T_LPAREN, T_RPAREN, T_SEMI, T_LT, T_GT, T_BAD
} tok_kind;

typedef struct parser {
    const char *p, *end;
    int line;
    const char *file;
    char *err;
    size_t errlen;
    int failed;
    int depth;
    /* the current token */
    tok_kind kind;
    const char *start;
    size_t len;
    int tline;
    char *str;                  /* T_STRING: its value, unescaped */
    size_t str_len;
    mr_rules *rules;
} parser;

static void fail(parser *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(parser *ps, const char *fmt, ...)
{
    if (ps->failed)
        return;
    ps->failed = 1;
    int n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->file, ps->tline);
    if (n < 0 || (size_t)n >= ps->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* What the current token looks like, for messages. */
static const char *tok_show(parser *ps, char *buf, size_t len)
{
    switch (ps->kind) {
    case T_EOF:
        return "the end of the file";
    case T_STRING:
        snprintf(buf, len, "\"%.40s\"", ps->str ? ps->str : "");
        return buf;
    case T_BAD:
        if (ps->len && (unsigned char)ps->start[0] >= 0x21 &&
            (unsigned char)ps->start[0] < 0x7f)
            snprintf(buf, len, "'%c'", ps->start[0]);
        else
            snprintf(buf, len, "byte 0x%02x",
                     ps->len ? (unsigned char)ps->start[0] : 0);
        return buf;
    default:
        snprintf(buf, len, "'%.*s'", (int)(ps->len > 40 ? 40 : ps->len),
                 ps->start);
        return buf;
    }
}

static int is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static void lex_string(parser *ps)
{
    const char *p = ps->p + 1;
    char *out = malloc((size_t)(ps->end - p) + 1);
    size_t n = 0;
    if (out == NULL) {
        fail(ps, "out of memory");
        return;
    }
    for (;;) {
        if (p >= ps->end || *p == '\n') {
            free(out);
            fail(ps, "unterminated string");
            return;
        }
        if (*p == '"')
            break;
        if (*p == '\\' && p + 1 < ps->end && (p[1] == '"' || p[1] == '\\'))
            p++;
        if (*p == '\0' || *p == '\r') {
            free(out);
            fail(ps, "control character in a string");
            return;
        }
        out[n++] = *p++;
        if (n > MR_MAX_TEXT) {
            free(out);
            fail(ps, "string longer than %d bytes", MR_MAX_TEXT);
            return;
        }
    }
    out[n] = '\0';
    free(ps->str);
    ps->str = out;
    ps->str_len = n;
    ps->kind = T_STRING;
    ps->len = (size_t)(p + 1 - ps->start);
    ps->p = p + 1;
}

static void next(parser *ps)
{
    if (ps->failed) {
        ps->kind = T_EOF;
        return;
    }
    for (;;) {
        while (ps->p < ps->end && isspace((unsigned char)*ps->p)) {
            if (*ps->p == '\n')
                ps->line++;
            ps->p++;
        }
        if (ps->p < ps->end && *ps->p == '#') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
            continue;
        }
        break;
    }
    ps->start = ps->p;
    ps->tline = ps->line;
    ps->len = 1;
    if (ps->p >= ps->end) {
        ps->kind = T_EOF;
        ps->len = 0;
        return;
    }
    char c = *ps->p;
    switch (c) {
    case '(': ps->kind = T_LPAREN; ps->p++; return;
    case ')': ps->kind = T_RPAREN; ps->p++; return;
    case ';': ps->kind = T_SEMI; ps->p++; return;
    case '<': ps->kind = T_LT; ps->p++; return;
    case '>': ps->kind = T_GT; ps->p++; return;
    case '"': lex_string(ps); return;
    default:
        break;
    }
    int minus = c == '-' && ps->p + 1 < ps->end &&   /* a negative number */
                isdigit((unsigned char)ps->p[1]);
    if (is_word_char(c) || minus) {
        const char *q = ps->p + minus;
        while (q < ps->end && is_word_char(*q))
            q++;
        ps->kind = T_WORD;
        ps->len = (size_t)(q - ps->p);
        ps->p = q;
        return;
    }
    ps->kind = T_BAD;
    ps->p++;
}

static int is_word(parser *ps, const char *word)
{
    return ps->kind == T_WORD && strlen(word) == ps->len &&
           strncasecmp(ps->start, word, ps->len) == 0;
}

static int accept_word(parser *ps, const char *word)
{
    if (!is_word(ps, word))
        return 0;
    next(ps);
    return 1;
}

static void expected(parser *ps, const char *what)
{
    char buf[64];
    fail(ps, "expected %s, found %s", what, tok_show(ps, buf, sizeof buf));
}

/* ---------------------------------------------------------------------- */
/* expressions                                                             */

static void expr_free(mr_expr *e)
{
    if (e == NULL)
        return;
    expr_free(e->a);
    expr_free(e->b);
    free(e->header);
    free(e->text);
    free(e);
}

static mr_expr *expr_new(parser *ps, mr_expr_kind kind)
{
    mr_expr *e = calloc(1, sizeof *e);
    if (e == NULL)
        fail(ps, "out of memory");
    else
        e->kind = kind;
    return e;
}

static mr_expr *parse_or(parser *ps);

/* A number with an optional K, M or G suffix (1024s). */
static int parse_number(const char *s, size_t len, long long *out)
{
    long long n = 0;
    size_t i = 0;
    int neg = len > 1 && s[0] == '-';   /* karma_score < -5 */
    if (neg) {
        s++;
        len--;
    }
    if (len == 0 || !isdigit((unsigned char)s[0]))
        return -1;
    for (; i < len && isdigit((unsigned char)s[i]); i++) {
        if (n > (LLONG_MAX - 9) / 10)
            return -1;
        n = n * 10 + (s[i] - '0');
    }
    if (i < len) {
        long long mul;
        switch (s[i] | 0x20) {
        case 'k': mul = 1024; break;
        case 'm': mul = 1024 * 1024; break;
        case 'g': mul = 1024 * 1024 * 1024; break;
        default: return -1;
        }
        if (i + 1 != len && !(i + 2 == len && (s[i + 1] | 0x20) == 'b'))
            return -1;
        if (n > LLONG_MAX / mul)
            return -1;
        n *= mul;
    }
    *out = neg ? -n : n;
    return 0;
}

static int parse_op(parser *ps, mr_op *op)
{
    if (ps->kind == T_LT || ps->kind == T_GT) {
        *op = ps->kind == T_LT ? MR_OP_LESS : MR_OP_GREATER;
        next(ps);
        return 0;
    }
    if (accept_word(ps, "contains")) {
        *op = MR_OP_CONTAINS;
        return 0;
    }
    if (accept_word(ps, "not")) {
        if (accept_word(ps, "contains")) {
            *op = MR_OP_NOT_CONTAINS;
            return 0;
        }
        expected(ps, "'contains' after 'not'");
        return -1;
    }
    if (accept_word(ps, "does")) {
        if (accept_word(ps, "not") && accept_word(ps, "contain")) {
            *op = MR_OP_NOT_CONTAINS;
            return 0;
        }
        expected(ps, "'does not contain'");
        return -1;
    }
    if (accept_word(ps, "is")) {
        *op = MR_OP_IS;
        if (accept_word(ps, "not"))
            *op = MR_OP_IS_NOT;
        else if (is_word(ps, "less") || is_word(ps, "greater")) {
            *op = is_word(ps, "less") ? MR_OP_LESS : MR_OP_GREATER;
            next(ps);
            if (!accept_word(ps, "than")) {
                expected(ps, "'than'");
                return -1;
            }
        }
        return 0;
    }
    expected(ps, "an operator (contains, not contains, is, is not, <, >)");
    return -1;
}

static mr_expr *parse_condition(parser *ps)
{
    if (ps->kind != T_WORD) {
        expected(ps, "a condition");
        return NULL;
    }
    mr_field field = MR_F_COUNT;
    for (int i = 0; i < MR_F_COUNT; i++)
        if (is_word(ps, field_names[i]))
            field = (mr_field)i;
    if (field == MR_F_COUNT) {
        char buf[64];
        fail(ps, "unknown condition %s", tok_show(ps, buf, sizeof buf));
        return NULL;
    }
    next(ps);
    ps->rules->needs |= 1u << field;
    mr_expr *e = expr_new(ps, MR_E_COND);
    if (e == NULL)
        return NULL;
    e->field = field;
    if (field == MR_F_ALL)
        return e;
    if (field == MR_F_HEADER) {
        if (ps->kind != T_STRING || ps->str_len == 0) {
            expected(ps, "a header name in quotes after 'header'");
            goto bad;
        }
        for (size_t i = 0; i < ps->str_len; i++)
            if ((unsigned char)ps->str[i] <= 0x20 ||
                (unsigned char)ps->str[i] >= 0x7f || ps->str[i] == ':') {
                fail(ps, "header name \"%s\" is not a header field name",
                     ps->str);
                goto bad;
            }
        if ((e->header = mr_fold(ps->str, ps->str_len)) == NULL) {
            fail(ps, "out of memory");
            goto bad;
        }
        next(ps);
    }
    if (parse_op(ps, &e->op) != 0)
        goto bad;
    int numeric = mr_field_is_number(field);
    if (numeric && (e->op == MR_OP_CONTAINS || e->op == MR_OP_NOT_CONTAINS)) {
        fail(ps, "%s is a number: use is, is not, < or >", field_names[field]);
        goto bad;
    }
    if (!numeric && (e->op == MR_OP_LESS || e->op == MR_OP_GREATER)) {
        fail(ps, "%s is text: < and > need size, attachment_count, "
             "recipient_count, bayes_probability, karma_score or dns_score",
             field_names[field]);
        goto bad;
    }
    if (numeric) {
        const char *s = ps->kind == T_STRING ? ps->str : ps->start;
        size_t len = ps->kind == T_STRING ? ps->str_len : ps->len;
        if ((ps->kind != T_WORD && ps->kind != T_STRING) ||
            parse_number(s, len, &e->number) != 0) {
            expected(ps, "a number (like 100, 10K, 5M)");
            goto bad;
        }
        if (field == MR_F_BAYES_PROBABILITY) {
            /* a percentage; the verdict has four decimals */
            if (e->number > 100) {
                fail(ps, "bayes_probability is a percentage (0 to 100)");
                goto bad;
            }
            e->number *= 100;
        }
    } else {
        if (ps->kind != T_STRING) {
            expected(ps, "a value in double quotes");
            goto bad;
        }
        if ((e->text = mr_fold(ps->str, ps->str_len)) == NULL) {
            fail(ps, "out of memory");
            goto bad;
        }
    }
    next(ps);
    return e;
bad:
    expr_free(e);
    return NULL;
}

static mr_expr *parse_unary(parser *ps)
{
    if (++ps->depth > MR_MAX_DEPTH) {
        fail(ps, "conditions nested deeper than %d", MR_MAX_DEPTH);
        return NULL;
    }
    mr_expr *e = NULL;
    if (accept_word(ps, "not")) {
        mr_expr *a = parse_unary(ps);
        if (a && (e = expr_new(ps, MR_E_NOT)) != NULL)
            e->a = a;
        else
            expr_free(a);
    } else if (ps->kind == T_LPAREN) {
        next(ps);
        e = parse_or(ps);
        if (e && ps->kind != T_RPAREN) {
            expected(ps, "')'");
            expr_free(e);
            e = NULL;
        } else if (e) {
            next(ps);
        }
    } else {
        e = parse_condition(ps);
    }
    ps->depth--;
    return e;
}

static mr_expr *join(parser *ps, mr_expr_kind kind, mr_expr *a, mr_expr *b)
{
    mr_expr *e = a && b ? expr_new(ps, kind) : NULL;
    if (e == NULL) {
        expr_free(a);
        expr_free(b);
        return NULL;
    }
    e->a = a;
    e->b = b;
    return e;
}

/* and/or chains are built left-leaning; their length counts as depth so
 * that evaluation (recursive) stays shallow */
static mr_expr *parse_and(parser *ps)
{
    mr_expr *e = parse_unary(ps);
    int links = 0;
    while (e && accept_word(ps, "and")) {
        if (++links > MR_MAX_DEPTH * 4) {
            fail(ps, "more than %d conditions joined by 'and'",
                 MR_MAX_DEPTH * 4);
            expr_free(e);
            return NULL;
        }
        e = join(ps, MR_E_AND, e, parse_unary(ps));
    }
    return e;
}

static mr_expr *parse_or(parser *ps)
{
    if (++ps->depth > MR_MAX_DEPTH) {
        fail(ps, "conditions nested deeper than %d", MR_MAX_DEPTH);
        return NULL;
    }
    mr_expr *e = parse_and(ps);
    int links = 0;
    while (e && accept_word(ps, "or")) {
        if (++links > MR_MAX_DEPTH * 4) {
            fail(ps, "more than %d conditions joined by 'or'",
                 MR_MAX_DEPTH * 4);
            expr_free(e);
            e = NULL;
            break;
        }
        e = join(ps, MR_E_OR, e, parse_and(ps));
    }
    ps->depth--;
    return e;
}

/* ---------------------------------------------------------------------- */
/* rules                                                                   */

static void rule_clear(mr_rule *r)
{
    free(r->name);
    free(r->stat);
    expr_free(r->when);
    expr_free(r->unless);
    for (size_t i = 0; i < r->n_actions; i++)
        free(r->actions[i].arg);
    free(r->actions);
}

void mr_rules_free(mr_rules *rules)
{
    if (rules == NULL)
        return;
    for (size_t i = 0; i < rules->n; i++)
        rule_clear(&rules->rules[i]);
    free(rules->rules);
    free(rules);
}

static int parse_action(parser *ps, mr_rule *r)
{
    if (ps->kind != T_WORD) {
        expected(ps, "an action");
        return -1;
    }
    mr_action_kind kind = MR_A_COUNT;
    for (int i = 0; i < MR_A_COUNT; i++)
        if (is_word(ps, action_names[i]))
            kind = (mr_action_kind)i;
    if (kind == MR_A_COUNT) {
        char buf[64];
        fail(ps, "unknown action %s (quarantine, journal, reject, drop, "
             "hold, copy_to, tag, stop, vote)", tok_show(ps, buf, sizeof buf));
        return -1;
    }
    next(ps);
    char *arg = NULL;
    if (kind == MR_A_VOTE) {
        if (!is_word(ps, "spam") && !is_word(ps, "ham")) {
            expected(ps, "spam or ham after vote");
            return -1;
        }
        if ((arg = strdup(is_word(ps, "spam") ? "spam" : "ham")) == NULL) {
            fail(ps, "out of memory");
            return -1;
        }
        next(ps);
    }
    if (kind == MR_A_REJECT || kind == MR_A_COPY_TO || kind == MR_A_TAG) {
        if (ps->kind == T_STRING) {
            if ((arg = strdup(ps->str)) == NULL) {
                fail(ps, "out of memory");
                return -1;
            }
            next(ps);
        } else if (kind != MR_A_REJECT) {
            expected(ps, kind == MR_A_TAG ? "\"Header: value\" after tag"
                                          : "an address in quotes after "
                                            "copy_to");
            return -1;
        }
    }
    if (kind == MR_A_COPY_TO && (strlen(arg) == 0 || strchr(arg, '@') == NULL
                                 || strpbrk(arg, " \t<>"))) {
        fail(ps, "copy_to \"%s\" is not an address", arg);
        free(arg);
        return -1;
    }
    if (kind == MR_A_TAG) {
        const char *colon = strchr(arg, ':');
        int ok = colon && colon != arg;
        for (const char *p = arg; ok && p < colon; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                ok = 0;
        if (!ok) {
            fail(ps, "tag \"%s\" is not \"Header-Name: value\"", arg);
            free(arg);
            return -1;
        }
    }
    mr_action *grown = realloc(r->actions,
                               (r->n_actions + 1) * sizeof *grown);
    if (grown == NULL) {
        free(arg);
        fail(ps, "out of memory");
        return -1;
    }
    r->actions = grown;
    r->actions[r->n_actions].kind = kind;
    r->actions[r->n_actions].arg = arg;
    r->n_actions++;
    return 0;
}

/* "SMTP.Rules.<name>.Hits", the name's odd characters as '_' */
static char *rule_stat(const char *name)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "SMTP.Rules.");
    for (const char *p = name; *p && n < 110; p++)
        buf[n++] = isalnum((unsigned char)*p) || *p == '-' ? *p : '_';
    snprintf(buf + n, sizeof buf - (size_t)n, ".Hits");
    return strdup(buf);
}

static int parse_rule(parser *ps, mr_rule *r)
{
    r->line = ps->tline;
    next(ps);                   /* 'rule' */
    if (ps->kind != T_STRING || ps->str_len == 0) {
        expected(ps, "a rule name in double quotes after 'rule'");
        return -1;
    }
    if ((r->name = strdup(ps->str)) == NULL ||
        (r->stat = rule_stat(ps->str)) == NULL) {
        fail(ps, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < ps->rules->n; i++)
        if (!strcmp(ps->rules->rules[i].stat, r->stat)) {
            fail(ps, "rule \"%s\": same name (or statistic %s) as the rule "
                 "at line %d", r->name, r->stat, ps->rules->rules[i].line);
            return -1;
        }
    next(ps);
    int have_do = 0;
    for (;;) {
        int unless = -1;
        if (accept_word(ps, "when"))
            unless = 0;
        else if (accept_word(ps, "unless"))
            unless = 1;
        if (unless >= 0) {
            mr_expr *e = parse_or(ps);
            if (e == NULL) {
                if (!ps->failed)
                    expected(ps, "a condition");
                return -1;
            }
            mr_expr **slot = unless ? &r->unless : &r->when;
            *slot = *slot ? join(ps, unless ? MR_E_OR : MR_E_AND, *slot, e)
                          : e;
            if (*slot == NULL)
                return -1;
        } else if (accept_word(ps, "do")) {
            if (have_do) {
                fail(ps, "rule \"%s\": a second 'do' (separate actions "
                     "with ';')", r->name);
                return -1;
            }
            have_do = 1;
            do {
                if (parse_action(ps, r) != 0)
                    return -1;
            } while (ps->kind == T_SEMI && (next(ps), 1));
        } else if (ps->kind == T_EOF || is_word(ps, "rule")) {
            break;
        } else {
            expected(ps, "when, unless, do or the next rule");
            return -1;
        }
        if (ps->failed)
            return -1;
    }
    if (r->when == NULL || !have_do)
        ps->tline = r->line;    /* report the rule, not where it ended */
    if (r->when == NULL) {
        fail(ps, "rule \"%s\" (line %d) has no 'when' (use 'when all' for "
             "every message)", r->name, r->line);
        return -1;
    }
    if (!have_do) {
        fail(ps, "rule \"%s\" (line %d) has no 'do'", r->name, r->line);
        return -1;
    }
    return 0;
}

mr_rules *mr_rules_parse(const char *text, size_t len, const char *file,
                         char *err, size_t errlen)
{
    parser ps = { .p = text, .end = text + len, .line = 1, .file = file,
                  .err = err, .errlen = errlen };
    if (errlen)
        err[0] = '\0';
    ps.rules = calloc(1, sizeof *ps.rules);
    if (ps.rules == NULL) {
        snprintf(err, errlen, "%s: out of memory", file);
        return NULL;
    }
    size_t cap = 0;
    next(&ps);
    while (!ps.failed && ps.kind != T_EOF) {
        if (!is_word(&ps, "rule")) {
            expected(&ps, "'rule'");
            break;
        }
        if (ps.rules->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            mr_rule *grown = realloc(ps.rules->rules, ncap * sizeof *grown);
            if (grown == NULL) {
                fail(&ps, "out of memory");
                break;
            }
            ps.rules->rules = grown;
            cap = ncap;
        }
        mr_rule *r = &ps.rules->rules[ps.rules->n];
        memset(r, 0, sizeof *r);
        if (parse_rule(&ps, r) != 0) {
            rule_clear(r);
            break;
        }
        ps.rules->n++;
    }
    free(ps.str);
    if (ps.failed) {
        mr_rules_free(ps.rules);
        return NULL;
    }
    return ps.rules;
}
