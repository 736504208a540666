/*
 * rules.h - the mail rules language (docs/mail-rules.md): parsing a rules
 * file into a list of rules, each a condition tree and a list of actions.
 *
 *   rule "Quarantine blacklisted"
 *     when blacklist_tag is "zen.example"
 *     do quarantine; stop
 *
 * Text is compared case-insensitively: the parser folds every text value
 * once (mr_fold) so that evaluation compares folded bytes.
 *
 * Fails: mr_rules_parse returns NULL with "FILE:LINE: message" in err for
 * the first error; it never reads past len and never recurses deeper than
 * MR_MAX_DEPTH.
 */
#ifndef MAIL_RULES_RULES_H
#define MAIL_RULES_RULES_H

#include <stddef.h>

#define MR_MAX_DEPTH 64          /* nesting of (), not, and/or chains    */
#define MR_MAX_TEXT 4096         /* bytes of one quoted string           */

typedef enum mr_field {
    MR_F_ALL = 0,
    MR_F_SENDER,
    MR_F_SUBJECT,
    MR_F_BODY,
    MR_F_IMPORTANCE,
    MR_F_DELIVERY_PRIORITY,
    MR_F_TO,
    MR_F_CC,
    MR_F_BCC,
    MR_F_TO_OR_CC,
    MR_F_BODY_OR_SUBJECT,
    MR_F_INTERNET_DOMAIN,
    MR_F_SIZE,
    MR_F_ATTACHMENT_NAME,
    MR_F_ATTACHMENT_COUNT,
    MR_F_RECIPIENT_COUNT,
    MR_F_ANY_RECIPIENT,
    MR_F_BLACKLIST_TAG,
    MR_F_WHITELIST_TAG,
    MR_F_HEADER,
    MR_F_BAYES_CLASS,            /* note bayes.class: spam, ham, unsure   */
    MR_F_BAYES_PROBABILITY,      /* note bayes.prob, in percent           */
    MR_F_KARMA_SCORE,            /* conn note karma.score (karma) */
    MR_F_DNS_SCORE,              /* conn note dns.score (weighted lists) */
    MR_F_COUNT
} mr_field;

typedef enum mr_op {
    MR_OP_CONTAINS = 0,
    MR_OP_NOT_CONTAINS,
    MR_OP_IS,
    MR_OP_IS_NOT,
    MR_OP_LESS,
    MR_OP_GREATER
} mr_op;

typedef enum mr_expr_kind {
    MR_E_COND = 0,
    MR_E_AND,
    MR_E_OR,
    MR_E_NOT
} mr_expr_kind;

typedef struct mr_expr {
    mr_expr_kind kind;
    struct mr_expr *a, *b;       /* AND, OR: both; NOT: a                  */
    mr_field field;
    mr_op op;
    char *header;                /* MR_F_HEADER: the name, folded          */
    char *text;                  /* the value, folded (text fields)        */
    long long number;            /* the value (number fields; bayes_
                                    probability in 1/100 of a percent)     */
} mr_expr;

typedef enum mr_action_kind {
    MR_A_QUARANTINE = 0,
    MR_A_JOURNAL,
    MR_A_REJECT,
    MR_A_DROP,
    MR_A_HOLD,
    MR_A_COPY_TO,
    MR_A_TAG,
    MR_A_STOP,
    MR_A_VOTE,                   /* vote spam|ham: the bayes plugin learns */
    MR_A_COUNT
} mr_action_kind;

typedef struct mr_action {
    mr_action_kind kind;
    char *arg;                   /* reject text, copy_to address, tag,
                                    vote: "spam" or "ham"                  */
} mr_action;

typedef struct mr_rule {
    char *name;
    char *stat;                  /* "SMTP.Rules.<name>.Hits"               */
    int line;
    mr_expr *when;               /* several when clauses: joined by and    */
    mr_expr *unless;             /* several unless clauses: joined by or   */
    mr_action *actions;
    size_t n_actions;
} mr_rule;

typedef struct mr_rules {
    mr_rule *rules;
    size_t n;
    unsigned needs;              /* bit (1 << mr_field) for fields used    */
} mr_rules;

mr_rules *mr_rules_parse(const char *text, size_t len, const char *file,
                         char *err, size_t errlen);
void mr_rules_free(mr_rules *rules);

/* Case folding for comparisons: Unicode case folding for valid UTF-8,
 * ASCII lower case for anything else.  Returns a malloc'd string (NULL
 * only when out of memory). */
char *mr_fold(const char *s, size_t len);

const char *mr_field_name(mr_field field);
const char *mr_action_name(mr_action_kind kind);      /* "quarantine"   */
const char *mr_action_stat(mr_action_kind kind);      /* "SMTP.Rules.Action.Quarantine" */
int mr_field_is_number(mr_field field);

#endif
