/*
 * worker.h - one worker process: an event loop serving the listeners.
 * supervisor.h - the process that starts workers and restarts them.
 */
#ifndef UPESI_WORKER_H
#define UPESI_WORKER_H

#include "config.h"

/* Run worker `index` until SIGTERM; control_fd is the control socket and
 * listeners the listening sockets the supervisor bound.  Returns the
 * process exit status. */
struct up_listen_set;
int up_worker_run(up_config *cfg, const char *conf_dir, int index,
                  int control_fd, const struct up_listen_set *listeners);

/* Bind the control socket and the listeners, start cfg->workers workers (0 = one per core),
 * restart any that dies (with backoff), forward SIGHUP and SIGTERM.
 * Returns the process exit status. */
int up_supervisor_run(up_config *cfg, const char *conf_dir);

/* The statistic counting the open sessions of worker `index`, so that the
 * supervisor can take a dead worker's sessions out of
 * SMTP.Sessions.Current. */
void up_worker_sessions_stat(int index, char *name, size_t len);

#endif
