/*
 * plugins_list.h - the plugin chain as text, one line a plugin: what
 * `upesi plugins` prints from the configuration and what a running
 * server answers to the control command "plugins" (its live chain).
 */
#ifndef UPESI_PLUGINS_LIST_H
#define UPESI_PLUGINS_LIST_H

#include "config.h"

/* Call line(text, arg) for the header and each plugin, in run order. */
void up_plugins_list(const up_config *cfg,
                     void (*line)(const char *text, void *arg), void *arg);

/* `upesi plugins --available`: every .so in dir with its version and ABI
 * (or why it does not load).  Exit status: 0, or 1 if one did not load. */
int up_plugins_available(const char *dir, FILE *out);

/* A plugin's queue hook makes it the chain's queue plugin. */
int up_plugins_is_queue(const up_config *cfg, size_t i);

#endif
