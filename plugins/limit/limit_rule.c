/*
 * limit_rule.c - the parser of limit's rules (docs/plugins/limit.md):
 * "N/WINDOW", "N/WINDOW 421", "N/WINDOW tarpit DELAY", or "0"/"off".
 * It stands alone so that fuzz/fuzz_limit_rule.c can link it.
 *
 * Fails: -1 with a message in err naming the value; no allocation.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "limit_rule.h"

int lim_duration(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v <= 0)
        return -1;
    if (!strcmp(end, "ms"))
        v /= 1000;
    else if (!strcmp(end, "m"))
        v *= 60;
    else if (!strcmp(end, "h"))
        v *= 3600;
    else if (!strcmp(end, "d"))
        v *= 86400;
    else if (*end && strcmp(end, "s"))
        return -1;
    *out = v;
    return 0;
}

/* "N/WINDOW [421 | tarpit DURATION]", or "0" (off) */
int lim_parse_rule(lim_rule *r, const char *value, char *err, size_t errlen)
{
    char buf[128], w1[64] = "", w2[64] = "", w3[64] = "", extra[8] = "";
    memset(r, 0, sizeof *r);
    if (!strcmp(value, "0") || !strcasecmp(value, "off"))
        return 0;
    snprintf(buf, sizeof buf, "%s", value);
    int n = sscanf(buf, "%63s %63s %63s %7s", w1, w2, w3, extra);
    char *slash = strchr(w1, '/'), *end;
    if (n < 1 || n > 3 || slash == NULL)
        goto bad;
    *slash = '\0';
    r->max = strtol(w1, &end, 10);
    if (end == w1 || *end || r->max < 1 || r->max > 1000000000L ||
        lim_duration(slash + 1, &r->window) != 0 || r->window > 366 * 86400.0
        /* the store keeps expiries in ms, and 0 ms would be no expiry */
        || (long long)(r->window * 1000) < 1)
        goto bad;
    if (n == 2 && !strcmp(w2, "421"))
        r->verdict = V_421;
    else if (n == 3 && !strcasecmp(w2, "tarpit") &&
             lim_duration(w3, &r->tarpit) == 0 && r->tarpit <= 300)
        r->verdict = V_TARPIT;
    else if (n != 1)
        goto bad;
    return 0;
bad:
    snprintf(err, errlen, "expected N/WINDOW, N/WINDOW 421 or N/WINDOW "
             "tarpit DELAY (like 100/1h tarpit 10s; N >= 1, WINDOW >= 1ms, "
             "DELAY <= 300s), "
             "or 0 for off; got '%s'", value);
    return -1;
}
