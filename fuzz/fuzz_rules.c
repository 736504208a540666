/*
 * fuzz_rules.c - libFuzzer target for the mail rules parser
 * (plugins/mail_rules/rules.c): any bytes as a rules file must parse or be
 * refused with "FILE:LINE: message", without a crash, a leak or a read
 * past the input; what parses is walked once to touch every node.
 *
 * Build and run: `make fuzz` compiles the mail_rules sources it links
 * (Makefile FUZZ_PLUGIN_DEPS_fuzz_rules: plugins/mail_rules/rules.c) with clang
 * and coverage, then
 *   build/fuzz/fuzz_rules -max_total_time=300 fuzz/corpus/fuzz_rules
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../plugins/mail_rules/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_nodes(const mr_expr *e)
{
    if (e == NULL)
        return 0;
    if (e->kind == MR_E_COND && e->field != MR_F_HEADER && e->text)
        (void)strlen(e->text);
    return 1 + count_nodes(e->a) + count_nodes(e->b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    mr_rules *rules = mr_rules_parse((const char *)data, size, "fuzz", err,
                                     sizeof err);
    if (rules == NULL) {
        /* every refusal names the file and a line */
        if (strncmp(err, "fuzz:", 5) != 0)
            __builtin_trap();
        return 0;
    }
    size_t nodes = 0;
    for (size_t i = 0; i < rules->n; i++) {
        const mr_rule *r = &rules->rules[i];
        if (r->when == NULL || r->n_actions == 0 || r->stat == NULL)
            __builtin_trap();
        nodes += count_nodes(r->when) + count_nodes(r->unless);
        for (size_t j = 0; j < r->n_actions; j++)
            if (r->actions[j].arg)
                nodes += strlen(r->actions[j].arg) > 0;
    }
    (void)nodes;
    mr_rules_free(rules);
    return 0;
}
