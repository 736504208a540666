/*
 * simulate.h - `upesi -c DIR -bh IP [HELO]`: one SMTP session read from
 * stdin and answered on stdout as if from IP, through every plugin of the
 * configuration, with each plugin's decision per hook on stderr (Exim's
 * -bh).  Nothing is queued: the queue hook is reported, not run; the
 * message actions' files (hold, quarantine, journal) are reported, not
 * written; the statistics are this process's own table, so a running
 * server's counters do not move.
 *
 * The store (shared state, when the host has one) must ask
 * up_simulate_store_writes() before a write: 0 unless `-bh --write`.
 */
#ifndef UPESI_SIMULATE_H
#define UPESI_SIMULATE_H

#include "config.h"

/* Is this process a -bh simulation?  (hooks.c, actions.c, session.c) */
int up_simulating(void);
/* the client address the session pretends to come from */
const char *up_simulate_ip(void);
/* May the store write (-bh --write)?  1 outside a simulation. */
int up_simulate_store_writes(void);
/* Trace one line to stderr: "hook: plugin -> VERDICT code text" */
void up_simulate_trace(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Run the session; returns the exit status (0, or 1 on a setup error).
 * helo: if not NULL, "EHLO helo" is sent before stdin's lines. */
int up_simulate_run(up_config *cfg, const char *ip, const char *helo,
                    int write_store);

#endif
