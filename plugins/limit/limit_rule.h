/*
 * limit_rule.h - one rule of plugins/limit ("N/WINDOW [421 | tarpit
 * DELAY]") and its parser (limit_rule.c).
 */
#ifndef LIMIT_RULE_H
#define LIMIT_RULE_H

#include <stddef.h>

enum { V_DEFAULT, V_421, V_TARPIT };

typedef struct lim_rule {
    long max;                    /* 0: off */
    double window;               /* seconds, > 0 unless off */
    int verdict;                 /* V_* */
    double tarpit;               /* seconds, V_TARPIT only */
} lim_rule;

/* A duration: a positive number with an optional unit ms, s, m, h or d;
 * *out in seconds.  0, or -1 (nothing written). */
int lim_duration(const char *s, double *out);

/* Parses value into *r (zeroed first: "0" and "off" leave max 0).  0, or
 * -1 with the reason in err. */
int lim_parse_rule(lim_rule *r, const char *value, char *err, size_t errlen);

#endif
