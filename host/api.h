/*
 * api.h - the table of host functions handed to plugins (upesi/plugin.h).
 */
#ifndef UPESI_API_H
#define UPESI_API_H

#include "upesi/plugin.h"

const upesi_api *up_api_table(void);
/* In each worker, once its loop is set up: run the plugins'
 * api->on_worker_start callbacks. */
void up_api_worker_started(void);
/* In each worker that stops, once its loop has stopped: run the plugins'
 * api->on_worker_stop callbacks.  Returns how many ran. */
int up_api_worker_stopping(void);
/* The plugins' descriptor watches (fd_watch) not yet unwatched. */
int up_api_watches_open(void);

#endif
