/*
 * fuzz_limit_rule.c - libFuzzer target for plugins/limit/limit_rule.c,
 * the parser of limit's rules ("N/WINDOW [421 | tarpit DELAY]", "0").
 *
 * The input is one value (cut at its first NUL).  A rule that parses is
 * off (max 0, nothing else set) or has 1 <= N <= 10^9, a window the store
 * can keep (at least 1 ms: the store takes milliseconds, and 0 means "no
 * expiry", a counter that never resets) and at most a year, a known
 * verdict, and a tarpit in (0, 300] s only with the tarpit verdict.  The
 * rule printed back in seconds parses to the same rule.  A refusal says
 * why.  Any difference aborts.
 *
 * Build and run: make fuzz; build/fuzz/fuzz_limit_rule fuzz/corpus/fuzz_limit_rule
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/limit/limit_rule.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = malloc(size + 1);
    if (value == NULL)
        return 0;
    memcpy(value, data, size);
    value[size] = '\0';
    lim_rule r, again;
    char err[512] = "", err2[512] = "", text[256];
    if (lim_parse_rule(&r, value, err, sizeof err) != 0) {
        FZ_CHECK(err[0] != '\0');
        free(value);
        return 0;
    }
    if (r.max == 0) {
        FZ_CHECK(r.window == 0 && r.verdict == V_DEFAULT && r.tarpit == 0);
        snprintf(text, sizeof text, "0");
    } else {
        FZ_CHECK(r.max >= 1 && r.max <= 1000000000L);
        FZ_CHECK((long long)(r.window * 1000) >= 1);
        FZ_CHECK(r.window <= 366 * 86400.0);
        FZ_CHECK(r.verdict == V_DEFAULT || r.verdict == V_421 ||
                 r.verdict == V_TARPIT);
        if (r.verdict == V_TARPIT)
            FZ_CHECK(r.tarpit > 0 && r.tarpit <= 300);
        else
            FZ_CHECK(r.tarpit == 0);
        int n = snprintf(text, sizeof text, "%ld/%.17gs", r.max, r.window);
        if (r.verdict == V_421)
            snprintf(text + n, sizeof text - n, " 421");
        else if (r.verdict == V_TARPIT)
            snprintf(text + n, sizeof text - n, " tarpit %.17gs", r.tarpit);
    }
    FZ_CHECK(lim_parse_rule(&again, text, err2, sizeof err2) == 0);
    FZ_CHECK(again.max == r.max && again.window == r.window &&
             again.verdict == r.verdict && again.tarpit == r.tarpit);
    free(value);
    return 0;
}
