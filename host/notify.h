/*
 * notify.h - the supervisor's messages to systemd (Type=notify) through
 * libsystemd's sd_notify: READY=1 once every worker listens,
 * RELOADING=1 (with MONOTONIC_USEC) / READY=1 around a SIGHUP reload,
 * STOPPING=1 at SIGTERM, and WATCHDOG=1 at half of WatchdogSec while
 * workers are alive.  Outside systemd (no NOTIFY_SOCKET) every call does
 * nothing.
 *
 * Workers tell the supervisor through a pipe (up_notify_worker_*): one
 * byte when a worker listens, one when it has taken a reload.
 */
#ifndef UPESI_NOTIFY_H
#define UPESI_NOTIFY_H

#include <stdint.h>

/* Supervisor, before the first fork: the pipe.  0 or -1 (logged). */
int up_notify_open(void);
/* the descriptor the supervisor polls (-1 if none) */
int up_notify_fd(void);
/* Supervisor: read what the workers wrote; expected_workers is how many
 * workers are alive (a reload waits for each of them). */
void up_notify_read(int expected_workers);
void up_notify_reloading(int expected_workers);
/* the reload was refused: the old configuration runs on */
void up_notify_reload_refused(void);
void up_notify_stopping(void);
/* milliseconds until the next watchdog ping (-1: no watchdog); pings when
 * due if workers_alive > 0 */
int up_notify_tick(uint64_t now_ms, int workers_alive);
void up_notify_close(void);

/* Worker, in the child: drop the read end and the environment. */
void up_notify_worker_start(void);
/* Worker: it listens / it has taken a reload (done or refused). */
void up_notify_worker_listening(void);
void up_notify_worker_reloaded(void);

#endif
