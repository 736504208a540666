/*
 * api.h - the table of host functions handed to plugins (upesi/plugin.h).
 */
#ifndef UPESI_API_H
#define UPESI_API_H

#include "upesi/plugin.h"

#include <uv.h>

const upesi_api *up_api_table(void);
/* In each worker, once its loop is set up: timers, work, watches and DNS
 * of plugins run on it (before: they fail, as in the supervisor). */
void up_api_set_loop(uv_loop_t *loop);
/* The plugins' descriptor watches (fd_watch) not yet unwatched. */
int up_api_watches_open(void);

#endif
