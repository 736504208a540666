/*
 * config_show.h - the effective configuration, key by key, with where each
 * value comes from (`upesi -c DIR config [KEY]`; see config_show.c).
 */
#ifndef UPESI_CONFIG_SHOW_H
#define UPESI_CONFIG_SHOW_H

#include "config.h"

/* Print every key (or only `only`) of cfg's files to stdout.  0, or 1
 * when `only` names no key. */
int up_config_show(const up_config *cfg, const char *only);

#endif
