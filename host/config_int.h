/*
 * config_int.h - what the parts of a configuration load (config.c,
 * config_smtp.c, config_plugins.c) share; nothing outside host/config*.c
 * includes it.
 */
#ifndef UPESI_CONFIG_INT_H
#define UPESI_CONFIG_INT_H

#include <stddef.h>

#include "config.h"

/* config_smtp.c: smtp.ini (cfg->dir set first: paths are resolved) */
int config_defaults(up_config *cfg);
/* one smtp.ini key (an up_ini_handler; also each -o key=value) */
int config_smtp_ini_key(void *arg, const char *section, const char *key,
                        const char *value, char *err, size_t errlen);
/* after smtp.ini and -o: resolve paths, fill what was left unset, build
 * the TLS context; file names smtp.ini in messages */
int config_finish(up_config *cfg, const char *file);

/* config_plugins.c: conf/plugins and DIR/<plugin>.ini */
int config_load_plugin_list(up_config *cfg);
int config_load_plugin_settings(up_config *cfg, up_plugin_inst *inst);

#endif
