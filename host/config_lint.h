/*
 * config_lint.h - what `upesi -t` checks beyond a configuration that
 * loads: mistakes that load fine and then fail quietly (a chain without a
 * queue plugin answers 451 to every message).
 */
#ifndef UPESI_CONFIG_LINT_H
#define UPESI_CONFIG_LINT_H

#include "config.h"

/* Log each finding (ERR or WARNING, naming the file).  Returns 1 if one
 * is an error, else 0 (warnings do not fail -t). */
int up_config_lint(const up_config *cfg);

#endif
